"""fio's interval logs, read in bounded memory.

fio writes one interval log per job thread and kind (``fio_iops.N.log``, ``fio_bw.N.log``,
``fio_lat.N.log``, ``fio_clat.N.log``, ``fio_slat.N.log``). Every line is::

    time_ms, value, ddir, bs[, offset][, prio]

``ddir`` is 0 read, 1 write, 2 trim. fio 3.33 writes 5 columns (``prio`` last, as ``0x0000`` with
``log_prio``) and 6 with ``log_offset``; older fio wrote 4. With ``log_avg_msec`` every line is
the average over one window (iops in IO/s, bw in KiB/s, latency in ns) and ``bs`` is 0; without
it, every line is one I/O (latency in ns, ``bs`` the I/O size).

Reading never holds a whole log in memory: :func:`iter_log_chunks` reads fixed-size byte blocks,
cuts each at its last newline and parses all its lines at once with numpy. The fast path finds
newlines and commas with vectorised compares, checks the layout of every line (column count, one
space after each comma, only digits, one ``0x`` per line in a hex ``prio`` column), and converts the
time, value and bs columns eight digits at a time with SWAR arithmetic on uint64 words. Measured
with ``benchmarks/analysis_speed.py --compare-parsers``, it is faster than ``numpy.loadtxt`` and on
par with an unchecked ``bytes.translate`` + ``numpy.fromstring``, while checking every line. A
block the fast path does not accept is parsed again line by line in Python, which either accepts
it (a blank last line, other spacing, hex letters in ``prio``, numbers of 17-19 digits) or raises
:class:`LogFormatError` naming the file, line and problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nvmechaos.errors import NvmeChaosError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DIRECTION_NAMES: tuple[str, ...] = ("read", "write", "trim")
"""Direction names by fio's ``ddir`` number."""

UNITS: Mapping[str, str] = {"iops": "IO/s", "bw": "KiB/s", "lat": "ns", "clat": "ns", "slat": "ns"}
"""The unit of an averaged log's values, by log kind."""

ADDITIVE_KINDS: frozenset[str] = frozenset({"iops", "bw"})
LATENCY_KINDS: frozenset[str] = frozenset({"lat", "clat", "slat"})

DEFAULT_CHUNK_BYTES = 1 << 20
"""Bytes read per block. 1 MiB was as fast as any size from 256 KiB to 4 MiB (within noise) and
needs about 12 MiB of numpy temporaries; 256 KiB needs 3.3 MiB."""

MAX_LINE_BYTES = 1 << 16
"""A "line" longer than this is not fio's; reading stops with an error rather than buffering on."""

_MIN_COLUMNS = 4
_MAX_COLUMNS = 7
_COLUMN_NAMES = ("time", "value", "direction", "block size")
_NEWLINE = 10
_COMMA = 44
_LETTER_X = 120
_SPACE = 32
_DIGIT_0 = 48
_DIGIT_9 = 57
_HEX_FIELD = re.compile(rb"(0x[0-9a-fA-F]+|[0-9]+)")


class LogFormatError(NvmeChaosError):
    """An interval log is unreadable or not in fio's format; the message names the file and line."""


# --------------------------------------------------------------------------------------------------
# Streaming reader
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LogChunk:
    """Consecutive lines of one log, one array element per line.

    ``first_line`` is the 1-based line number of element 0 in ``path`` (blank lines are counted but
    have no element, and there are none before the last non-blank line).
    """

    path: Path
    first_line: int
    time_ms: IntArray
    value: IntArray
    ddir: IntArray
    bs: IntArray

    def __len__(self) -> int:
        return int(self.value.size)


