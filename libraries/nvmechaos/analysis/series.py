"""Per-interval series of fio's logs (IOPS, bandwidth, latency over time): averaged logs as they
are, per-I/O logs cut into exact windows, series added up over directions, and the series of a fio
result (:func:`run_series`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nvmechaos import units
from nvmechaos.analysis.runclock import ClockError, log_windows
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.logs import (
    ADDITIVE_KINDS,
    DIRECTION_NAMES,
    LATENCY_KINDS,
    UNITS,
    FloatArray,
    IntArray,
    LogChunk,
    LogFormatError,
    iter_log_chunks,
    log_thread,
    read_log,
)
from nvmechaos.fio.model import FioResult

# Windows cut from logs with one line per I/O (log_avg_msec=0): see benchmarks/baseline_noise.py.
PER_IO_WINDOW_S = 0.5


class AnalysisError(NvmeChaosError):
    """There is not enough data for the figure asked for (e.g. no interval after the ramp)."""


@dataclass(frozen=True, eq=False)
class IntervalSeries:
    """One direction's values over time.

    ``times_s`` are the ends of the windows (fio stamps an averaged sample at the end of its
    window), in seconds from the job's start; ``values`` are in ``unit``.
    """

    kind: str
    direction: str
    unit: str
    window_ms: int
    times_s: FloatArray
    values: FloatArray
    files: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        """Mean of the values (NaN when empty)."""
        return float(self.values.mean()) if self.values.size else math.nan


# --------------------------------------------------------------------------------------------------
# Averaged series
# --------------------------------------------------------------------------------------------------


def _infer_window_ms(logs: Sequence[LogChunk]) -> int:
    """fio's ``log_avg_msec`` from the spacing of the samples (median step), or 1000 if unknown."""
    steps: list[IntArray] = []
    firsts: list[int] = []
    for log in logs:
        for direction in range(3):
            times = np.unique(log.time_ms[log.ddir == direction])
            if times.size:
                firsts.append(int(times[0]))
            if times.size > 1:
                steps.append(np.diff(times))
    if steps:
        return max(1, round(float(np.median(np.concatenate(steps)))))
    if firsts and min(firsts) > 0:
        return min(firsts)
    return 1000


def job_file_windows(job_file: Path | None) -> dict[str, int]:
    """Each log thread's ``log_avg_msec`` as the run's ``job_file`` (its ``job.fio``) sets it (see
    :func:`~nvmechaos.analysis.runclock.log_windows`), or nothing when there is no readable one."""
    if job_file is None:
        return {}
    try:
        return log_windows(JobFile.load(job_file))
    except (ClockError, OSError, ValueError, NvmeChaosError):
        return {}


def logged_window_ms(paths: Sequence[Path], windows: Mapping[str, int]) -> int | None:
    """The window (``log_avg_msec``) of the threads that wrote ``paths``, from ``windows``
    (:func:`job_file_windows`), or None (infer it from the samples) when that is unknown, differs
    between them, or is 0 (one line per I/O). Known, a window is never misread from samples fio wrote
    a little late."""
    found = {windows.get(log_thread(path)) for path in paths}
    if len(found) != 1:
        return None
    window = found.pop()
    return window if window else None


def _sibling(path: Path, kind: str, other: str) -> Path:
    return path.with_name(re.sub(rf"_{kind}(\.\d+)?\.log$", rf"_{other}\1.log", path.name))


