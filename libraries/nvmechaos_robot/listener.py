"""The libraries' own listener: know which test or suite is running, and end what it left behind."""

from __future__ import annotations

from typing import Any

from robot.api import logger


class ScopedListener:
    """Listener (API v3) mixin that keeps ``self.scope``: the running test, else the running suite.

    Scope names carry the library's ``SCOPE_PREFIX`` so libraries that share the process registry
    never end each other's processes. When a test or suite ends, :meth:`release` is asked to end
    what was started in it; whatever it reports is logged as a warning. ``close`` releases all.
    """

    ROBOT_LISTENER_API_VERSION = 3
    SCOPE_PREFIX = ""

    def __init__(self) -> None:
        self.ROBOT_LIBRARY_LISTENER = self
        self._scopes: list[str] = []

    @property
    def scope(self) -> str:
        return self._scopes[-1] if self._scopes else ""

    def release(self, scope: str | None, what: str) -> list[str]:
        """End what ``scope`` (everything when None) started; return one line per thing worth a warning."""
        raise NotImplementedError

    def scope_changed(self, scope: str) -> None:
        """Hook for libraries that keep the scope elsewhere too (their keyword context)."""

    def start_suite(self, data: Any, result: Any) -> None:
        self._enter(f"{self.SCOPE_PREFIX}suite:{data.id}")

    def end_suite(self, data: Any, result: Any) -> None:
        self._leave(f"{self.SCOPE_PREFIX}suite:{data.id}", "suite")

    def start_test(self, data: Any, result: Any) -> None:
        self._enter(f"{self.SCOPE_PREFIX}test:{data.id}")

    def end_test(self, data: Any, result: Any) -> None:
        self._leave(f"{self.SCOPE_PREFIX}test:{data.id}", "test")

    def close(self) -> None:
        for line in self.release(None, "run"):
            logger.warn(line)

    def _enter(self, scope: str) -> None:
        self._scopes.append(scope)
        self.scope_changed(scope)

    def _leave(self, scope: str, what: str) -> None:
        try:
            for line in self.release(scope, what):
                logger.warn(line)
        finally:
            if self._scopes and self._scopes[-1] == scope:
                self._scopes.pop()
            self.scope_changed(self.scope)
