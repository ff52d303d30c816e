"""Checks of the acceptance tests: does fio's per-second latency log show the faults where the
fault timeline says they were? (Test helper, not part of the product.)"""

from __future__ import annotations

import dataclasses
import os
import signal
import statistics
from datetime import timedelta
from pathlib import Path
from typing import Any

from robot.api import logger

from nvmechaos.faults import NbdInjector, parse_duration
from nvmechaos.timeline import Event


def _windows(events: list[Event], kind: str) -> list[tuple[float, float]]:
    """(apply wall, clear wall) of every window of ``kind`` on the timeline."""
    windows: list[tuple[float, float]] = []
    start: float | None = None
    for event in events:
        if event.kind == kind and event.action == "apply" and start is None:
            start = event.wall
        elif event.kind == kind and event.action == "clear" and start is not None:
            windows.append((start, event.wall))
            start = None
    if start is not None:
        raise AssertionError(f"a {kind} window was never cleared")
    return windows


def _log(path: Path) -> dict[int, float]:
    """Read-direction entries of a fio interval log: window end (epoch ms) -> value."""
    entries: dict[int, float] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 3 and fields[2] == "0":
            entries[int(fields[0])] = float(fields[1])
    return entries


def _per_io(path: Path) -> list[tuple[int, float]]:
    """Read-direction entries of a per-I/O fio log (log_avg_msec=0): (completion epoch ms, value)."""
    rows = []
    for line in path.read_text(encoding="ascii").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 3 and fields[2] == "0":
            rows.append((int(fields[0]), float(fields[1])))
    return sorted(rows)