_U64 = np.uint64
_ASCII_ZEROS = _U64(0x3030303030303030)
_HIGH_NIBBLES = _U64(0xF0F0F0F0F0F0F0F0)
_SIXES = _U64(0x0606060606060606)
_BYTES_0_4 = _U64(0x000000FF000000FF)
_PAIR_A = _U64(100 + (1000000 << 32))
_PAIR_B = _U64(1 + (10000 << 32))
# _KEEP[w]: the top w bytes of a little-endian word (the last w characters before a column's end).
_KEEP = np.array([0] + [((1 << 64) - 1) ^ ((1 << (8 * (8 - w))) - 1) for w in range(1, 9)], dtype=np.uint64)
_PAD = 16


class _Words:
    """Eight-byte words of a block ending at any byte, for SWAR digit parsing (8 digits at a time).

    The block is copied once into a zero-padded, 8-byte aligned buffer; the word ending before
    position ``e`` is put together from the two aligned words around it.
    """

    def __init__(self, buf: npt.NDArray[np.uint8]) -> None:
        size = buf.size + _PAD + 16
        size += (-size) % 8
        padded = np.zeros(size, dtype=np.uint8)
        padded[_PAD : _PAD + buf.size] = buf
        self.words = padded.view(np.uint64)

    def ending_at(self, ends: IntArray) -> npt.NDArray[np.uint64]:
        start = ends + (_PAD - 8)
        index = start >> 3
        shift = ((start & 7) << 3).astype(np.uint64)
        # A shift by 64 gives 0 in numpy (no undefined behaviour), which is what shift 0 needs.
        return np.asarray((self.words[index] >> shift) | (self.words[index + 1] << (_U64(64) - shift)))

    @staticmethod
    def digits(word: npt.NDArray[np.uint64], width: IntArray) -> npt.NDArray[np.uint64] | None:
        """The number in the last ``width`` (1..8) characters of each word; None if one is no digit."""
        keep = _KEEP[width]
        x = (word & keep) | (_ASCII_ZEROS & ~keep)
        # Every byte is 0x30..0x39: high nibble 3, and still 3 after adding 6.
        digits = ((x & _HIGH_NIBBLES) == _ASCII_ZEROS) & (((x + _SIXES) & _HIGH_NIBBLES) == _ASCII_ZEROS)
        if not bool(digits.all()):
            return None
        x = x - _ASCII_ZEROS
        x = x * _U64(10) + (x >> _U64(8))
        return np.asarray(((x & _BYTES_0_4) * _PAIR_A + ((x >> _U64(16)) & _BYTES_0_4) * _PAIR_B) >> _U64(32))

    def number(self, starts: IntArray, ends: IntArray) -> IntArray | None:
        """The decimal number in ``[start, end)`` of every line (1 to 16 digits), or None."""
        width = ends - starts
        widest = int(width.max())
        if int(width.min()) < 1 or widest > 16:
            return None
        low_width = np.minimum(width, 8) if widest > 8 else width
        low = self.digits(self.ending_at(ends), low_width)
        if low is None:
            return None
        if widest > 8:
            high = self.digits(self.ending_at(ends - 8), width - low_width)
            if high is None:
                return None
            low = high * _U64(100_000_000) + low
        return low.view(np.int64)


