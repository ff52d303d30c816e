"""Drive health verdicts: what in a SMART view (``nvme smart-log -o json`` keys, as the drive
model and real drives report them) makes a drive not OK."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: critical_warning bits (NVMe base specification, SMART / Health Information log page).
WARNING_BITS = {
    0: "available spare below threshold",
    1: "temperature above threshold",
    2: "reliability degraded",
    3: "read-only",
    4: "volatile memory backup failed",
    5: "persistent memory read-only",
}


def describe_warning(bits: int) -> str:
    """``critical_warning`` in words: ``0x02 (temperature above threshold)``."""
    words = ", ".join(text for bit, text in WARNING_BITS.items() if bits & (1 << bit)) or "none"
    return f"0x{bits:02x} ({words})"


def health_problems(
    health: Mapping[str, Any],
    *,
    max_percent_used: int,
    max_media_errors: int,
    max_temperature_c: float | None,
) -> list[str]:
    """Every field of ``health`` that is not OK, one phrase each naming the field, value and limit."""
    problems = []
    warning = int(health.get("critical_warning", 0))
    if warning:
        problems.append(f"critical_warning {describe_warning(warning)}")
    spare, threshold = health.get("avail_spare"), health.get("spare_thresh")
    if spare is not None and threshold is not None and spare < threshold:
        problems.append(f"avail_spare {spare} % < spare_thresh {threshold} %")
    used = health.get("percent_used")
    if used is not None and used > max_percent_used:
        problems.append(f"percent_used {used} % > {max_percent_used} %")
    errors = health.get("media_errors")
    if errors is not None and errors > max_media_errors:
        problems.append(f"media_errors {errors} > {max_media_errors}")
    celsius = health.get("temperature_c")
    if celsius is None and health.get("temperature") is not None:
        celsius = round(float(health["temperature"]) - 273.15, 1)
    if max_temperature_c is not None and celsius is not None and celsius > max_temperature_c:
        problems.append(f"temperature {celsius} °C > {max_temperature_c:g} °C")
    return problems


def health_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """``after - before`` for every number the two health views share (flags left out)."""
    return {
        key: round(after[key] - value, 3)
        for key, value in before.items()
        if key in after
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and isinstance(after[key], int | float)
    }
