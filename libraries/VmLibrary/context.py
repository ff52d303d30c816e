"""What the VmLibrary components share: the import's settings, output folders, and the one owner."""

from __future__ import annotations

from pathlib import Path

from nvmechaos_robot import KeywordContext

LIBRARY = "VmLibrary"


class VmContext(KeywordContext):
    """Settings of the import; does no work until a keyword needs it. What a keyword starts (a VM,
    a guest fio run) is owned under the running test or suite (see ``VmLibrary.release``)."""

    owner_name = LIBRARY

    def __init__(self, cache_dir: Path | None, boot_timeout: float, memory: int, cpus: int) -> None:
        super().__init__()
        self.cache_dir = cache_dir
        self.boot_timeout = boot_timeout
        self.memory = memory
        self.cpus = cpus

    def vm_output_dir(self, name: str) -> Path:
        """OUTPUT DIR/vm/<suite>/<test>/<NN>-<name>: the VM's console, QEMU log and events."""
        return self.test_dir("vm", name)
