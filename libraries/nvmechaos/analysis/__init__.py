"""Analysis of fio's interval logs: streaming parsing, latency summaries, series and consistency.

:mod:`nvmechaos.analysis.intervals` reads fio's ``fio_{iops,bw,lat,clat,slat}.N.log`` files in
bounded memory; :mod:`nvmechaos.analysis.charts` draws them (it imports matplotlib, so it is not
imported here).
"""

from nvmechaos.analysis.intervals import (
    DIRECTION_NAMES,
    PERCENTILES,
    AnalysisError,
    Consistency,
    DirectionLatency,
    IntervalSeries,
    LatencySummary,
    LogChunk,
    LogFormatError,
    LogLinearHistogram,
    SteadyState,
    consistency,
    iter_log_chunks,
    read_log,
    read_series,
    steady_state,
    summarise_latency_log,
    summarise_latency_logs,
    total_series,
)

__all__ = [
    "DIRECTION_NAMES",
    "PERCENTILES",
    "AnalysisError",
    "Consistency",
    "DirectionLatency",
    "IntervalSeries",
    "LatencySummary",
    "LogChunk",
    "LogFormatError",
    "LogLinearHistogram",
    "SteadyState",
    "consistency",
    "iter_log_chunks",
    "read_log",
    "read_series",
    "steady_state",
    "summarise_latency_log",
    "summarise_latency_logs",
    "total_series",
]
