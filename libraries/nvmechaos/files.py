"""Checks on the files a run creates or uses, such as the backing images of drives and namespaces.

They return what is wrong (or None) rather than raise, so each engine words the error as its own
(``drive d: cannot create image …``, ``cannot create backing file …``) with its own error type.
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


def last_log_lines(path: Path | None, count: int = 1, *, skip_prefix: str | None = None) -> str:
    """The last ``count`` non-blank lines of a process's log joined by `` | `` (at most 300
    characters each), leaving out lines that start with ``skip_prefix``; ``""`` if there are none
    or the log cannot be read."""
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [
        line.strip()[:300]
        for line in text.splitlines()
        if line.strip() and not (skip_prefix and line.startswith(skip_prefix))
    ]
    return " | ".join(lines[-count:])
