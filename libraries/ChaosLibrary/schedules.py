"""Keywords that run fault schedules in the background."""

from __future__ import annotations

from robot.api import logger
from robot.api.deco import keyword

from ChaosLibrary.context import ChaosContext, fail
from ChaosLibrary.injectors import _duration, _injector
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults import ErrorParams, FaultParamError, FaultParams, LatencyParams, Schedule, load_plan
from nvmechaos.faults.control import parse_operations

_ERRORS = (NvmeChaosError, FaultParamError)


class ScheduleKeywords:
    """Repeat a latency spike or an error burst on a plan while the workload runs."""

    def __init__(self, context: ChaosContext) -> None:
        self.ctx = context

    @keyword
    def start_fault_schedule(
        self,
        injector: object,
        *,
        duration: str,
        every: str,
        count: int | None = None,
        delay: str | None = None,
        operation: str = "read,write,flush",
        error_rate: str | None = None,
        errno: str = "EIO",
        start_after: str = "0s",
    ) -> Schedule:
        """Start applying a fault for ``duration`` every ``every``, ``count`` times (endless when
        not given), in the background, and return the schedule.

        The fault is a latency spike of ``delay`` on each ``operation`` (default: read, write and
        flush), or, with ``error_rate`` instead of ``delay``, I/O errors (``errno``) on a fraction of
        the requests of ``operation``. The first window starts ``start_after`` from now; windows
        keep to the plan on the monotonic clock. Every apply and clear is on the fault timeline.
        The schedule ends at the test's (or suite's) end if still running.

        Example:
        | ${spikes} =    Start Fault Schedule    ${injector}    delay=100ms    duration=3s    every=10s
        | ...    count=3
        | ${bursts} =    Start Fault Schedule    ${injector}    error_rate=0.2    operation=write
        | ...    duration=1s    every=5s
        """
        target = _injector(injector)
        try:
            params: FaultParams
            if (delay is None) == (error_rate is None):
                raise FaultParamError("give exactly one of delay= (latency) and error_rate= (I/O errors)")
            if delay is not None:
                ops = parse_operations(operation)
                params = LatencyParams.parse(**dict.fromkeys(ops, delay))
                if params.is_zero:
                    raise FaultParamError(f"delay '{delay}' adds no latency")
            else:
                params = ErrorParams.parse(rate=error_rate or "0", operation=operation, errno=errno)
            window = _duration(duration) or 0.0
            period = _duration(every, "every") or 0.0
            schedule = Schedule.periodic(
                target,
                params,
                duration=window,
                every=period,
                count=int(count) if count is not None else None,
                start_after=_duration(start_after, "start_after", allow_zero=True) or 0.0,
                name=self.ctx.next_name("schedule"),
            )
            schedule.start()
        except _ERRORS as error:
            fail(error)
        self.ctx.own(schedule)
        logger.info(
            f"{schedule.name}: {params.as_dict()} for {duration} every {every}, "
            f"{count if count is not None else 'endless'} time(s), on {target.name}"
        )
        return schedule

    @keyword
    def start_fault_plan(self, injector: object, plan: object) -> Schedule:
        """Start applying the faults of ``plan`` at their times from now, in the background, and
        return the schedule (stop and wait for it like one from `Start Fault Schedule`).

        ``plan`` is a YAML file (a list of windows, or ``windows:`` with one) or a list of
        dictionaries. Each window has ``at`` and ``duration`` and either delays (``read``,
        ``write``, ``flush``, ``trim``, ``zero``) or ``error_rate`` with optional ``operation`` and
        ``errno``. Windows of one kind must not overlap; the file is checked before anything starts.

        | # plan.yaml
        | windows:
        |   - {at: 2s, duration: 3s, read: 100ms, write: 100ms}
        |   - {at: 6s, duration: 1s, error_rate: 0.1, operation: write, errno: EIO}

        Example:
        | ${schedule} =    Start Fault Plan    ${injector}    ${CURDIR}/plan.yaml
        | &{spike} =    Create Dictionary    at=1s    duration=2s    read=50ms
        | ${schedule} =    Start Fault Plan    ${injector}    ${{[$spike]}}
        """
        target = _injector(injector)
        try:
            source = plan if isinstance(plan, list | tuple) else str(plan)
            schedule = Schedule(target, load_plan(source), name=self.ctx.next_name("plan"))  # type: ignore[arg-type]
            schedule.start()
        except _ERRORS as error:
            fail(error)
        self.ctx.own(schedule)
        logger.info(f"{schedule.name}: started on {target.name}")
        return schedule

    @keyword
    def wait_for_fault_schedule(self, schedule: Schedule, timeout: str = "5 min") -> None:
        """Wait until every window of a schedule with a ``count`` has been applied and cleared.

        Fails when the schedule is not done within ``timeout``, or when it stopped on an error
        (the injector died).

        Example:
        | Wait For Fault Schedule    ${schedule}    timeout=60s
        """
        seconds = _duration(timeout, "timeout")
        if not schedule.join(seconds):
            fail(f"{schedule.name} was not done within {timeout}")
        if schedule.error:
            fail(f"{schedule.name} stopped: {schedule.error}")

    @keyword
    def stop_fault_schedule(self, schedule: Schedule) -> None:
        """Stop a schedule now; the fault it applied, if any, is cleared.

        Fails when the schedule had stopped on an error (the injector died).

        Example:
        | Stop Fault Schedule    ${schedule}
        """
        try:
            schedule.stop()
        except _ERRORS as error:
            fail(error)
        self.ctx.forget(schedule)
        logger.info(f"{schedule.name}: {schedule.applied} window(s) applied")
        if schedule.error:
            fail(f"{schedule.name} stopped: {schedule.error}")
