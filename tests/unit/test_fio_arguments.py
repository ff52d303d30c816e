"""Checks of keyword arguments: Robot-style times, flags, numbers, paths and handles, each refused in
one line that names the argument and the value."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from robot.utils import timestr_to_secs

from nvmechaos.errors import NvmeChaosError
from nvmechaos.fio.model import FioResult
from nvmechaos.units import (
    ArgumentError,
    parse_flag,
    parse_positive_int,
    parse_seconds,
    refuse_options,
    require,
    require_path,
    require_text,
    show,
    time_to_seconds,
)


@pytest.mark.parametrize(
    "text",
    [
        "90",
        "1.5",
        "0",
        "-2",
        "30 s",
        "30s",
        "2 min",
        "2 minutes",
        "1 min 30 s",
        "1min30sec",
        "1 hour",
        "1h 2m 3s",
        "2 days",
        "1 week",
        "500 ms",
        "500 milliseconds",
        "250 microseconds",
        "100 ns",
        "01:30",
        "1:02:03",
        "1:02:03.5",
        "-1 min",
        "1.5 minutes",
        " 45 seconds ",
    ],
)
def test_times_read_as_robot_reads_them(text: str) -> None:
    assert time_to_seconds(text) == pytest.approx(timestr_to_secs(text, round_to=None))


@pytest.mark.parametrize(
    "text", ["banana", "", " ", "nan", "inf", "-inf", "1 min 30", "1x", "min", "5 parsecs", "1::2", "--1"]
)
def test_what_is_not_a_time(text: str) -> None:
    assert time_to_seconds(text) is None


def test_numbers_are_seconds_but_not_nan_or_booleans() -> None:
    assert time_to_seconds(5) == 5.0
    assert time_to_seconds(0.25) == 0.25
    assert time_to_seconds(math.nan) is None
    assert time_to_seconds(math.inf) is None
    assert time_to_seconds(True) is None


def test_parse_seconds_names_the_argument_and_the_value() -> None:
    assert parse_seconds("2 min", "timeout") == 120.0
    assert parse_seconds(0, "ramp", allow_zero=True) == 0.0
    with pytest.raises(ArgumentError) as error:
        parse_seconds("banana", "timeout")
    assert str(error.value) == (
        "timeout 'banana' is not a time (use seconds or a Robot time such as 90, 30 s or 2 min)"
    )
    with pytest.raises(ArgumentError, match=r"^ramp '-3' is negative$"):
        parse_seconds("-3", "ramp", allow_zero=True)
    with pytest.raises(ArgumentError, match=r"^ramp 'nan' is not a time"):
        parse_seconds("nan", "ramp", allow_zero=True)
    with pytest.raises(ArgumentError, match=r"^timeout '0' is not positive$"):
        parse_seconds("0", "timeout")
    with pytest.raises(ArgumentError, match=r"^timeout None is not a time"):
        parse_seconds(None, "timeout")
    with pytest.raises(ArgumentError, match=r"^timeout of type list is not a time"):
        parse_seconds([1], "timeout")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("True", True),
        ("yes", True),
        ("ON", True),
        ("1", True),
        (1, True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
        ("NONE", False),
        ("", False),
        (0, False),
    ],
)
def test_flags(value: object, expected: bool) -> None:
    assert parse_flag(value, "allow_errors") is expected


@pytest.mark.parametrize("value", ["banana", "ture", 2, -1, 0.5, [True]])
def test_what_is_not_a_flag(value: object) -> None:
    with pytest.raises(ArgumentError, match=r"^allow_errors .* is not true or false \(use True or False\)$"):
        parse_flag(value, "allow_errors")


def test_positive_int() -> None:
    assert parse_positive_int(500, "log_avg_msec") == 500
    assert parse_positive_int("250", "log_avg_msec") == 250
    with pytest.raises(ArgumentError, match=r"^log_avg_msec 0 is not positive$"):
        parse_positive_int(0, "log_avg_msec")
    with pytest.raises(ArgumentError, match=r"^log_avg_msec '-5' is not positive$"):
        parse_positive_int("-5", "log_avg_msec")
    with pytest.raises(ArgumentError, match=r"^log_avg_msec '1.5' is not a whole number$"):
        parse_positive_int("1.5", "log_avg_msec")
    with pytest.raises(ArgumentError, match=r"^log_avg_msec True is not a whole number$"):
        parse_positive_int(True, "log_avg_msec")


def test_text_and_paths(tmp_path: Path) -> None:
    assert require_text("a.json", "path", "a path") == "a.json"
    assert require_text(tmp_path, "path", "a path") == str(tmp_path)
    with pytest.raises(ArgumentError, match=r"^path is empty: give a path$"):
        require_text("  ", "path", "a path")
    with pytest.raises(ArgumentError, match=r"^path None is not a path$"):
        require_text(None, "path", "a path")
    file = tmp_path / "limits.yaml"
    file.write_text("profiles: {}\n", encoding="utf-8")
    assert require_path(str(tmp_path), "job_dir", folder=True) == str(tmp_path)
    assert require_path(str(file), "thresholds", folder=False) == str(file)
    with pytest.raises(ArgumentError, match=r"^job_dir '.*nope' does not exist$"):
        require_path(str(tmp_path / "nope"), "job_dir", folder=True)
    with pytest.raises(ArgumentError, match=r"^job_dir '.*limits.yaml' is not a folder$"):
        require_path(str(file), "job_dir", folder=True)
    with pytest.raises(ArgumentError, match=r"^thresholds '.*' is a folder, not a file$"):
        require_path(str(tmp_path), "thresholds", folder=False)


def test_require_names_what_it_got_and_what_it_wanted() -> None:
    result = FioResult(fio_version="fio-3.33", jobs=())
    assert require(result, FioResult, "result", "a fio result") is result
    with pytest.raises(ArgumentError, match=r"^result 'x' is not a fio result$"):
        require("x", FioResult, "result", "a fio result")
    with pytest.raises(ArgumentError, match=r"^result of type dict is not a fio result$"):
        require({}, FioResult, "result", "a fio result")
    assert issubclass(ArgumentError, NvmeChaosError)


def test_refused_options_say_where_they_belong() -> None:
    refuse_options({"runtime": "5"}, {"timeout": "give it to Wait For Fio Job"}, "Start Fio Job")
    with pytest.raises(ArgumentError) as error:
        refuse_options({"timeout": "2 min"}, {"timeout": "give it to Wait For Fio Job"}, "Start Fio Job")
    assert (
        str(error.value) == "Start Fio Job takes no timeout (got timeout=2 min): give it to Wait For Fio Job"
    )


def test_show_keeps_messages_short() -> None:
    assert show("x" * 200).endswith("...'")
    assert len(show("x" * 200)) == 82
    assert show(None) == "None"
    assert show(3.5) == "3.5"
    assert show(object()) == "of type object"
