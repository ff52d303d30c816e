"""The data-integrity oracle: which writes the device acknowledged (and flushed), and what survived.

In the spirit of diskchecker and vdbench's journals, a writer in the guest
(``integrity_writer.c``) writes self-describing blocks and reports every write and flush as soon as
the device acknowledged it; the host records those reports as they arrive (:class:`Journal`). After
a power cut only the blocks in the journal are checked (:func:`verify`), against what a drive may
legitimately have lost:

- with power-loss protection (``plp=True``) every acknowledged write must survive: a block holds
  its last acknowledged generation or a newer one;
- without it only data followed by a completed flush (or written with FUA) must survive: a block
  holds at least its last *durable* generation; newer acknowledged generations may be lost (counted
  as ``lost_allowed``), but never replaced by anything else.

A report line the host had not yet received at the cut counts as not acknowledged. That is safe:
data newer than the journal says is always allowed, and it still has to be a valid block.

Block layout (little endian; the writer's C source is the other half of this contract)::

    0  magic b"NVCINTG1"    8 block u64    16 generation u64    24 seed u64    32 block size u32
    36 crc32 of bytes 0..35 (header)       40 crc32 of the block with bytes 40..43 zero
    44 zero u32             48.. payload: splitmix64 words derived from (seed, block, generation)

Bad blocks are classified by kind: ``torn`` (header valid, payload or checksum wrong), ``stale``
(a valid block, or zeros, older than the generation that had to survive), ``misplaced`` (a valid
block of another block number), ``garbage`` (no valid header and not zeros). ``corrupt`` counts
them all. The region must start as zeros (fresh backing files are) or as an earlier writer's blocks.
"""

from __future__ import annotations

import html
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nvmechaos.errors import NvmeChaosError

MAGIC = b"NVCINTG1"
HEADER_SIZE = 48
_HEADER = struct.Struct("<8sQQQII")  # magic, block, generation, seed, block size, header crc
_GOLDEN = 0x9E3779B97F4A7C15
_GEN_MIX = 0xC2B2AE3D27D4EB4F
_MASK = (1 << 64) - 1
KINDS = ("torn", "stale", "misplaced", "garbage")


class IntegrityError(NvmeChaosError):
    """The journal or the image cannot be read as an integrity run."""


# ----- the block format -------------------------------------------------------------------------


