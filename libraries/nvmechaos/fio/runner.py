"""Running fio: prepare a job in its own folder, start it, wait for it, and collect its result.

Every path fio writes (JSON, interval logs) is relative to the run folder, and fio runs with that
folder as its working directory, so the same prepared job runs unchanged on this host or, copied, in
a guest or on a remote host (see :meth:`PreparedJob.argv`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from nvmechaos.errors import FioOutputError, FioRunError, TargetError
from nvmechaos.fio.jobfile import JobFile, find_job_file, split_fio_paths
from nvmechaos.fio.logs import log_thread
from nvmechaos.fio.model import FioArtifacts, FioResult
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.process import REGISTRY, OwnedProcess, ProcessRegistry, spawn
from nvmechaos.units import refuse_options, require_text

JSON_NAME = "fio.json"
STDOUT_NAME = "fio.stdout"
STDERR_NAME = "fio.stderr"
JOB_NAME = "job.fio"
COMMAND_NAME = "command.txt"
LOG_PREFIX = "fio"
LOG_KINDS = ("iops", "bw", "lat", "clat", "slat")
_TIME = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>us|ms|s|m|h|d)?\s*$", re.IGNORECASE)
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: Time fio gets beyond its planned runtime (set-up, file layout, writing results) before it counts as hung.
GRACE_SECONDS = 120.0
_FIO_TIME_LIMIT = "fio's own time limit is runtime=, e.g. runtime=30"
#: Arguments of the keywords that wait for or collect a run, refused as fio options by those that start
#: one: they would otherwise land in the job file, where fio rejects them or, worse, reads them.
REFUSED_BY_START: Mapping[str, str] = {
    "timeout": f"give it to Wait For Fio Job ({_FIO_TIME_LIMIT})",
    "allow_errors": "give it to Wait For Fio Job",
}
REFUSED_BY_PREPARE: Mapping[str, str] = {
    "timeout": f"the keyword that runs the prepared job limits its time ({_FIO_TIME_LIMIT})",
    "allow_errors": "give it to Collect Fio Result",
}


def fio_seconds(value: str) -> float | None:
    """Convert a fio time value ("30", "30s", "500ms", "2m") to seconds; None if not one."""
    match = _TIME.match(value)
    if not match:
        return None
    unit = (match.group("unit") or "s").lower()
    return float(match.group("number")) * _TIME_UNITS[unit]


@dataclass(frozen=True)
class PreparedJob:
    """A job file rendered with its overrides into a run folder, ready to run."""

    name: str
    run_dir: Path
    job_file: JobFile
    source: Path

    def argv(self, fio_binary: str = "fio") -> list[str]:
        """The fio command, with paths relative to the run folder (fio's working directory)."""
        return [fio_binary, "--output-format=json+", f"--output={JSON_NAME}", JOB_NAME]

    @property
    def expected_seconds(self) -> float | None:
        """Upper bound of the job's planned duration (every job's runtime and ramp_time added up, as if
        all were stonewalled); None when any job has no runtime, i.e. runs until its size is done."""
        total = 0.0
        for name in self.job_file.job_names:
            runtime = self.job_file.effective("runtime", name)
            seconds = fio_seconds(runtime) if runtime is not None else None
            if not seconds:
                # No runtime, or runtime=0, which fio reads as no time limit.
                return None
            ramp = self.job_file.effective("ramp_time", name)
            total += seconds + ((fio_seconds(ramp) or 0.0) if ramp is not None else 0.0)
        return total

    @property
    def default_timeout(self) -> float | None:
        """How long a wait for this job lasts unless told otherwise: its planned duration plus
        :data:`GRACE_SECONDS`; None (no limit) when the job has no planned duration."""
        planned = self.expected_seconds
        return None if planned is None else planned + GRACE_SECONDS


def check_job(job: object, overrides: Mapping[str, object], keyword: str, refused: Mapping[str, str]) -> str:
    """``job`` as the job file name or path it must be, before anything is prepared or started.

    ``refused`` names the overrides that belong to another keyword (:data:`REFUSED_BY_START`,
    :data:`REFUSED_BY_PREPARE`); ``keyword`` is the one that was called.

    Raises:
        ArgumentError: ``job`` is not text or empty, or an override is refused (naming where it belongs).
    """
    name = require_text(job, "job", "a fio job file name or path")
    refuse_options(overrides, refused, keyword)
    return name


def prepare_job(
    job: str | Path,
    overrides: Mapping[str, object],
    run_dir: Path,
    search_dirs: Iterable[Path] = (),
    log_avg_msec: int = 1000,
    *,
    windows: bool | None = None,
) -> PreparedJob:
    """Find ``job``, apply ``overrides``, and write the job file as it will run into ``run_dir``.

    Interval logs of IOPS, bandwidth and latency (averaged over ``log_avg_msec``) are switched on
    for every job; a job file or override that sets its own ``log_avg_msec`` wins. On Windows
    (``windows``, default: this host is Windows) the colon of a drive letter in ``filename`` and
    ``directory`` is escaped as fio needs it (``C\\:\\data``), so ``directory=C:\\data`` works.

    Raises:
        JobFileError: the job file is missing or malformed, or an override is invalid.
        TargetError: ``run_dir`` cannot be created.
    """
    source = find_job_file(job, search_dirs)
    job_file = JobFile.load(source)
    job_file.apply(overrides)
    if windows is None:
        windows = os.name == "nt"
    if windows:
        job_file.escape_drive_letters()
    job_file.set_defaults({"log_avg_msec": log_avg_msec})
    job_file.apply(
        {
            "write_iops_log": LOG_PREFIX,
            "write_bw_log": LOG_PREFIX,
            "write_lat_log": LOG_PREFIX,
            "per_job_logs": 1,
        }
    )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / JOB_NAME).write_text(job_file.render(), encoding="utf-8")
    except OSError as error:
        raise TargetError(f"cannot write the run folder '{run_dir}': {error.strerror}") from None
    return PreparedJob(name=source.stem, run_dir=run_dir, job_file=job_file, source=source)


