"""The emulated drive served over NBD: our NBD server (:mod:`nvmechaos.faults.nbdserver`) with the
drive model deciding when each request completes.

A request is checked, its data read or written through the :class:`~nvmechaos.drive.store.Store`
at once (so every later request sees it), and its reply sent when the model says it completes:
straight away when that is within :data:`INLINE` (the transport's own cost is larger), otherwise by
one reply thread that sleeps until the earliest deadline. A housekeeping thread advances the model
every 100 ms and writes, into the drive's private folder:

- ``events.jsonl``: one JSON line per drive event (GC, buffer full, thermal throttle, critical
  warning; each ``begin``/``end``) with its monotonic and wall-clock time, as it happens;
- ``health.json``: the SMART view (:meth:`DriveModel.health`) every 250 ms, replaced atomically;
- ``samples.jsonl``: wear, temperature, free blocks and write amplification every second;
- ``state.pickle``: FTL, wear and counters every second and at an orderly stop, so wear and mapping
  survive a power cut (less the last second: the drive's FTL journal) and the next start counts it
  as an unsafe shutdown.

SIGTERM is an orderly shutdown (volatile data written back, state saved); SIGKILL is a power cut.
Export ``""`` is the whole drive; with ``--namespaces N`` exports ``ns1`` … ``nsN`` are equal
slices of it, so tenants contend inside one drive. Listens on a unix socket only.

Run as ``python -m nvmechaos.drive.server --file F --personality P.json --state-dir D --unix S``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import heapq
import itertools
import json
import os
import pickle
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nvmechaos.drive.model import FLUSH, READ, TRIM, WRITE, ZERO, DriveModel, Geometry
from nvmechaos.drive.personality import Personality, check
from nvmechaos.drive.statefiles import EVENTS, HEALTH, SAMPLES, STATE
from nvmechaos.drive.store import Store
from nvmechaos.faults import nbdserver
from nvmechaos.faults.nbdserver import (
    CMD_FLAG_FUA,
    CMD_FLUSH,
    CMD_READ,
    CMD_TRIM,
    CMD_WRITE,
    CMD_WRITE_ZEROES,
    EINVAL,
    EIO,
    SERVED_FLAGS,
    Connection,
    Request,
)

#: Completions due within this many seconds are answered at once: a thread hand-off costs more.
INLINE = 40e-6
_OPS = {CMD_READ: READ, CMD_WRITE: WRITE, CMD_FLUSH: FLUSH, CMD_TRIM: TRIM, CMD_WRITE_ZEROES: ZERO}


def _tight_timer_slack() -> None:
    """Ask Linux for 1 ns timer slack (default 50 us): sleeps of tens of microseconds then end on
    time instead of up to 50 us late."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK


class ReplyScheduler:
    """One thread sending replies at their completion times, earliest first."""

    MAX_BIAS = 0.0005
    GAIN = 0.1

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Connection, int, int, bytes]] = []
        self.cond = threading.Condition()
        self.counter = itertools.count()
        self.bias = 0.0

    def schedule(self, deadline: float, connection: Connection, handle: int, error: int, data: bytes) -> None:
        with connection.idle:
            connection.pending += 1
        with self.cond:
            heapq.heappush(self.heap, (deadline, next(self.counter), connection, handle, error, data))
            if self.heap[0][0] == deadline:
                self.cond.notify()

    def run(self) -> None:
        heap = self.heap
        while True:
            with self.cond:
                while not heap:
                    self.cond.wait()
                wait = heap[0][0] - time.monotonic() - self.bias
                if wait > 0:
                    self.cond.wait(wait)
                    continue
                now = time.monotonic()
                due = []
                while heap and heap[0][0] <= now + self.bias:
                    due.append(heapq.heappop(heap))
            # Learn how late the first reply starts to leave (wake-up, GIL, bookkeeping): wake earlier.
            late = time.monotonic() - due[0][0]
            self.bias = min(self.MAX_BIAS, max(0.0, self.bias + self.GAIN * late))
            for _, _, connection, handle, error, data in due:
                with contextlib.suppress(OSError):
                    connection.reply(handle, error, data)
                with connection.idle:
                    connection.pending -= 1
                    connection.idle.notify_all()


