"""The base every keyword library builds on: components (robotlibcore), its own listener, the one
owner, and the one error path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ClassVar

from robot.api import logger
from robot.errors import DataError
from robotlibcore import DynamicCore

from nvmechaos.errors import NvmeChaosError
from nvmechaos.process import REGISTRY
from nvmechaos.report import timeline_table_html
from nvmechaos_robot.context import RUN_TIMELINE, KeywordError, fail
from nvmechaos_robot.listener import ScopedListener
from nvmechaos_robot.owner import OWNER
from nvmechaos_robot.times import robot_time

# Test id -> monotonic time it started: the first library to see the test start puts it here, the
# first to see it end takes it out and logs its timeline, so that is logged once however many
# libraries the suite imports.
_TEST_STARTS: dict[str, float] = {}


class LibraryImportError(KeywordError, DataError):  # type: ignore[misc]
    """A library import refused in one line. Robot reports a ``DataError`` raised while a library is
    initialised as its message alone; any other error gets a traceback appended."""

    def __init__(self, message: str) -> None:
        DataError.__init__(self, message)


@contextmanager
def import_arguments() -> Iterator[None]:
    """The error path of a library's import, which is no keyword (``run_keyword`` does not see it):
    an engine error checking the import's arguments fails the import in one line.

    Example::

        with import_arguments():
            interval = parse_positive_int(log_avg_msec, "log_avg_msec")
    """
    try:
        yield
    except NvmeChaosError as error:
        raise LibraryImportError(str(error)) from None


class KeywordLibrary(DynamicCore, ScopedListener):  # type: ignore[misc]
    """A keyword library made of component classes.

    **One error path.** Keywords call the engine and let its errors rise: every
    :class:`~nvmechaos.errors.NvmeChaosError` becomes a one-line failure here, in
    :meth:`run_keyword`, so no keyword catches engine errors itself. Argument conversion (``timedelta``
    by :func:`~nvmechaos_robot.times.robot_time` in every library, enums, ``int``) happens in Robot
    before the call, so a bad argument fails before anything starts.

    **One owner.** What a keyword starts is recorded on :data:`~nvmechaos_robot.owner.OWNER` under
    the library's ``OWNER_NAME`` and the running test or suite; the library is its own listener and
    stops it when that test or suite ends.

    **One timeline.** At the end of every test that recorded anything on the run's timeline (faults,
    QMP faults, power events, from any library), the test's log ends with that timeline as one table.
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    #: Every duration argument is read one way, in every library (see :mod:`nvmechaos_robot.times`).
    ROBOT_LIBRARY_CONVERTERS: ClassVar[dict[type, Callable[..., object]]] = {timedelta: robot_time}
    OWNER_NAME = ""

    def __init__(self, components: list[object]) -> None:
        ScopedListener.__init__(self)
        DynamicCore.__init__(self, components)

    def run_keyword(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
        try:
            return DynamicCore.run_keyword(self, name, args, kwargs)
        except NvmeChaosError as error:
            fail(error)

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop what this library started in ``scope`` (see :class:`~nvmechaos_robot.owner.Owner`),
        then any process it started there that never became an owned handle: a start interrupted
        between spawning the process and returning it (a keyword timeout, Ctrl-C)."""
        lines = OWNER.release(self.OWNER_NAME or type(self).__name__, scope, what)
        for process in REGISTRY.stop_scope(scope, prefix=self.SCOPE_PREFIX):
            lines.append(f"{process.name} was left by an interrupted start; stopped it.")
        return lines

    def start_test(self, data: Any, result: Any) -> None:
        _TEST_STARTS.setdefault(str(data.id), time.monotonic())
        ScopedListener.start_test(self, data, result)

    def end_test(self, data: Any, result: Any) -> None:
        try:
            ScopedListener.end_test(self, data, result)
        finally:
            started = _TEST_STARTS.pop(str(data.id), None)
            events = RUN_TIMELINE.since(started) if started is not None else []
            if events:
                logger.info(f"Timeline of this test:{timeline_table_html(events)}", html=True)
