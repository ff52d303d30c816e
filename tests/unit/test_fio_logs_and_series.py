"""Unit tests of the fio interval-log analysis: streaming parser, histogram, summaries, series, consistency.

Real logs come from tests/fixtures/logs (written by fio 3.33 with make_logs.sh there). Every figure
is checked against an independent reading of the same file: a plain ``str.split`` parser and numpy.
"""

from __future__ import annotations

import math
import shutil
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nvmechaos.analysis.latency import (
    PERCENTILES,
    LogLinearHistogram,
    summarise_latency_log,
    summarise_latency_logs,
)
from nvmechaos.analysis.series import (
    AnalysisError,
    IntervalSeries,
    job_file_windows,
    logged_window_ms,
    read_series,
    total_series,
)
from nvmechaos.analysis.steady import consistency, steady_state
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio import logs as iv
from nvmechaos.fio.logs import LogFormatError, iter_log_chunks, read_log

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
AVERAGED = LOGS / "averaged"
PER_IO_OFFSET = LOGS / "per_io_offset"
PER_IO_PRIO = LOGS / "per_io_prio"
STALL = LOGS / "stall"
ALL_LOGS = sorted(LOGS.glob("*/fio_*.log"))


def reference(path: Path) -> np.ndarray:
    """The first four columns of every non-blank line, read the obvious way."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append([int(part) for part in line.split(",")[:4]])
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def as_table(chunk: iv.LogChunk) -> np.ndarray:
    return np.stack([chunk.time_ms, chunk.value, chunk.ddir, chunk.bs], axis=1)


def write(tmp_path: Path, text: str | bytes, name: str = "fio_lat.1.log") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def fio_lines(rng: np.random.Generator, count: int, columns: int = 5, hex_prio: bool = False) -> str:
    times = np.sort(rng.integers(0, 10**7, count))
    values = rng.integers(0, 10 ** rng.integers(1, 17, count), dtype=np.int64)
    ddirs = rng.integers(0, 3, count)
    sizes = rng.choice([0, 512, 4096, 131072, 10**15], count)
    lines = []
    for t, v, d, b in zip(times.tolist(), values.tolist(), ddirs.tolist(), sizes.tolist(), strict=True):
        extra = [str(rng.integers(0, 10**12))] if columns == 6 else []
        prio = f"0x{int(rng.integers(0, 8)):04x}" if hex_prio else str(int(rng.integers(0, 8)))
        lines.append(", ".join([str(t), str(v), str(d), str(b), *extra, prio]))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------------


def test_fixtures_are_real_and_small() -> None:
    assert len(ALL_LOGS) >= 20
    for path in ALL_LOGS:
        assert 0 < path.stat().st_size < 8192, path


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reads_every_fixture_like_the_reference(path: Path) -> None:
    chunk = read_log(path)
    assert np.array_equal(as_table(chunk), reference(path))
    assert chunk.first_line == 1
    assert len(chunk) == len(reference(path))


def test_column_layouts_of_the_fixtures() -> None:
    offset_line = (PER_IO_OFFSET / "fio_lat.1.log").read_text().splitlines()[0]
    prio_line = (PER_IO_PRIO / "fio_lat.1.log").read_text().splitlines()[0]
    averaged_line = (AVERAGED / "fio_iops.1.log").read_text().splitlines()[0]
    assert len(offset_line.split(",")) == 6
    assert len(prio_line.split(",")) == 5 and "0x" in prio_line
    assert len(averaged_line.split(",")) == 5
    assert set(read_log(PER_IO_OFFSET / "fio_lat.1.log").ddir.tolist()) == {0, 1}
    assert (read_log(PER_IO_PRIO / "fio_lat.1.log").bs == 4096).all()
    assert (read_log(AVERAGED / "fio_iops.1.log").bs == 0).all()


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 13, 29, 64, 1000, 1 << 20])
@pytest.mark.parametrize("path", [PER_IO_OFFSET / "fio_lat.1.log", PER_IO_PRIO / "fio_clat.1.log"])
def test_lines_straddling_chunks(path: Path, chunk_bytes: int) -> None:
    chunks = list(iter_log_chunks(path, chunk_bytes))
    table = np.concatenate([as_table(c) for c in chunks])
    assert np.array_equal(table, reference(path))
    line = 1
    for chunk in chunks:  # line numbers follow on from chunk to chunk
        assert chunk.first_line == line
        line += len(chunk)


@pytest.mark.parametrize("columns,hex_prio", [(5, False), (5, True), (6, False), (6, True)])
@pytest.mark.parametrize("chunk_bytes", [37, 4096, 1 << 20])
def test_random_fio_lines_fast_path_matches_reference(
    tmp_path: Path, columns: int, hex_prio: bool, chunk_bytes: int
) -> None:
    rng = np.random.default_rng(columns * 10 + hex_prio)
    path = write(tmp_path, fio_lines(rng, 3000, columns, hex_prio))
    table = np.concatenate([as_table(c) for c in iter_log_chunks(path, chunk_bytes)])
    assert np.array_equal(table, reference(path))


def test_fast_path_handles_fio_layout(tmp_path: Path) -> None:
    """The vectorised parser (not the line-by-line fallback) reads fio's own layouts."""
    for path in [*ALL_LOGS, write(tmp_path, fio_lines(np.random.default_rng(1), 500, 6, True))]:
        data = path.read_bytes()
        buf = np.frombuffer(data, dtype=np.uint8)
        parsed = iv._ChunkParser(path).parse_fast(data, buf, np.flatnonzero(buf == 10), 1)
        assert parsed is not None, path
        assert np.array_equal(as_table(parsed), reference(path))


