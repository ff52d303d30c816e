"""The control interface every NBD injector shares: fault parameters, their validation, and the
control file through which a running server picks them up.

Both servers (the nbdkit Python plugin and the pure-Python NBD server) read the same small JSON
file. The injector writes it atomically (write a temporary file, then ``os.replace``), and the server
re-reads it whenever its identity changes (``os.stat`` before each request: a new inode after every
replace), so a change applies to the very next request, with no restart and no signal.

This module uses the standard library only: nbdkit's embedded interpreter imports it too.
"""

from __future__ import annotations

import errno as errno_module
import json
import math
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The request kinds a fault can target. ``zero`` is NBD_CMD_WRITE_ZEROES.
OPERATIONS = ("read", "write", "flush", "trim", "zero")

#: The errnos NBD can carry on the wire (protocol spec, "Error values"), by name.
NBD_ERRNOS: dict[str, int] = {
    "EPERM": 1,
    "EIO": 5,
    "ENOMEM": 12,
    "EINVAL": 22,
    "ENOSPC": 28,
    "EOVERFLOW": 75,
    "ENOTSUP": 95,
    "ESHUTDOWN": 108,
}
_ERRNO_ALIASES = {"EOPNOTSUPP": "ENOTSUP"}
#: Host errno value -> NBD wire value (they differ on some systems; on Linux they are equal).
HOST_TO_NBD: dict[int, int] = {
    getattr(errno_module, name): value for name, value in NBD_ERRNOS.items() if hasattr(errno_module, name)
}

#: The longest delay, and the longest time any fault parameter (duration, period, start) may take.
MAX_DELAY = 3600.0
_DURATION = re.compile(
    r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*"
    r"(?P<unit>us|usec|microseconds?|ms|msec|milliseconds?|s|sec|secs|seconds?|m|min|mins|minutes?)?\s*$"
)
_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}