def read_series(
    paths: Sequence[str | Path],
    kind: str,
    *,
    window_ms: int | None = None,
    iops_paths: Sequence[str | Path] | None = None,
) -> dict[str, IntervalSeries]:
    """Read averaged fio logs (written with ``log_avg_msec``) of ``kind`` into one series per direction.

    ``paths`` are the logs of threads that ran at the same time (a job's ``numjobs`` clones; fio
    stamps each thread's log from that thread's start). Samples are put in windows of
    ``window_ms`` (default: inferred from the sample spacing) by their time stamp, rounded to the
    nearest window end. Across files, iops and bw add up; latencies (lat, clat, slat) are averaged
    weighted by each thread's IOPS in that window, read from ``iops_paths`` (default: the
    ``fio_iops.N.log`` beside each latency log, when all exist; otherwise equal weights).

    fio writes no line for a window in which a direction did no I/O, so iops and bw series are
    filled with 0 over the whole run (a stall shows as zeros); latency series have only windows
    with samples. Directions without any sample are left out.

    Raises:
        LogFormatError: a file cannot be read, is not fio's format, or logs every I/O (has a
            block size) instead of window averages.
        ValueError: ``kind`` is not one of iops, bw, lat, clat, slat, or ``window_ms`` < 1.
    """
    if kind not in UNITS:
        raise ValueError(f"unknown log kind '{kind}' (expected one of {', '.join(UNITS)})")
    if window_ms is not None and window_ms < 1:
        raise ValueError(f"window_ms must be at least 1, not {window_ms}")
    files = tuple(Path(p) for p in paths)
    if not files:
        return {}
    logs = [read_log(path) for path in files]
    for log in logs:
        _require_averaged(log)
    window = window_ms or _infer_window_ms(logs)

    weights = _weight_logs(files, kind, iops_paths) if kind in LATENCY_KINDS and len(files) > 1 else None

    slots_all = [_slots(log.time_ms, window) for log in logs]
    nonempty = [s for s in slots_all if s.size]
    if not nonempty:
        return {}
    low = min(int(s.min()) for s in nonempty)
    high = max(int(s.max()) for s in nonempty)
    span = high - low + 1
    times = (np.arange(low, high + 1, dtype=np.float64) * window) / 1000.0

    result: dict[str, IntervalSeries] = {}
    for direction, name in enumerate(DIRECTION_NAMES):
        grid = np.full((len(logs), span), np.nan)
        for row, (log, slots) in enumerate(zip(logs, slots_all, strict=True)):
            mask = log.ddir == direction
            if mask.any():
                grid[row] = _window_means(slots[mask] - low, log.value[mask], span)
        present = ~np.isnan(grid)
        if not present.any():
            continue
        if kind in ADDITIVE_KINDS:
            values = np.where(present, grid, 0.0).sum(axis=0)
            keep = np.ones(span, dtype=bool)
        else:
            weight = _weight_grid(weights, direction, window, low, present)
            keep = present.any(axis=0)
            total = weight.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = (np.where(present, grid, 0.0) * weight).sum(axis=0) / total
        result[name] = IntervalSeries(
            kind=kind,
            direction=name,
            unit=UNITS[kind],
            window_ms=window,
            times_s=times[keep],
            values=np.asarray(values[keep], dtype=np.float64),
            files=files,
        )
    return result


def is_per_io_log(path: str | Path) -> bool:
    """True when fio log ``path`` has one line per I/O (a block size, no ``log_avg_msec``); False
    for window averages or an empty log.

    Raises:
        LogFormatError: as :func:`iter_log_chunks`.
    """
    for chunk in iter_log_chunks(Path(path)):
        if len(chunk):
            return bool(chunk.bs[0])
    return False


def per_io_series(paths: Sequence[str | Path], kind: str, window_ms: int) -> dict[str, IntervalSeries]:
    """Windowed series from fio logs with one line per I/O (no ``log_avg_msec``), one per direction.

    A line stamped ``t`` ms (the I/O's completion) belongs to the window ``((k-1)·w, k·w]`` with
    ``k = floor(t / w) + 1``; its end ``k·w`` is the window's time, as fio stamps averages. Unlike
    fio's own averages, whose time stamps slip whenever the guest stalls, every I/O lands in the
    window it completed in. ``iops``: completions per second in each window (any per-I/O log
    counts: iops, clat, lat...), 0 where none completed, from the first window to the last;
    latency kinds: the mean of the window's I/Os in ns, only windows with completions. ``paths``
    (``numjobs`` clones) add up. Reading is streamed: memory grows with the run's length, not its
    number of I/Os.

    Raises:
        LogFormatError: a file cannot be read, is not fio's format, or is a log of averages.
        ValueError: ``kind`` is not iops or a latency, or ``window_ms`` < 1.
    """
    if kind != "iops" and kind not in LATENCY_KINDS:
        raise ValueError(f"per-I/O series of '{kind}' are not supported (use iops, lat, clat or slat)")
    if window_ms < 1:
        raise ValueError(f"window_ms must be at least 1, not {window_ms}")
    files = tuple(Path(p) for p in paths)
    counts: dict[int, FloatArray] = {}
    sums: dict[int, FloatArray] = {}

    def grow(store: dict[int, FloatArray], direction: int, size: int) -> FloatArray:
        array = store.get(direction, np.zeros(0))
        if array.size < size:
            array = np.concatenate([array, np.zeros(size - array.size)])
            store[direction] = array
        return array

    for path in files:
        for chunk in iter_log_chunks(path):
            if not len(chunk):
                continue
            averaged = np.flatnonzero(chunk.bs == 0)
            if averaged.size:
                row = int(averaged[0])
                raise LogFormatError(
                    f"fio log '{path}' line {chunk.first_line + row}: no block size, so a window average "
                    "(log_avg_msec); per-I/O series need one line per I/O (log_avg_msec=0)"
                )
            slots = chunk.time_ms // window_ms + 1
            for direction in np.unique(chunk.ddir):
                mask = chunk.ddir == direction
                size = int(slots[mask].max()) + 1
                count = grow(counts, int(direction), size)
                total = grow(sums, int(direction), size)
                count += np.bincount(slots[mask], minlength=count.size)
                total += np.bincount(
                    slots[mask], weights=chunk.value[mask].astype(np.float64), minlength=total.size
                )
    result: dict[str, IntervalSeries] = {}
    for direction, count in sorted(counts.items()):
        if direction >= len(DIRECTION_NAMES) or not count.any():
            continue
        nonzero = np.flatnonzero(count)
        first, last = max(1, int(nonzero[0])), int(nonzero[-1])
        index = np.arange(first, last + 1)
        if kind == "iops":
            keep = index
            values = count[index] * 1000.0 / window_ms
        else:
            keep = index[count[index] > 0]
            values = sums[direction][keep] / count[keep]
        result[DIRECTION_NAMES[direction]] = IntervalSeries(
            kind=kind,
            direction=DIRECTION_NAMES[direction],
            unit=UNITS[kind],
            window_ms=window_ms,
            times_s=keep.astype(np.float64) * window_ms / 1000.0,
            values=np.asarray(values, dtype=np.float64),
            files=files,
        )
    return result


