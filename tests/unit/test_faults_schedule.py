"""Schedules: the plan of apply/clear steps, and running it against a fake clock."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from nvmechaos.faults.base import Clock, FaultError, Injector, InjectorDiedError, fault_windows
from nvmechaos.faults.control import ErrorParams, FaultParamError, FaultParams, LatencyParams, Operation
from nvmechaos.faults.schedule import Schedule, Window, load_plan, periodic_windows, plan, repeated_fault
from nvmechaos.timeline import Timeline

SPIKE = LatencyParams(read=0.1)
ERRORS = ErrorParams(rate=0.5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


class FakeInjector(Injector):
    """Records what the server would be told; can 'die'."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__("fake", Timeline(clock=clock, wall_clock=clock))
        self.alive = True
        self.states: list[dict[str, FaultParams]] = []

    def _start(self) -> None:
        pass

    def _set(self, active: Mapping[str, FaultParams]) -> None:
        self.states.append(dict(active))

    def _stop(self) -> None:
        self.alive = False

    def is_alive(self) -> bool:
        return self.alive

    def death_message(self) -> str:
        return "fake died"


def test_periodic_plan() -> None:
    steps = list(plan(periodic_windows(SPIKE, duration=3, every=10, count=3)))
    assert [(s.at, s.action) for s in steps] == [
        (0, "apply"),
        (3, "clear"),
        (10, "apply"),
        (13, "clear"),
        (20, "apply"),
        (23, "clear"),
    ]


def test_back_to_back_windows_clear_before_apply() -> None:
    steps = list(plan(periodic_windows(SPIKE, duration=5, every=5, count=2)))
    assert [(s.at, s.action) for s in steps] == [(0, "apply"), (5, "clear"), (5, "apply"), (10, "clear")]


def test_windows_of_different_kinds_may_overlap() -> None:
    steps = list(plan([Window(0, 10, SPIKE), Window(2, 3, ERRORS)]))
    assert [(s.at, s.action, s.params.kind) for s in steps] == [
        (0, "apply", "latency"),
        (2, "apply", "errors"),
        (5, "clear", "errors"),
        (10, "clear", "latency"),
    ]


def test_overlapping_windows_of_one_kind_are_refused() -> None:
    with pytest.raises(FaultParamError, match="overlaps"):
        list(plan([Window(0, 10, SPIKE), Window(5, 1, SPIKE)]))
    with pytest.raises(FaultParamError, match="comes before"):
        list(plan([Window(5, 1, SPIKE), Window(0, 1, ERRORS)]))


@pytest.mark.parametrize(
    ("duration", "every", "count", "message"),
    [(0, 10, 1, "duration"), (3, 0, 1, "period"), (11, 10, 1, "longer than the period"), (3, 10, 0, "count")],
)
def test_bad_periodic(duration: float, every: float, count: int, message: str) -> None:
    with pytest.raises(FaultParamError, match=message):
        list(periodic_windows(SPIKE, duration, every, count))


def test_schedule_runs_on_plan_with_fake_clock() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    schedule = Schedule.periodic(injector, SPIKE, duration=3, every=10, count=2, clock=clock, wait=clock.wait)
    schedule.run()
    events = [(e.monotonic - 1000.0, e.kind, e.action) for e in injector.timeline]
    assert events == [
        (0.0, "injector", "start"),
        (0.0, "latency", "apply"),
        (3.0, "latency", "clear"),
        (10.0, "latency", "apply"),
        (13.0, "latency", "clear"),
    ]
    assert schedule.applied == 2
    assert schedule.error is None
    assert injector.states[-1] == {}


def test_schedule_keeps_to_plan_when_applies_are_slow() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    original = injector._set

    def slow_set(active: Mapping[str, FaultParams]) -> None:
        clock.now += 0.25  # each apply/clear takes 250 ms
        original(active)

    injector._set = slow_set  # type: ignore[method-assign]
    Schedule.periodic(injector, SPIKE, duration=1, every=2, count=3, clock=clock, wait=clock.wait).run()
    applies = [e.monotonic - 1000.0 for e in injector.timeline if e.action == "apply"]
    assert applies == pytest.approx([0.25, 2.25, 4.25])  # no drift


def test_stopped_schedule_clears_its_fault() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    calls = 0

    def wait(seconds: float) -> bool:
        nonlocal calls
        calls += 1
        clock.now += seconds
        return calls >= 2  # stopped while the first window is active

    schedule = Schedule.periodic(injector, SPIKE, duration=3, every=10, count=None, clock=clock, wait=wait)
    schedule.run()
    assert [e.action for e in injector.timeline] == ["start", "apply", "clear"]
    assert injector.active == {}


def test_schedule_records_a_dead_injector() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()

    def wait(seconds: float) -> bool:
        clock.now += seconds
        injector.alive = False
        return False

    schedule = Schedule.periodic(injector, SPIKE, duration=1, every=2, count=2, clock=clock, wait=wait)
    schedule.run()
    assert schedule.error == "fake died"
    assert schedule.finished.is_set()


