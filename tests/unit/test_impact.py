"""Unit tests of the fault impact engine on synthetic interval series."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest

from nvmechaos.analysis.impact import (
    ImpactError,
    analyse,
    fault_windows_from_events,
    violations,
)
from nvmechaos.analysis.intervals import IntervalSeries
from nvmechaos.faults.base import FaultEvent


def series(
    values: list[float], kind: str = "iops", unit: str = "IO/s", window_ms: int = 1000
) -> IntervalSeries:
    times = np.arange(1, len(values) + 1, dtype=np.float64) * window_ms / 1000.0
    return IntervalSeries(kind, "read", unit, window_ms, times, np.asarray(values, dtype=np.float64))


def event(kind: str, action: str, at: float, source: str = "inj", **params: object) -> FaultEvent:
    return FaultEvent(kind, action, MappingProxyType(dict(params)), at, at + 1e9, source)


def test_dip_depth_and_recovery() -> None:
    # 1000 IOPS for 5 s, a fault from 5 to 8 s (windows 6..8 dip), back at window 10 (ends 10 s).
    iops = series([1000] * 5 + [100, 50, 200] + [700, 980, 1010, 1000, 995])
    lat = series([2.0] * 5 + [40, 90, 20] + [5, 2.1, 2.0, 2.0, 2.0], kind="clat", unit="ms")
    [impact] = analyse(iops, [(5.0, 8.0, "spike")], lat, baseline_s=5, tolerance_pct=10, recovery_windows=2)
    assert impact.baseline_iops == pytest.approx(1000)
    assert impact.baseline_windows == 5
    assert impact.min_iops == 50
    assert impact.iops_drop_pct == pytest.approx(95)
    assert impact.max_latency_ms == pytest.approx(90)
    assert impact.latency_increase_pct == pytest.approx(4400)
    # (8,9] is 700: bad; (9,10] 980 and 2.1 ms good, (10,11] good too: recovered at the end of (9,10].
    assert impact.recovered
    assert impact.recovery_s == pytest.approx(2.0)


def test_never_recovered_and_violation_lines() -> None:
    iops = series([1000] * 5 + [0, 0] + [400] * 5)
    [impact] = analyse(iops, [(5.0, 7.0, "unplug nvme0")], baseline_s=3)
    assert not impact.recovered and impact.recovery_s is None
    assert impact.observed_after_s == pytest.approx(5.0)
    lines = violations([impact], {"max_recovery_s": 5, "max_iops_drop_pct": 50, "min_iops": 10})
    assert len(lines) == 3
    assert "never recovered" in lines[0] and "max_recovery_s 5 s" in lines[0]
    assert "max_iops_drop_pct is 100.0 %, above the limit 50 %" in lines[1]
    assert "min_iops is 0.0 IOPS, below the limit 10 IOPS" in lines[2]
    assert all("fault 'unplug nvme0' at 5.0-7.0 s" in line for line in lines)


def test_within_limits_gives_no_violation() -> None:
    iops = series([1000] * 5 + [900] + [1000] * 4)
    lat = series([1.0] * 5 + [1.5] + [1.0] * 4, kind="clat", unit="ms")
    impacts = analyse(iops, [(5.0, 6.0, "small")], lat)
    assert violations(impacts, {"max_iops_drop_pct": 20, "max_latency_ms": 2, "max_recovery_s": 3}) == []
    assert impacts[0].recovery_s == pytest.approx(1.0)


def test_latency_in_ns_and_partial_windows() -> None:
    iops = series([500] * 6 + [250, 250] + [500] * 4)
    lat = series([1e6] * 6 + [101e6, 51e6] + [1e6] * 4, kind="clat", unit="ns")
    # A fault from 5.5 to 7.2 s overlaps windows (5,6], (6,7], (7,8]; baseline: (2,3], (3,4], (4,5].
    [impact] = analyse(iops, [(5.5, 7.2, "x")], lat, baseline_s=4)
    assert impact.baseline_windows == 3
    assert impact.during_windows == 3
    assert impact.max_latency_ms == pytest.approx(101)
    assert impact.baseline_latency_ms == pytest.approx(1)


def test_second_fault_baseline_starts_after_first() -> None:
    iops = series([1000] * 4 + [10] + [1000] * 4 + [10] + [1000] * 3)
    impacts = analyse(iops, [(4.0, 5.0, "a"), (9.0, 10.0, "b")], baseline_s=10)
    assert [i.baseline_windows for i in impacts] == [4, 4]
    assert all(i.baseline_iops == pytest.approx(1000) for i in impacts)


def test_no_baseline_is_an_error() -> None:
    with pytest.raises(ImpactError, match="no complete 1 s window in the 5 s before it"):
        analyse(series([1000] * 5), [(0.5, 2.0, "early")])


def test_bad_parameters() -> None:
    iops = series([1.0] * 5)
    with pytest.raises(ImpactError, match="baseline"):
        analyse(iops, [(3.0, 4.0, "x")], baseline_s=0)
    with pytest.raises(ImpactError, match="ends at"):
        analyse(iops, [(3.0, 2.0, "x")])
    with pytest.raises(ImpactError, match="unknown impact metric"):
        violations([], {"max_bogus": 1})


def test_unmeasurable_value_breaks_nothing() -> None:
    iops = series([1000] * 5 + [1000])
    [impact] = analyse(iops, [(5.0, 6.0, "x")])
    assert math.isnan(impact.max_latency_ms)
    assert violations([impact], {"max_latency_ms": 1}) == []


def test_windows_from_mixed_events() -> None:
    events = [
        event("injector", "start", 99.0),
        event("latency", "apply", 102.0, read=0.1),
        event("latency", "clear", 105.0),
        event("hotplug", "apply", 106.0, "qmp:vm", device="nvme0"),
        event("hotplug", "deleted", 106.4, "qmp:vm", device="nvme0"),
        event("hotplug", "plug", 107.0, "qmp:vm", device="nvme0"),
        event("hotplug", "clear", 107.2, "qmp:vm", device="nvme0"),
        event("throttle", "apply", 108.0, "qmp:vm", device="nvme0", **{"iops-total": 200}),
        event("errors", "apply", 109.0, rate=1.0, operations=["read"], errno="EIO"),
        event("injector", "stop", 110.0),
    ]
    windows = fault_windows_from_events(events, origin=100.0, until=111.0)
    assert windows == [
        (2.0, 5.0, "read 100 ms"),
        (6.0, pytest.approx(7.2), "unplug nvme0"),
        (8.0, 11.0, "throttle iops-total 200"),
        (9.0, 10.0, "EIO 100 % read"),
    ]
    assert fault_windows_from_events(events, origin=100.0)[-1] == (9.0, 10.0, "EIO 100 % read")


def test_better_than_baseline_counts_as_recovered() -> None:
    iops = series([1000] * 4 + [300] + [1300, 1250, 1280])
    [impact] = analyse(iops, [(4.0, 5.0, "throttle")])
    assert impact.recovery_s == pytest.approx(1.0)


def test_sub_millisecond_latency_recovers_within_the_slack() -> None:
    iops = series([1000] * 4 + [10] + [1000] * 3)
    lat = series([0.2] * 4 + [50] + [0.5, 0.5, 0.5], kind="clat", unit="ms")
    assert analyse(iops, [(4.0, 5.0, "spike")], lat)[0].recovery_s == pytest.approx(1.0)
    assert analyse(iops, [(4.0, 5.0, "spike")], lat, latency_slack_ms=0)[0].recovery_s is None


def test_a_good_window_alone_is_not_recovery() -> None:
    iops = series([1000] * 4 + [0] + [1000, 100, 1000, 1000])
    [impact] = analyse(iops, [(4.0, 5.0, "x")], recovery_windows=2)
    assert impact.recovery_s == pytest.approx(3.0)  # (5,6] good but (6,7] not: (7,8] and (8,9] count
