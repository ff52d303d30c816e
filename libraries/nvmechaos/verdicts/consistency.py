"""Consistency verdicts: how steady a run's performance was, from fio's per-interval logs.

fio numbers its per-job logs by thread: ``fio_iops.1.log`` is the first job section's first clone,
then its other ``numjobs`` clones, then the next section's. :func:`logs_by_job` maps them back to the
job names fio reports, so each job is judged on its own intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvmechaos.analysis.series import (
    AnalysisError,
    IntervalSeries,
    job_file_windows,
    logged_window_ms,
    read_series,
    total_series,
)
from nvmechaos.analysis.steady import consistency
from nvmechaos.errors import NvmeChaosError, ThresholdError
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.logs import log_thread
from nvmechaos.fio.model import DirectionResult, FioResult
from nvmechaos.units import require_text
from nvmechaos.verdicts.profiles import CONSISTENCY, Profile
from nvmechaos.verdicts.thresholds import Verdict, VerdictError, evaluate, job_activity


def thread_job_names(job_file: JobFile) -> list[str]:
    """The job name of every fio thread, in fio's thread order (clones from ``numjobs`` included)."""
    names: list[str] = []
    for job in job_file.job_names:
        count = job_file.effective("numjobs", job) or "1"
        names.extend([job] * (int(count) if count.isdigit() and int(count) > 0 else 1))
    return names


def logs_by_job(result: FioResult, kind: str) -> dict[str, list[Path]]:
    """Interval logs of ``kind`` ("iops", "bw", ...) for every job in ``result``.

    With ``group_reporting`` fio reports one job per group under its first member's name; that job
    gets the logs of every thread when it is the only job reported.
    """
    artifacts = result.artifacts
    if artifacts is None or kind not in artifacts.logs:
        return {}
    files = list(artifacts.logs[kind])
    names: list[str] = []
    if artifacts.job_file is not None and artifacts.job_file.exists():
        names = thread_job_names(JobFile.load(artifacts.job_file))
    if len(result.jobs) == 1:
        return {result.jobs[0].name: files}
    mapping: dict[str, list[Path]] = {}
    for path in files:
        number = log_thread(path)
        index = int(number) - 1 if number else -1
        if 0 <= index < len(names):
            mapping.setdefault(names[index], []).append(path)
    return mapping


def _interval_figures(
    series: IntervalSeries, ramp_seconds: float, job: str, direction: DirectionResult
) -> tuple[float, float]:
    """(coefficient of variation in %, min/mean ratio) of the intervals after the ramp.

    Raises:
        AnalysisError: fewer than two intervals are left, naming the ramp, the job and direction and
            how long the run lasted.
    """
    try:
        figures = consistency(series, ramp_s=ramp_seconds)
    except AnalysisError:
        samples = 0
    else:
        if figures.samples >= 2:
            return figures.cov_pct, figures.min_to_mean
        samples = figures.samples
    total = int(np.count_nonzero(~np.isnan(series.values)))
    seconds = direction.runtime_ms / 1000 if direction.runtime_ms > 0 else float(series.times_s[-1])
    run = f"the run lasted {_seconds(seconds)} s ({total} interval{'s' if total != 1 else ''} of "
    run += f"{_seconds(series.window_ms / 1000)} s)"
    what = f"job '{job}' {direction.direction}"
    if ramp_seconds > 0 and total >= 2:
        left = "no interval samples" if samples == 0 else "only 1 interval sample"
        raise AnalysisError(
            f"ramp={_seconds(ramp_seconds)} s leaves {left} of {what} to judge (at least 2 are needed): "
            f"{run}; use a ramp shorter than the run"
        )
    raise AnalysisError(
        f"{what} has {total} interval sample{'s' if total != 1 else ''}, at least 2 are needed to judge "
        f"consistency: {run}; run it longer"
    )


def _seconds(value: float) -> str:
    return f"{round(value, 3):g}"


