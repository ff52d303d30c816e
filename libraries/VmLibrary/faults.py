"""Keywords for faults QEMU makes over QMP (hot-unplug/plug, throttling) and for lining up fio's
logs from the guest with the host clock the fault timeline is stamped on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from nvmechaos.analysis.runclock import (
    GUEST_CLOCK_COMMAND,
    ClockSample,
    RunClock,
    align_run,
    estimate_offset,
    parse_guest_clock,
)
from nvmechaos.errors import NvmeChaosError
from nvmechaos.timeline import Channel, Event
from nvmechaos.vm import Vm
from nvmechaos.vm.faults import (
    ThrottleLimits,
    fault_channel,
    get_throttle,
    hot_plug,
    hot_unplug,
    set_throttle,
)
from nvmechaos.vm.spec import parse_size
from VmLibrary.context import VmContext, fail, seconds, whole
from VmLibrary.context import as_vm as _vm


def _count(value: Any, what: str, sizes: bool = False) -> int:
    if value is None or str(value).strip().upper() in ("", "NONE", "0"):
        return 0
    try:
        number = parse_size(str(value), what) if sizes else int(str(value))
    except (NvmeChaosError, ValueError):
        fail(f"{what} '{value}' is not a {'size per second' if sizes else 'whole number'}")
    if number < 0:
        fail(f"{what} '{value}' is negative")
    return number


class FaultKeywords:
    """Hot-unplug, hot-plug, throttle; the VM fault timeline; guest clock alignment."""

    def __init__(self, context: VmContext) -> None:
        self.ctx = context
        self._logs: list[tuple[Vm, Channel]] = []

    def log_of(self, vm: Vm) -> Channel:
        for known, log in self._logs:
            if known is vm:
                return log
        log = fault_channel(vm.name, self.ctx.timeline)
        self._logs.append((vm, log))
        return log

    @keyword("Hot Unplug NVMe Device")
    def hot_unplug_nvme_device(self, vm: Vm, device: str, timeout: str | float = "10s") -> float:
        """Unplug the NVMe controller ``device`` (its qdev id, e.g. ``nvme0``) from ``vm`` with QMP
        ``device_del``, wait for QEMU's ``DEVICE_DELETED`` and return the seconds in between.

        The guest sees a surprise removal: I/O in flight fails (fio reports ``error=5``, EIO).
        The unplug is stamped on the VM's fault timeline (`Get VM Fault Timeline`); the fault
        window lasts until `Hot Plug NVMe Device` has the namespace usable again (a controller with
        several namespaces cannot be plugged back: QEMU takes no hot-plugged namespaces). Fails with QEMU's
        error class and text when it refuses, and when no ``DEVICE_DELETED`` arrives within
        ``timeout`` (a Robot time: ``10s``, ``1 min``; a bare number is seconds).

        Example:
        | ${seconds} =    Hot Unplug NVMe Device    ${vm}    nvme0
        | Should Be True    ${seconds} < 2
        """
        target = _vm(vm)
        limit = seconds(timeout)
        try:
            result = hot_unplug(target, str(device), self.log_of(target), timeout=limit)
        except NvmeChaosError as error:
            fail(error)
        logger.info(
            f"'{device}' of VM '{target.name}' unplugged: DEVICE_DELETED "
            f"{result.seconds:.3f} s after device_del"
        )
        return result.seconds

    @keyword("Hot Plug NVMe Device")
    def hot_plug_nvme_device(self, vm: Vm, device: str, timeout: str | float = "10s") -> float:
        """Plug the NVMe controller ``device`` back into ``vm`` as it was built (same root port,
        serial, block node and namespaces: QMP ``device_add``), wait until the guest can read every
        one of its namespaces (``/dev/nvmeXnY`` present and its first 4 KiB readable) and return the
        seconds from ``device_add`` to then (polled every 50 ms over SSH, so add up to ~0.1 s).

        Fails with QEMU's error class and text when it refuses (e.g. the device is still plugged),
        and with the console's last lines when the namespace is not usable within ``timeout`` (a
        Robot time: ``5s``; a bare number is seconds).
        Only single-namespace controllers can be plugged back (QEMU's NVMe bus takes no hot-plugged
        namespaces): give the controllers you unplug and replug one namespace each.

        Example:
        | Hot Unplug NVMe Device    ${vm}    nvme0
        | ${seconds} =    Hot Plug NVMe Device    ${vm}    nvme0    timeout=5
        """
        target = _vm(vm)
        limit = seconds(timeout)
        try:
            result = hot_plug(target, str(device), self.log_of(target), timeout=limit)
        except NvmeChaosError as error:
            fail(error)
        logger.info(
            f"'{device}' of VM '{target.name}' plugged: {', '.join(result.guest_devices)} usable "
            f"{result.seconds:.3f} s after device_add"
        )
        return result.seconds

    @keyword("Set IO Throttle")
    def set_io_throttle(
        self,
        vm: Vm,
        device: str,
        *,
        iops: Any = None,
        bps: Any = None,
        iops_read: Any = None,
        iops_write: Any = None,
        bps_read: Any = None,
        bps_write: Any = None,
    ) -> dict[str, int]:
        """Limit the I/O of ``device`` in ``vm`` now, while it runs, with a QEMU throttle group.

        ``device`` is a controller id (``nvme0``: all its namespaces), a namespace's block node
        (``nvme0n1``) or ``controller/nsid`` (``nvme0/2``). ``iops`` limits requests per second of
        any kind, ``iops_read``/``iops_write`` per direction; ``bps``, ``bps_read``, ``bps_write``
        bytes per second (``10M`` = 10 MiB/s). Limits not given are removed. Returns the limits
        applied. The change is stamped on the VM's fault timeline.

        The first call per namespace puts its storage under a throttle node (``blockdev-reopen``,
        safe during I/O). Fails with QEMU's error class and text when QEMU refuses.

        Examples:
        | Set IO Throttle    ${vm}    nvme0    iops=200
        | Set IO Throttle    ${vm}    nvme0n1    bps_write=10M    iops_read=500
        """
        target = _vm(vm)
        try:
            limits = ThrottleLimits(
                iops_total=_count(iops, "iops"),
                iops_read=_count(iops_read, "iops_read"),
                iops_write=_count(iops_write, "iops_write"),
                bps_total=_count(bps, "bps", sizes=True),
                bps_read=_count(bps_read, "bps_read", sizes=True),
                bps_write=_count(bps_write, "bps_write", sizes=True),
            )
            if limits.is_unlimited:
                fail("no throttle limit given (use iops=, bps=, iops_read=, ...; or Clear IO Throttle)")
            groups = set_throttle(target, str(device), limits, self.log_of(target))
        except NvmeChaosError as error:
            fail(error)
        logger.info(
            f"'{device}' of VM '{target.name}' throttled: {limits.describe()} (groups {', '.join(groups)})"
        )
        return {k: v for k, v in limits.as_qmp().items() if v}

    @keyword("Clear IO Throttle")
    def clear_io_throttle(self, vm: Vm, device: str) -> None:
        """Remove every throttle limit of ``device`` in ``vm`` now (see `Set IO Throttle`).

        Example:
        | Clear IO Throttle    ${vm}    nvme0
        """
        target = _vm(vm)
        try:
            set_throttle(target, str(device), ThrottleLimits(), self.log_of(target))
        except NvmeChaosError as error:
            fail(error)
        logger.info(f"'{device}' of VM '{target.name}' no longer throttled")

    @keyword("Get IO Throttle")
    def get_io_throttle(self, vm: Vm, device: str) -> dict[str, dict[str, int]]:
        """Return the throttle limits QEMU applies now, per namespace block node of ``device``
        (0 = unlimited; nodes never throttled are left out).

        Example:
        | ${limits} =    Get IO Throttle    ${vm}    nvme0
        | Should Be Equal As Integers    ${limits}[nvme0n1][iops-total]    200
        """
        target = _vm(vm)
        try:
            return get_throttle(target, str(device))
        except NvmeChaosError as error:
            fail(error)

    @keyword("Get VM Fault Timeline")
    def get_vm_fault_timeline(self, vm: Vm | None = None) -> list[Event]:
        """Return the QMP faults (hot-unplug/plug, throttle) of ``vm``, or of every VM when not
        given, oldest first, as fault events (``kind``, ``action``, ``params``, ``monotonic``,
        ``wall``, ``injector`` = ``qmp:<vm name>``), and log them as a table. Pass them, with
        ChaosLibrary's `Get Fault Timeline`, to `Fault Impact Should Be Within`.

        Example:
        | ${events} =    Get VM Fault Timeline    ${vm}
        | Should Be Equal    ${events}[0].action    apply
        """
        logs = [self.log_of(_vm(vm))] if vm not in (None, "") else [log for _, log in self._logs]
        events = sorted((e for log in logs for e in log.events), key=lambda e: e.monotonic)
        if events:
            self.ctx.log_timeline(events)
        return events

    @keyword("Measure Guest Clock")
    def measure_guest_clock(self, vm: Vm, samples: int = 5) -> list[ClockSample]:
        """Compare the guest's wall clock with the host's ``samples`` (1 or more) times over SSH and
        return the samples (for `Align Fio Logs To Host Clock`); logs the offset and its uncertainty
        (half the shortest round trip).

        Example:
        | ${before} =    Measure Guest Clock    ${vm}
        """
        target = _vm(vm)
        if whole(samples, "samples") < 1:
            fail(f"samples '{samples}' is not 1 or more")
        result: list[ClockSample] = []
        try:
            ssh = target.ssh()
            try:
                for _ in range(int(samples)):
                    before = time.time()
                    output = ssh.run(GUEST_CLOCK_COMMAND, timeout=15)
                    after = time.time()
                    result.append(ClockSample(before, after, parse_guest_clock(output.stdout)))
            finally:
                ssh.close()
            offset, uncertainty = estimate_offset(result)
        except NvmeChaosError as error:
            fail(error)
        logger.info(
            f"guest clock of VM '{target.name}' is {offset * 1000:+.1f} ms off the host's "
            f"(± {uncertainty * 1000:.1f} ms)"
        )
        return result

    @keyword("Align Fio Logs To Host Clock")
    def align_fio_logs_to_host_clock(
        self, run_dir: str, before: list[ClockSample] | None = None, after: list[ClockSample] | None = None
    ) -> RunClock:
        """Rewrite the fio logs in ``run_dir`` (written in the guest with ``log_unix_epoch=1``) relative
        to fio's start, as fio writes them by default (originals kept in ``epoch/``), find fio's
        start on the host's ``time.monotonic()`` from the guest clock ``before``/``after`` samples
        of `Measure Guest Clock`, and save it as ``timeline.json`` in ``run_dir``, where
        `Fault Impact Should Be Within` finds it. Returns the clock (``fio_start_monotonic``,
        ``uncertainty_s``, ...). Without samples, fio ran on this host (``log_unix_epoch=1`` there
        too): its logs are put on the host clock exactly.

        Assumes I/O completed in fio's first log window (start faults after it).

        Examples:
        | ${clock} =    Align Fio Logs To Host Clock    ${prepared.run_dir}    ${before}    ${after}
        | ${clock} =    Align Fio Logs To Host Clock    ${result.artifacts.directory}
        """
        directory = Path(run_dir)
        if not directory.is_dir():
            fail(f"fio run folder '{run_dir}' does not exist")
        for what, samples in (("before", before), ("after", after)):
            if samples and (
                not isinstance(samples, list | tuple) or not all(isinstance(s, ClockSample) for s in samples)
            ):
                fail(f"{what} is not a list of samples from `Measure Guest Clock`: '{samples}'")
        logs = sorted(directory.glob("fio_*.*.log"))
        try:
            clock = align_run(logs, before or (), after or ())
            clock.save(directory)
        except (NvmeChaosError, OSError) as error:
            fail(error)
        drift = f", drift {clock.drift_s * 1000:+.1f} ms over the run" if clock.drift_s is not None else ""
        logger.info(
            f"fio started at host monotonic {clock.fio_start_monotonic:.3f} s (guest clock "
            f"{clock.guest_offset_s * 1000:+.1f} ms off the host's, "
            f"± {clock.uncertainty_s * 1000:.1f} ms{drift})"
        )
        return clock
