"""The VmLibrary keyword library: thin keywords over the ``nvmechaos.vm`` engine."""

from __future__ import annotations

from robot.api import logger
from robotlibcore import DynamicCore

from nvmechaos.errors import NvmeChaosError
from nvmechaos.process import REGISTRY
from nvmechaos.vm import VmSpec
from nvmechaos.vm.spec import parse_memory
from nvmechaos_robot import ScopedListener
from VmLibrary.context import VmContext, fail, seconds
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

    KVM is used when a short probe boot shows it works, else TCG; the log of `Launch NVMe VM` says
    which ran and why KVM was not used (``/dev/kvm missing``, ``KVM probe timed out after 3 s``,
    ``NVMECHAOS_ACCEL=tcg``, ...).

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
    | Library    VmLibrary    boot_timeout=3 min    memory=2G    cpus=2

    See `Importing` for the arguments (guest image cache, boot timeout, memory, CPUs).
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "vm-"

    def __init__(
        self,
        cache_dir: str | None = None,
        boot_timeout: str | float = "120s",
        memory: str | int = 1024,
        cpus: int = 1,
    ) -> None:
        """Import the library; the arguments are defaults of every `Launch NVMe VM`.

        - ``cache_dir``: the built-in guest image cache (default ``$NVMECHAOS_CACHE/guest``, else
          ``~/.cache/nvmechaos/guest``).
        - ``boot_timeout``: how long `Launch NVMe VM` and `Wait Until VM Is Ready` wait for the
          guest to be ready, as a Robot time (``120s``, ``3 min``; a bare number is seconds).
        - ``memory``: guest RAM, MiB as a bare number (``1024``, as QEMU's ``-m``) or a size with a
          unit (``2G``); at least 128 MiB.
        - ``cpus``: guest CPUs, 1 to 64.

        A bad value fails the import in one line. Nothing is started on import.

        Examples:
        | Library    VmLibrary
        | Library    VmLibrary    boot_timeout=3 min    memory=2G    cpus=2
        """
        ScopedListener.__init__(self)
        try:
            memory_mib = parse_memory(memory)
            spec = VmSpec(memory_mib=memory_mib, cpus=int(cpus))
        except (NvmeChaosError, ValueError) as error:
            fail(error if isinstance(error, NvmeChaosError) else f"cpus '{cpus}' is not a whole number")
        self._ctx = VmContext(cache_dir, seconds(boot_timeout, "boot_timeout"), spec.memory_mib, spec.cpus)
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
