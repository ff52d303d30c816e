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

import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from nvmechaos.drive.handle import drive_serving
from nvmechaos.faults.base import FaultError
from nvmechaos.timeline import Channel, Event
from nvmechaos.units import ArgumentError
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
    _check_pluggable(vm, handle)
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


@contextlib.contextmanager
def _guest_shell(vm: Vm, shell: GuestShell | None) -> Iterator[GuestShell]:
    """``shell`` when given (the caller closes it), else a connection of our own, closed after."""
    if shell is not None:
        yield shell
        return
    own = vm.ssh()
    try:
        yield own
    finally:
        own.close()


def _check_pluggable(vm: Vm, handle: ControllerHandle) -> None:
    """Raises HotplugError for a controller QEMU cannot plug back: several namespaces of its own."""
    if not handle.single_namespace and handle.subsystem is None:
        raise HotplugError(
            f"'{handle.id}' of VM '{vm.name}' has {len(handle.namespaces)} namespaces: QEMU cannot plug "
            "nvme-ns devices back (its NVMe bus has no hot-plug); give each hot-plugged controller one "
            "namespace"
        )


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
    with _guest_shell(vm, shell) as guest:
        before = _path_counts(str(guest.run(sample).stdout))
        time.sleep(seconds)
        after = _path_counts(str(guest.run(sample).stdout))
    return {path: after[path] - before.get(path, 0) for path in sorted(after)}


_NVME_IOS = "cat /sys/block/nvme*/stat 2>/dev/null | awk '{n += $1 + $5} END {print n + 0}'"


def wait_for_guest_io(vm: Vm, timeout: float, shell: GuestShell | None = None) -> float:
    """Wait until the guest completes NVMe I/O (the reads and writes of its NVMe block devices grow
    over 0.2 s: a workload started in the background really runs; a TCG guest takes 1-3 s to load
    fio); return the seconds waited.

    Raises:
        ArgumentError: ``timeout`` is not above zero.
        GuestFaultError: no I/O within ``timeout``.
    """
    positive_seconds(timeout)
    since = time.monotonic()
    with _guest_shell(vm, shell) as guest:
        while True:
            before = str(guest.run(_NVME_IOS, timeout=15).stdout).strip()
            time.sleep(0.2)
            after = str(guest.run(_NVME_IOS, timeout=15).stdout).strip()
            if before.isdigit() and after.isdigit() and int(after) > int(before):
                return time.monotonic() - since
            if time.monotonic() - since >= timeout:
                raise GuestFaultError(f"no NVMe I/O in the guest of VM '{vm.name}' within {timeout:g} s")


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
    "PCIE_ERRORS",
    "SMART_WARNINGS",
    "THROTTLE_FIELDS",
    "FlapResult",
    "GuestFaultError",
    "HotplugError",
    "PcieError",
    "PlugResult",
    "ResetKind",
    "SmartWarning",
    "ThrottleError",
    "ThrottleLimits",
    "UnplugResult",
    "controller",
    "critical_warning",
    "ensure_throttle_node",
    "fault_channel",
    "flap",
    "get_throttle",
    "guest_controller",
    "guest_pci_address",
    "hot_plug",
    "hot_unplug",
    "inject_pcie_error",
    "kernel_log",
    "namespaces_of",
    "path_io",
    "pcie_error_report",
    "reset_controller",
    "set_throttle",
    "smart_events",
    "throttle",
    "throttle_names",
    "wait_for_guest_io",
    "wait_for_kernel_message",
    "wait_for_smart_warning",
    "watch_smart_events",
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


# ----- datacenter faults: PCIe errors, resets, flaps, SMART events ------------------------------


class PcieError(str, Enum):
    """AER error classes: ``correctable`` (a receiver error the link fixes), ``non_fatal`` (an
    uncorrectable poisoned TLP: the driver is told, the link stays up), ``fatal`` (an uncorrectable
    data-link protocol error: the link is reset)."""

    correctable = "correctable"
    non_fatal = "non_fatal"
    fatal = "fatal"


