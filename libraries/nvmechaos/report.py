"""HTML fragments for Robot's log: tables of a run's figures, a verdict, a timeline and fault impacts."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from html import escape

from nvmechaos.analysis.impact import FaultImpact
from nvmechaos.analysis.outage import FaultOutage
from nvmechaos.fio.model import FioResult, LatencyStats
from nvmechaos.timeline import Event
from nvmechaos.verdicts.profiles import METRICS
from nvmechaos.verdicts.thresholds import Verdict

_TABLE = (
    '<table style="border-collapse:collapse;font-size:12px" border="1" cellpadding="3">'
    "<tr>{head}</tr>{rows}</table>"
)


def _ms(value_ns: float | None) -> str:
    return "–" if value_ns is None else f"{value_ns / 1e6:.3f}"


def result_table_html(result: FioResult) -> str:
    """One row per job and direction: IOPS, MB/s, mean/max latency and percentiles in ms."""
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in (
            "job",
            "dir",
            "IOPS",
            "MB/s",
            "I/Os",
            "mean ms",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "p99.99 ms",
            "max ms",
            "error",
        )
    )
    rows = []
    for job in result.jobs:
        directions = job.active_directions
        if not directions:
            rows.append(f"<tr><td>{escape(job.name)}</td><td colspan=10>no I/O</td><td>{job.error}</td></tr>")
        for direction in directions:
            stats = direction.completion_latency
            total = direction.lat or direction.clat

            def pct(percent: float, stats: LatencyStats | None = stats) -> str:
                return _ms(stats.percentile(percent) if stats is not None else None)

            cells = [
                job.name,
                direction.direction,
                f"{direction.iops:,.0f}",
                f"{direction.bw_bytes / 1e6:,.1f}",
                f"{direction.total_ios:,}",
                _ms(total.mean_ns if total else None),
                pct(50.0),
                pct(99.0),
                pct(99.9),
                pct(99.99),
                _ms(total.max_ns if total else None),
                str(job.error),
            ]
            rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    return _TABLE.format(head=head, rows="".join(rows))


def verdict_table_html(verdict: Verdict) -> str:
    """Every check with its limit, measured value and outcome; failures first."""
    head = "".join(f"<th>{escape(h)}</th>" for h in ("job", "dir", "metric", "limit", "measured", ""))
    rows = []
    for check in sorted(verdict.checks, key=lambda c: c.passed):
        unit = METRICS[check.metric].unit if check.metric in METRICS else ""
        measured = "–" if check.measured is None else f"{check.measured:,.3f}"
        colour = "#dfd" if check.passed else "#fdd"
        cells = [
            check.job,
            check.direction,
            check.metric,
            f"{check.limit:,.3f} {unit}".strip(),
            f"{measured} {unit}".strip(),
            "pass" if check.passed else "FAIL",
        ]
        rows.append(
            f'<tr style="background:{colour}">' + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
        )
    for problem in verdict.problems:
        rows.append(f'<tr style="background:#fdd"><td colspan=6>{escape(problem)}</td></tr>')
    return _TABLE.format(head=head, rows="".join(rows))


def timeline_table_html(events: Sequence[Event]) -> str:
    """One table for timeline events of any source: seconds from the first event on the monotonic
    clock, wall-clock time, source, kind, action and details."""
    if not events:
        return "<p>No timeline events.</p>"
    start = events[0].monotonic
    rows = "".join(
        f"<tr><td>{event.monotonic - start:.3f}</td>"
        f"<td>{time.strftime('%H:%M:%S', time.localtime(event.wall))}.{int(event.wall % 1 * 1000):03d}</td>"
        f"<td>{escape(event.source)}</td><td>{escape(event.kind)}</td>"
        f"<td>{escape(event.action)}</td>"
        f"<td>{escape(json.dumps(dict(event.params), default=str))}</td></tr>"
        for event in events
    )
    return _TABLE.format(
        head="<th>t (s)</th><th>wall</th><th>source</th><th>kind</th><th>action</th><th>details</th>",
        rows=rows,
    )


def outage_table_html(outages: Sequence[FaultOutage], origin: str) -> str:
    """One row per fault (window, longest completion gap, resumed, errors, restarts) for Robot's
    log; empty without outages."""
    if not outages:
        return ""
    rows = "".join(
        f"<tr><td>{escape(o.label)}</td><td>{o.start_s:.2f}-{o.end_s:.2f}</td><td>{o.gap_ms:.0f}</td>"
        f"<td>{o.gap_from_s:.2f}-{o.gap_to_s:.2f}</td>"
        f"<td>{f'{o.resumed_s:.2f}' if o.resumed_s is not None else 'never'}</td>"
        f"<td>{o.io_errors}</td><td>{o.restarts}</td></tr>"
        for o in outages
    )
    return (
        f"<b>Fault outage</b> (times in s from fio's start; fault times from the host clock, {origin}; "
        "gap = longest time without an I/O completion; resumed = from the fault's start to the first "
        "completion after it)<table border='1'><tr><th>fault</th><th>window (s)</th><th>gap ms</th>"
        "<th>gap (s)</th><th>resumed after s</th><th>I/O errors</th><th>restarts</th></tr>"
        f"{rows}</table>"
    )


def impact_table_html(impacts: Sequence[FaultImpact], origin: str) -> str:
    """One row per fault (window, baseline band, depth, recovery) for Robot's log; ``origin`` says
    how fio's start was placed on the host clock. Empty without impacts."""
    if not impacts:
        return ""

    def number(value: float | None, digits: int = 1) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    def out(flag: bool) -> str:
        return " (out of band)" if flag else " (in band)"

    rows = "".join(
        f"<tr><td>{escape(i.label)}</td><td>{i.start_s:.2f}-{i.end_s:.2f}</td>"
        f"<td>{number(i.baseline_iops, 0)} ± {number(i.baseline_iops_sd, 0)} ({i.baseline_windows})</td>"
        f"<td>≥ {number(i.iops_floor, 0)}</td>"
        f"<td>{number(i.min_iops, 0)}{out(i.iops_dip_outside_band)}</td>"
        f"<td>{number(i.iops_drop_pct)}</td>"
        f"<td>{number(i.baseline_latency_ms, 2)} ± {number(i.baseline_latency_sd_ms, 2)}</td>"
        f"<td>≤ {number(i.latency_ceiling_ms, 2)}</td>"
        f"<td>{number(i.max_latency_ms, 2)}{out(i.latency_spike_outside_band)}</td>"
        f"<td>{number(i.recovery_s) if i.recovered else 'never'}</td>"
        f"<td>{number(i.observed_after_s)}</td></tr>"
        for i in impacts
    )
    return (
        f"<b>Fault impact</b> (times in s from fio's start; fault times from the host clock, {origin}; "
        "baseline mean ± SD (windows); recovered = back within the baseline's noise band)"
        "<table border='1'><tr><th>fault</th><th>window (s)</th><th>baseline IOPS</th>"
        "<th>IOPS band</th><th>min IOPS</th><th>IOPS drop %</th><th>baseline latency ms</th>"
        "<th>latency band ms</th><th>max latency ms</th><th>recovery s</th>"
        "<th>observed after s</th></tr>"
        f"{rows}</table>"
    )


def key_value_table_html(title: str, values: Mapping[str, object]) -> str:
    """A two-column table (key, value) under ``title``: a drive's health or personality."""
    rows = "".join(
        f"<tr><td>{escape(str(key))}</td><td>{escape(str(value))}</td></tr>" for key, value in values.items()
    )
    return f"<b>{escape(title)}</b>" + _TABLE.format(head="<th>key</th><th>value</th>", rows=rows)
