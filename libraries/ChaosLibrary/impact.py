"""Keywords that judge what faults did to a workload: baseline, depth, recovery, and the chart."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from robot.api import logger
from robot.api.deco import keyword

from ChaosLibrary.context import ChaosContext, fail
from nvmechaos.analysis.charts import png_data_uri, render_timeline_png
from nvmechaos.analysis.impact import FaultImpact, ImpactError, analyse, fault_windows_from_events
from nvmechaos.analysis.runclock import TIMELINE_NAME, RunClock, align_run
from nvmechaos.analysis.series import IntervalSeries, is_per_io_log, per_io_series, read_series, total_series
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults import parse_duration
from nvmechaos.faults.control import FaultParamError
from nvmechaos.timeline import Event
from nvmechaos.verdicts.impact import (
    added_latency_violations,
    check_throttles,
    throttle_violations,
    violations,
)

EPOCH_MS = 10**12
# Windows cut from logs with one line per I/O (log_avg_msec=0): see benchmarks/baseline_noise.py.
PER_IO_WINDOW = "500ms"
_LIMIT_NAMES = (
    "max_iops_drop_pct",
    "min_iops_drop_pct",
    "min_iops",
    "max_latency_ms",
    "max_latency_increase_pct",
    "max_added_latency_ms",
    "min_added_latency_ms",
    "max_recovery_s",
)


def _flatten(events: Any) -> list[Event]:
    """Fault events from a list, a list of lists (e.g. two timelines), or None."""
    if events in (None, ""):
        return []
    if isinstance(events, Event):
        return [events]
    if not isinstance(events, Iterable) or isinstance(events, (str, bytes)):
        fail(f"'{events}' is not a list of fault events (use Get Fault Timeline / Get VM Fault Timeline)")
    flat: list[Event] = []
    for item in events:
        flat += _flatten(item)
    return flat


def _series(
    result: Any, window: str | None = None
) -> tuple[dict[str, IntervalSeries], dict[str, IntervalSeries], Path]:
    """IOPS and latency series of a fio result: fio's own window averages, or, for logs with one
    line per I/O (``log_avg_msec=0``), exact windows of ``window`` (default 500 ms)."""
    artifacts = getattr(result, "artifacts", None)
    logs = getattr(artifacts, "logs", None) or {}
    if "iops" not in logs:
        fail("the fio result has no IOPS interval log (run it with Run/Start Fio Job [On VM])")
    latency_kind = "clat" if "clat" in logs else "lat"
    try:
        if is_per_io_log(logs["iops"][0]):
            width = round(parse_duration(window or PER_IO_WINDOW, "window") * 1000)
            iops = per_io_series(logs["iops"], "iops", width)
            latency = per_io_series(logs[latency_kind], latency_kind, width) if latency_kind in logs else {}
        else:
            iops = read_series(logs["iops"], "iops")
            latency = read_series(logs[latency_kind], latency_kind) if latency_kind in logs else {}
    except (NvmeChaosError, ValueError, FaultParamError) as error:
        fail(error)
    if not iops:
        fail("the fio result's IOPS log is empty: the job did no I/O")
    return iops, latency, Path(artifacts.directory)


def _recovery_windows(given: Any, window_ms: int) -> int:
    """``recovery_windows`` as given, or by default enough windows to cover 1 s, and at least 2."""
    if given not in (None, ""):
        try:
            return int(given)
        except (TypeError, ValueError):
            fail(f"recovery_windows '{given}' is not a whole number")
    return max(2, math.ceil(1000 / max(window_ms, 1)))


def _worst_latency(latency: dict[str, IntervalSeries]) -> IntervalSeries | None:
    """Per window, the highest latency over the directions (the conservative one to judge)."""
    if not latency:
        return None
    parts = list(latency.values())
    if len(parts) == 1:
        return parts[0]
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    times = np.unique(np.concatenate([s.times_s for s in parts]))
    values = np.full(times.size, np.nan)
    for part in parts:
        index = np.searchsorted(times, part.times_s)
        values[index] = np.fmax(values[index], part.values * scale.get(part.unit, 1.0))
    first = parts[0]
    return IntervalSeries(first.kind, "worst", "ns", first.window_ms, times, values, first.files)


def _host_epoch_clock(result: Any) -> RunClock | None:
    """For fio run on this host with ``log_unix_epoch=1``: put its logs on the host clock (once)."""
    artifacts = getattr(result, "artifacts", None)
    logs = getattr(artifacts, "logs", None) or {}
    files = [Path(path) for paths in logs.values() for path in paths]
    if artifacts is None or not files:
        return None
    try:
        first = Path(files[0]).read_text(encoding="ascii", errors="replace").split(",", 1)[0].strip()
        if not first.isdigit() or int(first) < EPOCH_MS:
            return None
        clock = align_run(files)
        clock.save(Path(artifacts.directory))
    except (OSError, NvmeChaosError) as error:
        fail(error)
    return clock


class ImpactKeywords:
    """`Fault Impact Should Be Within`, `Get Fault Impact`."""

    def __init__(self, context: ChaosContext) -> None:
        self.ctx = context

    def _all_events(self) -> list[Event]:
        """Every event of the run timeline: injectors, QMP faults of every VM, power events."""
        return self.ctx.timeline.events

    def _origin(self, origin: Any, result: Any) -> tuple[float, str]:
        directory = Path(getattr(getattr(result, "artifacts", None), "directory", "."))
        if origin not in (None, ""):
            try:
                return float(origin), "given"
            except (TypeError, ValueError):
                fail(f"origin '{origin}' is not a time.monotonic() value (e.g. ${{fio.started_monotonic}})")
        clock = _host_epoch_clock(result)  # fresh logs on this host's wall clock: align them now
        if clock is None:
            try:
                clock = RunClock.load(directory)
            except NvmeChaosError as error:
                fail(error)
            output = directory / "fio.json"
            if clock is not None and output.is_file():
                saved = (directory / TIMELINE_NAME).stat().st_mtime
                if saved < output.stat().st_mtime:
                    clock = None  # left by an earlier run in the same folder
        if clock is None:
            fail(
                f"fio's start on the host clock is unknown: no timeline.json in '{directory}' (run the job "
                "with Start Timed Fio Job On VM; on this host with log_unix_epoch=1, or pass "
                "origin=${fio.started_monotonic})"
            )
        if clock.uncertainty_s == 0:
            return clock.fio_start_monotonic, "fio on this host, logs on its wall clock"
        return clock.fio_start_monotonic, f"guest clock ± {clock.uncertainty_s * 1000:.0f} ms"

    def _impacts(
        self,
        result: Any,
        events: Any,
        *,
        origin: Any,
        baseline: str,
        tolerance_pct: float,
        band_sigmas: float,
        recovery_windows: Any,
        latency_slack_ms: float,
        window: str | None,
    ) -> list[FaultImpact]:
        start, how = self._origin(origin, result)
        iops, latency, _ = _series(result, window)
        chosen = _flatten(events) if events not in (None, "") else self._all_events()
        total = total_series(iops)
        worst = _worst_latency(latency)
        run_end = float(total.times_s.max())
        windows = [
            w
            for w in fault_windows_from_events(chosen, start, until=time.monotonic())
            if w[0] < run_end + total.window_ms / 1000.0 and w[1] > 0
        ]
        if not windows:
            fail(
                f"no fault was active during the fio run (0 to {run_end:.0f} s after its start; "
                f"{len(chosen)} timeline events): nothing to judge"
            )
        try:
            impacts = analyse(
                total,
                windows,
                worst,
                baseline_s=parse_duration(baseline, "baseline"),
                tolerance_pct=float(tolerance_pct),
                band_sigmas=float(band_sigmas),
                recovery_windows=_recovery_windows(recovery_windows, total.window_ms),
                latency_slack_ms=float(latency_slack_ms),
            )
        except (ImpactError, FaultParamError, ValueError) as error:
            fail(error)
        self._log(iops, latency, windows, impacts, how)
        return impacts

    def _log(self, iops: Any, latency: Any, windows: list[Any], impacts: list[FaultImpact], how: str) -> None:
        def number(value: float | None, digits: int = 1) -> str:
            return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"

        def out(flag: bool) -> str:
            return " (out of band)" if flag else " (in band)"

        rows = "".join(
            f"<tr><td>{html.escape(i.label)}</td><td>{i.start_s:.2f}-{i.end_s:.2f}</td>"
            f"<td>{number(i.baseline_iops, 0)} ± {number(i.baseline_iops_sd, 0)} ({i.baseline_windows})</td>"
            f"<td>≥ {number(i.iops_floor, 0)}</td>"
            f"<td>{number(i.min_iops, 0)}{out(i.iops_dip_outside_band)}</td>"
            f"<td>{number(i.iops_drop_pct)}</td>"
            f"<td>{number(i.baseline_latency_ms, 2)} ± {number(i.baseline_latency_sd_ms, 2)}</td>"
            f"<td>≤ {number(i.latency_ceiling_ms, 2)}</td>"
            f"<td>{number(i.max_latency_ms, 2)}{out(i.latency_spike_outside_band)}</td>"
            f"<td>{number(i.recovery_s) if i.recovered else 'never'}</td>"
            f"<td>{number(i.observed_after_s)}</td></tr>"
            for i in impacts
        )
        if impacts:
            self.ctx.html(
                f"<b>Fault impact</b> (times in s from fio's start; fault times from the host clock, {how}; "
                "baseline mean ± SD (windows); recovered = back within the baseline's noise band)"
                "<table border='1'><tr><th>fault</th><th>window (s)</th><th>baseline IOPS</th>"
                "<th>IOPS band</th><th>min IOPS</th><th>IOPS drop %</th><th>baseline latency ms</th>"
                "<th>latency band ms</th><th>max latency ms</th><th>recovery s</th>"
                "<th>observed after s</th></tr>"
                f"{rows}</table>"
            )
        try:
            png = render_timeline_png(
                iops, latency, fault_windows=windows, title="IOPS and latency with faults"
            )
        except ValueError as error:
            logger.warn(f"cannot draw the fault timeline chart: {error}")
            return
        self.ctx.html(f'<img src="{png_data_uri(png)}" alt="IOPS and latency over time with fault windows">')

    @keyword
    def get_fault_impact(
        self,
        result: Any,
        events: Any = None,
        *,
        origin: Any = None,
        baseline: str = "5s",
        tolerance_pct: float = 10.0,
        band_sigmas: float = 3.0,
        recovery_windows: int | None = None,
        latency_slack_ms: float = 1.0,
        window: str | None = None,
    ) -> list[dict[str, object]]:
        """Compute, for each fault active during the fio run ``result``, its impact, log a table and
        a chart of IOPS and latency over time with the fault windows shaded, and return one
        dictionary per fault.

        The baseline is the fio windows wholly within ``baseline`` before the fault (never fio's
        first window, its start-up, nor its last, cut short at exit). Its windows give a mean and a
        standard deviation (SD) of IOPS and latency, and a *noise band*: IOPS down to
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
        exact windows of ``window`` (default 500 ms): every I/O counts in the window it completed
        in, whereas fio's averages slip by the length of a stall (a TCG guest beside another VM
        stalls for up to a second) and land in the wrong window. More, exact windows give the band
        more samples and recovery more chances to show.

        ``events`` are fault timeline events (`Get Fault Timeline`, `Get VM Fault Timeline`, or a
        list of both); default: every event of this library and of VmLibrary. ``origin`` is fio's
        start on ``time.monotonic()`` (``${fio.started_monotonic}`` for a host job); default: the
        ``timeline.json`` `Start Timed Fio Job On VM` leaves in the run folder; for fio run on this
        host with ``log_unix_epoch=1`` the logs are put on the host clock here (rewritten relative
        to fio's start as fio writes them by default; the originals are kept in ``epoch/``). IOPS
        are summed over directions; latency (clat) is the worst direction per window.

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
        result: Any,
        events: Any = None,
        *,
        max_iops_drop_pct: float | None = None,
        min_iops_drop_pct: float | None = None,
        min_iops: float | None = None,
        max_latency_ms: float | None = None,
        max_latency_increase_pct: float | None = None,
        max_added_latency_ms: float | None = None,
        min_added_latency_ms: float | None = None,
        max_recovery_s: float | None = None,
        origin: Any = None,
        baseline: str = "5s",
        tolerance_pct: float = 10.0,
        band_sigmas: float = 3.0,
        recovery_windows: int | None = None,
        latency_slack_ms: float = 1.0,
        window: str | None = None,
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
        given = {
            "max_iops_drop_pct": max_iops_drop_pct,
            "min_iops_drop_pct": min_iops_drop_pct,
            "min_iops": min_iops,
            "max_latency_ms": max_latency_ms,
            "max_latency_increase_pct": max_latency_increase_pct,
            "max_added_latency_ms": max_added_latency_ms,
            "min_added_latency_ms": min_added_latency_ms,
            "max_recovery_s": max_recovery_s,
        }
        limits: dict[str, float] = {}
        for name in _LIMIT_NAMES:
            value = given[name]
            if value in (None, ""):
                continue
            try:
                limits[name] = float(str(value))
            except ValueError:
                fail(f"{name} '{value}' is not a number")
        if not limits:
            fail(f"no impact limit given (use {', '.join(_LIMIT_NAMES)})")
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
        try:
            broken = violations(impacts, limits)
        except ImpactError as error:
            fail(error)
        if broken:
            fail(f"{len(broken)} fault impact limit(s) broken:\n" + "\n".join(broken))
        logger.info(f"{len(impacts)} fault(s) within {limits}")
        return [i.as_dict() for i in impacts]

    @keyword
    def fault_should_add_latency(
        self,
        impacts: Any,
        expected: str | None = None,
        *,
        tolerance_pct: float = 20.0,
        at_least: str | None = None,
        at_most: str | None = None,
    ) -> list[float]:
        """Fail unless every fault of ``impacts`` (what `Get Fault Impact` or `Fault Impact Should Be
        Within` returned) added latency that stands out of its baseline's noise band, and at least
        ``at_least`` and at most ``at_most`` (durations, e.g. ``40ms``) over the baseline mean.
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
        if isinstance(impacts, Mapping):
            impacts = [impacts]
        if not isinstance(impacts, Iterable) or isinstance(impacts, (str, bytes)):
            fail(f"'{impacts}' is not a list of fault impacts (use what Get Fault Impact returns)")
        try:
            chosen = [FaultImpact.from_dict(item) for item in impacts]
            tolerance = float(tolerance_pct)
            low: float | None = None
            high: float | None = None
            if expected not in (None, ""):
                centre = parse_duration(expected, "expected") * 1000.0
                low = centre * (1 - tolerance / 100.0)
                high = centre * (1 + tolerance / 100.0)
            if at_least not in (None, ""):
                low = parse_duration(at_least, "at_least") * 1000.0
            if at_most not in (None, ""):
                high = parse_duration(at_most, "at_most") * 1000.0
            broken = added_latency_violations(chosen, at_least_ms=low, at_most_ms=high)
        except (ImpactError, FaultParamError, ValueError) as error:
            fail(error)
        if not chosen:
            fail("no fault impact to check (the list is empty)")
        if broken:
            fail(f"{len(broken)} fault(s) did not add the expected latency:\n" + "\n".join(broken))
        added = [i.added_latency_ms for i in chosen]
        logger.info(
            "added latency "
            + ", ".join(f"'{i.label}' {i.added_latency_ms:.1f} ms" for i in chosen)
            + f" (expected {low if low is not None else '-'}..{high if high is not None else '-'} ms)"
        )
        return added

    @keyword("IO Throttle Should Be Honoured")
    def io_throttle_should_be_honoured(
        self,
        result: Any,
        events: Any = None,
        *,
        iops: float | None = None,
        tolerance_pct: float = 5.0,
        origin: Any = None,
        settle: str = "1s",
        window: str | None = None,
    ) -> list[float]:
        """Fail unless, in every throttle window (`Set IO Throttle` .. `Clear IO Throttle`) during the
        fio run ``result``, the mean IOPS of the windows wholly inside it (after the first
        ``settle``, a time, while the throttle's bucket drains) is within ``tolerance_pct`` % of the
        limit: ``iops`` when given, else the ``iops-total`` the timeline recorded. Returns the
        measured means. ``events``, ``origin`` and ``window`` as in `Get Fault Impact`.

        Examples:
        | IO Throttle Should Be Honoured    ${result}    ${events}
        | IO Throttle Should Be Honoured    ${result}    iops=200    tolerance_pct=5
        """
        start, _how = self._origin(origin, result)
        iops_series, _, _ = _series(result, window)
        chosen = _flatten(events) if events not in (None, "") else self._all_events()
        total = total_series(iops_series)
        applies = [e for e in chosen if e.kind == "throttle" and e.action == "apply"]
        windows = [
            w
            for w in fault_windows_from_events(
                [e for e in chosen if e.kind == "throttle"], start, until=time.monotonic()
            )
            if w[0] < float(total.times_s.max()) and w[1] > 0
        ]
        if not windows:
            fail("no IO throttle was active during the fio run: nothing to judge")
        limits: list[float] = []
        for begin, _end, label in windows:
            limit = float(iops) if iops not in (None, "") else None
            if limit is None:
                for event in applies:
                    if abs(event.monotonic - start - begin) < 1e-6:
                        limit = float(event.params.get("iops-total", 0)) or None
            if limit is None:
                fail(f"throttle '{label}' has no iops-total limit: pass iops=")
            limits.append(limit)
        try:
            settle_windows = math.ceil(parse_duration(settle, "settle") * 1000 / total.window_ms - 1e-9)
            checks = check_throttles(total, windows, limits, settle=settle_windows)
            problems = throttle_violations(checks, float(tolerance_pct))
        except (ImpactError, FaultParamError, ValueError) as error:
            fail(error)
        for check in checks:
            if check.windows:
                logger.info(
                    f"throttle '{check.label}': {check.mean_iops:.1f} IOPS over {check.windows} windows "
                    f"vs limit {check.limit:g} ({check.error_pct:+.1f} %)"
                )
        self._log(iops_series, {}, windows, [], "throttle check")
        if problems:
            fail("\n".join(problems))
        return [c.mean_iops for c in checks if c.windows]