def test_real_thread_schedule_stops_promptly() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    schedule = Schedule.periodic(injector, SPIKE, duration=30, every=60, name="s")
    schedule.start()
    assert schedule.join(0.2) is False
    schedule.stop(timeout=2)
    assert not schedule.is_running()
    assert injector.active == {}
    with pytest.raises(FaultError, match="already started"):
        schedule.start()


def test_injector_apply_with_duration_clears_itself() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    injector.apply(SPIKE, duration=0.05)
    assert injector.active == {"latency": SPIKE}
    for _ in range(100):
        if not injector.active:
            break
        time.sleep(0.01)
    assert injector.active == {}
    assert [e.action for e in injector.timeline] == ["start", "apply", "clear"]


def test_newer_apply_is_not_cleared_by_an_older_timer() -> None:
    injector = FakeInjector(FakeClock())
    injector.start()
    injector.apply(SPIKE, duration=0.05)
    other = LatencyParams(write=0.2)
    injector.apply(other)
    time.sleep(0.15)
    assert injector.active == {"latency": other}


def test_injector_state_errors() -> None:
    injector = FakeInjector(FakeClock())
    with pytest.raises(FaultError, match="not started"):
        injector.apply(SPIKE)
    injector.start()
    with pytest.raises(FaultParamError, match="unknown fault kind"):
        injector.clear("bogus")
    injector.alive = False
    with pytest.raises(InjectorDiedError, match="fake died"):
        injector.apply(SPIKE)
    assert injector.timeline[-1].action == "died"
    injector.stop()
    injector.stop()
    with pytest.raises(FaultError, match="stopped"):
        injector.apply(SPIKE)


def test_finite_plans_are_checked_when_the_schedule_is_made() -> None:
    injector = FakeInjector(FakeClock())
    with pytest.raises(FaultParamError, match="overlaps"):
        Schedule(injector, [Window(0, 10, SPIKE), Window(5, 1, SPIKE)])
    with pytest.raises(FaultParamError, match="longer than the period"):
        Schedule.periodic(injector, SPIKE, duration=11, every=10)


def test_fault_windows_from_the_timeline() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    clock.now = 1002.0
    injector.apply(SPIKE)
    clock.now = 1003.0
    injector.apply(ERRORS)
    clock.now = 1005.0
    injector.apply(LatencyParams(write=0.05))  # replaces the read spike
    clock.now = 1006.0
    injector.clear("latency")
    clock.now = 1008.0
    injector.stop()  # ends the error window
    windows = fault_windows(injector.timeline, origin=1000.0)
    assert windows == [
        (2.0, 5.0, "read 100 ms"),
        (3.0, 8.0, "EIO 50 % read"),
        (5.0, 6.0, "write 50 ms"),
    ]
    assert fault_windows(injector.timeline, origin=1000.0, clock="wall") == windows
    with pytest.raises(ValueError, match="clock"):
        fault_windows([], clock="tai")


def test_open_fault_windows_need_an_end() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    injector.apply(SPIKE)
    assert fault_windows(injector.timeline) == []
    assert fault_windows(injector.timeline, origin=1000.0, until=1004.0) == [(0.0, 4.0, "read 100 ms")]


def test_load_plan_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "windows:\n"
        "  - {at: 6s, duration: 1s, error_rate: 0.1, operation: write, errno: ENOSPC}\n"
        "  - {at: 2s, duration: 3s, read: 100ms, write: 50ms}\n",
        encoding="utf-8",
    )
    windows = load_plan(path)
    assert [(w.at, w.duration) for w in windows] == [(2.0, 3.0), (6.0, 1.0)]
    assert windows[0].params == LatencyParams(read=0.1, write=0.05)
    assert windows[1].params == ErrorParams(rate=0.1, operations=("write",), errno=28)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {at: 1s, duration: 1s, red: 1ms}", r"plan.yaml, window 1: unknown key 'red'"),
        ("- {at: 1s, read: 1ms}", r"window 1: key 'duration' is missing"),
        ("- {at: 1s, duration: 1s}", r"window 1: no fault"),
        ("- {at: 1s, duration: 1s, read: -1ms}", r"window 1: read delay '-1ms' is negative"),
        ("- {at: 1s, duration: 1s, read: 100}", r"window 1: read delay '100' has no unit: write 100ms"),
        ("- {at: 1s, duration: 2h, read: 1ms}", r"window 1: duration '2h' is longer than the 3600 s"),
        ("- {at: 1s, duration: soon, read: 1ms}", r"window 1: duration 'soon' is not a time"),
        ("- {at: 1s, duration: 7200, read: 1ms}", r"window 1: duration '7200' is longer than the 3600 s"),
        ("- {at: 1s, duration: 1s, error_rate: 0.1, errno: EBOGUS}", r"unknown errno name 'EBOGUS'"),
        ("- {at: 1s, duration: 1s, read: 1ms, error_rate: 0.1}", r"not both"),
        ("- {at: 0s, duration: 5s, read: 1ms}\n- {at: 1s, duration: 1s, write: 1ms}", r"overlaps"),
        ("[]", r"non-empty list"),
        ("windows: [", r"not valid YAML"),
    ],
)
def test_bad_plans_name_file_window_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FaultParamError, match=message):
        load_plan(path)


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(FaultParamError, match="cannot read fault plan"):
        load_plan(tmp_path / "nope.yaml")


