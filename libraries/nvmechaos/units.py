"""Checks of keyword arguments, done before any work starts, each failing with one line naming the
argument and the value it got.

Times are read as Robot Framework reads them (``90``, ``1.5``, ``30 s``, ``2 min``, ``1 min 30 s``,
``1 hour``, ``500 ms``, ``01:30``) so a keyword's ``timeout`` takes what Robot's own timeouts take,
but without importing Robot: the engine stays usable (and testable) on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from nvmechaos.errors import NvmeChaosError

T = TypeVar("T")


class ArgumentError(NvmeChaosError):
    """A keyword argument has a value it cannot take; the message names the argument and the value."""


_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_TIMER = re.compile(r"^(?P<sign>[+-])?(?:(?P<hours>\d+):)?(?P<minutes>\d+):(?P<seconds>\d+(?:\.\d+)?)$")
# Robot Framework's time units and their spellings (robot.utils.robottime), in seconds.
_UNITS: dict[str, float] = {}
for _seconds, _names in (
    (604800.0, ("w", "week", "weeks")),
    (86400.0, ("d", "day", "days")),
    (3600.0, ("h", "hour", "hours")),
    (60.0, ("m", "min", "mins", "minute", "minutes")),
    (1.0, ("s", "sec", "secs", "second", "seconds")),
    (1e-3, ("ms", "msec", "msecs", "millis", "millisec", "millisecs", "millisecond", "milliseconds")),
    (1e-6, ("us", "μs", "microsecond", "microseconds")),
    (1e-9, ("ns", "nanosecond", "nanoseconds")),
):
    _UNITS.update(dict.fromkeys(_names, _seconds))
_UNIT_PATTERN = "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True))
_PART = re.compile(rf"(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>{_UNIT_PATTERN})")
_TIME_STRING = re.compile(rf"^-?(?:{_PART.pattern})+$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", "none", ""}


def show(value: object, limit: int = 80) -> str:
    """A value as a message shows it: quoted text, numbers and None as they are, else its type."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return f"'{text}'"
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    return f"of type {type(value).__name__}"


def time_to_seconds(value: str | float | int) -> float | None:
    """A Robot Framework time (``90``, ``30 s``, ``2 min``, ``1 min 30 s``, ``01:30``) in seconds.

    Returns None when ``value`` is not a time; NaN and infinity are not times either.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    text = value.strip()
    if _NUMBER.match(text):
        return float(text)
    timer = _TIMER.match(text)
    if timer:
        seconds = (
            int(timer.group("hours") or 0) * 3600
            + int(timer.group("minutes")) * 60
            + float(timer.group("seconds"))
        )
        return -seconds if timer.group("sign") == "-" else seconds
    normalised = "".join(text.lower().split())
    if not normalised or not _TIME_STRING.match(normalised):
        return None
    sign = -1.0 if normalised.startswith("-") else 1.0
    total = sum(float(m.group("number")) * _UNITS[m.group("unit")] for m in _PART.finditer(normalised))
    return sign * total


def parse_seconds(value: object, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a number of seconds, read as a Robot Framework time.

    Raises:
        ArgumentError: not a time, not finite, negative, or zero when ``allow_zero`` is false.
    """
    seconds = time_to_seconds(value) if isinstance(value, str | int | float) else None
    if seconds is None:
        raise ArgumentError(
            f"{name} {show(value)} is not a time (use seconds or a Robot time such as 90, 30 s or 2 min)"
        )
    if seconds < 0:
        raise ArgumentError(f"{name} {show(value)} is negative")
    if seconds == 0 and not allow_zero:
        raise ArgumentError(f"{name} {show(value)} is not positive")
    return seconds


def parse_flag(value: object, name: str) -> bool:
    """``value`` as true or false, spelt as Robot spells them (True/False, yes/no, on/off, 1/0, None).

    Raises:
        ArgumentError: any other value.
    """
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ArgumentError(f"{name} {show(value)} is not true or false (use True or False)")


def converted_flag(value: object, name: str) -> bool:
    """A keyword's ``bool`` argument after Robot's conversion: a ``bool``, ``0``/``1``, or None (false).

    Robot converts ``True``/``no``/``0``... to a ``bool`` before a keyword runs but passes any other
    text (``plp=maybe``) as it is; that text is refused here before anything starts.

    Raises:
        ArgumentError: anything else, e.g. text Robot could not read as true or false.
    """
    if isinstance(value, str):
        # Robot has already read every spelling of true and false: text that reaches here is neither.
        raise ArgumentError(f"{name} '{value}' is not true or false")
    return parse_flag(value, name)


def at_least(value: object, name: str, minimum: int = 0) -> int:
    """A keyword's ``int`` argument after Robot's conversion (which lets a negative one through) as a
    whole number of at least ``minimum``.

    Raises:
        ArgumentError: not an ``int`` (a ``bool`` is not one either), or below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{name} '{value}' is not a whole number")
    if value < minimum:
        raise ArgumentError(f"{name} '{value}' is not a whole number of at least {minimum}")
    return value


def parse_positive_int(value: object, name: str) -> int:
    """``value`` as a whole number above zero (an int, or text holding one).

    Raises:
        ArgumentError: not a whole number, or not above zero.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value)
    if number is None:
        raise ArgumentError(f"{name} {show(value)} is not a whole number")
    if number <= 0:
        raise ArgumentError(f"{name} {show(value)} is not positive")
    return number


