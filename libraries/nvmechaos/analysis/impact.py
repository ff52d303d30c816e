"""Impact of faults on a workload: baseline before, depth during, recovery after, judged against
the run's own noise.

Inputs are interval series (fio's per-window IOPS and latency, :class:`IntervalSeries` whose
``times_s`` are window ends in seconds from fio's start) and fault windows ``(start, end, label)``
in seconds on the same axis (see :func:`fault_windows_from_events`, which puts fault timeline events
stamped on ``time.monotonic()`` on it given fio's start on that clock).

A window ``(t - w, t]`` of the series belongs to:

- the **baseline** of a fault when it lies wholly within the ``baseline_s`` seconds before the
  fault starts (and after the end of any earlier fault);
- the fault (**during**) when it overlaps the fault;
- the **recovery** when it starts at or after the fault's end.

fio's first window (its start-up) is never a baseline window, and its last one (cut short by the
end of the run; fio flushes it at exit with unreliable values) is never a baseline or recovery
window.

**Noise band.** The baseline windows give a mean and a sample standard deviation (SD) of IOPS and
of latency. A window is *within the band* when its IOPS are at least
``mean - max(band_sigmas * SD, tolerance_pct % of the mean)`` and its latency at most
``mean + max(band_sigmas * SD, tolerance_pct % of the mean, latency_slack_ms)``: the band is as wide
as the run's own window-to-window noise and never narrower than the floor (a near-silent baseline
would otherwise make any wobble a failure). Doing better than the baseline is always within it.

Per fault: the baseline (mean, SD, band); the depth: the lowest IOPS of a window during the fault
and the drop relative to the baseline mean (%), the highest latency of a window during the fault
(ms), its increase over the baseline (% and ms), and whether each left the band (the fault stands
out of the noise); the recovery: seconds from the fault's end to the end of the first of
``recovery_windows`` consecutive windows within the band, or None (never, or the fault was still
active when the run ended).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np

from nvmechaos.analysis.series import IntervalSeries
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults.base import KINDS, describe_params
from nvmechaos.timeline import Event

FaultWindow = tuple[float, float, str]
_MS_PER_UNIT: Mapping[str, float] = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1000.0}
_EPS = 1e-9


class ImpactError(NvmeChaosError):
    """The impact cannot be computed (no baseline, bad parameters, unknown metric)."""


@dataclass(frozen=True)
class Band:
    """A baseline's noise band: mean and sample SD of its windows, and the half-width judged."""

    mean: float
    sd: float
    half_width: float
    windows: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def noise_band(values: np.ndarray, *, sigmas: float, floor_pct: float, floor_abs: float = 0.0) -> Band:
    """The band of ``values`` (NaN ignored): mean ± max(``sigmas`` · SD, ``floor_pct`` % of the
    mean, ``floor_abs``). A single value has SD 0 (the band is the floor); no value gives NaN."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return Band(math.nan, math.nan, math.nan, 0)
    mean = float(finite.mean())
    sd = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    half = max(sigmas * sd, abs(mean) * floor_pct / 100.0, floor_abs)
    return Band(mean, sd, half, int(finite.size))


@dataclass(frozen=True)
class FaultImpact:
    """What one fault did to the workload (see the module docstring). NaN/None where not measurable.

    ``iops_floor`` is the lowest window IOPS and ``latency_ceiling_ms`` the highest window latency
    that still count as within the baseline's noise band; ``iops_dip_outside_band`` and
    ``latency_spike_outside_band`` say whether the worst window during the fault left the band;
    ``still_active`` that the fault had not ended when the workload's data did.
    """

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
    baseline_iops_sd: float = math.nan
    baseline_latency_sd_ms: float = math.nan
    iops_floor: float = math.nan
    latency_ceiling_ms: float = math.nan
    added_latency_ms: float = math.nan
    iops_dip_outside_band: bool = False
    latency_spike_outside_band: bool = False
    still_active: bool = False

    def as_dict(self) -> dict[str, object]:
        """Every field by name, ``label`` as ``fault`` (the dictionaries the keywords return)."""
        data: dict[str, object] = {"fault": self.label}
        data.update((key, value) for key, value in asdict(self).items() if key != "label")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FaultImpact:
        """The impact that :meth:`as_dict` gave ``data``.

        Raises:
            ImpactError: a field without a default is missing (not a fault impact dictionary).
        """
        if not isinstance(data, Mapping):
            raise ImpactError(f"'{data}' is not a fault impact (a dictionary of Get Fault Impact)")
        values: dict[str, object] = {}
        for field in fields(cls):
            key = "fault" if field.name == "label" else field.name
            if key in data:
                values[field.name] = data[key]
            elif field.default is MISSING:
                raise ImpactError(
                    f"'{key}' is missing: not a fault impact (use the dictionaries Get Fault Impact or "
                    "Fault Impact Should Be Within return)"
                )
        return cls(**values)  # type: ignore[arg-type]


def _latency_ms(series: IntervalSeries) -> np.ndarray:
    if series.unit not in _MS_PER_UNIT:
        raise ImpactError(f"latency series '{series.direction}' is in {series.unit}, not a time")
    return np.asarray(series.values, dtype=np.float64) * _MS_PER_UNIT[series.unit]


def _extreme(values: np.ndarray, mask: np.ndarray, pick: str) -> float:
    chosen = values[mask]
    chosen = chosen[~np.isnan(chosen)]
    if not chosen.size:
        return math.nan
    return float(chosen.min() if pick == "min" else chosen.max())


@dataclass(frozen=True)
class _Windows:
    """One series' windows: ends, starts, values, and which may be baseline or recovery windows."""

    ends: np.ndarray
    starts: np.ndarray
    values: np.ndarray
    usable: np.ndarray

    @classmethod
    def of(cls, ends: np.ndarray, values: np.ndarray, width: float, first: float, last: float) -> _Windows:
        usable = (ends > first + _EPS) & (ends < last - _EPS)
        return cls(ends, ends - width, values, usable)

    def baseline(self, low: float, start: float) -> np.ndarray:
        return self.usable & (self.starts >= low - _EPS) & (self.ends <= start + _EPS)

    def during(self, start: float, end: float) -> np.ndarray:
        if end > start:
            return (self.ends > start + _EPS) & (self.starts < end - _EPS)
        return (self.starts <= start) & (self.ends >= start)


