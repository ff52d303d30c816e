"""The FioLibrary keyword library: thin keywords over the ``nvmechaos`` engine."""

from __future__ import annotations

from FioLibrary.context import LIBRARY, LibraryContext
from FioLibrary.results import ResultKeywords, ResultLogger
from FioLibrary.run import RunKeywords
from FioLibrary.verdicts import VerdictKeywords
from nvmechaos.units import parse_positive_int, require_path, require_text
from nvmechaos_robot import KeywordLibrary, import_arguments

__version__ = "0.1.0"


class FioLibrary(KeywordLibrary):
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

    | Library    FioLibrary
    | Library    FioLibrary    job_dir=${CURDIR}/jobs    thresholds=${CURDIR}/limits.yaml

    `Importing` explains the library's arguments: where job files and threshold profiles are found,
    the fio program, and the interval of the per-interval logs.

    = Verdicts =
    `Fio Result Should Meet Thresholds` checks IOPS, bandwidth, mean/max latency and p50…p99.99
    latency per job and direction against a profile in ``variables/thresholds.yaml``;
    `Fio Result Should Be Consistent` checks variation over time. Every failure lists all
    violations, each naming job, direction, metric, limit and measured value.

    A verdict may take its profile from another file for one check (``thresholds=``), so one
    import serves suites that judge against several threshold files.

    = Bad input =
    Every keyword checks its arguments before it starts anything, and a mistake ends it with one
    line naming the argument and the value (``timeout '-5 s' is negative``; a time Robot cannot
    read fails in Robot's own words: ``Argument 'timeout' got value 'banana' that cannot be
    converted to timedelta or None.``), never with a Python traceback or a fio left running.

    = Clean-up =
    The library is its own listener: a background fio still running when its test (or suite)
    ends is stopped, and the log says so. fio's main process also dies with the Robot process if
    that is killed (its job processes, which fio starts in sessions of their own, end with their
    runtime).
    """

    ROBOT_LIBRARY_VERSION = __version__
    OWNER_NAME = LIBRARY
    # The process registry's scopes (KeywordLibrary.release's safety net) stay apart from the others'.
    SCOPE_PREFIX = "fio-"

    def __init__(
        self,
        job_dir: str | None = None,
        thresholds: str | None = None,
        fio: str = "fio",
        log_avg_msec: int = 1000,
    ) -> None:
        """Import FioLibrary; every argument may be left out.

        - ``job_dir``: a folder searched first for job names given to `Run Fio Job` and the other
          run keywords, before ``${EXECDIR}/fio_jobs`` and the project's ``fio_jobs``. It must exist.
        - ``thresholds``: the YAML file of threshold profiles the verdict keywords use (see the
          README's "Thresholds"). Default: ``${EXECDIR}/variables/thresholds.yaml`` when it exists,
          else the project's ``variables/thresholds.yaml``. It must exist; its profiles are checked
          when a verdict reads them, and a mistake fails naming the file and the key. One check can
          use another file with the verdict's own ``thresholds=`` argument.
        - ``fio``: the fio program, a name looked up on ``PATH`` or a path (default ``fio``).
        - ``log_avg_msec``: the interval, in milliseconds, over which fio averages its per-interval
          IOPS, bandwidth and latency logs (default 1000); a whole number above 0. A job file that
          sets its own ``log_avg_msec`` keeps it.

        A bad value fails the import in one line naming the argument and the value. Nothing runs
        on import.

        Examples:
        | Library    FioLibrary
        | Library    FioLibrary    job_dir=${CURDIR}/jobs    thresholds=${CURDIR}/limits.yaml
        | Library    FioLibrary    fio=/opt/fio/bin/fio    log_avg_msec=500
        """
        with import_arguments():
            interval = parse_positive_int(log_avg_msec, "log_avg_msec")
            job_folder = None if job_dir is None else require_path(job_dir, "job_dir", folder=True)
            limits = None if thresholds is None else require_path(thresholds, "thresholds", folder=False)
            program = require_text(fio, "fio", "the fio program (a name on PATH or a path)")
        self._ctx = LibraryContext(job_folder, limits, program, interval)
        results = ResultLogger(self._ctx)
        super().__init__(
            [RunKeywords(self._ctx, results), ResultKeywords(results), VerdictKeywords(self._ctx)]
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope
