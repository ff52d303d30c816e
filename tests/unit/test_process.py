"""Owned processes: stopped with their group, recorded by scope, and killed when their parent dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nvmechaos.process import ProcessRegistry, _descendants, spawn, wait_for_ready_file


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def wait_own_session(child: int, parent: int, seconds: float = 5.0) -> bool:
    """True once ``child`` has left ``parent``'s session (setsid runs just after the fork)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.getsid(child) != os.getsid(parent):
            return True
        time.sleep(0.01)
    return False


def test_stop_scope_ends_only_that_scope() -> None:
    registry = ProcessRegistry()
    a = spawn("a", ["sleep", "60"], scope="test:1", registry=registry)
    b = spawn("b", ["sleep", "60"], scope="test:2", registry=registry)
    stopped = registry.stop_scope("test:1")
    assert [p.name for p in stopped] == ["a"]
    assert not a.is_running()
    assert b.is_running()
    registry.stop_scope(None)
    assert not b.is_running()


def test_stop_ends_children_in_the_group() -> None:
    registry = ProcessRegistry()
    owner = spawn("sh", ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, registry=registry)
    assert owner.popen.stdout is not None
    child = int(owner.popen.stdout.readline())
    owner.stop(grace=1)
    assert wait_gone(child)


def test_sigterm_ignoring_process_is_killed_after_grace() -> None:
    registry = ProcessRegistry()
    stubborn = spawn("trap", ["sh", "-c", "trap '' TERM; sleep 60"], registry=registry)
    time.sleep(0.2)
    started = time.monotonic()
    stubborn.stop(grace=0.5)
    assert not stubborn.is_running()
    assert time.monotonic() - started < 5


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from nvmechaos.process import spawn\n"
        "p = spawn('sleep', ['sleep', '60'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    assert wait_gone(child), "the child outlived its SIGKILLed parent"


def test_without_process_groups_stop_ends_the_process_itself(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Windows has no os.killpg: stopping must still end the process, not raise AttributeError."""
    registry = ProcessRegistry()
    owner = spawn("sleep", ["sleep", "60"], registry=registry)
    monkeypatch.delattr(os, "killpg")
    owner.stop(grace=0.1)
    assert not owner.is_running()
    assert owner.kill() is not None


def test_stop_ends_descendants_that_left_the_group() -> None:
    """A child in a session of its own (fio's job processes call setsid()) is not in the group."""
    registry = ProcessRegistry()
    owner = spawn(
        "sh", ["sh", "-c", "setsid sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, registry=registry
    )
    assert owner.popen.stdout is not None
    child = int(owner.popen.stdout.readline())
    assert wait_own_session(child, owner.pid)
    owner.stop(grace=1)
    assert wait_gone(child), "a descendant in its own session outlived stop()"


def test_kill_ends_descendants_that_left_the_group() -> None:
    registry = ProcessRegistry()
    owner = spawn(
        "sh", ["sh", "-c", "setsid sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, registry=registry
    )
    assert owner.popen.stdout is not None
    child = int(owner.popen.stdout.readline())
    assert wait_own_session(child, owner.pid)
    owner.kill()
    assert wait_gone(child), "a descendant in its own session outlived kill()"


def test_fio_job_processes_die_with_a_killed_parent(tmp_path: Path) -> None:
    """fio started the way the runner starts it, then its parent SIGKILLed (Robot killed): fio gets
    SIGTERM and ends its job processes, which a SIGKILL of fio alone would orphan (they setsid())."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import signal, time\n"
        "from nvmechaos.process import spawn\n"
        f"p = spawn('fio', ['fio', '--name=t', '--filename={tmp_path}/t.dat', '--size=8m',\n"
        "    '--rw=randwrite', '--ioengine=psync', '--runtime=60', '--time_based', '--numjobs=2',\n"
        "    '--output=/dev/null'],\n"
        "    death_signal=signal.SIGTERM)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    fio = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    jobs: list[int] = []
    while time.monotonic() < deadline and len(jobs) < 2:
        jobs = [pid for pid, _ in _descendants(fio)]
        time.sleep(0.1)
    assert len(jobs) == 2, "fio did not start its two job processes"
    parent.kill()
    parent.wait()
    assert wait_gone(fio, 15), "fio outlived its SIGKILLed parent"
    for job in jobs:
        assert wait_gone(job, 5), f"fio job process {job} outlived fio and its parent"


def test_waiting_for_a_ready_file_tells_ready_exited_and_too_slow_apart(tmp_path: Path) -> None:
    registry = ProcessRegistry()
    ready = tmp_path / "server.pid"
    writes = spawn("writes", ["sh", "-c", f"sleep 0.2; echo $$ > {ready}; sleep 30"], registry=registry)
    exits = spawn("exits", ["sh", "-c", "exit 3"], registry=registry)
    silent = spawn("silent", ["sleep", "30"], registry=registry)
    try:
        assert wait_for_ready_file(writes, ready, 10) is None
        assert wait_for_ready_file(exits, tmp_path / "never", 10) == "exited at start (exit code 3)"
        assert wait_for_ready_file(silent, tmp_path / "never", 0.3) == "was not ready within 0.3 s"
        assert not silent.is_running(), "a server that was too slow must be killed"
    finally:
        registry.stop_scope()
