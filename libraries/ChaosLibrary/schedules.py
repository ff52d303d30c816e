"""Keywords that run fault schedules in the background."""

from __future__ import annotations

from typing import Any

from robot.api import logger
from robot.api.deco import keyword
from robot.utils import timestr_to_secs

from ChaosLibrary.context import ChaosContext, fail
from ChaosLibrary.injectors import _duration, _injector
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults import ErrorParams, FaultParamError, FaultParams, LatencyParams, Schedule, load_plan
from nvmechaos.faults.control import parse_delay, parse_operations

_ERRORS = (NvmeChaosError, FaultParamError)


def _schedule(value: object) -> Schedule:
    if not isinstance(value, Schedule):
        fail(f"'{value}' is not a fault schedule (use the handle `Start Fault Schedule` returned)")
    return value


def _timeout(value: Any) -> float:
    """A Robot time (``30s``, ``5 min``, ``1 hour``; a bare number is seconds), positive."""
    try:
        seconds = float(timestr_to_secs(value))
    except (ValueError, TypeError):
        fail(f"timeout '{value}' is not a time (use e.g. 30s, 5 min; a bare number is seconds)")
    if seconds <= 0:
        fail(f"timeout '{value}' is not positive")
    return seconds


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
        errno: str | None = None,
        start_after: str = "0s",
    ) -> Schedule:
        """Start applying a fault for ``duration`` every ``every``, ``count`` times (endless when
        not given), in the background, and return the schedule.

        The fault is a latency spike of ``delay`` on each ``operation`` (default: read, write and
        flush), or, with ``error_rate`` instead of ``delay``, I/O errors (``errno``, default EIO)
        on a fraction of the requests of ``operation``. ``delay`` needs its unit (``100ms``,
        ``0.1s``; a bare number such as ``delay=100`` is refused, as in `Inject Latency Spike`) and
        is at most 3600 s. ``duration``, ``every`` and ``start_after`` are times (``3s``,
        ``500ms``; a bare number is seconds; at most 3600 s each). The first window starts
        ``start_after`` from now; windows keep to the plan on the monotonic clock. Every apply and
        clear is on the fault timeline. The schedule ends at the test's (or suite's) end if still
        running.

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
                if errno is not None:
                    raise FaultParamError("errno belongs to error_rate schedules, not to delay")
                ops = parse_operations(operation)
                seconds = parse_delay(delay, "delay")  # named as the user wrote it
                params = LatencyParams(**dict.fromkeys(ops, seconds))
                if params.is_zero:
                    raise FaultParamError(f"delay '{delay}' adds no latency")
            else:
                params = ErrorParams.parse(rate=error_rate or "0", operation=operation, errno=errno or "EIO")
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

        ``timeout`` is a Robot time (``60s``, ``5 min``, ``2 hours``; a bare number is seconds).
        Fails when the schedule is not done within ``timeout``, or when it stopped on an error
        (the injector died).

        Example:
        | Wait For Fault Schedule    ${schedule}    timeout=60s
        """
        target = _schedule(schedule)
        seconds = _timeout(timeout)
        if not target.join(seconds):
            fail(f"{target.name} was not done within {timeout}")
        if target.error:
            fail(f"{target.name} stopped: {target.error}")

    @keyword
    def stop_fault_schedule(self, schedule: Schedule) -> None:
        """Stop a schedule now; the fault it applied, if any, is cleared.

        Fails when the schedule had stopped on an error (the injector died).

        Example:
        | Stop Fault Schedule    ${schedule}
        """
        target = _schedule(schedule)
        try:
            target.stop()
        except _ERRORS as error:
            fail(error)
        self.ctx.forget(target)
        logger.info(f"{target.name}: {target.applied} window(s) applied")
        if target.error:
            fail(f"{target.name} stopped: {target.error}")
