"""The one owner of everything the keyword libraries start: VMs, fio runs, injectors, schedules,
power-loss drives and guest writers, each recorded with the library and the test or suite that
started it, and stopped when that test or suite ends (pass, failure, keyword timeout, Ctrl-C) or when
Robot closes the library.

Processes also die with a killed Robot (``PR_SET_PDEATHSIG``, :mod:`nvmechaos.process`); what the
owner adds is order and reporting: things are stopped newest first (a writer before its drive, a
schedule before its injector), and whatever was still running is named in a warning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class Owned:
    """One thing a library started: how to stop it and whether it still runs."""

    thing: object
    name: str
    library: str
    scope: str
    stop: Callable[[], object]
    running: Callable[[], bool]


class Owner:
    """Records what the libraries started, by library and scope; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: list[Owned] = []

    def own(
        self,
        thing: object,
        *,
        name: str,
        library: str,
        scope: str,
        stop: Callable[[], object],
        running: Callable[[], bool] = lambda: True,
    ) -> None:
        """Record ``thing``; ``stop`` ends it (safe to call when it already ended)."""
        with self._lock:
            self._owned.append(Owned(thing, name, library, scope, stop, running))

    def forget(self, thing: object) -> None:
        """Stop owning ``thing`` (it was stopped by a keyword, or handed over)."""
        with self._lock:
            self._owned = [item for item in self._owned if item.thing is not thing]

    def things(self, library: str, kind: type | None = None) -> list[object]:
        """What ``library`` owns now, oldest first (only instances of ``kind`` when given)."""
        with self._lock:
            return [
                item.thing
                for item in self._owned
                if item.library == library and (kind is None or isinstance(item.thing, kind))
            ]

    def release(self, library: str, scope: str | None, what: str) -> list[str]:
        """Stop what ``library`` started in ``scope`` (everything of ``library`` when None), newest
        first; return one line per thing that was still running or could not be stopped."""
        with self._lock:
            chosen = [
                item
                for item in self._owned
                if item.library == library and (scope is None or item.scope == scope)
            ]
            self._owned = [item for item in self._owned if item not in chosen]
        lines: list[str] = []
        for item in reversed(chosen):
            try:
                was_running = item.running()
                item.stop()
            except Exception as error:  # one failed stop must not leave the others running
                lines.append(f"{item.name}: stopping it at the end of the {what} failed: {error}")
                continue
            if was_running:
                lines.append(f"{item.name} was still running at the end of the {what}; stopped it.")
        return lines


#: One owner per Robot process (per pabot worker), shared by every keyword library.
OWNER = Owner()
