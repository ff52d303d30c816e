"""State the keyword components share: what was started in which test or suite, and Robot glue."""

from __future__ import annotations

from pathlib import Path

from nvmechaos.faults import Injector, Schedule
from nvmechaos.timeline import Event
from nvmechaos_robot import KeywordContext, KeywordError, fail, safe_name

__all__ = ["ChaosContext", "KeywordError", "fail", "safe_name"]


class ChaosContext(KeywordContext):
    """Owns every injector and schedule the keywords started, by the test or suite that started them."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: set[str] = set()
        self._owned: list[tuple[str, Injector | Schedule]] = []
        self._counter = 0

    @property
    def log_dir(self) -> Path:
        suite = safe_name(str(self.variable("${SUITE NAME}", "suite")))
        return self.output_dir / "faults" / suite

    def next_name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"

    def own(self, thing: Injector | Schedule) -> None:
        self._owned.append((self.scope, thing))
        self.sources.add(thing.name)

    def events(self) -> list[Event]:
        """This library's part of the run timeline: what its injectors and schedules recorded."""
        return [event for event in self.timeline.events if event.source in self.sources]

    def forget(self, thing: Injector | Schedule) -> None:
        self._owned = [(scope, item) for scope, item in self._owned if item is not thing]

    @property
    def injectors(self) -> list[Injector]:
        return [item for _, item in self._owned if isinstance(item, Injector)]

    def release(self, scope: str | None) -> list[str]:
        """Stop schedules, then injectors, of ``scope`` (all when None); return what went wrong."""
        chosen = [item for s, item in self._owned if scope is None or s == scope]
        self._owned = [(s, item) for s, item in self._owned if not (scope is None or s == scope)]
        problems: list[str] = []
        for item in chosen:
            if isinstance(item, Schedule):
                try:
                    item.stop()
                except Exception as error:
                    problems.append(f"{item.name}: {error}")
        for item in chosen:
            if isinstance(item, Injector):
                try:
                    item.stop()
                except Exception as error:
                    problems.append(f"{item.name}: {error}")
        return problems
