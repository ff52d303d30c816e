"""The VmLibrary keyword library: thin keywords over the ``nvmechaos.vm`` engine."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from robot.api import logger

from nvmechaos.vm import VmSpec
from nvmechaos.vm.machine import positive_seconds
from nvmechaos.vm.spec import parse_memory
from nvmechaos_robot import KeywordLibrary, import_arguments
from VmLibrary.context import LIBRARY, VmContext
from VmLibrary.faults import FaultKeywords
from VmLibrary.guestfio import GuestFioKeywords
from VmLibrary.lifecycle import LifecycleKeywords
from VmLibrary.qmp import QmpKeywords

__version__ = "0.1.0"


class VmLibrary(KeywordLibrary):
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
    `Start Prepared Fio Job On VM` copies a job FioLibrary's `Prepare Fio Job` wrote into the
    guest and runs it there over the VM's own SSH connection; `Wait For Prepared Fio Job On VM`
    fetches its output back and returns fio's exit code for `Collect Fio Result`.
    ``resources/vm.resource`` composes them into `Run Fio Job On VM`, which returns FioLibrary's
    result model as `Run Fio Job` does on the host.

    = Clean-up =
    The library is its own listener: every VM (and guest fio run) started in a test is stopped at
    the end of the test, and those started in a suite setup at the end of the suite, on pass,
    failure or timeout. QEMU also dies with the Robot process if that is killed.

    = Importing =
    | Library    VmLibrary
    | Library    VmLibrary    boot_timeout=3 min    memory=2G    cpus=2

    See `Importing` for the arguments (guest image cache, boot timeout, memory, CPUs).
    """

    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "vm-"
    OWNER_NAME = LIBRARY

    def __init__(
        self,
        cache_dir: str | None = None,
        boot_timeout: timedelta = timedelta(seconds=120),
        memory: str = "1024",
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
        with import_arguments():
            # VmSpec checks memory and CPUs as every launch will.
            spec = VmSpec(memory_mib=parse_memory(memory), cpus=cpus)
            boot = positive_seconds(boot_timeout.total_seconds(), "boot_timeout")
        self._ctx = VmContext(Path(cache_dir) if cache_dir else None, boot, spec.memory_mib, spec.cpus)
        super().__init__(
            [
                LifecycleKeywords(self._ctx),
                QmpKeywords(self._ctx),
                FaultKeywords(self._ctx),
                GuestFioKeywords(self._ctx),
            ]
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop the VMs and guest fio runs ``scope`` started (newest first), and any QEMU whose
        launch was interrupted. A VM outliving its test is how suites use them, so this is logged,
        not warned about."""
        for line in super().release(scope, what):
            logger.info(line)
        return []
