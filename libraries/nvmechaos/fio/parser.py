"""Turn fio's JSON output (``json`` or ``json+``) into a :class:`~nvmechaos.fio.model.FioResult`.

fio's output is often not pure JSON: it may start with "Starting N processes" or
"fio: connected to NBD server" and end with error lines. The parser finds the JSON object fio wrote,
keeps the text around it as messages, and rejects anything that is not a complete fio report with an
error that names the source and what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nvmechaos.errors import FioOutputError
from nvmechaos.fio.model import DIRECTIONS, DirectionResult, FioResult, JobResult, LatencyStats
from nvmechaos.units import require_text

_OBJECT_START = re.compile(r"^\{", re.MULTILINE)


def parse_fio_file(path: Path | str) -> FioResult:
    """Parse the fio output stored in ``path``.

    Raises:
        ArgumentError: ``path`` is not text or a path, or is empty.
        FioOutputError: the file is missing, unreadable, or holds no complete fio report.
    """
    source = Path(require_text(path, "path", "the path of a file holding fio's JSON output"))
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise FioOutputError(f"fio output file '{source}' does not exist") from None
    except OSError as error:
        raise FioOutputError(f"cannot read fio output file '{source}': {error.strerror}") from None
    return parse_fio_text(text, source=str(source))


def parse_fio_text(text: str, source: str = "fio output") -> FioResult:
    """Parse fio output held in ``text``; ``source`` names it in error messages.

    Raises:
        FioOutputError: no JSON object, truncated or malformed JSON, or JSON that is not a fio report.
    """
    document, before, after = _extract_json(text, source)
    messages = tuple(line for line in (before + "\n" + after).splitlines() if line.strip())
    return _build_result(document, source, messages)


def _extract_json(text: str, source: str) -> tuple[dict[str, Any], str, str]:
    decoder = json.JSONDecoder()
    first_error: json.JSONDecodeError | None = None
    for match in _OBJECT_START.finditer(text):
        try:
            document, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError as error:
            first_error = first_error or error
            continue
        if isinstance(document, dict):
            return document, text[: match.start()], text[end:]
    if first_error is not None:
        # A cut inside a string is reported at the string's opening quote, on the last line.
        last_line_start = text.rstrip().rfind("\n") + 1
        problem = "is truncated" if first_error.pos >= last_line_start else "is malformed"
        raise FioOutputError(
            f"{source}: fio's JSON {problem} (line {first_error.lineno}, column {first_error.colno}: "
            f"{first_error.msg}); fio may have been killed or crashed"
        )
    tail = " | ".join(line for line in text.strip().splitlines()[-3:])
    detail = f"; it ends with: {tail[:300]}" if tail else "; it is empty"
    raise FioOutputError(f"{source}: no JSON report found in fio's output{detail}")


def _build_result(document: Mapping[str, Any], source: str, messages: tuple[str, ...]) -> FioResult:
    jobs_raw = document.get("jobs")
    if "fio version" not in document or not isinstance(jobs_raw, list):
        raise FioOutputError(f"{source}: the JSON is not a fio report (no 'fio version' or 'jobs')")
    if not jobs_raw:
        raise FioOutputError(f'{source}: fio\'s report has no jobs ("jobs": []); there is nothing to judge')
    jobs = tuple(_build_job(raw, index, source) for index, raw in enumerate(jobs_raw))
    if "timestamp_ms" in document:
        timestamp_ms = _as_int(document["timestamp_ms"], f"{source}: timestamp_ms")
    else:
        timestamp_ms = _as_int(document.get("timestamp", 0), f"{source}: timestamp") * 1000
    return FioResult(
        fio_version=str(document["fio version"]),
        jobs=jobs,
        timestamp_ms=timestamp_ms,
        messages=messages,
    )


def _build_job(raw: Any, index: int, source: str) -> JobResult:
    if not isinstance(raw, dict):
        raise FioOutputError(f"{source}: jobs[{index}] is not an object")
    name = str(raw.get("jobname", f"job{index}"))
    where = f"{source}: job '{name}'"
    directions = {
        direction: _build_direction(raw[direction], direction, where)
        for direction in DIRECTIONS
        if isinstance(raw.get(direction), dict)
    }
    options = raw.get("job options", {})
    return JobResult(
        name=name,
        group_id=_as_int(raw.get("groupid", 0), f"{where} groupid"),
        error=_as_int(raw.get("error", 0), f"{where} error"),
        directions=directions,
        options={str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {},
        runtime_ms=_as_int(raw.get("job_runtime", 0), f"{where} job_runtime"),
        error_count=_as_int(raw.get("total_err", 0), f"{where} total_err"),
    )


def _build_direction(raw: Mapping[str, Any], direction: str, where: str) -> DirectionResult:
    where = f"{where} {direction}"
    return DirectionResult(
        direction=direction,
        io_bytes=_as_int(raw.get("io_bytes", 0), f"{where} io_bytes"),
        total_ios=_as_int(raw.get("total_ios", 0), f"{where} total_ios"),
        iops=_as_float(raw.get("iops", 0.0), f"{where} iops"),
        bw_bytes=(
            _as_float(raw["bw_bytes"], f"{where} bw_bytes")
            if "bw_bytes" in raw
            else _as_float(raw.get("bw", 0), f"{where} bw") * 1024
        ),
        runtime_ms=_as_int(raw.get("runtime", 0), f"{where} runtime"),
        lat=_build_latency(raw.get("lat_ns"), f"{where} lat_ns"),
        clat=_build_latency(raw.get("clat_ns"), f"{where} clat_ns"),
        slat=_build_latency(raw.get("slat_ns"), f"{where} slat_ns"),
    )


def _build_latency(raw: Any, where: str) -> LatencyStats | None:
    if not isinstance(raw, dict):
        return None
    percentiles = raw.get("percentile", {})
    bins = raw.get("bins", {})
    try:
        return LatencyStats(
            min_ns=_as_float(raw.get("min", 0), f"{where} min"),
            max_ns=_as_float(raw.get("max", 0), f"{where} max"),
            mean_ns=_as_float(raw.get("mean", 0), f"{where} mean"),
            stddev_ns=_as_float(raw.get("stddev", 0), f"{where} stddev"),
            samples=_as_int(raw.get("N", 0), f"{where} N"),
            percentiles_ns={float(k): float(v) for k, v in percentiles.items()},
            bins={int(k): int(v) for k, v in bins.items()},
        )
    except (TypeError, ValueError, AttributeError):
        raise FioOutputError(f"{where}: percentile or bins entries are not numbers") from None


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FioOutputError(f"{where} is {value!r}, not a number")
    return float(value)


def _as_int(value: Any, where: str) -> int:
    number = _as_float(value, where)
    if not math.isfinite(number):
        raise FioOutputError(f"{where} is {value!r}, not a whole number")
    return int(number)
