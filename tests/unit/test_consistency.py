"""Mapping fio's per-thread interval logs back to jobs, and consistency verdicts on real runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nvmechaos.consistency import check_consistency, logs_by_job, thread_job_names
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.fio.runner import prepare_job, start_fio
from nvmechaos.thresholds import get_profile

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "variables" / "thresholds.yaml"
needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")


def job_file(tmp_path: Path, text: str) -> JobFile:
    path = tmp_path / "j.fio"
    path.write_text(text, encoding="utf-8")
    return JobFile.load(path)


def test_thread_names_follow_numjobs_from_job_and_global(tmp_path: Path) -> None:
    jobs = job_file(tmp_path, "[global]\nnumjobs=2\n[a]\n[b]\nnumjobs=3\n[global]\nnumjobs=1\n[c]\n")
    assert thread_job_names(jobs) == ["a", "a", "b", "b", "b", "c"]


def test_result_without_logs_cannot_be_judged() -> None:
    result = parse_fio_file(ROOT / "tests" / "fixtures" / "fio" / "randrw_json.json")
    with pytest.raises(NvmeChaosError, match="has no interval logs to judge consistency"):
        check_consistency(result, get_profile(SHIPPED, "default"))


@needs_fio
def test_logs_map_to_their_jobs_and_verdicts_use_them(tmp_path: Path) -> None:
    source = tmp_path / "two.fio"
    source.write_text(
        "[global]\nioengine=psync\nsize=4m\nbs=4k\ntime_based\nruntime=3\n"
        f"directory={tmp_path}\n[a]\nrw=randread\nnumjobs=2\n[b]\nrw=randwrite\n",
        encoding="utf-8",
    )
    result = start_fio(prepare_job(source, {}, tmp_path / "run")).wait(60)
    by_job = logs_by_job(result, "iops")
    assert [p.name for p in by_job["a"]] == ["fio_iops.1.log", "fio_iops.2.log"]
    assert [p.name for p in by_job["b"]] == ["fio_iops.3.log"]
    loose = get_profile(SHIPPED, "default").with_overrides(
        {"max_iops_cov_pct": 1000, "min_iops_min_mean_ratio": 0}
    )
    verdict = check_consistency(result, loose)
    assert {(c.job, c.direction) for c in verdict.checks} == {("a", "read"), ("b", "write")}
    assert all(c.measured is not None for c in verdict.checks if c.metric == "max_iops_cov_pct")
    strict = get_profile(SHIPPED, "default").with_overrides({"max_iops_cov_pct": 0})
    assert not check_consistency(result, strict).passed
