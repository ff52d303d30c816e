"""A QEMU machine with NVMe controllers: launch, wait until ready, shut down, power cut, restart.

Each VM has a private run folder (mode 0700, short path under the temp dir so the QMP socket path
stays below the 108-byte limit) holding the QMP socket, the per-run SSH key, known_hosts and the
backing files it created; and an output folder (the test's, when Robot drives it) holding the
serial console, QEMU's stderr, its command line and the recorded QMP events.

Its life cycle is one explicit :class:`RunState`: new → starting → running → ready, then stopped
(shut down, power cut, or QEMU ended by itself; a restart boots it again) and finally closed (run
folder removed). What it is built from lives apart: the devices in :mod:`nvmechaos.vm.devices`,
the command line in :mod:`nvmechaos.vm.argv`. What is left here (some 680 lines) is that one state
machine over one QEMU process and its QMP session, plus :func:`launch_vm` that checks everything
before creating it: split further, the run state would be spread over several files again.

SSH is forwarded from 127.0.0.1 only, on a port taken by binding port 0; if another process (a
parallel pabot worker) grabbed it before QEMU did, QEMU fails to set up the forwarding and the
launch retries with a new port.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from nvmechaos.files import log_tail
from nvmechaos.guest.builder import GuestImage, GuestImageError, GuestRecipe, build_guest
from nvmechaos.process import REGISTRY, OwnedProcess, ProcessRegistry, spawn
from nvmechaos.rundir import private_run_dir, run_base
from nvmechaos.timeline import Channel, Timeline
from nvmechaos.units import ArgumentError, require
from nvmechaos.vm.argv import HOST, command_line, qemu_argv
from nvmechaos.vm.devices import (
    ROUND_ROBIN_COMMAND,
    ControllerHandle,
    create_namespaces,
    parse_live_paths,
    plan_namespaces,
)
from nvmechaos.vm.errors import (
    HostKeyMismatchError,
    QemuError,
    SshError,
    SshRefusedError,
    VmError,
    VmNotReadyError,
)
from nvmechaos.vm.qemu import Qemu, choose_accelerator, find_qemu, wanted_accelerator
from nvmechaos.vm.qmp import EventLog, QmpEvent, QmpSession
from nvmechaos.vm.spec import VmSpec, format_size
from nvmechaos.vm.ssh import GuestSsh, KeyPair, fingerprint, generate_key, load_key, wait_for_login

CONSOLE_NAME = "console.log"
QEMU_LOG_NAME = "qemu.log"
ARGV_NAME = "qemu-argv.txt"
EVENTS_NAME = "qmp-events.jsonl"
PORT_ATTEMPTS = 6
# What QEMU writes to its log when another process took the SSH port first: retry with another.
_FORWARD_FAILED = "Could not set up host forwarding rule"
# Prints, per namespace block device (not the hidden per-path nvmeXcYnZ): name, nsid, controller serial.
_NAMESPACE_PROBE = (
    'for b in /sys/block/nvme*n*; do [ -e "$b" ] || continue; n=${b##*/}; case "$n" in *c*) continue;; esac; '
    'echo "$n $(cat $b/nsid 2>/dev/null) $(cat $b/device/serial 2>/dev/null)"; done'
)
#: The source prefix of a VM's QMP faults on the run timeline (``qmp:<vm name>``).
FAULT_SOURCE_PREFIX = "qmp"
NOT_A_VM = "a VM (use the handle `Launch NVMe VM` returned)"


class RunState(Enum):
    """Where a VM is in its life cycle."""

    NEW = "new"  # its files are made; QEMU has not started yet
    STARTING = "starting"  # QEMU started, QMP not connected yet
    RUNNING = "running"  # QEMU runs and QMP is connected; the guest may still be booting
    READY = "ready"  # the guest took an SSH login and shows every namespace
    STOPPED = "stopped"  # QEMU ended (shut down, power cut, or by itself); a restart boots it again
    CLOSED = "closed"  # stopped for good, its run folder removed


_LIVE = (RunState.STARTING, RunState.RUNNING, RunState.READY)


def fault_channel(vm_name: str, timeline: Timeline | None = None) -> Channel:
    """The channel a VM's QMP faults are recorded on (source ``qmp:<vm name>``)."""
    return Channel(f"{FAULT_SOURCE_PREFIX}:{vm_name}", timeline)


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def positive_seconds(seconds: float, name: str = "timeout") -> float:
    """``seconds`` when above zero.

    Raises:
        ArgumentError: zero or negative (``timeout '-1' is not positive``).
    """
    if not seconds > 0:
        raise ArgumentError(f"{name} '{seconds:g}' is not positive")
    return seconds