def require_text(value: object, name: str, what: str) -> str:
    """``value`` as non-empty text; ``what`` says what it should be (e.g. "the path of fio's JSON").

    Raises:
        ArgumentError: not text, or empty.
    """
    if not isinstance(value, str) and not hasattr(value, "__fspath__"):
        raise ArgumentError(f"{name} {show(value)} is not {what}")
    text = str(value)
    if not text.strip():
        raise ArgumentError(f"{name} is empty: give {what}")
    return text


def require_path(value: object, name: str, *, folder: bool) -> str:
    """``value`` as the path of an existing folder (``folder``) or file.

    Raises:
        ArgumentError: not text, empty, missing, or a file where a folder is wanted (or the reverse).
    """
    text = require_text(value, name, "the path of a folder" if folder else "the path of a file")
    path = Path(text)
    if not path.exists():
        raise ArgumentError(f"{name} {show(text)} does not exist")
    if folder and not path.is_dir():
        raise ArgumentError(f"{name} {show(text)} is not a folder")
    if not folder and path.is_dir():
        raise ArgumentError(f"{name} {show(text)} is a folder, not a file")
    return text


def require(value: object, kind: type[T], name: str, what: str) -> T:
    """``value`` when it is a ``kind``; ``what`` says what was expected and where it comes from;
    ``name`` (the argument's) starts the message, or nothing when empty.

    Raises:
        ArgumentError: ``value`` is something else (a string, None, a handle of another library).
    """
    if not isinstance(value, kind):
        # Without a name the message starts with the value: "'vm-1' is not a VM (...)".
        raise ArgumentError(f"{name} {show(value)} is not {what}".lstrip())
    return value


def refuse_options(overrides: Mapping[str, object], refused: Mapping[str, str], keyword: str) -> None:
    """Refuse overrides that are arguments of another keyword, not fio options for this one.

    ``refused`` maps an option name to where it belongs, e.g. ``{"timeout": "give it to Wait For
    Fio Job"}``.

    Raises:
        ArgumentError: naming the option, its value, the keyword and where the option belongs.
    """
    for key, advice in refused.items():
        if key in overrides:
            raise ArgumentError(f"{keyword} takes no {key} (got {key}={overrides[key]}): {advice}")


# ---- sizes, durations and delays: the one parser of each, for every module ----------------------------
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
#: The longest fault delay, and the longest time any fault parameter (duration, period, start) may take.
MAX_DELAY = 3600.0


def parse_size(value: object, what: str = "size", *, error: type[NvmeChaosError] = ArgumentError) -> int:
    """Bytes from ``4096``, ``"4096"``, ``"64M"``, ``"64MiB"``, ``"1G"``, ``"2gb"``, ``"1.5G"`` (binary
    units; a fraction must come out as whole bytes).

    Raises:
        error: not a size, not whole bytes, or not positive (the message names ``what``).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value)) if isinstance(value, str | int) else None
        if not match:
            raise error(f"{what} '{value}' is not a size (use bytes or e.g. 64M, 1G, 1GiB)")
        exact = float(match.group("number")) * _SIZE_UNITS[match.group("unit").lower()]
        if exact != int(exact):
            raise error(f"{what} '{value}' is not a whole number of bytes")
        size = int(exact)
    if size <= 0:
        raise error(f"{what} '{value}' must be more than 0 bytes")
    return size


def parse_duration(
    value: object, what: str = "duration", *, error: type[NvmeChaosError] = ArgumentError
) -> float:
    """Seconds (at least 0, at most :data:`MAX_DELAY`) from a number or a Robot time (``"100ms"``,
    ``"3s"``, ``"1.5"`` seconds, ``"2 min"``).

    Raises:
        error: not a time, negative, or longer than :data:`MAX_DELAY`.
    """
    seconds = time_to_seconds(value) if isinstance(value, str | int | float) else None
    if seconds is None or math.isnan(seconds):
        raise error(f"{what} '{value}' is not a time (use e.g. 100ms, 3s)")
    if seconds < 0:
        raise error(f"{what} '{value}' is negative")
    if seconds > MAX_DELAY:
        raise error(f"{what} '{value}' is longer than the {MAX_DELAY:.0f} s (1 h) maximum")
    return seconds


def parse_delay(value: object, what: str = "delay", *, error: type[NvmeChaosError] = ArgumentError) -> float:
    """An added latency: like :func:`parse_duration`, but a number other than 0 needs its unit
    (``100ms``, ``0.1s``, ``250us``): ``read=100`` meaning 100 seconds is a trap, not a fault.

    Raises:
        error: no unit (suggesting ``<n>ms``), negative, not a time, or over :data:`MAX_DELAY`.
    """
    if isinstance(value, bool):
        raise error(f"{what} '{value}' is not a time (use e.g. 100ms, 0.5s)")
    text = str(value).strip()
    if isinstance(value, int | float) or _NUMBER.match(text):
        number = float(value) if isinstance(value, int | float) else float(text)
        if number == 0:
            return 0.0
        if not math.isnan(number) and number > 0:
            raise error(
                f"{what} '{value}' has no unit: write {text}ms for milliseconds ({text}s if you really "
                f"mean seconds; at most {MAX_DELAY:.0f} s)"
            )
    return parse_duration(value, what, error=error)
