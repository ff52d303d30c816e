"""A QEMU machine with NVMe controllers: launch, wait until ready, shut down, power cut, restart.

Each VM has a private run folder (mode 0700, short path under the temp dir so the QMP socket path
stays below the 108-byte limit) holding the QMP socket, the per-run SSH key, known_hosts and the
backing files it created; and an output folder (the test's, when Robot drives it) holding the
serial console, QEMU's stderr, its command line and the recorded QMP events.

SSH is forwarded from 127.0.0.1 only, on a port taken by binding port 0; if another process (a
parallel pabot worker) grabbed it before QEMU did, QEMU fails to set up the forwarding and the
launch retries with a new port.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvmechaos.guest.builder import BASE_APPEND, GuestImage, GuestImageError, GuestRecipe, build_guest
from nvmechaos.process import REGISTRY, OwnedProcess, ProcessRegistry, spawn
from nvmechaos.rundir import private_run_dir, run_base
from nvmechaos.vm.errors import QemuError, SshError, VmError, VmNotReadyError, VmSpecError
from nvmechaos.vm.qemu import (
    QBOOT,
    Qemu,
    choose_accelerator,
    create_image,
    find_qemu,
    image_format,
    virtual_size,
    wanted_accelerator,
)
from nvmechaos.vm.qmp import EventLog, QmpEvent, QmpSession
from nvmechaos.vm.spec import NamespaceSpec, NbdExport, VmSpec, format_size
from nvmechaos.vm.ssh import GuestSsh, KeyPair, generate_key, load_key, wait_for_login

HOST = "127.0.0.1"
GUEST_SSH_PORT = 22
CONSOLE_NAME = "console.log"
QEMU_LOG_NAME = "qemu.log"
ARGV_NAME = "qemu-argv.txt"
EVENTS_NAME = "qmp-events.jsonl"
PORT_ATTEMPTS = 6
_FORWARD_FAILED = "Could not set up host forwarding rule"
# Prints, per namespace block device (not the hidden per-path nvmeXcYnZ): name, nsid, controller serial.
_NAMESPACE_PROBE = (
    'for b in /sys/block/nvme*n*; do [ -e "$b" ] || continue; n=${b##*/}; case "$n" in *c*) continue;; esac; '
    'echo "$n $(cat $b/nsid 2>/dev/null) $(cat $b/device/serial 2>/dev/null)"; done'
)


@dataclass(frozen=True)
class NamespaceHandle:
    """A namespace as QEMU sees it: block node names, backing store, nsid."""

    nsid: int
    node: str
    file_node: str
    size: int
    format: str
    backing: Path | None
    nbd: str | None
    device_id: str | None
    block_size: int


@dataclass(frozen=True)
class ControllerHandle:
    """An NVMe controller: its qdev id, the root port it sits on, its serial and namespaces."""

    id: str
    bus: str
    chassis: int
    slot: int
    serial: str
    namespaces: tuple[NamespaceHandle, ...]

    @property
    def single_namespace(self) -> bool:
        return len(self.namespaces) == 1

    def device_add_arguments(self) -> dict[str, Any]:
        """``device_add`` arguments that plug this controller back in.

        Namespaces of a multi-namespace controller: :meth:`namespace_add_arguments`.
        """
        arguments: dict[str, Any] = {"driver": "nvme", "id": self.id, "bus": self.bus, "serial": self.serial}
        if self.single_namespace:
            arguments["drive"] = self.namespaces[0].node
            if self.namespaces[0].block_size != 512:
                arguments["logical_block_size"] = self.namespaces[0].block_size
                arguments["physical_block_size"] = self.namespaces[0].block_size
        return arguments

    def namespace_add_arguments(self) -> list[dict[str, Any]]:
        """``device_add`` arguments of the nvme-ns devices (empty for a single-namespace controller)."""
        if self.single_namespace:
            return []
        result = []
        for ns in self.namespaces:
            arguments: dict[str, Any] = {
                "driver": "nvme-ns",
                "id": ns.device_id,
                "bus": self.id,
                "drive": ns.node,
                "nsid": ns.nsid,
            }
            if ns.block_size != 512:
                arguments["logical_block_size"] = ns.block_size
                arguments["physical_block_size"] = ns.block_size
            result.append(arguments)
        return result


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 8, limit: int = 600) -> str:
    """The last non-empty lines of a text file, joined with ' | ' (for one-line errors).

    A kernel panic line is put first even when more lines followed it (the stack dump)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    every = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    every = [line for line in every if not line.startswith("--- launch ")]
    kept = every[-lines:]
    panics = [line for line in every if "Kernel panic" in line]
    joined = " | ".join(kept)[-limit:]
    if panics and panics[-1] not in kept:
        joined = f"{panics[-1][:200]} | ... | {joined}"
    return joined


