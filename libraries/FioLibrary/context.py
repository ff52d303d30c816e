"""State the keyword components share: settings, output folders, and Robot glue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

from robot.api import logger
from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from nvmechaos.errors import NvmeChaosError

_REPO = Path(__file__).resolve().parents[2]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FioKeywordError(AssertionError):
    """A keyword failure whose message is shown as it is, without an exception name."""

    ROBOT_SUPPRESS_NAME = True


def fail(error: NvmeChaosError | str) -> NoReturn:
    """End the keyword with a one-line (or, for verdicts, one-line-per-finding) failure."""
    raise FioKeywordError(str(error)) from None


def safe_name(text: str, limit: int = 60) -> str:
    return _UNSAFE.sub("_", text).strip("_")[:limit] or "unnamed"


class LibraryContext:
    """Settings and the per-test output folders; does no work until a keyword needs it."""

    def __init__(self, job_dir: str | None, thresholds: str | None, fio: str, log_avg_msec: int) -> None:
        self._job_dir = job_dir
        self._thresholds = thresholds
        self.fio_binary = fio
        self.log_avg_msec = log_avg_msec
        self.scope = ""
        self._run_counter: dict[str, int] = {}

    @staticmethod
    def variable(name: str, default: Any = None) -> Any:
        try:
            return BuiltIn().get_variable_value(name, default)
        except RobotNotRunningError:
            return default

    @property
    def job_dirs(self) -> list[Path]:
        """Where job names are looked up: the configured folder, ${EXECDIR}/fio_jobs, the project's."""
        dirs = [Path(self._job_dir)] if self._job_dir else []
        dirs.append(Path(self.variable("${EXECDIR}", ".")) / "fio_jobs")
        dirs.append(_REPO / "fio_jobs")
        return dirs

    @property
    def thresholds_file(self) -> Path:
        if self._thresholds:
            return Path(self._thresholds)
        local = Path(self.variable("${EXECDIR}", ".")) / "variables" / "thresholds.yaml"
        return local if local.is_file() else _REPO / "variables" / "thresholds.yaml"

    @property
    def output_dir(self) -> Path:
        return Path(self.variable("${OUTPUT DIR}", ".")).resolve()

    def new_run_dir(self, job: str) -> Path:
        """A fresh folder for one run: OUTPUT DIR/fio/<suite>/<test>/<NN>-<job>."""
        suite = safe_name(str(self.variable("${SUITE NAME}", "suite")))
        test = safe_name(str(self.variable("${TEST NAME}", "suite-setup")))
        key = f"{suite}/{test}"
        self._run_counter[key] = self._run_counter.get(key, 0) + 1
        return (
            self.output_dir
            / "fio"
            / suite
            / test
            / f"{self._run_counter[key]:02d}-{safe_name(Path(job).stem)}"
        )

    def link(self, path: Path) -> str:
        """A path relative to log.html, for links in the log."""
        log_file = self.variable("${LOG FILE}", "NONE")
        base = Path(log_file).parent if log_file and log_file != "NONE" else self.output_dir
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_uri()

    @staticmethod
    def html(message: str) -> None:
        logger.info(message, html=True)
