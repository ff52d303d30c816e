"""State the keyword components share: the names of what they started, and Robot glue."""

from __future__ import annotations

from pathlib import Path

from nvmechaos.faults import Injector, Schedule
from nvmechaos.timeline import Event
from nvmechaos.units import require
from nvmechaos_robot import OWNER, KeywordContext, safe_name

#: The name ChaosLibrary's injectors and schedules are owned under (see nvmechaos_robot.OWNER).
OWNER_NAME = "ChaosLibrary"


INJECTOR = "an injector (use the handle `Start Latency Injector` returned)"
SCHEDULE = "a fault schedule (use the handle `Start Fault Schedule` returned)"


def injector_handle(value: object) -> Injector:
    """``value`` when it is an injector a keyword returned.

    Raises:
        ArgumentError: anything else (``'x' is not an injector (...)``).
    """
    # mypy refuses an abstract class where type[T] is expected (python/mypy#4717); the check is sound.
    return require(value, Injector, "", INJECTOR)  # type: ignore[type-abstract]


def schedule_handle(value: object) -> Schedule:
    """``value`` when it is a schedule a keyword returned.

    Raises:
        ArgumentError: anything else (``'x' is not a fault schedule (...)``).
    """
    return require(value, Schedule, "", SCHEDULE)


class ChaosContext(KeywordContext):
    """What the keywords share: names for new injectors and schedules, where logs go, and which
    timeline sources are this library's (its injectors and schedules, running or stopped)."""

    owner_name = OWNER_NAME

    def __init__(self) -> None:
        super().__init__()
        self.sources: set[str] = set()
        self._counter = 0

    @property
    def log_dir(self) -> Path:
        suite = safe_name(str(self.variable("${SUITE NAME}", "suite")))
        return self.output_dir / "faults" / suite

    def next_name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"

    def own_fault(self, thing: Injector | Schedule) -> None:
        """Record ``thing`` on the one owner: it is stopped when the running test (or suite) ends,
        newest first, so a schedule stops before its injector. Injectors and schedules end with their
        test or suite by design (the keywords' docs say so): one still running then is no news."""
        self.own(thing, thing.name, thing.stop)
        self.sources.add(thing.name)

    @staticmethod
    def forget(thing: Injector | Schedule) -> None:
        """``thing`` was stopped by a keyword: nothing left to stop at the end of the test."""
        OWNER.forget(thing)

    def events(self) -> list[Event]:
        """This library's part of the run timeline: what its injectors and schedules recorded."""
        return [event for event in self.timeline.events if event.source in self.sources]
