"""State the FioLibrary components share: settings, where jobs, limits and runs live, what the library
started, and times as the test wrote them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from robot.utils import timestr_to_secs

from nvmechaos.fio.runner import FioProcess
from nvmechaos.units import parse_seconds
from nvmechaos_robot import OWNER, KeywordContext

_REPO = Path(__file__).resolve().parents[2]
#: The name FioLibrary owns what it starts under (see nvmechaos_robot.OWNER).
LIBRARY = "FioLibrary"


class LibraryContext(KeywordContext):
    """Settings and the per-test run folders; does no work until a keyword needs it."""

    def __init__(self, job_dir: str | None, thresholds: str | None, fio: str, log_avg_msec: int) -> None:
        super().__init__()
        self._job_dir = job_dir
        self._thresholds = thresholds
        self.fio_binary = fio
        self.log_avg_msec = log_avg_msec

    @property
    def job_dirs(self) -> list[Path]:
        """Where job names are looked up: the configured folder, ${EXECDIR}/fio_jobs, the project's."""
        dirs = [Path(self._job_dir)] if self._job_dir else []
        dirs.append(Path(self.variable("${EXECDIR}", ".")) / "fio_jobs")
        dirs.append(_REPO / "fio_jobs")
        unique: list[Path] = []
        for folder in dirs:
            if all(folder.resolve() != seen.resolve() for seen in unique):
                unique.append(folder)
        return unique

    @property
    def thresholds_file(self) -> Path:
        if self._thresholds:
            return Path(self._thresholds)
        local = Path(self.variable("${EXECDIR}", ".")) / "variables" / "thresholds.yaml"
        return local if local.is_file() else _REPO / "variables" / "thresholds.yaml"

    def new_run_dir(self, job: str) -> Path:
        """A fresh folder for one run: OUTPUT DIR/fio/<suite>/<test>/<NN>-<job>."""
        return self.test_dir("fio", Path(job).stem)

    def own(self, fio: FioProcess) -> FioProcess:
        """Record ``fio`` as started by the running test or suite, so its end stops it."""
        OWNER.own(
            fio,
            name=fio.process.name,
            library=LIBRARY,
            scope=self.scope,
            stop=fio.process.stop,
            running=fio.is_running,
        )
        return fio


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
    """``value`` in seconds for the engine, which refuses it (quoting it as written) when negative or,
    unless ``allow_zero``, zero.

    Raises:
        ArgumentError: the value is negative or zero.
    """
    written = value.written if isinstance(value, WrittenTime) else value.total_seconds()
    return parse_seconds(written, name, allow_zero=allow_zero)