#: ``pcie_aer_inject_error`` arguments per class, and the guest kernel line that reports it.
PCIE_ERRORS: Mapping[PcieError, tuple[str, str]] = {
    PcieError.correctable: ("-c {port} 0x1", "AER: Corrected error message received"),
    PcieError.non_fatal: ("{port} POISON_TLP", r"AER: Uncorrected \(Non-Fatal\) error message received"),
    PcieError.fatal: ("{port} DLP", r"AER: Uncorrected \(Fatal\) error message received"),
}


class ResetKind(str, Enum):
    """What a reset resets: ``controller`` (``nvme reset``: the driver disables and re-enables the
    controller), ``function`` (a PCIe function-level reset through sysfs), ``subsystem`` (``nvme
    subsystem-reset``: NVM subsystem reset, only where the controller supports it)."""

    controller = "controller"
    function = "function"
    subsystem = "subsystem"


class GuestFaultError(FaultError):
    """A fault made inside the guest failed, or the guest did not react as a check expected."""


@dataclass(frozen=True)
class FlapResult:
    """Flaps of a controller: cycles done, seconds from the last ``device_add`` until the guest
    read its namespaces again (stable), and the unplug (``device_del`` to ``DEVICE_DELETED``) times."""

    device: str
    cycles: int
    stable_s: float
    unplug_s: tuple[float, ...]


def guest_pci_address(vm: Vm, device: str) -> str | None:
    """The PCI address the guest gave controller ``device`` (``0000:03:00.0``, from QMP
    ``query-pci``: the bus numbers are the ones the guest programmed), None when it is not plugged."""

    def find(node: object) -> str | None:
        if isinstance(node, Mapping):
            if node.get("qdev_id") == device and {"bus", "slot", "function"} <= set(node):
                return f"0000:{int(node['bus']):02x}:{int(node['slot']):02x}.{int(node['function']):x}"
            node = list(node.values())
        for child in node if isinstance(node, list) else []:
            found = find(child)
            if found is not None:
                return found
        return None

    return find(vm.execute("query-pci"))


def guest_controller(vm: Vm, device: str, guest: GuestShell) -> str:
    """The guest's name (``nvme1``) of NVMe controller ``device`` (found by its PCI address, so
    each path of a multi-port drive is told apart), once it is live.

    Raises:
        HotplugError: no such controller.
        GuestFaultError: not plugged, or the guest has no live NVMe controller there.
    """
    controller(vm, device)
    address = guest_pci_address(vm, device)
    if address is None:
        raise GuestFaultError(f"'{device}' of VM '{vm.name}' is not plugged in")
    folder = f"/sys/bus/pci/devices/{address}/nvme"
    probe = f'for c in {folder}/nvme*; do [ "$(cat $c/state 2>/dev/null)" = live ] && echo "${{c##*/}}"; done'
    name = str(guest.run(probe, timeout=15).stdout).strip().split("\n")[0]
    if not name:
        raise GuestFaultError(
            f"the guest of VM '{vm.name}' has no live NVMe controller at {address} ('{device}')"
        )
    return name


def kernel_log(guest: GuestShell) -> list[str]:
    """The guest kernel's log lines (``dmesg``)."""
    return str(guest.run("dmesg", timeout=15).stdout).splitlines()


