"""A QMP session that keeps working while other keywords run.

``qemu.qmp`` is asyncio-based; Robot runs keywords synchronously and leaves an event loop idle
between them. So each session owns a daemon thread running its own event loop: the connection's
reader runs there all the time, and every event is recorded the moment it arrives with
``time.monotonic()`` and wall-clock timestamps (the start of a fault timeline). The public API is
synchronous and thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from qemu.qmp import EventListener, ExecuteError, QMPClient
from qemu.qmp.message import Message

from nvmechaos.vm.errors import QmpError

T = TypeVar("T")
_LITERAL_START = (*tuple("-0123456789[{"), "true", "false", "null")


def typed(value: Any) -> Any:
    """Robot passes named arguments as strings; QMP wants numbers, booleans and objects typed.

    A string that is a JSON number, boolean, null, list or object becomes that value; others stay
    strings. (Pass ``arguments=`` a dictionary to keep e.g. a numeric string as a string.)
    """
    if isinstance(value, str) and value.strip().startswith(_LITERAL_START):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def command_arguments(
    command: str, arguments: str | Mapping[str, Any] | None, named: Mapping[str, Any]
) -> dict[str, Any]:
    """The arguments of the QMP ``command``: ``arguments`` (a mapping, or a JSON object as text)
    updated with ``named`` (each value :func:`typed`).

    Raises:
        QmpError: no command, ``arguments`` not valid JSON, or not an object.
    """
    if not str(command).strip():
        raise QmpError("no QMP command given (e.g. query-status)")
    payload: dict[str, Any] = {}
    given: object = arguments
    if isinstance(given, str) and given.strip():
        try:
            given = json.loads(given)
        except ValueError as error:
            raise QmpError(f"QMP arguments are not valid JSON: {error}") from None
    if isinstance(given, Mapping):
        payload.update(given)
    elif given not in (None, ""):
        raise QmpError(f"QMP arguments must be a dictionary or JSON object, not {type(given).__name__}")
    payload.update({key: typed(value) for key, value in named.items()})
    return payload


@dataclass(frozen=True)
class QmpEvent:
    """One QMP event as it arrived."""

    name: str
    data: Mapping[str, Any]
    monotonic: float
    wall: float
    # QEMU's own wall-clock timestamp of the event (seconds since the epoch), when it sent one.
    qemu_time: float | None = None
    session: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.name,
            "data": dict(self.data),
            "monotonic": self.monotonic,
            "wall": self.wall,
            "qemu_time": self.qemu_time,
            "session": self.session,
        }


def matches(data: Mapping[str, Any], match: Mapping[str, Any] | None) -> bool:
    """True if every ``key: value`` of ``match`` equals the event data's (``a.b`` reaches into nested dicts).

    Values compare as strings too, so Robot's ``device=nvme0`` matches data ``{"device": "nvme0"}``
    and ``offset=0`` matches ``0``.
    """
    for key, wanted in (match or {}).items():
        value: Any = data
        for part in str(key).split("."):
            if not isinstance(value, Mapping) or part not in value:
                return False
            value = value[part]
        if value != wanted and str(value) != str(wanted) and str(value).lower() != str(wanted).lower():
            return False
    return True


@dataclass
class EventLog:
    """Every event of a VM, across its QMP sessions (restarts), in arrival order."""

    _events: list[QmpEvent] = field(default_factory=list)
    _condition: threading.Condition = field(default_factory=threading.Condition)
    _cursor: int = 0

    def add(self, event: QmpEvent) -> None:
        with self._condition:
            self._events.append(event)
            self._condition.notify_all()

    def events(self, name: str | None = None, since: float | None = None) -> list[QmpEvent]:
        with self._condition:
            return [
                e
                for e in self._events
                if (name is None or e.name == name) and (since is None or e.monotonic >= since)
            ]

    def wait_for(
        self,
        name: str,
        match: Mapping[str, Any] | None,
        timeout: float,
        since: float | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> QmpEvent:
        """The first event ``name`` matching ``match`` that arrived after ``since`` (when given) or else
        after the event a previous wait returned; waits up to ``timeout`` seconds.

        Raises:
            QmpError: no such event in time, naming the events that did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            start = 0 if since is not None else self._cursor
            while True:
                for index in range(start, len(self._events)):
                    event = self._events[index]
                    if since is not None and event.monotonic < since:
                        continue
                    if event.name == name and matches(event.data, match):
                        self._cursor = index + 1
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({e.name for e in self._events[start:]})
                    wanted = f"{name}" + (f" matching {dict(match)}" if match else "")
                    raise QmpError(
                        f"no QMP event {wanted} within {timeout:g} s "
                        f"(events seen: {', '.join(seen) or 'none'})"
                    )
                self._condition.wait(min(remaining, 0.2))
                if alive is not None and not alive():
                    # One last look: the event may have arrived just before QEMU ended.
                    deadline = min(deadline, time.monotonic() + 0.2)


