"""The typed model of a fio run that every verdict, chart and comparison reads.

A :class:`FioResult` holds one :class:`JobResult` per job fio reported (one per group with
``group_reporting``); each job holds a :class:`DirectionResult` for every data direction fio
reported (read, write, trim), and each direction its latency statistics. Units are explicit in the
attribute names: ``_ns`` nanoseconds, ``_bytes`` bytes, ``_ms`` milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nvmechaos.errors import NvmeChaosError

DIRECTIONS: tuple[str, ...] = ("read", "write", "trim")


#: What a keyword expected where it got something else than a FioResult (its failure names it).
RESULT_EXPECTED = "a fio result (use what Run Fio Job, Wait For Fio Job or Parse Fio Output returned)"


@dataclass(frozen=True)
class LatencyStats:
    """One of fio's latency blocks (``lat_ns``, ``clat_ns`` or ``slat_ns``)."""

    min_ns: float
    max_ns: float
    mean_ns: float
    stddev_ns: float
    samples: int
    # Percent (e.g. 99.9) to latency in ns, as fio reported them.
    percentiles_ns: Mapping[float, float] = field(default_factory=dict)
    # json+ histogram: bucket value in ns to I/O count. Empty without json+.
    bins: Mapping[int, int] = field(default_factory=dict)

    def percentile(self, percent: float) -> float | None:
        """Return the latency in ns at ``percent``, or None when fio did not report it."""
        for reported, value in self.percentiles_ns.items():
            if abs(reported - percent) < 1e-6:
                return value
        return None


@dataclass(frozen=True)
class DirectionResult:
    """What one job did in one data direction."""

    direction: str
    io_bytes: int
    total_ios: int
    iops: float
    bw_bytes: float
    runtime_ms: int
    lat: LatencyStats | None
    clat: LatencyStats | None
    slat: LatencyStats | None

    @property
    def did_io(self) -> bool:
        return self.total_ios > 0 or self.io_bytes > 0

    @property
    def completion_latency(self) -> LatencyStats | None:
        """The latency block that carries percentiles: clat by default, lat with ``lat_percentiles``."""
        for stats in (self.lat, self.clat):
            if stats is not None and stats.percentiles_ns:
                return stats
        return self.clat or self.lat


@dataclass(frozen=True)
class JobResult:
    """One job (or one reporting group) of a fio run."""

    name: str
    group_id: int
    error: int
    directions: Mapping[str, DirectionResult]
    options: Mapping[str, str] = field(default_factory=dict)
    runtime_ms: int = 0
    # fio's ``total_err``: errors counted under continue_on_error (0 when fio stops at the first).
    error_count: int = 0

    @property
    def io_errors(self) -> int:
        """I/O errors fio saw: its count under continue_on_error, else 1 for the error it ended on."""
        return max(self.error_count, 1 if self.error else 0)

    @property
    def active_directions(self) -> list[DirectionResult]:
        """Directions in which the job did any I/O, in read, write, trim order."""
        return [
            self.directions[name]
            for name in DIRECTIONS
            if name in self.directions and self.directions[name].did_io
        ]

    @property
    def did_io(self) -> bool:
        return bool(self.active_directions)


class NoSuchJobError(NvmeChaosError, KeyError):
    """A result was asked for a job it does not have; a KeyError too, as any failed lookup."""

    def __str__(self) -> str:
        # KeyError shows its message quoted, as a key; this one is a sentence.
        return str(self.args[0])


@dataclass(frozen=True)
class FioArtifacts:
    """Files a run left behind, all inside the run's own folder."""

    directory: Path
    json: Path | None = None
    stderr: Path | None = None
    job_file: Path | None = None
    command: Path | None = None
    # Interval logs by kind ("iops", "bw", "lat", "clat", "slat") to files, one per job index.
    logs: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FioResult:
    """A parsed fio run."""

    fio_version: str
    jobs: tuple[JobResult, ...]
    timestamp_ms: int = 0
    exit_code: int | None = None
    # Text fio printed around its JSON (progress lines, "fio: ..." messages).
    messages: tuple[str, ...] = ()
    artifacts: FioArtifacts | None = None
    description: str = ""

    def job(self, name: str) -> JobResult:
        """Return the job called ``name``.

        Raises:
            NoSuchJobError: naming the jobs there are.
        """
        for job in self.jobs:
            if job.name == name:
                return job
        raise NoSuchJobError(f"no job named '{name}' (jobs: {', '.join(j.name for j in self.jobs)})")

    @property
    def total_iops(self) -> float:
        return sum(d.iops for job in self.jobs for d in job.active_directions)

    @property
    def total_bw_bytes(self) -> float:
        return sum(d.bw_bytes for job in self.jobs for d in job.active_directions)
