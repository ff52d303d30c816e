"""Impact of faults on a workload: baseline before, depth during, recovery after, judged against
the run's own noise.

Inputs are interval series (fio's per-window IOPS and latency, :class:`IntervalSeries` whose
``times_s`` are window ends in seconds from fio's start) and fault windows ``(start, end, label)``
in seconds on the same axis (:func:`nvmechaos.faults.base.fault_windows` puts fault timeline events
stamped on ``time.monotonic()`` on it given fio's start on that clock). :func:`measure_impacts` does
it all for a fio result: finds fio's start on the host clock (:func:`fio_origin`), reads its logs
(:func:`~nvmechaos.analysis.series.run_series`), and analyses every fault active during the run.
(About 520 lines: the noise band, the per-fault analysis and that path from a result are one
measurement; the limits it is judged against are in :mod:`nvmechaos.verdicts.impact`.)

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
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np

from nvmechaos import units
from nvmechaos.analysis.runclock import TIMELINE_NAME, RunClock, align_run_dir, is_epoch_log
from nvmechaos.analysis.series import IntervalSeries, RunSeries, run_series
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults.base import fault_windows
from nvmechaos.fio.model import FioResult
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


# ---- from a fio result and a timeline to impacts -----------------------------------------------------


def _host_epoch_clock(artifacts_dir: Path, logs: Mapping[str, Sequence[Path]]) -> RunClock | None:
    """For fio run on this host with ``log_unix_epoch=1``: its logs put on the host clock (rewritten
    relative to fio's start, originals kept in ``epoch/``) and the clock saved; None for other logs.
    """
    files = [Path(path) for paths in logs.values() for path in paths]
    try:
        if not files or not is_epoch_log(files[0]):
            return None
    except OSError as error:
        raise ImpactError(str(error)) from None
    # As a guest run's logs are: each job's own log_avg_msec from the run folder's job.fio.
    return align_run_dir(artifacts_dir)


def fio_origin(result: FioResult, origin: float | None = None) -> tuple[float, str]:
    """fio's start on this host's ``time.monotonic()``, and how it is known: ``origin`` when given;
    for fio run on this host with ``log_unix_epoch=1``, from its logs (put on the host clock here);
    else the ``timeline.json`` a timed guest run left in the run folder (unless an older run left it).

    Raises:
        ImpactError: none of these is there.
        ClockError: the logs or the saved clock cannot be read.
    """
    artifacts = result.artifacts
    directory = artifacts.directory if artifacts is not None else Path(".")
    if origin is not None:
        return float(origin), "given"
    clock = _host_epoch_clock(directory, artifacts.logs) if artifacts is not None else None
    if clock is None:
        clock = RunClock.load(directory)
        output = directory / "fio.json"
        if clock is not None and output.is_file():
            saved = (directory / TIMELINE_NAME).stat().st_mtime
            if saved < output.stat().st_mtime:
                clock = None  # left by an earlier run in the same folder
    if clock is None:
        raise ImpactError(
            f"fio's start on the host clock is unknown: no timeline.json in '{directory}' (run the job "
            "with Start Timed Fio Job On VM; on this host with log_unix_epoch=1, or pass "
            "origin=${fio.started_monotonic})"
        )
    if clock.uncertainty_s == 0:
        return clock.fio_start_monotonic, "fio on this host, logs on its wall clock"
    return clock.fio_start_monotonic, f"guest clock ± {clock.uncertainty_s * 1000:.0f} ms"


def flatten_events(events: object) -> list[Event]:
    """Fault events from an event, a list of them, a list of lists (e.g. two timelines), or None.

    Raises:
        ImpactError: something else (text, a number, a list holding one).
    """
    if events is None or events == "":
        return []
    if isinstance(events, Event):
        return [events]
    if not isinstance(events, Iterable) or isinstance(events, str | bytes):
        raise ImpactError(
            f"'{events!s}' is not a list of fault events (use Get Fault Timeline / Get VM Fault Timeline)"
        )
    return [event for item in events for event in flatten_events(item)]


def windows_during_run(
    events: Iterable[Event], start: float, run: IntervalSeries, until: float | None = None
) -> list[FaultWindow]:
    """The fault windows of ``events`` (in seconds from ``start``) that overlap the run's series
    ``run``; one still open ends at ``until`` (default: now on ``time.monotonic()``)."""
    end = float(run.times_s.max()) + run.window_ms / 1000.0
    spans = fault_windows(events, start, until=time.monotonic() if until is None else until)
    return [window for window in spans if window[0] < end and window[1] > 0]


def default_recovery_windows(window_ms: int) -> int:
    """Enough consecutive windows to cover 1 s, and at least 2."""
    return max(2, math.ceil(1000 / max(window_ms, 1)))


@dataclass(frozen=True)
class ImpactReport:
    """What :func:`measure_impacts` found: per fault its impact, the fault windows, the series they
    were judged on, and how fio's start was placed on the host clock."""

    impacts: list[FaultImpact]
    windows: list[FaultWindow]
    series: RunSeries
    origin: str


def measure_impacts(
    result: FioResult,
    events: Sequence[Event],
    *,
    origin: float | None = None,
    baseline_s: float = 5.0,
    tolerance_pct: float = 10.0,
    band_sigmas: float = 3.0,
    recovery_windows: int | None = None,
    latency_slack_ms: float = 1.0,
    window_s: float | None = None,
) -> ImpactReport:
    """The impact of every fault of ``events`` that was active during the fio run ``result`` (see
    :func:`analyse`): IOPS summed over directions, latency the worst direction per window.
    ``recovery_windows`` defaults to :func:`default_recovery_windows`.

    Raises:
        ImpactError: fio's start unknown, no usable log, no fault during the run, a bad parameter,
            or a fault without a baseline.
    """
    start, how = fio_origin(result, origin)
    series = run_series(result, window_s)
    total = series.total
    windows = windows_during_run(events, start, total)
    if not windows:
        raise ImpactError(
            f"no fault was active during the fio run (0 to {float(total.times_s.max()):.0f} s after its "
            f"start; {len(events)} timeline events): nothing to judge"
        )
    impacts = analyse(
        total,
        windows,
        series.worst_latency,
        baseline_s=units.parse_duration(baseline_s, "baseline", error=ImpactError),
        tolerance_pct=tolerance_pct,
        band_sigmas=band_sigmas,
        recovery_windows=(
            default_recovery_windows(total.window_ms) if recovery_windows is None else recovery_windows
        ),
        latency_slack_ms=latency_slack_ms,
    )
    return ImpactReport(impacts, windows, series, how)


__all__ = [
    "Band",
    "FaultImpact",
    "FaultWindow",
    "ImpactError",
    "ImpactReport",
    "analyse",
    "default_recovery_windows",
    "fio_origin",
    "flatten_events",
    "measure_impacts",
    "noise_band",
    "windows_during_run",
]
