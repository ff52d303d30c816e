"""Timeline charts of interval series as small PNGs, for embedding (base64) in Robot's log.html.

Charts are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas directly: no pyplot, no
``matplotlib.use()``, no change to rcParams, so drawing is safe inside Robot and in threads that
draw their own figures.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nvmechaos.analysis.series import IntervalSeries

FaultWindow = tuple[float, float, str]
"""(start in s, end in s, label) of a span to shade, e.g. when a fault was active."""

_MS_PER_UNIT: Mapping[str, float] = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1000.0}
_DIRECTION_COLOURS: Mapping[str, str] = {"read": "#1f77b4", "write": "#ff7f0e", "trim": "#2ca02c"}
_OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728")
_FAULT_COLOUR = "#d62728"


def render_timeline_png(
    iops_by_label: Mapping[str, IntervalSeries],
    latency_by_label: Mapping[str, IntervalSeries] | None = None,
    *,
    fault_windows: Sequence[FaultWindow] = (),
    title: str = "",
    width_px: int = 900,
    height_px: int = 500,
    dpi: int = 100,
    latency_log_scale: bool = False,
) -> bytes:
    """Draw IOPS (top) and latency in ms (bottom) over time and return the PNG's bytes.

    ``iops_by_label`` and ``latency_by_label`` map a legend label (e.g. "read", or "job1 write")
    to a series, such as :func:`~nvmechaos.analysis.intervals.read_series` returns. The top panel
    takes the unit of its series (IO/s, or KiB/s for bw series); latency series in ns, us, ms or s
    are drawn in ms. A series is drawn as steps: each value covers the window that ends at its
    time, and the line breaks where windows are missing (a latency series has no value for a
    window without I/O). A label keeps its colour in both panels (read blue, write orange, trim green).
    ``fault_windows`` are shaded in both panels and labelled at the top. A panel without series
    says so. At the default 900 x 500 px a chart is typically 25-60 KB.

    Raises:
        ValueError: a fault window ends before it starts or is not finite; the top series mix
            units; a latency series has a unit that is not a time; the size is not positive.
    """
    if width_px < 1 or height_px < 1 or dpi < 1:
        raise ValueError(f"chart size must be positive, not {width_px}x{height_px} px at {dpi} dpi")
    latency = latency_by_label or {}
    windows = [_check_window(window) for window in fault_windows]
    top_units = {series.unit for series in iops_by_label.values()}
    if len(top_units) > 1:
        raise ValueError(f"the top panel's series mix units: {', '.join(sorted(top_units))}")
    for label, series in latency.items():
        if series.unit not in _MS_PER_UNIT:
            raise ValueError(f"latency series '{label}' is in {series.unit}, not a time")

    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)  # attaches itself to the figure: Agg without pyplot or matplotlib.use()
    top, bottom = figure.subplots(2, 1, sharex=True)
    colours = _colours([*iops_by_label.items(), *latency.items()])

    unit = next(iter(top_units), "IO/s")
    for label, series in iops_by_label.items():
        _plot(top, series, series.values, label, colours[label])
    top.set_ylabel("IOPS" if unit == "IO/s" else unit)
    for label, series in latency.items():
        _plot(bottom, series, series.values * _MS_PER_UNIT[series.unit], label, colours[label])
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("time (s)")
    if latency_log_scale and latency:
        bottom.set_yscale("log")

    for axes, series_map in ((top, iops_by_label), (bottom, latency)):
        if not series_map:
            axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color="grey")
        elif not latency_log_scale or axes is top:
            axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3, linewidth=0.6)
        axes.tick_params(labelsize=8)
        axes.yaxis.label.set_size(9)
        for start, end, _ in windows:
            axes.axvspan(start, end, color=_FAULT_COLOUR, alpha=0.15, linewidth=0)
    for start, end, label in windows:
        if label:
            top.text(
                start + (end - start) / 2,
                1.0,
                label,
                transform=top.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
                color=_FAULT_COLOUR,
                clip_on=False,
            )
    handles = {*iops_by_label, *latency}
    if handles:
        top.legend(loc="best", fontsize=7, framealpha=0.7, ncol=min(4, len(colours)))
        if latency:
            bottom.legend(loc="best", fontsize=7, framealpha=0.7, ncol=min(4, len(latency)))
    bottom.xaxis.label.set_size(9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(pad=0.6, h_pad=1.2 if windows else 0.6)

    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out.getvalue()


def render_panels_png(
    panels: Sequence[tuple[str, Mapping[str, IntervalSeries]]],
    *,
    fault_windows: Sequence[FaultWindow] = (),
    title: str = "",
    width_px: int = 900,
    height_px: int = 420,
    dpi: int = 100,
) -> bytes:
    """Draw stacked panels sharing the time axis, each ``(y label, {legend label: series})``, with
    ``fault_windows`` shaded in all of them, and return the PNG's bytes (e.g. a drive's wear,
    temperature and free blocks under its fio chart).

    Raises:
        ValueError: no panel, a bad fault window, or a size that is not positive.
    """
    if not panels:
        raise ValueError("a chart needs at least one panel")
    if width_px < 1 or height_px < 1 or dpi < 1:
        raise ValueError(f"chart size must be positive, not {width_px}x{height_px} px at {dpi} dpi")
    windows = [_check_window(window) for window in fault_windows]
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    colours = iter(_OTHER_COLOURS * 4)
    for axes, (ylabel, series_map) in zip(axes_list, panels, strict=True):
        for label, series in series_map.items():
            _plot(axes, series, series.values, label, next(colours, "#000000"))
        if not series_map:
            axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color="grey")
        axes.set_ylabel(ylabel, fontsize=8)
        axes.grid(True, alpha=0.3, linewidth=0.6)
        axes.tick_params(labelsize=8)
        for start, end, _ in windows:
            axes.axvspan(start, end, color=_FAULT_COLOUR, alpha=0.15, linewidth=0)
        if len(series_map) > 1:
            axes.legend(loc="best", fontsize=7, framealpha=0.7)
    axes_list[-1].set_xlabel("time (s)", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(pad=0.6)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` in log.html."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _check_window(window: FaultWindow) -> FaultWindow:
    start, end, label = window
    start, end = float(start), float(end)
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"fault window '{label}' from {start} s to {end} s is not a time span")
    return start, end, str(label)


def _colours(items: Sequence[tuple[str, IntervalSeries]]) -> dict[str, str]:
    """One colour per label: the direction's when only one label has that direction."""
    colours: dict[str, str] = {}
    directions = [series.direction for label, series in dict(items).items()]
    others = iter(_OTHER_COLOURS * 4)
    for label, series in items:
        if label in colours:
            continue
        if series.direction in _DIRECTION_COLOURS and directions.count(series.direction) == 1:
            colours[label] = _DIRECTION_COLOURS[series.direction]
        else:
            colours[label] = next(others, "#000000")
    return colours


def _plot(
    axes: Axes, series: IntervalSeries, values: npt.NDArray[np.float64], label: str, colour: str
) -> None:
    x, y = _steps(series.times_s, values, series.window_ms / 1000.0)
    axes.plot(x, y, label=label, color=colour, linewidth=1.1)


def _steps(
    times: npt.NDArray[np.float64], values: npt.NDArray[np.float64], window_s: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Step coordinates: each value spans (time - window, time]; NaN breaks where windows are missing."""
    if times.size == 0:
        return np.zeros(0), np.zeros(0)
    x = np.stack([times - window_s, times], axis=1).ravel()
    y = np.repeat(values, 2)
    gaps = np.flatnonzero(times[1:] - window_s - times[:-1] > window_s * 0.5)
    if gaps.size:
        at = 2 * (gaps + 1)
        x = np.insert(x, at, np.nan)
        y = np.insert(y, at, np.nan)
    return x, y
