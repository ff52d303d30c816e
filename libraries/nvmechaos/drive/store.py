"""Where the emulated drive keeps its data, and what of it survives a power cut.

The invariant: the backing file holds exactly what would survive if the power went now (the host's
page cache outlives a SIGKILL of the server, so a write to the file is durable for our purpose);
acknowledged data that would not survive is held in memory (the drive's volatile cache) and served
from there. A power cut is a SIGKILL of the server: the memory is gone, the file is what is left.

- ``plp=True``: every acknowledged write goes straight to the file (the drive's capacitors would
  have flushed its cache).
- ``plp=False``: a written page stays volatile until a FLUSH or a FUA write makes it durable, until
  ``volatile_cache`` bytes of newer writes push it out (oldest first), or ``writeback_after``
  seconds after it was written.
- ``honours_flush=False`` (the ``liar`` firmware bug): FLUSH and FUA are acknowledged and do
  nothing: flushed data is still volatile and lost at the cut.
- ``atomic_unit`` smaller than a page (the ``tearing`` bug): while a page is volatile, the file
  already holds the first atomic units of the new data and the old rest (seeded split point), so a
  cut leaves the page torn; once durable the whole page is written.
"""

from __future__ import annotations

import os
import random
import time
from collections import OrderedDict

from nvmechaos.drive.personality import Personality

_ZEROS = bytes(1 << 20)


class Store:
    """The data of one drive: a backing file plus, without PLP, the volatile pages."""

    def __init__(self, path: str | os.PathLike[str], size: int, p: Personality) -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.size = size
        self.page = p.page_size
        self.volatile_pages = 0 if p.plp else max(1, p.volatile_cache // p.page_size)
        self.honours_flush = p.honours_flush
        self.unit = p.atomic_unit
        self.tears = not p.plp and p.atomic_unit < p.page_size
        self.writeback_after = p.writeback_after
        self.rng = random.Random(p.seed)  # noqa: S311 - reproducible tearing, not crypto
        # page number -> (data, time written); oldest first
        self.volatile: OrderedDict[int, tuple[bytes, float]] = OrderedDict()

    # ---- reads ----------------------------------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) < length:
            data += bytes(length - len(data))
        if not self.volatile:
            return data
        page = self.page
        first, last = offset // page, (offset + length - 1) // page
        if last - first + 1 > len(self.volatile):
            hits = [n for n in self.volatile if first <= n <= last]
        else:
            hits = [n for n in range(first, last + 1) if n in self.volatile]
        if not hits:
            return data
        out = bytearray(data)
        for n in hits:
            content = self.volatile[n][0]
            start = max(offset, n * page)
            end = min(offset + length, (n + 1) * page)
            out[start - offset : end - offset] = content[start - n * page : end - n * page]
        return bytes(out)

    # ---- writes ---------------------------------------------------------------------------------
    def write(self, offset: int, data: bytes, fua: bool) -> None:
        if not self.volatile_pages:
            os.pwrite(self.fd, data, offset)
            return
        page = self.page
        now = time.monotonic()
        end = offset + len(data)
        first, last = offset // page, (end - 1) // page
        for n in range(first, last + 1):
            start = n * page
            if offset <= start and start + page <= end:
                content = data[start - offset : start - offset + page]
            else:  # a partial page: merge with what the drive holds now
                current = bytearray(self.read(start, page))
                lo, hi = max(offset, start), min(end, start + page)
                current[lo - start : hi - start] = data[lo - offset : hi - offset]
                content = bytes(current)
            self.volatile.pop(n, None)
            self.volatile[n] = (content, now)
            if self.tears:
                self._tear(n, content)
        while len(self.volatile) > self.volatile_pages:
            n, (content, _) = self.volatile.popitem(last=False)
            os.pwrite(self.fd, content, n * page)
        if fua and self.honours_flush:
            for n in range(first, last + 1):
                self._persist(n)

    def _tear(self, n: int, content: bytes) -> None:
        """Put the first atomic units of ``content`` in the file now: what a cut would leave."""
        units = self.page // self.unit
        keep = self.rng.randrange(1, units) * self.unit
        os.pwrite(self.fd, content[:keep], n * self.page)

    def _persist(self, n: int) -> None:
        entry = self.volatile.pop(n, None)
        if entry is not None:
            os.pwrite(self.fd, entry[0], n * self.page)

    def zero(self, offset: int, length: int) -> None:
        done = 0
        while done < length:
            chunk = min(length - done, len(_ZEROS))
            self.write(offset + done, _ZEROS[:chunk], fua=False)
            done += chunk

    def flush(self) -> None:
        if self.honours_flush:
            self.persist_all()

    def persist_all(self) -> None:
        """Write every volatile page to the file (an orderly shutdown, or an honest flush)."""
        while self.volatile:
            n, (content, _) = self.volatile.popitem(last=False)
            os.pwrite(self.fd, content, n * self.page)

    def write_back_old(self, now: float) -> int:
        """Persist the pages older than ``writeback_after`` (the drive's own background write-back)."""
        if self.writeback_after is None:
            return 0
        done = 0
        while self.volatile:
            n, (content, written) = next(iter(self.volatile.items()))
            if now - written < self.writeback_after:
                break
            self.volatile.popitem(last=False)
            os.pwrite(self.fd, content, n * self.page)
            done += 1
        return done

    def close(self) -> None:
        os.close(self.fd)