@dataclass
class Vm:
    """One VM (see the module docstring). Create it with :func:`launch_vm`."""

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
    _process: OwnedProcess | None = None
    _qmp: QmpSession | None = None
    _closed: bool = False

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

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def console_tail(self, lines: int = 8) -> str:
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

    # ----- QEMU command line ----------------------------------------------------------------------
    def argv(self) -> list[str]:
        """The QEMU command line of this VM with the current SSH port."""
        spec, guest = self.spec, self.spec.guest
        argv = [
            self.qemu.binary,
            "-name",
            f"nvmechaos-{self.name},process=nvmechaos-{self.name}",
            "-M",
            "q35",
            "-accel",
            self.accelerator,
            "-cpu",
            "max",
            "-m",
            str(spec.memory_mib),
            "-smp",
            str(spec.cpus),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-chardev",
            f"file,id=serial0,path={_esc(self.console_log)},append=on",
            "-serial",
            "chardev:serial0",
            "-chardev",
            f"socket,id=qmp0,path={_esc(self.qmp_socket)},server=on,wait=off",
            "-mon",
            "chardev=qmp0,mode=control",
            "-netdev",
            f"user,id=net0,hostfwd=tcp:{HOST}:{self.ssh_port}-:{GUEST_SSH_PORT}",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
        ]
        if guest.disk_image is not None:
            argv += [
                "-drive",
                f"file={_esc(guest.disk_image)},if=virtio,snapshot=on,format={image_format(guest.disk_image)}",
            ]
        else:
            kernel = guest.kernel or (self.image.kernel if self.image else None)
            initrd = guest.initrd if guest.kernel is not None else (self.image.initrd if self.image else None)
            if QBOOT.is_file():
                argv += ["-bios", str(QBOOT)]
            argv += ["-kernel", str(kernel)]
            if initrd is not None:
                argv += ["-initrd", str(initrd)]
            append = (
                guest.append
                if guest.append is not None
                else (self.image.append if self.image else BASE_APPEND)
            )
            argv += ["-append", f"{append} nvmechaos.authkey={self.key.kernel_argument}".strip()]
            if self.image is not None and self.image.tools_disk is not None and guest.kernel is None:
                argv += [
                    "-blockdev",
                    f"driver=file,node-name=tools-file,filename={_esc(self.image.tools_disk)},read-only=on",
                    "-blockdev",
                    "driver=raw,node-name=tools,file=tools-file,read-only=on",
                    "-device",
                    "virtio-blk-pci,drive=tools,id=tools",
                ]
        for controller in self.controllers:
            argv += [
                "-device",
                f"pcie-root-port,id={controller.bus},chassis={controller.chassis},slot={controller.slot}",
            ]
            for ns in controller.namespaces:
                if ns.nbd is not None:
                    argv += ["-blockdev", NbdExport.parse(ns.nbd).blockdev(ns.file_node)]
                else:
                    assert ns.backing is not None
                    argv += [
                        "-blockdev",
                        f"driver=file,node-name={ns.file_node},filename={_esc(ns.backing)},"
                        "cache.direct=off,aio=threads",
                    ]
                size = f",size={ns.size}" if ns.format == "raw" and ns.nbd is None else ""
                argv += ["-blockdev", f"driver={ns.format},node-name={ns.node},file={ns.file_node}{size}"]
            device = controller.device_add_arguments()
            argv += ["-device", ",".join(f"{k}={v}" for k, v in device.items())]
            for ns_device in controller.namespace_add_arguments():
                argv += ["-device", ",".join(f"{k}={v}" for k, v in ns_device.items())]
        argv += list(spec.extra_args)
        return argv

    # ----- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start QEMU and connect QMP (retrying the port when another process took it).

        Raises:
            QemuError: QEMU refused the machine or ended at start-up (its stderr quoted).
        """
        if self.is_running():
            raise VmError(f"VM '{self.name}' is already running (pid {self.pid})")
        self.launches += 1
        keep_port = self.ssh_port != 0
        for attempt in range(PORT_ATTEMPTS):
            if not keep_port or attempt > 0:
                self.ssh_port = free_port()
            self._write_known_hosts()
            with contextlib.suppress(FileNotFoundError):
                self.qmp_socket.unlink()
            argv = self.argv()
            (self.output_dir / ARGV_NAME).write_text(
                " ".join(_quote(a) for a in argv) + "\n", encoding="utf-8"
            )
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
            session = QmpSession(self.qmp_socket, self.events_log, session=self.launches)
            try:
                session.connect(timeout=30.0, alive=self.is_running)
                session.execute("query-status", timeout=30.0)
            except BaseException as error:
                session.close()
                if not isinstance(error, VmError):
                    # A keyword timeout or Ctrl-C while connecting: never leave QEMU behind.
                    if self._process is not None:
                        self._process.kill()
                    raise
                if self._process is not None and self._process.is_running():
                    self._process.stop(grace=2)
                message = _tail(self.qemu_log, 3)
                if _FORWARD_FAILED in message and attempt + 1 < PORT_ATTEMPTS:
                    continue
                raise QemuError(
                    f"QEMU of VM '{self.name}' ended at start-up: {message or 'no message'}"
                ) from None
            self._qmp = session
            self.boot_seconds = None
            return
        raise QemuError(f"QEMU of VM '{self.name}' found no free SSH port after {PORT_ATTEMPTS} attempts")

    def _write_known_hosts(self) -> None:
        if self.host_key:
            self.known_hosts.write_text(f"[{HOST}]:{self.ssh_port} {self.host_key}\n", encoding="utf-8")

    def _ended_message(self) -> str:
        code = self._process.popen.returncode if self._process is not None else None
        return (
            f"QEMU of VM '{self.name}' ended (exit code {code}) before the guest was ready; "
            f"QEMU: {_tail(self.qemu_log, 2) or '-'}; console: {self.console_tail() or '(empty)'}"
        )

    def wait_until_ready(self, timeout: float = 60.0, check_fio: bool = True) -> float:
        """Wait until SSH login works and every namespace is present; return seconds since QEMU started.

        Raises:
            VmNotReadyError: not ready within ``timeout`` (the console tail is in the message).
            VmError: QEMU ended, or (``check_fio``) the guest has no fio.
            SshError: the guest's host key is not the pinned one, or it refused our key.
        """
        deadline = time.monotonic() + timeout
        if not self.is_running():
            raise VmError(f"VM '{self.name}' is not running")
        ssh: GuestSsh | None = None
        last = "no SSH login yet"
        try:
            while True:
                if not self.is_running():
                    raise VmError(self._ended_message())
                if ssh is None:
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
                    except SshError as error:
                        if "pinned key" in str(error) or "refused:" in str(error):
                            raise
                        if not self.is_running():
                            raise VmError(self._ended_message()) from None
                        last = str(error)
                        raise VmNotReadyError(self._not_ready(timeout, last)) from None
                    if self.host_key is None and ssh.host_key:
                        self.host_key = ssh.host_key
                        self._write_known_hosts()
                missing = self._missing_namespaces(ssh)
                if not missing:
                    break
                last = f"namespaces not present: {', '.join(missing)}"
                if time.monotonic() >= deadline:
                    raise VmNotReadyError(self._not_ready(timeout, last))
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
        return self.boot_seconds

    def _not_ready(self, timeout: float, last: str) -> str:
        return (
            f"guest of VM '{self.name}' not ready within {timeout:g} s ({last}); "
            f"console: {self.console_tail() or '(empty)'}"
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
        return missing

    def ssh(self) -> GuestSsh:
        """A logged-in paramiko connection (host key checked); the caller closes it."""
        ssh = GuestSsh(HOST, self.ssh_port, self.ssh_user, self.key_file, self.host_key)
        ssh.connect()
        return ssh

    def guest_devices(self) -> dict[str, list[str]]:
        """Controller serial -> the guest's namespace block devices (``/dev/nvme0n1``...)."""
        ssh = self.ssh()
        try:
            result = ssh.run(_NAMESPACE_PROBE, timeout=15)
        finally:
            ssh.close()
        devices: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                devices.setdefault(parts[2], []).append(f"/dev/{parts[0]}")
        return devices

    @property
    def qmp(self) -> QmpSession:
        if self._qmp is None:
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
        """Wait for a QMP event (see :meth:`EventLog.wait_for`)."""
        return self.events_log.wait_for(name, match, timeout, since)

    def events(self, name: str | None = None, since: float | None = None) -> list[QmpEvent]:
        return self.events_log.events(name, since)

    def shutdown(self, timeout: float = 15.0) -> int | None:
        """Power the guest off cleanly (sync, then poweroff over SSH; ACPI power button for a user image),
        then QMP ``quit``, then SIGTERM/SIGKILL; return QEMU's exit code."""
        if not self.is_running():
            return self._finish()
        deadline = time.monotonic() + timeout
        try:
            if self.spec.guest.disk_image is not None:
                self.execute("system_powerdown", timeout=5)
            else:
                ssh = self.ssh()
                try:
                    ssh.run("sync; (sleep 0.2; poweroff -f) >/dev/null 2>&1 &", timeout=5)
                finally:
                    ssh.close()
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
        self._save_events()
        return code

    def restart(self) -> None:
        """Shut down if running, then start QEMU again on the same disks (and, if free, the same port)."""
        if self.is_running():
            self.shutdown()
        else:
            self._finish()
        self.start()

    def close(self, remove_run_dir: bool = True) -> None:
        """Stop QEMU (forced), end QMP, and remove the private run folder (created disks included)."""
        if self._closed:
            return
        self._finish()
        self._closed = True
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