def check_local_target(prepared: PreparedJob, windows: bool | None = None) -> None:
    """Fail early, and clearly, when a job would write into a place that does not exist or is read-only.

    ``filename`` and ``directory`` are split into paths as fio splits them (see
    :func:`~nvmechaos.fio.jobfile.split_fio_paths`); ``windows`` (default: this host is Windows) keeps
    drive letters in their paths.

    Raises:
        TargetError: naming the option, the job and the path.
    """
    if windows is None:
        windows = os.name == "nt"
    job_file = prepared.job_file
    sections = [s.name for s in job_file.sections]
    for section in sections:
        directory = job_file.get("directory", section)
        if directory:
            for path in split_fio_paths(directory, windows):
                if not Path(path).is_dir():
                    raise TargetError(
                        f"target directory '{path}' (option directory, [{section}]) does not exist"
                    )
                if not os.access(path, os.W_OK | os.X_OK):
                    raise TargetError(
                        f"target directory '{path}' (option directory, [{section}]) is not writable"
                    )
        filename = job_file.get("filename", section)
        if filename and not directory:
            for path_text in split_fio_paths(filename, windows):
                _check_target_file(Path(path_text), section, prepared.run_dir)


def _check_target_file(path: Path, section: str, run_dir: Path) -> None:
    resolved = path if path.is_absolute() else run_dir / path
    if resolved.exists():
        if not os.access(resolved, os.W_OK):
            raise TargetError(f"target '{path}' (option filename, [{section}]) is not writable")
        return
    if not resolved.parent.is_dir():
        raise TargetError(
            f"target '{path}' (option filename, [{section}]): directory '{resolved.parent}' does not exist"
        )
    if not os.access(resolved.parent, os.W_OK | os.X_OK):
        raise TargetError(
            f"target '{path}' (option filename, [{section}]): '{resolved.parent}' is not writable"
        )


class FioProcess:
    """A fio run in progress on this host (what ``Start Fio Job`` returns)."""

    def __init__(self, prepared: PreparedJob, process: OwnedProcess, started_wall: float) -> None:
        self.prepared = prepared
        self.process = process
        self.started_wall = started_wall
        self.started_monotonic = process.started

    @property
    def name(self) -> str:
        return self.prepared.name

    def is_running(self) -> bool:
        return self.process.is_running()

    def wait(self, timeout: float | None = None, allow_errors: bool = False) -> FioResult:
        """Wait for fio to end and return its result; ``timeout`` is in seconds, by default the job's
        :attr:`~PreparedJob.default_timeout`.

        Raises:
            FioRunError: fio still runs after ``timeout`` seconds (it is then stopped), was rejected,
                killed, or (unless ``allow_errors``) a job reported an error.
            FioOutputError: fio's JSON is truncated or malformed.
        """
        if timeout is None:
            timeout = self.prepared.default_timeout
        try:
            self.process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.stop()
            raise FioRunError(
                f"fio job '{self.name}' still ran after {timeout:g} s and was stopped "
                f"(output in {self.prepared.run_dir})"
            ) from None
        finally:
            # A keyword timeout or Ctrl-C interrupts the wait: never leave fio running behind it.
            if self.process.is_running():
                self.process.stop()
        return collect_result(self.prepared, self.process.popen.returncode, allow_errors=allow_errors)

    def stop(self) -> None:
        """Stop fio (SIGTERM lets it write its JSON, SIGKILL after a grace period)."""
        self.process.stop(grace=10.0)


