"""Latency summaries of per-I/O (or averaged) fio latency logs in bounded memory.

:func:`summarise_latency_log` keeps, per direction, a fixed-size log-linear histogram (see
:class:`LogLinearHistogram` for the error bound), exact count/mean/min/max/stddev and a per-second
series, so its memory grows only with the run's duration, never with the number of lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nvmechaos.analysis.series import IntervalSeries
from nvmechaos.fio.logs import (
    DEFAULT_CHUNK_BYTES,
    DIRECTION_NAMES,
    IntArray,
    LogChunk,
    iter_log_chunks,
)

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9, 99.99)
"""Percentiles :func:`summarise_latency_log` reports unless told otherwise."""


# --------------------------------------------------------------------------------------------------
# Histogram and latency summaries
# --------------------------------------------------------------------------------------------------


class LogLinearHistogram:
    """A fixed-size log-linear (HDR-style) histogram of non-negative integers.

    Values below ``2 * S`` (``S = 2 ** sub_bucket_bits``) have a bucket each; above, every power of
    two ``[2**k, 2**(k+1))`` is cut into ``S`` equal buckets of width ``2**(k - sub_bucket_bits)``.
    A bucket is reported as the middle of the integers it holds, so a reported value is within
    ``1 / (2 * S)`` of the true one, relatively: 0.39 % with the default 7 bits (128 buckets per
    power of two, 7,296 buckets for the whole int64 range, 57 KiB). Values from 2**53 (104 days in
    ns) on may land one bucket off, as they go through float64.

    Percentiles follow the nearest-rank definition (``numpy.percentile(..., method="inverted_cdf")``):
    the value of rank ``ceil(p / 100 * n)``, computed in exact decimals (numpy's float product may
    round 99.9 % of 1,000 up to rank 1,000). Rank 1 and rank n are the exact minimum and maximum;
    every other result is clamped to them, so it never lies outside the data.
    """

    def __init__(self, sub_bucket_bits: int = 7) -> None:
        if not 1 <= sub_bucket_bits <= 16:
            raise ValueError(f"sub_bucket_bits must be between 1 and 16, not {sub_bucket_bits}")
        self.sub_bucket_bits = sub_bucket_bits
        self.sub_buckets = 1 << sub_bucket_bits
        self.n_buckets = self.sub_buckets * (64 - sub_bucket_bits)
        self.counts: IntArray = np.zeros(self.n_buckets, dtype=np.int64)
        self.minimum = math.inf
        self.maximum = -math.inf

    @property
    def relative_error(self) -> float:
        """The bound on ``|reported - true| / true`` of any percentile."""
        return 1.0 / (2 * self.sub_buckets)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def index(self, values: npt.NDArray[np.integer]) -> IntArray:
        """The bucket of every value (values must be >= 0)."""
        ints = values.astype(np.int64, copy=False)
        exponent = (ints.astype(np.float64).view(np.int64) >> 52) - 1022  # bit length for v >= 1
        shift = np.maximum(exponent - (self.sub_bucket_bits + 1), 0)
        return np.asarray((shift << self.sub_bucket_bits) + (ints >> shift), dtype=np.int64)

    def add(self, values: npt.NDArray[np.integer]) -> None:
        """Count ``values`` (non-negative integers)."""
        if values.size == 0:
            return
        self.counts += np.bincount(self.index(values), minlength=self.n_buckets)
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def add_counts(self, counts: IntArray, minimum: float, maximum: float) -> None:
        """Add bucket counts made with :meth:`index` (and the exact extremes of those values)."""
        self.counts += counts
        self.minimum = min(self.minimum, minimum)
        self.maximum = max(self.maximum, maximum)

    def merge(self, other: LogLinearHistogram) -> None:
        """Add ``other``'s counts (it must have the same ``sub_bucket_bits``)."""
        if other.sub_bucket_bits != self.sub_bucket_bits:
            raise ValueError("cannot merge histograms with different sub_bucket_bits")
        self.add_counts(other.counts, other.minimum, other.maximum)

    def bucket_value(self, index: int) -> float:
        """The middle of the integers bucket ``index`` holds."""
        if index < 2 * self.sub_buckets:
            return float(index)
        shift = index // self.sub_buckets - 1
        lower = (index - shift * self.sub_buckets) << shift
        return lower + ((1 << shift) - 1) / 2.0

    def percentiles(self, percents: Iterable[float]) -> dict[float, float]:
        """Nearest-rank percentiles (see the class) for every percent in ``percents``.

        Raises:
            ValueError: the histogram is empty, or a percent is outside 0..100.
        """
        total = self.count
        if total == 0:
            raise ValueError("no values counted")
        cumulative = np.cumsum(self.counts)
        result: dict[float, float] = {}
        for percent in percents:
            if not 0.0 <= percent <= 100.0:
                raise ValueError(f"percentile {percent} is outside 0..100")
            # Exact decimal arithmetic: 99.9 % of 1000 is rank 999, not 1000 as in float.
            rank = min(total, max(1, math.ceil(Fraction(repr(float(percent))) * total / 100)))
            if rank == 1:
                result[percent] = self.minimum
            elif rank == total:
                result[percent] = self.maximum
            else:
                index = int(np.searchsorted(cumulative, rank, side="left"))
                result[percent] = min(self.maximum, max(self.minimum, self.bucket_value(index)))
        return result

    def percentile(self, percent: float) -> float:
        """One nearest-rank percentile. Raises ValueError as :meth:`percentiles`."""
        return self.percentiles((percent,))[percent]


