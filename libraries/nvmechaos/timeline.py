"""The run's one timeline: every fault, QMP event, power cut and drive event, on one clock.

Every event is stamped with ``time.monotonic()`` (the clock the fio runner, the QMP session and the
injectors share) and ``time.time()`` (to line it up with fio's logs and the wall clock). A source —
an injector, a VM's QMP faults, a power-loss drive, a schedule — writes through its own
:class:`Channel`, which remembers that source's events and adds each to the shared
:class:`Timeline`, so one object answers "what did this injector do" and the timeline answers "what
happened in this run", whatever the source.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Event:
    """One entry of the timeline.

    ``source`` names who recorded it (an injector's name, ``qmp:<vm>``, a drive, a VM); ``kind`` what
    it is about (``latency``, ``errors``, ``injector``, ``hotplug``, ``throttle``, ``power``, ...);
    ``action`` what happened (``start``, ``apply``, ``clear``, ``stop``, ``died``, ``cut``, ...);
    ``params`` the details (delays in seconds, limits, devices).
    """

    kind: str
    action: str
    params: Mapping[str, Any]
    monotonic: float
    wall: float
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "action": self.action,
            "params": dict(self.params),
            "monotonic": self.monotonic,
            "wall": self.wall,
        }


@dataclass
class Timeline:
    """A thread-safe, append-only list of events, oldest first."""

    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        kind: str,
        action: str,
        params: Mapping[str, Any] | None = None,
        source: str = "",
        *,
        monotonic: float | None = None,
        wall: float | None = None,
    ) -> Event:
        """Append an event stamped now, or at ``monotonic``/``wall`` (e.g. when a QMP event arrived)."""
        event = Event(
            kind=kind,
            action=action,
            params=MappingProxyType(dict(params or {})),
            monotonic=self.clock() if monotonic is None else monotonic,
            wall=self.wall_clock() if wall is None else wall,
            source=source,
        )
        self.add(event)
        return event

    def add(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        """Every event, in the order of its monotonic stamp."""
        with self._lock:
            return sorted(self._events, key=lambda e: e.monotonic)

    def since(self, monotonic: float) -> list[Event]:
        """The events stamped at or after ``monotonic``."""
        return [event for event in self.events if event.monotonic >= monotonic]

    def channel(self, source: str) -> Channel:
        """A writer for ``source`` whose events also land here."""
        return Channel(source, self)


class Channel:
    """One source's part of a timeline: records with its name and remembers its own events."""

    def __init__(self, source: str, timeline: Timeline | None = None) -> None:
        self.source = source
        self.timeline = timeline if timeline is not None else Timeline()
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        monotonic: float | None = None,
        wall: float | None = None,
    ) -> Event:
        event = self.timeline.record(kind, action, params, self.source, monotonic=monotonic, wall=wall)
        with self._lock:
            self._events.append(event)
        return event

    @property
    def events(self) -> list[Event]:
        """This source's events, in the order of their monotonic stamp."""
        with self._lock:
            return sorted(self._events, key=lambda e: e.monotonic)


__all__ = ["Channel", "Event", "Timeline"]
