"""Errors of the VM engine; each message is one line that says what failed and what to do."""

from __future__ import annotations

from nvmechaos.errors import NvmeChaosError


class VmError(NvmeChaosError):
    """A VM cannot be launched, reached or stopped."""


class QemuError(VmError):
    """QEMU is missing, too old, or refused the machine it was given."""


class VmSpecError(VmError):
    """A VM description is invalid: a size, a backing file, a kernel that does not exist."""


class VmNotReadyError(VmError):
    """The guest did not become ready (SSH login and namespaces present) in time."""


class SshError(VmError):
    """SSH to the guest failed: refused, wrong host key, authentication, or a command failed."""


class QmpError(VmError):
    """A QMP command failed (QEMU's error class and description quoted) or QMP is not connected."""
