"""The ChaosLibrary keyword library: thin keywords over ``nvmechaos.faults``."""

from __future__ import annotations

from robotlibcore import DynamicCore

from ChaosLibrary.context import ChaosContext
from ChaosLibrary.impact import ImpactKeywords
from ChaosLibrary.injectors import InjectorKeywords
from ChaosLibrary.schedules import ScheduleKeywords
from nvmechaos_robot import ScopedListener

__version__ = "0.1.0"


class ChaosLibrary(DynamicCore, ScopedListener):
    """Inject latency spikes and I/O errors into a disk while a workload runs.

    = Injectors =
    `Start Latency Injector` serves a disk image over NBD through a fault injector: nbdkit with our
    Python plugin (Linux) or our pure-Python NBD server (any host). Point fio's nbd engine at it
    (``ioengine=nbd    uri=${injector.uri}``) for fast host-only chaos, or put it under a VM's
    drive (``${injector.qemu_blockdev("disk0")}``). Both engines take the same faults, changed live
    while I/O runs:

    - `Inject Latency Spike` / `Clear Latency`: added delay per operation (read, write, flush,
      trim, zero), for a ``duration`` or until cleared;
    - `Inject IO Errors` / `Clear IO Errors`: a fraction of the requests of some operations fail
      with an errno (EIO, ENOSPC, ...);
    - `Start Fault Schedule` / `Stop Fault Schedule`: e.g. 100 ms for 3 s every 10 s, 3 times.

    = Fault timeline =
    Every start, apply, clear and stop is recorded with ``time.monotonic()`` and ``time.time()``;
    `Get Fault Timeline` returns the events (and logs them), to line up with fio's interval logs.

    = Importing =
    | Library    ChaosLibrary

    = Clean-up =
    The library is its own listener: schedules and injectors still running when the test (or
    suite, for those started in its setup) ends are stopped; their servers also die with the
    Robot process if that is killed. A server that died mid-run makes the next keyword using it
    fail with its exit status and last log line.
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "chaos-"

    def __init__(self) -> None:
        ScopedListener.__init__(self)
        self._ctx = ChaosContext()
        DynamicCore.__init__(
            self, [InjectorKeywords(self._ctx), ScheduleKeywords(self._ctx), ImpactKeywords(self._ctx)]
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop the schedules, then the injectors, that ``scope`` started."""
        return [f"Clean-up of a fault injector failed: {problem}" for problem in self._ctx.release(scope)]
