"""Keywords for faults QEMU makes over QMP (hot-unplug/plug, throttling) and for lining up fio's
logs from the guest with the host clock the fault timeline is stamped on."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from robot.api import logger
from robot.api.deco import keyword

from nvmechaos.analysis.runclock import (
    ClockSample,
    RunClock,
    align_run_dir,
    estimate_offset,
    measure_guest_clock,
)
from nvmechaos.timeline import Event
from nvmechaos.vm import Vm, as_vm
from nvmechaos.vm.faults import (
    PcieError,
    ResetKind,
    SmartWarning,
    ThrottleLimits,
    controller,
    flap,
    get_throttle,
    hot_plug,
    hot_unplug,
    inject_pcie_error,
    kernel_log,
    path_io,
    pcie_error_report,
    reset_controller,
    set_critical_warning,
    set_throttle,
    throttle,
    wait_for_guest_io,
    wait_for_smart_warning,
    watch_smart_events,
)
from nvmechaos.vm.machine import FAULT_SOURCE_PREFIX
from nvmechaos_robot import fail
from VmLibrary.context import VmContext


class FaultKeywords:
    """Hot-unplug, hot-plug, throttle; the VM fault timeline; guest clock alignment."""

    def __init__(self, context: VmContext) -> None:
        self.ctx = context

    @keyword("Hot Unplug NVMe Device")
    def hot_unplug_nvme_device(
        self, vm: Vm, device: str, timeout: timedelta = timedelta(seconds=10)
    ) -> float:
        """Unplug the NVMe controller ``device`` (its qdev id, e.g. ``nvme0``) from ``vm`` with QMP
        ``device_del``, wait for QEMU's ``DEVICE_DELETED`` and return the seconds in between.

        This is a cooperative (ACPI) removal, not a surprise one: QEMU asks the guest, which
        releases the controller. On a single-path namespace the I/O fails (fio reports
        ``error=5``, EIO: start the workload with ``reopen=True`` to see it come back); on a path
        of a multi-port drive (``paths=2``) the guest's multipath moves it to the other path.
        The unplug is stamped on the VM's fault timeline (`Get VM Fault Timeline`); the fault
        window lasts until `Hot Plug NVMe Device` has the namespace usable again (a controller with
        several namespaces cannot be plugged back: QEMU takes no hot-plugged namespaces). Fails with QEMU's
        error class and text when it refuses, and when no ``DEVICE_DELETED`` arrives within
        ``timeout`` (a Robot time: ``10s``, ``1 min``; a bare number is seconds).

        Example:
        | ${seconds} =    Hot Unplug NVMe Device    ${vm}    nvme0
        | Should Be True    ${seconds} < 2
        """
        target = as_vm(vm)
        result = hot_unplug(target, device, target.faults, timeout=timeout.total_seconds())
        logger.info(result.describe(target.name))
        return result.seconds

    @keyword("Hot Plug NVMe Device")
    def hot_plug_nvme_device(self, vm: Vm, device: str, timeout: timedelta = timedelta(seconds=10)) -> float:
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
        target = as_vm(vm)
        result = hot_plug(target, device, target.faults, timeout=timeout.total_seconds())
        logger.info(result.describe(target.name))
        return result.seconds

    @keyword("All Paths Should Carry IO")
    def all_paths_should_carry_io(
        self, vm: Vm, device: str, paths: int | None = None, over: timedelta = timedelta(seconds=1)
    ) -> dict[str, int]:
        """Fail unless every path of the multi-port drive ``device`` (the id of any of its
        controllers, e.g. ``nvme0``) completes I/O in the guest over ``over`` (a Robot time), and
        there are ``paths`` of them (default: as many as it was launched with). Returns guest path
        disk (``nvme0c1n1``) -> I/Os completed. Run it while a workload runs: after `Hot Plug NVMe
        Device` of a path, it shows that the guest uses the path again (the I/O policy is
        ``round-robin``).

        Example:
        | Hot Plug NVMe Device    ${vm}    nvme0p1
        | All Paths Should Carry IO    ${vm}    nvme0
        """
        target = as_vm(vm)
        counts = path_io(target, device, over.total_seconds())
        wanted = paths if paths is not None else len(controller(target, device).paths)
        logger.info(
            "I/Os per path over "
            + f"{over.total_seconds():g} s: "
            + ", ".join(f"{p} {n}" for p, n in counts.items())
        )
        idle = [path for path, count in counts.items() if count <= 0]
        if len(counts) < wanted or idle:
            fail(
                f"'{device}' of VM '{target.name}': {len(counts) - len(idle)} of {wanted} paths carried I/O "
                f"over {over.total_seconds():g} s ("
                + (", ".join(f"{p} {n}" for p, n in counts.items()) or "no live path")
                + ")"
            )
        return counts

    @keyword("Inject PCIe Error")
    def inject_pcie_error(self, vm: Vm, device: str, severity: PcieError = PcieError.correctable) -> Event:
        """Inject a PCIe AER error of ``severity`` (``correctable``, ``non_fatal``, ``fatal``) into
        the link of NVMe controller ``device``, now, while I/O may run; return its timeline event
        (an instantaneous ``pcie_error`` fault).

        QEMU's NVMe device has no AER capability of its own, so the error is injected at its PCIe
        root port (``pcie_aer_inject_error``), which reports it to the guest; the guest's AER
        driver then recovers the devices below the port: nothing to do for a correctable error,
        the driver's error handlers for a non-fatal one, a link reset for a fatal one. Measured on
        QEMU 10 with Linux 6.1 under TCG: correctable and non-fatal errors are reported and
        recovered with no I/O stall; a fatal error resets the link, which QEMU's root port never
        reports active again, so recovery fails and I/O hangs for good (the guest is lost: use a
        VM of its own). Check the guest's reaction with `Guest Should Report PCIe Error`.

        Example:
        | ${error} =    Inject PCIe Error    ${vm}    nvme0    non_fatal
        | Guest Should Report PCIe Error    ${vm}    ${error}
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            event = inject_pcie_error(target, device, severity, target.faults, shell)
        logger.info(
            f"{PcieError(severity).value} PCIe error injected at {event.params['port']} above '{device}'"
        )
        return event

    @keyword("Guest Should Report PCIe Error")
    def guest_should_report_pcie_error(
        self, vm: Vm, error: Event, timeout: timedelta = timedelta(seconds=5)
    ) -> list[str]:
        """Fail unless the guest's kernel reported the PCIe error ``error`` (what `Inject PCIe
        Error` returned) within ``timeout`` (a Robot time) and, for an uncorrectable one, recovered
        the device (``AER: device recovery successful``); a failed recovery fails at once. Returns
        the kernel log lines found.

        Example:
        | ${error} =    Inject PCIe Error    ${vm}    nvme0    correctable
        | ${lines} =    Guest Should Report PCIe Error    ${vm}    ${error}    timeout=5s
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            lines = pcie_error_report(target, error, timeout.total_seconds(), shell)
        logger.info("guest kernel: " + " | ".join(lines))
        return lines

    @keyword("Reset NVMe Controller")
    def reset_nvme_controller(self, vm: Vm, device: str, kind: ResetKind = ResetKind.controller) -> float:
        """Reset NVMe controller ``device`` from inside the guest, now, while I/O may run, and return
        the seconds until the guest has it live again. ``kind``: ``controller`` (``nvme reset``),
        ``function`` (PCIe function-level reset through sysfs) or ``subsystem`` (``nvme
        subsystem-reset``; QEMU's NVMe emulation has no NVM subsystem reset, so the guest refuses
        it and this fails saying so). Recorded as a ``reset`` fault from the command until live.

        Example:
        | ${fio} =    Start Timed Fio Job On VM    ${vm}    faults/fault_workload    runtime=8    &{EVERY_IO}
        | Reset NVMe Controller    ${vm}    nvme0    function
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            seconds = reset_controller(target, device, kind, target.faults, shell)
        logger.info(f"{ResetKind(kind).value} reset of '{device}': live again after {seconds:.3f} s")
        return seconds

    @keyword("Flap NVMe Device")
    def flap_nvme_device(
        self,
        vm: Vm,
        device: str,
        cycles: int = 5,
        interval: timedelta = timedelta(milliseconds=200),
        timeout: timedelta = timedelta(seconds=10),
    ) -> dict[str, object]:
        """Unplug and plug NVMe controller ``device`` ``cycles`` times, ``interval`` (a Robot time)
        after each unplug is done and after each plug, while I/O may run, then wait until the guest
        reads its namespaces again (and, for a path of a multi-port drive, until the path is live).
        Fails when an unplug or the final return takes longer than ``timeout``. Returns
        ``cycles``, ``stable_s`` (seconds from the last plug until stable) and ``unplug_s``.

        An unplug is a cooperative (ACPI) removal: QEMU's ``device_del`` asks the guest, which
        releases the device (0.1-0.5 s here), so a cycle cannot be shorter than that.

        Example:
        | ${flaps} =    Flap NVMe Device    ${vm}    nvme0p1    cycles=5    interval=200ms
        | Should Be True    ${flaps}[stable_s] < 5
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            result = flap(
                target,
                device,
                target.faults,
                cycles=cycles,
                interval=interval.total_seconds(),
                timeout=timeout.total_seconds(),
                shell=shell,
            )
        logger.info(
            f"'{device}' flapped {result.cycles} times; stable {result.stable_s:.3f} s after the last plug; "
            f"unplugs took {', '.join(f'{s:.2f}' for s in result.unplug_s)} s"
        )
        return {"cycles": result.cycles, "stable_s": result.stable_s, "unplug_s": list(result.unplug_s)}

    @keyword("Watch SMART Events In Guest")
    def watch_smart_events_in_guest(self, vm: Vm, device: str) -> str:
        """Make the guest report and record SMART/Health asynchronous events of NVMe controller
        ``device``: Linux enables only notice events, so the critical warning bits are added to its
        Asynchronous Event Configuration (``nvme set-feature -f 0x0b``) and the kernel's
        ``nvme_async_event`` trace is turned on. Returns the guest's controller name. After one
        event, the controller reports no other until the host reads the SMART log (`Guest Should
        See SMART Warning` does).

        Example:
        | Watch SMART Events In Guest    ${vm}    nvme0
        | Set SMART Critical Warning    ${vm}    nvme0    2
        | Guest Should See SMART Warning    ${vm}    nvme0    temperature
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            return watch_smart_events(target, device, shell)

    @keyword("Guest Should See SMART Warning")
    def guest_should_see_smart_warning(
        self, vm: Vm, device: str, warning: SmartWarning, timeout: timedelta = timedelta(seconds=5)
    ) -> int:
        """Fail unless, within ``timeout`` (a Robot time), the guest's ``nvme smart-log`` of NVMe
        controller ``device`` shows the critical warning ``warning`` (``spare``, ``temperature``,
        ``reliability``, ``read_only``, ``volatile_backup``) and the guest received the
        asynchronous event that announces it (watched with `Watch SMART Events In Guest`; its
        information field: temperature, spare, or reliability for the others). Returns the
        critical warning byte the guest read.

        Example:
        | Set SMART Critical Warning    ${vm}    nvme0    8
        | Guest Should See SMART Warning    ${vm}    nvme0    read_only
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            name, byte, event = wait_for_smart_warning(
                target, device, warning, timeout.total_seconds(), shell
            )
        logger.info(f"guest {name}: critical_warning 0x{byte:02x}, SMART event 0x{event:06x}")
        return byte

    @keyword("Wait Until Guest Does NVMe IO")
    def wait_until_guest_does_nvme_io(self, vm: Vm, timeout: timedelta = timedelta(seconds=60)) -> float:
        """Wait until the guest of ``vm`` completes NVMe I/O (its NVMe block devices' read and write
        counts grow over 0.2 s), i.e. until a workload started in the background really runs (a
        TCG guest takes 1-3 s to load fio); fail after ``timeout`` (a Robot time). Returns the
        seconds waited. Sleep after it to give a fault its baseline.

        Example:
        | ${fio} =    Start Timed Fio Job On VM    ${vm}    faults/probe_qd1    runtime=16
        | Wait Until Guest Does NVMe IO    ${vm}
        """
        return wait_for_guest_io(as_vm(vm), timeout.total_seconds())

    @keyword("Mark Guest Kernel Log")
    def mark_guest_kernel_log(self, vm: Vm) -> int:
        """The number of lines the guest kernel's log (``dmesg``) has now: give it to `Get Guest
        Kernel Log` as ``after`` to read only what came later.

        Example:
        | ${mark} =    Mark Guest Kernel Log    ${vm}
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            return len(kernel_log(shell))

    @keyword("Get Guest Kernel Log")
    def get_guest_kernel_log(self, vm: Vm, match: str | None = None, after: int = 0) -> list[str]:
        """The guest kernel's log (``dmesg``) lines after the first ``after`` (a `Mark Guest Kernel
        Log`), only those matching the regular expression ``match`` when given (e.g.
        ``nvme|AER``), logged and returned.

        Example:
        | ${mark} =    Mark Guest Kernel Log    ${vm}
        | ${lines} =    Get Guest Kernel Log    ${vm}    match=nvme.*(timeout|reset)    after=${mark}
        """
        target = as_vm(vm)
        with target.ssh() as shell:
            lines = kernel_log(shell)[after:]
        if match:
            try:
                expression = re.compile(match)
            except re.error as error:
                fail(f"match '{match}' is not a regular expression: {error}")
            lines = [line for line in lines if expression.search(line)]
        logger.info("\n".join(lines) or "(no lines)")
        return lines

    @keyword("Set IO Throttle")
    def set_io_throttle(
        self,
        vm: Vm,
        device: str,
        *,
        iops: int | None = None,
        bps: str | None = None,
        iops_read: int | None = None,
        iops_write: int | None = None,
        bps_read: str | None = None,
        bps_write: str | None = None,
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
        target = as_vm(vm)
        limits = ThrottleLimits.parse(
            iops=iops,
            iops_read=iops_read,
            iops_write=iops_write,
            bps=bps,
            bps_read=bps_read,
            bps_write=bps_write,
        )
        groups = throttle(target, device, limits, target.faults)
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
        target = as_vm(vm)
        set_throttle(target, device, ThrottleLimits(), target.faults)
        logger.info(f"'{device}' of VM '{target.name}' no longer throttled")

    @keyword("Get IO Throttle")
    def get_io_throttle(self, vm: Vm, device: str) -> dict[str, dict[str, int]]:
        """Return the throttle limits QEMU applies now, per namespace block node of ``device``
        (0 = unlimited; nodes never throttled are left out).

        Example:
        | ${limits} =    Get IO Throttle    ${vm}    nvme0
        | Should Be Equal As Integers    ${limits}[nvme0n1][iops-total]    200
        """
        return get_throttle(as_vm(vm), device)

    @keyword("Set SMART Critical Warning")
    def set_smart_critical_warning(self, vm: Vm, device: str, bits: int) -> None:
        """Raise the SMART critical warning ``bits`` on the NVMe controller ``device`` of ``vm``
        (``0`` clears it), through QEMU's ``smart_critical_warning`` property.

        Bits (NVMe SMART / Health log): 1 available spare low, 2 temperature, 4 reliability
        degraded, 8 read-only, 16 volatile memory backup failed. The guest sees the value in
        ``nvme smart-log`` and gets an asynchronous event. A controller whose namespace is on an
        emulated drive (DriveLibrary) follows that drive's warning by itself. Recorded on the VM's
        fault timeline (kind ``smart_warning``).

        Example:
        | Set SMART Critical Warning    ${vm}    nvme0    2
        | Set SMART Critical Warning    ${vm}    nvme0    0
        """
        target = as_vm(vm)
        set_critical_warning(target, device, bits, target.faults)
        logger.info(f"Critical warning of '{device}' on VM '{target.name}' set to 0x{bits:02x}")

    @keyword("Get VM Fault Timeline")
    def get_vm_fault_timeline(self, vm: Vm | None = None) -> list[Event]:
        """Return the QMP faults (hot-unplug/plug, throttle) of ``vm``, or of every VM when not
        given, oldest first, as timeline events (``kind``, ``action``, ``params``, ``monotonic``,
        ``wall``, ``source`` = ``qmp:<vm name>``), and log them as a table. Pass them, with
        ChaosLibrary's `Get Fault Timeline`, to `Fault Impact Should Be Within`.

        Example:
        | ${events} =    Get VM Fault Timeline    ${vm}
        | Should Be Equal    ${events}[0].action    apply
        """
        if vm is None or (isinstance(vm, str) and not vm):
            # Every VM's channel writes to the run's timeline under qmp:<name>.
            prefix = f"{FAULT_SOURCE_PREFIX}:"
            events = [e for e in self.ctx.timeline.events if e.source.startswith(prefix)]
        else:
            events = as_vm(vm).faults.events
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
        target = as_vm(vm)
        result = measure_guest_clock(target.ssh, samples)
        offset, uncertainty = estimate_offset(result)
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

        The log window of each job is its ``log_avg_msec`` in the run folder's ``job.fio``.
        Assumes I/O completed in fio's first log window (start faults after it).

        Examples:
        | ${clock} =    Align Fio Logs To Host Clock    ${prepared.run_dir}    ${before}    ${after}
        | ${clock} =    Align Fio Logs To Host Clock    ${result.artifacts.directory}
        """
        clock = align_run_dir(Path(run_dir), before or (), after or ())
        log_clock(clock)
        return clock


def log_clock(clock: RunClock) -> None:
    """Log where fio started on the host clock, and how sure that is."""
    drift = f", drift {clock.drift_s * 1000:+.1f} ms over the run" if clock.drift_s is not None else ""
    logger.info(
        f"fio started at host monotonic {clock.fio_start_monotonic:.3f} s (guest clock "
        f"{clock.guest_offset_s * 1000:+.1f} ms off the host's, "
        f"± {clock.uncertainty_s * 1000:.1f} ms{drift})"
    )