def test_widest_numbers(tmp_path: Path) -> None:
    text = (
        "9999999999999999, 1234567890123456, 2, 9999999999999999, 0\n"  # 16 digits: fast path
        "1, 9223372036854775807, 0, 0, 0\n"  # int64 max: line by line
        "0, 0, 1, 1, 0\n"
    )
    table = as_table(read_log(write(tmp_path, text)))
    assert table.tolist() == [
        [9999999999999999, 1234567890123456, 2, 9999999999999999],
        [1, 9223372036854775807, 0, 0],
        [0, 0, 1, 1],
    ]


@pytest.mark.parametrize("text", ["0, 5, 0, 4096, 0", "0, 5, 0, 4096, 0\n\n", "0, 5, 0, 4096, 0\n  \n\n"])
@pytest.mark.parametrize("chunk_bytes", [1, 5, 1 << 20])
def test_missing_last_newline_and_blank_last_lines(tmp_path: Path, text: str, chunk_bytes: int) -> None:
    chunk = read_log(write(tmp_path, "1, 2, 1, 512, 0\n" + text), chunk_bytes)
    assert as_table(chunk).tolist() == [[1, 2, 1, 512], [0, 5, 0, 4096]]


def test_hex_digits_in_prio_and_other_spacing(tmp_path: Path) -> None:
    text = "0, 10, 0, 4096, 0x00a0\n1, 11, 1, 4096, 0x2003\n2,12,1,4096,0x6000\n3 , 13 , 0 , 4096 , 0x0\n"
    assert as_table(read_log(write(tmp_path, text))).tolist() == [
        [0, 10, 0, 4096],
        [1, 11, 1, 4096],
        [2, 12, 1, 4096],
        [3, 13, 0, 4096],
    ]


def test_empty_file(tmp_path: Path) -> None:
    assert len(read_log(write(tmp_path, ""))) == 0
    assert len(read_log(write(tmp_path, "\n\n"))) == 0
    summary = summarise_latency_log(write(tmp_path, ""))
    assert summary.lines == 0 and summary.directions == {}