@dataclass(frozen=True, eq=False)
class DirectionLatency:
    """Latency of one direction in one or more logs, in ns.

    ``per_second`` is the mean latency in each 1 s window (NaN where nothing completed);
    ``per_second_count`` the number of lines in it, which is the IOPS when the log has one line
    per I/O (kind ``"iops"``; otherwise ``"samples"``). Both are stamped at each window's end.
    """

    direction: str
    count: int
    mean_ns: float
    min_ns: float
    max_ns: float
    stddev_ns: float
    cov_pct: float
    percentiles_ns: Mapping[float, float]
    per_second: IntervalSeries
    per_second_count: IntervalSeries

    def percentile(self, percent: float) -> float | None:
        """The latency in ns at ``percent``, or None when it was not computed."""
        for reported, value in self.percentiles_ns.items():
            if abs(reported - percent) < 1e-9:
                return value
        return None


@dataclass(frozen=True, eq=False)
class LatencySummary:
    """What :func:`summarise_latency_log` found, per direction that has samples.

    ``per_io`` is True when every line is one I/O (no ``log_avg_msec``); with averaged logs the
    counts, percentiles and spread are of window averages, not of I/Os. ``relative_error`` bounds
    the percentiles' error (see :class:`LogLinearHistogram`).
    """

    files: tuple[Path, ...]
    kind: str
    lines: int
    per_io: bool
    relative_error: float
    directions: Mapping[str, DirectionLatency] = field(default_factory=dict)

    def direction(self, name: str) -> DirectionLatency:
        """The figures for ``name`` ("read", "write", "trim"); KeyError naming those there are."""
        try:
            return self.directions[name]
        except KeyError:
            raise KeyError(
                f"no {name} latency in {', '.join(str(f) for f in self.files)} "
                f"(directions: {', '.join(self.directions) or 'none'})"
            ) from None


