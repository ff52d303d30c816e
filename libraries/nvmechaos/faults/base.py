"""What every fault injector shares: the interface a schedule drives.

An injector is started once, then faults are applied and cleared any number of times while a
workload runs, then it is stopped. Every start, apply, clear and stop is recorded on the run's
timeline (:mod:`nvmechaos.timeline`) through the injector's own channel; impact verdicts and charts
read it.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults.control import ErrorParams, FaultParamError, FaultParams, LatencyParams, check_seconds
from nvmechaos.timeline import Channel, Event, Timeline

KINDS = ("latency", "errors", "stall")


class Clock(str, Enum):
    """The clock fault times are given on: ``monotonic`` (``time.monotonic()``, the clock fio runs,
    QMP events and the fault timeline share) or ``wall`` (``time.time()``: epoch seconds, as in fio
    logs written with ``log_unix_epoch=1``)."""

    monotonic = "monotonic"
    wall = "wall"

    def now(self) -> float:
        """The time now on this clock."""
        return time.monotonic() if self is Clock.monotonic else time.time()


class FaultError(NvmeChaosError):
    """A fault injector could not do what was asked."""


class InjectorStartError(FaultError):
    """The injector's server could not be started (program missing, port or socket in use, ...)."""


class InjectorDiedError(FaultError):
    """The injector's server ended while it was still in use."""