def _tail(path: Path, lines: int = 8, limit: int = 600) -> str:
    """The last non-empty lines of a text file, joined with ' | ' (for one-line errors).

    A kernel panic line is put first even when more lines followed it (the stack dump)."""
    every = log_tail(path, skip_prefix="--- launch ")
    kept = every[-lines:]
    panics = [line for line in every if "Kernel panic" in line]
    joined = " | ".join(kept)[-limit:]
    if panics and panics[-1] not in kept:
        joined = f"{panics[-1][:200]} | ... | {joined}"
    return joined


@dataclass
class Vm:
    """One VM (see the module docstring). Create it with :func:`launch_vm`.

    ``faults`` is the VM's channel of the run timeline: its QMP faults (hot-plug, throttling) are
    recorded there (``timeline`` at creation; a timeline of its own when none is given).
    """

    spec: VmSpec
    qemu: Qemu
    run_dir: Path
    output_dir: Path
    key: KeyPair
    image: GuestImage | None
    controllers: tuple[ControllerHandle, ...]
    scope: str = ""
    registry: ProcessRegistry = REGISTRY
    accelerator: str = "tcg"
    accelerator_reason: str = ""
    ssh_port: int = 0
    host_key: str | None = None
    boot_seconds: float | None = None
    started_monotonic: float = 0.0
    started_wall: float = 0.0
    launches: int = 0
    events_log: EventLog = field(default_factory=EventLog)
    timeline: InitVar[Timeline | None] = None
    faults: Channel = field(init=False, repr=False)
    _state: RunState = RunState.NEW
    _process: OwnedProcess | None = None
    _qmp: QmpSession | None = None

    def __post_init__(self, timeline: Timeline | None) -> None:
        self.faults = fault_channel(self.spec.name, timeline)

    # ----- paths and properties -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def host(self) -> str:
        return HOST

    @property
    def ssh_user(self) -> str:
        return self.spec.guest.ssh_user

    @property
    def key_file(self) -> Path:
        return self.key.private

    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def console_log(self) -> Path:
        return self.output_dir / CONSOLE_NAME

    @property
    def qemu_log(self) -> Path:
        return self.output_dir / QEMU_LOG_NAME

    @property
    def known_hosts(self) -> Path:
        return self.run_dir / "known_hosts"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def device_ids(self) -> list[str]:
        return [c.id for c in self.controllers]

    @property
    def state(self) -> RunState:
        """The run state; a QEMU that ended by itself (crash, guest poweroff) reads as stopped."""
        if self._state in _LIVE and not self.is_running():
            return RunState.STOPPED
        return self._state

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def console_tail(self, lines: int = 8) -> str:
        """The serial console's last ``lines`` (1 or more) lines, ``|``-separated.

        Raises:
            ArgumentError: ``lines`` below 1.
        """
        if lines < 1:
            raise ArgumentError(f"lines '{lines}' is not 1 or more")
        return _tail(self.console_log, lines)

    def describe(self) -> dict[str, Any]:
        """A summary for logs: ports, paths, devices, accelerator."""
        return {
            "name": self.name,
            "pid": self.pid,
            "accelerator": self.accelerator,
            "ssh": f"{HOST}:{self.ssh_port}",
            "qmp_socket": str(self.qmp_socket),
            "console": str(self.console_log),
            "key_file": str(self.key_file),
            "memory_mib": self.spec.memory_mib,
            "cpus": self.spec.cpus,
            "controllers": [
                {
                    "id": c.id,
                    "bus": c.bus,
                    "serial": c.serial,
                    "namespaces": [
                        {
                            "nsid": n.nsid,
                            "node": n.node,
                            "size": format_size(n.size),
                            "format": n.format,
                            "backing": str(n.backing) if n.backing else n.nbd,
                        }
                        for n in c.namespaces
                    ],
                }
                for c in self.controllers
            ],
        }

    def argv(self) -> list[str]:
        """The QEMU command line of this VM with the current SSH port."""
        return qemu_argv(
            self.qemu,
            self.spec,
            self.controllers,
            accelerator=self.accelerator,
            ssh_port=self.ssh_port,
            console_log=self.console_log,
            qmp_socket=self.qmp_socket,
            key=self.key,
            image=self.image,
        )

    # ----- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start QEMU and connect QMP (retrying the port when another process took it).

        Raises:
            VmError: the VM runs already, or it was closed.
            QemuError: QEMU refused the machine or ended at start-up (its stderr quoted).
        """
        if self._state is RunState.CLOSED:
            raise VmError(f"VM '{self.name}' is closed (its run folder is gone): launch a new one")
        if self.is_running():
            raise VmError(f"VM '{self.name}' is already running (pid {self.pid})")
        self.launches += 1
        keep_port = self.ssh_port != 0
        for attempt in range(PORT_ATTEMPTS):
            if not keep_port or attempt > 0:
                self.ssh_port = free_port()
            self._spawn(attempt)
            session = QmpSession(self.qmp_socket, self.events_log, session=self.launches)
            try:
                session.connect(timeout=30.0, alive=self.is_running)
                session.execute("query-status", timeout=30.0)
            except VmError:
                session.close()
                if self._process is not None and self._process.is_running():
                    self._process.stop(grace=2)
                self._state = RunState.STOPPED
                message = _tail(self.qemu_log, 3)
                if _FORWARD_FAILED in message and attempt + 1 < PORT_ATTEMPTS:
                    continue
                raise QemuError(
                    f"QEMU of VM '{self.name}' ended at start-up: {message or 'no message'}"
                ) from None
            except BaseException:
                # A keyword timeout or Ctrl-C while connecting: never leave QEMU behind.
                session.close()
                if self._process is not None:
                    self._process.kill()
                self._state = RunState.STOPPED
                raise
            self._qmp = session
            self._state = RunState.RUNNING
            self.boot_seconds = None
            return
        raise QemuError(f"QEMU of VM '{self.name}' found no free SSH port after {PORT_ATTEMPTS} attempts")

    def _spawn(self, attempt: int) -> None:
        """Start QEMU once, on the current SSH port (state: starting)."""
        self._write_known_hosts()
        with contextlib.suppress(FileNotFoundError):
            self.qmp_socket.unlink()
        argv = self.argv()
        (self.output_dir / ARGV_NAME).write_text(command_line(argv) + "\n", encoding="utf-8")
        with open(self.qemu_log, "ab") as log:
            log.write(
                f"--- launch {self.launches} attempt {attempt + 1} port {self.ssh_port} "
                f"accel {self.accelerator} ({self.accelerator_reason})\n".encode()
            )
            log.flush()
            self.started_monotonic = time.monotonic()
            self.started_wall = time.time()
            try:
                self._process = spawn(
                    f"qemu {self.name}",
                    argv,
                    scope=self.scope,
                    cwd=self.run_dir,
                    stdout=log,
                    stderr=log,
                    registry=self.registry,
                )
            except OSError as error:
                raise QemuError(f"cannot start QEMU '{argv[0]}': {error.strerror}") from None
        self._state = RunState.STARTING

    def _write_known_hosts(self) -> None:
        if self.host_key:
            self.known_hosts.write_text(f"[{HOST}]:{self.ssh_port} {self.host_key}\n", encoding="utf-8")

    def _ended_message(self) -> str:
        code = self._process.popen.returncode if self._process is not None else None
        return (
            f"QEMU of VM '{self.name}' ended (exit code {code}) before the guest was ready; "
            f"QEMU: {_tail(self.qemu_log, 2) or '-'}; console: {_tail(self.console_log) or '(empty)'}"
        )

    def wait_until_ready(self, timeout: float = 60.0, check_fio: bool = True) -> float:
        """Wait until SSH login works and every namespace is present; return seconds since QEMU started.

        Raises:
            ArgumentError: ``timeout`` is not above zero.
            VmNotReadyError: not ready within ``timeout`` (the console tail is in the message).
            VmError: QEMU ended, or (``check_fio``) the guest has no fio.
            SshRefusedError: the guest's host key is not the pinned one, or it refused our key.
        """
        positive_seconds(timeout)
        deadline = time.monotonic() + timeout
        if not self.is_running():
            raise VmError(f"VM '{self.name}' is not running")
        ssh: GuestSsh | None = None
        try:
            while True:
                if not self.is_running():
                    raise VmError(self._ended_message())
                if ssh is None:
                    ssh = self._login(timeout, deadline)
                missing = self._missing_namespaces(ssh)
                if not missing:
                    break
                if time.monotonic() >= deadline:
                    raise VmNotReadyError(
                        self._not_ready(timeout, f"namespaces not present: {', '.join(missing)}")
                    )
                time.sleep(0.1)
            if check_fio:
                result = ssh.run('f=$(command -v fio) && [ -x "$f" ]', timeout=15)
                if result.exit_code != 0:
                    raise VmError(
                        f"fio is missing in the guest of VM '{self.name}': install fio in the image "
                        "(the built-in guest has it)"
                    )
        finally:
            if ssh is not None:
                ssh.close()
        self.boot_seconds = time.monotonic() - self.started_monotonic
        self._state = RunState.READY
        return self.boot_seconds

    def _login(self, timeout: float, deadline: float) -> GuestSsh:
        """The first SSH login of a boot; pins the host key first seen when none was pinned."""
        try:
            ssh = wait_for_login(
                HOST,
                self.ssh_port,
                self.ssh_user,
                self.key_file,
                self.host_key,
                deadline=deadline,
                alive=self.is_running,
            )
        except SshRefusedError:
            raise
        except SshError as error:
            if not self.is_running():
                raise VmError(self._ended_message()) from None
            raise VmNotReadyError(self._not_ready(timeout, str(error))) from None
        if self.host_key is None and ssh.host_key:
            self.host_key = ssh.host_key
            self._write_known_hosts()
        return ssh

    def _not_ready(self, timeout: float, last: str) -> str:
        return (
            f"guest of VM '{self.name}' not ready within {timeout:g} s ({last}); "
            f"console: {_tail(self.console_log) or '(empty)'}"
        )

    def _missing_namespaces(self, ssh: GuestSsh) -> list[str]:
        result = ssh.run(_NAMESPACE_PROBE, timeout=15)
        present: dict[str, set[int]] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit():
                present.setdefault(parts[2], set()).add(int(parts[1]))
        missing = []
        for controller in self.controllers:
            have = present.get(controller.serial, set())
            missing += [
                f"{controller.id} ({controller.serial}) nsid {ns.nsid}"
                for ns in controller.namespaces
                if ns.nsid not in have
            ]
        for controller in self.controllers:
            if controller.subsystem is not None and controller.first_path and not missing:
                live = parse_live_paths(ssh.run(controller.live_paths_probe(), timeout=15).stdout) or 0
                if live < len(controller.paths):
                    missing.append(
                        f"{controller.id} ({controller.serial}): {live} of {len(controller.paths)} paths"
                    )
                else:
                    ssh.run(ROUND_ROBIN_COMMAND, timeout=15)
        return missing

    def check_host_key(self, seen: str) -> None:
        """Check a host key another SSH client saw (``TYPE BASE64``) against the pinned one.

        Raises:
            VmError: no key is pinned yet (the guest was never ready).
            HostKeyMismatchError: ``seen`` is another key.
        """
        if self.host_key is None:
            raise VmError(f"VM '{self.name}' has no pinned host key yet (call Wait Until VM Is Ready first)")
        if " ".join(seen.split()[:2]) != " ".join(self.host_key.split()[:2]):
            raise HostKeyMismatchError(
                f"SSH host key {fingerprint(seen)} is not the key pinned for VM '{self.name}' "
                f"({fingerprint(self.host_key)})"
            )

    def ssh(self) -> GuestSsh:
        """A logged-in paramiko connection (host key checked); the caller closes it."""
        ssh = GuestSsh(HOST, self.ssh_port, self.ssh_user, self.key_file, self.host_key)
        ssh.connect()
        return ssh

    def guest_devices(self) -> dict[str, list[str]]:
        """Controller serial -> the guest's namespace block devices (``/dev/nvme0n1``...)."""
        with self.ssh() as ssh:
            result = ssh.run(_NAMESPACE_PROBE, timeout=15)
        devices: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                devices.setdefault(parts[2], []).append(f"/dev/{parts[0]}")
        return devices

    @property
    def qmp(self) -> QmpSession:
        if self._qmp is None or self.state not in (RunState.RUNNING, RunState.READY):
            raise VmError(f"VM '{self.name}' has no QMP session (not running)")
        return self._qmp

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """Run a QMP command (see :meth:`QmpSession.execute`)."""
        return self.qmp.execute(command, arguments, timeout)

    def wait_for_event(
        self,
        name: str,
        match: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        since: float | None = None,
    ) -> QmpEvent:
        """Wait for a QMP event (see :meth:`EventLog.wait_for`).

        Raises:
            ArgumentError: ``timeout`` is not above zero.
            QmpError: no such event in time.
        """
        return self.events_log.wait_for(name, match, positive_seconds(timeout), since)

    def events(self, name: str | None = None, since: float | None = None) -> list[QmpEvent]:
        return self.events_log.events(name, since)

    def shutdown(self, timeout: float = 15.0) -> int | None:
        """Power the guest off cleanly (sync, then poweroff over SSH; ACPI power button for a user image),
        then QMP ``quit``, then SIGTERM/SIGKILL; return QEMU's exit code.

        Raises:
            ArgumentError: ``timeout`` is not above zero.
        """
        positive_seconds(timeout)
        if not self.is_running():
            return self._finish()
        deadline = time.monotonic() + timeout
        try:
            if self.spec.guest.disk_image is not None:
                self.execute("system_powerdown", timeout=5)
            else:
                with self.ssh() as ssh:
                    ssh.run("sync; (sleep 0.2; poweroff -f) >/dev/null 2>&1 &", timeout=5)
        except VmError:
            pass
        assert self._process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.popen.wait(timeout=max(0.5, deadline - time.monotonic()))
        if self.is_running():
            with contextlib.suppress(VmError):
                self.execute("quit", timeout=3)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.popen.wait(timeout=3)
        return self._finish()

    def power_cut(self) -> int | None:
        """SIGKILL QEMU at once (no flush, no goodbye); return its exit code."""
        if self._process is not None:
            self._process.kill()
        return self._finish()

    def _finish(self) -> int | None:
        """Stop QEMU (if still running) and the QMP session; return QEMU's exit code."""
        code: int | None = None
        if self._process is not None:
            code = self._process.stop(grace=3)
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._state is not RunState.CLOSED:
            self._state = RunState.STOPPED
        self._save_events()
        return code

    def restart(self) -> None:
        """Shut down if running, then start QEMU again on the same disks (and, if free, the same port).

        Raises:
            VmError: the VM was closed.
            QemuError: as :meth:`start`.
        """
        if self.is_running():
            self.shutdown()
        else:
            self._finish()
        self.start()

    def close(self, remove_run_dir: bool = True) -> None:
        """Stop QEMU (forced), end QMP, and remove the private run folder (created disks included)."""
        if self._state is RunState.CLOSED:
            return
        self._finish()
        self._state = RunState.CLOSED
        if remove_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _save_events(self) -> None:
        events = self.events_log.events()
        if not events:
            return
        with (
            contextlib.suppress(OSError),
            open(self.output_dir / EVENTS_NAME, "w", encoding="utf-8") as handle,
        ):
            for event in events:
                handle.write(json.dumps(event.as_dict(), default=str) + "\n")