def _esc(path: Path | str) -> str:
    return str(path).replace(",", ",,")


def _quote(arg: str) -> str:
    return (
        arg
        if arg and all(c.isalnum() or c in "-_=.,:/+@" for c in arg)
        else "'" + arg.replace("'", "'\\''") + "'"
    )


@dataclass(frozen=True)
class NewImage:
    """A backing file a launch creates: sparse raw or qcow2 of ``size`` bytes; ``kept`` when the user
    asked for it at a path of their own (``create``), else it lives in the VM's run folder."""

    path: Path
    format: str
    size: int
    kept: bool


def _namespaces(spec: VmSpec, run_dir: Path) -> tuple[ControllerHandle, ...]:
    """The controllers of ``spec`` with their namespaces, creating the backing files they need."""
    controllers, images = plan_namespaces(spec, run_dir)
    for image in images:
        create_image(image.path, image.format, image.size)
    return controllers


def plan_namespaces(spec: VmSpec, run_dir: Path) -> tuple[tuple[ControllerHandle, ...], list[NewImage]]:
    """The controllers of ``spec`` and the backing files to create for them, checked (existing files
    readable and big enough, free space for new ones) without creating anything; ``run_dir`` need
    not exist yet.

    Raises:
        VmSpecError: naming the namespace and the file at fault.
    """
    controllers = []
    images: list[NewImage] = []
    for index, controller in enumerate(spec.controllers):
        serial = controller.serial or f"NVMECHAOS{index:04d}"
        handles = []
        for ns_index, ns in enumerate(controller.namespaces):
            nsid = ns_index + 1
            node = f"nvme{index}n{nsid}"
            handle, image = _namespace(
                ns,
                node,
                nsid,
                run_dir,
                with_device=len(controller.namespaces) > 1,
                controller=f"nvme{index}",
            )
            handles.append(handle)
            if image is not None:
                if any(image.path == other.path for other in images):
                    raise VmSpecError(f"backing file '{image.path}' is given to two namespaces")
                images.append(image)
        controllers.append(
            ControllerHandle(
                id=f"nvme{index}",
                bus=f"rp{index}",
                chassis=index + 1,
                slot=index + 1,
                serial=serial,
                namespaces=tuple(handles),
            )
        )
    serials = [c.serial for c in controllers]
    if len(set(serials)) != len(serials):
        raise VmSpecError(f"NVMe serials must differ between controllers: {', '.join(serials)}")
    _check_free_space(images)
    return tuple(controllers), images