def check_consistency(result: FioResult, profile: Profile, ramp_seconds: float = 0.0) -> Verdict:
    """Check every consistency limit of ``profile`` for every job and direction of ``result``.

    ``ramp_seconds`` leaves out the intervals that end within that many seconds of the start.

    Raises:
        ThresholdError: ``ramp_seconds`` is negative or not finite, or an override names a job or
            direction the result does not have.
        NvmeChaosError: the run left no interval logs to judge, or too few intervals (after the
            ramp) to judge; the message says why.
    """
    if not math.isfinite(ramp_seconds) or ramp_seconds < 0:
        raise ThresholdError(f"ramp {ramp_seconds!r} is not a number of seconds of at least 0")
    iops_logs = logs_by_job(result, "iops")
    bw_logs = logs_by_job(result, "bw")
    if not iops_logs and any(job.did_io for job in result.jobs):
        raise NvmeChaosError(
            f"result '{result.description or 'fio'}' has no interval logs to judge consistency "
            "(run it with Run Fio Job, or keep fio's write_iops_log/write_bw_log files beside its JSON)"
        )
    figures: dict[tuple[str, str], Mapping[str, float | None]] = {}
    windows = _windows(result)
    for job in result.jobs:
        iops = _series_by_direction(iops_logs.get(job.name, []), "iops", windows)
        bw = _series_by_direction(bw_logs.get(job.name, []), "bw", windows)
        for direction in job.active_directions:
            name = direction.direction
            iops_fig = (
                _interval_figures(iops[name], ramp_seconds, job.name, direction) if name in iops else None
            )
            bw_fig = _interval_figures(bw[name], ramp_seconds, job.name, direction) if name in bw else None
            stats = direction.completion_latency
            p50 = stats.percentile(50.0) if stats else None
            p9999 = stats.percentile(99.99) if stats else None
            figures[(job.name, name)] = {
                "max_iops_cov_pct": iops_fig[0] if iops_fig else None,
                "min_iops_min_mean_ratio": iops_fig[1] if iops_fig else None,
                "max_bw_cov_pct": bw_fig[0] if bw_fig else None,
                "min_bw_min_mean_ratio": bw_fig[1] if bw_fig else None,
                "max_latency_p99_99_p50_ratio": p9999 / p50 if p50 and p9999 is not None else None,
            }

    def measure(metric: str, job: str, direction: str) -> float | None:
        return figures.get((job, direction), {}).get(metric)

    def explain(metric: str, job: str, direction: str) -> str:
        if metric == "max_latency_p99_99_p50_ratio":
            return "fio reported no p50 or p99.99 completion latency"
        kind = "bandwidth" if metric.endswith(("bw_cov_pct", "bw_min_mean_ratio")) else "IOPS"
        return f"fio's {kind} interval logs have no {direction} samples of job '{job}'"

    return evaluate(profile, job_activity(result), CONSISTENCY, measure, explain)


def _series_by_direction(
    paths: Sequence[Path], kind: str, windows: Mapping[str, int]
) -> dict[str, IntervalSeries]:
    if not paths:
        return {}
    return dict(read_series(paths, kind, window_ms=logged_window_ms(paths, windows)))


def _windows(result: FioResult) -> dict[str, int]:
    return job_file_windows(result.artifacts.job_file if result.artifacts is not None else None)


def series_by_job(result: FioResult, kind: str) -> dict[str, dict[str, IntervalSeries]]:
    """Interval series of ``kind`` for every job of ``result``: job name to direction to series,
    in windows of the job's ``log_avg_msec`` as the run's job file sets it."""
    windows = _windows(result)
    return {
        job: _series_by_direction(paths, kind, windows) for job, paths in logs_by_job(result, kind).items()
    }


