"""How steady a series is: variation and worst interval after a ramp, and SNIA-style steady state."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nvmechaos.analysis.series import AnalysisError, IntervalSeries
from nvmechaos.fio.logs import FloatArray

# --------------------------------------------------------------------------------------------------
# Consistency and steady state
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consistency:
    """How much a series varies after the ramp. Ratios are to the mean; stddev is the population one."""

    samples: int
    mean: float
    stddev: float
    minimum: float
    maximum: float
    cov_pct: float
    min_to_mean: float
    max_to_mean: float
    start_s: float
    end_s: float


def _after_ramp(series: IntervalSeries, ramp_s: float) -> tuple[FloatArray, FloatArray]:
    times = np.asarray(series.times_s, dtype=np.float64)
    values = np.asarray(series.values, dtype=np.float64)
    keep = (times > ramp_s) & ~np.isnan(values)
    return times[keep], values[keep]


def consistency(series: IntervalSeries, *, ramp_s: float = 0.0) -> Consistency:
    """CoV (%), min/mean and max/mean of ``series``, leaving out windows ending at or before ``ramp_s``.

    NaN values (no sample) are left out. A mean of 0 gives an infinite CoV and max/mean.

    Raises:
        AnalysisError: no value is left after the ramp.
    """
    times, values = _after_ramp(series, ramp_s)
    if values.size == 0:
        raise AnalysisError(
            f"{series.direction} {series.kind} has no interval after the {ramp_s:g} s ramp "
            f"({len(series)} intervals in all)"
        )
    mean = float(values.mean())
    stddev = float(values.std())
    low, high = float(values.min()), float(values.max())
    positive = mean > 0
    return Consistency(
        samples=int(values.size),
        mean=mean,
        stddev=stddev,
        minimum=low,
        maximum=high,
        cov_pct=stddev / mean * 100.0 if positive else math.inf,
        min_to_mean=low / mean if positive else 0.0,
        max_to_mean=high / mean if positive else math.inf,
        start_s=float(times[0]),
        end_s=float(times[-1]),
    )


@dataclass(frozen=True)
class SteadyState:
    """The SNIA PTS steady-state test over a window of ``rounds`` rounds.

    In the window, the data excursion (max - min) must be within ``max_range_pct`` of the mean
    and the excursion of the least-squares line (|slope| x window span) within ``max_slope_pct``.
    ``start_s``/``end_s`` are the times of the window's first and last round (NaN when there were
    too few rounds); ``detail`` says in one sentence what was found.
    """

    steady: bool
    rounds: int
    round_s: float
    start_s: float
    end_s: float
    mean: float
    range_pct: float
    slope_pct: float
    max_range_pct: float
    max_slope_pct: float
    detail: str


def steady_state(
    series: IntervalSeries,
    *,
    rounds: int = 5,
    round_s: float | None = None,
    ramp_s: float = 0.0,
    max_range_pct: float = 20.0,
    max_slope_pct: float = 10.0,
) -> SteadyState:
    """Find the first window of ``rounds`` consecutive rounds in steady state (SNIA PTS criteria).

    A round is one interval of ``series`` or, with ``round_s``, the mean of the intervals in each
    ``round_s`` seconds after the ramp. Windows ending at or before ``ramp_s`` are left out. When no
    window is steady, the result describes the last one (``steady`` False).

    Raises:
        ValueError: ``rounds`` < 2, ``round_s`` <= 0, or a limit is negative.
    """
    if rounds < 2:
        raise ValueError(f"a steady-state window needs at least 2 rounds, not {rounds}")
    if round_s is not None and round_s <= 0:
        raise ValueError(f"round_s must be positive, not {round_s}")
    if max_range_pct < 0 or max_slope_pct < 0:
        raise ValueError("steady-state limits must not be negative")
    times, values = _after_ramp(series, ramp_s)
    if round_s is not None and values.size:
        group = np.floor((times - times[0]) / round_s).astype(np.int64)
        counts = np.bincount(group)
        filled = counts > 0
        times = (np.bincount(group, weights=times) / np.maximum(counts, 1))[filled]
        values = (np.bincount(group, weights=values) / np.maximum(counts, 1))[filled]
    size = round_s if round_s is not None else series.window_ms / 1000.0
    name = f"{series.direction} {series.kind}"
    if values.size < rounds:
        return SteadyState(
            False,
            rounds,
            size,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            max_range_pct,
            max_slope_pct,
            f"{name}: only {values.size} rounds after the {ramp_s:g} s ramp, {rounds} needed",
        )
    last: SteadyState | None = None
    for start in range(values.size - rounds + 1):
        window_t = times[start : start + rounds]
        window_v = values[start : start + rounds]
        mean = float(window_v.mean())
        span = float(window_t[-1] - window_t[0])
        centred = window_t - window_t.mean()
        denominator = float(centred @ centred)
        slope = float(centred @ (window_v - mean)) / denominator if denominator > 0 else 0.0
        if mean > 0:
            range_pct = float(window_v.max() - window_v.min()) / mean * 100.0
            slope_pct = abs(slope) * span / mean * 100.0
        else:
            range_pct = slope_pct = math.inf
        steady = range_pct <= max_range_pct and slope_pct <= max_slope_pct
        verdict = "steady" if steady else "not steady"
        detail = (
            f"{name} {verdict} from {float(window_t[0]):g} s to {float(window_t[-1]):g} s: "
            f"range {range_pct:.1f} % of mean (limit {max_range_pct:g} %), "
            f"slope excursion {slope_pct:.1f} % (limit {max_slope_pct:g} %)"
        )
        last = SteadyState(
            steady,
            rounds,
            size,
            float(window_t[0]),
            float(window_t[-1]),
            mean,
            range_pct,
            slope_pct,
            max_range_pct,
            max_slope_pct,
            detail,
        )
        if steady:
            return last
    assert last is not None
    return last


# --------------------------------------------------------------------------------------------------
# Write cliff
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteCliff:
    """Fresh-out-of-box against late IOPS of a sustained write run, and where IOPS fell through
    the midpoint between them (None when they never did)."""

    fob_iops: float
    steady_iops: float
    ratio: float
    cliff_at_s: float | None
    fob_window: tuple[float, float]
    steady_window: tuple[float, float]


def write_cliff(iops: IntervalSeries, head_s: float, tail_s: float) -> WriteCliff:
    """Mean IOPS of the windows in the first ``head_s`` seconds after fio's first window (its
    start-up) against the windows of the last ``tail_s`` seconds before fio's last (cut short).
    Times are reported in seconds from fio's start, also for logs stamped with epoch time.

    Raises:
        AnalysisError: fewer than two windows in either part, or the parts overlap.
    """
    window_s = iops.window_ms / 1000.0
    all_times = np.asarray(iops.times_s, dtype=np.float64)
    if all_times.size == 0:
        raise AnalysisError("a write cliff needs at least 4 full IOPS windows, the run has 0")
    relative = all_times - (all_times[0] - window_s)  # the first window ends one window after the start
    times = relative[1:-1]
    values = np.asarray(iops.values, dtype=np.float64)[1:-1]
    keep = ~np.isnan(values)
    times, values = times[keep], values[keep]
    if times.size < 4:
        raise AnalysisError(f"a write cliff needs at least 4 full IOPS windows, the run has {times.size}")
    head = times <= window_s + head_s + 1e-9
    tail = times > times[-1] - tail_s
    if head.sum() < 2 or tail.sum() < 2 or np.any(head & tail):
        raise AnalysisError(
            f"the run ({times[-1]:.0f} s) is too short for a {head_s:g} s fresh-out-of-box part and a "
            f"{tail_s:g} s steady part that do not overlap (each needs two windows of {window_s:g} s)"
        )
    fob, steady = float(values[head].mean()), float(values[tail].mean())
    midpoint = (fob + steady) / 2
    below = np.nonzero((values < midpoint) & ~head)[0]
    return WriteCliff(
        fob_iops=fob,
        steady_iops=steady,
        ratio=fob / steady if steady > 0 else math.inf,
        cliff_at_s=float(times[below[0]]) if below.size and fob > steady else None,
        fob_window=(float(times[head][0]), float(times[head][-1])),
        steady_window=(float(times[tail][0]), float(times[tail][-1])),
    )
