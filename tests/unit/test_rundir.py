"""Private run folders: 0700, owned, and orphans of dead owners swept (and nothing else)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nvmechaos.rundir import OWNER_FILE, private_run_dir, sweep_orphans


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path))
    return tmp_path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_run_dir_is_private_and_owned(base: Path) -> None:
    folder = private_run_dir("vm")
    assert folder.parent == base and folder.name.startswith("nvmechaos-vm-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / OWNER_FILE).read_text().split()[0] == str(os.getpid())


def test_orphans_are_swept_but_live_and_foreign_folders_stay(base: Path) -> None:
    live = private_run_dir("live")
    orphan = base / "nvmechaos-orphan-x"
    orphan.mkdir()
    (orphan / OWNER_FILE).write_text(f"{dead_pid()} 12345\n")
    (orphan / "nvme0n1.raw").write_bytes(b"\0" * 4096)
    reused = base / "nvmechaos-reused-x"
    reused.mkdir()
    # Our own pid, but a different start time: the pid was reused, the owner is gone.
    (reused / OWNER_FILE).write_text(f"{os.getpid()} 1\n")
    foreign = base / "nvmechaos-foreign-x"
    foreign.mkdir()
    assert sorted(p.name for p in sweep_orphans(base)) == ["nvmechaos-orphan-x", "nvmechaos-reused-x"]
    assert live.is_dir() and foreign.is_dir()
    assert not orphan.exists() and not reused.exists()


def test_a_new_run_dir_sweeps_first(base: Path) -> None:
    orphan = base / "nvmechaos-old-x"
    orphan.mkdir()
    (orphan / OWNER_FILE).write_text(f"{dead_pid()} 0\n")
    private_run_dir("new")
    assert not orphan.exists()
