"""Keywords for drives with and without power-loss protection, and power cuts."""

from __future__ import annotations

from pathlib import Path

from robot.api import logger
from robot.api.deco import keyword

from IntegrityLibrary.context import IntegrityKeywords, as_drive
from nvmechaos.drive import EmulatedDrive, PowerAction, next_drive_name
from nvmechaos.integrity.drive import (
    PowerCut,
    backing_drives,
    cut_power,
    power_events,
    restore_power,
    start_power_loss_drive,
)
from nvmechaos.timeline import Event
from nvmechaos.units import parse_size
from nvmechaos.vm import Vm, as_vm
from nvmechaos_robot import safe_name


class PowerKeywords(IntegrityKeywords):
    """Drives, power cuts and restores, and their timeline."""

    @keyword
    def start_power_loss_drive(
        self,
        size: str | None = "64M",
        plp: bool | None = None,
        backing: str | None = None,
        name: str | None = None,
        personality: str | None = None,
    ) -> EmulatedDrive:
        """Start an emulated drive for power-cut tests, with (``plp=True``) or without power-loss
        protection; return its handle.

        The drive is the emulated SSD of `DriveLibrary` (``Start Emulated Drive``):
        ``personality`` is a shipped one (``client-qlc``, ``datacenter-tlc``, the firmware bugs
        ``liar`` and ``tearing``, ...) or a YAML file; by default ``client-qlc`` without PLP and
        ``datacenter-tlc`` with it; ``plp``, when given, overrides the personality's. Without PLP
        acknowledged writes stay in the drive's volatile cache until a flush or a FUA write makes
        them durable, and a power cut loses them.

        ``size`` takes ``64M``, ``1GiB`` or bytes. ``backing`` is a raw image: an existing one (at
        least ``size``; give ``size=${None}`` to take it whole), or, when missing, one created
        sparse with ``size`` in a folder that must exist (kept after the drive). Without
        ``backing`` a scratch image in a private folder is used, deleted at the end. ``name``
        names the drive in the power timeline (default ``drive<N>``). The handle has ``uri`` (for
        ``Launch NVMe VM    nbd=${drive.uri}``), ``backing`` (the image: what survives a cut),
        ``plp`` and ``profile``.

        Every argument is checked before anything is created or started: a bad one fails in one
        line naming the drive, the file or the key, and leaves nothing behind.

        Example:
        | ${drive} =    Start Power Loss Drive    size=64M    plp=${False}
        | ${liar} =    Start Power Loss Drive    size=64M    personality=liar
        | ${vm} =    Launch NVMe VM    nbd=${drive.uri}
        """
        bytes_ = parse_size(size, "drive size") if size not in (None, "") else None
        drive_name = name or next_drive_name()
        drive = start_power_loss_drive(
            bytes_,
            Path(backing) if backing else None,
            plp=plp,
            personality=personality or None,
            name=safe_name(drive_name, 16),
            log_dir=self.ctx.test_dir("integrity", f"drive-{drive_name}"),
            scope=self.ctx.scope,
            timeline=self.ctx.timeline,
        )
        self.ctx.own_drive(drive)
        logger.info(
            f"Drive {drive.name} ({drive.personality.name}, {drive.profile}) on {drive.backing}: {drive.uri}"
        )
        return drive

    @keyword
    def cut_power(self, vm: Vm, *drives: EmulatedDrive) -> PowerCut:
        """Cut the power of ``vm`` and its drives at once: SIGKILL the drives' servers, then QEMU.

        Unflushed writes in a no-PLP drive's cache are gone, as on a real drive. Without
        ``drives``, the live drives this library started that back one of the VM's namespaces
        are cut. Returns the cut with its ``monotonic`` and ``wall`` time (also on
        `Get Power Timeline`). (``Power Cut VM`` kills QEMU alone: the drives keep their caches.)

        Example:
        | ${cut} =    Cut Power    ${vm}    ${drive}
        | ${cut} =    Cut Power    ${vm}
        """
        given = [as_drive(d) for d in drives]
        target = as_vm(vm)
        cut = cut_power(target, given or backing_drives(target, self.ctx.drives()), self.ctx.timeline)
        logger.info(cut.summary())
        return cut

    @keyword
    def restore_power(self, *drives: EmulatedDrive) -> None:
        """Power the drives back on (same images, empty caches), before ``Restart VM``.

        Without ``drives``, every drive this library started that is not running is restored.

        Example:
        | Restore Power    ${drive}
        | Restart VM    ${vm}
        """
        chosen = [as_drive(d) for d in drives] or [d for d in self.ctx.drives() if not d.is_alive()]
        restore_power(chosen)
        logger.info(f"Power restored to {', '.join(d.name for d in chosen) or 'no drive'}")

    @keyword
    def get_power_timeline(self, source: str | None = None, action: PowerAction | None = None) -> list[Event]:
        """Every drive start, power cut, restore and stop, with monotonic and wall-clock time
        (``source`` a VM or drive name, ``action`` start, cut, restore or stop: only those).

        Example:
        | ${events} =    Get Power Timeline
        | ${cuts} =    Get Power Timeline    source=${vm.name}    action=cut
        """
        events = power_events(self.ctx.timeline.events, source, action)
        self.ctx.log_timeline(events)
        return events