class Injector(ABC):
    """The interface shared by every fault injector (NBD servers here; QMP faults can implement it too).

    Subclasses implement :meth:`_start`, :meth:`_set`, :meth:`_stop` and :meth:`is_alive`; this class
    validates, records the timeline, and runs the timers of faults with a duration.
    """

    def __init__(self, name: str, timeline: Timeline | None = None) -> None:
        self.name = name
        self.log = Channel(name, timeline)
        self._lock = threading.RLock()
        self._active: dict[str, FaultParams] = {}
        self._generation: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._timers: dict[str, threading.Event] = {}
        self._timer_errors: list[str] = []
        self._started = False
        self._stopped = False

    # -- what subclasses provide --------------------------------------------------------------
    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _set(self, active: Mapping[str, FaultParams]) -> None:
        """Make ``active`` (kind -> params; a missing kind means none) what the server does now."""

    @abstractmethod
    def _stop(self) -> None: ...

    @abstractmethod
    def is_alive(self) -> bool: ...

    @abstractmethod
    def death_message(self) -> str:
        """One line saying that the server no longer runs, how it ended and its last words."""

    def describe(self) -> dict[str, Any]:
        """What this injector is and does right now (for logs and reports)."""
        with self._lock:
            return {
                "name": self.name,
                "type": type(self).__name__,
                "alive": self.is_alive(),
                "active": {kind: params.as_dict() for kind, params in self._active.items()},
            }

    # -- the interface ---------------------------------------------------------------------------
    @property
    def timeline(self) -> list[Event]:
        """Every start/apply/clear/stop of this injector, oldest first."""
        return self.log.events

    @property
    def active(self) -> dict[str, FaultParams]:
        with self._lock:
            return dict(self._active)

    @property
    def timer_errors(self) -> list[str]:
        """Errors of duration timers that could not clear their fault (the injector died)."""
        with self._lock:
            return list(self._timer_errors)

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise FaultError(f"{self.name} is already started")
            self._start()
            self._started = True
            self.log.record("injector", "start", self.describe_start())

    def describe_start(self) -> dict[str, Any]:
        return {}

    def ensure_alive(self) -> None:
        """Raises :class:`InjectorDiedError` (how the server ended, its last log line) when the server
        no longer runs; records nothing (applying a fault to a dead server records its death)."""
        if not self.is_alive():
            raise InjectorDiedError(self.death_message())

    def check_timers(self) -> None:
        """Raises :class:`FaultError` naming every ``duration`` timer that could not clear its fault
        (the server had died), e.g. after :meth:`stop`."""
        problems = self.timer_errors
        if problems:
            raise FaultError(f"{self.name}: {'; '.join(problems)}")

    def set_latency_compensation(self, seconds: float) -> None:
        """Take ``seconds`` off every injected delay (see :class:`~nvmechaos.faults.nbd.NbdInjector`).

        Raises:
            FaultError: this injector has none.
        """
        raise FaultError(f"{self.name} has no latency compensation")

    def apply(self, params: FaultParams, duration: float | None = None) -> Event:
        """Apply ``params`` now (replacing the active fault of the same kind); with ``duration``
        (seconds), clear it again after that long unless something else replaced it meanwhile.

        Raises:
            FaultError: not started, stopped, or the server died.
            FaultParamError: ``duration`` is not above 0 or longer than the 3600 s maximum.
        """
        if duration is not None:
            duration = check_seconds(duration, "duration")
        kind = params.kind
        with self._lock:
            self._check_usable()
            self._cancel_timer(kind)
            new_active = dict(self._active)
            new_active[kind] = params
            self._set(new_active)
            self._active = new_active
            self._generation[kind] += 1
            event = self.log.record(
                kind, "apply", {**params.as_dict(), **({"duration": duration} if duration else {})}
            )
            if duration is not None:
                self._start_timer(kind, duration, self._generation[kind])
            return event

    def clear(self, kind: str | None = None) -> list[Event]:
        """Clear the active fault of ``kind`` (``latency`` or ``errors``), or all when None.

        Raises:
            FaultError: not started, stopped, or the server died.
            FaultParamError: unknown kind.
        """
        kinds = self._kinds(kind)
        with self._lock:
            self._check_usable()
            for name in kinds:
                self._cancel_timer(name)
            was_active = set(self._active)
            new_active = {k: v for k, v in self._active.items() if k not in kinds}
            self._set(new_active)
            self._active = new_active
            events = []
            for name in kinds:
                self._generation[name] += 1
                if name in was_active:  # clearing what is not there is not an event
                    events.append(self.log.record(name, "clear"))
            return events

    def stop(self) -> None:
        """Stop the server; safe to call more than once and after the server died."""
        with self._lock:
            for name in list(self._timers):
                self._cancel_timer(name)
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
            self._active = {}
            self._stop()
            self.log.record("injector", "stop")

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _kinds(kind: str | None) -> tuple[str, ...]:
        if kind is None:
            return KINDS
        if kind not in KINDS:
            raise FaultParamError(f"unknown fault kind '{kind}' (use {' or '.join(KINDS)})")
        return (kind,)

    def _check_usable(self) -> None:
        if not self._started:
            raise FaultError(f"{self.name} is not started")
        if self._stopped:
            raise FaultError(f"{self.name} is stopped")
        if not self.is_alive():
            message = self.death_message()
            self.log.record("injector", "died", {"message": message})
            raise InjectorDiedError(message)

    def _cancel_timer(self, kind: str) -> None:
        cancel = self._timers.pop(kind, None)
        if cancel is not None:
            cancel.set()

    def _start_timer(self, kind: str, duration: float, generation: int) -> None:
        cancel = threading.Event()
        self._timers[kind] = cancel
        deadline = time.monotonic() + duration

        def expire() -> None:
            remaining = deadline - time.monotonic()
            if remaining > 0 and cancel.wait(remaining):
                return
            with self._lock:
                if cancel.is_set() or self._generation[kind] != generation or self._stopped:
                    return
                self._timers.pop(kind, None)
                try:
                    self.clear(kind)
                except FaultError as error:
                    self._timer_errors.append(f"clearing {kind} after {duration:g} s failed: {error}")

        threading.Thread(target=expire, name=f"{self.name}-{kind}-timer", daemon=True).start()


