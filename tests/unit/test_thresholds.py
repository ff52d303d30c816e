"""Threshold profiles: loading, validation messages, overrides, and verdicts on real fio output."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nvmechaos.errors import ThresholdError
from nvmechaos.fio.model import FioResult
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.units import ArgumentError
from nvmechaos.verdicts.profiles import (
    CONSISTENCY,
    PERFORMANCE,
    Profile,
    check_category,
    get_profile,
    load_profile,
    load_profiles,
)
from nvmechaos.verdicts.thresholds import (
    MetricError,
    VerdictError,
    check_thresholds,
    evaluate,
    measure_metric,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "fio"
SHIPPED = ROOT / "variables" / "thresholds.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_profiles_load() -> None:
    profiles = load_profiles(SHIPPED)
    assert {"default", "emulated", "datacenter"} <= set(profiles)
    default = profiles["default"].limits_for("any_job", "read")
    assert default["min_iops"] == 1000
    assert default["min_bw_mbps"] == 50
    assert default["max_p99_latency_ms"] == 50
    assert default["max_latency_ms"] == 500


def test_most_specific_limit_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
profiles:
  p:
    limits: {min_iops: 10}
    write: {min_iops: 20}
    jobs:
      a: {min_iops: 30, read: {min_iops: 40}}
""",
    )
    profile = get_profile(path, "p")
    assert profile.limits_for("other", "read")["min_iops"] == 10
    assert profile.limits_for("other", "write")["min_iops"] == 20
    assert profile.limits_for("a", "write")["min_iops"] == 30
    assert profile.limits_for("a", "read")["min_iops"] == 40


def test_extends_inherits_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
profiles:
  base: {limits: {min_iops: 10, max_latency_ms: 5}}
  child: {extends: base, limits: {min_iops: 1}}
