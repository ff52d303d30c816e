"""The FioLibrary keyword library: thin keywords over the ``nvmechaos`` engine."""

from __future__ import annotations

from robotlibcore import DynamicCore

from FioLibrary.context import LibraryContext
from FioLibrary.results import ResultKeywords, ResultLogger
from FioLibrary.run import RunKeywords
from FioLibrary.verdicts import VerdictKeywords
from nvmechaos.process import REGISTRY
from nvmechaos_robot import ScopedListener

__version__ = "0.1.0"


class FioLibrary(DynamicCore, ScopedListener):
    """Run fio workloads and turn their results into verdicts a QA engineer can trust.

    = Running fio =
    `Run Fio Job` runs a job file from ``fio_jobs/`` (or any path) on this host; `Start Fio Job` and
    `Wait For Fio Job` run it in the background while faults are injected. Named arguments override
    fio options, so one job file serves a host file (``directory=...``), a block device
    (``filename=/dev/nvme0n1``) or a guest. Every run keeps its JSON, stderr, job file as run and
    interval logs in its own folder, ``${OUTPUT DIR}/fio/<suite>/<test>/<NN>-<job>/``, linked from the
    log together with a table of figures and a chart of IOPS and latency over time.

    For targets that are not this host, `Prepare Fio Job` writes the job and `Collect Fio Result`
    reads what came back (see ``resources/vm.resource``).

    = Verdicts =
    `Fio Result Should Meet Thresholds` checks IOPS, bandwidth, mean/max latency and p50…p99.99
    latency per job and direction against a profile in ``variables/thresholds.yaml``;
    `Fio Result Should Be Consistent` checks variation over time. Every failure lists all
    violations, each naming job, direction, metric, limit and measured value.

    = Importing =
    | Library    FioLibrary
    | Library    FioLibrary    job_dir=${CURDIR}/jobs    thresholds=${CURDIR}/limits.yaml

    ``job_dir`` is searched first for job names, then ``${EXECDIR}/fio_jobs`` and the project's
    ``fio_jobs``. ``thresholds`` defaults to ``${EXECDIR}/variables/thresholds.yaml``, else the
    project's. ``fio`` is the fio program; ``log_avg_msec`` the interval of the logs.

    = Clean-up =
    The library is its own listener: a background fio still running when its test (or suite)
    ends is stopped, and the log says so. fio also dies with the Robot process if that is killed.
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "fio-"

    def __init__(
        self,
        job_dir: str | None = None,
        thresholds: str | None = None,
        fio: str = "fio",
        log_avg_msec: int = 1000,
    ) -> None:
        ScopedListener.__init__(self)
        self._ctx = LibraryContext(job_dir, thresholds, fio, int(log_avg_msec))
        results = ResultLogger(self._ctx)
        DynamicCore.__init__(
            self,
            [
                RunKeywords(self._ctx, results),
                ResultKeywords(self._ctx, results),
                VerdictKeywords(self._ctx),
            ],
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop the fio runs still going in ``scope``."""
        stopped = REGISTRY.stop_scope(scope, prefix=self.SCOPE_PREFIX)
        return [f"{p.name} was still running at the end of the {what}; stopped it." for p in stopped]