def analyse(
    iops: IntervalSeries,
    windows: Sequence[FaultWindow],
    latency: IntervalSeries | None = None,
    *,
    baseline_s: float = 5.0,
    tolerance_pct: float = 10.0,
    band_sigmas: float = 3.0,
    recovery_windows: int = 2,
    latency_slack_ms: float = 1.0,
    run_end_s: float | None = None,
) -> list[FaultImpact]:
    """The impact of each fault window on ``iops`` (and ``latency``), in window order.

    The noise band of each baseline is ``band_sigmas`` SDs wide on either side of its mean, at
    least ``tolerance_pct`` % of the mean, and for latency at least ``latency_slack_ms``.
    ``run_end_s`` cuts the data used for recovery (default: up to fio's last, partial, window); a
    fault that never recovered was observed for ``observed_after_s`` seconds after it ended.

    Raises:
        ImpactError: a fault has no complete window in the ``baseline_s`` before it, a window ends
            before it starts, or a parameter is out of range.
    """
    if baseline_s <= 0:
        raise ImpactError(f"baseline of {baseline_s:g} s is not positive")
    if tolerance_pct < 0:
        raise ImpactError(f"band floor (tolerance) {tolerance_pct:g} % is negative")
    if band_sigmas < 0:
        raise ImpactError(f"band of {band_sigmas:g} standard deviations is negative")
    if recovery_windows < 1:
        raise ImpactError(f"recovery needs at least 1 window, not {recovery_windows}")
    if latency_slack_ms < 0:
        raise ImpactError(f"latency slack {latency_slack_ms:g} ms is negative")
    width = iops.window_ms / 1000.0
    ends = np.asarray(iops.times_s, dtype=np.float64)
    if not ends.size:
        raise ImpactError("the IOPS series has no window")
    first, last = float(ends.min()), float(ends.max())
    io = _Windows.of(ends, np.asarray(iops.values, dtype=np.float64), width, first, last)
    if latency is not None:
        lat_width = latency.window_ms / 1000.0
        lat_ends = np.asarray(latency.times_s, dtype=np.float64)
        lat = _Windows.of(lat_ends, _latency_ms(latency), lat_width, first, last)
    else:
        lat = _Windows.of(np.zeros(0), np.zeros(0), width, first, last)
    cut = last if run_end_s is None else min(float(run_end_s), last)
    data_end = float(ends[io.usable & (ends <= cut + _EPS)].max()) if io.usable.any() else first
    ordered = sorted((float(s), float(e), str(label)) for s, e, label in windows)
    result = []
    previous_end = -math.inf
    for start, end, label in ordered:
        if end < start:
            raise ImpactError(f"fault '{label}' ends at {end:g} s, before it starts at {start:g} s")
        low = max(start - baseline_s, previous_end)
        base = io.baseline(low, start)
        if not base.any():
            raise ImpactError(
                f"fault '{label}' at {start:.1f} s has no complete {width:g} s window in the "
                f"{baseline_s:g} s before it to take a baseline from (fio's first window is its "
                "start-up; start the fault later in the run)"
            )
        iops_band = noise_band(io.values[base], sigmas=band_sigmas, floor_pct=tolerance_pct)
        lat_band = noise_band(
            lat.values[lat.baseline(low, start)],
            sigmas=band_sigmas,
            floor_pct=tolerance_pct,
            floor_abs=latency_slack_ms,
        )
        during = io.during(start, end)
        min_iops = _extreme(io.values, during, "min")
        max_latency = _extreme(lat.values, lat.during(start, end), "max")
        baseline = iops_band.mean
        drop = (baseline - min_iops) / baseline * 100.0 if baseline > 0 else math.nan
        increase = (max_latency - lat_band.mean) / lat_band.mean * 100.0 if lat_band.mean > 0 else math.nan
        recovery = _recovery(io, lat, iops_band, lat_band, end, recovery_windows, cut)
        result.append(
            FaultImpact(
                label=label,
                start_s=start,
                end_s=end,
                baseline_iops=baseline,
                baseline_latency_ms=lat_band.mean,
                baseline_windows=int(base.sum()),
                min_iops=max(min_iops, 0.0) if not math.isnan(min_iops) else math.nan,
                iops_drop_pct=max(drop, 0.0) if not math.isnan(drop) else math.nan,
                max_latency_ms=max_latency,
                latency_increase_pct=increase,
                during_windows=int(during.sum()),
                recovery_s=recovery,
                recovered=recovery is not None,
                observed_after_s=max(0.0, data_end - end),
                baseline_iops_sd=iops_band.sd,
                baseline_latency_sd_ms=lat_band.sd,
                iops_floor=iops_band.low,
                latency_ceiling_ms=lat_band.high,
                added_latency_ms=max_latency - lat_band.mean,
                iops_dip_outside_band=bool(min_iops < iops_band.low),
                latency_spike_outside_band=bool(max_latency > lat_band.high),
                still_active=end >= last - _EPS,
            )
        )
        previous_end = max(previous_end, end)
    return result


