"""Shared helpers of the NBD injector benchmarks: run fio's nbd engine through the fio runner."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nvmechaos.fio.model import FioResult
from nvmechaos.fio.runner import prepare_job, start_fio

JOB = Path(__file__).resolve().parent / "nbd_randread.fio"


def run_fio(uri: str, work: Path, nice: int | None = None, **overrides: object) -> FioResult:
    """Run the nbd randread job against ``uri`` and return its result; with ``nice``, the job runs
    at that priority (fio's ``nice`` option; negative values need root)."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    options = {"uri": uri, **overrides, **({"nice": nice} if nice is not None else {})}
    prepared = prepare_job(JOB, options, run_dir)
    return start_fio(prepared, scope="benchmark").wait(timeout=300)


def read_stats(result: FioResult) -> tuple[float, float]:
    """(IOPS, mean completion latency in ms) of the read direction."""
    read = result.jobs[0].directions["read"]
    assert read.clat is not None
    return read.iops, read.clat.mean_ns / 1e6


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "?"


def print_accuracy_table(rows: list[tuple[str, float, float, float]], baseline_label: str) -> int:
    """Print (engine, injected ms, baseline mean ms, measured added ms) rows as a table; return the exit
    code: 0 when every row is within ±5 % of the injected delay."""
    print(f"load average at end: {load_average()}")
    print()
    print(f"| engine | injected (ms) | {baseline_label} (ms) | measured added (ms) | error | within ±5 % |")
    print("|---|---:|---:|---:|---:|:---:|")
    worst = 0.0
    for engine, delay, base, measured in rows:
        error = (measured - delay) / delay
        worst = max(worst, abs(error))
        ok = "yes" if abs(error) <= 0.05 else "NO"
        print(f"| {engine} | {delay:.0f} | {base:.3f} | {measured:.3f} | {error:+.2%} | {ok} |")
    return 0 if worst <= 0.05 else 1
