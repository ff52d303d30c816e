"""Failures, variables, output folders and log links for the keyword layers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from robot.api import logger
from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from nvmechaos.report import timeline_table_html
from nvmechaos.timeline import Event, Timeline
from nvmechaos_robot.owner import OWNER

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# The run's one timeline (one per Robot process, i.e. per pabot worker): every library records its
# faults, QMP faults, power events and drive events here, each source through its own channel.
RUN_TIMELINE = Timeline()


class KeywordError(AssertionError):
    """A keyword failure shown as its message alone: no exception name, no traceback."""

    ROBOT_SUPPRESS_NAME = True


def fail(error: Exception | str) -> NoReturn:
    """End the keyword with ``error``'s one-line message (one line per finding for verdicts)."""
    raise KeywordError(str(error)) from None


def safe_name(text: str, limit: int = 60) -> str:
    """``text`` as a file name: letters, digits, ``._-`` only, at most ``limit`` characters."""
    return _UNSAFE.sub("_", text).strip("_")[:limit] or "unnamed"


class KeywordContext:
    """What every keyword library needs from the running Robot; does nothing until asked."""

    #: The library name the context's things are owned under (see nvmechaos_robot.OWNER).
    owner_name = ""

    def __init__(self) -> None:
        self.scope = ""
        self._counters: dict[str, int] = {}

    def own(
        self,
        thing: object,
        name: str,
        stop: Callable[[], object],
        running: Callable[[], bool] = lambda: False,
    ) -> None:
        """Record what a keyword started on the one owner, in the running test or suite: ``stop``
        ends it when that ends, newest first. ``running`` says whether it still runs then, which
        is reported as news; by default it is not (a thing that ends with its test by design)."""
        if not self.owner_name:  # a library's context without it would own things nobody releases
            raise TypeError(f"{type(self).__name__} sets no owner_name")
        OWNER.own(thing, name=name, library=self.owner_name, scope=self.scope, stop=stop, running=running)

    @staticmethod
    def variable(name: str, default: Any = None) -> Any:
        """A Robot variable's value, or ``default`` outside a Robot run (libdoc, plain Python)."""
        try:
            return BuiltIn().get_variable_value(name, default)
        except RobotNotRunningError:
            return default

    @property
    def output_dir(self) -> Path:
        return Path(self.variable("${OUTPUT DIR}", ".")).resolve()

    def test_dir(self, kind: str, name: str) -> Path:
        """A fresh folder for one thing of the running test: OUTPUT DIR/<kind>/<suite>/<test>/<NN>-<name>."""
        suite = safe_name(str(self.variable("${SUITE NAME}", "suite")))
        test = safe_name(str(self.variable("${TEST NAME}", "suite-setup")))
        key = f"{kind}/{suite}/{test}"
        self._counters[key] = self._counters.get(key, 0) + 1
        return self.output_dir / kind / suite / test / f"{self._counters[key]:02d}-{safe_name(name)}"

    def link(self, path: Path) -> str:
        """``path`` relative to the log.html that will show it (pabot's merged one under pabot)."""
        log_file = self.variable("${LOG FILE}", "NONE")
        base = Path(log_file).parent if log_file and log_file != "NONE" else self.output_dir
        if self.variable("${PABOTQUEUEINDEX}") is not None and self.output_dir.parent.name == "pabot_results":
            # A pabot worker writes into OUT/pabot_results/N/; the merged log.html lands in OUT.
            base = self.output_dir.parent.parent
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_uri()

    @staticmethod
    def html(message: str) -> None:
        logger.info(message, html=True)

    @property
    def timeline(self) -> Timeline:
        """The run's timeline every library writes to."""
        return RUN_TIMELINE

    def log_timeline(self, events: Sequence[Event]) -> None:
        """Log ``events`` as the one timeline table every library uses."""
        self.html(timeline_table_html(events))
