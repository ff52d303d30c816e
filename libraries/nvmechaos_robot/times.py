"""The one conversion of keyword durations: every library reads a ``timedelta`` argument with
:func:`robot_time` (installed by :class:`~nvmechaos_robot.KeywordLibrary`), so ``90``, ``30 s``,
``2 min``, ``1 min 30 s``, ``500 ms`` and ``01:30`` mean the same in all of them."""

from __future__ import annotations

from datetime import timedelta

from robot.utils import timestr_to_secs

from nvmechaos.units import parse_seconds


class WrittenTime(timedelta):
    """A Robot time that remembers how the test wrote it (``-5 s``), so a refused one is quoted so."""

    written: str


def robot_time(value: str | int | float) -> timedelta:
    """A time as Robot Framework reads it: ``90`` or ``1.5`` (seconds), ``30 s``, ``2 min``,
    ``1 min 30 s``, ``500 ms``, ``01:30``. Whether it may be zero or negative is up to the keyword."""
    # As Robot's own timedelta conversion reads it, so Robot's failure for a non-time is unchanged.
    time = WrittenTime(seconds=timestr_to_secs(value, round_to=None))
    time.written = str(value)
    return time


def seconds(value: timedelta, name: str, *, allow_zero: bool = False) -> float:
    """``value`` in seconds, refused (quoted as the test wrote it) when negative or, unless
    ``allow_zero``, zero.

    Raises:
        ArgumentError: the value is negative or zero.
    """
    written = value.written if isinstance(value, WrittenTime) else value.total_seconds()
    return parse_seconds(written, name, allow_zero=allow_zero)


def optional_seconds(value: timedelta | None) -> float | None:
    """``value`` in seconds, or None; for engines that check the sign and range themselves."""
    return None if value is None else value.total_seconds()
