"""Impact of faults on a workload: baseline before, depth during, recovery after.

Inputs are interval series (fio's per-window IOPS and latency, :class:`IntervalSeries` whose
``times_s`` are window ends in seconds from fio's start) and fault windows ``(start, end, label)``
in seconds on the same axis (see :func:`fault_windows_from_events`, which puts fault timeline events
stamped on ``time.monotonic()`` on it given fio's start on that clock).

A window ``(t - w, t]`` of the series belongs to:

- the **baseline** of a fault when it lies wholly within the ``baseline_s`` seconds before the
  fault starts (and after the end of any earlier fault);
- the fault (**during**) when it overlaps the fault;
- the **recovery** when it starts at or after the fault's end.

Per fault: baseline mean IOPS and latency; depth = the lowest IOPS of a window during the fault and
the drop relative to the baseline (%), the highest latency of a window during the fault (ms) and its
increase over the baseline (%); recovery = seconds from the fault's end to the end of the first of
``recovery_windows`` consecutive windows within ``tolerance_pct`` of the baseline: IOPS at least
``(1 - tolerance)`` times the baseline and, when a latency series is given, latency at most
``(1 + tolerance)`` times it (doing better than before counts as recovered); or None (never
recovered before the run ended).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nvmechaos.analysis.intervals import IntervalSeries
from nvmechaos.faults.base import KINDS, FaultEvent, describe_params

FaultWindow = tuple[float, float, str]
_MS_PER_UNIT: Mapping[str, float] = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1000.0}


class ImpactError(ValueError):
    """The impact cannot be computed (no baseline, bad parameters, unknown metric)."""


@dataclass(frozen=True)
class FaultImpact:
    """What one fault did to the workload (see the module docstring). NaN/None where not measurable."""

    label: str
    start_s: float
    end_s: float
    baseline_iops: float
    baseline_latency_ms: float
    baseline_windows: int
    min_iops: float
    iops_drop_pct: float
    max_latency_ms: float
    latency_increase_pct: float
    during_windows: int
    recovery_s: float | None
    recovered: bool
    observed_after_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "fault": self.label,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "baseline_iops": self.baseline_iops,
            "baseline_latency_ms": self.baseline_latency_ms,
            "min_iops": self.min_iops,
            "iops_drop_pct": self.iops_drop_pct,
            "max_latency_ms": self.max_latency_ms,
            "latency_increase_pct": self.latency_increase_pct,
            "recovery_s": self.recovery_s,
            "recovered": self.recovered,
        }


# Limits a fault's impact is checked against: metric name -> (attribute, unit, sense).
METRICS: Mapping[str, tuple[str, str, str]] = {
    "max_iops_drop_pct": ("iops_drop_pct", "%", "max"),
    "min_iops": ("min_iops", "IOPS", "min"),
    "max_latency_ms": ("max_latency_ms", "ms", "max"),
    "max_latency_increase_pct": ("latency_increase_pct", "%", "max"),
    "max_recovery_s": ("recovery_s", "s", "max"),
}


def _latency_ms(series: IntervalSeries) -> np.ndarray:
    if series.unit not in _MS_PER_UNIT:
        raise ImpactError(f"latency series '{series.direction}' is in {series.unit}, not a time")
    return np.asarray(series.values, dtype=np.float64) * _MS_PER_UNIT[series.unit]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def analyse(
    iops: IntervalSeries,
    windows: Sequence[FaultWindow],
    latency: IntervalSeries | None = None,
    *,
    baseline_s: float = 5.0,
    tolerance_pct: float = 10.0,
    recovery_windows: int = 2,
    latency_slack_ms: float = 1.0,
    run_end_s: float | None = None,
) -> list[FaultImpact]:
    """The impact of each fault window on ``iops`` (and ``latency``), in window order.

    A window's latency counts as recovered within ``latency_slack_ms`` of the baseline too (sub-ms
    baselines vary by more than any percentage between windows). ``run_end_s`` is where the
    workload's data end (default: the last window's end); a fault that
    never recovered was observed for ``run_end_s - end`` seconds after it ended.

    Raises:
        ImpactError: a fault has no complete window in the ``baseline_s`` before it, a window ends
            before it starts, or a parameter is out of range.
    """
    if baseline_s <= 0:
        raise ImpactError(f"baseline of {baseline_s:g} s is not positive")
    if tolerance_pct <= 0:
        raise ImpactError(f"recovery tolerance {tolerance_pct:g} % is not positive")
    if recovery_windows < 1:
        raise ImpactError(f"recovery needs at least 1 window, not {recovery_windows}")
    width = iops.window_ms / 1000.0
    ends = np.asarray(iops.times_s, dtype=np.float64)
    values = np.asarray(iops.values, dtype=np.float64)
    starts = ends - width
    lat_ends = np.asarray(latency.times_s, dtype=np.float64) if latency is not None else np.zeros(0)
    lat_values = _latency_ms(latency) if latency is not None else np.zeros(0)
    lat_width = latency.window_ms / 1000.0 if latency is not None else width
    lat_starts = lat_ends - lat_width
    last = float(ends.max()) if ends.size else 0.0
    run_end = last if run_end_s is None else float(run_end_s)
    ordered = sorted((float(s), float(e), str(label)) for s, e, label in windows)
    result = []
    previous_end = -math.inf
    for start, end, label in ordered:
        if end < start:
            raise ImpactError(f"fault '{label}' ends at {end:g} s, before it starts at {start:g} s")
        low = max(start - baseline_s, previous_end)
        base = (starts >= low - 1e-9) & (ends <= start + 1e-9)
        if not base.any():
            raise ImpactError(
                f"fault '{label}' at {start:.1f} s has no complete {width:g} s window in the "
                f"{baseline_s:g} s before it to take a baseline from (start the fault later in the run)"
            )
        baseline = _mean(values[base])
        lat_base_mask = (lat_starts >= low - 1e-9) & (lat_ends <= start + 1e-9)
        baseline_latency = _mean(lat_values[lat_base_mask])
        during = (
            (ends > start + 1e-9) & (starts < end - 1e-9)
            if end > start
            else (starts <= start) & (ends >= start)
        )
        lat_during = (
            (lat_ends > start + 1e-9) & (lat_starts < end - 1e-9)
            if end > start
            else (lat_starts <= start) & (lat_ends >= start)
        )
        min_iops = float(values[during].min()) if during.any() else math.nan
        max_latency = float(lat_values[lat_during].max()) if lat_during.any() else math.nan
        drop = (
            (baseline - min_iops) / baseline * 100.0
            if baseline > 0 and not math.isnan(min_iops)
            else math.nan
        )
        increase = (
            (max_latency - baseline_latency) / baseline_latency * 100.0
            if baseline_latency > 0 and not math.isnan(max_latency)
            else math.nan
        )
        recovery = _recovery(
            ends,
            starts,
            values,
            baseline,
            end,
            tolerance_pct,
            recovery_windows,
            lat_ends,
            lat_values,
            baseline_latency,
            latency_slack_ms,
        )
        result.append(
            FaultImpact(
                label=label,
                start_s=start,
                end_s=end,
                baseline_iops=baseline,
                baseline_latency_ms=baseline_latency,
                baseline_windows=int(base.sum()),
                min_iops=max(min_iops, 0.0) if not math.isnan(min_iops) else math.nan,
                iops_drop_pct=max(drop, 0.0) if not math.isnan(drop) else math.nan,
                max_latency_ms=max_latency,
                latency_increase_pct=increase,
                during_windows=int(during.sum()),
                recovery_s=recovery,
                recovered=recovery is not None,
                observed_after_s=max(0.0, run_end - end),
            )
        )
        previous_end = max(previous_end, end)
    return result


def _recovery(  # noqa: PLR0917 - internal, called once with everything it compares
    ends: np.ndarray,
    starts: np.ndarray,
    values: np.ndarray,
    baseline: float,
    fault_end: float,
    tolerance_pct: float,
    needed: int,
    lat_ends: np.ndarray,
    lat_values: np.ndarray,
    baseline_latency: float,
    latency_slack_ms: float,
) -> float | None:
    """Seconds from ``fault_end`` to the end of the first of ``needed`` consecutive good windows."""
    tolerance = tolerance_pct / 100.0
    after = np.flatnonzero(starts >= fault_end - 1e-9)
    run = 0
    first = 0
    for index in after:
        good = values[index] >= (1.0 - tolerance) * baseline
        if good and lat_values.size and baseline_latency > 0:
            near = np.flatnonzero(np.abs(lat_ends - ends[index]) < 1e-6)
            if near.size:
                limit = max(baseline_latency * (1.0 + tolerance), baseline_latency + latency_slack_ms)
                good = lat_values[near[0]] <= limit
        run = run + 1 if good else 0
        if run == 1:
            first = int(index)
        if run >= needed:
            return max(0.0, float(ends[first]) - fault_end)
    return None


def violations(impacts: Iterable[FaultImpact], limits: Mapping[str, float]) -> list[str]:
    """One line per limit an impact breaks: ``'<fault>' at <t> s: <metric> <value> exceeds/below ...``.

    ``limits`` maps names of :data:`METRICS` to numbers. A fault that never recovered breaks
    ``max_recovery_s`` whatever the limit; an unmeasurable value (no window during a very short
    fault) breaks nothing.

    Raises:
        ImpactError: an unknown metric name (the message lists the known ones).
    """
    unknown = sorted(set(limits) - set(METRICS))
    if unknown:
        raise ImpactError(f"unknown impact metric(s) {', '.join(unknown)} (known: {', '.join(METRICS)})")
    lines = []
    for impact in impacts:
        where = f"fault '{impact.label}' at {impact.start_s:.1f}-{impact.end_s:.1f} s"
        for name, limit in limits.items():
            attribute, unit, sense = METRICS[name]
            value = getattr(impact, attribute)
            if name == "max_recovery_s" and value is None:
                lines.append(
                    f"{where}: never recovered to within the baseline tolerance in the "
                    f"{impact.observed_after_s:.1f} s observed after it (limit {name} {limit:g} {unit})"
                )
                continue
            if value is None or math.isnan(float(value)):
                continue
            bad = float(value) > limit if sense == "max" else float(value) < limit
            if bad:
                word = "above" if sense == "max" else "below"
                lines.append(
                    f"{where}: {name} is {float(value):.1f} {unit}, {word} the limit {limit:g} {unit}"
                )
    return lines


def fault_windows_from_events(
    events: Iterable[FaultEvent], origin: float, until: float | None = None
) -> list[FaultWindow]:
    """Fault windows ``(start, end, label)`` in seconds from ``origin`` (``time.monotonic()`` of fio's
    start) from timeline events of any source: NBD injectors (``latency``, ``errors``) and QMP faults
    (``hotplug``: device_del until the namespace is usable again; ``throttle``: set until cleared).

    A window opens at ``apply`` and ends at ``clear``, the next ``apply`` of the same kind and
    source, or the source's ``stop``/``died``; one still open ends at ``until`` (absolute
    monotonic) or is left out without it.
    """
    open_spans: dict[tuple[str, str], tuple[float, str]] = {}
    spans: list[FaultWindow] = []

    def close(key: tuple[str, str], at: float) -> None:
        start, label = open_spans.pop(key)
        spans.append((start - origin, at - origin, label))

    for event in sorted(events, key=lambda e: e.monotonic):
        key = (event.injector, event.kind)
        if event.kind == "injector" or event.action in ("stop", "died"):
            if event.action in ("stop", "died"):
                for other in [k for k in open_spans if k[0] == event.injector]:
                    close(other, event.monotonic)
            continue
        if event.action == "apply":
            if key in open_spans:
                close(key, event.monotonic)
            open_spans[key] = (event.monotonic, _label(event))
        elif event.action == "clear" and key in open_spans:
            close(key, event.monotonic)
    if until is not None:
        for key in list(open_spans):
            close(key, until)
    return sorted(spans)


def _label(event: FaultEvent) -> str:
    params = dict(event.params)
    if event.kind in KINDS:
        return describe_params(event.kind, params)
    if event.kind == "hotplug":
        return f"unplug {params.get('device', '')}".strip()
    if event.kind == "throttle":
        limits = ", ".join(f"{k} {v}" for k, v in params.items() if k != "device")
        return f"throttle {limits}".strip()
    return event.kind


__all__ = [
    "METRICS",
    "FaultImpact",
    "FaultWindow",
    "ImpactError",
    "analyse",
    "fault_windows_from_events",
    "violations",
]