def inject_pcie_error(vm: Vm, device: str, severity: PcieError, log: Channel, shell: GuestShell) -> Event:
    """Inject an AER error of ``severity`` at the PCIe root port of controller ``device`` (QEMU's
    NVMe device has no AER capability of its own: the root port reports it, and the guest's AER
    driver recovers the devices below it). Recorded as an instantaneous ``pcie_error`` fault whose
    ``kernel_lines`` is the length of the guest's kernel log before it (see
    :func:`wait_for_kernel_message`).

    Raises:
        HotplugError: no such controller.
        VmError: QEMU refused the injection.
    """
    handle = controller(vm, device)
    before = len(kernel_log(shell))
    arguments = PCIE_ERRORS[PcieError(severity)][0].format(port=handle.bus)
    answer = vm.execute("human-monitor-command", {"command-line": f"pcie_aer_inject_error {arguments}"})
    if not str(answer).strip().startswith("OK"):  # "OK id: rp0 root bus: ..." on success
        raise VmError(f"QEMU refused the PCIe error on '{device}' of VM '{vm.name}': {str(answer).strip()}")
    params = {
        "device": device,
        "severity": PcieError(severity).value,
        "port": handle.bus,
        "kernel_lines": before,
    }
    event = log.record("pcie_error", "apply", params)
    log.record("pcie_error", "clear", {"device": device})
    return event


def wait_for_kernel_message(
    shell: GuestShell, pattern: str, after_line: int, timeout: float, poll: float = 0.2
) -> str | None:
    """The first guest kernel log line after line ``after_line`` that matches ``pattern`` (a
    regular expression), waiting up to ``timeout`` seconds; None if none came."""
    expression = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in kernel_log(shell)[after_line:]:
            if expression.search(line):
                return line
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def pcie_error_report(vm: Vm, error: Event, timeout: float, shell: GuestShell) -> list[str]:
    """The guest kernel's lines that reported the PCIe error ``error`` (what
    :func:`inject_pcie_error` recorded) and, for an uncorrectable one, its recovery, waiting up to
    ``timeout`` seconds for each.

    Raises:
        GuestFaultError: ``error`` is not a PCIe error event, no report came, or the recovery failed
            or was not reported.
    """
    if not (isinstance(error, Event) and error.kind == "pcie_error"):
        raise GuestFaultError(f"'{error}' is not a PCIe error event (use what Inject PCIe Error returned)")
    severity = PcieError(error.params["severity"])
    after = int(error.params["kernel_lines"])
    reported = wait_for_kernel_message(shell, PCIE_ERRORS[severity][1], after, timeout)
    if reported is None:
        raise GuestFaultError(
            f"the guest of VM '{vm.name}' reported no {severity.value} PCIe error within "
            f"{timeout:g} s (no kernel line matching '{PCIE_ERRORS[severity][1]}')"
        )
    if severity is PcieError.correctable:
        return [reported]
    outcome = wait_for_kernel_message(shell, "AER: device recovery (successful|failed)", after, timeout)
    if outcome is None or "failed" in outcome:
        raise GuestFaultError(
            f"the guest of VM '{vm.name}' did not recover from the {severity.value} PCIe "
            f"error within {timeout:g} s: {outcome or 'no recovery reported'}"
        )
    return [reported, outcome]


def reset_controller(vm: Vm, device: str, kind: ResetKind, log: Channel, shell: GuestShell) -> float:
    """Reset controller ``device`` from inside the guest while I/O may run, and return the seconds
    until the guest has it live again. Recorded as a ``reset`` fault from the command to then.

    Raises:
        HotplugError: no such controller.
        GuestFaultError: the guest has no live controller for it, refused the reset (a subsystem
            reset on a controller without NSSR support: its message), or the controller was not
            live again within 30 s.
    """
    name = guest_controller(vm, device, shell)
    command = {
        ResetKind.controller: f"nvme reset /dev/{name}",
        ResetKind.subsystem: f"nvme subsystem-reset /dev/{name}",
        ResetKind.function: (
            f"echo 1 > /sys/bus/pci/devices/$(basename $(readlink /sys/class/nvme/{name}/device))/reset"
        ),
    }[ResetKind(kind)]
    since = time.monotonic()
    log.record(
        "reset", "apply", {"device": device, "kind": ResetKind(kind).value, "guest": name}, monotonic=since
    )
    result = shell.run(
        f'{command} && n=0 && until [ "$(cat /sys/class/nvme/{name}/state)" = live ]; do '
        "[ $n -ge 600 ] && exit 3; n=$((n + 1)); usleep 50000; done",
        timeout=60,
    )
    if result.exit_code != 0:
        log.record("reset", "clear", {"device": device, "failed": True})
        why = (result.stderr or result.stdout).strip() or f"exit code {result.exit_code}"
        if result.exit_code == 3:
            why = "the controller was not live again within 30 s"
        raise GuestFaultError(
            f"{ResetKind(kind).value} reset of '{device}' ({name}) in VM '{vm.name}' failed: {why}"
        )
    done = log.record("reset", "clear", {"device": device})
    return done.monotonic - since


