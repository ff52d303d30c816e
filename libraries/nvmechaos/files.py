"""The files a run creates or reads: can a backing image be created here, and the tail of a
process's log or a VM's console for one-line errors.

The check returns what is wrong (or None) rather than raise, so each engine words the error as its
own (``drive d: cannot create image …``, ``cannot create backing file …``) with its own error type.
"""

from __future__ import annotations

import os
from pathlib import Path


def cannot_create(path: Path) -> str | None:
    """Why ``path`` cannot be created, e.g. ``folder '/proc/x' does not exist``, or None if it can."""
    folder = path.parent
    if not folder.is_dir():
        return f"folder '{folder}' does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder '{folder}' is not writable"
    return None


def log_tail(path: Path | None, *, skip_prefix: str | None = None, tail_bytes: int = 16384) -> list[str]:
    """The non-blank lines (stripped) in the last ``tail_bytes`` of a process's log or console,
    leaving out those that start with ``skip_prefix`` (our own start markers); none if it cannot be
    read."""
    if path is None:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - tail_bytes))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not (skip_prefix and line.startswith(skip_prefix))]


def last_log_lines(path: Path | None, count: int = 1, *, skip_prefix: str | None = None) -> str:
    """The last ``count`` lines of :func:`log_tail` joined by `` | `` (at most 300 characters each),
    for one-line errors; ``""`` if there are none."""
    return " | ".join(line[:300] for line in log_tail(path, skip_prefix=skip_prefix)[-count:])
