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


class SshRefusedError(SshError):
    """The guest's SSH server answered but will never let us in: waiting longer does not help."""


class HostKeyMismatchError(SshRefusedError):
    """The guest's SSH host key is not the pinned one (another machine answers on that port?)."""


class LoginRefusedError(SshRefusedError):
    """The guest refused the login (unknown user, or a key it does not accept)."""


class QmpError(VmError):
    """A QMP command failed (QEMU's error class and description quoted) or QMP is not connected."""
