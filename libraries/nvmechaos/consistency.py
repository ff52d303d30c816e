"""Consistency verdicts: how steady a run's performance was, from fio's per-interval logs.

fio numbers its per-job logs by thread: ``fio_iops.1.log`` is the first job section's first clone,
then its other ``numjobs`` clones, then the next section's. :func:`logs_by_job` maps them back to the
job names fio reports, so each job is judged on its own intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nvmechaos.analysis.intervals import AnalysisError, IntervalSeries, consistency, read_series
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.model import FioResult
from nvmechaos.thresholds import CONSISTENCY, Profile, Verdict, evaluate, job_activity


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
        index = int(path.name.rsplit(".", 2)[-2]) - 1
        if 0 <= index < len(names):
            mapping.setdefault(names[index], []).append(path)
    return mapping


def _interval_figures(series: IntervalSeries, ramp_seconds: float) -> tuple[float, float] | None:
    """(coefficient of variation in %, min/mean ratio) after the ramp; None with < 2 intervals."""
    try:
        figures = consistency(series, ramp_s=ramp_seconds)
    except AnalysisError:
        return None
    return None if figures.samples < 2 else (figures.cov_pct, figures.min_to_mean)


def check_consistency(result: FioResult, profile: Profile, ramp_seconds: float = 0.0) -> Verdict:
    """Check every consistency limit of ``profile`` for every job and direction of ``result``.

    Raises:
        NvmeChaosError: the run left no interval logs to judge (the message says why).
    """
    iops_logs = logs_by_job(result, "iops")
    bw_logs = logs_by_job(result, "bw")
    if not iops_logs and any(job.did_io for job in result.jobs):
        raise NvmeChaosError(
            f"result '{result.description or 'fio'}' has no interval logs to judge consistency "
            "(run it with Run Fio Job, or keep fio's write_iops_log/write_bw_log files beside its JSON)"
        )
    figures: dict[tuple[str, str], Mapping[str, float | None]] = {}
    for job in result.jobs:
        iops = _series_by_direction(iops_logs.get(job.name, []), "iops")
        bw = _series_by_direction(bw_logs.get(job.name, []), "bw")
        for direction in job.active_directions:
            name = direction.direction
            iops_fig = _interval_figures(iops[name], ramp_seconds) if name in iops else None
            bw_fig = _interval_figures(bw[name], ramp_seconds) if name in bw else None
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

    return evaluate(profile, job_activity(result), CONSISTENCY, measure)


def _series_by_direction(paths: Sequence[Path], kind: str) -> dict[str, IntervalSeries]:
    if not paths:
        return {}
    return dict(read_series(paths, kind))


def series_by_job(result: FioResult, kind: str) -> dict[str, dict[str, IntervalSeries]]:
    """Interval series of ``kind`` for every job of ``result``: job name to direction to series."""
    return {job: _series_by_direction(paths, kind) for job, paths in logs_by_job(result, kind).items()}
