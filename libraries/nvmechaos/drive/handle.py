"""A running emulated drive: its server process, its URIs, its health and its events.

:func:`start_emulated_drive` resolves the personality (YAML + overrides), writes it as JSON into a
private 0700 folder, and starts :mod:`nvmechaos.drive.server` there as an owned process listening
on a unix socket in that folder. The handle:

- ``uri`` (the whole drive) and ``uris`` (one per namespace slice) for a VM namespace
  (``nbd=${drive.uri}``) or fio's nbd engine;
- :meth:`EmulatedDrive.health` reads the SMART view the server writes (fresh: newer than the call);
- a watcher thread tails the server's event file and records every drive event on the timeline as
  it happens (on the server's own monotonic and wall-clock stamps), and tells the listeners of
  :meth:`EmulatedDrive.on_critical_warning` (e.g. a VM controller's ``smart_critical_warning``);
- :meth:`cut` (SIGKILL: the volatile cache is gone), :meth:`restore` (a new server on the same
  image and state), :meth:`stop` (SIGTERM: an orderly shutdown that writes the cache back).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from nvmechaos.drive.personality import Personality, load_personality
from nvmechaos.drive.statefiles import EVENTS, HEALTH, PERSONALITY, SAMPLES
from nvmechaos.errors import NvmeChaosError
from nvmechaos.files import cannot_create, last_log_lines
from nvmechaos.process import REGISTRY, OwnedProcess, ProcessRegistry, spawn, wait_for_ready_file
from nvmechaos.rundir import private_run_dir
from nvmechaos.timeline import Event, Timeline

START_TIMEOUT = 15.0
#: The ``kind`` of the power events of a drive (start, cut, restore, stop).
POWER = "power"
HEALTH_WAIT = 2.0


class DriveError(NvmeChaosError):
    """A drive cannot start, is not running, or its image or health cannot be read."""


class PowerAction(Enum):
    """What happened to the power of a drive or a VM: the ``action`` of its timeline events."""

    START = "start"
    CUT = "cut"
    RESTORE = "restore"
    STOP = "stop"


WarningListener = Callable[[int], None]
_RUNNING: dict[int, EmulatedDrive] = {}
_RUNNING_LOCK = threading.Lock()


_NUMBERS = itertools.count(1)


def next_drive_name() -> str:
    """``drive<N>``, unique in this process (the run's timeline tells drives apart by name, whichever
    library started them)."""
    return f"drive{next(_NUMBERS)}"


def running_drives() -> list[EmulatedDrive]:
    """The drives started in this process and not closed, oldest first."""
    with _RUNNING_LOCK:
        return list(_RUNNING.values())


def drive_serving(uri: str) -> EmulatedDrive | None:
    """The running drive that serves the NBD ``uri`` (its whole drive or one of its namespaces)."""
    return next((drive for drive in running_drives() if drive.serves(uri)), None)


@dataclass
class EmulatedDrive:
    """One emulated SSD served over NBD. Create with :func:`start_emulated_drive`."""

    name: str
    personality: Personality
    backing: Path
    run_dir: Path
    log_file: Path
    namespaces: int = 0
    scope: str = ""
    registry: ProcessRegistry = REGISTRY
    timeline: Timeline = field(default_factory=Timeline)
    owns_backing: bool = False
    starts: int = 0
    _process: OwnedProcess | None = None
    _watcher: threading.Thread | None = None
    _watching: threading.Event = field(default_factory=threading.Event)
    _events_read: int = 0
    _listeners: list[WarningListener] = field(default_factory=list)
    _sync_lock: threading.Lock = field(default_factory=threading.Lock)
    _warning: int = 0

    # ---- identity ---------------------------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.run_dir / "nbd.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "server.pid"

    @property
    def uri(self) -> str:
        return f"nbd+unix:///?socket={self.socket}"

    @property
    def uris(self) -> list[str]:
        """One URI per namespace slice (``namespaces=N``), or the whole drive's."""
        if not self.namespaces:
            return [self.uri]
        return [f"nbd+unix:///ns{index}?socket={self.socket}" for index in range(1, self.namespaces + 1)]

    @property
    def size(self) -> int:
        return self.personality.size

    @property
    def plp(self) -> bool:
        return self.personality.plp

    @property
    def profile(self) -> str:
        """How the oracle judges this drive: ``PLP`` or ``no-PLP``."""
        return "PLP" if self.personality.plp else "no-PLP"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_running()

    def serves(self, uri: str) -> bool:
        return uri == self.uri or uri in self.uris

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "nvmechaos.drive.server", "--file", str(self.backing)]
        argv += ["--personality", str(self.run_dir / PERSONALITY), "--state-dir", str(self.run_dir)]
        argv += ["--unix", str(self.socket), "--pidfile", str(self.pid_file)]
        if self.namespaces:
            argv += ["--namespaces", str(self.namespaces)]
        return argv

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "personality": self.personality.name,
            "profile": self.profile,
            "size": self.size,
            "backing": str(self.backing),
            "uri": self.uri,
            "uris": self.uris,
            "pid": self.pid,
            "alive": self.is_alive(),
        }

    # ---- power ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            DriveError: already running, or the server ended at start-up (its last log line quoted).
        """
        if self.is_alive():
            raise DriveError(f"drive {self.name} is already running (pid {self.pid})")
        for leftover in (self.socket, self.pid_file):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        self.starts += 1
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        )
        with open(self.log_file, "ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self._process = spawn(
                f"drive {self.name}",
                self.argv(),
                scope=self.scope,
                env=env,
                stdout=log,
                stderr=log,
                registry=self.registry,
            )
        problem = wait_for_ready_file(self._process, self.pid_file, START_TIMEOUT)
        if problem is not None:
            self._process.kill()
            raise DriveError(
                f"drive {self.name}: the server {problem}: {self._last_log_line() or 'no output'}"
            )
        self.record(PowerAction.START, {"personality": self.personality.name, "uri": self.uri})
        with _RUNNING_LOCK:
            _RUNNING[id(self)] = self
        self._start_watcher()

    def record(self, action: PowerAction, params: Mapping[str, Any]) -> Event:
        """Put a power ``action`` on the timeline as this drive's."""
        return self.timeline.record(POWER, action.value, params, self.name)

    def signal_cut(self) -> None:
        """SIGKILL the server without waiting (the first half of a power cut)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)

    def reap(self) -> None:
        if self._process is not None:
            self._process.kill()
        self._stop_watcher()

    def cut(self) -> Event:
        """Power cut of this drive alone: its volatile cache is lost."""
        self.signal_cut()
        event = self.record(PowerAction.CUT, {"profile": self.profile})
        self.reap()
        return event

    def restore(self) -> Event:
        """Power the drive back on: a new server on the same image and saved state."""
        if self.is_alive():
            raise DriveError(f"drive {self.name} still has power (cut it first)")
        self.start()
        return self.record(PowerAction.RESTORE, {"profile": self.profile})

    def stop(self) -> None:
        """Orderly shutdown: the server writes its volatile cache back and saves its state."""
        if self._process is not None:
            self._process.stop(grace=5.0)
            self._process = None
            self._stop_watcher()
            self.record(PowerAction.STOP, {})

    def close(self) -> None:
        """Stop and remove the private folder (and the image when the drive created it)."""
        self.stop()
        with _RUNNING_LOCK:
            _RUNNING.pop(id(self), None)
        self._listeners.clear()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.owns_backing:
            with contextlib.suppress(FileNotFoundError):
                self.backing.unlink()

    # ---- health and events -----------------------------------------------------------------------
    def health(self, fresh: bool = True) -> dict[str, Any]:
        """The drive's SMART view; ``fresh``: written after this call (waits up to 2 s).

        Raises:
            DriveError: the drive is not running (cut or stopped) or wrote no health in time.
        """
        if fresh and not self.is_alive():
            raise DriveError(f"drive {self.name} is not running (power cut or stopped): no health to read")
        asked = time.monotonic()
        deadline = asked + HEALTH_WAIT
        while True:
            try:
                health: dict[str, Any] = json.loads((self.run_dir / HEALTH).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                health = {}
            if health and (not fresh or health.get("monotonic", 0) >= asked):
                health.pop("monotonic", None)
                self.sync_events()
                return health
            if time.monotonic() > deadline:
                raise DriveError(f"drive {self.name} wrote no health report within {HEALTH_WAIT:g} s")
            time.sleep(0.02)

    def samples(self) -> list[dict[str, float]]:
        """Every per-second sample the server wrote (``monotonic``, ``wear_pct``,
        ``temperature_c``, ``free_blocks_pct``, ``write_amplification``), oldest first."""
        try:
            lines = (self.run_dir / SAMPLES).read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        samples = []
        for line in lines:
            with contextlib.suppress(ValueError):
                samples.append(json.loads(line))
        return samples

    def on_critical_warning(self, listener: WarningListener) -> None:
        """Call ``listener(bits)`` whenever the critical warning changes (from the watcher thread)."""
        self._listeners.append(listener)
        if self._warning:
            listener(self._warning)

    def sync_events(self) -> list[Event]:
        """Record the drive events the server wrote since the last call; return them. The watcher
        thread and keywords both call it: one at a time, so no event is recorded twice."""
        with self._sync_lock:
            return self._sync_events()

    def _sync_events(self) -> list[Event]:
        path = self.run_dir / EVENTS
        try:
            with open(path, "rb") as handle:
                handle.seek(self._events_read)
                data = handle.read()
        except OSError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._events_read += len(complete)
        recorded = []
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            event = self.timeline.record(
                item["kind"],
                item["action"],
                item["params"],
                self.name,
                monotonic=item["monotonic"],
                wall=item["wall"],
            )
            recorded.append(event)
            if item["kind"] == "critical_warning":
                bits = int(item["params"].get("critical_warning", 0)) if item["action"] == "begin" else 0
                self._warning = bits
                for listener in list(self._listeners):
                    with contextlib.suppress(Exception):
                        listener(bits)
        return recorded

    def _start_watcher(self) -> None:
        self._watching.clear()
        self._watcher = threading.Thread(target=self._watch, name=f"drive-{self.name}-events", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._watching.wait(0.05):
            self.sync_events()

    def _stop_watcher(self) -> None:
        self._watching.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=2)
        self._watcher = None
        self.sync_events()

    def _last_log_line(self) -> str:
        return last_log_lines(self.log_file, skip_prefix="--- start")


def check_backing(size: int, backing: Path | None, name: str) -> None:
    """Check the image ``backing`` can serve a drive of ``size`` bytes, creating nothing.

    Raises:
        DriveError: naming the drive and the image.
    """
    if backing is None:
        return
    if not backing.exists():
        problem = cannot_create(backing)
        if problem is not None:
            raise DriveError(f"drive {name}: cannot create image '{backing}': {problem}")
        return
    try:
        info = backing.stat()
    except OSError as error:
        raise DriveError(f"drive {name}: cannot read image '{backing}': {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DriveError(f"drive {name}: image '{backing}' is not a regular file")
    if not os.access(backing, os.R_OK | os.W_OK):
        raise DriveError(f"drive {name}: image '{backing}' is not readable and writable")
    if info.st_size < size:
        raise DriveError(f"drive {name}: image '{backing}' is smaller than {size} bytes")


def start_emulated_drive(
    personality: str | Path = "datacenter-tlc",
    size: int | None = None,
    backing: Path | None = None,
    *,
    overrides: Mapping[str, object] | None = None,
    namespaces: int = 0,
    name: str = "drive",
    log_dir: Path | None = None,
    scope: str = "",
    registry: ProcessRegistry = REGISTRY,
    timeline: Timeline | None = None,
) -> EmulatedDrive:
    """Start an emulated drive of ``personality`` (a shipped name or a YAML path) with ``overrides``
    (leaf parameter names) on ``backing`` (a raw image; created sparse when missing; None: a scratch
    image in the drive's private folder). ``size`` overrides the personality's size. Everything is
    checked before anything is created; what was created for a drive that then fails is removed.

    Raises:
        PersonalityError: the personality or an override is invalid (file and key named).
        DriveError: bad image, bad namespace count, or the server did not start.
    """
    values = dict(overrides or {})
    if size is not None:
        values["size"] = size
    resolved = load_personality(personality, values)
    if namespaces < 0 or namespaces > 16:
        raise DriveError(f"drive {name}: namespaces={namespaces} is not 0..16")
    check_backing(resolved.size, backing, name)
    run_dir = private_run_dir(f"dr-{name[:13]}")
    created: Path | None = None
    try:
        owns = backing is None
        if backing is None:
            backing = run_dir / "drive.raw"
        if not backing.exists():
            try:
                with open(backing, "xb") as handle:
                    created = backing
                    handle.truncate(resolved.size)
            except OSError as error:
                raise DriveError(f"drive {name}: cannot create image '{backing}': {error.strerror}") from None
        (run_dir / PERSONALITY).write_text(json.dumps(resolved.as_dict()), encoding="utf-8")
        logs = log_dir or run_dir
        logs.mkdir(parents=True, exist_ok=True)
        drive = EmulatedDrive(
            name=name,
            personality=resolved,
            backing=backing,
            run_dir=run_dir,
            log_file=logs / f"drive-{name}.log",
            namespaces=namespaces,
            scope=scope,
            registry=registry,
            timeline=timeline or Timeline(),
            owns_backing=owns,
        )
        drive.start()
    except BaseException as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        if created is not None:
            with contextlib.suppress(OSError):
                created.unlink()
        if isinstance(error, OSError):  # its personality file or its log
            raise DriveError(f"drive {name}: cannot write '{error.filename}': {error.strerror}") from None
        raise
    return drive