class DriveExport:
    """The drive behind every connection: model + store under one lock."""

    def __init__(self, path: Path, personality: Personality, state_dir: Path, namespaces: int = 0) -> None:
        self.size = personality.size
        self.flags = SERVED_FLAGS
        self.personality = personality
        self.store = Store(path, self.size, personality)
        now = time.monotonic()
        self.model = DriveModel(personality, self.size, now)
        self.state_dir = state_dir
        self.lock = threading.Lock()
        self.replies = ReplyScheduler()
        self.started = now
        self.exports: dict[bytes, tuple[int, int]] = {b"": (0, self.size)}
        if namespaces > 0:
            page = personality.page_size
            share = self.size // namespaces // page * page
            for index in range(namespaces):
                self.exports[f"ns{index + 1}".encode()] = (index * share, share)
        self.power = {"power_cycles": 1, "unsafe_shutdowns": 0, "power_on_seconds": 0.0}
        self._load_state()

    # ---- NBD --------------------------------------------------------------------------------------
    def lookup(self, name: bytes) -> tuple[int, int] | None:
        return self.exports.get(name)

    def handle(self, connection: Connection, request: Request, payload: bytes) -> None:
        flags, command, handle, offset, length = request
        op = _OPS.get(command)
        if op is None or (command != CMD_FLUSH and offset + length > connection.size):
            connection.reply(handle, EINVAL)
            return
        offset += connection.base
        fua = bool(flags & CMD_FLAG_FUA)
        data = b""
        with self.lock:
            now = time.monotonic()
            done, error = self.model.submit(op, offset, length, fua, now)
            if not error:
                try:
                    if op == READ:
                        data = self.store.read(offset, length)
                    elif op == WRITE:
                        self.store.write(offset, payload, fua)
                    elif op == ZERO:
                        self.store.zero(offset, length)
                    elif op == FLUSH:
                        self.store.flush()
                except OSError:
                    error = EIO
        # The model's time runs from when this request was taken; the transport's own cost (parsing,
        # the lock, the data copy) comes on top, as it does for a request answered at once.
        finished = time.monotonic()
        deadline = done + (finished - now)
        if deadline - finished <= INLINE:
            connection.reply(handle, error, data)
        else:
            self.replies.schedule(deadline, connection, handle, error, data)

    # ---- housekeeping ---------------------------------------------------------------------------
    def housekeeping(self) -> None:
        events = open(self.state_dir / EVENTS, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        samples = open(self.state_dir / SAMPLES, "a", encoding="utf-8")  # noqa: SIM115 - as long as the server
        last_health = last_state = last_sample = 0.0
        while True:
            time.sleep(0.1)
            with self.lock:
                now = time.monotonic()
                self.model.update(now)
                self.store.write_back_old(now)
                taken = self.model.take_events()
                health = self.health(now) if now - last_health >= 0.25 or taken else None
                sample = self.model.sample(now) if now - last_sample >= 1.0 else None
            if sample is not None:
                samples.write(json.dumps(sample) + "\n")
                samples.flush()
                last_sample = now
            offset = time.time() - time.monotonic()
            for at, kind, action, params in taken:
                line = {
                    "monotonic": at,
                    "wall": at + offset,
                    "kind": kind,
                    "action": action,
                    "params": params,
                }
                events.write(json.dumps(line) + "\n")
            if taken:
                events.flush()
            if health is not None:
                _write_atomic(self.state_dir / HEALTH, json.dumps(health).encode())
                last_health = now
            if now - last_state >= 1.0:
                self.save_state(clean=False)
                last_state = now

    def health(self, now: float) -> dict[str, Any]:
        health = self.model.health(now)
        on = self.power["power_on_seconds"] + now - self.started
        health.update(
            power_cycles=self.power["power_cycles"],
            unsafe_shutdowns=self.power["unsafe_shutdowns"],
            power_on_hours=int(on // 3600),
            monotonic=now,
        )
        return health

    def save_state(self, *, clean: bool) -> None:
        with self.lock:
            now = time.monotonic()
            state = {
                "geometry": self.model.geometry,
                "model": self.model.snapshot(),
                "power": {
                    **self.power,
                    "power_on_seconds": self.power["power_on_seconds"] + now - self.started,
                },
                "clean": clean,
            }
            blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        _write_atomic(self.state_dir / STATE, blob)

    def _load_state(self) -> None:
        path = self.state_dir / STATE
        try:
            state = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, in our private 0700 folder
        except (OSError, pickle.UnpicklingError, EOFError):
            return
        if state.get("geometry") != Geometry.of(self.personality, self.size):
            return  # another drive shape: start fresh
        self.model.restore(state["model"])
        previous = state["power"]
        self.power = {
            "power_cycles": previous["power_cycles"] + 1,
            "unsafe_shutdowns": previous["unsafe_shutdowns"] + (0 if state.get("clean") else 1),
            "power_on_seconds": previous["power_on_seconds"],
        }

    def shutdown(self) -> None:
        """Orderly power-off: the volatile cache written back, the state saved as clean."""
        with self.lock:
            self.store.persist_all()
        self.save_state(clean=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_personality_json(path: Path) -> Personality:
    data = json.loads(path.read_text(encoding="utf-8"))
    return check(Personality(**data), str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--personality", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--unix", required=True, type=Path)
    parser.add_argument("--namespaces", type=int, default=0)
    parser.add_argument("--pidfile", type=Path)
    args = parser.parse_args(argv)
    _tight_timer_slack()
    # A reader thread with requests queued keeps the GIL for the whole switch interval (5 ms by
    # default), starving the reply thread: hand it over every 100 us instead.
    sys.setswitchinterval(0.0001)
    try:
        personality = load_personality_json(args.personality)
        export = DriveExport(args.file, personality, args.state_dir, args.namespaces)
    except (OSError, ValueError, TypeError) as error:
        print(f"drive server: cannot start: {error}", file=sys.stderr)
        return 1
    export.save_state(clean=False)  # from now on, a kill is an unsafe shutdown
    try:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.fspath(args.unix))
        os.chmod(args.unix, 0o600)
        listener.listen(16)
    except OSError as error:
        print(f"drive server: cannot listen on {args.unix}: {error.strerror}", file=sys.stderr)
        return 1

    def orderly(*_: object) -> None:
        export.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, orderly)
    threading.Thread(target=export.replies.run, name="drive-replies", daemon=True).start()
    threading.Thread(target=export.housekeeping, name="drive-housekeeping", daemon=True).start()
    if args.pidfile is not None:
        _write_atomic(args.pidfile, f"{os.getpid()}\n".encode())
    with contextlib.suppress(KeyboardInterrupt):
        nbdserver.serve(listener, export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
