"""State the VmLibrary components share: settings, live VMs per scope, output folders, Robot glue."""

from __future__ import annotations

from pathlib import Path

from robot.api import logger

from nvmechaos.vm import Vm
from nvmechaos_robot import KeywordContext, KeywordError, fail, safe_name

__all__ = ["KeywordError", "VmContext", "fail", "safe_name"]


class VmContext(KeywordContext):
    """Settings and live VMs; does no work until a keyword needs it."""

    def __init__(self, cache_dir: str | None, boot_timeout: float, memory: int, cpus: int) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.boot_timeout = boot_timeout
        self.memory = memory
        self.cpus = cpus
        self.vms: list[tuple[str, Vm]] = []

    def vm_output_dir(self, name: str) -> Path:
        """OUTPUT DIR/vm/<suite>/<test>/<NN>-<name>: the VM's console, QEMU log and events."""
        return self.test_dir("vm", name)

    def add(self, vm: Vm) -> None:
        self.vms.append((self.scope, vm))

    def close_scope(self, scope: str | None) -> list[Vm]:
        """Close (force-stop, remove run folders) every VM launched in ``scope`` (all when None)."""
        chosen = [vm for s, vm in self.vms if scope is None or s == scope]
        self.vms = [(s, vm) for s, vm in self.vms if not (scope is None or s == scope)]
        running = [vm for vm in chosen if vm.is_running()]
        for vm in chosen:
            try:
                vm.close()
            except Exception as error:  # clean-up must go on for the other VMs
                logger.warn(f"closing VM '{vm.name}' failed: {error}")
        return running
