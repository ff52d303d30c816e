"""Faults QEMU makes over QMP: hot-unplug and hot-plug of an NVMe controller, and I/O throttling.

Every fault is recorded on the VM's channel of the run timeline (``Vm.faults``, see
:func:`fault_channel`: source ``qmp:<vm name>``) as :class:`~nvmechaos.timeline.Event` entries
stamped with ``time.monotonic()`` and ``time.time()`` (the clock fio runs, QMP events and NBD
injectors use), so impact verdicts and charts put them on one timeline with fio's logs:

- ``hotplug``: ``apply`` when ``device_del`` is sent, ``deleted`` when QEMU reports
  ``DEVICE_DELETED`` (stamped with the event's own arrival time), ``plug`` when ``device_add`` is
  sent and ``clear`` when the guest can read the namespace again. The fault window is apply→clear.
- ``throttle``: ``apply`` with the limits, ``clear`` when they are removed.

Throttling: QEMU throttles a block node when it sits under a ``throttle`` filter node that belongs
to a ``throttle-group`` object. The VM's namespaces are built as ``format node -> protocol node``;
:func:`ensure_throttle_node` inserts ``throttle-<node>`` (group ``tg-<node>``) between them while
the VM runs (``object-add``, ``blockdev-add``, then ``blockdev-reopen`` of the format node with
the new child; 1-2 ms, safe during I/O). Limits then change live with ``qom-set`` of the group's
``limits``; all of ``iops-total/read/write`` and ``bps-total/read/write`` are always sent, because
QEMU keeps the previous value of any field left out. Limits count requests reaching the protocol
node (for a qcow2 namespace, metadata I/O counts too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nvmechaos.drive.handle import drive_serving
from nvmechaos.faults.base import FaultError
from nvmechaos.timeline import Channel, Event
from nvmechaos.vm.devices import ControllerHandle, NamespaceHandle, parse_live_paths
from nvmechaos.vm.errors import QmpError, VmError, VmSpecError
from nvmechaos.vm.machine import Vm, fault_channel, positive_seconds
from nvmechaos.vm.spec import parse_size

THROTTLE_FIELDS = ("iops-total", "iops-read", "iops-write", "bps-total", "bps-read", "bps-write")
# Prints "<block device> <nsid>" for every namespace of the controller with serial $1 that exists and
# whose first 4 KiB can be read (the namespace is usable, not just announced).
_USABLE_PROBE = (
    'for b in /sys/block/nvme*n*; do [ -e "$b" ] || continue; n=${b##*/}; case "$n" in *c*) continue;; esac; '
    '[ "$(echo $(cat $b/device/serial 2>/dev/null))" = "{serial}" ] || continue; '
    'dd if=/dev/$n of=/dev/null bs=4096 count=1 2>/dev/null && echo "/dev/$n $(cat $b/nsid)"; done'
)


class HotplugError(FaultError):
    """A hot-unplug or hot-plug did not complete (QEMU refused it, or it did not finish in time)."""


class ThrottleError(FaultError):
    """Throttle limits are invalid or QEMU refused them."""


class GuestShell(Protocol):
    """What the hot-plug check needs of a guest connection (``nvmechaos.vm.ssh.GuestSsh``)."""

    def run(self, command: str, timeout: float = 30.0) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class UnplugResult:
    """A completed hot-unplug: seconds from ``device_del`` to ``DEVICE_DELETED``."""

    device: str
    seconds: float
    sent: Event
    deleted: Event

    def describe(self, vm_name: str) -> str:
        return (
            f"'{self.device}' of VM '{vm_name}' unplugged: DEVICE_DELETED {self.seconds:.3f} s "
            "after device_del"
        )


@dataclass(frozen=True)
class PlugResult:
    """A completed hot-plug: seconds from ``device_add`` until the guest read every namespace."""

    device: str
    seconds: float
    guest_devices: tuple[str, ...]
    plugged: Event
    usable: Event

    def describe(self, vm_name: str) -> str:
        return (
            f"'{self.device}' of VM '{vm_name}' plugged: {', '.join(self.guest_devices)} usable "
            f"{self.seconds:.3f} s after device_add"
        )


def controller(vm: Vm, device: str) -> ControllerHandle:
    """The controller with qdev id ``device``.

    Raises:
        HotplugError: no such controller, naming those there are.
    """
    for handle in vm.controllers:
        if handle.id == device:
            return handle
    known = ", ".join(vm.device_ids) or "none"
    raise HotplugError(f"VM '{vm.name}' has no NVMe controller '{device}' (controllers: {known})")


def hot_unplug(vm: Vm, device: str, log: Channel, timeout: float = 10.0) -> UnplugResult:
    """``device_del`` the controller ``device`` and wait for QEMU's ``DEVICE_DELETED``.

    Raises:
        ArgumentError: ``timeout`` is not above zero.
        HotplugError: unknown device, QEMU refused ``device_del`` (its error class and text), or
            no ``DEVICE_DELETED`` within ``timeout`` seconds (the guest did not release it).
    """
    positive_seconds(timeout)
    handle = controller(vm, device)
    since = time.monotonic()
    try:
        vm.execute("device_del", {"id": handle.id}, timeout=min(30.0, max(timeout, 5.0)))
    except VmError as error:
        raise HotplugError(f"hot-unplug of '{device}' on VM '{vm.name}': {error}") from None
    sent = log.record("hotplug", "apply", {"device": device, "command": "device_del"}, monotonic=since)
    try:
        event = vm.wait_for_event("DEVICE_DELETED", {"device": handle.id}, timeout, since=since)
    except QmpError:
        log.record("hotplug", "timeout", {"device": device, "waited_s": timeout})
        raise HotplugError(
            f"'{device}' of VM '{vm.name}' was not unplugged: no DEVICE_DELETED within {timeout:g} s "
            "after device_del (the guest did not release the device)"
        ) from None
    deleted = log.record(
        "hotplug",
        "deleted",
        {"device": device, "seconds": event.monotonic - since},
        monotonic=event.monotonic,
        wall=event.wall,
    )
    return UnplugResult(device, event.monotonic - since, sent, deleted)


def hot_plug(
    vm: Vm,
    device: str,
    log: Channel,
    *,
    timeout: float = 10.0,
    poll: float = 0.05,
    shell: GuestShell | None = None,
) -> PlugResult:
    """``device_add`` the controller ``device`` back, as it was built, and wait until the guest reads
    its namespace (``/dev/nvmeXnY`` present, first 4 KiB read). Only a single-namespace controller
    can come back: QEMU's NVMe bus takes no hot-plugged ``nvme-ns`` devices.

    ``shell`` is a logged-in guest connection (one is opened when None and closed after).

    Raises:
        ArgumentError: ``timeout`` is not above zero.
        HotplugError: unknown device, QEMU refused ``device_add`` (e.g. the device is still
            plugged: its error class and text), or the namespaces not usable within ``timeout``.
    """
    positive_seconds(timeout)
    handle = controller(vm, device)
    if not handle.single_namespace and handle.subsystem is None:
        raise HotplugError(
            f"'{device}' of VM '{vm.name}' has {len(handle.namespaces)} namespaces: QEMU cannot plug nvme-ns "
            "devices back (its NVMe bus has no hot-plug); give each hot-plugged controller one namespace"
        )
    own_shell = shell is None
    try:
        guest: GuestShell = shell if shell is not None else vm.ssh()
    except VmError as error:
        raise HotplugError(
            f"hot-plug of '{device}': cannot reach the guest of VM '{vm.name}': {error}"
        ) from None
    try:
        # A path of a multi-port drive is back when one more path is live than before.
        wanted_paths = live_paths(handle, guest) + 1 if handle.subsystem is not None else 0
        since = time.monotonic()
        try:
            vm.execute("device_add", handle.device_add_arguments())  # one namespace: refused above otherwise
        except VmError as error:
            raise HotplugError(f"hot-plug of '{device}' on VM '{vm.name}': {error}") from None
        plugged = log.record("hotplug", "plug", {"device": device, "command": "device_add"}, monotonic=since)
        devices = _wait_usable(vm, handle, guest, since + timeout, poll, paths=wanted_paths)
        if devices is None:
            log.record("hotplug", "timeout", {"device": device, "waited_s": timeout})
            raise HotplugError(
                f"'{device}' of VM '{vm.name}' did not come back: its namespace(s) "
                f"{', '.join(str(ns.nsid) for ns in handle.namespaces)} not usable in the guest within "
                f"{timeout:g} s after device_add; console: {vm.console_tail(3) or '-'}"
            )
        usable = log.record("hotplug", "clear", {"device": device, "devices": list(devices)})
        return PlugResult(device, usable.monotonic - since, devices, plugged, usable)
    finally:
        if own_shell:
            guest.close()


def live_paths(handle: ControllerHandle, guest: GuestShell) -> int:
    """How many paths of ``handle``'s subsystem the guest has live, with every namespace attached."""
    try:
        return parse_live_paths(str(guest.run(handle.live_paths_probe(), timeout=15).stdout)) or 0
    except VmError:
        return 0


