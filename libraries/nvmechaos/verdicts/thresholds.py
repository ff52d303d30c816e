"""Threshold verdicts: each limit of a profile (:mod:`nvmechaos.verdicts.profiles`) checked against
what fio measured, one line per violation naming the job, direction, metric, limit and value; and
single figures of a result (:func:`measure_metric`).

A verdict never passes on nothing: a result without jobs, a job that did no I/O or reported an error,
and a profile that sets no limit for the result are problems whatever the limits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from nvmechaos.errors import NvmeChaosError, ThresholdError
from nvmechaos.fio.model import DIRECTIONS, DirectionResult, FioResult
from nvmechaos.verdicts.profiles import METRICS, PERFORMANCE, Profile

_PERCENTILE_OF_METRIC = {
    "max_p50_latency_ms": 50.0,
    "max_p90_latency_ms": 90.0,
    "max_p95_latency_ms": 95.0,
    "max_p99_latency_ms": 99.0,
    "max_p99_9_latency_ms": 99.9,
    "max_p99_99_latency_ms": 99.99,
}


@dataclass(frozen=True)
class Check:
    """One limit checked against one measured value."""

    job: str
    direction: str
    metric: str
    limit: float
    measured: float | None
    passed: bool
    # Why there is no measured value, when there is none.
    note: str = ""

    def describe(self) -> str:
        metric = METRICS.get(self.metric)
        unit = f" {metric.unit}" if metric and metric.unit else ""
        label = metric.label if metric else self.metric
        sense = "at least" if self.metric.startswith("min_") else "at most"
        if self.measured is None:
            measured = f"not measured ({self.note or 'fio reported no such value'})"
        else:
            measured = f"measured {_number(self.measured)}{unit}"
        return (
            f"job '{self.job}' {self.direction}: {label} ({self.metric}) must be {sense} "
            f"{_number(self.limit)}{unit}, {measured}"
        )


def _number(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 1e9:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a result against a profile."""

    profile: str
    checks: tuple[Check, ...]
    problems: tuple[str, ...]

    @property
    def violations(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def passed(self) -> bool:
        return not self.problems and not self.violations

    def failure_lines(self) -> list[str]:
        return [*self.problems, *(check.describe() for check in self.violations)]

    def confirm(self, what: str) -> str:
        """The line saying that every ``what`` check ("threshold", "consistency") passed.

        Raises:
            VerdictError: the verdict failed; the message counts the violations and lists each on a
                line of its own.
        """
        if not self.passed:
            lines = self.failure_lines()
            count = f"{len(lines)} {what} violation{'s' if len(lines) != 1 else ''}"
            raise VerdictError(
                f"{count} (profile {self.profile}):\n" + "\n".join(f"- {line}" for line in lines)
            )
        return f"All {len(self.checks)} {what} checks passed (profile {self.profile})."


class VerdictError(NvmeChaosError):
    """A result failed a verdict; the message holds every finding, one per line."""


def measure_performance(metric: str, direction: DirectionResult) -> float | None:
    """The value of a performance metric for one direction of one job, None if fio did not report it."""
    if metric == "min_iops":
        return direction.iops
    if metric == "min_bw_mbps":
        return direction.bw_bytes / 1e6
    latency = direction.lat or direction.clat
    if metric == "max_mean_latency_ms":
        return latency.mean_ns / 1e6 if latency else None
    if metric == "max_latency_ms":
        return latency.max_ns / 1e6 if latency else None
    percent = _PERCENTILE_OF_METRIC.get(metric)
    stats = direction.completion_latency
    if percent is None or stats is None:
        return None
    value = stats.percentile(percent)
    return value / 1e6 if value is not None else None


class MetricError(NvmeChaosError):
    """A figure was asked of a result that does not have it (unknown metric, job or direction)."""


def performance_metric(name: str) -> str:
    """The key of the performance metric called ``name``, with or without its ``min_``/``max_`` prefix.

    Raises:
        MetricError: no such performance metric (the message lists them).
    """
    for key in (name, f"min_{name}", f"max_{name}"):
        metric = METRICS.get(key)
        if metric is not None and metric.category == PERFORMANCE:
            return key
    known = sorted(k.split("_", 1)[1] for k, m in METRICS.items() if m.category == PERFORMANCE)
    raise MetricError(f"unknown metric '{name}' (known: {', '.join(known)})")


def measure_metric(result: FioResult, metric: str, job: str | None = None, direction: str = "read") -> float:
    """One performance figure of one job and direction of ``result``, in the unit its name says.

    ``job`` may be left out when the result has one job. A direction the job did no I/O in gives 0
    IOPS and bandwidth when the job did no I/O at all (it stalled), and an error otherwise (the
    wrong direction was asked for); latencies of a direction without I/O are an error.

    Raises:
        MetricError: unknown metric or direction, no such job, or no such figure; the message says
            what the result has instead.
    """
    key = performance_metric(metric)
    if direction not in DIRECTIONS:
        raise MetricError(f"unknown direction '{direction}' (use {', '.join(DIRECTIONS)})")
    if not result.jobs:
        raise MetricError("the result has no jobs (fio reported none)")
    names = [j.name for j in result.jobs]
    if job:
        chosen = next((j for j in result.jobs if j.name == job), None)
        if chosen is None:
            raise MetricError(f"the result has no job '{job}' (jobs: {', '.join(names)})")
    elif len(result.jobs) == 1:
        chosen = result.jobs[0]
    else:
        raise MetricError(f"the result has {len(names)} jobs ({', '.join(names)}): name one with job=NAME")
    figures = chosen.directions.get(direction)
    if figures is None:
        raise MetricError(f"job '{chosen.name}': fio reported no {direction} figures")
    if not figures.did_io:
        active = [d.direction for d in chosen.active_directions]
        if active:
            raise MetricError(
                f"job '{chosen.name}' did no {direction} I/O (its directions with I/O: {', '.join(active)}); "
                f"give direction={active[0]}"
            )
        if key not in ("min_iops", "min_bw_mbps"):
            raise MetricError(f"job '{chosen.name}' did no I/O, so it has no {metric}")
    value = measure_performance(key, figures)
    if value is None:
        raise MetricError(f"job '{chosen.name}' {direction}: fio reported no value for {metric}")
    return value


def compare(limit_key: str, limit: float, measured: float | None) -> bool:
    """True when ``measured`` honours the limit; a value that was not measured never does."""
    if measured is None:
        return False
    return measured >= limit if limit_key.startswith("min_") else measured <= limit


MeasureFn = Callable[[str, str, str], float | None]
ExplainFn = Callable[[str, str, str], str]


def evaluate(
    profile: Profile,
    jobs: Mapping[str, tuple[int, list[str]]],
    category: str,
    measure: MeasureFn,
    explain: ExplainFn | None = None,
) -> Verdict:
    """Check every limit of ``category`` for every job and direction.

    ``jobs`` maps job name to (fio error code, directions that did I/O); ``measure(metric, job,
    direction)`` returns the measured value, and ``explain`` (same arguments) why there is none. A
    result without jobs, a job with an error or that did no I/O, and a verdict that checked nothing
    are problems whatever the limits.

    Raises:
        ThresholdError: a keyword override names a job or direction the result does not have.
    """
    if not jobs:
        return Verdict(profile.name, (), ("the result has no jobs (fio reported none); it cannot pass",))
    check_override_scopes(profile, jobs)
    checks: list[Check] = []
    problems: list[str] = []
    for job, (error, directions) in jobs.items():
        if error:
            problems.append(f"job '{job}': fio reported error {error} ({_strerror(error)}); it cannot pass")
        if not directions:
            problems.append(f"job '{job}': did no I/O; it cannot pass")
        for direction in directions:
            for key, limit in sorted(profile.limits_for(job, direction).items()):
                if METRICS[key].category != category:
                    continue
                measured = measure(key, job, direction)
                note = explain(key, job, direction) if measured is None and explain else ""
                passed = compare(key, limit, measured)
                checks.append(Check(job, direction, key, limit, measured, passed, note))
    if not checks and not problems:
        problems.append(
            f"profile '{profile.name}' ({profile.source}) sets no {category} limit for any job and "
            f"direction of this result, so nothing was checked; it cannot pass"
        )
    return Verdict(profile.name, tuple(checks), tuple(problems))


def check_override_scopes(profile: Profile, jobs: Mapping[str, tuple[int, list[str]]]) -> None:
    """Refuse keyword overrides scoped to a job or direction that ``jobs`` (as :func:`evaluate` takes
    them) does not have: such a limit would be checked nowhere and the verdict pass unnoticed.

    A job that did no I/O at all is not asked for its directions: the verdict fails on it anyway.

    Raises:
        ThresholdError: naming the override and the jobs and directions the result has.
    """
    active = sorted({d for _, directions in jobs.values() for d in directions}, key=DIRECTIONS.index)
    idle_job = any(not directions for _, directions in jobs.values())
    job_list = ", ".join(jobs)
    for layer in profile.layers:
        for scope in layer.scopes:
            where = f"override {scope.key}"
            if scope.job is not None and scope.job not in jobs:
                directions = ", ".join(DIRECTIONS)
                also = "" if scope.direction else f" and '{scope.job}' is not a direction ({directions})"
                raise ThresholdError(f"{where}: the result has no job '{scope.job}' (jobs: {job_list}){also}")
            if scope.direction is None:
                continue
            if scope.job is None:
                if scope.direction not in active and not idle_job:
                    raise ThresholdError(
                        f"{where}: no job of the result did {scope.direction} I/O "
                        f"(directions with I/O: {', '.join(active) or 'none'})"
                    )
                continue
            own = jobs[scope.job][1]
            if own and scope.direction not in own:
                raise ThresholdError(
                    f"{where}: job '{scope.job}' did no {scope.direction} I/O "
                    f"(its directions with I/O: {', '.join(own)})"
                )


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return "unknown error"


def job_activity(result: FioResult) -> dict[str, tuple[int, list[str]]]:
    """Job name to (fio error code, directions that did I/O), the shape :func:`evaluate` takes."""
    return {job.name: (job.error, [d.direction for d in job.active_directions]) for job in result.jobs}


def check_thresholds(result: FioResult, profile: Profile) -> Verdict:
    """Check a result's performance figures (IOPS, bandwidth, latency) against ``profile``."""

    def measure(metric: str, job: str, direction: str) -> float | None:
        return measure_performance(metric, result.job(job).directions[direction])

    return evaluate(profile, job_activity(result), PERFORMANCE, measure)