def flap(
    vm: Vm,
    device: str,
    log: Channel,
    *,
    cycles: int,
    interval: float,
    timeout: float = 10.0,
    shell: GuestShell,
) -> FlapResult:
    """Unplug and plug controller ``device`` ``cycles`` times, ``interval`` seconds apart (after
    each ``DEVICE_DELETED`` and after each ``device_add``), then wait until the guest reads its
    namespaces again. One ``flap`` fault on the timeline, from the first unplug until stable.

    Raises:
        ArgumentError: cycles below 1, an interval below 0, a timeout not above 0.
        HotplugError: unknown device, a device that cannot be plugged back, QEMU refused a step,
            an unplug not done within ``timeout``, or not stable within ``timeout``.
    """
    positive_seconds(timeout)
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise ArgumentError(f"cycles '{cycles}' is not a whole number of 1 or more")
    if not interval >= 0:
        raise ArgumentError(f"interval '{interval}' is negative")
    handle = controller(vm, device)
    _check_pluggable(vm, handle)
    wanted_paths = live_paths(handle, shell) if handle.subsystem is not None else 0
    log.record("flap", "apply", {"device": device, "cycles": cycles, "interval_s": interval})
    unplugs = []
    plugged = time.monotonic()
    try:
        for _ in range(cycles):
            since = time.monotonic()
            vm.execute("device_del", {"id": handle.id})
            vm.wait_for_event("DEVICE_DELETED", {"device": handle.id}, timeout, since=since)
            unplugs.append(time.monotonic() - since)
            time.sleep(interval)
            plugged = time.monotonic()
            vm.execute("device_add", handle.device_add_arguments())
            time.sleep(interval)
    except (VmError, QmpError) as error:
        log.record("flap", "clear", {"device": device, "failed": True})
        raise HotplugError(f"flap {len(unplugs) + 1} of '{device}' on VM '{vm.name}': {error}") from None
    devices = _wait_usable(vm, handle, shell, plugged + timeout, 0.05, paths=wanted_paths)
    if devices is None:
        log.record("flap", "clear", {"device": device, "failed": True})
        nvme = [line for line in kernel_log(shell) if "nvme" in line or "pcieport" in line][-3:]
        raise HotplugError(
            f"'{device}' of VM '{vm.name}' was not stable within {timeout:g} s after the last of "
            f"{cycles} flaps; guest kernel: {' | '.join(line.strip() for line in nvme) or '-'}"
        )
    stable = log.record("flap", "clear", {"device": device, "devices": list(devices)})
    return FlapResult(device, cycles, stable.monotonic - plugged, tuple(unplugs))


class SmartWarning(str, Enum):
    """SMART critical warning bits (NVMe SMART / Health log, byte 0)."""

    spare = "spare"
    temperature = "temperature"
    reliability = "reliability"
    read_only = "read_only"
    volatile_backup = "volatile_backup"


#: Bit of each warning, and the Asynchronous Event Information a SMART/Health event carries for it
#: (0 subsystem reliability, 1 temperature threshold, 2 spare below threshold).
SMART_WARNINGS: Mapping[SmartWarning, tuple[int, int]] = {
    SmartWarning.spare: (0x01, 2),
    SmartWarning.temperature: (0x02, 1),
    SmartWarning.reliability: (0x04, 0),
    SmartWarning.read_only: (0x08, 0),
    SmartWarning.volatile_backup: (0x10, 0),
}
_TRACING = "/sys/kernel/tracing"
_AEN = re.compile(r"nvme_async_event: (nvme\d+): NVME_AEN=0x([0-9a-fA-F]+)")


