"""Owning external processes: start them so they cannot outlive us, and end them on every path.

Every process the framework starts (fio, qemu, nbdkit, proxies) goes through :func:`spawn`, which
 - puts it in a session of its own, so a terminal's Ctrl-C reaches Robot, which then cleans up in
   order, instead of killing children mid-write;
 - asks the kernel to signal it when the thread that started it dies (``PR_SET_PDEATHSIG``), so a
   Robot process killed with SIGKILL leaves nothing behind: SIGKILL by default, SIGTERM for programs
   whose children leave the process group and must be told to stop by their parent (fio's job
   processes each call ``setsid()``; fio ends them on SIGTERM, a SIGKILL of fio orphans them);
 - records it in a :class:`ProcessRegistry` so listeners can end whatever a test or suite left;
 - when stopping it, ends its descendants too, even those in sessions of their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int) -> Callable[[], None]:
    """What the child runs between fork and exec (Linux only): get ``signum`` when its parent dies."""

    def arrange() -> None:
        libc_name = ctypes.util.find_library("c")
        if libc_name is None:
            return
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        # The parent may have died between fork and prctl: then we would never get the signal.
        if os.getppid() == 1:
            os._exit(1)

    return arrange


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Every live descendant of ``pid`` as (pid, start time), read from /proc (empty elsewhere).

    The start time tells a descendant from a later process that reuses its pid.
    """
    children: dict[int, list[tuple[int, str]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces and parentheses): state ppid ... starttime.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 19:
            children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found: list[tuple[int, str]] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child[0])
    return found


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat_file:
            stat = stat_file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _kill_survivors(descendants: list[tuple[int, str]]) -> None:
    """SIGKILL the descendants that still run (and are still the same processes)."""
    for pid, started in descendants:
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class OwnedProcess:
    """A process we started, with what we need to describe and end it."""

    name: str
    popen: subprocess.Popen[bytes]
    argv: tuple[str, ...]
    scope: str
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 3.0) -> int | None:
        """End the process, its process group and its descendants: SIGTERM to the group, SIGKILL after
        ``grace`` seconds, then SIGKILL to any descendant still running (one that left the group).

        Returns the exit code (negative for a signal), or None if it could not be reaped.
        """
        descendants = _descendants(self.popen.pid) if self.popen.poll() is None else []
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5)
        # Children of the leader may outlive it; end the whole group, and those that left it.
        self._signal_group(signal.SIGKILL)
        _kill_survivors(descendants)
        return self.popen.returncode

    def kill(self) -> int | None:
        """End the process group and its descendants at once with SIGKILL (power cut, hung process)."""
        descendants = _descendants(self.popen.pid) if self.popen.poll() is None else []
        self._signal_group(signal.SIGKILL)
        _kill_survivors(descendants)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        return self.popen.returncode

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(self.popen.pid, signum)
            elif self.popen.poll() is None:
                # Windows has no process groups to signal: end the process itself (TerminateProcess).
                self.popen.kill()


class ProcessRegistry:
    """Remembers every process we started, grouped by scope (a test or suite id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[OwnedProcess] = []

    def add(self, process: OwnedProcess) -> None:
        with self._lock:
            self._processes.append(process)

    def running(self, scope: str | None = None) -> list[OwnedProcess]:
        with self._lock:
            return [p for p in self._processes if p.is_running() and (scope is None or p.scope == scope)]

    def stop_scope(self, scope: str | None = None, prefix: str = "") -> list[OwnedProcess]:
        """Stop every process of ``scope`` still running (when None: of every scope starting with
        ``prefix``); return the ones that were still running."""
        with self._lock:
            chosen = [p for p in self._processes if _in_scope(p.scope, scope, prefix)]
            self._processes = [p for p in self._processes if p not in chosen]
        stopped = [p for p in chosen if p.is_running()]
        for process in chosen:
            process.stop()
        return stopped


def _in_scope(owner: str, scope: str | None, prefix: str) -> bool:
    return owner == scope if scope is not None else owner.startswith(prefix)


REGISTRY = ProcessRegistry()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    scope: str = "",
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
    registry: ProcessRegistry = REGISTRY,
    death_signal: int = signal.SIGKILL,
) -> OwnedProcess:
    """Start ``argv`` as an owned process (see the module docstring); it gets ``death_signal`` when the
    thread that started it dies.

    Raises:
        FileNotFoundError: the program does not exist.
        PermissionError: the program is not executable.
    """
    preexec = _die_with_parent(death_signal) if sys.platform.startswith("linux") else None
    popen = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=preexec,  # noqa: PLW1509 - only prctl, which is async-signal-safe
    )
    process = OwnedProcess(name=name, popen=popen, argv=tuple(argv), scope=scope)
    registry.add(process)
    return process


def wait_for_ready_file(process: OwnedProcess, ready: Path, timeout: float) -> str | None:
    """Wait until ``process`` writes the non-empty file ``ready`` (nbdkit's pid file, written once
    it accepts connections). Returns None once it has, else why not: ``exited at start (exit code
    N)``, or ``was not ready within T s`` after killing the process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if ready.stat().st_size > 0:
                return None
        if not process.is_running():
            return f"exited at start (exit code {process.popen.returncode})"
        time.sleep(0.01)
    process.kill()
    return f"was not ready within {timeout:g} s"
