"""Shared helpers of the NBD injector benchmarks: run fio's nbd engine through the fio runner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nvmechaos.fio.model import FioResult
from nvmechaos.fio.runner import prepare_job, start_fio

JOB = Path(__file__).resolve().parent / "nbd_randread.fio"


def run_fio(uri: str, work: Path, nice: int | None = None, **overrides: object) -> FioResult:
    """Run the nbd randread job against ``uri`` and return its result; with ``nice``, fio's
    process group runs at that priority (set right after the start, before fio forks its job)."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    prepared = prepare_job(JOB, {"uri": uri, **overrides}, run_dir)
    fio = start_fio(prepared, scope="benchmark")
    if nice is not None:
        os.setpriority(os.PRIO_PGRP, fio.process.pid, nice)
    return fio.wait(timeout=300)


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
