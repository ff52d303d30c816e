"""Keywords that judge data integrity after a power cut."""

from __future__ import annotations

from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from IntegrityLibrary.context import IntegrityKeywords, as_drive, as_writer
from nvmechaos.drive import EmulatedDrive
from nvmechaos.integrity.oracle import failure_line
from nvmechaos.integrity.verdict import damage_flushed_block, verify_writer
from nvmechaos.integrity.writer import GuestWriter
from nvmechaos.units import ArgumentError, converted_flag
from nvmechaos.vm import Vm, as_vm
from nvmechaos_robot import fail


class VerdictKeywords(IntegrityKeywords):
    """Check the journaled blocks, and damage one on purpose to prove the check."""

    @keyword
    def verify_data_integrity(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        writer: GuestWriter,
        drive: EmulatedDrive | None = None,
        plp: bool | None = None,
        image: str | None = None,
        vm: Vm | None = None,
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
        target = as_writer(writer)
        chosen = as_drive(drive) if drive is not None else None
        guest = as_vm(vm) if vm is not None else None
        strict = converted_flag(fail_on_error, "fail_on_error")
        report = verify_writer(target, chosen, plp, image, guest)
        self.ctx.html(report.html())
        if strict and not report.passed:
            fail(report.failure())
        return report.as_dict()

    @keyword
    def integrity_report_should_be_clean(self, report: dict[str, Any]) -> None:
        """Fail if the report of `Verify Data Integrity` has corrupt (torn, stale, ...) blocks.

        Example:
        | ${report} =    Verify Data Integrity    ${writer}    ${drive}    fail_on_error=${False}
        | Integrity Report Should Be Clean    ${report}
        """
        if not isinstance(report, dict) or "corrupt" not in report:
            raise ArgumentError(f"'{report}' is not a report of `Verify Data Integrity`")
        if report["corrupt"]:
            fail(failure_line(report))

    @keyword
    def damage_flushed_block(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        drive: EmulatedDrive,
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
        target = as_writer(writer)
        chosen = as_drive(drive)
        damaged = damage_flushed_block(chosen, target, block=block, offset=offset, count=count, pick=pick)
        logger.info(f"Flipped {count} bytes of block {damaged} at offset {offset} in {chosen.backing}")
        return damaged