class FaultParamError(ValueError):
    """A fault parameter is invalid: negative or unparsable delay, unknown operation or errno."""


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """``"100ms"``, ``"3s"``, ``"1.5"`` (seconds), ``0.1`` -> seconds as a float.

    Raises:
        FaultParamError: negative, not a number, or an unknown unit.
    """
    if isinstance(value, bool):
        raise FaultParamError(f"{what} '{value}' is not a time (use e.g. 100ms, 3s)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        if text.startswith("-"):
            raise FaultParamError(f"{what} '{value}' is negative")
        match = _DURATION.match(text.lower())
        if not match:
            raise FaultParamError(f"{what} '{value}' is not a time (use e.g. 100ms, 3s)")
        seconds = float(match.group("number")) * _UNITS[match.group("unit") or "s"]
    if math.isnan(seconds) or seconds < 0:
        raise FaultParamError(f"{what} '{value}' is negative")
    if seconds > MAX_DELAY:
        raise FaultParamError(f"{what} '{value}' is longer than the {MAX_DELAY:.0f} s (1 h) maximum")
    return seconds


def parse_delay(value: str | float | int, what: str = "delay") -> float:
    """An added latency: like :func:`parse_duration`, but a number other than 0 needs its unit
    (``100ms``, ``0.1s``, ``250us``): ``read=100`` meaning 100 seconds is a trap, not a fault.

    Raises:
        FaultParamError: no unit (suggesting ``<n>ms``), negative, not a time, or over 3600 s.
    """
    if isinstance(value, bool):
        raise FaultParamError(f"{what} '{value}' is not a time (use e.g. 100ms, 0.5s)")
    text = str(value).strip()
    if isinstance(value, int | float) or re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        number = float(value) if isinstance(value, int | float) else float(text)
        if number == 0:
            return 0.0
        if not math.isnan(number) and number > 0:
            raise FaultParamError(
                f"{what} '{value}' has no unit: write {text}ms for milliseconds ({text}s if you really "
                f"mean seconds; at most {MAX_DELAY:.0f} s)"
            )
    return parse_duration(value, what)


_SIZE = re.compile(r"^\s*(?P<number>\d+)\s*(?P<unit>[kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """``"64M"``, ``"64MiB"``, ``"1G"``, ``"4096"`` or ``4096`` -> bytes (binary units).

    Raises:
        FaultParamError: not a size, or not positive.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise FaultParamError(f"size '{value}' is not a size (use e.g. 64M, 1GiB or bytes)")
        size = int(match.group("number")) << (10 * " kmgt".index(match.group("unit").lower() or " "))
    if size <= 0:
        raise FaultParamError(f"size '{value}' is not positive")
    return size


def parse_operations(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"read"``, ``"read,write"``, ``"all"`` or a list -> a tuple of known operations.

    Raises:
        FaultParamError: an operation that is not one of :data:`OPERATIONS` (or ``all``).
    """
    items = value.replace("|", ",").split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if not names:
        raise FaultParamError(f"no operation given (use one or more of {', '.join(OPERATIONS)}, or all)")
    if "all" in names or "any" in names:
        return OPERATIONS
    for name in names:
        if name not in OPERATIONS:
            raise FaultParamError(
                f"unknown operation '{name}' (use one or more of {', '.join(OPERATIONS)}, or all)"
            )
    return tuple(dict.fromkeys(names))


def parse_errno(value: str | int) -> int:
    """``"EIO"``, ``"enospc"`` or ``5`` -> the NBD wire errno.

    Raises:
        FaultParamError: a name NBD cannot carry, or not an errno at all.
    """
    known = ", ".join(NBD_ERRNOS)
    if isinstance(value, int) and not isinstance(value, bool):
        if value in NBD_ERRNOS.values():
            return value
        raise FaultParamError(f"errno {value} cannot be sent over NBD (use one of {known})")
    name = str(value).strip().upper()
    if name.isdigit():
        return parse_errno(int(name))
    name = _ERRNO_ALIASES.get(name, name)
    if name in NBD_ERRNOS:
        return NBD_ERRNOS[name]
    if hasattr(errno_module, name):
        raise FaultParamError(f"errno {name} cannot be sent over NBD (use one of {known})")
    raise FaultParamError(f"unknown errno name '{value}' (use one of {known})")


def errno_name(number: int) -> str:
    for name, value in NBD_ERRNOS.items():
        if value == number:
            return name
    return str(number)


@dataclass(frozen=True)
class LatencyParams:
    """Added delay in seconds per operation; 0 means none."""

    read: float = 0.0
    write: float = 0.0
    flush: float = 0.0
    trim: float = 0.0
    zero: float = 0.0

    kind = "latency"

    def __post_init__(self) -> None:
        for op in OPERATIONS:
            value = getattr(self, op)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or math.isnan(value)
                or value < 0
            ):
                raise FaultParamError(f"{op} delay '{value}' is negative or not a number")
            if value > MAX_DELAY:
                raise FaultParamError(
                    f"{op} delay {value:g} s is longer than the {MAX_DELAY:.0f} s (1 h) maximum"
                )

    @classmethod
    def parse(cls, **delays: str | float | int | None) -> LatencyParams:
        """``LatencyParams.parse(read="100ms", write="50ms")``: delays with their units (see
        :func:`parse_delay`); unknown names are errors."""
        values: dict[str, float] = {}
        for op, value in delays.items():
            if op not in OPERATIONS:
                raise FaultParamError(
                    f"unknown operation '{op}' (use one or more of {', '.join(OPERATIONS)})"
                )
            if value is not None and value != "":
                values[op] = parse_delay(value, f"{op} delay")
        return cls(**values)

    @property
    def is_zero(self) -> bool:
        return not any(getattr(self, op) for op in OPERATIONS)

    def as_dict(self) -> dict[str, Any]:
        return {op: getattr(self, op) for op in OPERATIONS if getattr(self, op)}


@dataclass(frozen=True)
class ErrorParams:
    """Fail a fraction ``rate`` (0..1] of the requests of ``operations`` with ``errno`` (NBD value)."""

    rate: float = 1.0
    operations: tuple[str, ...] = ("read",)
    errno: int = NBD_ERRNOS["EIO"]

    kind = "errors"

    def __post_init__(self) -> None:
        rate = self.rate
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
            raise FaultParamError(f"error rate '{rate}' is not a fraction between 0 and 1")
        parse_operations(self.operations)
        parse_errno(self.errno)

    @classmethod
    def parse(
        cls, rate: str | float = 1.0, operation: str | list[str] = "read", errno: str | int = "EIO"
    ) -> ErrorParams:
        """``ErrorParams.parse(rate="10%", operation="read,write", errno="ENOSPC")``."""
        return cls(rate=parse_rate(rate), operations=parse_operations(operation), errno=parse_errno(errno))

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "operations": list(self.operations), "errno": errno_name(self.errno)}


def parse_rate(value: str | float | int) -> float:
    """``0.1``, ``"0.1"``, ``"10%"`` -> 0.1.

    Raises:
        FaultParamError: not a number, or outside 0..1 (0..100 %).
    """
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            rate = float(value.strip()[:-1]) / 100.0
        else:
            rate = float(value)
    except (TypeError, ValueError):
        raise FaultParamError(f"error rate '{value}' is not a number (use e.g. 0.1 or 10%)") from None
    if not 0.0 <= rate <= 1.0:
        raise FaultParamError(f"error rate '{value}' is not between 0 and 1 (0 % and 100 %)")
    return rate


FaultParams = LatencyParams | ErrorParams


@dataclass
class ControlState:
    """What a server does to each request right now."""

    delays: dict[str, float] = field(default_factory=dict)
    error_rate: float = 0.0
    error_ops: frozenset[str] = frozenset()
    error_errno: int = NBD_ERRNOS["EIO"]
    generation: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "generation": self.generation,
                "delays": self.delays,
                "errors": {"rate": self.error_rate, "ops": sorted(self.error_ops), "errno": self.error_errno},
            }
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ControlState:
        errors = data.get("errors") or {}
        return cls(
            delays={str(k): float(v) for k, v in (data.get("delays") or {}).items() if float(v) > 0},
            error_rate=float(errors.get("rate", 0.0)),
            error_ops=frozenset(str(op) for op in errors.get("ops", ())),
            error_errno=int(errors.get("errno", NBD_ERRNOS["EIO"])),
            generation=int(data.get("generation", 0)),
        )

    def decide(self, op: str, rand: float | None = None) -> tuple[float, int]:
        """For one request of ``op``: (delay in seconds, NBD errno to fail with or 0)."""
        delay = self.delays.get(op, 0.0)
        if self.error_rate > 0 and op in self.error_ops:
            draw = random.random() if rand is None else rand  # noqa: S311 - fault injection, not crypto
            if draw < self.error_rate:
                return delay, self.error_errno
        return delay, 0


class Sleeper:
    """Sleeps until a deadline, learning how late the OS wakes this process, and waking that much
    earlier: an integral controller that drives the mean lateness to zero (bounded to 0..2 ms), so
    a busy host does not add its wake-up latency to every injected delay. Shared by the threads
    of one server; the unlocked float update is a harmless race."""

    MAX_BIAS = 0.002
    GAIN = 0.2

    def __init__(self) -> None:
        self.bias = 0.0

    def sleep_until(self, deadline: float) -> None:
        remaining = deadline - time.monotonic() - self.bias
        if remaining > 0:
            time.sleep(remaining)
        late = time.monotonic() - deadline
        self.bias = min(self.MAX_BIAS, max(0.0, self.bias + self.GAIN * late))


def write_control(path: Path, state: ControlState) -> None:
    """Replace the control file atomically, so a server never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(state.to_json())
    os.replace(tmp, path)


class ControlReader:
    """The server side: cheap check before each request, reload only when the file was replaced."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.state = ControlState()
        self._identity: tuple[int, int, int] | None = None

    def current(self) -> ControlState:
        try:
            st = os.stat(self.path)
        except OSError:
            return self.state
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        if identity != self._identity:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    self.state = ControlState.from_mapping(json.load(handle))
                self._identity = identity
            except (OSError, ValueError, TypeError, AttributeError):
                pass  # keep the last good state; the next replace fixes it
        return self.state
