"""The QEMU machine engine: VM specs, devices and command line, launch/ready/shutdown/power cut/restart,
QMP session, guest SSH, QMP faults."""

from nvmechaos.vm.devices import ControllerHandle, NamespaceHandle
from nvmechaos.vm.errors import QemuError, QmpError, SshError, VmError, VmNotReadyError, VmSpecError
from nvmechaos.vm.machine import RunState, Vm, as_vm, launch_vm
from nvmechaos.vm.qemu import Accel
from nvmechaos.vm.qmp import EventLog, QmpEvent, QmpSession
from nvmechaos.vm.spec import ControllerSpec, GuestSpec, NamespaceSpec, VmSpec, parse_size

__all__ = [
    "Accel",
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
    "RunState",
    "SshError",
    "Vm",
    "VmError",
    "VmNotReadyError",
    "VmSpec",
    "VmSpecError",
    "as_vm",
    "launch_vm",
    "parse_size",
]