def _existing_folder(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (a run folder is created only after the checks)."""
    while not path.is_dir() and path.parent != path:
        path = path.parent
    return path


def _check_free_space(images: list[NewImage]) -> None:
    """Raises VmSpecError when the new images do not fit in the free space of their file systems."""
    used: dict[int, int] = {}
    for image in images:
        folder = _existing_folder(image.path.parent)
        try:
            stats = os.statvfs(folder)
            device = folder.stat().st_dev
        except OSError as error:
            raise VmSpecError(f"cannot create backing file '{image.path}': {error.strerror}") from None
        free = stats.f_bavail * stats.f_frsize - used.get(device, 0)
        # qcow2 starts small; a sparse raw file takes no space until written, but may be filled.
        if image.size > free:
            raise VmSpecError(
                f"namespace size {image.size} bytes does not fit: only {max(0, free)} bytes free "
                f"in '{folder}'"
            )
        used[device] = used.get(device, 0) + image.size


def _namespace(
    ns: NamespaceSpec, node: str, nsid: int, run_dir: Path, *, with_device: bool, controller: str
) -> tuple[NamespaceHandle, NewImage | None]:
    device_id = f"{controller}-ns{nsid}" if with_device else None
    where = f"namespace {nsid} of {controller}"
    if ns.nbd is not None:
        if ns.size is not None:
            raise VmSpecError(f"{where}: an NBD namespace takes its size from the export; give no size")
        handle = NamespaceHandle(
            nsid, node, f"{node}-nbd", 0, ns.format or "raw", None, ns.nbd, device_id, ns.block_size
        )
        return handle, None
    backing = ns.backing if ns.backing is not None else run_dir / f"{node}.{ns.format or 'raw'}"
    image: NewImage | None = None
    if ns.backing is not None and (backing.exists() or not ns.create):
        if not backing.exists():
            raise VmSpecError(
                f"{where}: backing file '{backing}' does not exist (give an existing raw or qcow2 file, "
                "or create_backing=True to create it)"
            )
        if not backing.is_file():
            raise VmSpecError(f"{where}: backing '{backing}' is not a file")
        if not os.access(backing, os.R_OK | os.W_OK):
            raise VmSpecError(f"{where}: backing file '{backing}' is not readable and writable")
        try:
            fmt = ns.format or image_format(backing)
        except OSError as error:
            raise VmSpecError(f"{where}: cannot read backing file '{backing}': {error.strerror}") from None
        available = virtual_size(backing, fmt)
        size = ns.size if ns.size is not None else available
        if size > available:
            raise VmSpecError(
                f"{where}: size {format_size(size)} does not fit in backing file '{backing}' "
                f"({format_size(available)})"
            )
        if fmt == "qcow2" and ns.size is not None and ns.size != available:
            raise VmSpecError(
                f"{where}: size {format_size(size)} differs from qcow2 image '{backing}' "
                f"({format_size(available)}); give no size or the image's size"
            )
        if size % ns.block_size:
            raise VmSpecError(
                f"{where}: size {size} of '{backing}' is not a multiple of {ns.block_size} bytes"
            )
    else:
        if ns.size is None:
            raise VmSpecError(f"{where}: backing file '{backing}' does not exist and no size was given")
        if ns.backing is not None:
            folder = backing.parent
            if not folder.is_dir():
                raise VmSpecError(
                    f"{where}: cannot create backing file '{backing}': folder '{folder}' does not exist"
                )
            if not os.access(folder, os.W_OK | os.X_OK):
                raise VmSpecError(
                    f"{where}: cannot create backing file '{backing}': folder '{folder}' is not writable"
                )
        fmt = ns.format or "raw"
        size = ns.size
        if fmt == "qcow2" and shutil.which("qemu-img") is None:
            raise VmSpecError(
                "qemu-img is not installed (apt-get install qemu-utils): needed for qcow2 namespaces"
            )
        image = NewImage(backing, fmt, size, kept=ns.backing is not None)
    handle = NamespaceHandle(nsid, node, f"{node}-file", size, fmt, backing, None, device_id, ns.block_size)
    return handle, image


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
) -> Vm:
    """Check everything, start QEMU, and return the running :class:`Vm` (not yet ready: see
    :meth:`Vm.wait_until_ready`).

    Raises:
        QemuError: QEMU missing, too old, or it refused the machine.
        VmSpecError: a kernel/initrd/image is missing, or a namespace size does not fit.
        GuestImageError (as VmError): the built-in guest cannot be built.
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
        controllers, images = plan_namespaces(spec, run_dir)
        for new_image in images:
            create_image(new_image.path, new_image.format, new_image.size)
            if new_image.kept:
                created.append(new_image.path)
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
