"""Drive backing stores with and without power-loss protection, and the power cut itself.

Killing QEMU alone loses no acknowledged write: QEMU's writes sit in the host's page cache, which
outlives QEMU. A real SSD without power-loss protection (PLP) acknowledges writes from a volatile
cache and loses what was not flushed when the power goes. :class:`PowerLossDrive` serves a raw image
over NBD (nbdkit, on a unix socket in a private 0700 folder) for a VM namespace
(``nbd=${drive.uri}``):

- ``plp=False``: nbdkit's ``cache`` filter in ``writeback`` mode sits in front of the image. Writes
  are acknowledged from the filter's cache (a deleted temporary file inside nbdkit); only a FLUSH
  (or a FUA write) writes them back to the image. A power cut SIGKILLs nbdkit, so the cache and
  every unflushed write in it are gone, exactly as on a drive without PLP.
- ``plp=True``: the image is served directly; every acknowledged write is already in the image
  (the host page cache, which the cut does not touch), as on a drive with PLP.

:func:`cut_power` SIGKILLs the drives and QEMU together (drives first, so no write can be
acknowledged between the two) and records the cut on the fault timeline with monotonic and
wall-clock time; :meth:`PowerLossDrive.restore` brings a drive back (empty cache) so the VM can be
restarted on the same disks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from nvmechaos.faults.base import FaultError, InjectorStartError
from nvmechaos.files import cannot_create, last_log_lines
from nvmechaos.process import REGISTRY, OwnedProcess, ProcessRegistry, spawn, wait_for_ready_file
from nvmechaos.rundir import private_run_dir
from nvmechaos.timeline import Event, Timeline
from nvmechaos.units import converted_flag

START_TIMEOUT = 10.0
#: The ``kind`` of every event a drive or a power cut records on the timeline.
POWER = "power"


class PowerAction(Enum):
    """What happened to the power of a drive or a VM: the ``action`` of its timeline events."""

    START = "start"
    CUT = "cut"
    RESTORE = "restore"
    STOP = "stop"


class PowerCuttable(Protocol):
    """What :func:`cut_power` needs of a VM (``nvmechaos.vm.Vm`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def power_cut(self) -> int | None: ...


@dataclass
class PowerLossDrive:
    """A raw image served over NBD with (``plp=True``) or without power-loss protection.

    Create with :func:`start_drive`. ``uri`` is the NBD URI for a VM namespace (``nbd=`` in the
    namespace spec) or fio's nbd engine.
    """

    name: str
    backing: Path
    plp: bool
    run_dir: Path
    log_file: Path
    nbdkit: str = "nbdkit"
    cache_block: int = 4096
    scope: str = ""
    registry: ProcessRegistry = REGISTRY
    timeline: Timeline = field(default_factory=Timeline)
    owns_backing: bool = False
    starts: int = 0
    _process: OwnedProcess | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "nbdkit.pid"

    @property
    def socket(self) -> Path:
        return self.run_dir / "nbd.sock"

    @property
    def uri(self) -> str:
        return f"nbd+unix:///?socket={self.socket}"

    @property
    def profile(self) -> str:
        return "PLP" if self.plp else "no-PLP"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_running()

    def argv(self) -> list[str]:
        # nbdkit writes the pid file once it accepts connections (the socket exists a little earlier).
        argv = [self.nbdkit, "-f", "--exit-with-parent", "-P", str(self.pid_file), "-U", str(self.socket)]
        if not self.plp:
            argv += ["--filter=cache"]
        argv += ["file", f"file={self.backing}"]
        if not self.plp:
            argv += ["cache=writeback", f"cache-min-block-size={self.cache_block}"]
        return argv

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "profile": self.profile,
            "backing": str(self.backing),
            "uri": self.uri,
            "pid": self.pid,
            "alive": self.is_alive(),
            "argv": self.argv(),
        }

    def start(self) -> None:
        """Start nbdkit and wait until its socket accepts.

        Raises:
            InjectorStartError: nbdkit is missing or ended at start-up (its last log line quoted).
        """
        if self.is_alive():
            raise FaultError(f"drive {self.name} is already running (pid {self.pid})")
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        cache_dir = self.run_dir / "cache"
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(cache_dir))
        self.starts += 1
        with open(self.log_file, "ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            try:
                self._process = spawn(
                    f"nbdkit {self.name}",
                    self.argv(),
                    scope=self.scope,
                    env=env,
                    stdout=log,
                    stderr=log,
                    registry=self.registry,
                )
            except OSError as error:
                raise InjectorStartError(
                    f"cannot start '{self.nbdkit}' for drive {self.name}: {error.strerror} "
                    "(apt-get install nbdkit)"
                ) from None
        assert self._process is not None
        problem = wait_for_ready_file(self._process, self.pid_file, START_TIMEOUT)
        if problem is not None:
            self._process.kill()
            raise InjectorStartError(
                f"nbdkit of drive {self.name} {problem}: {self._last_log_line() or 'no output'}"
            )
        self.record(PowerAction.START, {"profile": self.profile, "uri": self.uri})

    def record(self, action: PowerAction, params: dict[str, Any]) -> Event:
        """Put ``action`` on the timeline as this drive's."""
        return self.timeline.record(POWER, action.value, params, self.name)

    def signal_cut(self) -> None:
        """Send SIGKILL to nbdkit without waiting (the first half of a cut; see :func:`cut_power`)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)

    def reap(self) -> None:
        if self._process is not None:
            self._process.kill()

    def cut(self) -> Event:
        """Power cut of this drive alone: SIGKILL nbdkit (the volatile cache dies with it)."""
        self.signal_cut()
        event = self.record(PowerAction.CUT, {"profile": self.profile})
        self.reap()
        return event

    def restore(self) -> Event:
        """Power the drive back on: a new nbdkit on the same image, with an empty cache."""
        if self.is_alive():
            raise FaultError(f"drive {self.name} still has power (cut it first)")
        self.start()
        return self.record(PowerAction.RESTORE, {"profile": self.profile})

    def stop(self) -> None:
        """End nbdkit (after the VM has gone; a no-PLP cache holds only what was never flushed)."""
        if self._process is not None:
            self._process.stop(grace=1.0)
            self._process = None
            self.record(PowerAction.STOP, {})

    def close(self) -> None:
        """Stop and remove the private folder (and the image when the drive created it)."""
        self.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.owns_backing:
            with contextlib.suppress(FileNotFoundError):
                self.backing.unlink()

    def _last_log_line(self) -> str:
        return last_log_lines(self.log_file, skip_prefix="--- start")


def check_drive(
    size: int | None, backing: Path | None, *, name: str = "drive", nbdkit: str = "nbdkit"
) -> None:
    """Check what :func:`start_drive` needs, creating nothing.

    Raises:
        InjectorStartError: nbdkit is missing.
        FaultError: naming the drive and the image: no size for a new image, a folder that does not
            exist or is not writable, an image that is not a file (or block device), not readable
            and writable, or smaller than ``size``.
    """
    if size is not None and size <= 0:
        raise FaultError(f"drive {name}: size {size} is not a positive number of bytes")
    if shutil.which(nbdkit) is None:
        raise InjectorStartError(f"'{nbdkit}' is not installed (apt-get install nbdkit)")
    if backing is None or not backing.exists():
        if size is None:
            raise FaultError(f"drive {name}: give a size to create the image (or an existing image)")
        if backing is None:
            return
        problem = cannot_create(backing)
        if problem is not None:
            raise FaultError(f"drive {name}: cannot create image '{backing}': {problem}")
        return
    try:
        info = backing.stat()
    except OSError as error:
        raise FaultError(f"drive {name}: cannot read image '{backing}': {error.strerror}") from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        raise FaultError(f"drive {name}: image '{backing}' is not a file or block device")
    if not os.access(backing, os.R_OK | os.W_OK):
        raise FaultError(f"drive {name}: image '{backing}' is not readable and writable")
    if size is not None and stat.S_ISREG(info.st_mode) and info.st_size < size:
        raise FaultError(f"drive {name}: image '{backing}' is smaller than {size} bytes")


def start_drive(
    size: int | None = None,
    backing: Path | None = None,
    *,
    plp: bool = False,
    name: str = "drive",
    log_dir: Path | None = None,
    nbdkit: str = "nbdkit",
    scope: str = "",
    registry: ProcessRegistry = REGISTRY,
    timeline: Timeline | None = None,
) -> PowerLossDrive:
    """Start a drive on ``backing`` (a raw image or block device; a missing image is created sparse
    with ``size`` in a folder that exists; None: a scratch image in the drive's private folder).
    Everything is checked (:func:`check_drive`) before anything is created; an image created for a
    drive that then fails to start is removed again.

    Raises:
        ArgumentError: ``plp`` is not true or false.
        FaultError: see :func:`check_drive`.
        InjectorStartError: nbdkit is missing or refused to start.
    """
    plp = converted_flag(plp, "plp")
    check_drive(size, backing, name=name, nbdkit=nbdkit)
    run_dir = private_run_dir(f"pl-{name[:13]}")
    owns = False
    created: Path | None = None
    try:
        if backing is None or not backing.exists():
            assert size is not None
            if backing is None:
                backing = run_dir / "drive.raw"
                owns = True
            try:
                with open(backing, "xb") as handle:
                    created = backing
                    handle.truncate(size)
            except OSError as error:
                raise FaultError(f"drive {name}: cannot create image '{backing}': {error.strerror}") from None
        logs = log_dir or run_dir
        logs.mkdir(parents=True, exist_ok=True)
        drive = PowerLossDrive(
            name=name,
            backing=backing,
            plp=plp,
            run_dir=run_dir,
            log_file=logs / f"nbdkit-{name}.log",
            nbdkit=nbdkit,
            scope=scope,
            registry=registry,
            timeline=timeline or Timeline(),
            owns_backing=owns,
        )
        drive.start()
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        if created is not None:
            with contextlib.suppress(OSError):
                created.unlink()
        raise
    return drive


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
    vm: PowerCuttable, drives: Sequence[PowerLossDrive], timeline: Timeline | None = None
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


def backing_drives(vm: object, drives: Iterable[PowerLossDrive]) -> list[PowerLossDrive]:
    """The live ``drives`` that serve one of ``vm``'s namespaces (``nbd=${drive.uri}``): what a
    power cut of ``vm`` takes down with it."""
    uris = {
        namespace.nbd
        for controller in getattr(vm, "controllers", ())
        for namespace in getattr(controller, "namespaces", ())
    }
    return [drive for drive in drives if drive.is_alive() and drive.uri in uris]


def restore_power(drives: Iterable[PowerLossDrive]) -> list[Event]:
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