def _weight_logs(
    files: Sequence[Path], kind: str, iops_paths: Sequence[str | Path] | None
) -> list[LogChunk] | None:
    """The iops logs that weight the latency logs ``files``, or None for equal weights."""
    if iops_paths is not None:
        weight_files = [Path(p) for p in iops_paths]
        if len(weight_files) != len(files):
            raise ValueError(f"{len(weight_files)} iops logs for {len(files)} {kind} logs")
        return [read_log(p) for p in weight_files]
    siblings = [_sibling(path, kind, "iops") for path in files]
    if all(s.is_file() and s != p for s, p in zip(siblings, files, strict=True)):
        return [read_log(p) for p in siblings]
    return None


def _weight_grid(
    weights: Sequence[LogChunk] | None, direction: int, window: int, low: int, present: npt.NDArray[np.bool_]
) -> FloatArray:
    """Per file and window, the weight of its latency: its IOPS (0 where it has no latency)."""
    span = present.shape[1]
    if weights is None:
        return present.astype(np.float64)
    weight = np.zeros(present.shape)
    for row, log in enumerate(weights):
        mask = log.ddir == direction
        if mask.any():
            slots = _slots(log.time_ms[mask], window) - low
            inside = (slots >= 0) & (slots < span)
            means = _window_means(slots[inside], log.value[mask][inside], span)
            weight[row] = np.nan_to_num(means, nan=0.0)
    weight = np.where(present, weight, 0.0)
    # A window whose weights are all 0 (no iops sample) falls back to a plain mean.
    unweighted = weight.sum(axis=0) == 0
    weight[:, unweighted] = present[:, unweighted].astype(np.float64)
    return weight


def _require_averaged(log: LogChunk) -> None:
    sized = np.flatnonzero(log.bs)
    if sized.size:
        row = int(sized[0])
        raise LogFormatError(
            f"fio log '{log.path}' line {log.first_line + row}: block size {int(log.bs[row])} means one "
            "line per I/O; interval series need logs averaged over windows (fio's log_avg_msec)"
        )


