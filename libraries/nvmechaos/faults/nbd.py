"""NBD fault injectors: a disk image served over NBD whose latency and errors change live.

Two engines share one control interface (:mod:`nvmechaos.faults.control`):

- :class:`NbdkitInjector`: nbdkit with our Python plugin (Linux; packages ``nbdkit`` and
  ``nbdkit-plugin-python``).
- :class:`PythonNbdProxy`: our pure-Python NBD server (:mod:`nvmechaos.faults.nbdserver`), for hosts
  without nbdkit.

Either is started with a backing file (created sparse when missing, in a folder that exists; or a
private scratch file when None; everything is checked before anything is created), serves it on a
unix socket in a private 0700 folder (default) or on 127.0.0.1:PORT, and gives an NBD URI for fio's
nbd engine (:attr:`NbdInjector.uri`) and ``-blockdev`` options for QEMU
(:meth:`NbdInjector.qemu_blockdev`).

One module (about 530 lines) because the two engines differ only in their command line: the checks,
files, control file and owned process they share are :class:`NbdInjector`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import IO, Any

from nvmechaos.faults.base import FaultError, Injector, InjectorStartError
from nvmechaos.faults.control import (
    ErrorParams,
    FaultParamError,
    FaultParams,
    LatencyParams,
    StallParams,
    parse_size,
)
from nvmechaos.faults.controlfile import ControlState, write_control
from nvmechaos.files import cannot_create, last_log_lines
from nvmechaos.process import REGISTRY, OwnedProcess, ProcessRegistry, spawn, wait_for_ready_file
from nvmechaos.rundir import private_run_dir
from nvmechaos.timeline import Timeline

_HERE = Path(__file__).resolve().parent
PLUGIN = _HERE / "nbdkit_plugin.py"
_LIBRARIES = _HERE.parents[1]
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


class InjectorEngine(str, Enum):
    """What serves the disk: ``nbdkit`` (nbdkit with our Python plugin), ``python`` (our pure-Python
    NBD server, for hosts without nbdkit), or ``auto`` (nbdkit when installed, else python)."""

    # Lower-case names: Robot matches and libdoc lists the names, and these are what users write.
    auto = "auto"
    nbdkit = "nbdkit"
    python = "python"


class Transport(str, Enum):
    """Where clients connect: ``unix`` (a socket in a private 0700 folder) or ``tcp`` (127.0.0.1)."""

    unix = "unix"
    tcp = "tcp"


def _choice(value: object, choices: type[Enum], what: str) -> str:
    """``value`` (a member of ``choices`` or its text) as plain text, e.g. ``"unix"``.

    Raises:
        FaultParamError: not one of ``choices``.
    """
    text = value.value if isinstance(value, Enum) else value
    try:
        return str(choices(text).value)
    except ValueError:
        known = " or ".join(str(member.value) for member in choices)
        raise FaultParamError(f"unknown {what} '{text}' (use {known})") from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NbdInjector(Injector):
    """Common part of both engines: files, the control file, the owned server process."""

    engine = "nbd"

    def __init__(
        self,
        backing: str | os.PathLike[str] | None = None,
        size: int | str | None = None,
        *,
        transport: Transport | str | None = None,
        port: int = 0,
        socket_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        scope: str = "",
        start_timeout: float = 10.0,
        priority: int | None = -10,
        timeline: Timeline | None = None,
        registry: ProcessRegistry = REGISTRY,
    ) -> None:
        """``priority`` is the nice value the server runs at (POSIX; negative values need root or
        CAP_SYS_NICE, else the server runs at normal priority): a server that wakes up promptly
        keeps delays accurate when the CPUs are busy. None leaves it alone. ``size`` is bytes or a
        size with a unit (``64M``, ``1GiB``)."""
        bytes_ = parse_size(size) if size is not None and size != "" else None
        super().__init__(name or f"{self.engine}-injector", timeline)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise FaultParamError(
                f"injector name '{self.name}' must be 1-64 letters, digits, '.', '_' or '-' "
                "(it names its log file)"
            )
        if transport is None:  # unix sockets where they exist, loopback TCP elsewhere (Windows)
            transport = "unix" if os.name == "posix" else "tcp"
        transport = _choice(transport, Transport, "transport")
        if isinstance(port, bool) or not isinstance(port, int):
            raise FaultParamError(f"port '{port}' is not a port number (0 to 65535; 0 picks a free one)")
        if not 0 <= port <= 65535:
            raise FaultParamError(f"port {port} is not between 0 and 65535")
        if port and transport != "tcp":
            raise FaultParamError(f"port {port} is for transport=tcp (this injector uses a unix socket)")
        self.backing = Path(backing) if backing is not None else None
        self.size = bytes_
        self.transport = transport
        self.port = port
        self._socket_path = Path(socket_path) if socket_path is not None else None
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.scope = scope
        self.start_timeout = start_timeout
        self.priority = priority
        self.latency_compensation = 0.0
        self.registry = registry
        self.run_dir: Path | None = None
        self.process: OwnedProcess | None = None
        self.log_path: Path | None = None
        self._log: IO[bytes] | None = None
        self._state = ControlState()
        self._stall: StallParams | None = None
        self.export_path: Path | None = None
        self._created_backing = False

    # -- where clients connect -------------------------------------------------------------------
    @property
    def socket_path(self) -> Path | None:
        return self._socket_path if self.transport == "unix" else None

    @property
    def uri(self) -> str:
        """The NBD URI for fio's nbd engine (``--uri``) and libnbd tools."""
        if self.transport == "unix":
            return f"nbd+unix:///?socket={self._socket_path}"
        return f"nbd://127.0.0.1:{self.port}"

    def qemu_blockdev(self, node_name: str = "nbd0", reconnect_delay: int = 20) -> str:
        """The ``-blockdev`` value of a QEMU protocol node reading this export."""
        if self.transport == "unix":
            path = str(self._socket_path).replace(",", ",,")
            server = f"server.type=unix,server.path={path}"
        else:
            server = f"server.type=inet,server.host=127.0.0.1,server.port={self.port}"
        return f"driver=nbd,node-name={node_name},{server},reconnect-delay={reconnect_delay}"

    def blockdev_options(self, node_name: str = "nbd0", reconnect_delay: int = 20) -> dict[str, Any]:
        """The same as a QMP ``blockdev-add`` argument."""
        server: dict[str, Any] = (
            {"type": "unix", "path": str(self._socket_path)}
            if self.transport == "unix"
            else {"type": "inet", "host": "127.0.0.1", "port": str(self.port)}
        )
        return {"driver": "nbd", "node-name": node_name, "server": server, "reconnect-delay": reconnect_delay}

    # -- lifecycle -------------------------------------------------------------------------------
    def describe_start(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "uri": self.uri,
            "backing": str(self.export_path),
            "size": self.size,
            "pid": self.process.pid if self.process else None,
        }

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(self.describe_start())
        return info

    def _argv(self, pidfile: Path, control: Path) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _program(self) -> str:
        """The server program (the first word of :meth:`_argv`)."""
        raise NotImplementedError

    def check(self) -> None:
        """Check everything :meth:`start` needs, creating nothing: the program, the socket or port,
        and the backing file (an existing regular file, readable, writable and big enough; or, when
        missing, a size and an existing writable folder to create it in).

        Raises:
            InjectorStartError: the program is missing, the socket or port is in use.
            FaultParamError: the backing file cannot be used or created.
        """
        if shutil.which(self._program()) is None:
            raise InjectorStartError(self._missing_program_message(self._program()))
        if self.transport == "unix" and self._socket_path is not None:
            if self._socket_path.exists():
                raise InjectorStartError(f"socket '{self._socket_path}' is in use (the path exists)")
            if len(str(self._socket_path)) > _SOCKET_PATH_MAX:
                raise InjectorStartError(f"socket path '{self._socket_path}' is too long for a unix socket")
        if self.transport == "tcp" and self.port != 0:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    raise InjectorStartError(f"port 127.0.0.1:{self.port} is in use")
        if self.backing is None:
            if self.size is None:
                raise FaultParamError("give a size for a scratch disk (no backing file)")
            return
        if not self.backing.exists():
            if self.size is None:
                raise FaultParamError(f"backing file '{self.backing}' does not exist and no size was given")
            problem = cannot_create(self.backing)
            if problem is not None:
                raise FaultParamError(f"cannot create backing file '{self.backing}': {problem}")
            return
        if not self.backing.is_file():
            raise FaultParamError(f"backing '{self.backing}' is not a regular file")
        actual = self.backing.stat().st_size
        if self.size is not None and self.size > actual:
            raise FaultParamError(
                f"backing file '{self.backing}' has {actual} bytes, fewer than size={self.size}"
            )
        if not os.access(self.backing, os.R_OK | os.W_OK):
            raise InjectorStartError(f"backing file '{self.backing}' is not readable and writable")

    def _start(self) -> None:
        self.check()  # before anything is created
        self.run_dir = private_run_dir("nbd")
        try:
            self._prepare_files()
            control = self.run_dir / "control.json"
            write_control(control, self._state)
            pidfile = self.run_dir / "server.pid"
            argv = self._argv(pidfile, control)
            program = shutil.which(argv[0])
            if program is None:
                raise InjectorStartError(self._missing_program_message(argv[0]))
            nice = shutil.which("nice") if os.name == "posix" and self.priority is not None else None
            if nice is not None:
                # nice runs the program at that priority, or (without the right) at the normal one
                argv = [nice, "-n", str(self.priority), program, *argv[1:]]
            log_dir = self.log_dir or self.run_dir
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = log_dir / f"{self.name}.log"
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
            try:
                self.process = spawn(
                    self.name,
                    argv,
                    scope=self.scope,
                    env=self._env(),
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    registry=self.registry,
                )
            except FileNotFoundError:
                raise InjectorStartError(self._missing_program_message(argv[0])) from None
            except PermissionError:
                raise InjectorStartError(f"cannot run '{argv[0]}': not executable") from None
            self._wait_ready(pidfile)
            # The server dies with us anyway (PDEATHSIG); this also removes its folder on exit.
            atexit.register(self.stop)
        except BaseException:
            self._cleanup()
            if self._created_backing and self.backing is not None:
                with contextlib.suppress(OSError):
                    self.backing.unlink()  # the start failed: leave no file it created behind
            raise

    def _prepare_files(self) -> None:
        assert self.run_dir is not None
        if self.transport == "unix":
            if self._socket_path is None:
                self._socket_path = self.run_dir / "nbd.sock"
        elif self.port == 0:
            self.port = free_port()
        if self.backing is None:
            assert self.size is not None
            self.export_path = self.run_dir / "scratch.img"
            with open(self.export_path, "wb") as handle:
                handle.truncate(self.size)
            return
        self.export_path = self.backing
        if not self.backing.exists():
            assert self.size is not None
            try:
                with open(self.backing, "xb") as handle:
                    self._created_backing = True
                    handle.truncate(self.size)
            except OSError as error:
                raise InjectorStartError(
                    f"cannot create backing file '{self.backing}': {error.strerror}"
                ) from None
            return
        if self.size is None:
            self.size = self.backing.stat().st_size

    def _missing_program_message(self, program: str) -> str:
        return f"cannot start {self.engine}: program '{program}' not found"

    def _wait_ready(self, pidfile: Path) -> None:
        assert self.process is not None
        problem = wait_for_ready_file(self.process, pidfile, self.start_timeout)
        if problem is not None:
            raise InjectorStartError(f"{self.engine} {problem}: {self._last_log_line()}")

    def _last_log_line(self) -> str:
        return last_log_lines(self.log_path, 2) or "no output"

    def is_alive(self) -> bool:
        return self.process is not None and self.process.is_running()

    def death_message(self) -> str:
        code = self.process.popen.poll() if self.process else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        detail = self._last_log_line()
        return f"{self.name} ({self.engine}) is no longer running ({how}; log: {detail}); nothing was changed"

    def _set(self, active: Mapping[str, FaultParams]) -> None:
        assert self.run_dir is not None
        latency = active.get("latency")
        errors = active.get("errors")
        state = ControlState(generation=self._state.generation + 1)
        if isinstance(latency, LatencyParams):
            # What the client adds on top of our delay (its own wake-up, a VM's interrupt path)
            # is taken off, so the latency it measures grows by the delay asked for.
            state.delays = {
                op: max(0.0, delay - self.latency_compensation) for op, delay in latency.as_dict().items()
            }
        if isinstance(errors, ErrorParams):
            state.error_rate = errors.rate
            state.error_ops = frozenset(errors.operations)
            state.error_errno = errors.errno
        stall = active.get("stall")
        if isinstance(stall, StallParams):
            # A stall ends when it began plus its length: rewriting the file for another fault
            # keeps its end; a new stall starts now.
            same = stall is self._stall
            state.stall_until = self._state.stall_until if same else time.monotonic() + stall.seconds
        self._stall = stall if isinstance(stall, StallParams) else None
        try:
            write_control(self.run_dir / "control.json", state)
        except OSError as error:
            raise FaultError(f"cannot write the control file of {self.name}: {error.strerror}") from None
        self._state = state

    def set_latency_compensation(self, seconds: float) -> None:
        """Take ``seconds`` off every delay from now on (the active one is rewritten): the latency a
        client adds on its own when a request is slow, e.g. ~0.6 ms for a guest under TCG. Measure
        it once: inject 20 ms, compensation = measured added latency - 20 ms.

        Raises:
            FaultParamError: negative, or 10 ms or more (that is not a wake-up cost).
        """
        if not 0.0 <= seconds < 0.01:
            raise FaultParamError(f"latency compensation {seconds * 1000:g} ms is not between 0 and 10 ms")
        with self._lock:
            self.latency_compensation = seconds
            if self._started and not self._stopped and "latency" in self._active:
                self._check_usable()
                self._set(self._active)
            self.log.record("latency", "compensation", {"seconds": seconds})

    def _stop(self) -> None:
        if self.process is not None:
            # nbdkit ignores SIGTERM while a client is connected; the data is in the page cache already.
            self.process.kill()
        self._cleanup()

    def _cleanup(self) -> None:
        atexit.unregister(self.stop)
        if self.process is not None and self.process.is_running():
            self.process.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        socket_path = self._socket_path
        if self.process is not None and self.transport == "unix" and socket_path is not None:
            with contextlib.suppress(OSError):
                socket_path.unlink()  # a socket the caller placed outside our folder


