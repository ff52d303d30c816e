"""Keywords that launch, wait for, stop, power-cut and restart VMs."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword
from robot.libraries.BuiltIn import BuiltIn

from nvmechaos.guest import GuestRecipe, build_guest
from nvmechaos.units import converted_flag
from nvmechaos.vm import Accel, GuestSpec, Vm, VmSpec, as_vm, launch_vm
from nvmechaos.vm.errors import VmSpecError
from nvmechaos.vm.faults import follow_drive_warnings
from nvmechaos.vm.machine import positive_seconds
from nvmechaos.vm.spec import SimpleLayout, parse_memory, storage_from
from nvmechaos.vm.ssh import fingerprint
from nvmechaos_robot import OWNER, fail
from VmLibrary.context import LIBRARY, VmContext


def io_timeout_seconds(value: timedelta | None) -> int | None:
    """``io_timeout`` as whole seconds for the kernel option (None: not given).

    Raises:
        VmSpecError: not a whole number of seconds.
    """
    if value is None:
        return None
    seconds = value.total_seconds()
    if seconds != int(seconds):
        raise VmSpecError(
            f"io_timeout {seconds:g} s is not a whole number of seconds (the kernel takes seconds)"
        )
    return int(seconds)


class LifecycleKeywords:
    """Launch, wait, shut down, power cut, restart."""

    def __init__(self, context: VmContext) -> None:
        self.ctx = context

    def _ready_timeout(self, timeout: timedelta | None) -> float:
        """``timeout`` in seconds, checked; the library's ``boot_timeout`` when not given."""
        return self.ctx.boot_timeout if timeout is None else positive_seconds(timeout.total_seconds())

    @keyword("Launch NVMe VM")
    def launch_nvme_vm(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        name: str = "vm",
        size: str | None = None,
        namespaces: int = 1,
        controllers: int = 1,
        layout: str | list[Any] | dict[str, Any] | None = None,
        backing: str | None = None,
        format: str | None = None,  # the QEMU word users know
        nbd: str | None = None,
        serials: list[str] | None = None,
        memory: str | None = None,
        cpus: int | None = None,
        kernel: str | None = None,
        initrd: str | None = None,
        append: str | None = None,
        disk_image: str | None = None,
        ssh_user: str = "root",
        ssh_key: str | None = None,
        host_key: str | None = None,
        accel: Accel = Accel.auto,
        extra_args: list[str] | None = None,
        wait: bool = True,
        timeout: timedelta | None = None,
        check_fio: bool = True,
        create_backing: bool = False,
        paths: int = 1,
        io_timeout: timedelta | None = None,
    ) -> Vm:
        """Launch a QEMU VM with NVMe controllers and return its handle (ready, unless ``wait=False``).

        The simple form: ``controllers`` controllers, each with ``namespaces`` namespaces of ``size``
        (default 1G; sparse raw files in the VM's private folder, deleted with it). One namespace
        can instead use an existing ``backing`` file (raw or qcow2, ``format`` detected; its size
        unless ``size`` is given) or an ``nbd`` export (``nbd://127.0.0.1:10809/name`` or
        ``nbd+unix:///name?socket=/path``; its size comes from the export). A ``backing`` file that
        does not exist is an error, unless ``create_backing=True``: then it is created (sparse raw,
        or qcow2 with ``format=qcow2``, of ``size``) in a folder that exists, and kept after the VM
        (for a disk that outlives it); a launch that fails removes it again.

        ``layout`` describes anything else: a list with one entry per controller, each a list of
        namespaces (a size, or a dictionary with size/backing/format/nbd/block_size/create) or a
        dictionary with ``serial``, ``paths`` and ``namespaces`` (a JSON string works too); give the
        namespaces' options inside it, not beside it. ``serials`` names the controllers' serial
        numbers.

        ``paths=2`` makes each controller a dual-port drive (up to 4 ports): an NVMe subsystem with
        one controller per path, ``nvme0`` and ``nvme0p1`` (then ``nvme0p2``...), each on its own
        PCIe root port, sharing the namespaces. The guest's native NVMe multipath shows one
        ``/dev/nvmeXnY`` per namespace and spreads I/O over the live paths (I/O policy
        ``round-robin``, set when the guest is ready); unplug one path with `Hot Unplug NVMe
        Device` and I/O goes on over the other.

        ``io_timeout`` (a Robot time, whole seconds, e.g. ``5s``) sets the guest NVMe driver's
        command timeout (``nvme_core.io_timeout``, Linux default 30 s): an I/O that takes longer is
        aborted and the controller reset. Built-in guest or ``kernel`` only.

        ``memory`` is the guest's RAM: MiB as a bare number (``2048``, as QEMU's ``-m``) or a size
        with a unit (``2G``, ``512M``); at least 128 MiB; default the library's ``memory`` (1024).
        ``cpus`` is 1 to 64 (default the library's ``cpus``, 1).

        The guest is the built-in one unless ``kernel`` (+ ``initrd``, ``append``) or ``disk_image``
        is given; for a disk image pass ``ssh_key`` (the private key ``ssh_user`` accepts) and ideally
        ``host_key`` (``TYPE BASE64``) to pin. ``accel`` is auto (``NVMECHAOS_ACCEL`` if set, else
        probe KVM, else TCG), kvm or tcg; the log says which ran and why KVM was not used.
        ``timeout`` (a Robot time: ``60s``, ``2 min``; default the library's ``boot_timeout``) is
        how long to wait until the guest is ready.

        Every argument is checked before anything is created or started: a bad one fails in one
        line and leaves no folder, file or process behind.

        The handle has ``name``, ``ssh_port``, ``host``, ``ssh_user``, ``key_file``, ``known_hosts``,
        ``qmp_socket``, ``console_log``, ``device_ids`` (``nvme0``...), ``controllers`` (each with
        ``id``, ``bus``, ``serial``, ``namespaces`` with ``node`` and ``backing``), ``accelerator``,
        ``accelerator_reason``, ``boot_seconds``, ``state``.

        Examples:
        | ${vm} =    Launch NVMe VM
        | ${vm} =    Launch NVMe VM    size=2G    namespaces=2    controllers=2    memory=2G
        | ${vm} =    Launch NVMe VM    backing=${CURDIR}/disk.qcow2    wait=False
        | ${vm} =    Launch NVMe VM    backing=${TEMPDIR}/keep.raw    size=256M    create_backing=True
        | ${vm} =    Launch NVMe VM    layout=[{"serial": "A1", "namespaces": ["1G", "512M"]}, ["256M"]]
        | ${vm} =    Launch NVMe VM    size=256M    paths=2    io_timeout=5s
        | Log    ${vm.ssh_port} ${vm.qmp_socket} ${vm.device_ids}
        """
        wait = converted_flag(wait, "wait")
        check_fio = converted_flag(check_fio, "check_fio")
        create_backing = converted_flag(create_backing, "create_backing")
        ready_timeout = self._ready_timeout(timeout)
        guest = GuestSpec(
            kernel=Path(kernel) if kernel else None,
            initrd=Path(initrd) if initrd else None,
            append=append,
            disk_image=Path(disk_image) if disk_image else None,
            ssh_user=ssh_user,
            ssh_key=Path(ssh_key) if ssh_key else None,
            host_key=host_key,
            io_timeout=io_timeout_seconds(io_timeout),
        )
        storage = storage_from(
            layout,
            SimpleLayout(size, namespaces, controllers, backing, format, nbd, create_backing, paths),
            serials,
        )
        spec = VmSpec(
            name=name,
            memory_mib=parse_memory(memory) if memory not in (None, "") else self.ctx.memory,
            cpus=cpus if cpus is not None else self.ctx.cpus,
            controllers=storage,
            guest=guest,
            accel=accel,
            extra_args=tuple(extra_args or ()),
        )
        vm = launch_vm(
            spec,
            self.ctx.vm_output_dir(name),
            scope=self.ctx.scope,
            cache_dir=self.ctx.cache_dir,
            timeline=self.ctx.timeline,
        )
        self.ctx.own(vm, f"VM '{vm.name}'", vm.close, vm.is_running)
        self._log_launch(vm)
        links = follow_drive_warnings(vm, vm.faults)
        if links:
            logger.info(f"Critical warnings follow the emulated drives: {'; '.join(links)}")
        if wait:
            self._wait_ready(vm, ready_timeout, check_fio)
        return vm

    def _log_launch(self, vm: Vm) -> None:
        info = vm.describe()
        why = f"KVM not used: {vm.accelerator_reason}" if vm.accelerator == "tcg" else vm.accelerator_reason
        logger.info(
            f"VM '{vm.name}' runs on {vm.accelerator.upper()} ({why}); "
            f"QEMU {vm.qemu.version_text} pid {vm.pid}"
        )
        devices = "; ".join(
            f"{c['id']} on {c['bus']} serial {c['serial']}: "
            + ", ".join(f"nsid {n['nsid']} {n['size']} {n['format']} ({n['node']})" for n in c["namespaces"])
            for c in info["controllers"]
        )
        logger.info(f"SSH 127.0.0.1:{vm.ssh_port} as {vm.ssh_user}, QMP {vm.qmp_socket}; {devices}")
        self.ctx.html(
            f'Serial console: <a href="{html.escape(self.ctx.link(vm.console_log))}">'
            f"{vm.console_log.name}</a>, "
            f'QEMU log: <a href="{html.escape(self.ctx.link(vm.qemu_log))}">{vm.qemu_log.name}</a>, '
            f'command line: <a href="{html.escape(self.ctx.link(vm.output_dir / "qemu-argv.txt"))}">'
            "qemu-argv.txt</a>"
        )

    @keyword("Wait Until VM Is Ready")
    def wait_until_vm_is_ready(
        self, vm: Vm, timeout: timedelta | None = None, check_fio: bool = True
    ) -> float:
        """Wait until SSH login to the guest works and every namespace is present; return the seconds
        since QEMU started.

        Fails with the serial console's last lines when the guest is not ready within ``timeout``
        (a Robot time, ``60s`` or ``2 min``; default: the library's ``boot_timeout``), at once when
        QEMU ends, and when ``check_fio`` is true and the guest has no fio.

        Example:
        | ${vm} =    Launch NVMe VM    wait=False
        | ${seconds} =    Wait Until VM Is Ready    ${vm}    timeout=60s
        """
        return self._wait_ready(
            as_vm(vm), self._ready_timeout(timeout), converted_flag(check_fio, "check_fio")
        )

    @staticmethod
    def _wait_ready(vm: Vm, timeout: float, check_fio: bool = True) -> float:
        ready = vm.wait_until_ready(timeout, check_fio=check_fio)
        logger.info(
            f"VM '{vm.name}' ready {ready:.2f} s after QEMU started "
            f"(host key {fingerprint(vm.host_key) if vm.host_key else '-'})"
        )
        return ready

    @keyword("Shut Down VM")
    def shut_down_vm(self, vm: Vm, timeout: timedelta = timedelta(seconds=15)) -> int | None:
        """Power the guest off cleanly (sync + poweroff, then QMP ``quit``, then signals); return QEMU's
        exit code. ``timeout`` (a Robot time) is how long the guest gets before QEMU is told to quit.

        The backing files stay: `Restart VM` boots again on them.

        Example:
        | Shut Down VM    ${vm}
        | Shut Down VM    ${vm}    timeout=30s
        """
        target = as_vm(vm)
        code = target.shutdown(timeout.total_seconds())
        logger.info(f"VM '{target.name}' shut down (QEMU exit code {code})")
        return code

    @keyword("Power Cut VM")
    def power_cut_vm(self, vm: Vm) -> int | None:
        """Kill QEMU with SIGKILL at once, like pulling the plug; return its exit code (-9).

        Example:
        | Power Cut VM    ${vm}
        | Restart VM    ${vm}
        """
        target = as_vm(vm)
        code = target.power_cut()
        logger.info(f"VM '{target.name}' power cut (QEMU exit code {code})")
        return code

    @keyword("Restart VM")
    def restart_vm(self, vm: Vm, wait: bool = True, timeout: timedelta | None = None) -> Vm:
        """Start the VM again on the same disks (shutting it down first if it runs); wait until ready
        (``timeout`` as in `Wait Until VM Is Ready`) unless ``wait=False``. QMP events of every boot
        stay in `Get QMP Events`.

        Example:
        | Power Cut VM    ${vm}
        | Restart VM    ${vm}
        | ${result} =    Run Fio Job On VM    ${vm}    latency_probe
        """
        target = as_vm(vm)
        wait = converted_flag(wait, "wait")
        limit = self._ready_timeout(timeout)
        target.restart()
        logger.info(
            f"VM '{target.name}' restarted (launch {target.launches}), SSH 127.0.0.1:{target.ssh_port}"
        )
        if wait:
            self._wait_ready(target, limit)
        return target

    @keyword("Stop All VMs")
    def stop_all_vms(self) -> int:
        """Stop every VM this library launched (forced) and remove their private folders; return how many ran.

        Guest fio runs started by `Start Prepared Fio Job On VM` are stopped with them.

        Example:
        | [Teardown]    Stop All VMs
        """
        running = sum(1 for vm in OWNER.things(LIBRARY, Vm) if isinstance(vm, Vm) and vm.is_running())
        # Everything the library owns, in every scope: guest fio runs too (they die with their VM).
        for line in OWNER.release(LIBRARY, None, "run"):
            logger.info(line)
        return running

    @keyword("VM Should Be Running")
    def vm_should_be_running(self, vm: Vm) -> None:
        """Fail unless QEMU of ``vm`` is running.

        Example:
        | VM Should Be Running    ${vm}
        """
        target = as_vm(vm)
        if not target.is_running():
            fail(f"VM '{target.name}' is not running")

    @keyword("VM Should Not Be Running")
    def vm_should_not_be_running(self, vm: Vm) -> None:
        """Fail if QEMU of ``vm`` is still running.

        Example:
        | Power Cut VM    ${vm}
        | VM Should Not Be Running    ${vm}
        """
        target = as_vm(vm)
        if target.is_running():
            fail(f"VM '{target.name}' is still running (pid {target.pid})")

    @keyword("Get VM Guest Devices")
    def get_vm_guest_devices(self, vm: Vm) -> dict[str, list[str]]:
        """Return the guest's NVMe namespace devices per controller serial, e.g.
        ``{'NVMECHAOS0000': ['/dev/nvme0n1']}``.

        Example:
        | ${devices} =    Get VM Guest Devices    ${vm}
        """
        return as_vm(vm).guest_devices()

    @keyword("Get VM Console Tail")
    def get_vm_console_tail(self, vm: Vm, lines: int = 20) -> str:
        """Return the last ``lines`` (1 or more) lines of the VM's serial console (``|``-separated).

        Example:
        | ${tail} =    Get VM Console Tail    ${vm}    lines=5
        """
        return as_vm(vm).console_tail(lines)

    @keyword("SSH Host Key Should Match VM")
    def ssh_host_key_should_match_vm(self, vm: Vm, ssh_library: str = "SSHLibrary") -> None:
        """Fail unless SSHLibrary's current connection talks to ``vm``'s pinned host key.

        SSHLibrary accepts any host key, so `Open Connection To VM` calls this right after login.

        Example:
        | Open Connection    127.0.0.1    port=${vm.ssh_port}
        | Login With Public Key    root    ${vm.key_file}
        | SSH Host Key Should Match VM    ${vm}
        """
        target = as_vm(vm)
        try:
            library = BuiltIn().get_library_instance(ssh_library)
        except RuntimeError:
            fail(f"no library '{ssh_library}' is imported (ssh_library names the SSHLibrary instance)")
        connection = getattr(library, "current", None)
        client = getattr(connection, "client", None)
        transport = client.get_transport() if client is not None else None
        if transport is None:
            fail("SSHLibrary has no open connection to check")
        key = transport.get_remote_server_key()
        seen = f"{key.get_name()} {key.get_base64()}"
        target.check_host_key(seen)
        logger.info(f"SSH host key {fingerprint(seen)} matches VM '{target.name}'")

    @keyword("Build Guest Image")
    def build_guest_image(
        self, cache_dir: str | None = None, compression: str = "none", with_fio: bool = True
    ) -> str:
        """Build (or find in the cache) the built-in guest image and return its folder, which holds
        the kernel (``vmlinux``, or ``vmlinuz`` when it cannot be decompressed for PVH boot) and
        ``initrd.img``.

        `Launch NVMe VM` does this on first use; calling it in a suite setup keeps the build time out
        of the first test. ``with_fio=False`` builds a guest without fio (to test that failure).

        Example:
        | ${image} =    Build Guest Image
        """
        recipe = GuestRecipe(compression=compression, with_fio=converted_flag(with_fio, "with_fio"))
        image = build_guest(recipe, cache_dir=Path(cache_dir) if cache_dir else self.ctx.cache_dir)
        logger.info(f"Guest image {image.directory} (kernel {image.kernel_version}, {image.kernel.name})")
        return str(image.directory)

    @keyword("Get Guest Image Kernel")
    def get_guest_image_kernel(self, cache_dir: str | None = None) -> str:
        """Return the kernel file of the built-in guest image (building the image if needed).

        Example:
        | ${kernel} =    Get Guest Image Kernel
        | ${vm} =    Launch NVMe VM    kernel=${kernel}    initrd=${my_initrd}
        """
        image = build_guest(GuestRecipe(), cache_dir=Path(cache_dir) if cache_dir else self.ctx.cache_dir)
        return str(image.kernel)