""",
    )
    child = get_profile(path, "child")
    assert child.limits_for("j", "read") == {"min_iops": 1, "max_latency_ms": 5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "profiles:\n  p: {limits: {min_iopz: 1}}\n",
            r"limits\.yaml: profiles\.p\.limits\.min_iopz: unknown metric 'min_iopz'",
        ),
        (
            "profiles:\n  p: {limits: {min_iops: fast}}\n",
            r"profiles\.p\.limits\.min_iops: limit 'fast' is not a number",
        ),
        (
            "profiles:\n  p: {limits: {min_iops: -1}}\n",
            r"profiles\.p\.limits\.min_iops: limit -1 is negative",
        ),
        ("profiles:\n  p: {limits: {min_iops: true}}\n", r"limit True is not a number"),
        ("profiles:\n  p: {limits: {min_iops: .nan}}\n", r"is not a number"),
        ("profiles:\n  p: {limitz: {}}\n", r"profiles\.p: unknown key 'limitz'"),
        ("profiles:\n  p: {extends: q}\n", r"profiles\.p\.extends: no profile 'q'"),
        ("profiles:\n  p: {extends: p}\n", r"'extends' forms a loop"),
        ("profiles: [1, 2]\n", r"expected a top-level 'profiles:' mapping"),
        ("profiles:\n  p: {limits: [1]\n", r"not valid YAML at line"),
        (
            "profiles:\n  p: {jobs: {a: {write: {max_p99_latency_ms: x}}}}\n",
            r"profiles\.p\.jobs\.a\.write\.max_p99_latency_ms: limit 'x' is not a number",
        ),
        (
            "profiles:\n  p: {jobs: {a: {min_iopz: 5}}}\n",
            r"limits\.yaml: profiles\.p\.jobs\.a\.min_iopz: unknown metric 'min_iopz'",
        ),
        (
            "profiles:\n  p: {jobs: {a: {wrtie: {min_iops: 5}}}}\n",
            r"limits\.yaml: profiles\.p\.jobs\.a\.wrtie: 'wrtie' is not a direction \(read, write, trim\)",
        ),
        ("profiles:\n  p: {wrtie: {min_iops: 5}}\n", r"limits\.yaml: profiles\.p: unknown key 'wrtie'"),
        ("profiles:\n  p: {extends: [q]}\n", r"profiles\.p\.extends: expected a profile name, got \['q'\]"),
        ("profiles:\n  1: {extends: 2}\n", r"profiles\.1\.extends: expected a profile name, got 2"),
    ],
)
def test_invalid_files_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        load_profiles(write(tmp_path, text))


def test_missing_file_and_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(ThresholdError, match=r"threshold file '.*nope\.yaml' does not exist"):
        load_profiles(tmp_path / "nope.yaml")
    with pytest.raises(ThresholdError, match=r"no profile 'x' \(profiles: datacenter, default, emulated\)"):
        get_profile(SHIPPED, "x")


def test_overrides_are_scoped_and_validated() -> None:
    profile = get_profile(SHIPPED, "default").with_overrides(
        {"min_iops": "5", "write.min_iops": 6, "job.min_iops": "7", "job.read.min_iops": "8"}
    )
    assert profile.limits_for("x", "read")["min_iops"] == 5
    assert profile.limits_for("x", "write")["min_iops"] == 6
    assert profile.limits_for("job", "write")["min_iops"] == 7
    assert profile.limits_for("job", "read")["min_iops"] == 8
    with pytest.raises(ThresholdError, match="override min_iops: limit 'lots' is not a number"):
        profile.with_overrides({"min_iops": "lots"})
    with pytest.raises(ThresholdError, match=r"use METRIC, DIRECTION\.METRIC"):
        profile.with_overrides({"a.b.c.min_iops": "1"})


def test_keyword_overrides_win_over_the_files_specific_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles:\n  p: {jobs: {a: {write: {min_iops: 40}}}}\n")
    profile = get_profile(path, "p").with_overrides({"min_iops": 1e9})
    assert profile.limits_for("a", "write")["min_iops"] == 1e9


def test_category_mismatch_is_refused() -> None:
    profile = get_profile(SHIPPED, "default")
    with pytest.raises(
        ThresholdError, match="consistency metric; check it with 'Fio Result Should Be Consistent'"
    ):
        check_category(profile, {"max_iops_cov_pct": "1"}, PERFORMANCE)
    with pytest.raises(
        ThresholdError, match="performance metric; check it with 'Fio Result Should Meet Thresholds'"
    ):
        check_category(profile, {"read.min_iops": "1"}, CONSISTENCY)


def test_verdict_on_real_output_names_everything() -> None:
    result = parse_fio_file(FIXTURES / "randrw_json.json")
    profile = get_profile(SHIPPED, "default").with_overrides({"min_iops": 1e9, "max_latency_ms": 1e6})
    verdict = check_thresholds(result, profile)
    assert not verdict.passed
    lines = verdict.failure_lines()
    read_iops = result.jobs[0].directions["read"].iops
    assert any(
        line.startswith("job 'randrw' read: IOPS (min_iops) must be at least 1e+09 IOPS, measured ")
        for line in lines
    )
    assert any(f"{read_iops:,.2f}".rstrip("0").rstrip(".") in line for line in lines)
    assert all("max_latency_ms" not in line for line in lines)


def test_verdict_passes_with_reachable_limits() -> None:
    result = parse_fio_file(FIXTURES / "randrw_json.json")
    profile = get_profile(SHIPPED, "default").with_overrides(
        {"min_iops": 1, "min_bw_mbps": 0, "max_latency_ms": 1e6}
    )
    verdict = check_thresholds(result, profile)
    assert verdict.passed, verdict.failure_lines()
    assert len(verdict.checks) == 8  # 4 performance metrics x read and write


def test_error_and_idle_jobs_never_pass() -> None:
    result = parse_fio_file(FIXTURES / "job_error.txt")
    verdict = check_thresholds(result, get_profile(SHIPPED, "default"))
    assert not verdict.passed
    assert any("fio reported error 1 (Operation not permitted)" in p for p in verdict.problems)
    assert any("did no I/O" in p for p in verdict.problems)


def test_unreported_percentile_fails_rather_than_passes() -> None:
    result = parse_fio_file(FIXTURES / "percentile_list.json")
    verdict = check_thresholds(
        result, get_profile(SHIPPED, "default").with_overrides({"max_p99_99_latency_ms": 1e9})
    )
    failing = [c for c in verdict.violations if c.metric == "max_p99_99_latency_ms"]
    assert failing and failing[0].measured is None
    assert "not measured" in failing[0].describe()


def test_a_verdict_confirms_its_pass_or_fails_listing_every_finding() -> None:
    result = parse_fio_file(FIXTURES / "randrw_json.json")
    passed = check_thresholds(result, loose())
    assert passed.confirm("threshold") == "All 8 threshold checks passed (profile default)."
    failed = check_thresholds(result, loose(**{"min_iops": 1e9}))
    with pytest.raises(VerdictError) as failure:
        failed.confirm("threshold")
    lines = str(failure.value).split("\n")
    assert lines[0] == "2 threshold violations (profile default):"
    assert lines[1].startswith("- job 'randrw' read: IOPS (min_iops) must be at least 1e+09 IOPS, measured ")
    assert lines[2].startswith("- job 'randrw' write: IOPS (min_iops)")
    one = check_thresholds(result, loose(**{"write.min_iops": 1e9}))
    with pytest.raises(
        VerdictError, match=r"^1 threshold violation \(profile default\):\n- job 'randrw' write"
    ):
        one.confirm("threshold")


def test_load_profile_reads_the_file_of_one_check_with_its_overrides() -> None:
    profile = load_profile(SHIPPED, "default", {"write.min_iops": "5"}, PERFORMANCE)
    assert profile.limits_for("j", "write")["min_iops"] == 5
    assert profile.limits_for("j", "read")["min_iops"] == 1000
    with pytest.raises(ArgumentError, match=r"^thresholds is empty: give the path of a YAML threshold file$"):
        load_profile("", "default", {}, PERFORMANCE)
    with pytest.raises(ThresholdError, match=r"'max_iops_cov_pct' is a consistency metric"):
        load_profile(SHIPPED, "default", {"max_iops_cov_pct": "5"}, PERFORMANCE)


def test_numeric_profile_names_are_names(tmp_path: Path) -> None:
    profiles = load_profiles(
        write(tmp_path, "profiles:\n  1: {limits: {min_iops: 5}}\n  2: {extends: '1'}\n")
    )
    assert profiles["2"].limits_for("j", "read") == {"min_iops": 5}


# --------------------------------------------------------------------------------------------------
# Verdicts never pass on nothing, and overrides must name what the result has

RANDRW = FIXTURES / "randrw_json.json"  # one job 'randrw', reads and writes
READ_ONLY = FIXTURES / "read_only.json"  # one job, reads only
MULTI = FIXTURES / "multi_jobs.json"


def loose(**overrides: object) -> Profile:
    return get_profile(SHIPPED, "default").with_overrides(
        {"min_iops": 0, "min_bw_mbps": 0, "max_latency_ms": 1e9, "max_p99_latency_ms": 1e9, **overrides}
    )


def test_a_result_without_jobs_never_passes() -> None:
    empty = FioResult(fio_version="fio-3.33", jobs=())
    verdict = check_thresholds(empty, get_profile(SHIPPED, "default"))
    assert not verdict.passed
    assert verdict.failure_lines() == ["the result has no jobs (fio reported none); it cannot pass"]


def test_a_verdict_that_checks_nothing_never_passes(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles:\n  perf_only: {limits: {min_iops: 1}}\n")
    result = parse_fio_file(RANDRW)
    verdict = evaluate(get_profile(path, "perf_only"), {"randrw": (0, ["read"])}, CONSISTENCY, lambda *_: 1.0)
    assert not verdict.passed
    assert verdict.checks == ()
    assert verdict.problems == (
        f"profile 'perf_only' ({path}) sets no consistency limit for any job and direction of this "
        "result, so nothing was checked; it cannot pass",
    )
    assert check_thresholds(result, get_profile(path, "perf_only")).passed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "randrv.max_p99_latency_ms",
            "override randrv.max_p99_latency_ms: the result has no job 'randrv' (jobs: randrw) and 'randrv' "
            "is not a direction (read, write, trim)",
        ),
        (
            "sideways.min_iops",
            "override sideways.min_iops: the result has no job 'sideways' (jobs: randrw) and 'sideways' is "
            "not a direction (read, write, trim)",
        ),
        (
            "other.read.min_iops",
            "override other.read.min_iops: the result has no job 'other' (jobs: randrw)",
        ),
        (
            "trim.min_iops",
            "override trim.min_iops: no job of the result did trim I/O (directions with I/O: read, write)",
        ),
        (
            "randrw.trim.min_iops",
            "override randrw.trim.min_iops: job 'randrw' did no trim I/O "
            "(its directions with I/O: read, write)",
        ),
    ],
)
def test_override_for_a_job_or_direction_the_result_lacks_fails(override: str, message: str) -> None:
    result = parse_fio_file(RANDRW)
    with pytest.raises(ThresholdError) as caught:
        check_thresholds(result, loose(**{override: 5}))
    assert str(caught.value) == message


def test_override_scoped_to_what_the_result_has_applies() -> None:
    result = parse_fio_file(RANDRW)
    verdict = check_thresholds(
        result, loose(**{"write.min_iops": 1e12, "randrw.read.max_p99_latency_ms": 1e9})
    )
    assert [(c.direction, c.metric) for c in verdict.violations] == [("write", "min_iops")]


def test_a_job_that_did_no_io_is_not_asked_for_directions() -> None:
    # The verdict fails on the job itself; the override is not the problem.
    result = parse_fio_file(FIXTURES / "job_error.txt")
    job = result.jobs[0].name
    verdict = check_thresholds(result, loose(**{"write.min_iops": 5, f"{job}.read.min_iops": 5}))
    assert not verdict.passed
    assert any("did no I/O" in problem for problem in verdict.problems)
    with pytest.raises(ThresholdError, match=r"^override nojob\.min_iops: the result has no job 'nojob'"):
        check_thresholds(result, loose(**{"nojob.min_iops": 5}))


def test_overrides_in_several_jobs_name_them_all() -> None:
    result = parse_fio_file(MULTI)
    names = ", ".join(job.name for job in result.jobs)
    with pytest.raises(ThresholdError, match=rf"has no job 'x' \(jobs: {names}\)"):
        check_thresholds(result, loose(**{"x.min_iops": 5}))


# --------------------------------------------------------------------------------------------------
# Get Fio Metric's engine


def test_measure_metric_reads_the_named_figure() -> None:
    result = parse_fio_file(RANDRW)
    read = result.jobs[0].directions["read"]
    assert measure_metric(result, "iops") == read.iops
    assert measure_metric(result, "min_iops", job="randrw", direction="write") == (
        result.jobs[0].directions["write"].iops
    )
    assert measure_metric(result, "bw_mbps") == read.bw_bytes / 1e6


@pytest.mark.parametrize(
    ("source", "kwargs", "message"),
    [
        (RANDRW, {"metric": "iopz"}, r"^unknown metric 'iopz' \(known: bw_mbps, iops, latency_ms, "),
        (RANDRW, {"metric": "iops_cov_pct"}, r"^unknown metric 'iops_cov_pct' \(known: "),
        (
            RANDRW,
            {"metric": "iops", "direction": "sideways"},
            r"^unknown direction 'sideways' \(use read, write, trim\)$",
        ),
        (RANDRW, {"metric": "iops", "job": "nope"}, r"^the result has no job 'nope' \(jobs: randrw\)$"),
        (
            RANDRW,
            {"metric": "iops", "direction": "trim"},
            r"^job 'randrw' did no trim I/O \(its directions with I/O: read, write\); give direction=read$",
        ),
        (
            READ_ONLY,
            {"metric": "p99_latency_ms", "direction": "write"},
            r"did no write I/O \(its directions with I/O: read\); give direction=read$",
        ),
        (
            FIXTURES / "percentile_list.json",
            {"metric": "p99_99_latency_ms"},
            r"^job '.*' read: fio reported no value for p99_99_latency_ms$",
        ),
        (
            FIXTURES / "job_error.txt",
            {"metric": "p99_latency_ms"},
            r"^job '.*' did no I/O, so it has no p99_latency_ms$",
        ),
    ],
)
def test_measure_metric_says_what_is_missing(source: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(MetricError, match=message):
        measure_metric(parse_fio_file(source), **kwargs)


def test_measure_metric_of_a_job_that_did_no_io_is_zero_throughput() -> None:
    result = parse_fio_file(FIXTURES / "job_error.txt")
    assert measure_metric(result, "iops") == 0.0
    assert measure_metric(result, "bw_mbps", direction="write") == 0.0


def test_measure_metric_wants_a_job_name_when_there_are_several() -> None:
    result = parse_fio_file(MULTI)
    names = [job.name for job in result.jobs]
    with pytest.raises(
        MetricError, match=rf"^the result has {len(names)} jobs \({', '.join(names)}\): name one"
    ):
        measure_metric(result, "iops")
    second = result.jobs[1]
    direction = second.active_directions[0]
    assert measure_metric(result, "iops", job=second.name, direction=direction.direction) == direction.iops


def test_measure_metric_of_a_result_without_jobs() -> None:
    empty = replace(parse_fio_file(RANDRW), jobs=())
    with pytest.raises(MetricError, match=r"^the result has no jobs \(fio reported none\)$"):
        measure_metric(empty, "iops")
