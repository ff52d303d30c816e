"""The control file through which a running NBD server picks up the faults to inject.

Both servers (the nbdkit Python plugin and the pure-Python NBD server) read the same small JSON
file. The injector writes it atomically (write a temporary file, then ``os.replace``), and the server
re-reads it whenever its identity changes (``os.stat`` before each request: a new inode after every
replace), so a change applies to the very next request, with no restart and no signal.

This module uses the standard library only and imports nothing of ours: nbdkit's embedded
interpreter loads it by path (see ``nbdkit_plugin.py``).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The errnos NBD can carry on the wire (protocol spec, "Error values"), by name.
NBD_ERRNOS: dict[str, int] = {
    "EPERM": 1,
    "EIO": 5,
    "ENOMEM": 12,
    "EINVAL": 22,
    "ENOSPC": 28,
    "EOVERFLOW": 75,
    "ENOTSUP": 95,
    "ESHUTDOWN": 108,
}


@dataclass
class ControlState:
    """What a server does to each request right now."""

    delays: dict[str, float] = field(default_factory=dict)
    error_rate: float = 0.0
    error_ops: frozenset[str] = frozenset()
    error_errno: int = NBD_ERRNOS["EIO"]
    generation: int = 0
    # Until when (``time.monotonic()``, one clock for every process of the host) no request is
    # answered; 0: no stall.
    stall_until: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "generation": self.generation,
                "stall_until": self.stall_until,
                "delays": self.delays,
                "errors": {"rate": self.error_rate, "ops": sorted(self.error_ops), "errno": self.error_errno},
            }
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ControlState:
        errors = data.get("errors") or {}
        return cls(
            delays={str(k): float(v) for k, v in (data.get("delays") or {}).items() if float(v) > 0},
            error_rate=float(errors.get("rate", 0.0)),
            error_ops=frozenset(str(op) for op in errors.get("ops", ())),
            error_errno=int(errors.get("errno", NBD_ERRNOS["EIO"])),
            generation=int(data.get("generation", 0)),
            stall_until=float(data.get("stall_until", 0.0)),
        )

    def decide(self, op: str, rand: float | None = None) -> tuple[float, int]:
        """For one request of ``op``: (delay in seconds, NBD errno to fail with or 0)."""
        delay = self.delays.get(op, 0.0)
        if self.stall_until:
            delay = max(delay, self.stall_until - time.monotonic())
        if self.error_rate > 0 and op in self.error_ops:
            draw = random.random() if rand is None else rand  # noqa: S311 - fault injection, not crypto
            if draw < self.error_rate:
                return delay, self.error_errno
        return delay, 0


class Sleeper:
    """Sleeps until a deadline, learning how late the OS wakes this process, and waking that much
    earlier: an integral controller that drives the mean lateness to zero (bounded to 0..2 ms), so
    a busy host does not add its wake-up latency to every injected delay. Shared by the threads
    of one server; the unlocked float update is a harmless race."""

    MAX_BIAS = 0.002
    GAIN = 0.2

    def __init__(self) -> None:
        self.bias = 0.0

    def sleep_until(self, deadline: float) -> None:
        remaining = deadline - time.monotonic() - self.bias
        if remaining > 0:
            time.sleep(remaining)
        late = time.monotonic() - deadline
        self.bias = min(self.MAX_BIAS, max(0.0, self.bias + self.GAIN * late))


def write_control(path: Path, state: ControlState) -> None:
    """Replace the control file atomically, so a server never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(state.to_json())
    os.replace(tmp, path)


class ControlReader:
    """The server side: cheap check before each request, reload only when the file was replaced."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.state = ControlState()
        self._identity: tuple[int, int, int] | None = None

    def current(self) -> ControlState:
        try:
            st = os.stat(self.path)
        except OSError:
            return self.state
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        if identity != self._identity:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    self.state = ControlState.from_mapping(json.load(handle))
                self._identity = identity
            except (OSError, ValueError, TypeError, AttributeError):
                pass  # keep the last good state; the next replace fixes it
        return self.state
