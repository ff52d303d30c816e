"""DriveLibrary's shape (keywords, examples, a constructor that does nothing) and the pure logic
under its verdicts: health problems, health deltas, the write cliff of an IOPS series."""

from __future__ import annotations

import numpy as np
import pytest

from DriveLibrary import DriveLibrary
from nvmechaos.analysis.charts import render_panels_png
from nvmechaos.analysis.series import AnalysisError, IntervalSeries, drive_sample_series
from nvmechaos.analysis.steady import write_cliff
from nvmechaos.process import REGISTRY
from nvmechaos.verdicts.health import describe_warning, health_delta, health_problems


def test_keywords_have_examples_and_the_library_is_its_own_listener() -> None:
    library = DriveLibrary()
    names = library.get_keyword_names()
    assert set(names) == {
        "start_emulated_drive",
        "get_drive_health",
        "drive_health_should_be_ok",
        "get_drive_events",
        "stop_emulated_drive",
        "write_cliff_should_be_seen",
        "log_drive_states_chart",
        "drive_event_should_have_happened",
        "drive_wear_should_have_grown",
    }
    for name in names:
        assert "Example" in library.get_keyword_documentation(name), name
    listeners = library.ROBOT_LIBRARY_LISTENER
    assert library is listeners or library in listeners
    assert not REGISTRY.running()


def test_a_wrong_handle_is_one_line() -> None:
    with pytest.raises(AssertionError, match=r"^'x' is not an emulated drive \(use the handle"):
        DriveLibrary().run_keyword("get_drive_health", ("x",), {})


def test_health_problems_name_every_bad_field() -> None:
    health = {
        "critical_warning": 0x06,
        "avail_spare": 5,
        "spare_thresh": 10,
        "percent_used": 101,
        "media_errors": 3,
        "temperature": 361,
    }
    assert health_problems(health, max_percent_used=99, max_media_errors=0, max_temperature_c=80) == [
        "critical_warning 0x06 (temperature above threshold, reliability degraded)",
        "avail_spare 5 % < spare_thresh 10 %",
        "percent_used 101 % > 99 %",
        "media_errors 3 > 0",
        "temperature 87.9 °C > 80 °C",
    ]
    good = {
        "critical_warning": 0,
        "avail_spare": 100,
        "spare_thresh": 10,
        "percent_used": 3,
        "media_errors": 0,
    }
    assert health_problems(good, max_percent_used=99, max_media_errors=0, max_temperature_c=None) == []
    assert describe_warning(0) == "0x00 (none)"


def test_health_delta_keeps_numbers_only() -> None:
    before = {"percent_used": 1, "gc_active": False, "temperature_c": 35.0, "name": "x"}
    after = {"percent_used": 4, "gc_active": True, "temperature_c": 41.5, "name": "x"}
    assert health_delta(before, after) == {"percent_used": 3, "temperature_c": 6.5}


def series(values: list[float]) -> IntervalSeries:
    times = np.arange(1, len(values) + 1, dtype=np.float64)
    return IntervalSeries("iops", "write", "IOPS", 1000, times, np.asarray(values, dtype=np.float64))


def test_write_cliff_compares_the_first_and_last_seconds() -> None:
    # fio's first window (start-up) and last (cut short) are left out
    cliff = write_cliff(series([50] + [4000] * 5 + [2000, 1500] + [1000] * 6 + [10]), head_s=3, tail_s=4)
    assert cliff.fob_iops == 4000 and cliff.steady_iops == 1000 and cliff.ratio == 4
    assert cliff.fob_window == (2.0, 4.0) and cliff.steady_window == (11.0, 14.0)
    assert cliff.cliff_at_s == 7.0  # the first window below (4000 + 1000) / 2
    flat = write_cliff(series([50] + [3000] * 10 + [10]), head_s=3, tail_s=3)
    assert flat.ratio == 1 and flat.cliff_at_s is None
    epoch = series([50] + [4000] * 5 + [1000] * 6 + [10])
    stamped = IntervalSeries("iops", "write", "IOPS", 1000, epoch.times_s + 1.8e9, epoch.values)
    assert write_cliff(stamped, 3, 4).cliff_at_s == 7.0  # epoch-stamped logs: seconds from fio's start


def test_write_cliff_needs_two_parts_that_do_not_overlap() -> None:
    with pytest.raises(AnalysisError, match="at least 4 full IOPS windows"):
        write_cliff(series([1, 2, 3, 4]), 1, 1)
    with pytest.raises(
        AnalysisError, match=r"too short for a 5 s fresh-out-of-box part and a 5 s steady part"
    ):
        write_cliff(series([1] * 8), 5, 5)


def test_drive_samples_become_series_on_fios_time_axis_and_a_chart() -> None:
    samples = [
        {"monotonic": 100.0 + t, "wear_pct": 0.1 * t, "temperature_c": 35 + t, "free_blocks_pct": 50 - t}
        for t in range(5)
    ]
    health = drive_sample_series(samples, origin=101.0)
    assert list(health["wear_pct"].times_s) == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert health["temperature_c"].values[-1] == 39 and health["temperature_c"].unit == "°C"
    png = render_panels_png(
        [("wear", {"wear": health["wear_pct"]}), ("temperature", {"t": health["temperature_c"]})],
        fault_windows=[(1.0, 2.5, "GC")],
    )
    assert png.startswith(b"\x89PNG")
    assert drive_sample_series([], 0.0)["wear_pct"].values.size == 0
    with pytest.raises(ValueError, match="at least one panel"):
        render_panels_png([])
