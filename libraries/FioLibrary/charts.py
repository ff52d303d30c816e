"""The chart of a run for the log: IOPS and latency over time, from fio's interval logs."""

from __future__ import annotations

from nvmechaos.analysis.charts import png_data_uri, render_timeline_png
from nvmechaos.analysis.series import IntervalSeries
from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.model import FioResult
from nvmechaos.verdicts.consistency import series_by_job


def _labelled(by_job: dict[str, dict[str, IntervalSeries]]) -> dict[str, IntervalSeries]:
    single = len(by_job) == 1
    return {
        (direction if single else f"{job} {direction}"): series
        for job, directions in by_job.items()
        for direction, series in directions.items()
    }


def timeline_img(result: FioResult) -> str:
    """An ``<img>`` tag with the chart embedded, or a note when the run left no usable logs."""
    try:
        iops = _labelled(series_by_job(result, "iops"))
        latency = _labelled(series_by_job(result, "clat"))
    except NvmeChaosError as error:
        return f"<i>No chart: {error}</i>"
    if not iops:
        return ""
    png = render_timeline_png(iops, latency, title=result.description or "fio")
    return f'<img src="{png_data_uri(png)}" alt="IOPS and latency over time" width="900">'
