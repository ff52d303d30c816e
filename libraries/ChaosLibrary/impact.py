"""Keywords that judge what faults did to a workload: baseline, depth, recovery, and the chart."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from robot.api import logger
from robot.api.deco import keyword
from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from ChaosLibrary.context import ChaosContext, fail
from nvmechaos.analysis.charts import png_data_uri, render_timeline_png
from nvmechaos.analysis.impact import ImpactError, analyse, fault_windows_from_events, violations
from nvmechaos.analysis.intervals import IntervalSeries, read_series, total_series
from nvmechaos.analysis.runclock import TIMELINE_NAME, RunClock, align_run
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults import FaultEvent, parse_duration
from nvmechaos.faults.control import FaultParamError

EPOCH_MS = 10**12
_LIMIT_NAMES = (
    "max_iops_drop_pct",
    "min_iops",
    "max_latency_ms",
    "max_latency_increase_pct",
    "max_recovery_s",
)


def _flatten(events: Any) -> list[FaultEvent]:
    """Fault events from a list, a list of lists (e.g. two timelines), or None."""
    if events in (None, ""):
        return []
    if isinstance(events, FaultEvent):
        return [events]
    if not isinstance(events, Iterable) or isinstance(events, (str, bytes)):
        fail(f"'{events}' is not a list of fault events (use Get Fault Timeline / Get VM Fault Timeline)")
    flat: list[FaultEvent] = []
    for item in events:
        flat += _flatten(item)
    return flat


def _series(result: Any) -> tuple[dict[str, IntervalSeries], dict[str, IntervalSeries], Path]:
    artifacts = getattr(result, "artifacts", None)
    logs = getattr(artifacts, "logs", None) or {}
    if "iops" not in logs:
        fail("the fio result has no IOPS interval log (run it with Run/Start Fio Job [On VM])")
    try:
        iops = read_series(logs["iops"], "iops")
        latency_kind = "clat" if "clat" in logs else "lat"
        latency = read_series(logs[latency_kind], latency_kind) if latency_kind in logs else {}
    except (NvmeChaosError, ValueError) as error:
        fail(error)
    if not iops:
        fail("the fio result's IOPS log is empty: the job did no I/O")
    return iops, latency, Path(artifacts.directory)


def _worst_latency(latency: dict[str, IntervalSeries]) -> IntervalSeries | None:
    """Per window, the highest latency over the directions (the conservative one to judge)."""
    if not latency:
        return None
    parts = list(latency.values())
    if len(parts) == 1:
        return parts[0]
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    times = np.unique(np.concatenate([s.times_s for s in parts]))
    values = np.full(times.size, np.nan)
    for part in parts:
        index = np.searchsorted(times, part.times_s)
        values[index] = np.fmax(values[index], part.values * scale.get(part.unit, 1.0))
    first = parts[0]
    return IntervalSeries(first.kind, "worst", "ns", first.window_ms, times, values, first.files)


def _host_epoch_clock(result: Any) -> RunClock | None:
    """For fio run on this host with ``log_unix_epoch=1``: put its logs on the host clock (once)."""
    artifacts = getattr(result, "artifacts", None)
    logs = getattr(artifacts, "logs", None) or {}
    files = [Path(path) for paths in logs.values() for path in paths]
    if artifacts is None or not files:
        return None
    try:
        first = Path(files[0]).read_text(encoding="ascii", errors="replace").split(",", 1)[0].strip()
        if not first.isdigit() or int(first) < EPOCH_MS:
            return None
        clock = align_run(files)
        clock.save(Path(artifacts.directory))
    except (OSError, NvmeChaosError) as error:
        fail(error)
    return clock


class ImpactKeywords:
    """`Fault Impact Should Be Within`, `Get Fault Impact`."""

    def __init__(self, context: ChaosContext) -> None:
        self.ctx = context

    def _all_events(self) -> list[FaultEvent]:
        events = list(self.ctx.timeline.events)
        try:
            vm_library = BuiltIn().get_library_instance("VmLibrary")
        except (RobotNotRunningError, RuntimeError):
            return events
        getter = getattr(vm_library, "get_vm_fault_timeline", None)
        if getter is not None:
            events += list(getter())
        return events

    def _origin(self, origin: Any, result: Any) -> tuple[float, str]:
        directory = Path(getattr(getattr(result, "artifacts", None), "directory", "."))
        if origin not in (None, ""):
            try:
                return float(origin), "given"
            except (TypeError, ValueError):
                fail(f"origin '{origin}' is not a time.monotonic() value (e.g. ${{fio.started_monotonic}})")
        clock = _host_epoch_clock(result)  # fresh logs on this host's wall clock: align them now
        if clock is None:
            try:
                clock = RunClock.load(directory)
            except NvmeChaosError as error:
                fail(error)
            output = directory / "fio.json"
            if clock is not None and output.is_file():
                saved = (directory / TIMELINE_NAME).stat().st_mtime
                if saved < output.stat().st_mtime:
                    clock = None  # left by an earlier run in the same folder
        if clock is None:
            fail(
                f"fio's start on the host clock is unknown: no timeline.json in '{directory}' (run the job "
                "with Start Timed Fio Job On VM; on this host with log_unix_epoch=1, or pass "
                "origin=${fio.started_monotonic})"
            )
        if clock.uncertainty_s == 0:
            return clock.fio_start_monotonic, "fio on this host, logs on its wall clock"
        return clock.fio_start_monotonic, f"guest clock ± {clock.uncertainty_s * 1000:.0f} ms"

    def _impacts(
        self,
        result: Any,
        events: Any,
        *,
        origin: Any,
        baseline: str,
        tolerance_pct: float,
        recovery_windows: int,
        latency_slack_ms: float = 1.0,
    ) -> list[Any]:
        start, how = self._origin(origin, result)
        iops, latency, _ = _series(result)
        chosen = _flatten(events) if events not in (None, "") else self._all_events()
        total = total_series(iops)
        worst = _worst_latency(latency)
        run_end = float(total.times_s.max())
        windows = [
            w
            for w in fault_windows_from_events(chosen, start, until=time.monotonic())
            if w[0] < run_end + total.window_ms / 1000.0 and w[1] > 0
        ]
        if not windows:
            fail(
                f"no fault was active during the fio run (0 to {run_end:.0f} s after its start; "
                f"{len(chosen)} timeline events): nothing to judge"
            )
        try:
            impacts = analyse(
                total,
                windows,
                worst,
                baseline_s=parse_duration(baseline, "baseline"),
                tolerance_pct=float(tolerance_pct),
                recovery_windows=int(recovery_windows),
                latency_slack_ms=float(latency_slack_ms),
            )
        except (ImpactError, FaultParamError) as error:
            fail(error)
        self._log(iops, latency, windows, impacts, how)
        return impacts

    def _log(self, iops: Any, latency: Any, windows: list[Any], impacts: list[Any], how: str) -> None:
        def number(value: float | None, digits: int = 1) -> str:
            return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"

        rows = "".join(
            f"<tr><td>{html.escape(i.label)}</td><td>{i.start_s:.2f}-{i.end_s:.2f}</td>"
            f"<td>{number(i.baseline_iops, 0)}</td><td>{number(i.min_iops, 0)}</td>"
            f"<td>{number(i.iops_drop_pct)}</td>"
            f"<td>{number(i.baseline_latency_ms, 2)}</td><td>{number(i.max_latency_ms, 2)}</td>"
            f"<td>{number(i.recovery_s) if i.recovered else 'never'}</td></tr>"
            for i in impacts
        )
        if impacts:
            self.ctx.html(
                f"<b>Fault impact</b> (times in s from fio's start; fault times from the host clock, {how})"
                "<table border='1'><tr><th>fault</th><th>window (s)</th><th>baseline IOPS</th>"
                "<th>min IOPS</th><th>IOPS drop %</th><th>baseline latency ms</th><th>max latency ms</th>"
                "<th>recovery s</th></tr>"
                f"{rows}</table>"
            )
        try:
            png = render_timeline_png(
                iops, latency, fault_windows=windows, title="IOPS and latency with faults"
            )
        except ValueError as error:
            logger.warn(f"cannot draw the fault timeline chart: {error}")
            return
        self.ctx.html(f'<img src="{png_data_uri(png)}" alt="IOPS and latency over time with fault windows">')

    @keyword
    def get_fault_impact(
        self,
        result: Any,
        events: Any = None,
        *,
        origin: Any = None,
        baseline: str = "5s",
        tolerance_pct: float = 10.0,
        recovery_windows: int = 2,
        latency_slack_ms: float = 1.0,
    ) -> list[dict[str, object]]:
        """Compute, for each fault active during the fio run ``result``, its impact, log a table and
        a chart of IOPS and latency over time with the fault windows shaded, and return one
        dictionary per fault: ``fault`` (label), ``start_s``/``end_s`` (seconds from fio's start),
        ``baseline_iops``, ``baseline_latency_ms`` (means over the ``baseline`` before the fault),
        ``min_iops``, ``iops_drop_pct``, ``max_latency_ms``, ``latency_increase_pct`` (the worst
        window during the fault), ``recovery_s`` (from the fault's end to the end of the first of
        ``recovery_windows`` consecutive windows within ``tolerance_pct`` % of the baseline IOPS
        and latency, or latency within ``latency_slack_ms`` of it; None if never) and ``recovered``.

        ``events`` are fault timeline events (`Get Fault Timeline`, `Get VM Fault Timeline`, or a
        list of both); default: every event of this library and of VmLibrary. ``origin`` is fio's
        start on ``time.monotonic()`` (``${fio.started_monotonic}`` for a host job); default: the
        ``timeline.json`` `Start Timed Fio Job On VM` leaves in the run folder; for fio run on this
        host with ``log_unix_epoch=1`` the logs are put on the host clock here (rewritten relative
        to fio's start as fio writes them by default; the originals are kept in ``epoch/``). IOPS
        are summed over directions; latency (clat) is the worst direction per window.

        Example:
        | ${impacts} =    Get Fault Impact    ${result}    ${events}
        | Should Be True    ${impacts}[0][iops_drop_pct] > 50
        """
        impacts = self._impacts(
            result,
            events,
            origin=origin,
            baseline=baseline,
            tolerance_pct=tolerance_pct,
            recovery_windows=recovery_windows,
            latency_slack_ms=latency_slack_ms,
        )
        return [i.as_dict() for i in impacts]

    @keyword
    def fault_impact_should_be_within(
        self,
        result: Any,
        events: Any = None,
        *,
        max_iops_drop_pct: float | None = None,
        min_iops: float | None = None,
        max_latency_ms: float | None = None,
        max_latency_increase_pct: float | None = None,
        max_recovery_s: float | None = None,
        origin: Any = None,
        baseline: str = "5s",
        tolerance_pct: float = 10.0,
        recovery_windows: int = 2,
        latency_slack_ms: float = 1.0,
    ) -> list[dict[str, object]]:
        """Fail unless every fault active during the fio run ``result`` stayed within the limits,
        with one line per broken limit naming the fault, the metric, its value and the limit.

        Limits (metric names carry unit and sense, as in the threshold profiles):
        ``max_iops_drop_pct`` (lowest window IOPS during the fault vs the baseline),
        ``min_iops`` (lowest window IOPS during the fault), ``max_latency_ms`` (highest window
        mean completion latency during the fault), ``max_latency_increase_pct`` (that vs the
        baseline), ``max_recovery_s`` (seconds from the fault's end back to within
        ``tolerance_pct`` % of the baseline for ``recovery_windows`` windows; a fault that never
        recovered breaks it). Other arguments as in `Get Fault Impact`, whose table and chart this
        logs too; returns the same dictionaries.

        Examples:
        | Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=150    max_recovery_s=3
        | Run Keyword And Expect Error    *max_latency_ms*
        | ...    Fault Impact Should Be Within    ${result}    ${events}    max_latency_ms=20
        """
        given = {
            "max_iops_drop_pct": max_iops_drop_pct,
            "min_iops": min_iops,
            "max_latency_ms": max_latency_ms,
            "max_latency_increase_pct": max_latency_increase_pct,
            "max_recovery_s": max_recovery_s,
        }
        limits: dict[str, float] = {}
        for name in _LIMIT_NAMES:
            value = given[name]
            if value in (None, ""):
                continue
            try:
                limits[name] = float(str(value))
            except ValueError:
                fail(f"{name} '{value}' is not a number")
        if not limits:
            fail(f"no impact limit given (use {', '.join(_LIMIT_NAMES)})")
        impacts = self._impacts(
            result,
            events,
            origin=origin,
            baseline=baseline,
            tolerance_pct=tolerance_pct,
            recovery_windows=recovery_windows,
            latency_slack_ms=latency_slack_ms,
        )
        try:
            broken = violations(impacts, limits)
        except ImpactError as error:
            fail(error)
        if broken:
            fail(f"{len(broken)} fault impact limit(s) broken:\n" + "\n".join(broken))
        logger.info(f"{len(impacts)} fault(s) within {limits}")
        return [i.as_dict() for i in impacts]

    @keyword("IO Throttle Should Be Honoured")
    def io_throttle_should_be_honoured(
        self,
        result: Any,
        events: Any = None,
        *,
        iops: float | None = None,
        tolerance_pct: float = 5.0,
        origin: Any = None,
        settle: int = 1,
    ) -> list[float]:
        """Fail unless, in every throttle window (`Set IO Throttle` .. `Clear IO Throttle`) during the
        fio run ``result``, the mean IOPS of the windows wholly inside it (after the first
        ``settle`` ones, while the throttle's bucket drains) is within ``tolerance_pct`` % of the
        limit: ``iops`` when given, else the ``iops-total`` the timeline recorded. Returns the
        measured means. ``events`` and ``origin`` as in `Get Fault Impact`.

        Examples:
        | IO Throttle Should Be Honoured    ${result}    ${events}
        | IO Throttle Should Be Honoured    ${result}    iops=200    tolerance_pct=5
        """
        start, _how = self._origin(origin, result)
        iops_series, _, _ = _series(result)
        chosen = _flatten(events) if events not in (None, "") else self._all_events()
        total = total_series(iops_series)
        width = total.window_ms / 1000.0
        applies = [e for e in chosen if e.kind == "throttle" and e.action == "apply"]
        windows = [
            w
            for w in fault_windows_from_events(
                [e for e in chosen if e.kind == "throttle"], start, until=time.monotonic()
            )
            if w[0] < float(total.times_s.max()) and w[1] > 0
        ]
        if not windows:
            fail("no IO throttle was active during the fio run: nothing to judge")
        measured: list[float] = []
        problems: list[str] = []
        for begin, end, label in windows:
            limit = float(iops) if iops not in (None, "") else None
            if limit is None:
                for event in applies:
                    if abs(event.monotonic - start - begin) < 1e-6:
                        limit = float(event.params.get("iops-total", 0)) or None
            if limit is None:
                fail(f"throttle '{label}' has no iops-total limit: pass iops=")
            inside = (total.times_s - width >= begin) & (total.times_s <= end)
            values = total.values[inside][int(settle) :]
            if values.size == 0:
                problems.append(f"throttle '{label}' at {begin:.1f}-{end:.1f} s: no whole window inside it")
                continue
            mean = float(values.mean())
            measured.append(mean)
            error = (mean - limit) / limit * 100.0
            logger.info(
                f"throttle '{label}': {mean:.1f} IOPS over {values.size} windows "
                f"vs limit {limit:g} ({error:+.1f} %)"
            )
            if abs(error) > float(tolerance_pct):
                problems.append(
                    f"throttle '{label}' at {begin:.1f}-{end:.1f} s: measured {mean:.1f} IOPS is "
                    f"{error:+.1f} % off the limit {limit:g} IOPS (tolerance ±{float(tolerance_pct):g} %)"
                )
        self._log(iops_series, {}, windows, [], "throttle check")
        if problems:
            fail("\n".join(problems))
        return measured
