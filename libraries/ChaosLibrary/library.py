"""The ChaosLibrary keyword library: thin keywords over ``nvmechaos.faults``, ``nvmechaos.analysis``
and ``nvmechaos.verdicts``."""

from __future__ import annotations

from ChaosLibrary.context import OWNER_NAME, ChaosContext
from ChaosLibrary.impact import ImpactKeywords
from ChaosLibrary.injectors import InjectorKeywords
from ChaosLibrary.schedules import ScheduleKeywords
from nvmechaos_robot import KeywordLibrary

__version__ = "0.1.0"


class ChaosLibrary(KeywordLibrary):
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
    Every start, apply, clear and stop is recorded with ``time.monotonic()`` and ``time.time()`` on
    the run's one timeline (with VmLibrary's QMP faults and IntegrityLibrary's power events);
    `Get Fault Timeline` returns the events (and logs them), to line up with fio's interval logs,
    and every test's log ends with the part of the timeline it recorded.

    = Impact verdicts =
    `Get Fault Impact`, `Fault Impact Should Be Within`, `Fault Should Add Latency` and
    `IO Throttle Should Be Honoured` judge what the faults on the timeline did to a fio run:
    baseline before, depth during, recovery after, against the run's own noise band.

    = Times =
    Delays (``read=``, ``delay=``, compensation) need a unit: ``100ms``, ``0.1s``, ``250us``.
    Durations, periods and start times (``duration=``, ``every=``, ``start_after=``, plan ``at``)
    are Robot times (``3s``, ``500ms``, ``2 min``; a bare number means seconds); every one of them
    is at most 3600 s. Timeouts (`Wait For Fault Schedule`) are Robot times too (``30s``,
    ``5 min``, ``2 hours``). A value that is not a time fails before the keyword starts anything.

    = Importing =
    The library takes no arguments and starts nothing on import:
    | Library    ChaosLibrary

    = Clean-up =
    The library is its own listener: schedules and injectors still running when the test (or
    suite, for those started in its setup) ends are stopped, newest first (a schedule before its
    injector); their servers also die with the Robot process if that is killed. A server that
    died mid-run makes the next keyword using it fail with its exit status and last log line.
    """

    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "chaos-"
    OWNER_NAME = OWNER_NAME

    def __init__(self) -> None:
        """Import the library; it takes no arguments and starts nothing on import.

        Injectors write their logs under ``${OUTPUT DIR}/faults/<suite>/``; their private folders
        (sockets, scratch images) go under ``$NVMECHAOS_RUN_DIR`` (default: the temporary folder).

        Example:
        | Library    ChaosLibrary
        """
        self._ctx = ChaosContext()
        super().__init__(
            [InjectorKeywords(self._ctx), ScheduleKeywords(self._ctx), ImpactKeywords(self._ctx)]
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope
