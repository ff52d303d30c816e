"""Speed and memory of summarise_latency_log on large per-I/O latency logs in fio's format.

For every size (millions of samples) and column layout it writes a log into a temporary directory
(deleted afterwards): one line per I/O at 250,000 IOPS, 70 % reads, latency in ns from a lognormal
body around 80 us with a 1 % slow tail around 2 ms, 4 KiB blocks; 5 columns as fio 3.33 writes
them (``time, value, ddir, bs, prio``) or 6 with ``log_offset`` (``..., offset, prio``). Each log is
then summarised in a fresh Python process: ``--repeat`` timed runs (best and median rate by the
wall clock, and the best by the process's CPU time, which other load on a shared machine inflates
less), then one under tracemalloc (its peak). The child also reports how
much its peak RSS grew during the timed runs, after a warm-up on a tiny log: from ``VmHWM``
(reset through /proc/self/clear_refs) and from ``getrusage`` ``ru_maxrss`` (which starts at the
parent's peak after fork+exec, so it only shows growth beyond that), and its ``VmHWM`` in all.
The file is in the page cache (just written): the figures are the parser's, not the disk's.

    .venv/bin/python benchmarks/analysis_speed.py [--sizes 1,5,10] [--layouts 5,6] [--repeat 3]
        [--chunk-bytes 1048576] [--compare-parsers] [--dir DIR]

Measured 2026-11-26 with ``--compare-parsers --repeat 5`` (2 vCPUs, Python 3.11.7, numpy 2.4.6,
load average 0.7 to 1.2 from other work on the machine)::

    parsers on 1,000,000 lines (24 MB), 1024 KiB blocks, best of 5:
      numpy.loadtxt (C parser, 4 columns)                         7.23 M lines/s
      bytes.translate + numpy.fromstring (unchecked)             10.62 M lines/s
      iter_log_chunks (checked, SWAR digits; reads the file)     10.64 M lines/s
    layout     samples  file MB  best s M samples/s  median per CPU s  MB/s tracemalloc MiB RSS +MiB VmHWM MiB
         5   1,000,000       24    0.11        8.99    8.59      8.99   216           11.83     13.1      41.8
         5   5,000,000      124    0.62        8.04    7.47      8.07   199           11.83     14.3      43.0
         5  10,000,000      250    1.22        8.20    7.67      8.21   205           11.83     14.2      42.8
         6   1,000,000       38    0.17        5.94    5.86      5.98   226            9.41     10.1      38.7
         6   5,000,000      194    0.86        5.82    5.26      5.81   225            9.41     12.9      41.4
         6  10,000,000      390    1.30        7.69    7.49      7.69   300            9.41     11.2      39.9

All counts and read means matched the generated data ("ok"). The ``maxrss +MiB`` column (0.0
throughout, left out above) shows why ``ru_maxrss`` alone cannot measure this in a child.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IOPS = 250_000
BLOCK = 1_000_000

CHILD = r"""
import json, resource, statistics, sys, time, tracemalloc
from pathlib import Path
from nvmechaos.analysis.latency import summarise_latency_log

def peak_rss_kib():
    # VmHWM is this process's own high-water mark (ru_maxrss carries the parent's over fork+exec).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def reset_peak_rss():
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass

path, warm, chunk, repeat = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
summarise_latency_log(warm, chunk_bytes=chunk)  # warm-up: imports, first allocations
reset_peak_rss()
rss_before = peak_rss_kib()
maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times, cpu = [], []
for _ in range(repeat):
    started, started_cpu = time.perf_counter(), time.process_time()
    summary = summarise_latency_log(path, chunk_bytes=chunk)
    times.append(time.perf_counter() - started)
    cpu.append(time.process_time() - started_cpu)
rss_after = peak_rss_kib()
maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
summarise_latency_log(path, chunk_bytes=chunk)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
read = summary.direction("read")
print(json.dumps({
    "best": min(times), "median": statistics.median(times), "cpu": min(cpu), "lines": summary.lines,
    "rss_kib": rss_after - rss_before, "rss_peak_kib": rss_after,
    "maxrss_delta_kib": maxrss_after - maxrss_before,
    "traced_peak": peak, "read_count": read.count, "read_mean": read.mean_ns,
    "p50": read.percentile(50.0), "p99": read.percentile(99.0), "p9999": read.percentile(99.99),
    "max_ns": read.max_ns, "seconds_in_series": len(read.per_second),
}))
"""


def digits(values: np.ndarray) -> np.ndarray:
    """Decimal digits of each non-negative int64."""
    count = np.ones(values.size, dtype=np.int64)
    for power in range(1, 19):
        count += values >= 10**power
    return count


def format_lines(columns: list[np.ndarray], tail: bytes) -> bytes:
    """fio's ``a, b, c, ...`` lines, vectorised: columns are int64 arrays; ``tail`` ends each line."""
    rows = columns[0].size
    widths = [digits(column) for column in columns]
    line_length = sum(widths) + 2 * (len(columns) - 1) + len(tail)
    ends = np.cumsum(line_length)
    starts = ends - line_length
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    position = starts.copy()
    for index, (column, width) in enumerate(zip(columns, widths, strict=True)):
        remaining = column.copy()
        for k in range(int(width.max())):
            has = k < width
            out[(position + width - 1 - k)[has]] = 48 + (remaining[has] % 10)
            remaining //= 10
        position += width
        if index < len(columns) - 1:
            out[position] = ord(",")
            out[position + 1] = ord(" ")
            position += 2
    for offset, byte in enumerate(tail):
        out[position + offset] = byte
    assert rows == 0 or int(position[-1]) + len(tail) == out.size
    return out.tobytes()


def write_log(path: Path, samples: int, layout: int, seed: int = 1) -> tuple[int, float]:
    """Write ``samples`` lines; returns (read count, exact read mean) to check the summary by."""
    rng = np.random.default_rng(seed)
    read_count, read_sum = 0, 0
    with path.open("wb") as handle:
        for first in range(0, samples, BLOCK):
            count = min(BLOCK, samples - first)
            index = np.arange(first, first + count, dtype=np.int64)
            time_ms = index * 1000 // IOPS
            slow = rng.random(count) < 0.01
            latency = np.where(
                slow, rng.lognormal(np.log(2e6), 0.8, count), rng.lognormal(np.log(8e4), 0.35, count)
            ).astype(np.int64)
            ddir = (rng.random(count) >= 0.7).astype(np.int64)
            bs = np.full(count, 4096, dtype=np.int64)
            columns = [time_ms, latency, ddir, bs]
            if layout == 6:
                columns.append(rng.integers(0, 2**28, count, dtype=np.int64) * 4096)  # offset < 1 TiB
            handle.write(format_lines(columns, b", 0\n"))
            reads = latency[ddir == 0]
            read_count += int(reads.size)
            read_sum += int(reads.sum())
    return read_count, read_sum / max(read_count, 1)


def compare_parsers(path: Path, chunk_bytes: int, repeat: int) -> None:
    """Lines per second of three ways to parse the same 1 MiB blocks (parsing only, best of ``repeat``)."""
    import io  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    from nvmechaos.fio.logs import iter_log_chunks  # noqa: PLC0415

    data = path.read_bytes()
    blocks, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + chunk_bytes) + 1
        blocks.append(data[start:end])
        start = end
    lines = data.count(b"\n")
    to_commas = bytes.maketrans(b"\nx", b",,")

    def loadtxt() -> None:
        for block in blocks:
            np.loadtxt(io.BytesIO(block), delimiter=",", usecols=(0, 1, 2, 3), dtype=np.int64)

    def fromstring() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for block in blocks:
                np.fromstring(block.translate(to_commas), dtype=np.int64, sep=",")

    def engine() -> None:
        for _ in iter_log_chunks(path, chunk_bytes):
            pass

    print(
        f"parsers on {lines:,} lines ({len(data) / 1e6:.0f} MB), {chunk_bytes // 1024} KiB blocks, "
        f"best of {repeat}:"
    )
    for name, parse in (
        ("numpy.loadtxt (C parser, 4 columns)", loadtxt),
        ("bytes.translate + numpy.fromstring (unchecked)", fromstring),
        ("iter_log_chunks (checked, SWAR digits; reads the file)", engine),
    ):
        best = min(_timed(parse) for _ in range(repeat))
        print(f"  {name:<56} {lines / best / 1e6:6.2f} M lines/s")


