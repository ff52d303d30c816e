"""Keywords that talk QMP to a VM: raw commands and the recorded event timeline."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from nvmechaos.vm import QmpEvent, Vm, as_vm
from nvmechaos.vm.qmp import command_arguments
from VmLibrary.context import VmContext


def _row(event: QmpEvent, origin: float) -> str:
    return f"{event.monotonic - origin:9.3f} s  {event.name:<24} {json.dumps(dict(event.data), default=str)}"


class QmpKeywords:
    """Execute QMP commands and read the VM's event timeline."""

    def __init__(self, context: VmContext) -> None:
        self.ctx = context

    @keyword("Execute QMP Command")
    def execute_qmp_command(
        self, vm: Vm, command: str, arguments: str | dict[str, Any] | None = None, **named: Any
    ) -> Any:
        """Run the QMP ``command`` with ``arguments`` (a dictionary or JSON) and/or named arguments;
        return QEMU's ``return`` value.

        Named argument values that look like JSON numbers, booleans, lists or objects are sent as such.
        Fails with QEMU's error class and text, e.g. ``QMP 'device_del' failed: GenericError: Device
        'nope' not found``.

        Examples:
        | ${status} =    Execute QMP Command    ${vm}    query-status
        | Execute QMP Command    ${vm}    device_del    id=nvme0
        | ${limits} =    Create Dictionary    iops-total=${200}
        | Execute QMP Command    ${vm}    qom-set    path=tg0    property=limits    value=${limits}
        """
        target = as_vm(vm)
        payload = command_arguments(command, arguments, named)
        logger.info(f"QMP {command} {json.dumps(payload, default=str)}")
        result = target.execute(command, payload or None)
        logger.info(f"QMP {command} returned {json.dumps(result, default=str)[:2000]}")
        return result

    @keyword("Wait For QMP Event")
    def wait_for_qmp_event(
        self, vm: Vm, name: str, timeout: timedelta = timedelta(seconds=10), **match: Any
    ) -> dict[str, Any]:
        """Wait for the QMP event ``name`` whose data matches every named argument; return it as a
        dictionary (``event``, ``data``, ``monotonic``, ``wall``, ``qemu_time``). ``timeout`` is a
        Robot time (``10s``, ``1 min``; a bare number is seconds).

        Events are recorded as they arrive, so an event that came before this keyword was called
        is found too; each event is returned by at most one wait (a cursor moves past it). Nested
        data is matched with dotted keys (``data.key``).

        Examples:
        | Execute QMP Command    ${vm}    device_del    id=nvme0
        | ${event} =    Wait For QMP Event    ${vm}    DEVICE_DELETED    device=nvme0
        | Wait For QMP Event    ${vm}    SHUTDOWN    timeout=30
        """
        target = as_vm(vm)
        event = target.wait_for_event(name, match or None, timeout.total_seconds())
        logger.info(f"QMP event {_row(event, target.started_monotonic)} (seconds since QEMU started)")
        return event.as_dict()

    @keyword("Get QMP Events")
    def get_qmp_events(self, vm: Vm, name: str | None = None) -> list[dict[str, Any]]:
        """Return every QMP event of ``vm`` so far (of every boot), or only those named ``name``,
        oldest first, each a dictionary with ``event``, ``data``, ``monotonic`` (``time.monotonic()``
        when it arrived), ``wall`` (``time.time()``), ``qemu_time`` and ``session`` (the boot).

        Example:
        | ${events} =    Get QMP Events    ${vm}    DEVICE_DELETED
        | Length Should Be    ${events}    1
        """
        target = as_vm(vm)
        events = target.events(name or None)
        origin = target.started_monotonic
        logger.info("\n".join(_row(e, origin) for e in events) or "no QMP events")
        return [e.as_dict() for e in events]
