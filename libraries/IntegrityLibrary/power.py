"""Keywords for drives with and without power-loss protection, and power cuts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from IntegrityLibrary.context import IntegrityContext, as_bool, as_vm
from nvmechaos.errors import NvmeChaosError
from nvmechaos.integrity.drive import PowerCut, PowerCuttable, PowerLossDrive, cut_power, start_drive
from nvmechaos.timeline import Event
from nvmechaos.vm.spec import parse_size
from nvmechaos_robot import fail, safe_name

ACTIONS = ("start", "cut", "restore", "stop")


class PowerKeywords:
    """Drives, power cuts and restores, and their timeline."""

    def __init__(self, context: IntegrityContext) -> None:
        self.ctx = context

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

        ``size`` takes ``64M``, ``1GiB`` or bytes. ``backing`` is a raw image (or block device):
        an existing one (at least ``size``; give ``size=${None}`` to take it whole), or, when
        missing, one created sparse with ``size`` in a folder that must exist (kept after the
        drive). Without ``backing`` a scratch image in a private folder is used, deleted at the
        end. ``name`` names the drive in the power timeline (default ``drive<N>``). The handle has
        ``uri`` (for ``Launch NVMe VM    nbd=${drive.uri}``), ``backing`` (the image: what survives
        a cut), ``plp`` and ``profile``. Needs ``nbdkit`` (package nbdkit).

        Every argument is checked before anything is created or started: a bad one fails in one
        line naming the drive and the path, and leaves nothing behind.

        Example:
        | ${drive} =    Start Power Loss Drive    size=64M    plp=${False}
        | ${vm} =    Launch NVMe VM    nbd=${drive.uri}
        """
        protected = as_bool(plp, "plp")
        self.ctx.counter += 1
        drive_name = name or f"drive{self.ctx.counter}"
        try:
            drive = start_drive(
                parse_size(size, "drive size") if size not in (None, "") else None,
                Path(backing) if backing else None,
                plp=protected,
                name=safe_name(drive_name, 16),
                log_dir=self.ctx.test_dir("integrity", f"drive-{drive_name}"),
                nbdkit=nbdkit,
                scope=self.ctx.scope,
                timeline=self.ctx.timeline,
            )
        except NvmeChaosError as error:
            fail(error)
        self.ctx.drives.append((self.ctx.scope, drive))
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
        given = [self.ctx.drive(d) for d in drives]
        target = as_vm(vm, ("name", "pid", "power_cut"))
        chosen = given or self._drives_of(target)
        cut = cut_power(target, chosen, self.ctx.timeline)
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
        return [d for _, d in self.ctx.drives if d.is_alive() and d.uri in uris]

    @keyword
    def restore_power(self, *drives: PowerLossDrive) -> None:
        """Power the drives back on (same images, empty caches), before ``Restart VM``.

        Without ``drives``, every drive this library started that is not running is restored.

        Example:
        | Restore Power    ${drive}
        | Restart VM    ${vm}
        """
        chosen = [self.ctx.drive(d) for d in drives] or [d for _, d in self.ctx.drives if not d.is_alive()]
        for drive in chosen:
            try:
                drive.restore()
            except NvmeChaosError as error:
                fail(error)
        logger.info(f"Power restored to {', '.join(d.name for d in chosen) or 'no drive'}")

    @keyword
    def get_power_timeline(self, source: str | None = None, action: str | None = None) -> list[Event]:
        """Every drive start, power cut, restore and stop, with monotonic and wall-clock time
        (``source`` a VM or drive name, ``action`` start, cut, restore or stop: only those).

        Example:
        | ${events} =    Get Power Timeline
        | ${cuts} =    Get Power Timeline    source=${vm.name}    action=cut
        """
        if action is not None and action not in ACTIONS:
            fail(f"action '{action}' is not one of {', '.join(ACTIONS)}")
        events = [
            e
            for e in self.ctx.timeline.events
            if e.kind == "power"
            and (source is None or e.source == source)
            and (action is None or e.action == action)
        ]
        self.ctx.log_timeline(events)
        return events
