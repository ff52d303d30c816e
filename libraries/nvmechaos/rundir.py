"""Private run folders (0700) for VMs, drives and injectors, and the sweeping of orphaned ones.

A run folder holds sockets, keys and scratch disk images. Each records its owner (pid and the
process's start time, so a reused pid is not mistaken for it). Clean-up normally removes the folder;
when the owner was killed outright (SIGKILL of Robot, a crash) nothing could, so every new run
folder first removes the folders whose owner is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

OWNER_FILE = ".owner"
PREFIX = "nvmechaos-"


def run_base() -> Path:
    """Where run folders go: ``$NVMECHAOS_RUN_DIR``, else the system's temporary folder."""
    return Path(os.environ.get("NVMECHAOS_RUN_DIR") or tempfile.gettempdir())


def private_run_dir(name: str) -> Path:
    """A new 0700 folder ``nvmechaos-<name>-XXXX`` on a short path (unix sockets take 107 bytes at
    most), owned by this process; orphaned folders of dead owners are removed first."""
    base = run_base()
    base.mkdir(parents=True, exist_ok=True)
    sweep_orphans(base)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{name[:16]}-", dir=base))
    path.chmod(0o700)
    (path / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n", encoding="ascii")
    return path


def sweep_orphans(base: Path) -> list[Path]:
    """Remove run folders under ``base`` whose owner process no longer runs; return them.

    Folders without an owner record (not ours, or another user's) are left alone.
    """
    removed: list[Path] = []
    for folder in base.glob(f"{PREFIX}*"):
        try:
            pid_text, started = (folder / OWNER_FILE).read_text(encoding="ascii").split()
            if folder.stat().st_uid != os.getuid():
                continue
        except (OSError, ValueError):
            continue
        if not _alive(int(pid_text), started):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "0" where /proc has none."""
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        # Field 22; the command name (field 2) may hold spaces, so count from its closing bracket.
        return stat.rsplit(")", 1)[1].split()[19]
    return "0"


def _alive(pid: int, started: str) -> bool:
    if os.name != "posix":
        # os.kill(pid, 0) would terminate the process on Windows: never sweep there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _start_time(pid) == started