def _recovery(  # noqa: PLR0917 - internal, called once with everything it compares
    io: _Windows,
    lat: _Windows,
    iops_band: Band,
    lat_band: Band,
    fault_end: float,
    needed: int,
    cut: float,
) -> float | None:
    """Seconds from ``fault_end`` to the end of the first of ``needed`` consecutive windows within
    the bands (None if there are not that many before ``cut``)."""
    after = np.flatnonzero(io.usable & (io.starts >= fault_end - _EPS) & (io.ends <= cut + _EPS))
    run = 0
    first = 0
    for index in after:
        good = not io.values[index] < iops_band.low
        if good and lat.values.size and not math.isnan(lat_band.high):
            near = np.flatnonzero(np.abs(lat.ends - io.ends[index]) < 1e-6)
            if near.size:
                good = not lat.values[near[0]] > lat_band.high
        run = run + 1 if good else 0
        if run == 1:
            first = int(index)
        if run >= needed:
            return max(0.0, float(io.ends[first]) - fault_end)
    return None


def fault_windows_from_events(
    events: Iterable[Event], origin: float, until: float | None = None
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
        key = (event.source, event.kind)
        if event.kind == "injector" or event.action in ("stop", "died"):
            if event.action in ("stop", "died"):
                for other in [k for k in open_spans if k[0] == event.source]:
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


def _label(event: Event) -> str:
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
    "Band",
    "FaultImpact",
    "FaultWindow",
    "ImpactError",
    "analyse",
    "fault_windows_from_events",
    "noise_band",
]