def start_fio(
    prepared: PreparedJob,
    fio_binary: str = "fio",
    scope: str = "",
    registry: ProcessRegistry = REGISTRY,
) -> FioProcess:
    """Start the prepared job on this host in the background.

    Raises:
        FioRunError: fio is not installed or cannot be executed.
        TargetError: the job would write where it cannot.
    """
    check_local_target(prepared)
    binary = shutil.which(fio_binary)
    if binary is None:
        raise FioRunError(
            f"fio is not installed: no '{fio_binary}' on PATH "
            "(install the 'fio' package, e.g. apt-get install fio)"
        )
    argv = prepared.argv(binary)
    run_dir = prepared.run_dir
    (run_dir / COMMAND_NAME).write_text(" ".join(argv) + "\n", encoding="utf-8")
    with open(run_dir / STDOUT_NAME, "wb") as stdout, open(run_dir / STDERR_NAME, "wb") as stderr:
        try:
            process = spawn(
                f"fio {prepared.name}",
                argv,
                scope=scope,
                cwd=run_dir,
                stdout=stdout,
                stderr=stderr,
                registry=registry,
                # fio's job processes leave its session: on SIGTERM fio ends them, a SIGKILL orphans them.
                death_signal=signal.SIGTERM,
            )
        except OSError as error:
            raise FioRunError(f"cannot start fio '{binary}': {error.strerror}") from None
    return FioProcess(prepared, process, started_wall=time.time())


def collect_result(prepared: PreparedJob, exit_code: int | None, allow_errors: bool = False) -> FioResult:
    """Read the result of a finished run from its folder and judge how fio ended.

    Raises:
        FioRunError: fio rejected the job, was killed, or (unless ``allow_errors``) a job reported an error.
        FioOutputError: the JSON is truncated or malformed.
    """
    run_dir = prepared.run_dir
    json_path = run_dir / JSON_NAME
    diagnostics = _fio_messages(run_dir)
    if not _holds_json(json_path):
        # fio writes its complaints (e.g. "Bad option") into the --output file when it rejects a job.
        raise FioRunError(
            f"fio {_how_it_ended(exit_code)} and wrote no results for '{prepared.name}'"
            f"{': ' + diagnostics if diagnostics else ''}"
        )
    try:
        result = parse_fio_file(json_path)
    except FioOutputError as error:
        extra = f": {diagnostics}" if diagnostics else ""
        if exit_code:
            raise FioOutputError(f"fio {_how_it_ended(exit_code)}; {error}{extra}") from None
        raise FioOutputError(f"{error}{extra}") from None
    if exit_code is not None and exit_code < 0:
        raise FioRunError(f"fio {_how_it_ended(exit_code)} while running '{prepared.name}'")
    result = replace(result, exit_code=exit_code, artifacts=_artifacts(prepared), description=prepared.name)
    failed = [job for job in result.jobs if job.error]
    if failed and not allow_errors:
        details = "; ".join(
            f"job '{job.name}' error={job.error} ({os.strerror(job.error)})" for job in failed
        )
        extra = f": {diagnostics}" if diagnostics else ""
        raise FioRunError(f"fio reported errors in '{prepared.name}': {details}{extra}")
    if exit_code and not failed and not allow_errors:
        raise FioRunError(
            f"fio {_how_it_ended(exit_code)} for '{prepared.name}'{': ' + diagnostics if diagnostics else ''}"
        )
    return result


def _holds_json(path: Path) -> bool:
    if not path.exists():
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        return any(line.startswith("{") for line in handle)


def _how_it_ended(exit_code: int | None) -> str:
    if exit_code is None:
        return "did not end"
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def _fio_messages(run_dir: Path, limit: int = 3) -> str:
    """fio's own complaint lines ("fio: ...", "Bad option ..."), the most telling first."""
    lines: list[str] = []
    for name in (STDERR_NAME, STDOUT_NAME, JSON_NAME):
        path = run_dir / name
        if not path.exists():
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                text = line.strip()
                if text.startswith("{") or text.startswith('"'):
                    break
                if text and text not in lines:
                    lines.append(text)
    return " | ".join(lines[:limit])


def _artifacts(prepared: PreparedJob) -> FioArtifacts:
    run_dir = prepared.run_dir
    logs = {
        kind: tuple(sorted(run_dir.glob(f"{LOG_PREFIX}_{kind}.*.log"), key=_log_index)) for kind in LOG_KINDS
    }
    return FioArtifacts(
        directory=run_dir,
        json=run_dir / JSON_NAME,
        stderr=run_dir / STDERR_NAME,
        job_file=run_dir / JOB_NAME,
        command=run_dir / COMMAND_NAME,
        logs={kind: files for kind, files in logs.items() if files},
    )


def _log_index(path: Path) -> int:
    return int(log_thread(path) or 0)
