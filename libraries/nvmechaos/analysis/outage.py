"""Outages of a workload during faults: the longest time without an I/O completion, when I/O came
back, and how many I/O errors the workload saw.

Made for faults where I/O stops rather than slows: a path unplugged, a controller reset, a PCIe
error, a stalled backend, flapping links. The input is a fio run logged with one line per I/O
(``log_avg_msec=0``, ``&{EVERY_IO}``): each line is one completion, stamped in ms from fio's start
(:mod:`nvmechaos.analysis.runclock` puts a guest's logs on the host clock the fault timeline uses).

For each fault window ``(start, end)`` (:func:`nvmechaos.faults.base.fault_windows`) the **gap** is
the longest interval between two consecutive completions (of any job and direction) that overlaps
``[start, end + settle]``: an instantaneous fault (a PCIe error, a reset) is followed by ``settle``
seconds in which the stall it causes counts as its own. When no completion follows, I/O never
resumed: the gap runs to the end of the run (fio's last completion or its planned runtime,
whichever is later). **Resumed** is the time from the fault's start to the first completion after
that gap. **I/O errors** are those of the whole run: fio's ``total_err`` under
``continue_on_error``, else 1 per fio run that ended on an error; a reopening workload
(:mod:`nvmechaos.targets.guest`, ``reopen``) adds up its segments and counts its restarts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from nvmechaos.analysis.impact import FaultWindow, ImpactError, fio_origin, windows_during_run
from nvmechaos.analysis.series import IntervalSeries, RunSeries, is_per_io_log, run_series
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.fio.logs import iter_log_chunks
from nvmechaos.fio.model import FioResult
from nvmechaos.fio.runner import fio_seconds
from nvmechaos.targets.guest import read_segments
from nvmechaos.timeline import Event

#: Seconds after a fault's end in which a stall still counts as the fault's (an instantaneous fault
#: such as a PCIe error or a reset stalls I/O after it was injected).
DEFAULT_SETTLE_S = 2.0
#: Window of the chart drawn beside an outage verdict.
CHART_WINDOW_S = 0.25


@dataclass(frozen=True)
class FaultOutage:
    """What one fault did to the flow of completions (times in seconds from fio's start)."""

    label: str
    start_s: float
    end_s: float
    gap_ms: float
    gap_from_s: float
    gap_to_s: float
    resumed_s: float | None
    io_errors: int
    restarts: int

    @property
    def resumed(self) -> bool:
        return self.resumed_s is not None

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["fault"] = values.pop("label")
        values["resumed"] = self.resumed
        return values


@dataclass(frozen=True)
class OutageReport:
    """The outages of every fault during a run, the windows they were judged on, the run's series
    (for the chart) and how fio's start on the host clock is known."""

    outages: list[FaultOutage]
    windows: list[FaultWindow]
    series: RunSeries
    how: str


def completion_times_ms(result: FioResult) -> tuple[np.ndarray, float]:
    """Every I/O completion of ``result`` in ms from fio's start, sorted, and the run's end in ms
    (the last completion or the planned runtime, whichever is later).

    Raises:
        ImpactError: the run has no per-I/O latency log.
    """
    artifacts = result.artifacts
    paths = per_io_latency_logs(result)
    times = [chunk.time_ms for path in paths for chunk in iter_log_chunks(Path(path)) if len(chunk)]
    stamps = np.sort(np.concatenate(times)).astype(float) if times else np.zeros(0)
    planned = _planned_ms(artifacts.job_file if artifacts is not None else None)
    end = max(float(stamps[-1]) if stamps.size else 0.0, planned)
    return stamps, end


def per_io_latency_logs(result: FioResult) -> list[Path]:
    """The completion latency logs of ``result``, one line per I/O.

    Raises:
        ImpactError: the run has none (it averaged its logs over windows, or logged nothing).
    """
    logs = result.artifacts.logs if result.artifacts is not None else {}
    paths = list(logs.get("clat" if "clat" in logs else "lat", ()))
    if not paths or not is_per_io_log(paths[0]):
        raise ImpactError(
            "an outage is measured on a log with one line per I/O: run the job with log_avg_msec=0 "
            "(&{EVERY_IO} of resources/faults.resource)"
        )
    return [Path(path) for path in paths]


def _planned_ms(job_file: Path | None) -> float:
    """The run's planned length in ms from its job file (the longest job's runtime), 0 unknown."""
    if job_file is None or not job_file.is_file():
        return 0.0
    jobs = JobFile.load(job_file)
    longest = 0.0
    for name in jobs.job_names:
        runtime = jobs.effective("runtime", name)
        seconds = fio_seconds(runtime) if runtime is not None else None
        longest = max(longest, seconds or 0.0)
    return longest * 1000.0


def run_errors(result: FioResult) -> tuple[int, int]:
    """(I/O errors, restarts) of the run: a reopening run's segments added up, else fio's jobs."""
    segments = read_segments(result.artifacts.directory) if result.artifacts is not None else []
    if segments:
        return sum(s.io_errors for s in segments), len(segments) - 1
    return sum(job.io_errors for job in result.jobs), 0


def longest_gap(
    stamps: np.ndarray, run_end_ms: float, start_s: float, until_s: float
) -> tuple[float, float, float | None]:
    """(gap start ms, gap end ms, resumed ms or None) of the longest completion gap overlapping
    ``[start_s, until_s]``; the tail after the last completion counts as a gap that never resumed."""
    lo, hi = start_s * 1000.0, until_s * 1000.0
    edges = np.concatenate(([0.0], stamps, [run_end_ms]))
    begins, ends = edges[:-1], edges[1:]
    overlapping = np.flatnonzero((begins < hi) & (ends > lo))
    if overlapping.size == 0:
        return lo, lo, lo
    widths = ends[overlapping] - begins[overlapping]
    pick = int(overlapping[int(np.argmax(widths))])
    never = pick == len(begins) - 1  # the tail: no completion after it
    return float(begins[pick]), float(ends[pick]), None if never else float(ends[pick])


def measure_outages(
    result: FioResult,
    events: Sequence[Event],
    *,
    origin: float | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
) -> OutageReport:
    """The outage of every fault of ``events`` active during the fio run ``result`` (see the module
    docstring).

    Raises:
        ImpactError: no per-I/O log, fio's start unknown, no fault during the run, or a bad settle.
    """
    if not (isinstance(settle_s, int | float) and math.isfinite(settle_s) and settle_s >= 0):
        raise ImpactError(f"settle '{settle_s}' is not a time of 0 s or more")
    per_io_latency_logs(result)
    # Before the logs are read: for fio run on this host with log_unix_epoch=1, this rewrites them
    # relative to fio's start.
    start, how = fio_origin(result, origin)
    stamps, run_end_ms = completion_times_ms(result)
    series = run_series(result, CHART_WINDOW_S)
    windows = windows_during_run(events, start, _span(series.total, run_end_ms))
    if not windows:
        raise ImpactError(
            f"no fault was active during the fio run (0 to {run_end_ms / 1000:.0f} s after its start; "
            f"{len(events)} timeline events): nothing to judge"
        )
    errors, restarts = run_errors(result)
    outages = []
    for fault_start, fault_end, label in windows:
        gap_from, gap_to, resumed = longest_gap(stamps, run_end_ms, fault_start, fault_end + settle_s)
        outages.append(
            FaultOutage(
                label=label,
                start_s=fault_start,
                end_s=fault_end,
                gap_ms=gap_to - gap_from,
                gap_from_s=gap_from / 1000.0,
                gap_to_s=gap_to / 1000.0,
                resumed_s=None if resumed is None else resumed / 1000.0 - fault_start,
                io_errors=errors,
                restarts=restarts,
            )
        )
    return OutageReport(outages, windows, series, how)


def _span(total: IntervalSeries, run_end_ms: float) -> IntervalSeries:
    """``total`` stretched to the run's end, so a fault after fio's last completion still counts."""
    if total.times_s.size and float(total.times_s.max()) * 1000.0 >= run_end_ms:
        return total
    return replace(
        total,
        times_s=np.append(total.times_s, run_end_ms / 1000.0),
        values=np.append(total.values, 0.0),
    )


__all__ = [
    "DEFAULT_SETTLE_S",
    "FaultOutage",
    "OutageReport",
    "completion_times_ms",
    "longest_gap",
    "measure_outages",
    "run_errors",
]