def _wait_usable(
    vm: Vm, handle: ControllerHandle, guest: GuestShell, deadline: float, poll: float, *, paths: int = 0
) -> tuple[str, ...] | None:
    """The namespaces of ``handle`` once all are readable (and, for a subsystem's path, once
    ``paths`` paths are live), or None at ``deadline``."""
    wanted = {ns.nsid for ns in handle.namespaces}
    probe = _USABLE_PROBE.replace("{serial}", handle.serial)
    if handle.subsystem is not None:
        probe += "; " + handle.live_paths_probe()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if not vm.is_running():
            raise HotplugError(f"QEMU of VM '{vm.name}' ended while waiting for '{handle.id}' to come back")
        try:
            result = guest.run(probe, timeout=max(1.0, remaining))
            found = {}
            live = parse_live_paths(str(result.stdout)) or 0
            for line in str(result.stdout).splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    found[int(parts[1])] = parts[0]
        except VmError:
            found, live = {}, 0
        if wanted <= set(found) and live >= paths:
            # Seen only after the deadline (the probe itself takes an SSH round trip): too late.
            return tuple(found[nsid] for nsid in sorted(wanted)) if time.monotonic() <= deadline else None
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def path_io(vm: Vm, device: str, seconds: float = 1.0, shell: GuestShell | None = None) -> dict[str, int]:
    """I/Os each live path of the multi-port drive ``device`` (any of its controllers' ids)
    completed over ``seconds``: guest path disk (``nvme0c1n1``) -> reads + writes, from
    ``/sys/block/<path>/stat``.

    Raises:
        HotplugError: unknown device, or not a multi-port drive.
        VmError: the guest cannot be reached.
    """
    handle = controller(vm, device)
    if handle.subsystem is None:
        raise HotplugError(
            f"'{device}' of VM '{vm.name}' is not a path of a multi-port drive (launch it with paths=2)"
        )
    positive_seconds(seconds)
    sample = (
        "for c in /sys/class/nvme/nvme*; do "
        f'[ "$(echo $(cat $c/serial 2>/dev/null))" = "{handle.serial}" ] || continue; '
        'for p in $c/nvme*c*n*; do [ -e "$p" ] && echo "${p##*/} $(cat /sys/block/${p##*/}/stat)"; done; done'
    )
    own = shell is None
    guest: GuestShell = shell if shell is not None else vm.ssh()
    try:
        before = _path_counts(str(guest.run(sample).stdout))
        time.sleep(seconds)
        after = _path_counts(str(guest.run(sample).stdout))
    finally:
        if own:
            guest.close()
    return {path: after[path] - before.get(path, 0) for path in sorted(after)}