class _LatencyAccumulator:
    """Running per-direction statistics of latency lines, in memory independent of their number."""

    def __init__(self, sub_bucket_bits: int) -> None:
        self.histogram = LogLinearHistogram(sub_bucket_bits)
        buckets = self.histogram.n_buckets
        self.counts: IntArray = np.zeros(3 * buckets, dtype=np.int64)
        self.n = np.zeros(3, dtype=np.int64)
        self.mean = np.zeros(3, dtype=np.float64)
        self.m2 = np.zeros(3, dtype=np.float64)
        self.minimum = np.full(3, math.inf)
        self.maximum = np.full(3, -math.inf)
        self.second_sum = np.zeros(0, dtype=np.float64)
        self.second_count = np.zeros(0, dtype=np.int64)
        self.lines = 0
        self.averaged = False

    def add(self, chunk: LogChunk) -> None:
        value, ddir = chunk.value, chunk.ddir
        size = int(value.size)
        if size == 0:
            return
        self.lines += size
        if not self.averaged and not bool(chunk.bs.all()):
            self.averaged = True
        buckets = self.histogram.n_buckets
        index = self.histogram.index(value) + ddir * buckets
        chunk_counts = np.bincount(index, minlength=3 * buckets)
        self.counts += chunk_counts

        floats = value.astype(np.float64)
        # Per-second sums and counts of this block, from its first second on (not from 0: a block
        # of a day-long log must not cost a day's worth of buckets).
        seconds = chunk.time_ms // 1000
        first, last = int(seconds.min()), int(seconds.max())
        span = (last - first + 1) * 3
        keys = (seconds - first) * 3 + ddir
        second_sum = np.bincount(keys, weights=floats, minlength=span)
        second_count = np.bincount(keys, minlength=span)
        self._grow_seconds((last + 1) * 3)
        self.second_sum[first * 3 : first * 3 + span] += second_sum
        self.second_count[first * 3 : first * 3 + span] += second_count

        count = second_count.reshape(-1, 3).sum(axis=0)
        present = np.flatnonzero(count)
        if present.size == 1:
            # The usual case for one direction (or a block of one): no masks needed.
            direction = int(present[0])
            chunk_mean = float(floats.mean())
            deviation = floats - chunk_mean
            self._merge(direction, size, chunk_mean, float(deviation @ deviation))
            self.minimum[direction] = min(self.minimum[direction], float(value.min()))
            self.maximum[direction] = max(self.maximum[direction], float(value.max()))
            return
        means = second_sum.reshape(-1, 3).sum(axis=0) / np.maximum(count, 1)
        deviation = floats - means[ddir]
        m2 = np.bincount(ddir, weights=deviation * deviation, minlength=3)
        for direction in present.tolist():
            self._merge(direction, int(count[direction]), float(means[direction]), float(m2[direction]))
            # The extremes lie in the direction's lowest and highest non-empty buckets: look only
            # at the values there (cheaper than selecting all of the direction's values).
            used = np.flatnonzero(chunk_counts[direction * buckets : (direction + 1) * buckets])
            low, high = int(used[0]) + direction * buckets, int(used[-1]) + direction * buckets
            self.minimum[direction] = min(self.minimum[direction], float(value[index == low].min()))
            self.maximum[direction] = max(self.maximum[direction], float(value[index == high].max()))

    def _grow_seconds(self, needed: int) -> None:
        if needed <= self.second_sum.size:
            return
        grown = max(needed, 2 * self.second_sum.size, 3 * 64)
        grown += (-grown) % 3
        self.second_sum = np.concatenate([self.second_sum, np.zeros(grown - self.second_sum.size)])
        self.second_count = np.concatenate(
            [self.second_count, np.zeros(grown - self.second_count.size, dtype=np.int64)]
        )

    def _merge(self, direction: int, count: int, mean: float, m2: float) -> None:
        """Chan et al.'s parallel update of count, mean and sum of squared deviations."""
        before = int(self.n[direction])
        total = before + count
        delta = mean - self.mean[direction]
        self.mean[direction] += delta * count / total
        self.m2[direction] += m2 + delta * delta * before * count / total
        self.n[direction] = total

    def result(self, files: tuple[Path, ...], kind: str, percents: Sequence[float]) -> LatencySummary:
        buckets = self.histogram.n_buckets
        used = np.flatnonzero(self.second_count)
        seconds = int(used.max()) // 3 + 1 if used.size else 0
        times = np.arange(1, seconds + 1, dtype=np.float64)
        sums = self.second_sum[: seconds * 3].reshape(seconds, 3)
        counts = self.second_count[: seconds * 3].reshape(seconds, 3)
        directions: dict[str, DirectionLatency] = {}
        for index, name in enumerate(DIRECTION_NAMES):
            n = int(self.n[index])
            if n == 0:
                continue
            histogram = LogLinearHistogram(self.histogram.sub_bucket_bits)
            histogram.add_counts(
                self.counts[index * buckets : (index + 1) * buckets],
                float(self.minimum[index]),
                float(self.maximum[index]),
            )
            mean = float(self.mean[index])
            stddev = math.sqrt(float(self.m2[index]) / n)
            per_count = counts[:, index].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_mean = np.where(per_count > 0, sums[:, index] / per_count, np.nan)
            directions[name] = DirectionLatency(
                direction=name,
                count=n,
                mean_ns=mean,
                min_ns=float(self.minimum[index]),
                max_ns=float(self.maximum[index]),
                stddev_ns=stddev,
                cov_pct=stddev / mean * 100.0 if mean > 0 else math.inf,
                percentiles_ns=histogram.percentiles(percents),
                per_second=IntervalSeries(kind or "lat", name, "ns", 1000, times, per_mean, files),
                per_second_count=IntervalSeries(
                    "samples" if self.averaged else "iops",
                    name,
                    "samples/s" if self.averaged else "IO/s",
                    1000,
                    times,
                    per_count,
                    files,
                ),
            )
        return LatencySummary(
            files=files,
            kind=kind,
            lines=self.lines,
            per_io=not self.averaged,
            relative_error=self.histogram.relative_error,
            directions=directions,
        )


