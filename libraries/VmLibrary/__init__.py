"""VmLibrary: launch QEMU VMs with emulated NVMe SSDs, talk QMP to them, and clean them up."""

from VmLibrary.library import VmLibrary

__all__ = ["VmLibrary"]
