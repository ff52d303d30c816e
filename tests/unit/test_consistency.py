"""Mapping fio's per-thread interval logs back to jobs, and consistency verdicts on real runs."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nvmechaos.analysis.series import AnalysisError
from nvmechaos.errors import NvmeChaosError, ThresholdError
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.model import FioArtifacts, FioResult
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.fio.runner import prepare_job, start_fio
from nvmechaos.units import ArgumentError
from nvmechaos.verdicts.consistency import (
    DepthComparison,
    check_consistency,
    compare_depths,
    logs_by_job,
    thread_job_names,
)
from nvmechaos.verdicts.profiles import get_profile
from nvmechaos.verdicts.thresholds import VerdictError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "variables" / "thresholds.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "fio"
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


# --------------------------------------------------------------------------------------------------
# The ramp and the run's length, on a real report with interval logs written here


def with_logs(tmp_path: Path, seconds: int, directions: tuple[int, ...] = (0, 1)) -> FioResult:
    """The randrw fixture (one job, reads and writes) as if it ran ``seconds`` s with 1 s logs."""
    result = parse_fio_file(FIXTURES / "randrw_json.json")
    job = result.jobs[0]
    stretched = {name: replace(d, runtime_ms=seconds * 1000) for name, d in job.directions.items()}
    logs: dict[str, tuple[Path, ...]] = {}
    for kind in ("iops", "bw"):
        path = tmp_path / f"fio_{kind}.1.log"
        lines = [f"{t * 1000}, {500 + 10 * t}, {d}, 0, 0" for t in range(1, seconds + 1) for d in directions]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        logs[kind] = (path,)
    return replace(
        result,
        jobs=(replace(job, directions=stretched),),
        artifacts=FioArtifacts(directory=tmp_path, logs=logs),
    )


LOOSE = {
    "max_iops_cov_pct": 1000,
    "min_iops_min_mean_ratio": 0,
    "max_bw_cov_pct": 1000,
    "min_bw_min_mean_ratio": 0,
}


def test_ramp_within_the_run_leaves_out_its_intervals(tmp_path: Path) -> None:
    result = with_logs(tmp_path, 5)
    profile = get_profile(SHIPPED, "default").with_overrides(LOOSE)
    verdict = check_consistency(result, profile, ramp_seconds=2)
    assert verdict.passed, verdict.failure_lines()
    cov = {(c.direction, c.metric): c.measured for c in verdict.checks}
    # 3 intervals left: 530, 540, 550 IOPS.
    assert cov[("read", "min_iops_min_mean_ratio")] == pytest.approx(530 / 540)


def test_ramp_longer_than_the_run_names_the_ramp_and_the_run(tmp_path: Path) -> None:
    result = with_logs(tmp_path, 2)
    with pytest.raises(AnalysisError) as caught:
        check_consistency(result, get_profile(SHIPPED, "default"), ramp_seconds=100)
    assert str(caught.value) == (
        "ramp=100 s leaves no interval samples of job 'randrw' read to judge (at least 2 are needed): "
        "the run lasted 2 s (2 intervals of 1 s); use a ramp shorter than the run"
    )


def test_ramp_leaving_one_interval_says_so(tmp_path: Path) -> None:
    result = with_logs(tmp_path, 2)
    with pytest.raises(AnalysisError, match=r"^ramp=1 s leaves only 1 interval sample of job 'randrw' read"):
        check_consistency(result, get_profile(SHIPPED, "default"), ramp_seconds=1)


def test_run_too_short_to_judge_says_so_rather_than_blaming_fio(tmp_path: Path) -> None:
    result = with_logs(tmp_path, 1)
    with pytest.raises(AnalysisError) as caught:
        check_consistency(result, get_profile(SHIPPED, "default"))
    assert str(caught.value) == (
        "job 'randrw' read has 1 interval sample, at least 2 are needed to judge consistency: "
        "the run lasted 1 s (1 interval of 1 s); run it longer"
    )


@pytest.mark.parametrize("ramp", [-3.0, math.nan, math.inf])
def test_ramp_must_be_a_number_of_seconds(tmp_path: Path, ramp: float) -> None:
    with pytest.raises(ThresholdError, match=r"^ramp .* is not a number of seconds of at least 0$"):
        check_consistency(with_logs(tmp_path, 3), get_profile(SHIPPED, "default"), ramp_seconds=ramp)


def test_direction_missing_from_the_logs_is_not_blamed_on_fios_report(tmp_path: Path) -> None:
    result = with_logs(tmp_path, 3, directions=(0,))
    verdict = check_consistency(result, get_profile(SHIPPED, "default").with_overrides(LOOSE))
    unmeasured = [c.describe() for c in verdict.violations if c.direction == "write"]
    assert unmeasured
    assert all(
        "not measured (fio's " in line and "interval logs have no write samples" in line
        for line in unmeasured
    )


def test_override_for_a_job_the_result_lacks_is_refused(tmp_path: Path) -> None:
    profile = get_profile(SHIPPED, "default").with_overrides({"randrv.max_iops_cov_pct": 5})
    with pytest.raises(
        ThresholdError, match=r"^override randrv\.max_iops_cov_pct: the result has no job 'randrv'"
    ):
        check_consistency(with_logs(tmp_path, 3), profile)


def test_logs_with_odd_names_are_skipped(tmp_path: Path) -> None:
    result = with_logs(tmp_path, 3)
    odd = tmp_path / "fio_iops.old.log"
    odd.write_text("", encoding="utf-8")
    two = replace(result, jobs=(result.jobs[0], replace(result.jobs[0], name="other")))
    assert two.artifacts is not None
    artifacts = replace(two.artifacts, logs={"iops": (*two.artifacts.logs["iops"], odd)})
    assert logs_by_job(replace(two, artifacts=artifacts), "iops") == {}


def test_depth_comparison_falls_only_beyond_the_noise_band() -> None:
    inside = DepthComparison("qd1", "qd16", 3373.0, 2182.0, 1236.0, (3, 3), 3.0)
    assert not inside.falls
    assert inside.describe().startswith("IOPS did not fall with queue depth: job 'qd16' averaged 2,182 IOPS")
    beyond = replace(inside, band_iops=900.0)
    assert beyond.falls
    assert "1,191 IOPS less; the noise band is 900 IOPS (3 standard errors of 3 and 3 intervals)" in (
        beyond.describe()
    )
    assert inside.confirm() == inside.describe()
    with pytest.raises(VerdictError) as failure:
        beyond.confirm()
    assert str(failure.value) == beyond.describe()


def test_depth_comparison_names_jobs_it_cannot_compare() -> None:
    result = parse_fio_file(FIXTURES / "multi_jobs.json")
    with pytest.raises(ArgumentError, match=r"^shallow is empty: give a job name$"):
        compare_depths(result, "", "seqread")
    with pytest.raises(ArgumentError, match=r"^deep None is not a job name$"):
        compare_depths(result, "seqread", None)  # type: ignore[arg-type]
    with pytest.raises(ThresholdError, match=r"^sigmas 0.0 is not a positive number$"):
        compare_depths(result, "seqread", "seqwrite", sigmas=0.0)


@needs_fio
def test_depth_comparison_on_a_real_sweep(tmp_path: Path) -> None:
    """fio's null engine: an unlimited job, then one held to 100 IOPS, then an unlimited one again."""
    source = tmp_path / "sweep.fio"
    source.write_text(
        "[global]\nioengine=null\nsize=64m\nbs=4k\nrw=randread\ntime_based\nruntime=4\nstonewall\n"
        "[fast]\n[held]\nrate_iops=100\n[again]\n",
        encoding="utf-8",
    )
    result = start_fio(prepare_job(source, {}, tmp_path / "run")).wait(60)
    held = compare_depths(result, "fast", "held")
    assert held.falls
    assert held.deep_iops == pytest.approx(100, rel=0.1)
    assert held.samples[1] >= 2
    assert not compare_depths(result, "held", "again").falls
    with pytest.raises(NvmeChaosError, match=r"^the result has no job 'qd1' \(jobs: fast, held, again\)$"):
        compare_depths(result, "qd1", "held")
    with pytest.raises(NvmeChaosError, match=r"after its first \(start-up\) window, at least 2 are needed"):
        compare_depths(result, "fast", "held", ramp_seconds=3.5)
