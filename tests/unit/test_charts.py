"""Unit tests of the timeline chart: a small PNG of real fio interval series, drawn without pyplot."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nvmechaos.analysis.charts import _steps, png_data_uri, render_timeline_png
from nvmechaos.analysis.latency import summarise_latency_log
from nvmechaos.analysis.series import IntervalSeries, read_series

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def averaged() -> tuple[dict[str, IntervalSeries], dict[str, IntervalSeries]]:
    iops = read_series(sorted((LOGS / "averaged").glob("fio_iops.*.log")), "iops")
    lat = read_series(sorted((LOGS / "averaged").glob("fio_clat.*.log")), "clat")
    return iops, lat


def test_timeline_of_real_logs_with_fault_windows() -> None:
    iops, lat = averaged()
    png = render_timeline_png(
        iops, lat, fault_windows=[(1.0, 1.6, "power cut"), (2.2, 2.2, "")], title="randrw, 2 threads"
    )
    assert png_size(png) == (900, 500)
    assert 5_000 < len(png) < 100_000
    assert png_data_uri(png).startswith("data:image/png;base64,iVBORw0KGgo")


def test_stall_per_io_series_and_custom_size() -> None:
    iops = read_series([LOGS / "stall" / "fio_iops.1.log"], "iops")
    lat = read_series([LOGS / "stall" / "fio_lat.1.log"], "lat")
    windows = [(1.25, 2.75, "thinktime")]
    png = render_timeline_png(iops, lat, fault_windows=windows, width_px=600, height_px=300)
    assert png_size(png) == (600, 300)
    summary = summarise_latency_log(LOGS / "per_io_offset" / "fio_lat.1.log")
    per_second = {name: d.per_second for name, d in summary.directions.items()}
    counts = {name: d.per_second_count for name, d in summary.directions.items()}
    assert png_size(render_timeline_png(counts, per_second, latency_log_scale=True)) == (900, 500)


def test_empty_panels_and_bandwidth_on_top() -> None:
    assert png_size(render_timeline_png({}, None)) == (900, 500)
    bw = read_series([LOGS / "averaged" / "fio_bw.1.log"], "bw")
    assert png_size(render_timeline_png(bw)) == (900, 500)


def test_same_label_same_colour_and_labels_sharing_a_direction() -> None:
    iops, lat = averaged()
    jobs = {"job1 read": iops["read"], "job2 read": iops["read"]}
    assert png_size(render_timeline_png(jobs, {"job1 read": lat["read"]})) == (900, 500)


def test_steps_cover_each_window_and_break_at_gaps() -> None:
    x, y = _steps(np.array([0.5, 1.0, 2.5]), np.array([1.0, 2.0, 3.0]), 0.5)
    assert x[:4].tolist() == [0.0, 0.5, 0.5, 1.0]
    assert y[:4].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert np.isnan(x[4]) and x[5:].tolist() == [2.0, 2.5]
    empty_x, empty_y = _steps(np.zeros(0), np.zeros(0), 1.0)
    assert empty_x.size == empty_y.size == 0


def test_invalid_arguments() -> None:
    iops, lat = averaged()
    with pytest.raises(ValueError, match=r"fault window 'bad' from 3\.0 s to 1\.0 s"):
        render_timeline_png(iops, lat, fault_windows=[(3.0, 1.0, "bad")])
    with pytest.raises(ValueError, match="not a time span"):
        render_timeline_png(iops, lat, fault_windows=[(float("nan"), 1.0, "nan")])
    bw = read_series([LOGS / "averaged" / "fio_bw.1.log"], "bw")
    with pytest.raises(ValueError, match="mix units"):
        render_timeline_png({"iops": iops["read"], "bw": bw["read"]})
    with pytest.raises(ValueError, match="is in IO/s, not a time"):
        render_timeline_png(iops, {"oops": iops["read"]})
    with pytest.raises(ValueError, match="must be positive"):
        render_timeline_png(iops, width_px=0)


def test_no_pyplot_and_no_global_state() -> None:
    """Drawing leaves pyplot unimported and rcParams (the backend included) as they were."""
    code = """
import sys, matplotlib
from pathlib import Path
def state():  # dict.items reads the raw values: resolving the backend would import pyplot
    return dict(dict.items(matplotlib.rcParams))
before = state()
from nvmechaos.analysis.charts import render_timeline_png
from nvmechaos.analysis.series import read_series
logs = sorted(Path(sys.argv[1]).glob("fio_iops.*.log"))
render_timeline_png(read_series(logs, "iops"), fault_windows=[(1, 2, "x")])
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert state() == before, "rcParams changed"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(LOGS / "averaged")], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