def _slots(time_ms: IntArray, window: int) -> IntArray:
    """The window number of each time stamp: the nearest multiple of ``window`` (ends of windows)."""
    return np.asarray((time_ms + window // 2) // window, dtype=np.int64)


def _window_means(slots: IntArray, values: IntArray, span: int) -> FloatArray:
    """Mean value per slot 0..span-1 (NaN where none): two samples of one window are averaged."""
    sums = np.bincount(slots, weights=values.astype(np.float64), minlength=span)[:span]
    counts = np.bincount(slots, minlength=span)[:span]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def total_series(series: Mapping[str, IntervalSeries]) -> IntervalSeries:
    """Sum of iops or bw series over directions (read + write + trim), on the union of their times.

    Raises:
        ValueError: ``series`` is empty, mixes kinds, or is latency (which does not add up).
    """
    if not series:
        raise ValueError("no series to add up")
    parts = list(series.values())
    kinds = {s.kind for s in parts}
    if len(kinds) != 1 or next(iter(kinds)) not in ADDITIVE_KINDS:
        raise ValueError(f"only iops or bw series of one kind add up, not {', '.join(sorted(kinds))}")
    times = np.unique(np.concatenate([s.times_s for s in parts]))
    values = np.zeros(times.size)
    for part in parts:
        values[np.searchsorted(times, part.times_s)] += part.values
    first = parts[0]
    files = tuple(dict.fromkeys(f for s in parts for f in s.files))
    return IntervalSeries(first.kind, "total", first.unit, first.window_ms, times, values, files)


_NS_PER_UNIT: Mapping[str, float] = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def worst_series(series: Mapping[str, IntervalSeries]) -> IntervalSeries | None:
    """Per window, the highest latency over the directions (the conservative one to judge), in ns,
    on the union of their times; the one series as it is when there is one; None when there is none.
    """
    if not series:
        return None
    parts = list(series.values())
    if len(parts) == 1:
        return parts[0]
    times = np.unique(np.concatenate([s.times_s for s in parts]))
    values = np.full(times.size, np.nan)
    for part in parts:
        index = np.searchsorted(times, part.times_s)
        values[index] = np.fmax(values[index], part.values * _NS_PER_UNIT.get(part.unit, 1.0))
    first = parts[0]
    return IntervalSeries(first.kind, "worst", "ns", first.window_ms, times, values, first.files)


@dataclass(frozen=True)
class RunSeries:
    """A fio run's IOPS and latency series per direction (latency: clat, else lat), in seconds from
    fio's start, and the run's folder."""

    iops: Mapping[str, IntervalSeries]
    latency: Mapping[str, IntervalSeries]
    directory: Path

    @property
    def total(self) -> IntervalSeries:
        """IOPS summed over directions."""
        return total_series(self.iops)

    @property
    def worst_latency(self) -> IntervalSeries | None:
        """Per window, the worst direction's latency (None without a latency log)."""
        return worst_series(self.latency)


def run_series(result: FioResult, window_s: float | None = None) -> RunSeries:
    """The series of ``result``'s interval logs: fio's own window averages, or, for logs with one
    line per I/O (``log_avg_msec=0``), exact windows of ``window_s`` (default
    :data:`PER_IO_WINDOW_S`).

    Raises:
        AnalysisError: no IOPS log, an empty one, or a bad window.
        LogFormatError: a log is not fio's format.
    """
    artifacts = result.artifacts
    logs = artifacts.logs if artifacts is not None else {}
    if artifacts is None or "iops" not in logs:
        raise AnalysisError("the fio result has no IOPS interval log (run it with Run/Start Fio Job [On VM])")
    latency_kind = "clat" if "clat" in logs else "lat"
    try:
        if is_per_io_log(logs["iops"][0]):
            seconds = PER_IO_WINDOW_S if window_s is None else window_s
            width = round(units.parse_duration(seconds, "window", error=AnalysisError) * 1000)
            iops = per_io_series(logs["iops"], "iops", width)
            latency = per_io_series(logs[latency_kind], latency_kind, width) if latency_kind in logs else {}
        else:
            window_ms = logged_window_ms(logs["iops"], job_file_windows(artifacts.job_file))
            iops = read_series(logs["iops"], "iops", window_ms=window_ms)
            latency = {}
            if latency_kind in logs:
                latency = read_series(logs[latency_kind], latency_kind, window_ms=window_ms)
    except ValueError as error:  # a window under 1 ms
        raise AnalysisError(str(error)) from None
    if not iops:
        raise AnalysisError("the fio result's IOPS log is empty: the job did no I/O")
    return RunSeries(iops, latency, artifacts.directory)


_SAMPLE_UNITS = {"wear_pct": "%", "temperature_c": "°C", "free_blocks_pct": "%", "write_amplification": "x"}


def drive_sample_series(samples: Sequence[Mapping[str, float]], origin: float) -> dict[str, IntervalSeries]:
    """An emulated drive's per-second samples (``monotonic`` plus figures) as one series per
    figure, in seconds from ``origin`` on the monotonic clock (a fio run's start)."""
    keys = [key for key in (samples[0] if samples else {}) if key != "monotonic"] or [
        "wear_pct",
        "temperature_c",
        "free_blocks_pct",
        "write_amplification",
    ]
    times = np.asarray([float(sample["monotonic"]) - origin for sample in samples], dtype=np.float64)
    return {
        key: IntervalSeries(
            kind=key,
            direction="",
            unit=_SAMPLE_UNITS.get(key, ""),
            window_ms=1000,
            times_s=times,
            values=np.asarray([float(sample.get(key, math.nan)) for sample in samples], dtype=np.float64),
        )
        for key in keys
    }
