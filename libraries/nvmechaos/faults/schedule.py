"""Fault schedules: apply and clear faults on any injector at planned times, in the background.

A schedule is a list of windows ``(at, duration, params)`` relative to its start, e.g. "100 ms read
delay for 3 s every 10 s, 3 times" (:meth:`Schedule.periodic`). It runs on its own thread, keeps to
the plan against the monotonic clock (no drift from the time apply/clear take), stops cleanly (the
active fault is cleared), and remembers errors instead of losing them on its thread.

The clock and the wait are injectable, so the planning logic is tested without sleeping.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nvmechaos.faults.base import FaultError, Injector
from nvmechaos.faults.control import (
    OPERATIONS,
    ErrorParams,
    FaultParamError,
    FaultParams,
    LatencyParams,
    Operation,
    check_seconds,
    parse_delay,
    parse_duration,
    parse_operations,
)


@dataclass(frozen=True)
class Window:
    """Apply ``params`` at ``at`` seconds after the schedule starts, clear after ``duration``."""

    at: float
    duration: float
    params: FaultParams

    def __post_init__(self) -> None:
        if self.at < 0:
            raise FaultParamError(f"window start {self.at} s is negative")
        if self.duration <= 0:
            raise FaultParamError(f"window duration {self.duration} s is not positive")

    @property
    def end(self) -> float:
        return self.at + self.duration


@dataclass(frozen=True)
class Step:
    """One planned action: at ``at`` seconds, ``apply`` ``params`` or clear its kind."""

    at: float
    action: str
    params: FaultParams


def plan(windows: Iterable[Window]) -> Iterator[Step]:
    """The ordered apply/clear steps of ``windows`` (which must be in order of ``at``).

    Windows of the same kind must not overlap (a later apply would otherwise be cleared by the
    earlier window's end); windows of different kinds may.

    Raises:
        FaultParamError: windows out of order, or overlapping windows of the same kind.
    """
    pending: list[Step] = []  # clears not yet emitted, in time order
    last_end: dict[str, float] = {}
    previous_at = -1.0
    for window in windows:
        if window.at < previous_at:
            raise FaultParamError(
                f"window at {window.at:g} s comes before the previous one at {previous_at:g} s"
            )
        previous_at = window.at
        kind = window.params.kind
        if window.at < last_end.get(kind, -1.0):
            raise FaultParamError(
                f"{kind} window at {window.at:g} s overlaps the previous one (ends at {last_end[kind]:g} s)"
            )
        last_end[kind] = window.end
        # clears due before (or at) this apply come first
        pending.sort(key=lambda step: step.at)
        while pending and pending[0].at <= window.at:
            yield pending.pop(0)
        yield Step(window.at, "apply", window.params)
        pending.append(Step(window.end, "clear", window.params))
    pending.sort(key=lambda step: step.at)
    yield from pending


def periodic_windows(
    params: FaultParams, duration: float, every: float, count: int | None = None, start_after: float = 0.0
) -> Iterator[Window]:
    """``count`` windows (endless when None) of ``duration`` seconds, one every ``every`` seconds.

    Raises (at once, not when iterated):
        FaultParamError: non-positive duration/every/count, or duration longer than the period.
    """
    if duration <= 0:
        raise FaultParamError(f"duration {duration:g} s is not positive")
    if every <= 0:
        raise FaultParamError(f"period (every) {every:g} s is not positive")
    if duration > every:
        raise FaultParamError(f"duration {duration:g} s is longer than the period (every) {every:g} s")
    if count is not None and count <= 0:
        raise FaultParamError(f"count {count} is not positive")
    if start_after < 0:
        raise FaultParamError(f"start_after {start_after:g} s is negative")
    indices: Iterable[int] = range(count) if count is not None else itertools.count()
    return (Window(start_after + index * every, duration, params) for index in indices)


def repeated_fault(
    *,
    delay: str | None = None,
    error_rate: str | float | None = None,
    operation: str | Operation | list[str] = "read,write,flush",
    errno: str | int | None = None,
) -> FaultParams:
    """The fault a periodic schedule repeats: a latency spike of ``delay`` (with its unit, see
    :func:`~nvmechaos.faults.control.parse_delay`) on each ``operation``, or I/O errors on a
    fraction ``error_rate`` of them (``errno``, default EIO).

    Raises:
        FaultParamError: both or neither of ``delay`` and ``error_rate``, ``errno`` with a delay, a
            delay that adds nothing, or a bad delay, rate, operation or errno.
    """
    if (delay is None) == (error_rate is None):
        raise FaultParamError("give exactly one of delay= (latency) and error_rate= (I/O errors)")
    if delay is None:
        return ErrorParams.parse(rate=error_rate or "0", operation=operation, errno=errno or "EIO")
    if errno is not None:
        raise FaultParamError("errno belongs to error_rate schedules, not to delay")
    operations = parse_operations(operation)
    seconds = parse_delay(delay, "delay")  # named as the user wrote it
    params = LatencyParams(**dict.fromkeys(operations, seconds))
    if params.is_zero:
        raise FaultParamError(f"delay '{delay}' adds no latency")
    return params


_WINDOW_KEYS = {"at", "duration", "error_rate", "operation", "errno", *OPERATIONS}


def window_from_mapping(item: Mapping[str, Any], where: str) -> Window:
    """One window from data: ``{at: 2s, duration: 3s, read: 100ms}`` (a latency spike; any of
    read/write/flush/trim/zero) or ``{at: 6s, duration: 1s, error_rate: 0.1, operation: write,
    errno: EIO}`` (I/O errors).

    Raises:
        FaultParamError: naming ``where`` (file and index) and the key at fault.
    """
    if not isinstance(item, Mapping):
        raise FaultParamError(f"{where}: a window is a mapping with at, duration and the fault, not '{item}'")
    unknown = sorted(str(key) for key in item if key not in _WINDOW_KEYS)
    if unknown:
        raise FaultParamError(f"{where}: unknown key '{unknown[0]}' (use {', '.join(sorted(_WINDOW_KEYS))})")
    for key in ("at", "duration"):
        if key not in item:
            raise FaultParamError(f"{where}: key '{key}' is missing")
    delays = {op: item[op] for op in OPERATIONS if op in item}
    try:
        at = parse_duration(item["at"], "at")
        duration = parse_duration(item["duration"], "duration")
        params: FaultParams
        if delays and "error_rate" in item:
            raise FaultParamError("give delays (read, write, ...) or error_rate, not both")
        if delays:
            if "operation" in item or "errno" in item:
                raise FaultParamError("operation and errno belong to error_rate windows")
            params = LatencyParams.parse(**delays)
        elif "error_rate" in item:
            params = ErrorParams.parse(
                rate=item["error_rate"],
                operation=item.get("operation", "read"),
                errno=item.get("errno", "EIO"),
            )
        else:
            raise FaultParamError("no fault: give delays (read, write, ...) or error_rate")
        return Window(at, duration, params)
    except FaultParamError as error:
        raise FaultParamError(f"{where}: {error}") from None


def load_plan(source: str | Path | Sequence[Mapping[str, Any]]) -> list[Window]:
    """Windows from a YAML file (a list, or a mapping with ``windows:``) or from a list of mappings,
    in order of ``at``; see :func:`window_from_mapping`.

    Raises:
        FaultParamError: unreadable or malformed file, or a bad window (naming file, index and key).
    """
    if isinstance(source, str | Path):
        name = str(source)
        try:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except OSError as error:
            raise FaultParamError(f"cannot read fault plan '{name}': {error.strerror}") from None
        except yaml.YAMLError as error:
            raise FaultParamError(f"fault plan '{name}' is not valid YAML: {error}".splitlines()[0]) from None
        if isinstance(data, Mapping):
            data = data.get("windows")
    else:
        name, data = "fault plan", source
    if not isinstance(data, list) or not data:
        raise FaultParamError(f"{name}: expected a non-empty list of windows (or windows: [...])")
    windows = [window_from_mapping(item, f"{name}, window {index + 1}") for index, item in enumerate(data)]
    windows.sort(key=lambda window: window.at)
    list(plan(windows))  # overlaps of one kind, said at load time
    return windows


class Schedule:
    """Drive an injector through ``windows`` on a background thread."""

    def __init__(
        self,
        injector: Injector,
        windows: Iterable[Window],
        *,
        name: str = "schedule",
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        """``wait(seconds)`` blocks up to ``seconds`` and returns True when the schedule was stopped;
        by default it waits on the stop event."""
        self.injector = injector
        self.name = name
        # A finite plan is checked at once (overlaps, order); an endless one as it runs.
        self._steps: Iterable[Step] = (
            list(plan(windows)) if isinstance(windows, list | tuple) else plan(windows)
        )
        self._clock = clock
        self._stop_event = threading.Event()
        self._wait = wait or self._stop_event.wait
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._active: set[str] = set()
        self.error: str | None = None
        self.applied = 0
        self.started_at: float | None = None
        self.finished = threading.Event()

    @classmethod
    def periodic(
        cls,
        injector: Injector,
        params: FaultParams,
        *,
        duration: float,
        every: float,
        count: int | None = None,
        start_after: float = 0.0,
        name: str = "schedule",
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> Schedule:
        """``params`` for ``duration`` seconds every ``every`` seconds, ``count`` times (endless when
        None), the first ``start_after`` seconds after the start.

        Raises:
            FaultParamError: a time that is negative (``duration`` and ``every``: not above 0) or
                longer than the 3600 s maximum, or as :func:`periodic_windows`.
        """
        windows = periodic_windows(
            params,
            check_seconds(duration, "duration"),
            check_seconds(every, "every"),
            count,
            check_seconds(start_after, "start_after", allow_zero=True),
        )
        return cls(injector, windows, name=name, clock=clock, wait=wait)

    def start(self) -> None:
        if self._thread is not None:
            raise FaultError(f"{self.name} is already started")
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Execute the plan on the calling thread (what the background thread runs)."""
        self.started_at = start = self._clock()
        try:
            for step in self._steps:
                remaining = start + step.at - self._clock()
                if remaining > 0 and self._wait(remaining):
                    return
                if self._stop_event.is_set():
                    return
                with self._lock:
                    if step.action == "apply":
                        self.injector.apply(step.params)
                        self._active.add(step.params.kind)
                        self.applied += 1
                    else:
                        self.injector.clear(step.params.kind)
                        self._active.discard(step.params.kind)
        except (FaultError, FaultParamError) as error:
            self.error = str(error)
        finally:
            self._clear_active()
            self.finished.set()

    def _clear_active(self) -> None:
        with self._lock:
            for kind in sorted(self._active):
                try:
                    self.injector.clear(kind)
                except FaultError as error:
                    self.error = self.error or str(error)
            self._active.clear()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the plan is done; True when it is."""
        return self.finished.wait(timeout)

    def wait(self, timeout: float) -> None:
        """Wait until every window has been applied and cleared.

        Raises:
            FaultParamError: ``timeout`` (seconds) is not above 0.
            FaultError: not done within ``timeout``, or stopped on an error (see :meth:`check`).
        """
        if not timeout > 0:
            raise FaultParamError(f"timeout {timeout:g} s is not positive")
        if not self.join(timeout):
            raise FaultError(f"{self.name} was not done within {timeout:g} s")
        self.check()

    def check(self) -> None:
        """Raises :class:`FaultError` when the schedule stopped on an error (the injector died)."""
        if self.error:
            raise FaultError(f"{self.name} stopped: {self.error}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the plan; the fault it applied (if any) is cleared. Safe to call more than once.

        Raises:
            FaultError: the thread did not end within ``timeout``.
        """
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise FaultError(f"{self.name} did not stop within {timeout:g} s")
        else:
            self.finished.set()