class _Recorder(EventListener):
    """Records each event synchronously as the client dispatches it (and queues nothing)."""

    def __init__(self, log: EventLog, session: int) -> None:
        super().__init__()
        self._log = log
        self._session = session

    def accept(self, event: Message) -> bool:
        stamp = event.get("timestamp") or {}
        qemu_time: float | None = None
        if isinstance(stamp, Mapping) and "seconds" in stamp:
            qemu_time = float(stamp["seconds"]) + float(stamp.get("microseconds", 0)) / 1e6
        data = event.get("data")
        data = data if isinstance(data, Mapping) else {}
        self._log.add(
            QmpEvent(
                name=str(event.get("event")),
                data=dict(data),
                monotonic=time.monotonic(),
                wall=time.time(),
                qemu_time=qemu_time,
                session=self._session,
            )
        )
        return False


class QmpSession:
    """A QMP connection on a unix socket, served by its own thread and event loop."""

    def __init__(self, socket_path: Path, log: EventLog | None = None, session: int = 0) -> None:
        self.socket_path = socket_path
        self.log = log if log is not None else EventLog()
        self._session = session
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"qmp {socket_path.name}", daemon=True
        )
        self._client: QMPClient | None = None

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def connect(self, timeout: float = 10.0, alive: Callable[[], bool] | None = None) -> None:
        """Connect (retrying until QEMU has created the socket) and start recording events.

        Raises:
            QmpError: no connection within ``timeout`` seconds, or QEMU ended first.
        """
        logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
        if not self._thread.is_alive():
            self._thread.start()
        deadline = time.monotonic() + timeout
        last = "socket not created"
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise QmpError(f"QEMU ended before QMP connected on {self.socket_path}")
            if self.socket_path.exists():
                client = QMPClient(f"nvmechaos-{self.socket_path.parent.name}")
                client.register_listener(_Recorder(self.log, self._session))
                try:
                    self._call(
                        client.connect(str(self.socket_path)), timeout=max(1.0, deadline - time.monotonic())
                    )
                except Exception as error:  # any connect failure is retried until the deadline
                    last = str(error) or type(error).__name__
                else:
                    self._client = client
                    return
            time.sleep(0.05)
        raise QmpError(f"cannot connect to QMP socket {self.socket_path} within {timeout:g} s: {last}")

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.runstate.name == "RUNNING"

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """Run a QMP command and return its ``return`` value.

        Raises:
            QmpError: QEMU refused it (``QMP 'cmd' failed: ErrorClass: desc``), not connected, or no
                reply in time.
        """
        client = self._client
        if client is None or not self.connected:
            raise QmpError(f"QMP '{command}' failed: not connected to QEMU (is the VM running?)")
        try:
            return self._call(client.execute(command, dict(arguments) if arguments else None), timeout)
        except ExecuteError as error:
            raise QmpError(f"QMP '{command}' failed: {error.error_class}: {error}") from None
        except concurrent.futures.TimeoutError:
            raise QmpError(f"QMP '{command}' had no reply within {timeout:g} s") from None
        except Exception as error:  # connection-level errors from qemu.qmp
            raise QmpError(f"QMP '{command}' failed: {type(error).__name__}: {error}") from None

    def close(self) -> None:
        """Disconnect and stop the thread (safe to call more than once, and after QEMU ended)."""
        client, self._client = self._client, None
        if client is not None and self._thread.is_alive():
            # QEMU may already be gone; nothing to clean up then.
            with contextlib.suppress(Exception):
                self._call(client.disconnect(), timeout=5)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
