"""Keywords that judge fio results against threshold profiles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from robot.api import logger
from robot.api.deco import keyword

from FioLibrary.context import LibraryContext
from nvmechaos.fio.model import RESULT_EXPECTED, FioResult
from nvmechaos.report import verdict_table_html
from nvmechaos.units import require
from nvmechaos.verdicts.consistency import check_consistency, compare_depths
from nvmechaos.verdicts.profiles import CONSISTENCY, PERFORMANCE, load_profile
from nvmechaos.verdicts.thresholds import Verdict, check_thresholds
from nvmechaos_robot.times import seconds


class VerdictKeywords:
    """Pass/fail verdicts: thresholds on IOPS, bandwidth and latency; consistency over time."""

    def __init__(self, context: LibraryContext) -> None:
        self.ctx = context

    def _file(self, thresholds: str | None) -> str | Path:
        """The threshold file of one check: its own ``thresholds=``, else the library's."""
        return self.ctx.thresholds_file if thresholds is None else thresholds

    def _report(self, verdict: Verdict, what: str) -> None:
        self.ctx.html(verdict_table_html(verdict))
        logger.info(verdict.confirm(what))

    @keyword
    def fio_result_should_meet_thresholds(
        self, result: FioResult, profile: str = "default", thresholds: str | None = None, **overrides: str
    ) -> None:
        """Check IOPS, bandwidth and latency of every job and direction against a threshold profile.

        ``profile`` names a profile in the library's threshold file (``variables/thresholds.yaml``
        unless the library was imported with another: ``default``, ``emulated``, ``datacenter``, or
        your own). ``thresholds`` takes the profile from another YAML file for this check only
        (``thresholds=${CURDIR}/limits.yaml``); the file is validated when read, and a mistake in it
        fails naming the file and the key. Overrides use the profile's own metric names and replace
        its limits for this check: ``min_iops=5000``, ``max_latency_ms=20``,
        ``max_p99_9_latency_ms=2``, ``min_bw_mbps=100``; scope one with a direction and/or job name:
        ``write.min_iops=500``, ``tenant_a.max_p99_latency_ms=5``, ``tenant_a.read.min_iops=1900``. An
        override scoped to a job the result does not have, or to a direction no such job did I/O in,
        fails naming the override and the jobs and directions the result has.

        All violations are reported together in one failure, one line each naming the job, the
        direction, the metric, the limit and the measured value with units. A result without jobs, a
        job that did no I/O or reported an error, and a profile that sets no limit for the result
        never pass. A table of every check is logged.

        Examples:
        | Fio Result Should Meet Thresholds    ${result}
        | Fio Result Should Meet Thresholds    ${result}    profile=emulated    min_iops=500
        | Fio Result Should Meet Thresholds    ${result}    max_p99_latency_ms=2    write.min_iops=800
        | Fio Result Should Meet Thresholds    ${result}    profile=qos    thresholds=${CURDIR}/drive_x.yaml
        """
        chosen = load_profile(self._file(thresholds), profile, overrides, PERFORMANCE)
        verdict = check_thresholds(require(result, FioResult, "result", RESULT_EXPECTED), chosen)
        self._report(verdict, "threshold")

    @keyword
    def fio_result_should_be_consistent(
        self,
        result: FioResult,
        profile: str = "default",
        ramp: timedelta = timedelta(0),
        thresholds: str | None = None,
        **overrides: str,
    ) -> None:
        """Check that performance held steady over the run, from the per-interval logs.

        Consistent performance matters more than peak. Per job and direction this checks the
        coefficient of variation of IOPS and bandwidth (``max_iops_cov_pct``, ``max_bw_cov_pct``), the
        worst interval against the mean (``min_iops_min_mean_ratio``, ``min_bw_min_mean_ratio``) and
        the latency tail spread p99.99/p50 (``max_latency_p99_99_p50_ratio``). ``ramp`` (seconds, or
        a Robot time such as ``5 s``; 0 or more) leaves out the first intervals while caches warm
        up; a ramp that leaves fewer than two intervals fails, naming the ramp and how long the run
        lasted. ``profile``, ``thresholds`` and overrides work as in
        `Fio Result Should Meet Thresholds`.

        Examples:
        | Fio Result Should Be Consistent    ${result}
        | Fio Result Should Be Consistent    ${result}    profile=emulated    ramp=2    max_iops_cov_pct=15
        | Fio Result Should Be Consistent    ${result}    thresholds=${CURDIR}/steady.yaml    ramp=5 s
        """
        ramp_seconds = seconds(ramp, "ramp", allow_zero=True)
        chosen = load_profile(self._file(thresholds), profile, overrides, CONSISTENCY)
        checked = require(result, FioResult, "result", RESULT_EXPECTED)
        self._report(check_consistency(checked, chosen, ramp_seconds=ramp_seconds), "consistency")

    @keyword("IOPS Should Not Fall With Queue Depth")
    def iops_should_not_fall_with_queue_depth(
        self, result: FioResult, shallow: str, deep: str, sigmas: float = 3.0, ramp: timedelta = timedelta(0)
    ) -> None:
        """Fail if job ``deep`` of ``result`` did fewer IOPS than the shallower job ``shallow`` by more
        than the run's own noise: a target that saturates stays level, one that falls with depth
        (a firmware queueing defect, a throttle that bites harder at depth) fails.

        The comparison uses fio's mean IOPS of each job (directions summed) and a noise band of
        ``sigmas`` standard errors of the difference, from each job's per-interval IOPS after its
        first (start-up) window and the ``ramp``: on a busy host the same target swings by tens of
        percent between intervals, which a plain "deeper >= shallower" calls a failure. Each job
        needs at least two intervals after that (run each for 3 s or more).

        Example:
        | ${result} =    Run Fio Job    qd_sweep    runtime=4
        | IOPS Should Not Fall With Queue Depth    ${result}    qd1    qd16
        """
        checked = require(result, FioResult, "result", RESULT_EXPECTED)
        ramp_seconds = seconds(ramp, "ramp", allow_zero=True)
        comparison = compare_depths(checked, shallow, deep, sigmas=sigmas, ramp_seconds=ramp_seconds)
        logger.info(comparison.confirm())