def watch_smart_events(vm: Vm, device: str, shell: GuestShell) -> str:
    """Make the guest controller of ``device`` report SMART/Health asynchronous events and record
    them: Linux enables only notice events (Asynchronous Event Configuration, feature 0x0b), so the
    SMART critical warning bits are added to it, and the kernel's ``nvme_async_event`` trace event
    is turned on. Returns the guest controller's name. Linux rewrites the feature on a controller
    reset: watch again after one.

    Raises:
        HotplugError: no such controller.
        GuestFaultError: the guest could not be set up (its message).
    """
    name = guest_controller(vm, device, shell)
    script = (
        f"set -e; mountpoint -q {_TRACING} || mount -t tracefs nodev {_TRACING}; "
        f"echo 1 > {_TRACING}/events/nvme/nvme_async_event/enable; "
        f"v=$(nvme get-feature /dev/{name} -f 0x0b | "
        "sed -n 's/.*Current value:\\(0x[0-9a-fA-F]*\\).*/\\1/p'); "
        f"nvme set-feature /dev/{name} -f 0x0b -v $(( ${{v:-0}} | 0xff )) >/dev/null"
    )
    result = shell.run(script, timeout=30)
    if result.exit_code != 0:
        raise GuestFaultError(
            f"cannot watch SMART events of '{device}' ({name}) in VM '{vm.name}': "
            f"{(result.stderr or result.stdout).strip() or f'exit code {result.exit_code}'}"
        )
    return name


def smart_events(shell: GuestShell) -> list[tuple[str, int]]:
    """(guest controller, event result) of every SMART/Health asynchronous event the guest's
    trace holds (``watch_smart_events``), oldest first."""
    output = str(shell.run(f"cat {_TRACING}/trace 2>/dev/null", timeout=15).stdout)
    events = []
    for match in _AEN.finditer(output):
        result = int(match.group(2), 16)
        if result & 0x7 == 1:  # Asynchronous Event Type 1: SMART / Health Status
            events.append((match.group(1), result))
    return events


def wait_for_smart_warning(
    vm: Vm, device: str, warning: SmartWarning, timeout: float, shell: GuestShell
) -> tuple[str, int, int]:
    """Wait up to ``timeout`` seconds until the guest's SMART log of controller ``device`` shows
    ``warning`` and the guest received the SMART/Health event announcing it (its information field);
    return (guest controller, critical warning byte, event result).

    Raises:
        GuestFaultError: not both within ``timeout`` (the byte and the last event seen named).
    """
    kind = SmartWarning(warning)
    bit, info = SMART_WARNINGS[kind]
    deadline = time.monotonic() + timeout
    name = guest_controller(vm, device, shell)
    while True:
        byte = critical_warning(name, shell)  # reading the log also unmasks further events
        events = [r for c, r in smart_events(shell) if c == name and (r >> 8) & 0xFF == info]
        if byte & bit and events:
            return name, byte, events[-1]
        if time.monotonic() >= deadline:
            seen = "no SMART event" if not events else f"event 0x{events[-1]:06x}"
            raise GuestFaultError(
                f"the guest of VM '{vm.name}' did not see the {kind.value} warning of '{device}' "
                f"within {timeout:g} s: smart-log critical_warning 0x{byte:02x}, "
                f"{seen} (watch SMART events first: Watch SMART Events In Guest)"
            )
        time.sleep(0.2)


def critical_warning(guest_name: str, shell: GuestShell) -> int:
    """The guest's view of the controller's SMART critical warning byte (``nvme smart-log``)."""
    output = str(shell.run(f"nvme smart-log /dev/{guest_name} -o json", timeout=15).stdout)
    match = re.search(r'"critical_warning"\s*:\s*(\d+)', output)
    if match is None:
        raise GuestFaultError(
            f"nvme smart-log of {guest_name} has no critical_warning: {output.strip()[:200]}"
        )
    return int(match.group(1))