def _path_counts(output: str) -> dict[str, int]:
    """Path disk -> reads + writes completed, from lines ``name <block stat fields>``."""
    counts = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 6 and words[1].isdigit() and words[5].isdigit():
            counts[words[0]] = int(words[1]) + int(words[5])
    return counts


# ----- throttling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleLimits:
    """Limits of a throttle group; 0 means unlimited. IOPS in requests/s, bandwidth in bytes/s."""

    iops_total: int = 0
    iops_read: int = 0
    iops_write: int = 0
    bps_total: int = 0
    bps_read: int = 0
    bps_write: int = 0

    def __post_init__(self) -> None:
        for name, value in self.as_qmp().items():
            if value < 0:
                raise ThrottleError(f"throttle limit {name} {value} is negative")
        if self.iops_total and (self.iops_read or self.iops_write):
            raise ThrottleError("iops (total) cannot be combined with iops_read/iops_write")
        if self.bps_total and (self.bps_read or self.bps_write):
            raise ThrottleError("bps (total) cannot be combined with bps_read/bps_write")

    @classmethod
    def parse(
        cls,
        *,
        iops: int | str | None = None,
        iops_read: int | str | None = None,
        iops_write: int | str | None = None,
        bps: int | str | None = None,
        bps_read: int | str | None = None,
        bps_write: int | str | None = None,
    ) -> ThrottleLimits:
        """Limits as a keyword takes them: request counts, and bandwidths as sizes per second
        (``10M`` = 10 MiB/s); None, empty, ``NONE`` or 0 leave a limit out.

        Raises:
            ThrottleError: a count that is not a whole number, a bandwidth that is not a size, a
                negative limit, or a total combined with per-direction limits.
        """
        return cls(
            iops_total=_limit(iops, "iops"),
            iops_read=_limit(iops_read, "iops_read"),
            iops_write=_limit(iops_write, "iops_write"),
            bps_total=_limit(bps, "bps", size=True),
            bps_read=_limit(bps_read, "bps_read", size=True),
            bps_write=_limit(bps_write, "bps_write", size=True),
        )

    @property
    def is_unlimited(self) -> bool:
        return not any(self.as_qmp().values())

    def as_qmp(self) -> dict[str, int]:
        """The ``limits`` value for ``qom-set`` (every field, so none keeps an old value)."""
        return dict(
            zip(
                THROTTLE_FIELDS,
                (
                    self.iops_total,
                    self.iops_read,
                    self.iops_write,
                    self.bps_total,
                    self.bps_read,
                    self.bps_write,
                ),
                strict=True,
            )
        )

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in self.as_qmp().items() if value]
        return ", ".join(parts) or "unlimited"