MALFORMED = [
    ("0, 1, 0, 4096, 0\n0, 2, 0, 4096\n", 2, "4 columns where the lines before have 5"),
    ("0, abc, 0, 4096, 0\n", 1, "value 'abc' is not a whole number"),
    ("0, 1, 0, 4096, 0\n0, 1.5, 0, 4096, 0\n", 2, "value '1.5' is not a whole number"),
    ("0, -5, 0, 4096, 0\n", 1, "value '-5' is not a whole number"),
    ("0, 5, 7, 4096, 0\n", 1, "direction 7 is not 0 (read), 1 (write) or 2 (trim)"),
    ("1, 2\n", 1, "2 columns, expected fio's 5 or 6"),
    ("0, 1, 0, 4096, 0, 0, 0, 0\n", 1, "8 columns"),
    ("0, 1, 0, 4096, 0\n0, 1, 0, 4096, 0\n\n0, 1, 0, 4096, 0\n", 4, "data after the blank line 53"),
    ("0, 1, 0, 4096, 0\n0, 1, 0, 4096, zz\n", 2, "column 'zz' is not a number"),
    ("0, 1, 0, 4096, 0\n0, 1, 0, , 0\n", 2, "block size '' is not a whole number"),
    ("0, 99999999999999999999, 0, 4096, 0\n", 1, "too large"),
    ("0, 1, 0, 4096, 0\n0\t1, 0, 4096, 0\n", 2, "4 columns where"),
]


@pytest.mark.parametrize("text,line,message", MALFORMED, ids=[m[2][:30] for m in MALFORMED])
@pytest.mark.parametrize("chunk_bytes", [3, 16, 1 << 20])
def test_malformed_lines_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str, chunk_bytes: int
) -> None:
    good = "".join(f"{i}, {i * 7}, {i % 2}, 4096, 0\n" for i in range(50))
    text = good + text  # the bad line comes after some good blocks
    path = write(tmp_path, text)
    with pytest.raises(LogFormatError) as caught:
        list(iter_log_chunks(path, chunk_bytes))
    assert f"fio log '{path}' line {line + 50}:" in str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value, NvmeChaosError)


def test_unreadable_and_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match=r"cannot read fio log .*missing\.log"):
        read_log(tmp_path / "missing.log")
    with pytest.raises(LogFormatError, match="no end of line within 65536 bytes"):
        read_log(write(tmp_path, b"\x00" * 100_000), chunk_bytes=4096)
    with pytest.raises(ValueError, match="chunk_bytes"):
        read_log(write(tmp_path, "0, 1, 0, 0, 0\n"), chunk_bytes=0)


# --------------------------------------------------------------------------------------------------
# Histogram
# --------------------------------------------------------------------------------------------------

CHECKED_PERCENTILES = (0.0, 0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0)


def datasets() -> list[np.ndarray]:
    rng = np.random.default_rng(2024)
    sets = []
    for size in (1, 2, 7, 100, 1000, 50_000, 400_000):
        sets.append(rng.lognormal(11.5, 0.6, size).astype(np.int64))  # ~100 us latencies in ns
        sets.append(rng.exponential(2e6, size).astype(np.int64))
        sets.append((rng.pareto(1.2, size) * 5e4).astype(np.int64))  # heavy tail up to seconds
        sets.append(rng.integers(0, 300, size))  # small values: exact buckets
        sets.append(rng.integers(0, 2**50, size))
    return sets


def nearest_rank(values: np.ndarray, percent: float) -> float:
    """numpy's inverted_cdf percentile, with the rank computed in exact decimals."""
    rank = max(1, math.ceil(Fraction(repr(percent)) * values.size / 100))
    exact = float(np.sort(values)[rank - 1])
    if percent in (0.0, 50.0, 90.0, 100.0):  # no float trouble: numpy agrees exactly
        assert exact == float(np.percentile(values, percent, method="inverted_cdf"))
    return exact


def test_percentiles_within_documented_bound_of_numpy() -> None:
    for values in datasets():
        histogram = LogLinearHistogram()
        for part in np.array_split(values, 3):
            histogram.add(part)
        assert histogram.count == values.size
        got = histogram.percentiles(CHECKED_PERCENTILES)
        for percent in CHECKED_PERCENTILES:
            exact = nearest_rank(values, percent)
            error = abs(got[percent] - exact) / max(exact, 1.0)
            assert error <= histogram.relative_error, (values.size, percent, got[percent], exact)
    assert LogLinearHistogram().relative_error == 1 / 256 < 0.01


