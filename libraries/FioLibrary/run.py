"""Keywords that run fio on this host, in the foreground or the background."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from robot.api import logger
from robot.api.deco import keyword

from FioLibrary.context import LibraryContext
from FioLibrary.results import ResultLogger
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.model import FioResult
from nvmechaos.fio.runner import (
    REFUSED_BY_PREPARE,
    REFUSED_BY_START,
    FioProcess,
    PreparedJob,
    check_job,
    collect_result,
    prepare_job,
    start_fio,
)
from nvmechaos.units import parse_flag, require
from nvmechaos_robot.times import seconds

_HANDLE = "a background fio job (use the handle Start Fio Job returned)"
_PREPARED = "a prepared fio job (use what Prepare Fio Job returned)"


class RunKeywords:
    """Run fio jobs from ``fio_jobs/`` (or any path) with per-run overrides."""

    def __init__(self, context: LibraryContext, results: ResultLogger) -> None:
        self.ctx = context
        self.results = results

    def _prepare(
        self, job: str, overrides: Mapping[str, str | None], keyword: str, refused: Mapping[str, str]
    ) -> PreparedJob:
        name = check_job(job, overrides, keyword, refused)
        prepared = prepare_job(
            name, overrides, self.ctx.new_run_dir(name), self.ctx.job_dirs, log_avg_msec=self.ctx.log_avg_msec
        )
        logger.info(f"Job '{name}' from {prepared.source}, run folder {prepared.run_dir}")
        return prepared

    @keyword
    def prepare_fio_job(self, job: str, **overrides: str | None) -> PreparedJob:
        """Write ``job`` with ``overrides`` into a fresh run folder, ready to run anywhere.

        For targets that are not this host (a guest, a remote machine): copy ``job.fio`` from
        ``${prepared.run_dir}`` to the target, run ``${prepared.argv()}`` there inside that copy's
        folder, fetch ``fio.json`` and ``fio_*.log`` back into ``${prepared.run_dir}``, and pass the exit
        code to `Collect Fio Result`. Overrides work as in `Run Fio Job`; ``allow_errors`` belongs
        to `Collect Fio Result` and ``timeout`` to whatever runs the job (fio's own limit is
        ``runtime``), so both are refused here rather than written into the job file.

        Example:
        | ${prepared} =    Prepare Fio Job    mixed_randrw    filename=/dev/nvme0n1    runtime=5
        | ${argv} =    Evaluate    " ".join($prepared.argv())
        """
        return self._prepare(job, overrides, "Prepare Fio Job", REFUSED_BY_PREPARE)

    @keyword
    def collect_fio_result(
        self, prepared: PreparedJob, exit_code: int, allow_errors: bool = False
    ) -> FioResult:
        """Read the result of a prepared job whose output was fetched back into its run folder.

        Fails like `Run Fio Job` when fio was rejected, killed, or a job reported an error (unless
        ``allow_errors``). Logs the result's table and chart.

        Example:
        | ${result} =    Collect Fio Result    ${prepared}    ${rc}
        """
        prepared = require(prepared, PreparedJob, "prepared", _PREPARED)
        errors_allowed = parse_flag(allow_errors, "allow_errors")
        result = collect_result(prepared, exit_code, allow_errors=errors_allowed)
        self.results.log_result(result)
        return result

    @keyword
    def run_fio_job(
        self,
        job: str,
        timeout: timedelta | None = None,
        allow_errors: bool = False,
        **overrides: str | None,
    ) -> FioResult:
        """Run the fio ``job`` on this host, wait for it, and return its result.

        ``job`` is a job file name from ``fio_jobs/`` (``.fio`` may be left out) or a path. Every
        other named argument overrides that fio option in every job of the file (``runtime=5``,
        ``directory=/mnt/x``, ``filename=/dev/nvme0n1``, ``iodepth=32``, ``bs=16k`` ...); prefix it with a
        job name to change one job only (``tenant_b.rate_iops=500``); ``${NONE}`` removes an option
        and ``${EMPTY}`` gives a flag without value. JSON (``json+``), stderr, the job file as run and
        the interval logs of IOPS, bandwidth and latency are kept in the test's own folder under the
        output directory and linked from the log, with a table and a chart of the run.

        ``timeout`` (a Robot time above zero: ``90``, ``30 s``, ``2 min``) stops a fio that runs longer;
        by default (left out or ``${NONE}``) it is the job's planned runtime plus two minutes. The
        keyword fails, with fio's own message, when fio is missing, rejects an option, is killed or
        writes truncated JSON, and when a job reports an error, unless ``allow_errors`` is true (fault
        injection: fio's errors are expected, the verdict is about what comes next).

        Every argument is checked before fio starts: a bad ``timeout`` or ``allow_errors``, an
        unknown job or job name in an override, or a target folder that does not exist fails at
        once, in one line naming the argument and its value.

        Examples:
        | ${result} =    Run Fio Job    mixed_randrw    directory=${TARGET_DIR}    runtime=5
        | ${result} =    Run Fio Job    latency_probe    filename=/dev/nvme0n1    timeout=1 min
        | ${result} =    Run Fio Job    ${CURDIR}/my.fio    allow_errors=True
        """
        limit = None if timeout is None else seconds(timeout, "timeout")
        errors_allowed = parse_flag(allow_errors, "allow_errors")
        handle = self._start(job, overrides, "Run Fio Job")
        return self._wait(handle, limit, errors_allowed)

    @keyword
    def start_fio_job(self, job: str, **overrides: str | None) -> FioProcess:
        """Start the fio ``job`` on this host in the background and return a handle at once.

        Overrides work as in `Run Fio Job`. Use `Wait For Fio Job` to get the result; ``timeout``
        and ``allow_errors`` are its arguments and are refused here (fio's own time limit is
        ``runtime``). A job still running when its test ends is stopped, and the log says so.

        Example:
        | ${fio} =    Start Fio Job    write_endurance    directory=${TARGET_DIR}    runtime=30
        | Sleep    5 s
        | # inject a fault here
        | ${result} =    Wait For Fio Job    ${fio}    allow_errors=True
        """
        return self._start(job, overrides, "Start Fio Job")

    def _start(self, job: str, overrides: Mapping[str, str | None], keyword: str) -> FioProcess:
        prepared = self._prepare(job, overrides, keyword, REFUSED_BY_START)
        return self.ctx.own_fio(start_fio(prepared, fio_binary=self.ctx.fio_binary, scope=self.ctx.scope))

    @keyword
    def wait_for_fio_job(
        self, handle: FioProcess, timeout: timedelta | None = None, allow_errors: bool = False
    ) -> FioResult:
        """Wait for a job started with `Start Fio Job` to end and return its result.

        ``timeout`` and ``allow_errors`` work as in `Run Fio Job`; both are checked before waiting.

        Example:
        | ${result} =    Wait For Fio Job    ${fio}    timeout=3 min
        """
        handle = require(handle, FioProcess, "handle", _HANDLE)
        limit = None if timeout is None else seconds(timeout, "timeout")
        errors_allowed = parse_flag(allow_errors, "allow_errors")
        return self._wait(handle, limit, errors_allowed)

    def _wait(self, handle: FioProcess, timeout: float | None, allow_errors: bool) -> FioResult:
        try:
            result = handle.wait(timeout=timeout, allow_errors=allow_errors)
        except NvmeChaosError:
            # fio's stderr and the job file as run say why it failed: link them, then let the error rise.
            self.results.link_run_dir(handle.prepared.run_dir)
            raise
        self.results.log_result(result)
        return result

    @keyword
    def stop_fio_job(self, handle: FioProcess) -> None:
        """Stop a background fio job now (it gets a few seconds to write its results).

        Example:
        | Stop Fio Job    ${fio}
        """
        handle = require(handle, FioProcess, "handle", _HANDLE)
        handle.stop()
        logger.info(f"Stopped fio job '{handle.name}' (output in {handle.prepared.run_dir})")
