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
      trim, zero), for a ``duration`` or until cleared; a delay needs its unit (``read=100ms``:
      a bare ``read=100`` would be 100 s and is refused) and is at most 3600 s;
    - `Inject IO Errors` / `Clear IO Errors`: a fraction of the requests of some operations fail
      with an errno (EIO, ENOSPC, ...);
    - `Start Fault Schedule` / `Stop Fault Schedule`: e.g. 100 ms for 3 s every 10 s, 3 times.

    = Fault timeline =
    Every start, apply, clear and stop is recorded with ``time.monotonic()`` and ``time.time()``;
    `Get Fault Timeline` returns the events (and logs them), to line up with fio's interval logs.

    = Times =
    Delays (``read=``, ``delay=``, compensation) need a unit: ``100ms``, ``0.1s``, ``250us``.
    Durations, periods and start times (``duration=``, ``every=``, ``start_after=``, plan ``at``)
    take the same units and a bare number means seconds; every one of them is at most 3600 s.
    Timeouts (`Wait For Fault Schedule`) are Robot times (``30s``, ``5 min``, ``2 hours``).

    = Importing =
    The library takes no arguments and starts nothing on import:
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
        """Import the library; it takes no arguments and starts nothing on import.

        Injectors write their logs under ``${OUTPUT DIR}/faults/<suite>/``; their private folders
        (sockets, scratch images) go under ``$NVMECHAOS_RUN_DIR`` (default: the temporary folder).

        Example:
        | Library    ChaosLibrary
        """
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