@pytest.mark.parametrize("bits", [4, 6, 7, 10])
def test_every_value_lands_in_a_bucket_within_the_bound(bits: int) -> None:
    histogram = LogLinearHistogram(bits)
    rng = np.random.default_rng(bits)
    values = np.concatenate([np.arange(0, 5000), rng.integers(0, 2**52, 20000), 2 ** np.arange(1, 53) - 1])
    index = histogram.index(values)
    assert index.min() >= 0 and index.max() < histogram.n_buckets
    assert (np.diff(index[np.argsort(values, kind="stable")]) >= 0).all()  # monotonic
    middles = np.array([histogram.bucket_value(int(i)) for i in index])
    errors = np.abs(middles - values) / np.maximum(values, 1)
    assert errors.max() <= histogram.relative_error
    assert (middles[values < 2 * histogram.sub_buckets] == values[values < 2 * histogram.sub_buckets]).all()


def test_histogram_merge_and_errors() -> None:
    one, two = LogLinearHistogram(), LogLinearHistogram()
    one.add(np.array([10, 20, 30]))
    two.add(np.array([40, 50]))
    one.merge(two)
    assert one.count == 5 and one.percentile(50) == 30.0 and one.percentile(100) == 50.0
    with pytest.raises(ValueError, match="no values"):
        LogLinearHistogram().percentile(50)
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        one.percentile(101)
    with pytest.raises(ValueError, match="different sub_bucket_bits"):
        one.merge(LogLinearHistogram(5))


