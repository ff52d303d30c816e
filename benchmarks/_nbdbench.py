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
