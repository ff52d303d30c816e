"""Keywords that start NBD fault injectors and change their latency and errors live."""

from __future__ import annotations

import time
from datetime import timedelta

from robot.api import logger
from robot.api.deco import keyword

from ChaosLibrary.context import ChaosContext, injector_handle
from nvmechaos.faults import (
    Clock,
    ErrorParams,
    Injector,
    InjectorEngine,
    LatencyParams,
    NbdInjector,
    Operation,
    StallParams,
    Transport,
    fault_windows,
    make_injector,
    parse_delay,
    resolve_engine,
)
from nvmechaos.timeline import Event
from nvmechaos.units import converted_flag
from nvmechaos_robot.times import optional_seconds


def _for(value: timedelta | None) -> str:
    return f" for {value.total_seconds():g} s" if value is not None else ""


class InjectorKeywords:
    """Start an injector, inject latency spikes and I/O errors, read the fault timeline."""

    def __init__(self, context: ChaosContext) -> None:
        self.ctx = context

    @keyword
    def start_latency_injector(
        self,
        backing: str | None = None,
        size: str | int | None = None,
        *,
        engine: InjectorEngine = InjectorEngine.auto,
        transport: Transport | None = None,
        port: int = 0,
        name: str | None = None,
        nbdkit: str = "nbdkit",
    ) -> NbdInjector:
        """Serve a disk image over NBD through a fault injector and return its handle.

        ``backing`` is the image file: an existing regular file, or, when missing, created sparse
        with ``size`` in a folder that must exist (and kept after the injector). Without it a
        scratch image of ``size`` is used and deleted at the end. ``size`` takes ``64M``, ``1GiB``
        or bytes; with an existing ``backing`` it may be left out (the file's size).

        ``engine`` is ``nbdkit`` (nbdkit with our Python plugin; packages ``nbdkit`` and
        ``nbdkit-plugin-python``), ``python`` (our pure-Python NBD server, for hosts without
        nbdkit) or ``auto`` (nbdkit when installed). ``transport`` is ``unix`` (a socket in a
        private 0700 folder; the default on Linux) or ``tcp`` (127.0.0.1, ``port`` 0 picks a free
        one; the default on Windows). ``nbdkit`` is the nbdkit program. ``name`` (letters, digits,
        ``.``, ``_``, ``-``) names the injector in the timeline and its log file.

        Every argument is checked before anything starts: a bad one fails in one line and leaves no
        folder, file or process behind.

        The handle has ``uri`` (for fio's nbd engine: ``ioengine=nbd    uri=${injector.uri}``),
        ``qemu_blockdev(node_name)`` (a QEMU ``-blockdev`` value) and ``blockdev_options(node_name)``
        (the same for QMP ``blockdev-add``). The injector is stopped when the test (or the suite,
        when started in its setup) ends.

        Example:
        | ${injector} =    Start Latency Injector    size=256M    engine=nbdkit
        | ${fio} =    Start Fio Job    nbd_randread    ioengine=nbd    uri=${injector.uri}
        | ${drive} =    Evaluate    $injector.qemu_blockdev("disk0")
        """
        chosen = resolve_engine(engine, nbdkit)
        injector = make_injector(
            chosen,
            backing,
            size,
            nbdkit=nbdkit,
            transport=transport,
            port=port,
            name=name or self.ctx.next_name(chosen),
            log_dir=self.ctx.log_dir,
            scope=f"chaos:{self.ctx.scope}",
            timeline=self.ctx.timeline,
        )
        injector.start()
        self.ctx.own_fault(injector)
        pid = injector.process.pid if injector.process else "?"
        logger.info(
            f"Started {injector.name} ({injector.engine}, pid {pid}) serving {injector.export_path} "
            f"({injector.size} bytes) at {injector.uri}; log {injector.log_path}"
        )
        return injector

    @keyword
    def inject_latency_spike(
        self,
        injector: Injector,
        *,
        read: str | None = None,
        write: str | None = None,
        flush: str | None = None,
        trim: str | None = None,
        zero: str | None = None,
        duration: timedelta | None = None,
    ) -> Event:
        """Delay every following request of the given operations by the given time, now.

        A delay needs its unit: ``100ms``, ``0.1s``, ``250us`` (also ``100 milliseconds``). A bare
        number such as ``read=100`` is refused (it would mean 100 seconds, never what is meant);
        ``0`` is no delay. A delay is at most 3600 s. Operations not given get no delay (a new spike
        replaces the previous one). With ``duration`` (a Robot time: ``3s``, ``500ms``; a bare
        number is seconds; at most 3600 s) the spike is cleared by itself after that long; without,
        it lasts until `Clear Latency`. Returns the timeline event of the apply (its ``monotonic``
        and ``wall`` times say when the spike began).

        Example:
        | Inject Latency Spike    ${injector}    read=100ms    write=50ms    duration=3s
        | Inject Latency Spike    ${injector}    flush=200ms
        """
        target = injector_handle(injector)
        params = LatencyParams.spike(read=read, write=write, flush=flush, trim=trim, zero=zero)
        event = target.apply(params, optional_seconds(duration))
        logger.info(f"{target.name}: latency {params.as_dict()} s{_for(duration)}")
        return event

    @keyword("Stall IO")
    def stall_io(self, injector: Injector, duration: timedelta, wait: bool = True) -> Event:
        """Answer no request for ``duration`` (a Robot time, e.g. ``8s``): the disk behind
        ``injector`` hangs, then comes back. Every request that arrives meanwhile, and every one in
        progress, is answered when the stall ends; nothing fails on the disk's side. What the
        workload sees depends on its host: a guest whose NVMe driver times out first
        (``io_timeout`` of `Launch NVMe VM`, Linux default 30 s) aborts the commands; QEMU
        answers the aborts but still waits for the backend, so the I/O completes when the stall
        ends (measured: an 8 s stall under a 5 s timeout is an 8.0 s gap, no error). Recorded on
        the fault timeline (``stall``, apply and clear); with
        ``wait`` (default) the keyword returns when the stall has ended. Returns the apply event.

        Examples:
        | Stall IO    ${injector}    3s
        | Stall IO    ${injector}    8s    wait=False
        """
        target = injector_handle(injector)
        params = StallParams(duration.total_seconds())
        event = target.apply(params, params.seconds)
        logger.info(f"{target.name}: no request answered for {params.seconds:g} s")
        if converted_flag(wait, "wait"):
            time.sleep(max(0.0, event.monotonic + params.seconds - time.monotonic()))
        return event

    @keyword
    def set_latency_compensation(self, injector: Injector, compensation: str) -> None:
        """Take ``compensation`` off every injected delay, so that what the workload measures grows
        by the delay asked for, not by the delay plus its own wake-up cost.

        A client adds some latency on its own when a request is slow (a sleeping thread to wake; in
        a VM, the interrupt path: about 0.6 ms under TCG). Measure it once per setup: inject 20 ms,
        compensation = measured added latency - 20 ms. Less than 10 ms, with its unit (``0.6ms``,
        ``600us``; a bare number is refused); ``0`` turns it off. It applies to the active spike
        at once and to every later one, and is recorded on the fault timeline.

        Example:
        | Set Latency Compensation    ${injector}    0.6ms
        """
        target = injector_handle(injector)
        target.set_latency_compensation(parse_delay(compensation, "compensation"))

    @keyword
    def clear_latency(self, injector: Injector) -> None:
        """Remove the added latency at once (I/O errors being injected stay).

        Example:
        | Clear Latency    ${injector}
        """
        injector_handle(injector).clear("latency")

    @keyword("Inject IO Errors")
    def inject_io_errors(
        self,
        injector: Injector,
        rate: str = "1.0",
        operation: Operation | str = "read",
        errno: str = "EIO",
        duration: timedelta | None = None,
    ) -> Event:
        """Fail a fraction of the following requests of ``operation`` with ``errno``, now.

        ``rate`` is a fraction (``0.1``) or a percentage (``10%``); ``operation`` is one of
        ``read``, ``write``, ``flush``, ``trim``, ``zero``, several separated by commas
        (``read,write``), or ``all``; ``errno`` one NBD can carry: ``EIO``, ``EPERM``, ``ENOMEM``,
        ``EINVAL``, ``ENOSPC``, ``EOVERFLOW``, ``ENOTSUP``, ``ESHUTDOWN``. ``duration`` as in
        `Inject Latency Spike` (a Robot time, at most 3600 s).

        Example:
        | Inject IO Errors    ${injector}    rate=0.1    operation=read,write    errno=EIO    duration=2s
        | Inject IO Errors    ${injector}    operation=write    errno=ENOSPC
        """
        target = injector_handle(injector)
        params = ErrorParams.parse(rate=rate, operation=operation, errno=errno)
        event = target.apply(params, optional_seconds(duration))
        logger.info(f"{target.name}: errors {params.as_dict()}{_for(duration)}")
        return event

    @keyword("Clear IO Errors")
    def clear_io_errors(self, injector: Injector) -> None:
        """Stop injecting I/O errors at once (added latency stays).

        Example:
        | Clear IO Errors    ${injector}
        """
        injector_handle(injector).clear("errors")

    @keyword
    def injector_should_be_alive(self, injector: Injector) -> None:
        """Fail when the injector's server is no longer running, saying how it ended and its last
        log line.

        Example:
        | Injector Should Be Alive    ${injector}
        """
        injector_handle(injector).ensure_alive()

    @keyword
    def stop_injector(self, injector: Injector) -> None:
        """Stop the injector's server and delete its private folder (the backing file stays).

        Safe after the server died or was already stopped (a warning says it had ended). Fails when
        a ``duration`` timer could not clear its fault because the server had died.

        Example:
        | Stop Injector    ${injector}
        """
        target = injector_handle(injector)
        alive = target.is_alive()
        target.stop()
        self.ctx.forget(target)
        if not alive:
            logger.warn(f"{target.name} had already ended before Stop Injector")
        target.check_timers()

    def _events(self, injector: Injector | None) -> list[Event]:
        if not injector:  # None, or an empty value given on purpose
            return self.ctx.events()
        return injector_handle(injector).timeline

    @keyword
    def get_fault_timeline(self, injector: Injector | None = None) -> list[Event]:
        """Return the fault events (start, apply, clear, stop) of ``injector``, or of every injector
        and schedule this library started when not given, oldest first, and log them as a table.

        Each event has ``kind`` (``latency``, ``errors``, ``injector``), ``action``, ``params``,
        ``monotonic`` (``time.monotonic()``, the clock fio runs and QMP events are stamped with),
        ``wall`` (``time.time()``) and ``source`` (the injector's name).

        Example:
        | ${events} =    Get Fault Timeline    ${injector}
        | Should Be Equal    ${events[1].action}    apply
        """
        events = self._events(injector)
        if events:
            self.ctx.log_timeline(events)
        return events

    @keyword
    def get_fault_windows(
        self, injector: Injector | None = None, origin: float = 0.0, clock: Clock = Clock.monotonic
    ) -> list[tuple[float, float, str]]:
        """Return the spans during which faults were active as ``(start, end, label)``, in seconds
        from ``origin`` on ``clock`` (``monotonic``: e.g. ``${fio.started_monotonic}``; or ``wall``:
        epoch seconds, as in fio logs written with ``log_unix_epoch=1``), for ``injector`` or every
        injector of this library. A fault still active ends now. This is what charts shade.

        Example:
        | ${windows} =    Get Fault Windows    ${injector}    origin=${fio.started_monotonic}
        | Should Be Equal    ${windows[0][2]}    read 100 ms
        """
        return fault_windows(self._events(injector), origin, clock, until=clock.now())