def _kind_of(path: Path) -> str:
    """ "clat" for ``fio_clat.1.log`` and the like; "" when the name does not say."""
    match = re.search(r"_(iops|bw|lat|clat|slat)(\.\d+)?\.log$", path.name)
    return match.group(1) if match else ""


def summarise_latency_log(
    path: str | Path,
    percentiles: Sequence[float] = PERCENTILES,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    sub_bucket_bits: int = 7,
) -> LatencySummary:
    """Summarise one fio latency log (lat, clat or slat; values in ns) per direction, streaming.

    Count, mean, min and max are exact; stddev and CoV are exact up to float rounding; percentiles
    come from a :class:`LogLinearHistogram` (relative error <= ``1 / 2**(sub_bucket_bits + 1)``,
    0.39 % by default). Memory: one block of ``chunk_bytes``, the histogram (57 KiB per direction)
    and the per-second series (48 bytes per second of run), whatever the number of lines.

    Raises:
        LogFormatError: the file cannot be read or a line is not fio's.
        ValueError: a percentile is outside 0..100, or ``chunk_bytes``/``sub_bucket_bits`` is invalid.
    """
    return summarise_latency_logs(
        [path], percentiles, chunk_bytes=chunk_bytes, sub_bucket_bits=sub_bucket_bits
    )


def summarise_latency_logs(
    paths: Sequence[str | Path],
    percentiles: Sequence[float] = PERCENTILES,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    sub_bucket_bits: int = 7,
) -> LatencySummary:
    """Summarise several latency logs as one population (e.g. every thread of a job).

    Per-second counts add up across files, so ``per_second_count`` is the job's total IOPS when
    the logs have one line per I/O. Raises as :func:`summarise_latency_log`.
    """
    for percent in percentiles:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percentile {percent} is outside 0..100")
    files = tuple(Path(p) for p in paths)
    accumulator = _LatencyAccumulator(sub_bucket_bits)
    for path in files:
        for chunk in iter_log_chunks(path, chunk_bytes):
            accumulator.add(chunk)
    kinds = {_kind_of(path) for path in files}
    kind = kinds.pop() if len(kinds) == 1 else ""
    return accumulator.result(files, kind, percentiles)
