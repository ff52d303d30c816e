"""HTML for the log of a fio run: links to the files of its run folder, and a chart of IOPS and
latency over time from its interval logs (its table of figures is in :mod:`nvmechaos.report`).

Links are made by the caller's ``link`` function, which knows where the log that shows them lives.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

from nvmechaos.analysis.series import IntervalSeries
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.model import FioResult
from nvmechaos.verdicts.consistency import series_by_job


def run_folder_html(run_dir: Path, link: Callable[[Path], str]) -> str:
    """A line linking ``run_dir`` and each file in it but the interval logs (many, and in the
    chart); "" when the folder does not exist."""
    if not run_dir.is_dir():
        return ""
    links = " ".join(
        f'<a href="{escape(link(path))}">{escape(path.name)}</a>'
        for path in sorted(run_dir.iterdir())
        if path.is_file() and path.suffix != ".log"
    )
    return f'Run folder <a href="{escape(link(run_dir))}">{escape(run_dir.name)}</a>: {links}'


def result_chart_html(result: FioResult) -> str:
    """An ``<img>`` of IOPS and latency over time, embedded; a note when the run's logs cannot be
    read; "" when it left no interval logs."""
    try:
        iops = _labelled(series_by_job(result, "iops"))
        latency = _labelled(series_by_job(result, "clat"))
    except NvmeChaosError as error:
        return f"<i>No chart: {error}</i>"
    if not iops:
        return ""
    # matplotlib takes a second to import: only runs that draw a chart pay for it.
    from nvmechaos.analysis.charts import png_data_uri, render_timeline_png  # noqa: PLC0415

    png = render_timeline_png(iops, latency, title=result.description or "fio")
    return f'<img src="{png_data_uri(png)}" alt="IOPS and latency over time" width="900">'


def _labelled(by_job: dict[str, dict[str, IntervalSeries]]) -> dict[str, IntervalSeries]:
    """One series per line of the chart: named by direction alone when the result has one job."""
    single = len(by_job) == 1
    return {
        (direction if single else f"{job} {direction}"): series
        for job, directions in by_job.items()
        for direction, series in directions.items()
    }
