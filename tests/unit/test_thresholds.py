"""Threshold profiles: loading, validation messages, overrides, and verdicts on real fio output."""

from __future__ import annotations

from pathlib import Path

import pytest

from nvmechaos.errors import ThresholdError
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.thresholds import (
    CONSISTENCY,
    PERFORMANCE,
    check_category,
    check_thresholds,
    get_profile,
    load_profiles,
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