#: Drive-model states (``begin`` … ``end`` spans on the timeline) and their chart labels.
DRIVE_SPAN_LABELS = {
    "gc": "GC",
    "buffer_full": "buffer full",
    "thermal_throttle": "thermal throttle",
    "critical_warning": "critical warning",
}
#: Actions that open and close a span: a fault's apply/clear, a drive state's begin/end.
OPENS = ("apply", "begin")
CLOSES = ("clear", "end")


def describe_params(kind: str, params: Mapping[str, Any]) -> str:
    """A short label of a fault of any source: ``read 100 ms, write 50 ms``, ``EIO 10 % read,write``,
    ``unplug nvme0`` (QMP hot-unplug), ``throttle iops-total 300`` (QMP throttle)."""
    if kind == "latency":
        parts = [f"{op} {value * 1000:g} ms" for op, value in params.items() if op != "duration"]
        return ", ".join(parts) or "latency"
    if kind == "errors":
        rate = float(params.get("rate", 0.0)) * 100
        return f"{params.get('errno', 'EIO')} {rate:g} % {','.join(params.get('operations', []))}".strip()
    if kind == "stall":
        return f"stall {float(params.get('seconds', 0)):g} s"
    if kind == "hotplug":
        return f"unplug {params.get('device', '')}".strip()
    if kind == "throttle":
        limits = ", ".join(f"{key} {value}" for key, value in params.items() if key != "device")
        return f"throttle {limits}".strip()
    if kind in DRIVE_SPAN_LABELS:
        bits = params.get("critical_warning")
        return DRIVE_SPAN_LABELS[kind] + (f" 0x{int(bits):02x}" if bits else "")
    return kind


def fault_windows(
    events: Iterable[Event],
    origin: float = 0.0,
    clock: Clock | str = Clock.monotonic,
    until: float | None = None,
) -> list[tuple[float, float, str]]:
    """The spans during which faults were active, as ``(start, end, label)`` in seconds from
    ``origin`` on ``clock`` (``monotonic`` or ``wall``): what a chart shades and an impact verdict
    compares against. Events of any source count: NBD injectors (``latency``, ``errors``), QMP
    faults (``hotplug``: device_del until the namespace is usable again; ``throttle``: set until
    cleared) and emulated drives' states (``gc``, ``buffer_full``, ``thermal_throttle``,
    ``critical_warning``: ``begin`` until ``end``).

    A span opens at an ``apply`` (``begin``) and ends at the ``clear`` (``end``) of its kind, at
    the next opening of the same kind and source (which replaced it), or when its source stopped or
    died; other actions (a latency compensation, a hot-plug's device_add) change no span. One still
    open ends at ``until`` (absolute, on the same clock), or is left out without it.

    Raises:
        ValueError: ``clock`` is neither ``monotonic`` nor ``wall``.
    """
    try:
        wall = Clock(clock) is Clock.wall
    except ValueError:
        raise ValueError(f"clock '{clock}' is neither monotonic nor wall") from None
    open_spans: dict[tuple[str, str], tuple[float, str]] = {}
    spans: list[tuple[float, float, str]] = []

    def close(key: tuple[str, str], at: float) -> None:
        start, label = open_spans.pop(key)
        spans.append((start - origin, at - origin, label))

    for event in sorted(events, key=lambda e: e.monotonic):
        at = event.wall if wall else event.monotonic
        key = (event.source, event.kind)
        if event.action in ("stop", "died"):
            for other in [k for k in open_spans if k[0] == event.source]:
                close(other, at)
        elif event.kind == "injector":
            continue
        elif event.action in OPENS:
            if key in open_spans:
                close(key, at)
            open_spans[key] = (at, describe_params(event.kind, event.params))
        elif event.action in CLOSES and key in open_spans:
            close(key, at)
    if until is not None:
        for key in list(open_spans):
            close(key, until)
    return sorted(spans)


__all__ = [
    "KINDS",
    "Clock",
    "ErrorParams",
    "FaultError",
    "FaultParams",
    "Injector",
    "InjectorDiedError",
    "InjectorStartError",
    "LatencyParams",
    "describe_params",
    "fault_windows",
]