def _limit(value: int | str | None, what: str, *, size: bool = False) -> int:
    """One throttle limit: 0 (none) for None, empty, ``NONE`` and 0."""
    if value is None or str(value).strip().upper() in ("", "NONE", "0"):
        return 0
    try:
        number = parse_size(str(value), what) if size else int(str(value))
    except (VmSpecError, ValueError):
        raise ThrottleError(
            f"{what} '{value}' is not a {'size per second' if size else 'whole number'}"
        ) from None
    if number < 0:
        raise ThrottleError(f"{what} '{value}' is negative")
    return number


def throttle_names(node: str) -> tuple[str, str]:
    """(throttle group object id, throttle node name) used for namespace node ``node``."""
    return f"tg-{node}", f"throttle-{node}"


def namespaces_of(vm: Vm, device: str) -> tuple[NamespaceHandle, ...]:
    """The namespaces ``device`` names: a controller id (all its namespaces), a namespace's block
    node (``nvme0n1``) or ``<controller>/<nsid>`` (``nvme0/2``).

    Raises:
        ThrottleError: nothing of that name, naming what there is.
    """
    for handle in vm.controllers:
        if device == handle.id:
            return handle.namespaces
        for ns in handle.namespaces:
            if device in (ns.node, f"{handle.id}/{ns.nsid}"):
                return (ns,)
    known = ", ".join(
        [c.id for c in vm.controllers] + [ns.node for c in vm.controllers for ns in c.namespaces]
    )
    raise ThrottleError(f"VM '{vm.name}' has no NVMe controller or namespace '{device}' (known: {known})")


def ensure_throttle_node(vm: Vm, ns: NamespaceHandle) -> str:
    """Put ``ns``'s protocol node under a throttle node of its own group (once per QEMU run);
    return the group's id.

    Raises:
        ThrottleError: QEMU refused a step (its error class and text quoted).
    """
    group, node = throttle_names(ns.node)
    try:
        nodes = vm.execute("query-named-block-nodes", {"flat": True})
        if any(isinstance(n, Mapping) and n.get("node-name") == node for n in nodes):
            return group
        vm.execute("object-add", {"qom-type": "throttle-group", "id": group})
        vm.execute(
            "blockdev-add",
            {"driver": "throttle", "node-name": node, "throttle-group": group, "file": ns.file_node},
        )
        options: dict[str, Any] = {"driver": ns.format, "node-name": ns.node, "file": node}
        if ns.format == "raw" and ns.nbd is None:
            options["size"] = ns.size
        vm.execute("blockdev-reopen", {"options": [options]})
    except VmError as error:
        raise ThrottleError(
            f"cannot put namespace node '{ns.node}' of VM '{vm.name}' under a throttle group: {error}"
        ) from None
    return group


