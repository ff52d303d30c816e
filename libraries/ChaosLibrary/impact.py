"""Keywords that judge what faults did to a workload: baseline, depth, recovery, and the chart.

The figures and the limits are the engine's (``nvmechaos.analysis.impact``,
``nvmechaos.verdicts.impact``); these keywords convert their arguments, log the table and the chart,
and fail with one line per broken limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from robot.api import logger
from robot.api.deco import keyword

from ChaosLibrary.context import ChaosContext
from nvmechaos.analysis.charts import png_data_uri, render_timeline_png
from nvmechaos.analysis.impact import (
    FaultImpact,
    FaultWindow,
    flatten_events,
    measure_impacts,
)
from nvmechaos.analysis.outage import DEFAULT_SETTLE_S, measure_outages
from nvmechaos.analysis.series import RunSeries
from nvmechaos.fio.model import RESULT_EXPECTED, FioResult
from nvmechaos.report import impact_table_html, outage_table_html
from nvmechaos.timeline import Event
from nvmechaos.units import require
from nvmechaos.verdicts.impact import (
    added_latency_bounds,
    added_latency_violations,
    check_outage_limits,
    fault_impacts,
    impact_limits,
    judge_throttles,
    outage_violations,
    throttle_violations,
    violations,
)
from nvmechaos_robot import fail
from nvmechaos_robot.times import optional_seconds

# What `events` takes: a timeline (Get Fault Timeline, Get VM Fault Timeline), several, or one event.
Events = Sequence[Event | Sequence[Event]] | Event | None


class ImpactKeywords:
    """`Get Fault Impact`, `Fault Impact Should Be Within`, `Fault Should Add Latency`,
    `Fault Outage Should Be Within`, `IO Throttle Should Be Honoured`."""

    def __init__(self, context: ChaosContext) -> None:
        self.ctx = context

    def _events(self, events: Events) -> list[Event]:
        """The events given, or every event of the run timeline (injectors, QMP faults of every VM,
        power events) when none are."""
        if events is None or (isinstance(events, str) and not events):
            return self.ctx.timeline.events
        return flatten_events(events)

    def _impacts(
        self,
        result: FioResult,
        events: Events,
        *,
        origin: float | None,
        baseline: timedelta,
        tolerance_pct: float,
        band_sigmas: float,
        recovery_windows: int | None,
        latency_slack_ms: float,
        window: timedelta | None,
    ) -> list[FaultImpact]:
        report = measure_impacts(
            require(result, FioResult, "result", RESULT_EXPECTED),
            self._events(events),
            origin=origin,
            baseline_s=baseline.total_seconds(),
            tolerance_pct=tolerance_pct,
            band_sigmas=band_sigmas,
            recovery_windows=recovery_windows,
            latency_slack_ms=latency_slack_ms,
            window_s=optional_seconds(window),
        )
        if report.impacts:
            self.ctx.html(impact_table_html(report.impacts, report.origin))
        self._chart(report.series, report.windows, latency=True)
        return report.impacts

    def _chart(self, series: RunSeries, windows: list[FaultWindow], *, latency: bool) -> None:
        try:
            png = render_timeline_png(
                series.iops,
                series.latency if latency else {},
                fault_windows=windows,
                title="IOPS and latency with faults",
            )
        except ValueError as error:  # a chart that cannot be drawn must not fail the verdict
            logger.warn(f"cannot draw the fault timeline chart: {error}")
            return
        self.ctx.html(f'<img src="{png_data_uri(png)}" alt="IOPS and latency over time with fault windows">')

    @keyword
    def get_fault_impact(
        self,
        result: FioResult,
        events: Events = None,
        *,
        origin: float | None = None,
        baseline: timedelta = timedelta(seconds=5),
        tolerance_pct: float = 10.0,
        band_sigmas: float = 3.0,
        recovery_windows: int | None = None,
        latency_slack_ms: float = 1.0,
        window: timedelta | None = None,
    ) -> list[dict[str, object]]:
        """Compute, for each fault active during the fio run ``result``, its impact, log a table and
        a chart of IOPS and latency over time with the fault windows shaded, and return one
        dictionary per fault.

        The baseline is the fio windows wholly within ``baseline`` (a Robot time) before the fault
        (never fio's first window, its start-up, nor its last, cut short at exit). Its windows give
        a mean and a standard deviation (SD) of IOPS and latency, and a *noise band*: IOPS down to
        ``mean - max(band_sigmas * SD, tolerance_pct % of the mean)``, latency up to
        ``mean + max(band_sigmas * SD, tolerance_pct % of the mean, latency_slack_ms)``. The band
        is as wide as the run's own window-to-window noise, and never narrower than the floor
        (``tolerance_pct``, ``latency_slack_ms``) so that a near-silent baseline does not make any
        wobble a failure. Doing better than the baseline is always within it.

        The dictionaries: ``fault`` (label), ``start_s``/``end_s`` (seconds from fio's start),
        ``baseline_iops``, ``baseline_iops_sd``, ``baseline_latency_ms``,
        ``baseline_latency_sd_ms``, ``baseline_windows``, ``iops_floor`` and
        ``latency_ceiling_ms`` (the band's edges), ``min_iops``, ``iops_drop_pct``,
        ``max_latency_ms``, ``latency_increase_pct``, ``added_latency_ms`` (the worst window
        during the fault, vs the baseline mean), ``iops_dip_outside_band`` and
        ``latency_spike_outside_band`` (the worst window left the band: the fault stands out of
        the noise), ``recovery_s`` (from the fault's end to the end of the first of
        ``recovery_windows`` consecutive windows back within the band; None if never),
        ``recovered``, ``observed_after_s`` (data after the fault's end) and ``still_active``
        (the fault had not ended when fio did). ``recovery_windows`` defaults to enough windows
        to cover 1 s, at least 2.

        Windows: fio's own averages (``log_avg_msec``, 1 s by default), or, for a run logged with
        one line per I/O (``log_avg_msec=0``, e.g. ``&{EVERY_IO}`` of ``resources/faults.resource``),
        exact windows of ``window`` (a Robot time, default 500 ms): every I/O counts in the window
        it completed in, whereas fio's averages slip by the length of a stall (a TCG guest beside
        another VM stalls for up to a second) and land in the wrong window. More, exact windows
        give the band more samples and recovery more chances to show.

        ``events`` are fault timeline events (`Get Fault Timeline`, `Get VM Fault Timeline`, or a
        list of both); default: every event of the run's timeline (this library's, VmLibrary's).
        ``origin`` is fio's start on ``time.monotonic()`` (``${fio.started_monotonic}`` for a host
        job); default: the ``timeline.json`` `Start Timed Fio Job On VM` leaves in the run folder;
        for fio run on this host with ``log_unix_epoch=1`` the logs are put on the host clock here
        (rewritten relative to fio's start as fio writes them by default; the originals are kept
        in ``epoch/``). IOPS are summed over directions; latency (clat) is the worst direction per
        window.

        Example:
        | ${impacts} =    Get Fault Impact    ${result}    ${events}    baseline=6s
        | Should Be True    ${impacts}[0][iops_dip_outside_band]
        """
        impacts = self._impacts(
            result,
            events,
            origin=origin,
            baseline=baseline,
            tolerance_pct=tolerance_pct,
            band_sigmas=band_sigmas,
            recovery_windows=recovery_windows,
            latency_slack_ms=latency_slack_ms,
            window=window,
        )
        return [i.as_dict() for i in impacts]

    @keyword
    def fault_impact_should_be_within(
        self,
        result: FioResult,
        events: Events = None,
        *,
        max_iops_drop_pct: float | None = None,
        min_iops_drop_pct: float | None = None,
        min_iops: float | None = None,
        max_latency_ms: float | None = None,
        max_latency_increase_pct: float | None = None,
        max_added_latency_ms: float | None = None,
        min_added_latency_ms: float | None = None,
        max_recovery_s: float | None = None,
        origin: float | None = None,
        baseline: timedelta = timedelta(seconds=5),
        tolerance_pct: float = 10.0,
        band_sigmas: float = 3.0,
        recovery_windows: int | None = None,
        latency_slack_ms: float = 1.0,
        window: timedelta | None = None,
    ) -> list[dict[str, object]]:
        """Fail unless every fault active during the fio run ``result`` stayed within the limits,
        with one line per broken limit naming the fault, the metric, its value and the limit.

        Limits (metric names carry unit and sense, as in the threshold profiles):
        ``max_iops_drop_pct`` / ``min_iops_drop_pct`` (lowest window IOPS during the fault vs the
        baseline mean), ``min_iops`` (lowest window IOPS during the fault), ``max_latency_ms``
        (highest window mean completion latency during the fault), ``max_latency_increase_pct``
        (that vs the baseline mean), ``max_added_latency_ms`` / ``min_added_latency_ms`` (that
        minus the baseline mean), ``max_recovery_s`` (seconds from the fault's end until
        ``recovery_windows`` consecutive windows are back within the baseline's noise band).

        Recovery is judged against the run's own noise, not a fixed percentage: see `Get Fault
        Impact` for the band (``band_sigmas`` standard deviations of the baseline windows, at least
        ``tolerance_pct`` % of the mean and, for latency, ``latency_slack_ms``). A fault that never
        recovered breaks ``max_recovery_s`` whatever the limit, and the line says why: ``never
        recovered to within the baseline's noise band (IOPS ≥ …, latency ≤ … ms) in the … s
        observed after it``, ``never recovered: the fault was still active when the run ended``,
        or ``not seen to recover … less than the limit`` (fio ended too soon after the fault to
        judge: run it longer). Other arguments as in `Get Fault Impact`, whose table and chart this
        logs too; returns the same dictionaries.

        Examples:
        | Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=150    max_recovery_s=3
        | Run Keyword And Expect Error    *max_latency_ms is * ms, above the limit 20 ms*
        | ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=20
        """
        limits = impact_limits(
            {
                "max_iops_drop_pct": max_iops_drop_pct,
                "min_iops_drop_pct": min_iops_drop_pct,
                "min_iops": min_iops,
                "max_latency_ms": max_latency_ms,
                "max_latency_increase_pct": max_latency_increase_pct,
                "max_added_latency_ms": max_added_latency_ms,
                "min_added_latency_ms": min_added_latency_ms,
                "max_recovery_s": max_recovery_s,
            }
        )
        impacts = self._impacts(
            result,
            events,
            origin=origin,
            baseline=baseline,
            tolerance_pct=tolerance_pct,
            band_sigmas=band_sigmas,
            recovery_windows=recovery_windows,
            latency_slack_ms=latency_slack_ms,
            window=window,
        )
        broken = violations(impacts, limits)
        if broken:
            fail(f"{len(broken)} fault impact limit(s) broken:\n" + "\n".join(broken))
        logger.info(f"{len(impacts)} fault(s) within {limits}")
        return [i.as_dict() for i in impacts]

    @keyword
    def fault_should_add_latency(
        self,
        impacts: Sequence[Mapping[str, object]] | Mapping[str, object],
        expected: timedelta | None = None,
        *,
        tolerance_pct: float = 20.0,
        at_least: timedelta | None = None,
        at_most: timedelta | None = None,
    ) -> list[float]:
        """Fail unless every fault of ``impacts`` (what `Get Fault Impact` or `Fault Impact Should Be
        Within` returned) added latency that stands out of its baseline's noise band, and at least
        ``at_least`` and at most ``at_most`` (Robot times, e.g. ``40ms``) over the baseline mean.
        ``expected`` (e.g. the injected spike) sets both to within ``tolerance_pct`` % of it,
        unless they are given. Added latency = the worst window during the fault minus the
        baseline mean. Returns the added latencies in ms.

        One line per violation, naming the fault, the metric (``min_added_latency_ms``,
        ``max_added_latency_ms``, or ``added_latency_ms`` inside the noise band: not detected), the
        value and the limit.

        Examples:
        | ${impacts} =    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=120
        | Fault Should Add Latency    ${impacts}    ${SPIKE}    tolerance_pct=20
        | Fault Should Add Latency    ${impacts}    at_least=40ms
        """
        chosen = fault_impacts(impacts)
        low, high = added_latency_bounds(
            optional_seconds(expected), tolerance_pct, optional_seconds(at_least), optional_seconds(at_most)
        )
        broken = added_latency_violations(chosen, at_least_ms=low, at_most_ms=high)
        if not chosen:
            fail("no fault impact to check (the list is empty)")
        if broken:
            fail(f"{len(broken)} fault(s) did not add the expected latency:\n" + "\n".join(broken))
        logger.info(
            "added latency "
            + ", ".join(f"'{i.label}' {i.added_latency_ms:.1f} ms" for i in chosen)
            + f" (expected {low if low is not None else '-'}..{high if high is not None else '-'} ms)"
        )
        return [i.added_latency_ms for i in chosen]

    @keyword
    def fault_outage_should_be_within(
        self,
        result: FioResult,
        events: Events = None,
        *,
        max_gap_ms: float | None = None,
        max_io_errors: int | None = None,
        max_resume_s: float | None = None,
        max_restarts: int | None = None,
        settle: timedelta = timedelta(seconds=DEFAULT_SETTLE_S),
        origin: float | None = None,
    ) -> list[dict[str, object]]:
        """Fail unless the workload ``result`` kept going through every fault active during it, with
        one line per broken limit naming the fault, the metric, its value and the limit; log a table
        and a chart of IOPS and latency (250 ms windows) with the faults shaded; return one
        dictionary per fault.

        For faults where I/O stops rather than slows (a path unplugged, a reset, a PCIe error, a
        stalled backend, flaps). The run must log every I/O (``log_avg_msec=0``: pass
        ``&{EVERY_IO}``). Per fault: ``gap_ms``, the longest time without any I/O completion
        overlapping the fault or the ``settle`` time after it (a Robot time: an instantaneous
        fault stalls I/O after it); ``resumed_s``, from the fault's start to the first completion
        after that gap (None: I/O never resumed, which breaks ``max_resume_s`` whatever its value);
        ``io_errors``, the errors fio reported in the run (its ``total_err`` under
        ``continue_on_error``, else 1 per fio that ended on an error; a workload started with
        ``reopen=True`` adds up its restarts); ``restarts``, how often such a workload had to
        reopen the device. Also ``gap_from_s``/``gap_to_s``, ``start_s``/``end_s`` (seconds from
        fio's start). ``events`` and ``origin`` as in `Get Fault Impact`.

        Examples:
        | Fault Outage Should Be Within    ${result}    max_gap_ms=2000    max_io_errors=0
        | Fault Outage Should Be Within    ${result}    ${events}    max_resume_s=5    max_restarts=1
        """
        limits = {
            name: float(value)
            for name, value in (
                ("max_gap_ms", max_gap_ms),
                ("max_io_errors", max_io_errors),
                ("max_resume_s", max_resume_s),
                ("max_restarts", max_restarts),
            )
            if value is not None
        }
        check_outage_limits(limits)
        report = measure_outages(
            require(result, FioResult, "result", RESULT_EXPECTED),
            self._events(events),
            origin=origin,
            settle_s=settle.total_seconds(),
        )
        self.ctx.html(outage_table_html(report.outages, report.how))
        self._chart(report.series, report.windows, latency=True)
        broken = outage_violations(report.outages, limits)
        if broken:
            fail(f"{len(broken)} fault outage limit(s) broken:\n" + "\n".join(broken))
        return [outage.as_dict() for outage in report.outages]

    @keyword("IO Throttle Should Be Honoured")
    def io_throttle_should_be_honoured(
        self,
        result: FioResult,
        events: Events = None,
        *,
        iops: float | None = None,
        tolerance_pct: float = 5.0,
        origin: float | None = None,
        settle: timedelta = timedelta(seconds=1),
        window: timedelta | None = None,
    ) -> list[float]:
        """Fail unless, in every throttle window (`Set IO Throttle` .. `Clear IO Throttle`) during the
        fio run ``result``, the mean IOPS of the windows wholly inside it (after the first
        ``settle``, a Robot time, while the throttle's bucket drains) is within ``tolerance_pct`` %
        of the limit: ``iops`` when given, else the ``iops-total`` the timeline recorded. Returns
        the measured means. ``events``, ``origin`` and ``window`` as in `Get Fault Impact`.

        Examples:
        | IO Throttle Should Be Honoured    ${result}    ${events}
        | IO Throttle Should Be Honoured    ${result}    iops=200    tolerance_pct=5
        """
        report = judge_throttles(
            require(result, FioResult, "result", RESULT_EXPECTED),
            self._events(events),
            iops=iops,
            origin=origin,
            settle_s=settle.total_seconds(),
            window_s=optional_seconds(window),
        )
        problems = throttle_violations(report.checks, tolerance_pct)
        for check in report.checks:
            if check.windows:
                logger.info(
                    f"throttle '{check.label}': {check.mean_iops:.1f} IOPS over {check.windows} windows "
                    f"vs limit {check.limit:g} ({check.error_pct:+.1f} %)"
                )
        self._chart(report.series, report.windows, latency=False)
        if problems:
            fail("\n".join(problems))
        return [c.mean_iops for c in report.checks if c.windows]