def _intervals(result: Any) -> list[tuple[float, float, float, float]]:
    """(begin, end) in epoch seconds, typical clat in seconds and IOPS of each one-second window.

    With a per-I/O log the typical clat is the window's median: a busy host wakes a few requests
    late by milliseconds, which moves a mean (and made a 50 ms spike read +8.9 % at load 3) but not
    the median. With an averaged log it is fio's mean.
    """
    clat_path = Path(result.artifacts.logs["clat"][0])
    per_io = _per_io(clat_path)
    if len(per_io) > 2 * len({t // 1000 for t, _ in per_io}):  # many entries a second: per I/O
        first = per_io[0][0]
        bins: dict[int, list[float]] = {}
        for at_ms, value in per_io:
            bins.setdefault((at_ms - first) // 1000, []).append(value)
        rows = [
            (
                (first + 1000 * index) / 1000.0,
                (first + 1000 * (index + 1)) / 1000.0,
                statistics.median(values) / 1e9,
                float(len(values)),
            )
            for index, values in sorted(bins.items())
        ]
    else:
        clat = _log(clat_path)
        iops = _log(Path(result.artifacts.logs["iops"][0]))
        rows = []
        previous: float | None = None
        # Both logs have one entry per window, stamped within a millisecond or two of each other.
        for end_ms, iops_ms in zip(sorted(clat), sorted(iops), strict=False):
            if abs(end_ms - iops_ms) > 150:
                raise AssertionError(f"clat and IOPS logs disagree: window ends {end_ms} and {iops_ms}")
            end = end_ms / 1000.0
            begin = previous if previous is not None else end - 1.0
            previous = end
            rows.append((begin, end, clat[end_ms] / 1e9, iops[iops_ms]))
    if len(rows) < 4:
        raise AssertionError(f"only {len(rows)} usable windows in fio's logs")
    return rows[:-1]  # the last window is cut short by the end of the run


class FaultChecks:
    ROBOT_LIBRARY_SCOPE = "GLOBAL"

    def latency_log_should_show_spikes(
        self, result: Any, events: list[Event], delay: str, tolerance: float = 0.05
    ) -> None:
        """Every latency window of ``events`` appears in fio's per-second logs (written with
        ``log_unix_epoch=1``) where and as large as the timeline says.

        Each one-second window of the log is classed by the timeline: wholly inside a spike, wholly
        outside (quiet), or across a spike's start or end (edge). Inside windows must have a mean
        completion latency of baseline + ``delay`` within ``tolerance``; quiet windows must stay at
        the baseline (mean of the quiet windows); edge windows, where fast I/Os outnumber the
        delayed ones, must stay below baseline + delay/2. A spike applied earlier or later than the
        timeline says turns an inside window into a diluted one, or a quiet one into a slow one.
        """
        added = parse_duration(delay)
        spikes = _windows(events, "latency")
        if not spikes:
            raise AssertionError("the timeline has no latency window")
        rows = _intervals(result)

        def overlap(begin: float, end: float) -> float:
            return sum(max(0.0, min(end, off) - max(begin, on)) for on, off in spikes)

        quiet = [row for row in rows if overlap(row[0] - 0.05, row[1] + 0.05) == 0.0]
        spans = ", ".join(f"{on:.3f}-{off:.3f}" for on, off in spikes)
        if len(quiet) < 2:
            listing = "\n".join(f"{b:.3f}-{e:.3f}  {m * 1000:9.3f} ms  {i:8.0f} IOPS" for b, e, m, i in rows)
            logger.info(f"spikes {spans}\n{listing}")
            raise AssertionError(f"only {len(quiet)} window(s) without a spike in the log")
        base = sum(row[2] for row in quiet) / len(quiet)
        table = []
        problems = []
        inside = 0
        for begin, end, mean, iops in rows:
            fraction = overlap(begin, end) / (end - begin)
            added_ms = (mean - base) * 1000
            if fraction >= 0.999:
                inside += 1
                error = abs(mean - base - added) / added
                kind = f"inside: added {added_ms:.2f} ms ({error:+.1%})"
                if error > tolerance:
                    problems.append(f"window ending {end:.3f}: {kind}, not within {tolerance:.0%}")
            elif overlap(begin - 0.05, end + 0.05) == 0.0:
                kind = "quiet"
                if mean > base + 0.1 * added:
                    problems.append(f"quiet window ending {end:.3f} has {mean * 1000:.2f} ms")
            else:
                kind = f"edge ({fraction:.0%} in a spike)"
                if mean > base + 0.5 * added:
                    problems.append(
                        f"edge window ending {end:.3f} has {mean * 1000:.2f} ms: the spike was longer"
                    )
            table.append(f"{begin:.3f}-{end:.3f}  {mean * 1000:9.3f} ms  {iops:8.0f} IOPS  {kind}")
        logger.info(f"spikes {spans}; baseline {base * 1000:.3f} ms\n" + "\n".join(table))
        if inside < len(spikes):
            problems.append(f"{len(spikes)} spike(s) but only {inside} window(s) wholly inside one")
        if problems:
            raise AssertionError("; ".join(problems))

    def mean_latency_should_be_within(self, result: Any, low: timedelta, high: timedelta) -> None:
        """fio's mean read completion latency is between ``low`` and ``high``."""
        clat = result.jobs[0].directions["read"].clat
        mean_ms = clat.mean_ns / 1e6
        shown = f"mean read latency {mean_ms:.2f} ms"
        if not low.total_seconds() * 1000 <= mean_ms <= high.total_seconds() * 1000:
            raise AssertionError(
                f"{shown}, not between {low.total_seconds() * 1000:g} and {high.total_seconds() * 1000:g} ms"
            )
        logger.info(shown)

    def shift_events(self, events: list[Event], seconds: float) -> list[Event]:
        """The same events stamped ``seconds`` later (a timeline that lies about when)."""
        return [
            dataclasses.replace(
                event, wall=event.wall + float(seconds), monotonic=event.monotonic + float(seconds)
            )
            for event in events
        ]

    def kill_injector_process(self, injector: NbdInjector) -> None:
        """SIGKILL the injector's server behind its back (simulates a crash)."""
        assert injector.process is not None
        os.kill(injector.process.pid, signal.SIGKILL)
        injector.process.popen.wait(5)

    def process_should_be_gone(self, pid: int) -> None:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return
        raise AssertionError(f"process {pid} is still running")