def set_throttle(vm: Vm, device: str, limits: ThrottleLimits, log: Channel) -> list[str]:
    """Apply ``limits`` to every namespace ``device`` names (see :func:`namespaces_of`), live; return
    the throttle groups changed. Unlimited limits clear the throttle (recorded as ``clear``).

    Raises:
        ThrottleError: unknown device, or QEMU refused the limits.
    """
    namespaces = namespaces_of(vm, device)
    groups = []
    for ns in namespaces:
        group = ensure_throttle_node(vm, ns)
        try:
            vm.execute("qom-set", {"path": group, "property": "limits", "value": limits.as_qmp()})
        except VmError as error:
            raise ThrottleError(
                f"QEMU refused throttle limits {limits.describe()} for '{device}': {error}"
            ) from None
        groups.append(group)
    if limits.is_unlimited:
        log.record("throttle", "clear", {"device": device})
    else:
        log.record("throttle", "apply", {"device": device, **{k: v for k, v in limits.as_qmp().items() if v}})
    return groups


def throttle(vm: Vm, device: str, limits: ThrottleLimits, log: Channel) -> list[str]:
    """:func:`set_throttle` with limits that limit something (removing them is :func:`set_throttle`
    with unlimited limits).

    Raises:
        ThrottleError: no limit given, unknown device, or QEMU refused the limits.
    """
    if limits.is_unlimited:
        raise ThrottleError(
            "no throttle limit given (use iops=, bps=, iops_read=, ...; or Clear IO Throttle)"
        )
    return set_throttle(vm, device, limits, log)


def get_throttle(vm: Vm, device: str) -> dict[str, dict[str, int]]:
    """Current limits per namespace node of ``device`` (nodes never throttled are left out)."""
    result: dict[str, dict[str, int]] = {}
    for ns in namespaces_of(vm, device):
        group, _ = throttle_names(ns.node)
        try:
            value = vm.execute("qom-get", {"path": group, "property": "limits"})
        except VmError:
            continue
        result[ns.node] = {k: int(value.get(k, 0)) for k in THROTTLE_FIELDS}
    return result


__all__ = [
    "THROTTLE_FIELDS",
    "HotplugError",
    "PlugResult",
    "ThrottleError",
    "ThrottleLimits",
    "UnplugResult",
    "controller",
    "ensure_throttle_node",
    "fault_channel",
    "get_throttle",
    "hot_plug",
    "hot_unplug",
    "namespaces_of",
    "path_io",
    "set_throttle",
    "throttle",
    "throttle_names",
]


def set_critical_warning(vm: Vm, device: str, bits: int, log: Channel) -> None:
    """Raise (``bits`` > 0) or clear (0) the SMART critical warning of controller ``device``: QEMU's
    ``smart_critical_warning`` property (bit 0 spare, 1 temperature, 2 reliability, 3 read-only,
    4 volatile backup); the guest sees it in ``nvme smart-log`` and gets an asynchronous event.

    Raises:
        HotplugError: no such controller.
        VmError: bits outside 0..255, or QEMU refused the value.
    """
    controller(vm, device)
    if not 0 <= bits <= 0xFF:
        raise VmError(f"critical warning {bits} of '{device}' is not a byte (0..255)")
    try:
        vm.execute(
            "qom-set",
            {"path": f"/machine/peripheral/{device}", "property": "smart_critical_warning", "value": bits},
        )
    except VmError as error:
        raise VmError(f"cannot set the critical warning of '{device}' on VM '{vm.name}': {error}") from None
    log.record("smart_warning", "set" if bits else "clear", {"device": device, "critical_warning": bits})


def follow_drive_warnings(vm: Vm, log: Channel) -> list[str]:
    """Link every controller of ``vm`` with a namespace on an emulated drive (``nbd=${drive.uri}``)
    to that drive: when the drive raises or clears its critical warning, the controller does too.
    Returns ``controller <- drive`` for each link."""
    links = []
    for handle in vm.controllers:
        for ns in handle.namespaces:
            drive = drive_serving(ns.nbd) if ns.nbd else None
            if drive is None:
                continue

            def forward(bits: int, device: str = handle.id) -> None:
                if vm.is_running():
                    set_critical_warning(vm, device, bits, log)

            drive.on_critical_warning(forward)
            links.append(f"{handle.id} <- drive {drive.name}")
            break
    return links
