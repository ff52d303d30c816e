"""Fault parameters every NBD injector shares, and their validation; what a running server reads
is in :mod:`nvmechaos.faults.controlfile`.
"""

from __future__ import annotations

import errno as errno_module
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from nvmechaos import units
from nvmechaos.faults.controlfile import NBD_ERRNOS
from nvmechaos.units import MAX_DELAY, ArgumentError


class Operation(str, Enum):
    """A kind of request a fault can target; ``zero`` is NBD_CMD_WRITE_ZEROES."""

    # Lower-case names: Robot matches and libdoc lists the names, and these are what users write.
    read = "read"
    write = "write"
    flush = "flush"
    trim = "trim"
    zero = "zero"


#: The request kinds a fault can target, in :class:`Operation` order.
OPERATIONS = tuple(operation.value for operation in Operation)

_ERRNO_ALIASES = {"EOPNOTSUPP": "ENOTSUP"}
#: Host errno value -> NBD wire value (they differ on some systems; on Linux they are equal).
HOST_TO_NBD: dict[int, int] = {
    getattr(errno_module, name): value for name, value in NBD_ERRNOS.items() if hasattr(errno_module, name)
}


class FaultParamError(ArgumentError):
    """A fault parameter is invalid: negative or unparsable delay, unknown operation or errno."""


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """:func:`nvmechaos.units.parse_duration`, failing with :class:`FaultParamError`."""
    return units.parse_duration(value, what, error=FaultParamError)


def parse_delay(value: str | float | int, what: str = "delay") -> float:
    """:func:`nvmechaos.units.parse_delay` (a number other than 0 needs its unit), failing with
    :class:`FaultParamError`."""
    return units.parse_delay(value, what, error=FaultParamError)


def parse_size(value: str | int) -> int:
    """:func:`nvmechaos.units.parse_size`, failing with :class:`FaultParamError`."""
    return units.parse_size(value, "size", error=FaultParamError)


def check_seconds(seconds: float, what: str, *, allow_zero: bool = False) -> float:
    """A time the caller already converted (a keyword's ``timedelta``), in seconds, as every fault
    time must be: not negative, above 0 unless ``allow_zero``, at most :data:`MAX_DELAY`.

    Raises:
        FaultParamError: NaN, negative, 0 (unless allowed) or longer than :data:`MAX_DELAY`.
    """
    checked = parse_duration(seconds, what)
    if checked == 0 and not allow_zero:
        raise FaultParamError(f"{what} '{seconds}' is not positive")
    return checked


def _operation_name(item: object) -> str:
    # str() of a str-mixin enum member is 'Operation.read' on Python 3.11+: take its value.
    return str(item.value if isinstance(item, Enum) else item).strip().lower()


def parse_operations(value: str | Operation | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"read"``, ``"read,write"``, ``"all"``, an :class:`Operation` or a list -> a tuple of known
    operations.

    Raises:
        FaultParamError: an operation that is not one of :data:`OPERATIONS` (or ``all``).
    """
    if isinstance(value, str) and not isinstance(value, Enum):
        items: list[object] = list(value.replace("|", ",").split(","))
    else:
        items = [value] if isinstance(value, Enum) else list(value)
    names = [_operation_name(item) for item in items if _operation_name(item)]
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

    @classmethod
    def spike(cls, **delays: str | float | int | None) -> LatencyParams:
        """:meth:`parse`, refusing a spike that delays nothing.

        Raises:
            FaultParamError: as :meth:`parse`, or no delay given (all missing or 0).
        """
        params = cls.parse(**delays)
        if params.is_zero:
            raise FaultParamError("no delay given (use read=, write=, flush=, trim= or zero=)")
        return params

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
        cls,
        rate: str | float = 1.0,
        operation: str | Operation | list[str] = "read",
        errno: str | int = "EIO",
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


@dataclass(frozen=True)
class StallParams:
    """Answer no request for ``seconds``: every request that arrives meanwhile, and every one still
    in progress, is answered when the stall ends (a drive that hangs, then comes back)."""

    seconds: float

    kind = "stall"

    def __post_init__(self) -> None:
        check_seconds(self.seconds, "stall")

    @classmethod
    def parse(cls, seconds: str | float | int) -> StallParams:
        """``StallParams.parse("8s")``: a stall with its unit (see :func:`parse_delay`), above 0."""
        return cls(parse_delay(seconds, "stall"))

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds}


FaultParams = LatencyParams | ErrorParams | StallParams
