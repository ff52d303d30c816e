"""The VmLibrary keyword library: thin keywords over the ``nvmechaos.vm`` engine."""

from __future__ import annotations

from robot.api import logger
from robotlibcore import DynamicCore

from nvmechaos.process import REGISTRY
from nvmechaos_robot import ScopedListener
from VmLibrary.context import VmContext
from VmLibrary.faults import FaultKeywords
from VmLibrary.lifecycle import LifecycleKeywords
from VmLibrary.qmp import QmpKeywords

__version__ = "0.1.0"


class VmLibrary(DynamicCore, ScopedListener):
    """Launch QEMU virtual machines with emulated NVMe SSDs and drive them from Robot Framework.

    = The VM =
    `Launch NVMe VM` boots the built-in guest (the host's kernel plus a small initramfs with
    busybox, fio, nvme-cli and dropbear, built on first use by ``python -m nvmechaos.guest build``
    and cached by its inputs) or your own kernel/initrd or disk image, with one or more NVMe
    controllers, each on its own PCIe root port (so it can be hot-plugged) and each with one or
    more namespaces backed by sparse raw files, qcow2 images or NBD exports. It returns a handle:
    ``${vm.ssh_port}``, ``${vm.qmp_socket}``, ``${vm.key_file}``, ``${vm.device_ids}``,
    ``${vm.controllers}``, ``${vm.console_log}``.

    SSH is forwarded from 127.0.0.1 only, QMP listens on a unix socket in a private (0700) folder,
    and every file of a VM is its own, so parallel pabot workers never collide. The guest accepts
    only a key generated for this run; its host key is pinned to the one the builder made.

    KVM is used when a short probe boot shows it works, else TCG; the log says which ran.

    = QMP =
    A background thread keeps the QMP connection and timestamps every event as it arrives, while
    fio or anything else runs: `Execute QMP Command`, `Wait For QMP Event`, `Get QMP Events`.

    = fio in the guest =
    ``resources/vm.resource`` runs fio in the guest over SSHLibrary and returns FioLibrary's result
    model (`Run Fio Job On VM`).

    = Clean-up =
    The library is its own listener: every VM launched in a test is stopped at the end of the test,
    and those launched in a suite setup at the end of the suite, on pass, failure or timeout.
    QEMU also dies with the Robot process if that is killed.

    = Importing =
    | Library    VmLibrary
    | Library    VmLibrary    boot_timeout=180    memory=2048    cpus=2

    ``cache_dir`` is the guest image cache (default ``~/.cache/nvmechaos/guest``).
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "vm-"

    def __init__(
        self, cache_dir: str | None = None, boot_timeout: float = 120.0, memory: int = 1024, cpus: int = 1
    ) -> None:
        ScopedListener.__init__(self)
        self._ctx = VmContext(cache_dir, float(boot_timeout), int(memory), int(cpus))
        DynamicCore.__init__(
            self, [LifecycleKeywords(self._ctx), QmpKeywords(self._ctx), FaultKeywords(self._ctx)]
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop the VMs ``scope`` launched, and any QEMU whose launch was interrupted."""
        for vm in self._ctx.close_scope(scope):
            logger.info(f"VM '{vm.name}' was still running at the end of the {what}; stopped it.")
        # Safety net: a QEMU whose launch was interrupted before it became a VM handle.
        for process in REGISTRY.stop_scope(scope, prefix=self.SCOPE_PREFIX):
            logger.info(f"{process.name} was left by an interrupted launch; stopped it.")
        return []