class _ChunkParser:
    """Parses newline-terminated blocks of one file, remembering its column layout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: int | None = None
        self.blank_line: int | None = None

    def fail(self, line: int, problem: str) -> LogFormatError:
        return LogFormatError(f"fio log '{self.path}' line {line}: {problem}")

    def parse(self, data: bytes, first_line: int) -> tuple[LogChunk | None, int]:
        """Parse ``data`` (whole lines, ending with a newline) whose first line is ``first_line``.

        Returns the lines' arrays (None when all are blank) and the number of lines.
        """
        buf = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(buf == _NEWLINE)
        if self.blank_line is not None:
            if data.strip():
                self.parse_slow(data, first_line)  # raises on the first non-blank line
            return None, int(newlines.size)
        fast = self.parse_fast(data, buf, newlines, first_line)
        return (fast if fast is not None else self.parse_slow(data, first_line)), int(newlines.size)

    def parse_fast(
        self, data: bytes, buf: npt.NDArray[np.uint8], newlines: IntArray, first_line: int
    ) -> LogChunk | None:
        """The vectorised parser for fio's exact layout; None when anything differs (the slow path decides).

        It accepts only: the file's number of columns on every line, ``", "`` between columns,
        decimal digits in every column (at most 16 in time, value and bs), ``ddir`` 0-2, and the
        last column either decimal or ``0x`` and decimal digits on every line.
        """
        lines = int(newlines.size)
        commas = np.flatnonzero(buf == _COMMA)
        if lines == 0 or commas.size % lines:
            return None
        per_line = commas.size // lines
        columns = per_line + 1
        if not _MIN_COLUMNS <= columns <= _MAX_COLUMNS or self.columns not in (None, columns):
            return None
        grid = commas.reshape(lines, per_line)
        # Every line holds exactly per_line commas: its first after the previous newline, its last
        # before its own (with lines * per_line commas in all, no line can have more or fewer).
        if not (bool((grid[:, -1] < newlines).all()) and bool((grid[1:, 0] > newlines[:-1]).all())):
            return None
        # Character classes: below '0' only the newlines, the commas and one space after each
        # comma; above '9' nothing but one 'x' per line (hex prio).
        if int(np.count_nonzero(buf < _DIGIT_0)) != lines * (1 + 2 * per_line):
            return None
        if not bool((buf[commas + 1] == _SPACE).all()):
            return None
        after_last = grid[:, -1]
        # Columns after bs must not be empty (time, value and bs are checked as they are parsed).
        for column in range(4, per_line):
            if int((grid[:, column] - grid[:, column - 1]).min()) < 3:
                return None
        if per_line >= 4 and int((newlines - after_last).min()) < 3:
            return None
        high = int(np.count_nonzero(buf > _DIGIT_9))
        if high:
            if high != lines or per_line < 4:
                return None
            if int((newlines - after_last).min()) < 5:  # ", 0x" and at least one digit
                return None
            if not bool(((buf[after_last + 3] == _LETTER_X) & (buf[after_last + 2] == _DIGIT_0)).all()):
                return None
        ddir_width = grid[:, 2] - grid[:, 1]
        if not bool((ddir_width == 3).all()):
            return None
        ddir = buf[grid[:, 1] + 2].astype(np.int64) - _DIGIT_0
        if int(ddir.max()) > 2:
            return None
        words = _Words(buf)
        starts = np.empty(lines, dtype=np.int64)
        starts[0] = 0
        starts[1:] = newlines[:-1] + 1
        time_ms = words.number(starts, grid[:, 0])
        value = words.number(grid[:, 0] + 2, grid[:, 1])
        bs = words.number(grid[:, 2] + 2, grid[:, 3] if per_line > 3 else newlines)
        if time_ms is None or value is None or bs is None:
            return None
        self.columns = columns
        return LogChunk(self.path, first_line, time_ms, value, ddir, bs)

    def parse_slow(self, data: bytes, first_line: int) -> LogChunk | None:
        """Parse line by line; raises LogFormatError on the first line that is not fio's."""
        rows: list[tuple[int, int, int, int]] = []
        first_row_line = first_line
        for offset, raw in enumerate(data.split(b"\n")[:-1]):
            number = first_line + offset
            text = raw.strip()
            if not text:
                if self.blank_line is None:
                    self.blank_line = number
                continue
            if self.blank_line is not None:
                raise self.fail(number, f"data after the blank line {self.blank_line}")
            if not rows:
                first_row_line = number
            rows.append(self.parse_line(text, number))
        if not rows:
            return None
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        return LogChunk(self.path, first_row_line, table[:, 0], table[:, 1], table[:, 2], table[:, 3])

    def parse_line(self, text: bytes, number: int) -> tuple[int, int, int, int]:
        fields = [part.strip() for part in text.split(b",")]
        shown = text[:80].decode("ascii", errors="replace")
        if not _MIN_COLUMNS <= len(fields) <= _MAX_COLUMNS:
            raise self.fail(
                number,
                f"{len(fields)} columns, expected fio's 5 or 6 (time, value, ddir, bs, [offset,] prio): "
                f"'{shown}'",
            )
        if self.columns is not None and len(fields) != self.columns:
            raise self.fail(
                number, f"{len(fields)} columns where the lines before have {self.columns}: '{shown}'"
            )
        numbers: list[int] = []
        for name, part in zip(_COLUMN_NAMES, fields, strict=False):
            if not part.isdigit():
                bad = part.decode("ascii", "replace")
                raise self.fail(number, f"{name} '{bad}' is not a whole number: '{shown}'")
            if len(part) > 18 and int(part) >= 1 << 63:
                raise self.fail(number, f"{name} {part.decode()} is too large for a fio log: '{shown}'")
            numbers.append(int(part))
        if numbers[2] > 2:
            raise self.fail(
                number, f"direction {numbers[2]} is not 0 (read), 1 (write) or 2 (trim): '{shown}'"
            )
        for part in fields[4:]:
            if not _HEX_FIELD.fullmatch(part):
                bad = part.decode("ascii", "replace")
                raise self.fail(number, f"column '{bad}' is not a number: '{shown}'")
        self.columns = len(fields)
        return numbers[0], numbers[1], numbers[2], numbers[3]


