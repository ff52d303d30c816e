"""Keywords that run fault schedules in the background."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from robot.api import logger
from robot.api.deco import keyword

from ChaosLibrary.context import ChaosContext, injector_handle, schedule_handle
from nvmechaos.faults import Injector, Operation, Schedule, load_plan, repeated_fault


class ScheduleKeywords:
    """Repeat a latency spike or an error burst on a plan while the workload runs."""

    def __init__(self, context: ChaosContext) -> None:
        self.ctx = context

    @keyword
    def start_fault_schedule(
        self,
        injector: Injector,
        *,
        duration: timedelta,
        every: timedelta,
        count: int | None = None,
        delay: str | None = None,
        operation: Operation | str = "read,write,flush",
        error_rate: str | None = None,
        errno: str | None = None,
        start_after: timedelta = timedelta(0),
    ) -> Schedule:
        """Start applying a fault for ``duration`` every ``every``, ``count`` times (endless when
        not given), in the background, and return the schedule.

        The fault is a latency spike of ``delay`` on each ``operation`` (default: read, write and
        flush; one of the operations, several separated by commas, or ``all``), or, with
        ``error_rate`` instead of ``delay``, I/O errors (``errno``, default EIO) on a fraction of
        the requests of ``operation``. ``delay`` needs its unit (``100ms``, ``0.1s``; a bare number
        such as ``delay=100`` is refused, as in `Inject Latency Spike`) and is at most 3600 s.
        ``duration``, ``every`` and ``start_after`` are Robot times (``3s``, ``500ms``; a bare
        number is seconds; at most 3600 s each). The first window starts ``start_after`` from now;
        windows keep to the plan on the monotonic clock. Every apply and clear is on the fault
        timeline. The schedule ends at the test's (or suite's) end if still running.

        Example:
        | ${spikes} =    Start Fault Schedule    ${injector}    delay=100ms    duration=3s    every=10s
        | ...    count=3
        | ${bursts} =    Start Fault Schedule    ${injector}    error_rate=0.2    operation=write
        | ...    duration=1s    every=5s
        """
        target = injector_handle(injector)
        params = repeated_fault(delay=delay, error_rate=error_rate, operation=operation, errno=errno)
        schedule = Schedule.periodic(
            target,
            params,
            duration=duration.total_seconds(),
            every=every.total_seconds(),
            count=count,
            start_after=start_after.total_seconds(),
            name=self.ctx.next_name("schedule"),
        )
        schedule.start()
        self.ctx.own_fault(schedule)
        times = count if count is not None else "endless"
        logger.info(
            f"{schedule.name}: {params.as_dict()} for {duration.total_seconds():g} s every "
            f"{every.total_seconds():g} s, {times} time(s), on {target.name}"
        )
        return schedule

    @keyword
    def start_fault_plan(self, injector: Injector, plan: Path | Sequence[Mapping[str, object]]) -> Schedule:
        """Start applying the faults of ``plan`` at their times from now, in the background, and
        return the schedule (stop and wait for it like one from `Start Fault Schedule`).

        ``plan`` is a YAML file (a list of windows, or ``windows:`` with one) or a list of
        dictionaries. Each window has ``at`` and ``duration`` and either delays (``read``,
        ``write``, ``flush``, ``trim``, ``zero``; each with its unit, ``100ms``: a bare number is
        refused) or ``error_rate`` with optional ``operation`` and ``errno``. ``at`` and
        ``duration`` are times (a bare number is seconds; at most 3600 s). Windows of one kind must
        not overlap; the file is checked before anything starts.

        | # plan.yaml
        | windows:
        |   - {at: 2s, duration: 3s, read: 100ms, write: 100ms}
        |   - {at: 6s, duration: 1s, error_rate: 0.1, operation: write, errno: EIO}

        Example:
        | ${schedule} =    Start Fault Plan    ${injector}    ${CURDIR}/plan.yaml
        | &{spike} =    Create Dictionary    at=1s    duration=2s    read=50ms
        | ${schedule} =    Start Fault Plan    ${injector}    ${{[$spike]}}
        """
        target = injector_handle(injector)
        schedule = Schedule(target, load_plan(plan), name=self.ctx.next_name("plan"))
        schedule.start()
        self.ctx.own_fault(schedule)
        logger.info(f"{schedule.name}: started on {target.name}")
        return schedule

    @keyword
    def wait_for_fault_schedule(self, schedule: Schedule, timeout: timedelta = timedelta(minutes=5)) -> None:
        """Wait until every window of a schedule with a ``count`` has been applied and cleared.

        ``timeout`` is a Robot time (``60s``, ``5 min``, ``2 hours``; a bare number is seconds).
        Fails when the schedule is not done within ``timeout``, or when it stopped on an error
        (the injector died).

        Example:
        | Wait For Fault Schedule    ${schedule}    timeout=60s
        """
        schedule_handle(schedule).wait(timeout.total_seconds())

    @keyword
    def stop_fault_schedule(self, schedule: Schedule) -> None:
        """Stop a schedule now; the fault it applied, if any, is cleared.

        Fails when the schedule had stopped on an error (the injector died).

        Example:
        | Stop Fault Schedule    ${schedule}
        """
        target = schedule_handle(schedule)
        target.stop()
        self.ctx.forget(target)
        logger.info(f"{target.name}: {target.applied} window(s) applied")
        target.check()