class NbdkitInjector(NbdInjector):
    """nbdkit serving the file through our Python plugin (live delays and errors)."""

    engine = "nbdkit"

    def __init__(
        self,
        backing: str | os.PathLike[str] | None = None,
        size: int | str | None = None,
        *,
        nbdkit: str = "nbdkit",
        threads: int = 64,
        **options: Any,
    ) -> None:
        super().__init__(backing, size, **options)
        self.nbdkit = nbdkit
        self.threads = threads

    def _program(self) -> str:
        return self.nbdkit

    def _argv(self, pidfile: Path, control: Path) -> list[str]:
        argv = [self.nbdkit, "--foreground", "--exit-with-parent", "--pidfile", str(pidfile)]
        argv += ["--threads", str(self.threads)]
        if self.transport == "unix":
            argv += ["--unix", str(self._socket_path)]
        else:
            argv += ["--ipaddr", "127.0.0.1", "--port", str(self.port)]
        argv += ["python", str(PLUGIN), f"file={self.export_path}", f"control={control}"]
        if self.size is not None:
            argv.append(f"size={self.size}")
        return argv

    def _missing_program_message(self, program: str) -> str:
        return (
            f"nbdkit not found (program '{program}'): install the packages nbdkit and nbdkit-plugin-python, "
            "or use engine=python"
        )

    def _wait_ready(self, pidfile: Path) -> None:
        try:
            super()._wait_ready(pidfile)
        except InjectorStartError as error:
            if "python" in str(error) and "plugin" in str(error):
                raise InjectorStartError(
                    f"{error} (is the package nbdkit-plugin-python installed?)"
                ) from None
            raise


