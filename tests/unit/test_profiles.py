"""The shipped threshold profiles ask of each shipped workload only what its design allows.

A rate-limited job (``rate_iops``) can never exceed its rate, whatever the drive: a profile whose
floor for it is above the rate fails by design on every machine (the README once showed such a run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nvmechaos.fio.jobfile import JobFile
from nvmechaos.verdicts.profiles import load_profiles

ROOT = Path(__file__).resolve().parents[2]
PROFILES = load_profiles(ROOT / "variables" / "thresholds.yaml")
JOB_FILES = sorted(p for p in (ROOT / "fio_jobs").glob("*.fio") if "spdk" not in p.name)
_SIZES = {"k": 1024, "m": 1024**2}


def _bytes(size: str) -> int:
    size = size.strip().lower()
    return int(size[:-1]) * _SIZES[size[-1]] if size[-1] in _SIZES else int(size)


def _directions(rw: str) -> list[str]:
    if rw in ("randrw", "rw", "readwrite"):
        return ["read", "write"]
    return ["write"] if "write" in rw else ["read"]


def rate_limited_jobs() -> list[tuple[str, str, int, int, list[str]]]:
    found = []
    for path in JOB_FILES:
        jobs = JobFile.load(path)
        for job in jobs.job_names:
            rate = jobs.effective("rate_iops", job)
            if rate is not None:
                bs = _bytes(jobs.effective("bs", job) or "4k")
                rw = jobs.effective("rw", job) or "read"
                found.append((path.name, job, int(rate), bs, _directions(rw)))
    return found


def test_the_shipped_workloads_have_rate_limited_jobs() -> None:
    assert {job for _, job, *_ in rate_limited_jobs()} >= {"tenant_a", "tenant_b", "noisy_neighbour"}


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(("source", "job", "rate", "bs", "directions"), rate_limited_jobs())
def test_no_floor_above_a_jobs_rate(profile, source, job, rate, bs, directions) -> None:  # type: ignore[no-untyped-def]
    for direction in directions:
        limits = PROFILES[profile].limits_for(job, direction)
        where = f"profile '{profile}', {source} job '{job}' {direction} (rate_iops={rate}, bs={bs})"
        assert limits.get("min_iops", 0) <= rate, f"{where}: min_iops {limits['min_iops']} above the rate"
        ceiling_mbps = rate * bs / 1e6
        assert limits.get("min_bw_mbps", 0) <= ceiling_mbps, (
            f"{where}: min_bw_mbps {limits['min_bw_mbps']} above {ceiling_mbps:.2f} MB/s the rate allows"
        )
