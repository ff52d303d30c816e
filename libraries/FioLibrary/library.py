"""The FioLibrary keyword library: thin keywords over the ``nvmechaos`` engine."""

from __future__ import annotations

from typing import Any

from robot.api import logger
from robotlibcore import DynamicCore

from FioLibrary.context import LibraryContext
from FioLibrary.results import ResultKeywords, ResultLogger
from FioLibrary.run import RunKeywords
from FioLibrary.verdicts import VerdictKeywords
from nvmechaos.process import REGISTRY

__version__ = "0.1.0"


class FioLibrary(DynamicCore):
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
    ROBOT_LISTENER_API_VERSION = 3

    def __init__(
        self,
        job_dir: str | None = None,
        thresholds: str | None = None,
        fio: str = "fio",
        log_avg_msec: int = 1000,
    ) -> None:
        self.ROBOT_LIBRARY_LISTENER = self
        self._ctx = LibraryContext(job_dir, thresholds, fio, int(log_avg_msec))
        self._scopes: list[str] = []
        results = ResultLogger(self._ctx)
        super().__init__(
            [
                RunKeywords(self._ctx, results),
                ResultKeywords(self._ctx, results),
                VerdictKeywords(self._ctx),
            ]
        )

    # Listener interface (v3): remember the running test or suite, and stop what it left running.
    def start_suite(self, data: Any, result: Any) -> None:
        self._enter(f"suite:{data.id}")

    def end_suite(self, data: Any, result: Any) -> None:
        self._leave(f"suite:{data.id}", "suite")

    def start_test(self, data: Any, result: Any) -> None:
        self._enter(f"test:{data.id}")

    def end_test(self, data: Any, result: Any) -> None:
        self._leave(f"test:{data.id}", "test")

    def close(self) -> None:
        REGISTRY.stop_scope(None)

    def _enter(self, scope: str) -> None:
        self._scopes.append(scope)
        self._ctx.scope = scope

    def _leave(self, scope: str, what: str) -> None:
        for process in REGISTRY.stop_scope(scope):
            logger.warn(f"{process.name} was still running at the end of the {what}; stopped it.")
        if self._scopes and self._scopes[-1] == scope:
            self._scopes.pop()
        self._ctx.scope = self._scopes[-1] if self._scopes else ""
