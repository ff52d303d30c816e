"""Owned processes: stopped with their group, recorded by scope, and killed when their parent dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nvmechaos.process import ProcessRegistry, spawn


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
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
