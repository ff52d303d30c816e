"""Fault parameters and the control file: parsing, validation, atomic replace, decisions."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from nvmechaos.faults.control import (
    OPERATIONS,
    ErrorParams,
    FaultParamError,
    LatencyParams,
    Operation,
    check_seconds,
    parse_delay,
    parse_duration,
    parse_errno,
    parse_operations,
    parse_rate,
    parse_size,
)
from nvmechaos.faults.controlfile import NBD_ERRNOS, ControlReader, ControlState, Sleeper, write_control


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100ms", 0.1), ("3s", 3.0), ("1.5", 1.5), ("250us", 0.00025), (" 2 s ", 2.0), ("1m", 60.0), (0.2, 0.2)],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("text", ["-100ms", "abc", "10 parsecs", "", -1, float("nan"), True, "7200s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(FaultParamError):
        parse_duration(text)  # type: ignore[arg-type]


def test_negative_delay_names_the_operation() -> None:
    with pytest.raises(FaultParamError, match="read delay '-5ms' is negative"):
        LatencyParams.parse(read="-5ms")
    with pytest.raises(FaultParamError, match="write delay"):
        LatencyParams(write=-1.0)


def test_unknown_operation() -> None:
    with pytest.raises(FaultParamError, match="unknown operation 'readz'"):
        parse_operations("read,readz")
    with pytest.raises(FaultParamError, match="unknown operation 'discard'"):
        LatencyParams.parse(discard="1ms")


def test_operations() -> None:
    assert parse_operations("read, write") == ("read", "write")
    assert parse_operations("all") == ("read", "write", "flush", "trim", "zero")
    assert parse_operations(["flush", "flush"]) == ("flush",)


def test_errnos() -> None:
    assert parse_errno("EIO") == 5
    assert parse_errno("enospc") == 28
    assert parse_errno("EOPNOTSUPP") == NBD_ERRNOS["ENOTSUP"]
    assert parse_errno(5) == 5
    assert parse_errno("5") == 5
    with pytest.raises(FaultParamError, match="unknown errno name 'EBOGUS'"):
        parse_errno("EBOGUS")
    with pytest.raises(FaultParamError, match="cannot be sent over NBD"):
        parse_errno("EAGAIN")
    with pytest.raises(FaultParamError, match="cannot be sent over NBD"):
        parse_errno(11)


def test_rates() -> None:
    assert parse_rate("10%") == pytest.approx(0.1)
    assert parse_rate("0.25") == 0.25
    for bad in ("1.5", "-0.1", "x", "200%"):
        with pytest.raises(FaultParamError):
            parse_rate(bad)


def test_sizes() -> None:
    assert parse_size("64M") == 64 << 20
    assert parse_size("1GiB") == 1 << 30
    assert parse_size(4096) == 4096
    for bad in ("0", "x", "-1M"):
        with pytest.raises(FaultParamError):
            parse_size(bad)


def test_error_params_parse_and_describe() -> None:
    params = ErrorParams.parse(rate="50%", operation="read,write", errno="ENOSPC")
    assert params.as_dict() == {"rate": 0.5, "operations": ["read", "write"], "errno": "ENOSPC"}
    assert params.kind == "errors"
    assert LatencyParams(read=0.1).kind == "latency"


def test_decide() -> None:
    state = ControlState(delays={"read": 0.1}, error_rate=0.5, error_ops=frozenset({"write"}), error_errno=28)
    assert state.decide("read", rand=0.0) == (0.1, 0)
    assert state.decide("write", rand=0.49) == (0.0, 28)
    assert state.decide("write", rand=0.5) == (0.0, 0)
    assert state.decide("flush") == (0.0, 0)


def test_control_file_round_trip_and_live_reload(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    reader = ControlReader(path)
    assert reader.current().delays == {}  # no file yet: no faults
    write_control(path, ControlState(delays={"read": 0.05}, generation=1))
    assert reader.current().delays == {"read": 0.05}
    write_control(path, ControlState(delays={"write": 0.2}, generation=2))
    assert reader.current().delays == {"write": 0.2}
    assert reader.current().generation == 2
    assert [p.name for p in tmp_path.iterdir()] == ["control.json"]  # no temporary left


def test_reader_keeps_last_good_state_on_garbage(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    write_control(path, ControlState(delays={"read": 0.01}))
    reader = ControlReader(path)
    assert reader.current().delays == {"read": 0.01}
    path.write_text("{not json", encoding="utf-8")
    assert reader.current().delays == {"read": 0.01}
    path.write_text(json.dumps({"delays": {"flush": 0.3}}), encoding="utf-8")
    assert reader.current().delays == {"flush": 0.3}


def test_sleeper_learns_to_wake_early() -> None:
    sleeper = Sleeper()
    lateness = []
    for _ in range(30):
        deadline = time.monotonic() + 0.002
        sleeper.sleep_until(deadline)
        lateness.append(time.monotonic() - deadline)
    assert 0.0 <= sleeper.bias <= Sleeper.MAX_BIAS
    assert sum(lateness[-10:]) / 10 < 0.001


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100ms", 0.1),
        ("0.1s", 0.1),
        ("250us", 0.00025),
        ("100 milliseconds", 0.1),
        ("20 msec", 0.02),
        ("1 second", 1.0),
        ("0", 0.0),
        (0, 0.0),
        ("60min", 3600.0),
    ],
)
def test_delays(text: str | float, seconds: float) -> None:
    assert math.isclose(parse_delay(text), seconds)


@pytest.mark.parametrize(
    ("value", "shown"),
    # A number in exponent form has no unit either ("5e1" once read as 50 s).
    [("100", "100"), (100, "100"), ("0.5", "0.5"), (0.05, "0.05"), ("5e1", "5e1"), ("1e-3", "1e-3")],
)
def test_a_delay_without_unit_is_refused_with_the_fix(value: str | float, shown: str) -> None:
    with pytest.raises(FaultParamError) as caught:
        parse_delay(value, "read delay")
    assert str(caught.value) == (
        f"read delay '{shown}' has no unit: write {shown}ms for milliseconds ({shown}s if you really mean "
        "seconds; at most 3600 s)"
    )
    with pytest.raises(FaultParamError, match=rf"^read delay '{shown}' has no unit: write {shown}ms"):
        LatencyParams.parse(read=value)


def test_delays_and_durations_state_the_one_hour_cap() -> None:
    with pytest.raises(
        FaultParamError, match=r"^read delay '7200s' is longer than the 3600 s \(1 h\) maximum$"
    ):
        LatencyParams.parse(read="7200s")
    # Every Robot time string is a duration now (one parser): two hours is read, then refused.
    with pytest.raises(
        FaultParamError, match=r"^duration '2 hours' is longer than the 3600 s \(1 h\) maximum$"
    ):
        parse_duration("2 hours")
    with pytest.raises(
        FaultParamError, match=r"^write delay 4000 s is longer than the 3600 s \(1 h\) maximum$"
    ):
        LatencyParams(write=4000.0)
    with pytest.raises(FaultParamError, match=r"^read delay '-1' is negative$"):
        parse_delay("-1", "read delay")
    with pytest.raises(FaultParamError, match=r"^read delay 'soon' is not a time"):
        parse_delay("soon", "read delay")


def test_operations_as_enum_members() -> None:
    assert parse_operations(Operation.flush) == ("flush",)
    assert parse_operations([Operation.read, "write"]) == ("read", "write")  # type: ignore[list-item]
    assert tuple(op.value for op in Operation) == OPERATIONS
    assert ErrorParams.parse(operation=Operation.write).operations == ("write",)


def test_a_spike_must_delay_something() -> None:
    assert LatencyParams.spike(read="10ms", write=None) == LatencyParams(read=0.01)
    with pytest.raises(
        FaultParamError, match=r"^no delay given \(use read=, write=, flush=, trim= or zero=\)$"
    ):
        LatencyParams.spike(read="0", write=None)


def test_times_converted_by_the_caller_are_checked() -> None:
    assert check_seconds(2.5, "duration") == 2.5
    assert check_seconds(0.0, "start_after", allow_zero=True) == 0.0
    with pytest.raises(FaultParamError, match=r"^duration '0.0' is not positive$"):
        check_seconds(0.0, "duration")
    with pytest.raises(FaultParamError, match=r"^every '-1.0' is negative$"):
        check_seconds(-1.0, "every")
    with pytest.raises(FaultParamError, match=r"^duration '7200.0' is longer than the 3600 s"):
        check_seconds(7200.0, "duration")
    with pytest.raises(FaultParamError, match="is not a time"):
        check_seconds(math.nan, "duration")