def as_vm(value: object) -> Vm:
    """``value`` when it is a VM handle.

    Raises:
        ArgumentError: anything else (a name, a string, another library's handle), in one line
            starting with the value: ``'vm-1' is not a VM (use the handle `Launch NVMe VM` returned)``.
    """
    return require(value, Vm, "", NOT_A_VM)


def make_run_dir(name: str) -> Path:
    """A new private (0700) folder for one VM, on a short path (unix socket paths: 107 bytes at most)."""
    return private_run_dir(name)


def launch_vm(
    spec: VmSpec,
    output_dir: Path | None = None,
    *,
    scope: str = "",
    cache_dir: Path | None = None,
    registry: ProcessRegistry = REGISTRY,
    qemu_binary: str | None = None,
    timeline: Timeline | None = None,
) -> Vm:
    """Check everything, start QEMU, and return the running :class:`Vm` (not yet ready: see
    :meth:`Vm.wait_until_ready`). Its QMP faults are recorded on ``timeline`` (see :attr:`Vm.faults`).

    Raises:
        QemuError: QEMU missing, too old, or it refused the machine.
        VmSpecError: a kernel/initrd/image is missing, or a namespace size does not fit.
        VmError: the built-in guest cannot be built.
    """
    guest = spec.guest
    # Every check first: nothing is created (folder, file, process) for a launch that is refused.
    guest.check()
    wanted = wanted_accelerator(spec.accel)
    plan_namespaces(spec, run_base() / "nvmechaos-new")
    key_pair = load_key(guest.ssh_key) if guest.ssh_key is not None else None
    qemu = find_qemu(qemu_binary)
    image: GuestImage | None = None
    if guest.builtin:
        try:
            image = build_guest(GuestRecipe(), cache_dir=cache_dir)
        except GuestImageError as error:
            raise VmError(f"cannot build the built-in guest: {error}") from None
    run_dir = make_run_dir(spec.name)
    vm: Vm | None = None
    created: list[Path] = []
    try:
        out = output_dir if output_dir is not None else run_dir
        out.mkdir(parents=True, exist_ok=True)
        controllers = create_namespaces(spec, run_dir, created)
        key = key_pair if key_pair is not None else generate_key(run_dir / "id_ed25519")
        kernel = guest.kernel or (image.kernel if image else None)
        accel, reason = choose_accelerator(qemu, wanted, kernel)
        vm = Vm(
            spec=spec,
            qemu=qemu,
            run_dir=run_dir,
            output_dir=out,
            key=key,
            image=image,
            controllers=controllers,
            scope=scope,
            registry=registry,
            accelerator=accel,
            accelerator_reason=reason,
            host_key=guest.host_key or (image.host_key if image else None),
            timeline=timeline,
        )
        vm.start()
    except BaseException:
        if vm is not None:
            vm.close()
        shutil.rmtree(run_dir, ignore_errors=True)
        for path in created:  # a backing file this failed launch created at the user's path
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return vm


__all__ = [
    "FAULT_SOURCE_PREFIX",
    "RunState",
    "Vm",
    "as_vm",
    "fault_channel",
    "free_port",
    "launch_vm",
    "positive_seconds",
]
