"""Putting fio's interval logs from a guest on the host's monotonic clock.

A fault timeline is stamped with the host's ``time.monotonic()``; fio in a guest stamps its logs
from its own start, on the guest's clock. To line them up:

1. fio runs with ``log_unix_epoch=1``: every log line carries the guest's wall clock (ms) at the
   window's end, i.e. ``C + k * window + lateness`` where ``C`` is the guest wall clock at fio's
   start (fio's ``td->epoch``) and lateness a few ms. :func:`fio_start_ms` recovers ``C`` per log
   file, assuming the first logged window is the first window of the run (true whenever I/O
   completed in fio's first window); the window is each job's ``log_avg_msec`` as the run folder's
   ``job.fio`` sets it (:func:`log_windows`); logs with one line per I/O (``log_avg_msec=0``) carry each
   I/O's completion, and ``C`` is the earliest completion minus its latency.
   :func:`rebase_epoch_logs` rewrites the logs relative to ``C`` (as fio writes them by default)
   and keeps the originals in ``epoch/``.
2. The guest's wall clock is compared with the host's over SSH (:func:`measure_guest_clock`,
   :func:`estimate_offset`): the guest prints its clock between two host readings; the sample
   with the shortest round trip wins and half that round trip is the uncertainty (typically
   40-60 ms under TCG).
3. The host's wall clock and monotonic clock are read together, so fio's start becomes a host
   ``time.monotonic()`` value (:class:`RunClock`).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.logs import log_thread
from nvmechaos.fio.runner import JOB_NAME, LOG_PREFIX
from nvmechaos.units import ArgumentError

TIMELINE_NAME = "timeline.json"
EPOCH_DIR = "epoch"
# A guest command printing its wall clock with microseconds (busybox's date has no %N).
GUEST_CLOCK_COMMAND = "adjtimex | grep 'time.tv_'"
_ADJTIMEX = re.compile(r"time\.tv_sec:\s*(\d+)\s+time\.tv_usec:\s*(\d+)", re.S)
# fio's window when a log's job sets none (the framework's own default, see nvmechaos.fio.runner).
DEFAULT_WINDOW_MS = 1000


class ClockError(NvmeChaosError):
    """Guest clock or fio logs cannot be lined up with the host clock."""


@dataclass(frozen=True)
class ClockSample:
    """One comparison: host wall clock before and after, and the guest's wall clock in between."""

    host_before: float
    host_after: float
    guest: float

    @property
    def round_trip(self) -> float:
        return self.host_after - self.host_before

    @property
    def offset(self) -> float:
        """Guest minus host wall clock, in seconds."""
        return self.guest - (self.host_before + self.host_after) / 2.0


def parse_guest_clock(text: str) -> float:
    """Epoch seconds from busybox ``adjtimex`` output (``time.tv_sec`` and ``time.tv_usec``).

    Raises:
        ClockError: the text has no such lines.
    """
    match = _ADJTIMEX.search(text)
    if not match:
        raise ClockError(f"cannot read the guest clock from adjtimex output: {text.strip()[:120]!r}")
    return int(match.group(1)) + int(match.group(2)) / 1e6


class GuestShell(Protocol):
    """What a clock sample needs of a guest connection (``nvmechaos.vm.ssh.GuestSsh`` has it)."""

    def run(self, command: str, timeout: float = 30.0) -> _Output: ...

    def close(self) -> None: ...


class _Output(Protocol):
    @property
    def stdout(self) -> str: ...


