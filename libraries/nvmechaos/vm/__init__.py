"""The QEMU machine engine: VM specs, launch/ready/shutdown/power cut/restart, QMP session, guest SSH."""

from nvmechaos.vm.errors import QemuError, QmpError, SshError, VmError, VmNotReadyError, VmSpecError
from nvmechaos.vm.machine import ControllerHandle, NamespaceHandle, Vm, launch_vm
from nvmechaos.vm.qmp import EventLog, QmpEvent, QmpSession
from nvmechaos.vm.spec import ControllerSpec, GuestSpec, NamespaceSpec, VmSpec, parse_size

__all__ = [
    "ControllerHandle",
    "ControllerSpec",
    "EventLog",
    "GuestSpec",
    "NamespaceHandle",
    "NamespaceSpec",
    "QemuError",
    "QmpError",
    "QmpEvent",
    "QmpSession",
    "SshError",
    "Vm",
    "VmError",
    "VmNotReadyError",
    "VmSpec",
    "VmSpecError",
    "launch_vm",
    "parse_size",
]
