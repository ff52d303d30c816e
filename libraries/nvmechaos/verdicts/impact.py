"""Verdicts on what faults did: limits on each fault's impact (depth, added latency, recovery) and
on the accuracy of throttling, each failure one line naming the fault, the metric, the limit and the
value. The figures come from :mod:`nvmechaos.analysis.impact`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nvmechaos import units
from nvmechaos.analysis.impact import FaultImpact, FaultWindow, ImpactError, fio_origin
from nvmechaos.analysis.outage import FaultOutage
from nvmechaos.analysis.series import IntervalSeries, RunSeries, run_series
from nvmechaos.faults.base import fault_windows
from nvmechaos.fio.model import FioResult
from nvmechaos.timeline import Event

# Limits a fault's impact is checked against: metric name -> (attribute, unit, sense).
METRICS: Mapping[str, tuple[str, str, str]] = {
    "max_iops_drop_pct": ("iops_drop_pct", "%", "max"),
    "min_iops_drop_pct": ("iops_drop_pct", "%", "min"),
    "min_iops": ("min_iops", "IOPS", "min"),
    "max_latency_ms": ("max_latency_ms", "ms", "max"),
    "max_latency_increase_pct": ("latency_increase_pct", "%", "max"),
    "max_added_latency_ms": ("added_latency_ms", "ms", "max"),
    "min_added_latency_ms": ("added_latency_ms", "ms", "min"),
    "max_recovery_s": ("recovery_s", "s", "max"),
}


#: Limits a fault's outage is checked against (:mod:`nvmechaos.analysis.outage`): name -> (attribute, unit).
OUTAGE_METRICS: Mapping[str, tuple[str, str]] = {
    "max_gap_ms": ("gap_ms", "ms"),
    "max_io_errors": ("io_errors", "errors"),
    "max_resume_s": ("resumed_s", "s"),
    "max_restarts": ("restarts", "restarts"),
}


def check_outage_limits(limits: Mapping[str, float]) -> None:
    """Raises ImpactError for no limit, or a metric name not in :data:`OUTAGE_METRICS`."""
    if not limits:
        raise ImpactError(f"no outage limit given (use {', '.join(OUTAGE_METRICS)})")
    unknown = sorted(set(limits) - set(OUTAGE_METRICS))
    if unknown:
        raise ImpactError(
            f"unknown outage metric(s) {', '.join(unknown)} (known: {', '.join(OUTAGE_METRICS)})"
        )


def outage_violations(outages: Iterable[FaultOutage], limits: Mapping[str, float]) -> list[str]:
    """One line per limit an outage breaks, naming the fault, the metric, its value and the limit.
    I/O that never resumed after a fault breaks ``max_resume_s`` whatever the limit.

    Raises:
        ImpactError: no limit, or an unknown metric name (the message lists the known ones).
    """
    check_outage_limits(limits)
    lines = []
    for outage in outages:
        where = f"fault '{outage.label}' at {outage.start_s:.1f}-{outage.end_s:.1f} s"
        for name, limit in limits.items():
            attribute, unit = OUTAGE_METRICS[name]
            value = getattr(outage, attribute)
            if value is None:
                lines.append(
                    f"{where}: I/O never resumed after it (no completion from {outage.gap_from_s:.1f} s to "
                    f"the end of the run at {outage.gap_to_s:.1f} s; limit {name} {limit:g} s)"
                )
            elif float(value) > limit:
                shown = (
                    f"{float(value):.0f}" if unit in ("ms", "errors", "restarts") else f"{float(value):.2f}"
                )
                never = " (I/O never resumed)" if name == "max_gap_ms" and outage.resumed_s is None else ""
                lines.append(f"{where}: {name} is {shown} {unit}{never}, above the limit {limit:g} {unit}")
    return lines


def impact_limits(given: Mapping[str, float | None]) -> dict[str, float]:
    """The limits given (``None`` means not given), as numbers by metric name.

    Raises:
        ImpactError: no limit given (the message lists the names of :data:`METRICS`).
    """
    limits = {name: float(value) for name, value in given.items() if value is not None}
    if not limits:
        raise ImpactError(f"no impact limit given (use {', '.join(METRICS)})")
    return limits


def _where(impact: FaultImpact) -> str:
    return f"fault '{impact.label}' at {impact.start_s:.1f}-{impact.end_s:.1f} s"


def _never_recovered(impact: FaultImpact, name: str, limit: float) -> str:
    where = _where(impact)
    if impact.still_active:
        return (
            f"{where}: never recovered: the fault was still active when the run ended "
            f"(limit {name} {limit:g} s)"
        )
    band = f"IOPS ≥ {impact.iops_floor:.0f}"
    if not math.isnan(impact.latency_ceiling_ms):
        band += f", latency ≤ {impact.latency_ceiling_ms:.2f} ms"
    if impact.observed_after_s < limit:
        return (
            f"{where}: not seen to recover to within the baseline's noise band ({band}) in the "
            f"{impact.observed_after_s:.1f} s observed after it, less than the limit {name} {limit:g} s "
            "(run the workload longer)"
        )
    return (
        f"{where}: never recovered to within the baseline's noise band ({band}) in the "
        f"{impact.observed_after_s:.1f} s observed after it (limit {name} {limit:g} s)"
    )


def violations(impacts: Iterable[FaultImpact], limits: Mapping[str, float]) -> list[str]:
    """One line per limit an impact breaks: ``'<fault>' at <t> s: <metric> <value> above/below ...``.

    ``limits`` maps names of :data:`METRICS` to numbers. A fault that never recovered breaks
    ``max_recovery_s`` whatever the limit (the line says why: still active at the end of the run,
    not back within the noise band in the time observed, or observed for less than the limit); an
    unmeasurable value (no window during a very short fault) breaks nothing.

    Raises:
        ImpactError: an unknown metric name (the message lists the known ones).
    """
    unknown = sorted(set(limits) - set(METRICS))
    if unknown:
        raise ImpactError(f"unknown impact metric(s) {', '.join(unknown)} (known: {', '.join(METRICS)})")
    lines = []
    for impact in impacts:
        for name, limit in limits.items():
            attribute, unit, sense = METRICS[name]
            value = getattr(impact, attribute)
            if name == "max_recovery_s" and value is None:
                lines.append(_never_recovered(impact, name, limit))
                continue
            if value is None or math.isnan(float(value)):
                continue
            bad = float(value) > limit if sense == "max" else float(value) < limit
            if bad:
                word = "above" if sense == "max" else "below"
                shown = f"{float(value):.1f} {unit}"
                lines.append(f"{_where(impact)}: {name} is {shown}, {word} the limit {limit:g} {unit}")
    return lines


def added_latency_violations(
    impacts: Iterable[FaultImpact], *, at_least_ms: float | None = None, at_most_ms: float | None = None
) -> list[str]:
    """One line per fault whose worst window did not add the expected latency over its baseline:
    not out of the baseline's noise band at all (not detected), less than ``at_least_ms`` or more
    than ``at_most_ms`` (metrics ``min_added_latency_ms`` / ``max_added_latency_ms``).

    Raises:
        ImpactError: no bound given, or a negative one, or at_least above at_most.
    """
    if at_least_ms is None and at_most_ms is None:
        raise ImpactError("no added latency to expect: give at least or at most")
    for bound in (at_least_ms, at_most_ms):
        if bound is not None and bound < 0:
            raise ImpactError(f"added latency {bound:g} ms is negative")
    if at_least_ms is not None and at_most_ms is not None and at_least_ms > at_most_ms:
        raise ImpactError(f"at least {at_least_ms:g} ms is more than at most {at_most_ms:g} ms")
    limits = {}
    if at_least_ms is not None:
        limits["min_added_latency_ms"] = at_least_ms
    if at_most_ms is not None:
        limits["max_added_latency_ms"] = at_most_ms
    lines = []
    for impact in impacts:
        if math.isnan(impact.added_latency_ms):
            lines.append(f"{_where(impact)}: added_latency_ms not measurable: no latency window during it")
            continue
        if not impact.latency_spike_outside_band:
            lines.append(
                f"{_where(impact)}: added_latency_ms is {impact.added_latency_ms:.1f} ms, inside the "
                f"baseline's noise band (latency ≤ {impact.latency_ceiling_ms:.2f} ms): not detected"
            )
        lines += violations([impact], limits)
    return lines


def fault_impacts(value: Mapping[str, object] | Iterable[Mapping[str, object]]) -> list[FaultImpact]:
    """The impacts of the dictionaries :meth:`FaultImpact.as_dict` gave (one, or a list of them).

    Raises:
        ImpactError: not such dictionaries.
    """
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        raise ImpactError(f"'{value!s}' is not a list of fault impacts (use what Get Fault Impact returns)")
    return [FaultImpact.from_dict(item) for item in value]


def added_latency_bounds(
    expected_s: float | None = None,
    tolerance_pct: float = 20.0,
    at_least_s: float | None = None,
    at_most_s: float | None = None,
) -> tuple[float | None, float | None]:
    """The least and most added latency (ms) to expect: ``expected_s`` ± ``tolerance_pct`` %, each
    bound replaced by ``at_least_s`` / ``at_most_s`` when given (None: no bound on that side).

    Raises:
        ImpactError: a time that is negative or longer than the 3600 s maximum.
    """
    low: float | None = None
    high: float | None = None
    if expected_s is not None:
        centre = units.parse_duration(expected_s, "expected", error=ImpactError) * 1000.0
        low = centre * (1 - tolerance_pct / 100.0)
        high = centre * (1 + tolerance_pct / 100.0)
    if at_least_s is not None:
        low = units.parse_duration(at_least_s, "at_least", error=ImpactError) * 1000.0
    if at_most_s is not None:
        high = units.parse_duration(at_most_s, "at_most", error=ImpactError) * 1000.0
    return low, high


@dataclass(frozen=True)
class ThrottleCheck:
    """Mean IOPS inside one throttle window vs its limit (NaN mean when no whole window is inside)."""

    label: str
    start_s: float
    end_s: float
    limit: float
    mean_iops: float
    windows: int

    @property
    def error_pct(self) -> float:
        return (self.mean_iops - self.limit) / self.limit * 100.0


def check_throttles(
    iops: IntervalSeries, windows: Sequence[FaultWindow], limits: Sequence[float], *, settle: int = 1
) -> list[ThrottleCheck]:
    """Per throttle window (with its IOPS ``limits``, in the same order), the mean IOPS of the
    series' windows wholly inside it after the first ``settle`` ones (the throttle's bucket drains).

    Raises:
        ImpactError: as many limits as windows are needed, each positive; ``settle`` not negative.
    """
    if len(limits) != len(windows):
        raise ImpactError(f"{len(limits)} throttle limits for {len(windows)} throttle windows")
    if settle < 0:
        raise ImpactError(f"settle {settle} is negative")
    width = iops.window_ms / 1000.0
    ends = np.asarray(iops.times_s, dtype=np.float64)
    values = np.asarray(iops.values, dtype=np.float64)
    checks = []
    for (begin, end, label), limit in zip(windows, limits, strict=True):
        if not limit > 0:
            raise ImpactError(f"throttle '{label}' limit {limit:g} IOPS is not positive")
        inside = values[(ends - width >= begin) & (ends <= end)][settle:]
        mean = float(inside.mean()) if inside.size else math.nan
        checks.append(ThrottleCheck(label, begin, end, float(limit), mean, int(inside.size)))
    return checks


def throttle_violations(checks: Iterable[ThrottleCheck], tolerance_pct: float) -> list[str]:
    """One line per throttle window whose mean IOPS is more than ``tolerance_pct`` % off its limit
    (or that has no whole window inside it)."""
    lines = []
    for check in checks:
        where = f"throttle '{check.label}' at {check.start_s:.1f}-{check.end_s:.1f} s"
        if check.windows == 0:
            lines.append(f"{where}: no whole window inside it")
        elif abs(check.error_pct) > tolerance_pct:
            lines.append(
                f"{where}: measured {check.mean_iops:.1f} IOPS is {check.error_pct:+.1f} % off the limit "
                f"{check.limit:g} IOPS (tolerance ±{tolerance_pct:g} %)"
            )
    return lines


@dataclass(frozen=True)
class ThrottleReport:
    """What :func:`judge_throttles` measured: a check per throttle window, the windows, the series."""

    checks: list[ThrottleCheck]
    windows: list[FaultWindow]
    series: RunSeries


def _throttle_limit(window: FaultWindow, applies: Sequence[Event], start: float) -> float:
    """The ``iops-total`` limit the timeline recorded when ``window`` began."""
    begin, _end, label = window
    limit: float | None = None
    for event in applies:
        if abs(event.monotonic - start - begin) < 1e-6:
            limit = float(event.params.get("iops-total", 0)) or None
    if limit is None:
        raise ImpactError(f"throttle '{label}' has no iops-total limit: pass iops=")
    return limit


def judge_throttles(
    result: FioResult,
    events: Sequence[Event],
    *,
    iops: float | None = None,
    origin: float | None = None,
    settle_s: float = 1.0,
    window_s: float | None = None,
) -> ThrottleReport:
    """Per throttle window of ``events`` during the fio run ``result``, the mean IOPS of the series'
    windows wholly inside it after the first ``settle_s`` (see :func:`check_throttles`), against
    ``iops`` or, when not given, the ``iops-total`` the timeline recorded. ``origin`` and
    ``window_s`` as in :func:`~nvmechaos.analysis.impact.measure_impacts`.

    Raises:
        ImpactError: fio's start unknown, no usable log, no throttle during the run, no limit.
    """
    start, _how = fio_origin(result, origin)
    series = run_series(result, window_s)
    total = series.total
    throttles = [event for event in events if event.kind == "throttle"]
    applies = [event for event in throttles if event.action == "apply"]
    windows = [
        window
        for window in fault_windows(throttles, start, until=time.monotonic())
        if window[0] < float(total.times_s.max()) and window[1] > 0
    ]
    if not windows:
        raise ImpactError("no IO throttle was active during the fio run: nothing to judge")
    limits = [float(iops) if iops is not None else _throttle_limit(w, applies, start) for w in windows]
    settle = units.parse_duration(settle_s, "settle", error=ImpactError)
    settle_windows = math.ceil(settle * 1000 / total.window_ms - 1e-9)
    return ThrottleReport(check_throttles(total, windows, limits, settle=settle_windows), windows, series)


__all__ = [
    "METRICS",
    "OUTAGE_METRICS",
    "ThrottleCheck",
    "ThrottleReport",
    "added_latency_bounds",
    "added_latency_violations",
    "check_throttles",
    "fault_impacts",
    "impact_limits",
    "judge_throttles",
    "outage_violations",
    "throttle_violations",
    "violations",
]
