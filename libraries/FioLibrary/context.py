"""State the FioLibrary components share: settings, where jobs, limits and runs live, what the library
started."""

from __future__ import annotations

from pathlib import Path

from nvmechaos.fio.runner import FioProcess
from nvmechaos_robot import KeywordContext

_REPO = Path(__file__).resolve().parents[2]
#: The name FioLibrary owns what it starts under (see nvmechaos_robot.OWNER).
LIBRARY = "FioLibrary"


class LibraryContext(KeywordContext):
    """Settings and the per-test run folders; does no work until a keyword needs it."""

    owner_name = LIBRARY

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

    def own_fio(self, fio: FioProcess) -> FioProcess:
        """Record ``fio`` as started by the running test or suite, so its end stops it."""
        self.own(fio, fio.process.name, fio.process.stop, fio.is_running)
        return fio
