"""Checks of the integrity keywords' flags and counts, for values Robot's conversion lets through.

Robot converts ``True``/``no``/``0``... to a ``bool`` and text to an ``int`` before a keyword runs, but
passes any other text given for a ``bool`` (``plp=maybe``) and a negative ``int`` as they are; these
checks refuse them before anything starts. Their messages quote the value as the suites have always
seen it (``plp 'maybe' is not true or false``, ``blocks '0' is not a whole number of at least 1``).
"""

from __future__ import annotations

from nvmechaos.units import ArgumentError, parse_flag


def flag(value: object, name: str) -> bool:
    """``value`` as true or false: a ``bool``, ``0``/``1``, or None (false); see
    :func:`~nvmechaos.units.parse_flag`.

    Raises:
        ArgumentError: anything else, e.g. text Robot could not read as true or false.
    """
    if isinstance(value, str):
        # Robot has already read every spelling of true and false: text that reaches here is neither.
        raise ArgumentError(f"{name} '{value}' is not true or false")
    return parse_flag(value, name)


def at_least(value: object, name: str, minimum: int = 0) -> int:
    """``value`` as a whole number of at least ``minimum``.

    Raises:
        ArgumentError: not an ``int`` (a ``bool`` is not one either), or below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{name} '{value}' is not a whole number")
    if value < minimum:
        raise ArgumentError(f"{name} '{value}' is not a whole number of at least {minimum}")
    return value
