"""What the VmLibrary components share: the import's settings, output folders, and the one owner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nvmechaos_robot import OWNER, KeywordContext

LIBRARY = "VmLibrary"


class VmContext(KeywordContext):
    """Settings of the import; does no work until a keyword needs it."""

    def __init__(self, cache_dir: Path | None, boot_timeout: float, memory: int, cpus: int) -> None:
        super().__init__()
        self.cache_dir = cache_dir
        self.boot_timeout = boot_timeout
        self.memory = memory
        self.cpus = cpus

    def vm_output_dir(self, name: str) -> Path:
        """OUTPUT DIR/vm/<suite>/<test>/<NN>-<name>: the VM's console, QEMU log and events."""
        return self.test_dir("vm", name)

    def own(self, thing: object, name: str, stop: Callable[[], object], running: Callable[[], bool]) -> None:
        """Record what a keyword started (a VM, a guest fio run) on the one owner, in the running
        test or suite: it is stopped when that ends (see ``VmLibrary.release``)."""
        OWNER.own(thing, name=name, library=LIBRARY, scope=self.scope, stop=stop, running=running)
