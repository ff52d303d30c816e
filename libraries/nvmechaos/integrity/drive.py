"""Power cuts: a VM and the emulated drives under it lose power together.

Killing QEMU alone loses no acknowledged write: QEMU's writes sit in the host's page cache, which
outlives QEMU. A real SSD without power-loss protection (PLP) acknowledges writes from a volatile
cache and loses what was not flushed when the power goes. The drives here are emulated SSDs
(:mod:`nvmechaos.drive`): their server keeps exactly the data that would survive a cut in the
image and the rest in memory, so SIGKILLing it is the cut (see :mod:`nvmechaos.drive.store` for
PLP, flush and the ``liar`` and ``tearing`` firmware bugs).

:func:`cut_power` SIGKILLs the drives and QEMU together (drives first, so no write can be
acknowledged between the two) and records the cut on the timeline with monotonic and wall-clock
time; :func:`restore_power` brings the drives back (empty caches, wear and mapping kept) so the VM
can be restarted on the same disks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nvmechaos.drive.handle import POWER, EmulatedDrive, PowerAction, start_emulated_drive
from nvmechaos.timeline import Event, Timeline
from nvmechaos.units import converted_flag


class PowerCuttable(Protocol):
    """What :func:`cut_power` needs of a VM (``nvmechaos.vm.Vm`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def power_cut(self) -> int | None: ...


def start_power_loss_drive(
    size: int | None = None,
    backing: Path | None = None,
    *,
    plp: bool | None = None,
    personality: str | Path | None = None,
    **options: Any,
) -> EmulatedDrive:
    """An emulated drive for power-cut tests: ``personality`` (default ``client-qlc`` without PLP,
    ``datacenter-tlc`` with it) with ``plp`` when given. ``size`` None takes an existing
    ``backing`` image whole (or the personality's size for a new one). ``options`` go to
    :func:`~nvmechaos.drive.handle.start_emulated_drive` (``name``, ``log_dir``, ``scope``, ...).

    Raises:
        ArgumentError: ``plp`` is not true or false.
        PersonalityError: unknown personality or bad parameters.
        DriveError: bad image, or the drive did not start.
    """
    overrides: dict[str, object] = {}
    if plp is not None:
        overrides["plp"] = converted_flag(plp, "plp")
    chosen = personality or ("datacenter-tlc" if overrides.get("plp") else "client-qlc")
    if size is None and backing is not None and backing.is_file():
        size = backing.stat().st_size
    return start_emulated_drive(chosen, size, backing, overrides=overrides, **options)


@dataclass(frozen=True)
class PowerCut:
    """When the power went (host monotonic and wall clock), and what it cut."""

    monotonic: float
    wall: float
    vm: str
    drives: tuple[str, ...]
    qemu_exit: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "monotonic": self.monotonic,
            "wall": self.wall,
            "vm": self.vm,
            "drives": list(self.drives),
            "qemu_exit": self.qemu_exit,
        }

    def summary(self) -> str:
        """One line for the log: what was cut, when, and how QEMU ended."""
        return (
            f"Power cut of VM {self.vm} and drives {', '.join(self.drives) or '-'} at monotonic "
            f"{self.monotonic:.6f} (wall {self.wall:.6f}); QEMU exit code {self.qemu_exit}"
        )


def cut_power(
    vm: PowerCuttable, drives: Sequence[EmulatedDrive], timeline: Timeline | None = None
) -> PowerCut:
    """SIGKILL the drives' nbdkit and the VM's QEMU together; record and return the moment.

    The drives are killed first: once they are gone no write can be acknowledged any more, and
    QEMU dies a moment later without sending a FLUSH.
    """
    for drive in drives:
        drive.signal_cut()
    qemu_pid = vm.pid
    if qemu_pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(qemu_pid, signal.SIGKILL)
    # Stamped the moment both signals are sent (the timeline's event and the returned cut agree).
    names = tuple(d.name for d in drives)
    if timeline is not None:
        event = timeline.record(POWER, PowerAction.CUT.value, {"vm": vm.name, "drives": list(names)}, vm.name)
        monotonic, wall = event.monotonic, event.wall
    else:
        monotonic, wall = time.monotonic(), time.time()
    code = vm.power_cut()
    for drive in drives:
        drive.reap()
        drive.record(PowerAction.CUT, {"profile": drive.profile, "vm": vm.name})
    cut = PowerCut(monotonic, wall, vm.name, names, code)
    return cut


def backing_drives(vm: object, drives: Iterable[EmulatedDrive]) -> list[EmulatedDrive]:
    """The live ``drives`` that serve one of ``vm``'s namespaces (``nbd=${drive.uri}``): what a
    power cut of ``vm`` takes down with it."""
    uris = {
        namespace.nbd
        for controller in getattr(vm, "controllers", ())
        for namespace in getattr(controller, "namespaces", ())
    }
    return [drive for drive in drives if drive.is_alive() and any(drive.serves(uri) for uri in uris)]


def restore_power(drives: Iterable[EmulatedDrive]) -> list[Event]:
    """Bring every drive back (empty caches) before the VM restarts on them."""
    return [drive.restore() for drive in drives]


def power_events(
    events: Iterable[Event], source: str | None = None, action: PowerAction | None = None
) -> list[Event]:
    """The drive starts, power cuts, restores and stops among ``events``; only those of ``source``
    (a VM or drive name) and of ``action`` when given."""
    return [
        event
        for event in events
        if event.kind == POWER
        and (source is None or event.source == source)
        and (action is None or event.action == action.value)
    ]