def test_a_latency_compensation_does_not_end_a_spike_window() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    clock.now = 1001.0
    injector.apply(SPIKE)
    clock.now = 1002.0
    injector.log.record("latency", "compensation", {"seconds": 0.001})
    clock.now = 1004.0
    injector.clear("latency")
    assert fault_windows(injector.timeline, origin=1000.0) == [(1.0, 4.0, "read 100 ms")]
    assert fault_windows(injector.timeline, origin=1000.0, clock=Clock.wall) == [(1.0, 4.0, "read 100 ms")]


def test_apply_checks_its_duration() -> None:
    injector = FakeInjector(FakeClock())
    injector.start()
    with pytest.raises(FaultParamError, match=r"^duration '0' is not positive$"):
        injector.apply(SPIKE, duration=0)
    with pytest.raises(FaultParamError, match=r"^duration '-1' is negative$"):
        injector.apply(SPIKE, duration=-1)
    with pytest.raises(FaultParamError, match=r"^duration '7200' is longer than the 3600 s"):
        injector.apply(SPIKE, duration=7200)
    assert injector.active == {}


def test_a_dead_injector_says_so_when_asked() -> None:
    injector = FakeInjector(FakeClock())
    injector.start()
    injector.ensure_alive()
    injector.alive = False
    with pytest.raises(InjectorDiedError, match=r"^fake died$"):
        injector.ensure_alive()
    assert injector.timeline[-1].action == "start"  # asking records nothing
    with pytest.raises(FaultError, match=r"^fake has no latency compensation$"):
        injector.set_latency_compensation(0.001)


def test_timer_errors_are_raised_after_stop() -> None:
    injector = FakeInjector(FakeClock())
    injector.start()
    injector.check_timers()
    injector.apply(SPIKE, duration=0.05)
    injector.alive = False
    for _ in range(100):
        if injector.timer_errors:
            break
        time.sleep(0.01)
    injector.stop()
    with pytest.raises(FaultError, match=r"^fake: clearing latency after 0.05 s failed: fake died$"):
        injector.check_timers()


def test_the_fault_a_schedule_repeats() -> None:
    assert repeated_fault(delay="10ms") == LatencyParams(read=0.01, write=0.01, flush=0.01)
    assert repeated_fault(delay="5ms", operation=Operation.trim) == LatencyParams(trim=0.005)
    assert repeated_fault(error_rate="20%", operation="write") == ErrorParams(0.2, ("write",))
    for arguments, message in [
        ({}, "give exactly one of delay= (latency) and error_rate= (I/O errors)"),
        ({"delay": "1ms", "error_rate": "0.1"}, "give exactly one of"),
        ({"delay": "1ms", "errno": "EIO"}, "errno belongs to error_rate schedules, not to delay"),
        ({"delay": "0ms"}, "delay '0ms' adds no latency"),
        ({"delay": "100"}, "delay '100' has no unit"),
        ({"error_rate": "0.1", "errno": "EBOGUS"}, "unknown errno name 'EBOGUS'"),
    ]:
        with pytest.raises(FaultParamError, match=re.escape(message)):
            repeated_fault(**arguments)  # type: ignore[arg-type]


def test_periodic_schedules_check_their_times() -> None:
    injector = FakeInjector(FakeClock())
    with pytest.raises(FaultParamError, match=r"^every '0' is not positive$"):
        Schedule.periodic(injector, SPIKE, duration=1, every=0)
    with pytest.raises(FaultParamError, match=r"^duration '5000' is longer than the 3600 s"):
        Schedule.periodic(injector, SPIKE, duration=5000, every=6000)
    with pytest.raises(FaultParamError, match=r"^start_after '-1' is negative$"):
        Schedule.periodic(injector, SPIKE, duration=1, every=2, start_after=-1)
    assert Schedule.periodic(injector, SPIKE, duration=1, every=2, start_after=0).name == "schedule"


def test_waiting_for_a_schedule() -> None:
    clock = FakeClock()
    injector = FakeInjector(clock)
    injector.start()
    schedule = Schedule.periodic(
        injector, SPIKE, duration=3, every=10, count=1, name="s", clock=clock, wait=clock.wait
    )
    with pytest.raises(FaultParamError, match=r"^timeout 0 s is not positive$"):
        schedule.wait(0)
    with pytest.raises(FaultError, match=r"^s was not done within 0.01 s$"):
        schedule.wait(0.01)
    schedule.run()
    schedule.wait(0.01)
    schedule.check()
    dying = Schedule.periodic(FakeInjector(clock), SPIKE, duration=1, every=2, count=1, name="d")
    dying.run()  # the injector was never started
    with pytest.raises(FaultError, match=r"^d stopped: fake is not started$"):
        dying.wait(1)