def _payload(block_size: int, block: int, generation: int, seed: int) -> bytes:
    """The payload bytes of (block, generation, seed): splitmix64 of a counter, as the writer makes them."""
    base = (seed ^ ((block * _GOLDEN) & _MASK) ^ ((generation * _GEN_MIX) & _MASK)) & _MASK
    words = (block_size - HEADER_SIZE) // 8
    with np.errstate(over="ignore"):
        z = np.uint64(base) + np.arange(1, words + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z.astype("<u8").tobytes()


def make_block(block_size: int, block: int, generation: int, seed: int) -> bytes:
    """The exact bytes the writer writes for ``block`` at ``generation`` (for tests and tools)."""
    head = struct.pack("<8sQQQI", MAGIC, block, generation, seed, block_size)
    head += struct.pack("<I", zlib.crc32(head))
    body = head + b"\0" * 8 + _payload(block_size, block, generation, seed)
    crc = zlib.crc32(body)
    return body[:40] + struct.pack("<I", crc) + body[44:]


@dataclass(frozen=True)
class BlockContent:
    """What a block holds, decoded: ``state`` is ``zero``, ``garbage``, ``torn`` or ``valid``."""

    state: str
    block: int | None = None
    generation: int | None = None
    seed: int | None = None
    detail: str = ""


def decode_block(data: bytes, block_size: int) -> BlockContent:
    """Decode one block read back from the device or image."""
    if len(data) != block_size:
        return BlockContent("garbage", detail=f"short read ({len(data)} of {block_size} bytes)")
    if not any(data):
        return BlockContent("zero")
    magic, number, generation, seed, size, header_crc = _HEADER.unpack_from(data)
    if magic != MAGIC or zlib.crc32(data[:36]) != header_crc or size != block_size:
        return BlockContent("garbage", detail="no valid header")
    (stored,) = struct.unpack_from("<I", data, 40)
    computed = zlib.crc32(data[:40] + b"\0\0\0\0" + data[44:])
    if stored != computed:
        return BlockContent("torn", number, generation, seed, "checksum mismatch")
    if data[HEADER_SIZE:] != _payload(block_size, number, generation, seed):
        return BlockContent("torn", number, generation, seed, "payload differs from its generation")
    return BlockContent("valid", number, generation, seed)


# ----- the journal ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalLine:
    """One report line as the host received it: host monotonic and wall-clock time, and the text."""

    monotonic: float
    wall: float
    text: str


class Journal:
    """What the writer reported, as received (thread-safe: a reader thread feeds it while keywords look).

    ``acked[b]`` is the last acknowledged generation of block ``b``; ``durable[b]`` the last one
    followed by a completed flush (or written with FUA).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seed: int | None = None
        self.block_size = 0
        self.blocks = 0
        self.first_block = 0
        self.acked: dict[int, int] = {}
        self.durable: dict[int, int] = {}
        self._unflushed: dict[int, int] = {}
        self.writes = 0
        self.fua_writes = 0
        self.flushes = 0
        self.ended = False
        self.error: str | None = None
        self.lines: list[JournalLine] = []
        self.first_write: JournalLine | None = None
        self.last_ack: JournalLine | None = None
        self.last_flush: JournalLine | None = None

    def feed(self, text: str, monotonic: float = 0.0, wall: float = 0.0) -> None:
        """Take one line (without its newline).

        Raises:
            IntegrityError: a malformed line, or a write before the start line.
        """
        line = JournalLine(monotonic, wall, text)
        parts = text.split()
        with self._lock:
            self.lines.append(line)
            if not parts:
                return
            tag = parts[0]
            try:
                if tag == "S" and len(parts) == 5:
                    self.seed, self.block_size, self.blocks, self.first_block = (int(p) for p in parts[1:])
                elif tag in ("W", "D") and len(parts) == 3:
                    if self.seed is None:
                        raise IntegrityError(f"journal line '{text}' before the start line")
                    block, generation = int(parts[1]), int(parts[2])
                    if not 0 <= block < self.blocks:
                        raise IntegrityError(f"journal line '{text}': block outside 0..{self.blocks - 1}")
                    self.acked[block] = max(generation, self.acked.get(block, 0))
                    self.writes += 1
                    self.first_write = self.first_write or line
                    self.last_ack = line
                    if tag == "D":
                        self.fua_writes += 1
                        self.durable[block] = max(generation, self.durable.get(block, 0))
                    else:
                        self._unflushed[block] = generation
                elif tag == "F" and len(parts) == 2:
                    for block, generation in self._unflushed.items():
                        self.durable[block] = max(generation, self.durable.get(block, 0))
                    self._unflushed.clear()
                    self.flushes = int(parts[1])
                    self.last_flush = line
                elif tag == "E":
                    self.ended = True
                elif tag == "X":
                    self.error = text[2:].strip()
                else:
                    raise IntegrityError(f"journal line '{text}' is not a writer report")
            except ValueError:
                raise IntegrityError(f"journal line '{text}' has a field that is not a number") from None

    def feed_lines(self, lines: Iterable[str]) -> Journal:
        for text in lines:
            if text.strip():
                self.feed(text.strip())
        return self

    @classmethod
    def parse(cls, text: str) -> Journal:
        """A journal from the writer's whole output (tests; saved journals without times)."""
        return cls().feed_lines(text.splitlines())

    def snapshot(self) -> JournalSnapshot:
        """A consistent copy of the acknowledged and durable sets (taken at the power cut)."""
        with self._lock:
            if self.seed is None:
                raise IntegrityError("the writer never started (no start line in its journal)")
            return JournalSnapshot(
                seed=self.seed,
                block_size=self.block_size,
                blocks=self.blocks,
                first_block=self.first_block,
                acked=dict(self.acked),
                durable=dict(self.durable),
                writes=self.writes,
                fua_writes=self.fua_writes,
                flushes=self.flushes,
                lines=len(self.lines),
            )


@dataclass(frozen=True)
class JournalSnapshot:
    """The journal frozen at one instant (see :meth:`Journal.snapshot`)."""

    seed: int
    block_size: int
    blocks: int
    first_block: int
    acked: dict[int, int]
    durable: dict[int, int]
    writes: int = 0
    fua_writes: int = 0
    flushes: int = 0
    lines: int = 0

    def required(self, block: int, plp: bool) -> int:
        """The oldest generation of ``block`` that must have survived (0: nothing had to)."""
        return self.acked.get(block, 0) if plp else self.durable.get(block, 0)

    @property
    def unflushed_blocks(self) -> int:
        """Blocks whose last acknowledged generation was not yet durable."""
        return sum(1 for b, g in self.acked.items() if self.durable.get(b, 0) < g)


# ----- the verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadBlock:
    """A block that does not hold what must have survived."""

    block: int
    kind: str
    expected: int
    acked: int
    found: int | None
    detail: str

    def describe(self) -> str:
        found = "-" if self.found is None else str(self.found)
        return (
            f"block {self.block} {self.kind}: {self.detail} (needs generation >= {self.expected}, "
            f"acknowledged {self.acked}, found {found})"
        )


def _listed(lines: Sequence[str], limit: int) -> str:
    """The first ``limit`` of ``lines``, then how many more there are."""
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


def failure_line(figures: Mapping[str, Any]) -> str:
    """One line naming the profile, the counts by kind and the first bad blocks of a report's
    figures (:meth:`IntegrityReport.as_dict`, what the keywords return)."""
    return (
        f"Data integrity failed ({figures['profile']}): {figures['corrupt']} of {figures['checked']} "
        f"acknowledged blocks corrupt (torn {figures['torn']}, stale {figures['stale']}, misplaced "
        f"{figures['misplaced']}, garbage {figures['garbage']}): {_listed(figures.get('bad', []), 5)}"
    )


@dataclass
class IntegrityReport:
    """Counts of one verification; ``corrupt`` = torn + stale + misplaced + garbage. ``source`` says
    where the blocks were read (an image's path, a VM's guest)."""

    plp: bool
    checked: int = 0
    intact: int = 0
    newer: int = 0
    lost_allowed: int = 0
    corrupt: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bad: list[BadBlock] = field(default_factory=list)
    writes: int = 0
    flushes: int = 0
    fua_writes: int = 0
    unflushed_blocks: int = 0
    source: str = ""

    @property
    def torn(self) -> int:
        return self.by_kind["torn"]

    @property
    def stale(self) -> int:
        return self.by_kind["stale"]

    @property
    def passed(self) -> bool:
        return self.corrupt == 0

    @property
    def profile(self) -> str:
        return "PLP" if self.plp else "no-PLP"

    def summary(self) -> str:
        return (
            f"{self.profile}: checked {self.checked}, intact {self.intact} ({self.newer} newer than "
            f"acknowledged), lost-but-allowed {self.lost_allowed}, corrupt {self.corrupt} (torn "
            f"{self.torn}, stale {self.stale}, misplaced {self.by_kind['misplaced']}, garbage "
            f"{self.by_kind['garbage']})"
        )

    def first_bad(self, limit: int = 5) -> str:
        return _listed([b.describe() for b in self.bad], limit)

    def failure(self) -> str:
        """The one line a failed verification ends with (see :func:`failure_line`)."""
        return failure_line(self.as_dict())

    def html(self) -> str:
        """The figures as a table for the log, and the first ten bad blocks."""
        figures = self.as_dict()
        rows = "".join(f"<tr><td>{key}</td><td>{figures[key]}</td></tr>" for key in figures if key != "bad")
        bad = "".join(f"<li>{html.escape(b.describe())}</li>" for b in self.bad[:10])
        return f"Integrity of {html.escape(self.source)}: <table>{rows}</table>" + (
            f"<ul>{bad}</ul>" if bad else ""
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "checked": self.checked,
            "intact": self.intact,
            "newer": self.newer,
            "lost_allowed": self.lost_allowed,
            "corrupt": self.corrupt,
            "torn": self.torn,
            "stale": self.stale,
            "misplaced": self.by_kind["misplaced"],
            "garbage": self.by_kind["garbage"],
            "writes": self.writes,
            "flushes": self.flushes,
            "fua_writes": self.fua_writes,
            "unflushed_blocks": self.unflushed_blocks,
            "bad": [b.describe() for b in self.bad],
        }


def classify(content: BlockContent, block: int, seed: int, acked: int, required: int) -> tuple[str, str, str]:
    """(verdict, kind, detail) of one journaled block: verdict is ``intact``, ``lost`` or ``corrupt``."""
    if content.state == "zero":
        if required == 0:
            return "lost", "", "never written back (zeros)"
        return "corrupt", "stale", "unwritten (zeros)"
    if content.state == "garbage":
        return "corrupt", "garbage", content.detail
    if content.block != block:
        return "corrupt", "misplaced", f"holds block {content.block}"
    if content.state == "torn":
        return "corrupt", "torn", content.detail
    generation = content.generation or 0
    if content.seed != seed:
        if required == 0:
            return "lost", "", "holds an earlier run's block"
        return "corrupt", "stale", f"holds an earlier run's block (seed {content.seed})"
    if generation >= acked:
        return "intact", "", "newer than acknowledged" if generation > acked else ""
    if generation >= required:
        return "lost", "", "an older generation that was durable"
    return "corrupt", "stale", f"generation {generation} is older than required"


def verify(
    read_block: Callable[[int], bytes], journal: JournalSnapshot, plp: bool, source: str = ""
) -> IntegrityReport:
    """Check every journaled block; ``read_block(b)`` returns the bytes of writer block ``b``
    (read from ``source``)."""
    report = IntegrityReport(
        plp=plp,
        writes=journal.writes,
        flushes=journal.flushes,
        fua_writes=journal.fua_writes,
        unflushed_blocks=journal.unflushed_blocks,
        source=source,
    )
    for block in sorted(journal.acked):
        acked = journal.acked[block]
        required = journal.required(block, plp)
        content = decode_block(read_block(block), journal.block_size)
        verdict, kind, detail = classify(content, block, journal.seed, acked, required)
        report.checked += 1
        if verdict == "intact":
            report.intact += 1
            if detail:
                report.newer += 1
        elif verdict == "lost":
            report.lost_allowed += 1
        else:
            report.corrupt += 1
            report.by_kind[kind] += 1
            report.bad.append(BadBlock(block, kind, required, acked, content.generation, detail))
    return report


def image_reader(path: Path, journal: JournalSnapshot) -> Callable[[int], bytes]:
    """A ``read_block`` for :func:`verify` that reads a raw image file (the drive's backing store)."""
    data = path.read_bytes() if path.stat().st_size <= (256 << 20) else None
    size = journal.block_size

    def read(block: int) -> bytes:
        offset = (journal.first_block + block) * size
        if data is not None:
            return data[offset : offset + size]
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    return read


def verify_image(path: Path, journal: JournalSnapshot, plp: bool) -> IntegrityReport:
    """:func:`verify` against a raw image file.

    Raises:
        IntegrityError: the image cannot be read.
    """
    try:
        return verify(image_reader(path, journal), journal, plp, str(path))
    except OSError as error:
        raise IntegrityError(f"cannot read image '{path}': {error.strerror or error}") from None


def flip_bytes(path: Path, offset: int, count: int = 1) -> None:
    """Invert ``count`` bytes of ``path`` at ``offset`` in place (to prove the oracle catches damage).

    Raises:
        IntegrityError: a negative offset, no ``count`` bytes there, or the file cannot be written.
    """
    if offset < 0 or count < 1:
        raise IntegrityError(f"cannot flip {count} bytes at offset {offset} of '{path}'")
    try:
        with open(path, "r+b") as handle:
            handle.seek(offset)
            data = handle.read(count)
            if len(data) != count:
                raise IntegrityError(f"'{path}' has no {count} bytes at offset {offset}")
            handle.seek(offset)
            handle.write(bytes(b ^ 0xFF for b in data))
            handle.flush()
    except OSError as error:
        raise IntegrityError(f"cannot change image '{path}': {error.strerror or error}") from None