def measure_guest_clock(connect: Callable[[], GuestShell], samples: int = 5) -> list[ClockSample]:
    """Compare the guest's wall clock with the host's ``samples`` times over one connection that
    ``connect`` opens (and this closes); see :func:`estimate_offset` for the offset.

    Raises:
        ArgumentError: ``samples`` below 1 (checked before connecting).
        ClockError: the guest printed no clock.
        VmError: the connection failed (as ``connect`` and the shell raise it).
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ArgumentError(f"samples '{samples}' is not 1 or more")
    result: list[ClockSample] = []
    shell = connect()
    try:
        for _ in range(samples):
            before = time.time()
            output = shell.run(GUEST_CLOCK_COMMAND, timeout=15)
            after = time.time()
            result.append(ClockSample(before, after, parse_guest_clock(output.stdout)))
    finally:
        shell.close()
    return result


def estimate_offset(samples: Sequence[ClockSample]) -> tuple[float, float]:
    """(guest minus host wall clock, uncertainty) in seconds from the sample with the shortest round trip.

    Raises:
        ClockError: no samples.
    """
    if not samples:
        raise ClockError("no guest clock samples")
    best = min(samples, key=lambda s: s.round_trip)
    return best.offset, best.round_trip / 2.0


def _read_lines(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise ClockError(f"cannot read fio log '{path}': {error.strerror}") from None
    return [[f.strip() for f in line.split(",")] for line in text.splitlines() if line.strip()]


def fio_start_ms(times_ms: Iterable[int], window_ms: int) -> int:
    """Guest wall clock (ms) of fio's start from the window-end stamps of one epoch log.

    Raises:
        ClockError: no stamps, or ``window_ms`` < 1.
    """
    stamps = sorted(set(times_ms))
    if not stamps:
        raise ClockError("an empty fio log has no start time")
    if window_ms < 1:
        raise ClockError(f"log window {window_ms} ms is not positive")
    first = stamps[0]
    guess = first - window_ms
    return min(t - window_ms * round((t - guess) / window_ms) for t in stamps)


_EPOCH_MS = 10**12


def is_epoch_log(path: Path) -> bool:
    """Whether fio wrote the log ``path`` with ``log_unix_epoch=1`` (its first stamp is a wall-clock
    time in ms); reads its first line only.

    Raises:
        OSError: the log cannot be read.
    """
    with open(path, encoding="ascii", errors="replace") as log:
        first = log.readline().split(",", 1)[0].strip()
    return first.isdigit() and int(first) >= _EPOCH_MS


def _stamped_rows(path: Path) -> tuple[list[list[str]], list[int]]:
    rows = _read_lines(path)
    try:
        return rows, [int(row[0]) for row in rows]
    except (ValueError, IndexError):
        raise ClockError(f"fio log '{path}' has a line whose time is not a number") from None


_LATENCY_LOG = re.compile(r"_(?:lat|clat|slat)\.\d+\.log$")


def _per_io(rows: list[list[str]]) -> bool:
    """One line per I/O (a block size in column 4), not window averages (block size 0)."""
    return bool(rows) and len(rows[0]) >= 4 and rows[0][3] not in ("", "0")


def _issue_start_ms(path: Path, rows: list[list[str]], stamps: list[int]) -> int:
    """Earliest start of an I/O in a per-I/O log: completion minus latency (ns) for latency logs,
    else the first completion."""
    if not _LATENCY_LOG.search(path.name):
        return min(stamps)
    try:
        return min(stamp - math.ceil(int(row[1]) / 1e6) for stamp, row in zip(stamps, rows, strict=True))
    except (ValueError, IndexError):
        raise ClockError(f"fio log '{path}' has a latency that is not a number") from None


def log_windows(job_file: JobFile, default_ms: int = DEFAULT_WINDOW_MS) -> dict[str, int]:
    """fio's ``log_avg_msec`` per log file, keyed by the thread number in its name (``fio_iops.2.log``
    -> ``"2"``): fio numbers its threads through the jobs in file order, ``numjobs`` each.

    Raises:
        ClockError: a ``log_avg_msec`` or ``numjobs`` that is not a whole number.
    """
    windows: dict[str, int] = {}
    for name in job_file.job_names:
        window = _whole(job_file.effective("log_avg_msec", name), "log_avg_msec", name, default_ms)
        for _ in range(max(1, _whole(job_file.effective("numjobs", name), "numjobs", name, 1))):
            windows[str(len(windows) + 1)] = window
    return windows


def _whole(value: str | None, option: str, job: str, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ClockError(f"{option}={value} of job '{job}' is not a whole number") from None


def rebase_epoch_logs(
    paths: Iterable[Path], window_ms: int | Mapping[str, int] = DEFAULT_WINDOW_MS
) -> dict[str, int]:
    """Rewrite fio logs written with ``log_unix_epoch=1`` relative to their own fio start (as fio
    writes them without it); keep the originals in ``epoch/`` beside them. Return each file's start
    (guest epoch ms) by file name. Files already rebased (their original is in ``epoch/``) are read
    from the original again, so calling this twice changes nothing.

    Logs of window averages (``log_avg_msec`` = ``window_ms``: one for every log, or one per fio
    thread as :func:`log_windows` gives them) give their start from their window ends
    (:func:`fio_start_ms`). Logs with one line per I/O (``log_avg_msec=0``) all get one start
    per fio thread (``fio_*.N.log``): the earliest I/O start (completion minus its latency) in the
    thread's latency logs, or its first completion when it has none.

    Raises:
        ClockError: a file cannot be read or written, or is not an epoch log.
    """
    loaded: list[tuple[Path, Path, list[list[str]], list[int]]] = []
    per_io: dict[str, int] = {}
    for path in paths:
        original = path.parent / EPOCH_DIR / path.name
        rows, stamps = _stamped_rows(path)
        source = path
        if stamps and min(stamps) < _EPOCH_MS and original.is_file():
            # Rebased before: start again from the original (a fresh run overwrites the log itself).
            rows, stamps = _stamped_rows(original)
            source = original
        if not stamps:
            continue
        if min(stamps) < _EPOCH_MS:
            raise ClockError(
                f"fio log '{source}' is not stamped with the wall clock (run fio with log_unix_epoch=1)"
            )
        loaded.append((path, source, rows, stamps))
        if _per_io(rows):
            key = log_thread(path)
            start = _issue_start_ms(source, rows, stamps)
            per_io[key] = min(per_io.get(key, start), start)
    starts: dict[str, int] = {}
    for path, source, rows, stamps in loaded:
        if _per_io(rows):
            start = per_io[log_thread(path)]
        else:
            start = fio_start_ms(stamps, _window_of(path, window_ms))
        starts[path.name] = start
        original = path.parent / EPOCH_DIR / path.name
        try:
            if source == path:
                original.parent.mkdir(exist_ok=True)
                shutil.copy2(path, original)
            text = "".join(", ".join([str(int(row[0]) - start), *row[1:]]) + "\n" for row in rows)
            path.write_text(text, encoding="ascii")
        except OSError as error:
            raise ClockError(f"cannot rewrite fio log '{path}': {error.strerror}") from None
    return starts


def _window_of(path: Path, window_ms: int | Mapping[str, int]) -> int:
    if isinstance(window_ms, int):
        return window_ms
    return window_ms.get(log_thread(path), DEFAULT_WINDOW_MS)


@dataclass(frozen=True)
class RunClock:
    """Where fio's time 0 is on the host's clocks (see the module docstring)."""

    fio_start_monotonic: float
    fio_start_wall: float
    fio_start_guest_wall: float
    guest_offset_s: float
    uncertainty_s: float
    drift_s: float | None = None
    starts_ms: Mapping[str, int] | None = None

    def save(self, directory: Path) -> Path:
        path = directory / TIMELINE_NAME
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path) -> RunClock | None:
        """The clock saved in ``directory``, or None when there is none.

        Raises:
            ClockError: the file exists but is not a run clock.
        """
        path = directory / TIMELINE_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as error:
            raise ClockError(f"'{path}' is not a run clock: {error}") from None


def host_wall_minus_monotonic() -> float:
    """``time.time() - time.monotonic()`` read as closely together as possible."""
    best: tuple[float, float] | None = None
    for _ in range(5):
        before = time.monotonic()
        wall = time.time()
        after = time.monotonic()
        if best is None or after - before < best[0]:
            best = (after - before, wall - (before + after) / 2.0)
    assert best is not None
    return best[1]


def align_run(
    logs: Iterable[Path],
    before: Sequence[ClockSample] = (),
    after: Sequence[ClockSample] = (),
    window_ms: int | Mapping[str, int] = DEFAULT_WINDOW_MS,
) -> RunClock:
    """Rebase ``logs`` (see :func:`rebase_epoch_logs`) and place fio's start on the host's clocks,
    using the guest clock offset measured ``before`` (and ``after``) the run; without samples fio ran
    on this host (offset 0).

    Raises:
        ClockError: no samples, or no log has a line.
    """
    if before or after:
        offset, uncertainty = estimate_offset(list(before) + list(after))
    else:  # fio ran on this host: its wall clock is ours
        offset, uncertainty = 0.0, 0.0
    drift = None
    if before and after:
        drift = estimate_offset(after)[0] - estimate_offset(before)[0]
    starts = rebase_epoch_logs(logs, window_ms)
    if not starts:
        raise ClockError("no fio log line to find fio's start in (did the job do any I/O?)")
    guest_start = min(starts.values()) / 1000.0
    host_wall = guest_start - offset
    if before and host_wall < min(s.host_before for s in before) - 1.0:
        raise ClockError(
            f"fio's logs start {min(s.host_before for s in before) - host_wall:.1f} s before the job was "
            "started: they are not this run's"
        )
    return RunClock(
        fio_start_monotonic=host_wall - host_wall_minus_monotonic(),
        fio_start_wall=host_wall,
        fio_start_guest_wall=guest_start,
        guest_offset_s=offset,
        uncertainty_s=uncertainty,
        drift_s=drift,
        starts_ms=starts,
    )


def align_run_dir(
    directory: Path, before: Sequence[ClockSample] = (), after: Sequence[ClockSample] = ()
) -> RunClock:
    """Put the fio logs of the run folder ``directory`` on the host clock (:func:`align_run`, with
    each job's ``log_avg_msec`` from the folder's ``job.fio``) and save the clock there as
    ``timeline.json``; without samples fio ran on this host.

    Raises:
        ArgumentError: ``directory`` is not a folder, or ``before``/``after`` are not clock samples.
        ClockError: as :func:`align_run`, or ``timeline.json`` cannot be written.
    """
    if not directory.is_dir():
        raise ArgumentError(f"fio run folder '{directory}' does not exist")
    for what, samples in (("before", before), ("after", after)):
        if samples and (
            not isinstance(samples, list | tuple) or not all(isinstance(s, ClockSample) for s in samples)
        ):
            raise ArgumentError(f"{what} is not a list of samples from `Measure Guest Clock`: '{samples}'")
    job = directory / JOB_NAME
    try:
        windows: int | dict[str, int] = log_windows(JobFile.load(job)) if job.is_file() else DEFAULT_WINDOW_MS
    except NvmeChaosError as error:
        raise ClockError(f"cannot read the log windows of '{job}': {error}") from None
    clock = align_run(sorted(directory.glob(f"{LOG_PREFIX}_*.*.log")), before, after, windows)
    try:
        clock.save(directory)
    except OSError as error:
        raise ClockError(f"cannot write '{directory / TIMELINE_NAME}': {error.strerror}") from None
    return clock


__all__ = [
    "EPOCH_DIR",
    "GUEST_CLOCK_COMMAND",
    "TIMELINE_NAME",
    "ClockError",
    "ClockSample",
    "RunClock",
    "align_run",
    "align_run_dir",
    "estimate_offset",
    "fio_start_ms",
    "host_wall_minus_monotonic",
    "log_windows",
    "measure_guest_clock",
    "parse_guest_clock",
    "rebase_epoch_logs",
]
