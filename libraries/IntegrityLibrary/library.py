"""The IntegrityLibrary keyword library: thin keywords over ``nvmechaos.faults.powerloss``,
``nvmechaos.faults.guestwriter`` and ``nvmechaos.faults.integrity``."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword
from robotlibcore import DynamicCore

from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults.base import FaultEvent, Timeline
from nvmechaos.faults.control import parse_duration
from nvmechaos.faults.guestwriter import GuestWriter, WriterSettings, read_through_guest, start_writer
from nvmechaos.faults.integrity import IntegrityReport, flip_bytes, verify, verify_image
from nvmechaos.faults.powerloss import PowerCut, PowerCuttable, PowerLossDrive, cut_power, start_drive
from nvmechaos.vm.spec import parse_size
from nvmechaos_robot import KeywordContext, ScopedListener, fail, safe_name

__version__ = "0.1.0"


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "off", "0", "none")
    return bool(value)


class IntegrityLibrary(DynamicCore, ScopedListener):
    """Power cuts on drives with and without power-loss protection, and a data-integrity oracle.

    = Drives =
    `Start Power Loss Drive` serves a raw image over NBD (nbdkit on a unix socket in a private
    folder) for a VM namespace: ``Launch NVMe VM    nbd=${drive.uri}``. Without power-loss
    protection (``plp=False``, the default) writes are acknowledged from a volatile cache (nbdkit's
    ``cache`` filter, writeback mode) and only a flush or a FUA write makes them durable; with it
    (``plp=True``) every acknowledged write is durable. Killing QEMU alone would lose nothing
    (the host page cache keeps QEMU's writes): `Cut Power` kills the drives and QEMU together.

    = The oracle =
    `Start Integrity Writer` runs a small static program in the guest that writes self-describing
    blocks (magic, block number, generation, seed, PRNG payload, checksums) with O_DIRECT and
    reports every acknowledged write and completed flush; the host journals the reports as they
    arrive. After `Cut Power` (and `Restore Power` + ``Restart VM``), `Verify Data Integrity`
    checks exactly the journaled blocks: with PLP every acknowledged write must be there, without
    it every flushed one; unflushed data may be lost (``lost_allowed``) but never torn, stale,
    misplaced or garbage.

    | ${drive} =    Start Power Loss Drive    size=64M    plp=${False}
    | ${vm} =    Launch NVMe VM    nbd=${drive.uri}
    | ${writer} =    Start Integrity Writer    ${vm}    blocks=256    count=1000    flush_every=64
    | Wait For Integrity Writer    ${writer}    finished=${True}
    | Cut Power    ${vm}    ${drive}
    | Restore Power    ${drive}
    | Restart VM    ${vm}
    | ${report} =    Verify Data Integrity    ${writer}    ${drive}

    = Clean-up =
    The library is its own listener: writers and drives started in a test are stopped at its
    end, those started in a suite setup at the end of the suite; nbdkit also dies with Robot.
    Import it after VmLibrary so VMs are stopped before their drives.
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "integrity-"

    def __init__(self) -> None:
        ScopedListener.__init__(self)
        self.timeline = Timeline()
        self._ctx = KeywordContext()
        self._drives: list[tuple[str, PowerLossDrive]] = []
        self._writers: list[tuple[str, GuestWriter]] = []
        self._counter = 0
        DynamicCore.__init__(self, [])

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop the writers, then the drives, that ``scope`` started."""
        return [f"Clean-up of the integrity library failed: {problem}" for problem in self._release(scope)]

    def _release(self, scope: str | None) -> list[str]:
        problems: list[str] = []
        writers = [w for s, w in self._writers if scope is None or s == scope]
        self._writers = [(s, w) for s, w in self._writers if not (scope is None or s == scope)]
        for writer in writers:
            try:
                writer.stop(timeout=2.0)
            except Exception as error:
                problems.append(f"writer in {writer.vm_name}: {error}")
        drives = [d for s, d in self._drives if scope is None or s == scope]
        self._drives = [(s, d) for s, d in self._drives if not (scope is None or s == scope)]
        for drive in drives:
            try:
                drive.close()
            except Exception as error:
                problems.append(f"drive {drive.name}: {error}")
        return problems

    # ----- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _drive(value: object) -> PowerLossDrive:
        if not isinstance(value, PowerLossDrive):
            fail(f"'{value}' is not a drive (use the handle `Start Power Loss Drive` returned)")
        return value

    @staticmethod
    def _writer(value: object) -> GuestWriter:
        if not isinstance(value, GuestWriter):
            fail(f"'{value}' is not an integrity writer (use the handle `Start Integrity Writer` returned)")
        return value

    # ----- drives and power -----------------------------------------------------------------------
    @keyword
    def start_power_loss_drive(
        self,
        size: str | None = "64M",
        plp: bool = False,
        backing: str | None = None,
        name: str | None = None,
        nbdkit: str = "nbdkit",
    ) -> PowerLossDrive:
        """Start a drive with (``plp=True``) or without power-loss protection; return its handle.

        ``backing`` is a raw image (created sparse with ``size`` when missing; without it a scratch
        image in a private folder, deleted at the end). The handle has ``uri`` (for
        ``Launch NVMe VM    nbd=${drive.uri}``), ``backing`` (the image: what survives a cut),
        ``plp`` and ``profile``. Needs ``nbdkit`` (package nbdkit).

        Example:
        | ${drive} =    Start Power Loss Drive    size=64M    plp=${False}
        | ${vm} =    Launch NVMe VM    nbd=${drive.uri}
        """
        self._counter += 1
        drive_name = name or f"drive{self._counter}"
        try:
            drive = start_drive(
                parse_size(size, "drive size") if size not in (None, "") else None,
                Path(backing) if backing else None,
                plp=_bool(plp),
                name=safe_name(drive_name, 16),
                log_dir=self._ctx.test_dir("integrity", f"drive-{drive_name}"),
                nbdkit=nbdkit,
                scope=self.scope,
                timeline=self.timeline,
            )
        except NvmeChaosError as error:
            fail(error)
        self._drives.append((self.scope, drive))
        logger.info(f"Drive {drive.name} ({drive.profile}) on {drive.backing}: {drive.uri}")
        return drive

    @keyword
    def cut_power(self, vm: PowerCuttable, *drives: PowerLossDrive) -> PowerCut:
        """Cut the power of ``vm`` and its drives at once: SIGKILL the drives' nbdkit, then QEMU.

        Unflushed writes in a no-PLP drive's cache are gone, as on a real drive. Without
        ``drives``, the live drives this library started that back one of the VM's namespaces
        are cut. Returns the cut with its ``monotonic`` and ``wall`` time (also on
        `Get Power Timeline`). (``Power Cut VM`` kills QEMU alone: the drives keep their caches.)

        Example:
        | ${cut} =    Cut Power    ${vm}    ${drive}
        | ${cut} =    Cut Power    ${vm}
        """
        chosen = [self._drive(d) for d in drives] or self._drives_of(vm)
        cut = cut_power(vm, chosen, self.timeline)
        logger.info(
            f"Power cut of VM {cut.vm} and drives {', '.join(cut.drives) or '-'} at monotonic "
            f"{cut.monotonic:.6f} (wall {cut.wall:.6f}); QEMU exit code {cut.qemu_exit}"
        )
        return cut

    def _drives_of(self, vm: Any) -> list[PowerLossDrive]:
        uris = {
            namespace.nbd
            for controller in getattr(vm, "controllers", ())
            for namespace in getattr(controller, "namespaces", ())
        }
        return [d for _, d in self._drives if d.is_alive() and d.uri in uris]

    @keyword
    def restore_power(self, *drives: PowerLossDrive) -> None:
        """Power the drives back on (same images, empty caches), before ``Restart VM``.

        Without ``drives``, every drive this library started that is not running is restored.

        Example:
        | Restore Power    ${drive}
        | Restart VM    ${vm}
        """
        chosen = [self._drive(d) for d in drives] or [d for _, d in self._drives if not d.is_alive()]
        for drive in chosen:
            try:
                drive.restore()
            except NvmeChaosError as error:
                fail(error)
        logger.info(f"Power restored to {', '.join(d.name for d in chosen) or 'no drive'}")

    @keyword
    def get_power_timeline(self, source: str | None = None, action: str | None = None) -> list[FaultEvent]:
        """Every drive start, power cut, restore and stop, with monotonic and wall-clock time
        (``source`` a VM or drive name, ``action`` start, cut, restore or stop: only those).

        Example:
        | ${events} =    Get Power Timeline
        | ${cuts} =    Get Power Timeline    source=${vm.name}    action=cut
        """
        events = [
            e
            for e in self.timeline.events
            if (source is None or e.injector == source) and (action is None or e.action == action)
        ]
        rows = "".join(
            f"<tr><td>{e.monotonic:.3f}</td><td>{html.escape(e.injector)}</td><td>{e.action}</td>"
            f"<td>{html.escape(json.dumps(dict(e.params), default=str))}</td></tr>"
            for e in events
        )
        logger.info(
            f"<table><tr><th>monotonic</th><th>source</th><th>action</th><th>details</th></tr>{rows}</table>",
            html=True,
        )
        return events

    # ----- the writer -----------------------------------------------------------------------------
    @keyword
    def start_integrity_writer(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        vm: Any,
        device: str = "/dev/nvme0n1",
        blocks: int = 256,
        count: int = 0,
        flush_every: int = 64,
        fua_every: int = 0,
        block_size: int = 4096,
        first_block: int = 0,
        seed: int = 0,
    ) -> GuestWriter:
        """Start the integrity writer in ``vm``'s guest; return its handle once it has started.

        It writes ``blocks`` blocks of ``block_size`` bytes from ``first_block`` of ``device``
        (random block order, one write at a time, O_DIRECT), flushes after every ``flush_every``
        writes (0: never) and writes every ``fua_every``-th block with FUA (0: none). With
        ``count`` it stops after that many writes and waits (for the power cut); with 0 it writes
        until stopped. ``seed`` 0 picks a random one. The host journals every acknowledged write and
        flush as it arrives (``journal.txt`` in the test's output folder). Needs ``gcc`` and the
        static C library on the host (packages gcc, libc6-dev).

        Example:
        | ${writer} =    Start Integrity Writer    ${vm}    blocks=256    flush_every=64
        """
        try:
            settings = WriterSettings(
                device=device,
                blocks=int(blocks),
                block_size=int(block_size),
                first_block=int(first_block),
                count=int(count),
                flush_every=int(flush_every),
                fua_every=int(fua_every),
                seed=int(seed),
            )
            folder = self._ctx.test_dir("integrity", f"writer-{getattr(vm, 'name', 'vm')}")
            journal = folder / "journal.txt"
            writer = start_writer(vm, settings, journal)
        except NvmeChaosError as error:
            fail(error)
        self._writers.append((self.scope, writer))
        logger.info(
            f"Integrity writer in {writer.vm_name}: {json.dumps(writer.describe())}; journal "
            f'<a href="{html.escape(self._ctx.link(journal))}">{html.escape(journal.name)}</a>',
            html=True,
        )
        return writer

    @keyword
    def wait_for_integrity_writer(
        self, writer: GuestWriter, writes: int = 0, finished: bool = False, timeout: str = "60s"
    ) -> int:
        """Wait until ``writes`` writes were acknowledged, or (``finished``) all ``count`` were;
        return the number acknowledged so far. Fails if the writer failed or on ``timeout``.

        Example:
        | Wait For Integrity Writer    ${writer}    writes=500
        | Wait For Integrity Writer    ${writer}    finished=${True}
        """
        target = self._writer(writer)
        try:
            target.wait_for(int(writes), _bool(finished), parse_duration(timeout, "timeout"))
        except NvmeChaosError as error:
            fail(error)
        return target.journal.writes

    @keyword
    def stop_integrity_writer(self, writer: GuestWriter) -> dict[str, Any]:
        """Stop the writer (if its guest still runs) and return its figures (writes, flushes, ...).

        Example:
        | ${figures} =    Stop Integrity Writer    ${writer}
        """
        target = self._writer(writer)
        target.stop()
        self._writers = [(s, w) for s, w in self._writers if w is not target]
        figures = target.describe()
        logger.info(f"Integrity writer in {target.vm_name}: {json.dumps(figures)}")
        return figures

    # ----- the verdict ----------------------------------------------------------------------------
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
        corrupt, naming the first bad blocks (unless ``fail_on_error=False``).

        Example:
        | ${report} =    Verify Data Integrity    ${writer}    ${drive}
        | Should Be True    ${report}[lost_allowed] > 0
        """
        target = self._writer(writer)
        chosen = self._drive(drive) if drive is not None else None
        if plp is None and chosen is None:
            fail("give plp=True or plp=False, or the drive (its profile decides)")
        profile = _bool(plp) if plp is not None else bool(chosen and chosen.plp)
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
        if _bool(fail_on_error):
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
        hits the block's header: garbage; beyond it the payload: torn).

        Example:
        | ${block} =    Damage Flushed Block    ${drive}    ${writer}
        | Run Keyword And Expect Error    *block ${block} torn*
        | ...    Verify Data Integrity    ${writer}    ${drive}
        """
        target, chosen = self._writer(writer), self._drive(drive)
        try:
            snapshot = target.snapshot()
            durable = sorted(b for b, g in snapshot.durable.items() if g > 0)
            if block is None:
                if len(durable) <= int(pick):
                    fail(
                        f"the writer's journal has {len(durable)} flushed blocks: no number {pick} to damage"
                    )
                block = durable[int(pick)]
            position = (snapshot.first_block + int(block)) * snapshot.block_size + int(offset)
            flip_bytes(chosen.backing, position, int(count))
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