def _timed(function: object) -> float:
    started = time.perf_counter()
    function()  # type: ignore[operator]
    return time.perf_counter() - started


def run_child(path: Path, warm: Path, chunk_bytes: int, repeat: int) -> dict[str, float]:
    env = dict(os.environ)
    library = str(Path(__file__).resolve().parent.parent / "libraries")
    env["PYTHONPATH"] = library + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(warm), str(chunk_bytes), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,5,10", help="millions of samples, comma-separated")
    parser.add_argument("--layouts", default="5,6", help="column counts to test: 5 and/or 6")
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per log (best and median shown)")
    parser.add_argument("--compare-parsers", action="store_true", help="also time loadtxt and fromstring")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the logs (default: temp)")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    layouts = [int(s) for s in args.layouts.split(",")]

    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"chunk {args.chunk_bytes // 1024} KiB"
    )
    header = (
        f"{'layout':>6} {'samples':>11} {'file MB':>8} {'best s':>7} {'M samples/s':>11} {'median':>7} "
        f"{'per CPU s':>9} {'MB/s':>5} {'tracemalloc MiB':>15} {'RSS +MiB':>8} {'maxrss +MiB':>11} "
        f"{'VmHWM MiB':>9}  check"
    )
    with tempfile.TemporaryDirectory(prefix="analysis-speed-", dir=args.dir) as tmp:
        warm = Path(tmp) / "warm_lat.1.log"
        write_log(warm, 1_000, 5, seed=99)
        if args.compare_parsers:
            sample = Path(tmp) / "fio_lat.compare.log"
            write_log(sample, 1_000_000, 5)
            compare_parsers(sample, args.chunk_bytes, args.repeat)
            sample.unlink()
        print(header)
        print("-" * len(header))
        for layout in layouts:
            for millions in sizes:
                samples = int(millions * 1_000_000)
                path = Path(tmp) / f"fio_lat.{layout}col.{samples}.log"
                read_count, read_mean = write_log(path, samples, layout)
                size_mb = path.stat().st_size / 1e6
                figures = run_child(path, warm, args.chunk_bytes, args.repeat)
                ok = (
                    figures["lines"] == samples
                    and figures["read_count"] == read_count
                    and abs(figures["read_mean"] - read_mean) <= 1e-9 * read_mean
                )
                rate = samples / figures["best"] / 1e6
                median_rate = samples / figures["median"] / 1e6
                print(
                    f"{layout:>6} {samples:>11,} {size_mb:>8.0f} {figures['best']:>7.2f} "
                    f"{rate:>11.2f} {median_rate:>7.2f} {samples / figures['cpu'] / 1e6:>9.2f} "
                    f"{size_mb / figures['best']:>5.0f} "
                    f"{figures['traced_peak'] / 2**20:>15.2f} {figures['rss_kib'] / 1024:>8.1f} "
                    f"{figures['maxrss_delta_kib'] / 1024:>11.1f} {figures['rss_peak_kib'] / 1024:>9.1f}  "
                    f"{'ok' if ok else 'MISMATCH'} (read p50 {figures['p50'] / 1e3:.1f} us, "
                    f"p99 {figures['p99'] / 1e3:.0f} us, p99.99 {figures['p9999'] / 1e6:.1f} ms, "
                    f"{int(figures['seconds_in_series'])} s series)",
                    flush=True,
                )
                path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
