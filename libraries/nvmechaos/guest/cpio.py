"""A minimal writer of the ``newc`` cpio format the Linux kernel unpacks as an initramfs.

Written here rather than calling ``cpio`` so that the archive is deterministic (fixed owners, modes
and times) and can be built without root or fakeroot.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


class CpioWriter:
    """Append entries to a ``newc`` archive; call :meth:`close` to write the trailer."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._inode = 1
        self._names: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name in self._names:
            return
        self._names.add(name)
        encoded = name.encode() + b"\0"
        fields = (
            self._inode,
            mode,
            0,
            0,
            1,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,
        )
        self._inode += 1
        header = _MAGIC + b"".join(b"%08X" % value for value in fields)
        self._stream.write(header + encoded)
        self._pad(len(header) + len(encoded))
        self._stream.write(data)
        self._pad(len(data))

    def _pad(self, length: int) -> None:
        if length % 4:
            self._stream.write(b"\0" * (4 - length % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        """Add a directory (its parents must have been added first)."""
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file with ``data``."""
        self._entry(name, stat.S_IFREG | mode, data)

    def copy(self, name: str, source: Path, mode: int | None = None) -> None:
        """Add the contents of ``source`` (symlinks followed) as a regular file."""
        if mode is None:
            mode = stat.S_IMODE(source.stat().st_mode)
        self.file(name, source.read_bytes(), mode)

    def symlink(self, name: str, target: str) -> None:
        """Add a symbolic link ``name`` -> ``target``."""
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node."""
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def has(self, name: str) -> bool:
        return name.lstrip("/") in self._names

    def close(self) -> None:
        """Write the trailer entry."""
        self._entry(_TRAILER, 0)