@dataclass(frozen=True)
class DepthComparison:
    """Mean IOPS of a shallower and a deeper job of one run, and the noise band between them.

    The band is ``sigmas`` standard errors of the difference of the two means, from the spread of
    each job's per-interval IOPS: a busy host moves both jobs' intervals, and a deeper job whose mean
    sits below the shallower one's by less than that is noise, not a target that fails to scale.
    """

    shallow: str
    deep: str
    shallow_iops: float
    deep_iops: float
    band_iops: float
    samples: tuple[int, int]
    sigmas: float

    @property
    def falls(self) -> bool:
        return self.deep_iops < self.shallow_iops - self.band_iops

    def describe(self) -> str:
        drop = self.shallow_iops - self.deep_iops
        where = (
            f"job '{self.deep}' averaged {self.deep_iops:,.0f} IOPS against {self.shallow_iops:,.0f} IOPS "
            f"of the shallower job '{self.shallow}'"
        )
        noise = (
            f"the noise band is {self.band_iops:,.0f} IOPS ({self.sigmas:g} standard errors of "
            f"{self.samples[0]} and {self.samples[1]} intervals)"
        )
        if self.falls:
            return f"IOPS fell with queue depth: {where}, {drop:,.0f} IOPS less; {noise}"
        return f"IOPS did not fall with queue depth: {where}; {noise}"

    def confirm(self) -> str:
        """The line saying that IOPS did not fall with depth.

        Raises:
            VerdictError: IOPS fell by more than the noise band (the message says by how much).
        """
        if self.falls:
            raise VerdictError(self.describe())
        return self.describe()


def compare_depths(
    result: FioResult, shallow: str, deep: str, *, sigmas: float = 3.0, ramp_seconds: float = 0.0
) -> DepthComparison:
    """Compare the IOPS of job ``deep`` with job ``shallow`` of ``result`` (see :class:`DepthComparison`).

    Means are fio's own (every direction summed); spreads come from the interval logs after the ramp.

    Raises:
        ArgumentError: ``shallow`` or ``deep`` is not text or empty.
        ThresholdError: ``sigmas`` is not a positive number.
        NvmeChaosError: a job is missing or did no I/O, or has fewer than 2 intervals to judge.
    """
    require_text(shallow, "shallow", "a job name")
    require_text(deep, "deep", "a job name")
    if not math.isfinite(sigmas) or sigmas <= 0:
        raise ThresholdError(f"sigmas {sigmas!r} is not a positive number")
    jobs = {job.name: job for job in result.jobs}
    series = series_by_job(result, "iops")
    means: list[float] = []
    errors: list[float] = []
    counts: list[int] = []
    for name in (shallow, deep):
        job = jobs.get(name)
        if job is None:
            raise NvmeChaosError(f"the result has no job '{name}' (jobs: {', '.join(jobs) or 'none'})")
        if not job.did_io:
            raise NvmeChaosError(f"job '{name}' did no I/O: nothing to compare")
        by_direction = series.get(name, {})
        if not by_direction:
            raise NvmeChaosError(f"job '{name}' has no IOPS interval logs to judge its spread")
        total = total_series(by_direction)
        # The first window is fio's start-up; a ramp leaves out more.
        skip = max(ramp_seconds, total.window_ms / 1000)
        times = np.asarray(total.times_s, dtype=np.float64)
        kept = np.asarray(total.values, dtype=np.float64)[times > skip + 1e-9]
        kept = kept[~np.isnan(kept)]
        if kept.size < 2:
            raise NvmeChaosError(
                f"job '{name}' has {kept.size} interval sample{'s' if kept.size != 1 else ''} after its "
                "first (start-up) window, at least 2 are needed to tell noise from a drop: run it longer"
            )
        means.append(sum(direction.iops for direction in job.active_directions))
        errors.append(float(kept.std(ddof=1)) / math.sqrt(kept.size))
        counts.append(int(kept.size))
    band = sigmas * math.sqrt(errors[0] ** 2 + errors[1] ** 2)
    return DepthComparison(shallow, deep, means[0], means[1], band, (counts[0], counts[1]), sigmas)