_THREAD = re.compile(r"\.(\d+)\.log$")


def log_thread(path: str | Path) -> str:
    """The thread number fio puts in a log file's name (``fio_iops.2.log`` -> ``"2"``; fio counts its
    threads from 1 through the jobs in file order), or ``""`` for a name without one."""
    found = _THREAD.search(Path(path).name)
    return found.group(1) if found else ""


def iter_log_chunks(path: str | Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[LogChunk]:
    """Yield the lines of fio log ``path`` as :class:`LogChunk` arrays, ``chunk_bytes`` at a time.

    Memory use is bounded by ``chunk_bytes`` (plus one line), whatever the file's size. Lines that
    straddle blocks are carried over; a missing final newline and blank last lines are accepted.

    Raises:
        LogFormatError: the file cannot be read, or a line is not fio's (the message names the file,
            the line number and what is wrong).
        ValueError: ``chunk_bytes`` is less than 1.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be at least 1, not {chunk_bytes}")
    path = Path(path)
    parser = _ChunkParser(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with-block below
    except OSError as error:
        raise LogFormatError(f"cannot read fio log '{path}': {error.strerror}") from None
    with handle:
        pending = b""
        line = 1
        while True:
            try:
                block = handle.read(chunk_bytes)
            except OSError as error:
                raise LogFormatError(f"cannot read fio log '{path}': {error.strerror}") from None
            if not block:
                break
            data = pending + block if pending else block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) > MAX_LINE_BYTES:
                    raise parser.fail(line, f"no end of line within {MAX_LINE_BYTES} bytes: not a fio log")
                pending = data
                continue
            pending = data[cut:]
            whole = data[:cut] if cut < len(data) else data
            chunk, lines = parser.parse(whole, line)
            line += lines
            if chunk is not None:
                yield chunk
        if pending:
            chunk, _ = parser.parse(pending + b"\n", line)
            if chunk is not None:
                yield chunk


def read_log(path: str | Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> LogChunk:
    """Read all of fio log ``path`` into one :class:`LogChunk` (for averaged logs, which are small).

    Raises:
        LogFormatError: as :func:`iter_log_chunks`.
    """
    path = Path(path)
    chunks = list(iter_log_chunks(path, chunk_bytes))
    if not chunks:
        empty = np.zeros(0, dtype=np.int64)
        return LogChunk(path, 1, empty, empty, empty, empty)
    if len(chunks) == 1:
        return chunks[0]
    return LogChunk(
        path,
        chunks[0].first_line,
        np.concatenate([c.time_ms for c in chunks]),
        np.concatenate([c.value for c in chunks]),
        np.concatenate([c.ddir for c in chunks]),
        np.concatenate([c.bs for c in chunks]),
    )
