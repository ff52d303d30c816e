"""Keywords that launch, wait for, stop, power-cut and restart VMs."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword
from robot.libraries.BuiltIn import BuiltIn

from nvmechaos.errors import NvmeChaosError
from nvmechaos.guest import GuestRecipe, build_guest
from nvmechaos.vm import GuestSpec, Vm, VmSpec, launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec, controllers_from, parse_size
from nvmechaos.vm.ssh import fingerprint
from VmLibrary.context import VmContext, fail


def _layout(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError as error:
            fail(f"layout is not valid JSON: {error}")
    return value


class LifecycleKeywords:
    """Launch, wait, shut down, power cut, restart."""

    def __init__(self, context: VmContext) -> None:
        self.ctx = context

    def _spec(  # noqa: PLR0917 - internal helper mirroring the keyword's arguments
        self,
        name: str,
        layout: Any,
        size: str,
        namespaces: int,
        controllers: int,
        backing: str | None,
        image_format: str | None,
        nbd: str | None,
        serials: list[str] | None,
        memory: int | None,
        cpus: int | None,
        guest: GuestSpec,
        accel: str,
        extra_args: list[str] | None,
    ) -> VmSpec:
        if layout:
            specs = controllers_from(_layout(layout))
        else:
            ns_size = parse_size(size, "namespace size") if size and not nbd else None
            ns = NamespaceSpec(
                size=ns_size, backing=Path(backing) if backing else None, format=image_format, nbd=nbd
            )
            if (backing or nbd) and (namespaces > 1 or controllers > 1):
                fail("backing= and nbd= describe one namespace: use layout= for several")
            specs = tuple(ControllerSpec(namespaces=(ns,) * namespaces) for _ in range(controllers))
        if serials:
            if len(serials) != len(specs):
                fail(f"{len(serials)} serials given for {len(specs)} controllers")
            specs = tuple(
                ControllerSpec(namespaces=c.namespaces, serial=s) for c, s in zip(specs, serials, strict=True)
            )
        return VmSpec(
            name=name,
            memory_mib=int(memory or self.ctx.memory),
            cpus=int(cpus or self.ctx.cpus),
            controllers=specs,
            guest=guest,
            accel=accel,
            extra_args=tuple(extra_args or ()),
        )

    @keyword("Launch NVMe VM")
    def launch_nvme_vm(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        name: str = "vm",
        size: str = "1G",
        namespaces: int = 1,
        controllers: int = 1,
        layout: Any = None,
        backing: str | None = None,
        format: str | None = None,  # the QEMU word users know
        nbd: str | None = None,
        serials: list[str] | None = None,
        memory: int | None = None,
        cpus: int | None = None,
        kernel: str | None = None,
        initrd: str | None = None,
        append: str | None = None,
        disk_image: str | None = None,
        ssh_user: str = "root",
        ssh_key: str | None = None,
        host_key: str | None = None,
        accel: str = "auto",
        extra_args: list[str] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        check_fio: bool = True,
    ) -> Vm:
        """Launch a QEMU VM with NVMe controllers and return its handle (ready, unless ``wait=False``).

        The simple form: ``controllers`` controllers, each with ``namespaces`` namespaces of ``size``
        (sparse raw files in the VM's private folder). One namespace can instead use an existing
        ``backing`` file (raw or qcow2, ``format`` detected) or an ``nbd`` export
        (``nbd://127.0.0.1:10809/name`` or ``nbd+unix:///name?socket=/path``). ``layout`` describes
        anything else: a list with one entry per controller, each a list of namespaces (a size, or a
        dictionary with size/backing/format/nbd/block_size) or a dictionary with ``serial`` and
        ``namespaces`` (a JSON string works too). ``serials`` names the controllers' serial numbers.

        The guest is the built-in one unless ``kernel`` (+ ``initrd``, ``append``) or ``disk_image``
        is given; for a disk image pass ``ssh_key`` (the private key ``ssh_user`` accepts) and ideally
        ``host_key`` (``TYPE BASE64``) to pin. ``accel`` is auto (probe KVM, else TCG), kvm or tcg.

        The handle has ``name``, ``ssh_port``, ``host``, ``ssh_user``, ``key_file``, ``known_hosts``,
        ``qmp_socket``, ``console_log``, ``device_ids`` (``nvme0``...), ``controllers`` (each with
        ``id``, ``bus``, ``serial``, ``namespaces`` with ``node``), ``accelerator``, ``boot_seconds``.

        Examples:
        | ${vm} =    Launch NVMe VM
        | ${vm} =    Launch NVMe VM    size=2G    namespaces=2    controllers=2    memory=2048
        | ${vm} =    Launch NVMe VM    backing=${CURDIR}/disk.qcow2    wait=False
        | ${vm} =    Launch NVMe VM    layout=[{"serial": "A1", "namespaces": ["1G", "512M"]}, ["256M"]]
        | Log    ${vm.ssh_port} ${vm.qmp_socket} ${vm.device_ids}
        """
        guest = GuestSpec(
            kernel=Path(kernel) if kernel else None,
            initrd=Path(initrd) if initrd else None,
            append=append,
            disk_image=Path(disk_image) if disk_image else None,
            ssh_user=ssh_user,
            ssh_key=Path(ssh_key) if ssh_key else None,
            host_key=host_key,
        )
        try:
            spec = self._spec(
                name,
                layout,
                size,
                int(namespaces),
                int(controllers),
                backing,
                format,
                nbd,
                serials,
                memory,
                cpus,
                guest,
                accel,
                extra_args,
            )
            output_dir = self.ctx.vm_output_dir(name)
            vm = launch_vm(spec, output_dir, scope=self.ctx.scope, cache_dir=self.ctx.cache_dir)
        except NvmeChaosError as error:
            fail(error)
        self.ctx.add(vm)
        self._log_launch(vm)
        if wait:
            self.wait_until_vm_is_ready(vm, timeout=timeout, check_fio=check_fio)
        return vm

    def _log_launch(self, vm: Vm) -> None:
        info = vm.describe()
        logger.info(
            f"VM '{vm.name}' runs on {vm.accelerator.upper()} ({vm.accelerator_reason}); "
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
    def wait_until_vm_is_ready(self, vm: Vm, timeout: float | None = None, check_fio: bool = True) -> float:
        """Wait until SSH login to the guest works and every namespace is present; return the seconds
        since QEMU started.

        Fails with the serial console's last lines when the guest is not ready within ``timeout``
        (default: the library's ``boot_timeout``), at once when QEMU ends, and when ``check_fio`` is
        true and the guest has no fio.

        Example:
        | ${vm} =    Launch NVMe VM    wait=False
        | ${seconds} =    Wait Until VM Is Ready    ${vm}    timeout=60
        """
        try:
            seconds = vm.wait_until_ready(float(timeout or self.ctx.boot_timeout), check_fio=check_fio)
        except NvmeChaosError as error:
            fail(error)
        logger.info(
            f"VM '{vm.name}' ready {seconds:.2f} s after QEMU started "
            f"(host key {fingerprint(vm.host_key) if vm.host_key else '-'})"
        )
        return seconds

    @keyword("Shut Down VM")
    def shut_down_vm(self, vm: Vm, timeout: float = 15.0) -> int | None:
        """Power the guest off cleanly (sync + poweroff, then QMP ``quit``, then signals); return QEMU's
        exit code.

        The backing files stay: `Restart VM` boots again on them.

        Example:
        | Shut Down VM    ${vm}
        """
        try:
            code = vm.shutdown(float(timeout))
        except NvmeChaosError as error:
            fail(error)
        logger.info(f"VM '{vm.name}' shut down (QEMU exit code {code})")
        return code

    @keyword("Power Cut VM")
    def power_cut_vm(self, vm: Vm) -> int | None:
        """Kill QEMU with SIGKILL at once, like pulling the plug; return its exit code (-9).

        Example:
        | Power Cut VM    ${vm}
        | Restart VM    ${vm}
        """
        try:
            code = vm.power_cut()
        except NvmeChaosError as error:
            fail(error)
        logger.info(f"VM '{vm.name}' power cut (QEMU exit code {code})")
        return code

    @keyword("Restart VM")
    def restart_vm(self, vm: Vm, wait: bool = True, timeout: float | None = None) -> Vm:
        """Start the VM again on the same disks (shutting it down first if it runs); wait until ready
        unless ``wait=False``. QMP events of every boot stay in `Get QMP Events`.

        Example:
        | Power Cut VM    ${vm}
        | Restart VM    ${vm}
        | ${result} =    Run Fio Job On VM    ${vm}    latency_probe
        """
        try:
            vm.restart()
        except NvmeChaosError as error:
            fail(error)
        logger.info(f"VM '{vm.name}' restarted (launch {vm.launches}), SSH 127.0.0.1:{vm.ssh_port}")
        if wait:
            self.wait_until_vm_is_ready(vm, timeout=timeout)
        return vm

    @keyword("Stop All VMs")
    def stop_all_vms(self) -> int:
        """Stop every VM this library launched (forced) and remove their private folders; return how many ran.

        Example:
        | [Teardown]    Stop All VMs
        """
        return len(self.ctx.close_scope(None))

    @keyword("VM Should Be Running")
    def vm_should_be_running(self, vm: Vm) -> None:
        """Fail unless QEMU of ``vm`` is running.

        Example:
        | VM Should Be Running    ${vm}
        """
        if not vm.is_running():
            fail(f"VM '{vm.name}' is not running")

    @keyword("VM Should Not Be Running")
    def vm_should_not_be_running(self, vm: Vm) -> None:
        """Fail if QEMU of ``vm`` is still running.

        Example:
        | Power Cut VM    ${vm}
        | VM Should Not Be Running    ${vm}
        """
        if vm.is_running():
            fail(f"VM '{vm.name}' is still running (pid {vm.pid})")

    @keyword("Get VM Guest Devices")
    def get_vm_guest_devices(self, vm: Vm) -> dict[str, list[str]]:
        """Return the guest's NVMe namespace devices per controller serial, e.g.
        ``{'NVMECHAOS0000': ['/dev/nvme0n1']}``.

        Example:
        | ${devices} =    Get VM Guest Devices    ${vm}
        """
        try:
            return vm.guest_devices()
        except NvmeChaosError as error:
            fail(error)

    @keyword("Get VM Console Tail")
    def get_vm_console_tail(self, vm: Vm, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the VM's serial console (``|``-separated).

        Example:
        | ${tail} =    Get VM Console Tail    ${vm}
        """
        return vm.console_tail(int(lines))

    @keyword("SSH Host Key Should Match VM")
    def ssh_host_key_should_match_vm(self, vm: Vm, ssh_library: str = "SSHLibrary") -> None:
        """Fail unless SSHLibrary's current connection talks to ``vm``'s pinned host key.

        SSHLibrary accepts any host key, so `Open Connection To VM` calls this right after login.

        Example:
        | Open Connection    127.0.0.1    port=${vm.ssh_port}
        | Login With Public Key    root    ${vm.key_file}
        | SSH Host Key Should Match VM    ${vm}
        """
        library = BuiltIn().get_library_instance(ssh_library)
        connection = getattr(library, "current", None)
        client = getattr(connection, "client", None)
        transport = client.get_transport() if client is not None else None
        if transport is None:
            fail("SSHLibrary has no open connection to check")
        key = transport.get_remote_server_key()
        seen = f"{key.get_name()} {key.get_base64()}"
        if vm.host_key is None:
            fail(f"VM '{vm.name}' has no pinned host key yet (call Wait Until VM Is Ready first)")
        if seen != " ".join(vm.host_key.split()[:2]):
            fail(
                f"SSH host key {fingerprint(seen)} is not the key pinned for VM '{vm.name}' "
                f"({fingerprint(vm.host_key)})"
            )
        logger.info(f"SSH host key {fingerprint(seen)} matches VM '{vm.name}'")

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
        try:
            image = build_guest(
                GuestRecipe(compression=compression, with_fio=with_fio),
                cache_dir=Path(cache_dir) if cache_dir else self.ctx.cache_dir,
            )
        except NvmeChaosError as error:
            fail(error)
        logger.info(f"Guest image {image.directory} (kernel {image.kernel_version}, {image.kernel.name})")
        return str(image.directory)

    @keyword("Get Guest Image Kernel")
    def get_guest_image_kernel(self, cache_dir: str | None = None) -> str:
        """Return the kernel file of the built-in guest image (building the image if needed).

        Example:
        | ${kernel} =    Get Guest Image Kernel
        | ${vm} =    Launch NVMe VM    kernel=${kernel}    initrd=${my_initrd}
        """
        try:
            image = build_guest(GuestRecipe(), cache_dir=Path(cache_dir) if cache_dir else self.ctx.cache_dir)
        except NvmeChaosError as error:
            fail(error)
        return str(image.kernel)
