"""Keywords that judge data integrity after a power cut."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from IntegrityLibrary.context import IntegrityContext, as_bool, as_count, as_vm
from nvmechaos.errors import NvmeChaosError
from nvmechaos.integrity.drive import PowerLossDrive
from nvmechaos.integrity.oracle import IntegrityReport, flip_bytes, verify, verify_image
from nvmechaos.integrity.writer import GuestWriter, read_through_guest
from nvmechaos_robot import fail


class VerdictKeywords:
    """Check the journaled blocks, and damage one on purpose to prove the check."""

    def __init__(self, context: IntegrityContext) -> None:
        self.ctx = context

    @keyword
    def verify_data_integrity(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        writer: GuestWriter,
        drive: PowerLossDrive | None = None,
        plp: bool | None = None,
        image: str | None = None,
        vm: Any = None,
        fail_on_error: bool = True,
    ) -> dict[str, Any]:
        """Check every block the writer's journal has, and return the counts.

        What must have survived: ``plp`` True → every acknowledged write; False → every flushed
        (or FUA) write; None → the ``drive``'s profile. The blocks are read from the ``drive``'s
        image (or ``image``, a raw file) on the host, or, with ``vm``, through its guest (after
        ``Restart VM``). Returns ``checked``, ``intact``, ``newer``, ``lost_allowed``, ``corrupt``
        (= ``torn`` + ``stale`` + ``misplaced`` + ``garbage``), ``writes``, ``flushes``,
        ``unflushed_blocks``, ``profile`` and ``bad`` (descriptions). Fails when anything is
        corrupt, naming the first bad blocks (unless ``fail_on_error=False``). Give one source:
        ``image`` (an existing file), ``vm``, or the ``drive`` alone.

        Example:
        | ${report} =    Verify Data Integrity    ${writer}    ${drive}
        | Should Be True    ${report}[lost_allowed] > 0
        """
        target = self.ctx.writer(writer)
        chosen = self.ctx.drive(drive) if drive is not None else None
        if plp is None and chosen is None:
            fail("give plp=True or plp=False, or the drive (its profile decides)")
        profile = as_bool(plp, "plp") if plp is not None else bool(chosen and chosen.plp)
        strict = as_bool(fail_on_error, "fail_on_error")
        if vm is not None:
            as_vm(vm)
            if image:
                fail("give image= or vm= to read the blocks from, not both")
        if image and not Path(image).is_file():
            fail(f"image '{image}' does not exist (or is not a file)")
        try:
            snapshot = target.snapshot()
            if vm is not None:
                data = read_through_guest(
                    vm, target.settings.device, snapshot.first_block, snapshot.blocks, snapshot.block_size
                )
                size = snapshot.block_size
                report = verify(lambda b: data[b * size : (b + 1) * size], snapshot, profile)
                source = f"the guest of VM {getattr(vm, 'name', vm)}"
            else:
                path = Path(image) if image else (chosen.backing if chosen is not None else None)
                if path is None:
                    fail("give the drive, an image or a VM to read the blocks from")
                report = verify_image(path, snapshot, profile)
                source = str(path)
        except NvmeChaosError as error:
            fail(error)
        self._log_report(report, source)
        if strict:
            self._check(report)
        return report.as_dict()

    @keyword
    def integrity_report_should_be_clean(self, report: Any) -> None:
        """Fail if the report of `Verify Data Integrity` has corrupt (torn, stale, ...) blocks.

        Example:
        | ${report} =    Verify Data Integrity    ${writer}    ${drive}    fail_on_error=${False}
        | Integrity Report Should Be Clean    ${report}
        """
        if not isinstance(report, dict) or "corrupt" not in report:
            fail(f"'{report}' is not a report of `Verify Data Integrity`")
        if report["corrupt"]:
            fail(_failure(report))

    @keyword
    def damage_flushed_block(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        drive: PowerLossDrive,
        writer: GuestWriter,
        block: int | None = None,
        offset: int = 100,
        count: int = 4,
        pick: int = 0,
    ) -> int:
        """Flip ``count`` bytes at ``offset`` inside a flushed block of the drive's image and return
        the block number: ``block``, or else the ``pick``-th (from 0) block the journal shows as
        durable. For proving that `Verify Data Integrity` catches damage (an ``offset`` below 48
        hits the block's header: garbage; beyond it the payload: torn). ``block`` is below the
        writer's ``blocks``; ``offset`` + ``count`` stay inside one block.

        Example:
        | ${block} =    Damage Flushed Block    ${drive}    ${writer}
        | Run Keyword And Expect Error    *block ${block} torn*
        | ...    Verify Data Integrity    ${writer}    ${drive}
        """
        target, chosen = self.ctx.writer(writer), self.ctx.drive(drive)
        size, blocks = target.settings.block_size, target.settings.blocks
        where, many, index = as_count(offset, "offset"), as_count(count, "count", 1), as_count(pick, "pick")
        if where + many > size:
            fail(f"offset={where} + count={many} go beyond one block of {size} bytes")
        if block is not None and not 0 <= as_count(block, "block") < blocks:
            fail(f"block {block} is not one the writer writes (0 to {blocks - 1})")
        try:
            snapshot = target.snapshot()
            durable = sorted(b for b, g in snapshot.durable.items() if g > 0)
            if block is None:
                if len(durable) <= index:
                    fail(
                        f"the writer's journal has {len(durable)} flushed blocks: no number {pick} to damage"
                    )
                block = durable[index]
            position = (snapshot.first_block + int(block)) * snapshot.block_size + where
            flip_bytes(chosen.backing, position, many)
        except NvmeChaosError as error:
            fail(error)
        logger.info(f"Flipped {count} bytes of block {block} at offset {offset} in {chosen.backing}")
        return int(block)

    def _check(self, report: IntegrityReport) -> None:
        if not report.passed:
            fail(_failure(report.as_dict()))

    @staticmethod
    def _log_report(report: IntegrityReport, source: str) -> None:
        figures = report.as_dict()
        rows = "".join(
            f"<tr><td>{key}</td><td>{figures[key]}</td></tr>"
            for key in (
                "profile",
                "checked",
                "intact",
                "newer",
                "lost_allowed",
                "corrupt",
                "torn",
                "stale",
                "misplaced",
                "garbage",
                "writes",
                "flushes",
                "fua_writes",
                "unflushed_blocks",
            )
        )
        bad = "".join(f"<li>{html.escape(b.describe())}</li>" for b in report.bad[:10])
        logger.info(
            f"Integrity of {html.escape(source)}: <table>{rows}</table>" + (f"<ul>{bad}</ul>" if bad else ""),
            html=True,
        )


def _failure(report: dict[str, Any]) -> str:
    """One line naming the profile, the counts by kind and the first bad blocks."""
    bad = report.get("bad", [])
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    return (
        f"Data integrity failed ({report['profile']}): {report['corrupt']} of {report['checked']} "
        f"acknowledged blocks corrupt (torn {report['torn']}, stale {report['stale']}, misplaced "
        f"{report['misplaced']}, garbage {report['garbage']}): {'; '.join(bad[:5])}{more}"
    )