class PythonNbdProxy(NbdInjector):
    """Our pure-Python NBD server (:mod:`nvmechaos.faults.nbdserver`) in its own process."""

    engine = "python"

    def __init__(
        self,
        backing: str | os.PathLike[str] | None = None,
        size: int | str | None = None,
        *,
        python: str = sys.executable,
        **options: Any,
    ) -> None:
        super().__init__(backing, size, **options)
        self.python = python

    def _program(self) -> str:
        return self.python

    def _argv(self, pidfile: Path, control: Path) -> list[str]:
        argv = [self.python, "-m", "nvmechaos.faults.nbdserver", "--file", str(self.export_path)]
        argv += ["--control", str(control), "--pidfile", str(pidfile)]
        if self.size is not None:
            argv += ["--size", str(self.size)]
        if self.transport == "unix":
            argv += ["--unix", str(self._socket_path)]
        else:
            argv += ["--port", str(self.port)]
        return argv

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_LIBRARIES), env.get("PYTHONPATH", "")) if p)
        return env


ENGINES: dict[str, type[NbdInjector]] = {"nbdkit": NbdkitInjector, "python": PythonNbdProxy}


def resolve_engine(engine: InjectorEngine | str, nbdkit: str = "nbdkit") -> str:
    """``nbdkit`` or ``python``; ``auto`` is nbdkit when the program ``nbdkit`` is installed.

    Raises:
        FaultParamError: unknown engine.
    """
    chosen = _choice(engine.strip().lower() if isinstance(engine, str) else engine, InjectorEngine, "engine")
    if chosen == InjectorEngine.auto.value:
        return "nbdkit" if shutil.which(nbdkit) else "python"
    return chosen


def make_injector(
    engine: InjectorEngine | str,
    backing: str | os.PathLike[str] | None,
    size: int | str | None,
    *,
    nbdkit: str = "nbdkit",
    **options: Any,
) -> NbdInjector:
    """An injector of ``engine`` (``nbdkit``, ``python`` or ``auto``, see :func:`resolve_engine`),
    not started yet; ``nbdkit`` is the nbdkit program (used by that engine only).

    Raises:
        FaultParamError: unknown engine or invalid options.
    """
    chosen = resolve_engine(engine, nbdkit)
    if chosen == "nbdkit":
        return NbdkitInjector(backing, size, nbdkit=nbdkit, **options)
    return ENGINES[chosen](backing, size, **options)