# --------------------------------------------------------------------------------------------------
# Latency summaries
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [PER_IO_OFFSET / "fio_lat.1.log", PER_IO_OFFSET / "fio_clat.1.log", PER_IO_PRIO / "fio_slat.1.log"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_summary_matches_numpy(path: Path) -> None:
    table = reference(path)
    summary = summarise_latency_log(path)
    assert summary.per_io and summary.lines == len(table)
    assert summary.kind == path.name.split("_")[1].split(".")[0]
    assert summary.relative_error == 1 / 256
    for ddir, name in enumerate(iv.DIRECTION_NAMES):
        values = table[table[:, 2] == ddir, 1]
        if values.size == 0:
            assert name not in summary.directions
            continue
        figures = summary.direction(name)
        assert figures.count == values.size
        assert figures.mean_ns == pytest.approx(values.mean(), rel=1e-12)
        assert figures.stddev_ns == pytest.approx(values.std(), rel=1e-9)
        assert figures.cov_pct == pytest.approx(values.std() / values.mean() * 100, rel=1e-9)
        assert (figures.min_ns, figures.max_ns) == (values.min(), values.max())
        assert set(figures.percentiles_ns) == set(PERCENTILES)
        for percent in PERCENTILES:
            exact = nearest_rank(values, percent)
            assert abs(figures.percentile(percent) - exact) <= exact / 256
        # Per-second series: the count per second is the IOPS of a per-I/O log.
        seconds = table[table[:, 2] == ddir, 0] // 1000
        counts = np.bincount(seconds, minlength=len(figures.per_second_count))
        assert np.array_equal(figures.per_second_count.values, counts)
        assert figures.per_second_count.kind == "iops" and figures.per_second_count.unit == "IO/s"
        assert figures.per_second.times_s.tolist() == list(range(1, len(counts) + 1))
        sums = np.bincount(seconds, weights=values, minlength=len(counts))
        with np.errstate(invalid="ignore"):
            assert np.allclose(figures.per_second.values, sums / counts, equal_nan=True)
    assert summary.direction("read").percentile(12.5) is None
    with pytest.raises(KeyError, match="no trim latency"):
        summary.direction("trim")


@pytest.mark.parametrize("chunk_bytes", [1, 17, 256])
def test_summary_does_not_depend_on_chunk_size(chunk_bytes: int) -> None:
    path = PER_IO_OFFSET / "fio_clat.1.log"
    small, whole = summarise_latency_log(path, chunk_bytes=chunk_bytes), summarise_latency_log(path)
    for name, figures in whole.directions.items():
        other = small.direction(name)
        assert other.count == figures.count
        assert other.percentiles_ns == figures.percentiles_ns
        assert other.mean_ns == pytest.approx(figures.mean_ns, rel=1e-12)
        assert other.stddev_ns == pytest.approx(figures.stddev_ns, rel=1e-9)
        assert (other.min_ns, other.max_ns) == (figures.min_ns, figures.max_ns)
        assert np.array_equal(other.per_second_count.values, figures.per_second_count.values)
        assert np.allclose(other.per_second.values, figures.per_second.values, equal_nan=True)


def test_per_second_series_of_a_log_that_starts_late(tmp_path: Path) -> None:
    """A day into a run: buckets from second 0 exist (NaN, 0) and the late ones are right."""
    text = "".join(f"{86_400_000 + 10 * i}, {1000 + i}, {i % 2}, 4096, 0\n" for i in range(250))
    summary = summarise_latency_log(write(tmp_path, text), chunk_bytes=64)
    read = summary.direction("read")
    assert len(read.per_second) == 86_403 and read.per_second.times_s[-1] == 86_403.0
    assert read.per_second_count.values[-3:].tolist() == [50.0, 50.0, 25.0]
    assert np.isnan(read.per_second.values[0]) and read.per_second_count.values[:86_400].sum() == 0
    assert read.per_second.values[-1] == pytest.approx(np.mean([1000 + i for i in range(200, 250, 2)]))


def test_summary_of_averaged_log_and_of_several_logs() -> None:
    summary = summarise_latency_log(AVERAGED / "fio_clat.1.log", percentiles=(50.0,))
    assert not summary.per_io
    read = summary.direction("read")
    assert read.per_second_count.kind == "samples"
    assert list(read.percentiles_ns) == [50.0]
    files = sorted(AVERAGED.glob("fio_lat.*.log"))
    both = summarise_latency_logs(files)
    tables = [reference(f) for f in files]
    values = np.concatenate([t[t[:, 2] == 1, 1] for t in tables])
    write_figures = both.direction("write")
    assert write_figures.count == values.size
    assert write_figures.mean_ns == pytest.approx(values.mean())
    assert both.files == tuple(files) and both.kind == "lat"
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        summarise_latency_log(files[0], percentiles=(120.0,))


def synthetic_log(path: Path, lines: int, seconds: int = 20) -> None:
    rng = np.random.default_rng(lines)
    with path.open("w") as handle:
        for start in range(0, lines, 100_000):
            count = min(100_000, lines - start)
            times = np.sort(rng.integers(0, seconds * 1000, count))
            values = rng.lognormal(11.5, 0.5, count).astype(np.int64)
            ddirs = rng.integers(0, 2, count)
            rows = zip(times.tolist(), values.tolist(), ddirs.tolist(), strict=True)
            handle.writelines(f"{t}, {v}, {d}, 4096, 0\n" for t, v, d in rows)


def test_memory_does_not_grow_with_the_number_of_lines(tmp_path: Path) -> None:
    peaks = []
    for lines in (50_000, 400_000):
        path = tmp_path / f"fio_lat.{lines}.log"
        synthetic_log(path, lines)
        tracemalloc.start()
        summary = summarise_latency_log(path, chunk_bytes=256 * 1024)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert summary.lines == lines
    # 8x the lines (and 8x the file), same duration: the peak stays put.
    assert peaks[1] < peaks[0] * 1.3, peaks
    assert peaks[1] < 16 * 1024 * 1024, peaks


# --------------------------------------------------------------------------------------------------
# Averaged series
# --------------------------------------------------------------------------------------------------


def test_iops_series_add_up_across_threads() -> None:
    files = sorted(AVERAGED.glob("fio_iops.*.log"))
    series = read_series(files, "iops")
    assert set(series) == {"read", "write"}
    tables = [reference(f) for f in files]
    for ddir, name in enumerate(("read", "write")):
        got = series[name]
        assert got.kind == "iops" and got.unit == "IO/s" and got.window_ms == 500
        assert got.files == tuple(files)
        assert got.times_s.tolist() == [0.5, 1.0, 1.5, 2.0, 2.5]  # 2001 ms is the 2.0 s window
        expected = sum(t[t[:, 2] == ddir, 1] for t in tables)
        assert got.values.tolist() == expected.tolist()
    total = total_series(series)
    assert total.direction == "total"
    assert np.array_equal(total.values, series["read"].values + series["write"].values)


def test_latency_series_weighted_by_each_threads_iops(tmp_path: Path) -> None:
    files = sorted(AVERAGED.glob("fio_lat.*.log"))
    iops_files = sorted(AVERAGED.glob("fio_iops.*.log"))
    series = read_series(files, "lat")
    lat = [reference(f) for f in files]
    iops = [reference(f) for f in iops_files]
    read = series["read"]
    assert read.unit == "ns" and read.times_s.tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    for slot in range(5):  # windows with iops samples: IOPS-weighted mean
        ls = [t[t[:, 2] == 0, 1][slot] for t in lat]
        ws = [t[t[:, 2] == 0, 1][slot] for t in iops]
        assert read.values[slot] == pytest.approx(np.average(ls, weights=ws))
    # The last window (3000 ms) has two lines per thread and no iops sample: a plain mean.
    last = [t[(t[:, 2] == 0) & (t[:, 0] == 3000), 1] for t in lat]
    assert read.values[5] == pytest.approx(np.mean([x.mean() for x in last]))
    # Explicit weights give the same; without iops logs beside them, equal weights.
    same = read_series(files, "lat", iops_paths=iops_files)["read"]
    assert np.allclose(same.values, read.values)
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    plain = read_series(sorted(tmp_path.glob("fio_lat.*.log")), "lat")["read"]
    first = [t[t[:, 2] == 0, 1][0] for t in lat]
    assert plain.values[0] == pytest.approx(np.mean(first))
    with pytest.raises(ValueError, match="1 iops logs for 2 lat logs"):
        read_series(files, "lat", iops_paths=iops_files[:1])


def test_stall_fills_iops_with_zeros_and_leaves_latency_gaps() -> None:
    iops = read_series([STALL / "fio_iops.1.log"], "iops")["write"]
    lat = read_series([STALL / "fio_lat.1.log"], "lat")["write"]
    assert iops.window_ms == 250 and lat.window_ms == 250
    assert iops.times_s.tolist() == [0.25 * k for k in range(1, 13)]
    assert iops.values[5:11].tolist() == [0.0] * 6  # 1.5 s to 2.75 s: no line from fio
    assert iops.values[:5].min() > 0 and iops.values[11] > 0
    assert 1.5 not in lat.times_s.tolist() and lat.times_s.tolist()[:5] == [0.25, 0.5, 0.75, 1.0, 1.25]
    assert not np.isnan(lat.values).any()
    assert set(read_series([STALL / "fio_iops.1.log"], "iops")) == {"write"}


def test_series_errors(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match=r"line 1: block size 4096 means one line per I/O.*log_avg_msec"):
        read_series([PER_IO_PRIO / "fio_iops.1.log"], "iops")
    with pytest.raises(ValueError, match="unknown log kind 'foo'"):
        read_series([AVERAGED / "fio_iops.1.log"], "foo")
    with pytest.raises(ValueError, match="window_ms"):
        read_series([AVERAGED / "fio_iops.1.log"], "iops", window_ms=0)
    assert read_series([], "iops") == {}
    assert read_series([write(tmp_path, "")], "iops") == {}
    with pytest.raises(ValueError, match="only iops or bw"):
        total_series(read_series([AVERAGED / "fio_lat.1.log"], "lat"))
    assert read_series([AVERAGED / "fio_bw.1.log"], "bw", window_ms=1000)["read"].window_ms == 1000


# --------------------------------------------------------------------------------------------------
# Consistency and steady state
# --------------------------------------------------------------------------------------------------


def series(values: list[float], window_s: float = 1.0) -> IntervalSeries:
    times = np.arange(1, len(values) + 1) * window_s
    return IntervalSeries("iops", "read", "IO/s", int(window_s * 1000), times, np.array(values, dtype=float))


def test_consistency_figures() -> None:
    figures = consistency(series([1000, 100, 100, 50, 150]), ramp_s=1.0)
    assert figures.samples == 4 and figures.mean == 100 and figures.start_s == 2.0 and figures.end_s == 5.0
    assert figures.cov_pct == pytest.approx(np.std([100, 100, 50, 150]) / 100 * 100)
    assert (figures.min_to_mean, figures.max_to_mean) == (0.5, 1.5)
    real = consistency(read_series(sorted(AVERAGED.glob("fio_iops.*.log")), "iops")["read"])
    assert 0 < real.cov_pct < 50 and real.min_to_mean < 1 < real.max_to_mean
    zero = consistency(series([0, 0, 0]))
    assert math.isinf(zero.cov_pct) and zero.min_to_mean == 0.0
    with_gap = consistency(series([10, float("nan"), 30]))
    assert with_gap.samples == 2 and with_gap.mean == 20
    with pytest.raises(AnalysisError, match="read iops has no interval after the 5 s ramp"):
        consistency(series([1, 2, 3]), ramp_s=5)


def test_steady_state_finds_the_first_steady_window() -> None:
    warming = [10, 30, 60, 80, 95, 100, 104, 98, 101, 99, 103, 100]
    result = steady_state(series(warming))
    assert result.steady and result.rounds == 5
    assert result.start_s == 5.0 and result.end_s == 9.0  # 95 .. 101: range 9 %
    assert result.range_pct <= 20 and result.slope_pct <= 10
    assert "steady from 5 s to 9 s" in result.detail
    assert not steady_state(series(warming[:8])).steady  # 60 .. 104 is not
    ramped = steady_state(series(warming), ramp_s=7.0)
    assert ramped.steady and ramped.start_s == 8.0


def test_steady_state_slope_and_range_limits() -> None:
    # 3 % growth per round: range 11 % of the mean passes, slope excursion 11.3 % does not.
    trend = steady_state(series([100 + 3 * i for i in range(5)]))
    assert not trend.steady
    assert trend.range_pct == pytest.approx(12 / 106 * 100)
    assert trend.slope_pct == pytest.approx(12 / 106 * 100)
    assert "not steady" in trend.detail
    noisy = steady_state(series([100, 125, 100, 125, 100, 125]), rounds=5)
    assert not noisy.steady and noisy.range_pct > 20 and noisy.slope_pct < 10
    assert steady_state(series([100, 125, 100, 125, 100]), max_range_pct=30).steady


def test_steady_state_rounds_and_errors() -> None:
    short = steady_state(series([1, 1, 1]))
    assert not short.steady and math.isnan(short.start_s) and "only 3 rounds" in short.detail
    # 0.5 s intervals in 1 s rounds: 10 rounds of mean 100.
    result = steady_state(series([90, 110] * 10, window_s=0.5), round_s=1.0)
    assert result.steady and result.range_pct == pytest.approx(0.0) and result.round_s == 1.0
    for kwargs in ({"rounds": 1}, {"round_s": 0.0}, {"max_range_pct": -1.0}):
        with pytest.raises(ValueError):
            steady_state(series([1, 2, 3]), **kwargs)  # type: ignore[arg-type]


def test_the_window_is_the_job_files_log_avg_msec_not_a_guess_from_late_samples(tmp_path: Path) -> None:
    # Under load fio stamps 1 s averages at 1001, 2002, 3003 ms: the spacing alone says 1.001 s.
    log = tmp_path / "fio_iops.1.log"
    log.write_text("".join(f"{1001 * k}, 100, 0, 0, 0\n" for k in range(1, 6)), encoding="ascii")
    job_file = tmp_path / "job.fio"
    job_file.write_text("[global]\nlog_avg_msec=1000\n[mixed]\nrw=randread\n", encoding="ascii")
    windows = job_file_windows(job_file)
    assert read_series([log], "iops")["read"].window_ms == 1001
    assert logged_window_ms([log], windows) == 1000
    assert read_series([log], "iops", window_ms=logged_window_ms([log], windows))["read"].window_ms == 1000
    assert logged_window_ms([log], job_file_windows(None)) is None
    assert logged_window_ms([log], job_file_windows(tmp_path / "missing.fio")) is None
    job_file.write_text("[mixed]\nrw=randread\nlog_avg_msec=0\n", encoding="ascii")
    assert logged_window_ms([log], job_file_windows(job_file)) is None, "per-I/O logs have no window to read"
