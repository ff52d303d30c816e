"""fio interval logs: a streaming parser, latency summaries, per-interval series and consistency.

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

:func:`summarise_latency_log` keeps, per direction, a fixed-size log-linear histogram (see
:class:`LogLinearHistogram` for the error bound), exact count/mean/min/max/stddev and a per-second
series, so its memory grows only with the run's duration, never with the number of lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nvmechaos.errors import NvmeChaosError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DIRECTION_NAMES: tuple[str, ...] = ("read", "write", "trim")
"""Direction names by fio's ``ddir`` number."""

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9, 99.99)
"""Percentiles :func:`summarise_latency_log` reports unless told otherwise."""

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


class AnalysisError(NvmeChaosError):
    """There is not enough data for the figure asked for (e.g. no interval after the ramp)."""


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


# --------------------------------------------------------------------------------------------------
# Histogram and latency summaries
# --------------------------------------------------------------------------------------------------


class LogLinearHistogram:
    """A fixed-size log-linear (HDR-style) histogram of non-negative integers.

    Values below ``2 * S`` (``S = 2 ** sub_bucket_bits``) have a bucket each; above, every power of
    two ``[2**k, 2**(k+1))`` is cut into ``S`` equal buckets of width ``2**(k - sub_bucket_bits)``.
    A bucket is reported as the middle of the integers it holds, so a reported value is within
    ``1 / (2 * S)`` of the true one, relatively: 0.39 % with the default 7 bits (128 buckets per
    power of two, 7,296 buckets for the whole int64 range, 57 KiB). Values from 2**53 (104 days in
    ns) on may land one bucket off, as they go through float64.

    Percentiles follow the nearest-rank definition (``numpy.percentile(..., method="inverted_cdf")``):
    the value of rank ``ceil(p / 100 * n)``, computed in exact decimals (numpy's float product may
    round 99.9 % of 1,000 up to rank 1,000). Rank 1 and rank n are the exact minimum and maximum;
    every other result is clamped to them, so it never lies outside the data.
    """

    def __init__(self, sub_bucket_bits: int = 7) -> None:
        if not 1 <= sub_bucket_bits <= 16:
            raise ValueError(f"sub_bucket_bits must be between 1 and 16, not {sub_bucket_bits}")
        self.sub_bucket_bits = sub_bucket_bits
        self.sub_buckets = 1 << sub_bucket_bits
        self.n_buckets = self.sub_buckets * (64 - sub_bucket_bits)
        self.counts: IntArray = np.zeros(self.n_buckets, dtype=np.int64)
        self.minimum = math.inf
        self.maximum = -math.inf

    @property
    def relative_error(self) -> float:
        """The bound on ``|reported - true| / true`` of any percentile."""
        return 1.0 / (2 * self.sub_buckets)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def index(self, values: npt.NDArray[np.integer]) -> IntArray:
        """The bucket of every value (values must be >= 0)."""
        ints = values.astype(np.int64, copy=False)
        exponent = (ints.astype(np.float64).view(np.int64) >> 52) - 1022  # bit length for v >= 1
        shift = np.maximum(exponent - (self.sub_bucket_bits + 1), 0)
        return np.asarray((shift << self.sub_bucket_bits) + (ints >> shift), dtype=np.int64)

    def add(self, values: npt.NDArray[np.integer]) -> None:
        """Count ``values`` (non-negative integers)."""
        if values.size == 0:
            return
        self.counts += np.bincount(self.index(values), minlength=self.n_buckets)
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def add_counts(self, counts: IntArray, minimum: float, maximum: float) -> None:
        """Add bucket counts made with :meth:`index` (and the exact extremes of those values)."""
        self.counts += counts
        self.minimum = min(self.minimum, minimum)
        self.maximum = max(self.maximum, maximum)

    def merge(self, other: LogLinearHistogram) -> None:
        """Add ``other``'s counts (it must have the same ``sub_bucket_bits``)."""
        if other.sub_bucket_bits != self.sub_bucket_bits:
            raise ValueError("cannot merge histograms with different sub_bucket_bits")
        self.add_counts(other.counts, other.minimum, other.maximum)

    def bucket_value(self, index: int) -> float:
        """The middle of the integers bucket ``index`` holds."""
        if index < 2 * self.sub_buckets:
            return float(index)
        shift = index // self.sub_buckets - 1
        lower = (index - shift * self.sub_buckets) << shift
        return lower + ((1 << shift) - 1) / 2.0

    def percentiles(self, percents: Iterable[float]) -> dict[float, float]:
        """Nearest-rank percentiles (see the class) for every percent in ``percents``.

        Raises:
            ValueError: the histogram is empty, or a percent is outside 0..100.
        """
        total = self.count
        if total == 0:
            raise ValueError("no values counted")
        cumulative = np.cumsum(self.counts)
        result: dict[float, float] = {}
        for percent in percents:
            if not 0.0 <= percent <= 100.0:
                raise ValueError(f"percentile {percent} is outside 0..100")
            # Exact decimal arithmetic: 99.9 % of 1000 is rank 999, not 1000 as in float.
            rank = min(total, max(1, math.ceil(Fraction(repr(float(percent))) * total / 100)))
            if rank == 1:
                result[percent] = self.minimum
            elif rank == total:
                result[percent] = self.maximum
            else:
                index = int(np.searchsorted(cumulative, rank, side="left"))
                result[percent] = min(self.maximum, max(self.minimum, self.bucket_value(index)))
        return result

    def percentile(self, percent: float) -> float:
        """One nearest-rank percentile. Raises ValueError as :meth:`percentiles`."""
        return self.percentiles((percent,))[percent]


@dataclass(frozen=True, eq=False)
class IntervalSeries:
    """One direction's values over time.

    ``times_s`` are the ends of the windows (fio stamps an averaged sample at the end of its
    window), in seconds from the job's start; ``values`` are in ``unit``.
    """

    kind: str
    direction: str
    unit: str
    window_ms: int
    times_s: FloatArray
    values: FloatArray
    files: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        """Mean of the values (NaN when empty)."""
        return float(self.values.mean()) if self.values.size else math.nan


@dataclass(frozen=True, eq=False)
class DirectionLatency:
    """Latency of one direction in one or more logs, in ns.

    ``per_second`` is the mean latency in each 1 s window (NaN where nothing completed);
    ``per_second_count`` the number of lines in it, which is the IOPS when the log has one line
    per I/O (kind ``"iops"``; otherwise ``"samples"``). Both are stamped at each window's end.
    """

    direction: str
    count: int
    mean_ns: float
    min_ns: float
    max_ns: float
    stddev_ns: float
    cov_pct: float
    percentiles_ns: Mapping[float, float]
    per_second: IntervalSeries
    per_second_count: IntervalSeries

    def percentile(self, percent: float) -> float | None:
        """The latency in ns at ``percent``, or None when it was not computed."""
        for reported, value in self.percentiles_ns.items():
            if abs(reported - percent) < 1e-9:
                return value
        return None


@dataclass(frozen=True, eq=False)
class LatencySummary:
    """What :func:`summarise_latency_log` found, per direction that has samples.

    ``per_io`` is True when every line is one I/O (no ``log_avg_msec``); with averaged logs the
    counts, percentiles and spread are of window averages, not of I/Os. ``relative_error`` bounds
    the percentiles' error (see :class:`LogLinearHistogram`).
    """

    files: tuple[Path, ...]
    kind: str
    lines: int
    per_io: bool
    relative_error: float
    directions: Mapping[str, DirectionLatency] = field(default_factory=dict)

    def direction(self, name: str) -> DirectionLatency:
        """The figures for ``name`` ("read", "write", "trim"); KeyError naming those there are."""
        try:
            return self.directions[name]
        except KeyError:
            raise KeyError(
                f"no {name} latency in {', '.join(str(f) for f in self.files)} "
                f"(directions: {', '.join(self.directions) or 'none'})"
            ) from None


class _LatencyAccumulator:
    """Running per-direction statistics of latency lines, in memory independent of their number."""

    def __init__(self, sub_bucket_bits: int) -> None:
        self.histogram = LogLinearHistogram(sub_bucket_bits)
        buckets = self.histogram.n_buckets
        self.counts: IntArray = np.zeros(3 * buckets, dtype=np.int64)
        self.n = np.zeros(3, dtype=np.int64)
        self.mean = np.zeros(3, dtype=np.float64)
        self.m2 = np.zeros(3, dtype=np.float64)
        self.minimum = np.full(3, math.inf)
        self.maximum = np.full(3, -math.inf)
        self.second_sum = np.zeros(0, dtype=np.float64)
        self.second_count = np.zeros(0, dtype=np.int64)
        self.lines = 0
        self.averaged = False

    def add(self, chunk: LogChunk) -> None:
        value, ddir = chunk.value, chunk.ddir
        size = int(value.size)
        if size == 0:
            return
        self.lines += size
        if not self.averaged and not bool(chunk.bs.all()):
            self.averaged = True
        buckets = self.histogram.n_buckets
        index = self.histogram.index(value) + ddir * buckets
        chunk_counts = np.bincount(index, minlength=3 * buckets)
        self.counts += chunk_counts

        floats = value.astype(np.float64)
        # Per-second sums and counts of this block, from its first second on (not from 0: a block
        # of a day-long log must not cost a day's worth of buckets).
        seconds = chunk.time_ms // 1000
        first, last = int(seconds.min()), int(seconds.max())
        span = (last - first + 1) * 3
        keys = (seconds - first) * 3 + ddir
        second_sum = np.bincount(keys, weights=floats, minlength=span)
        second_count = np.bincount(keys, minlength=span)
        self._grow_seconds((last + 1) * 3)
        self.second_sum[first * 3 : first * 3 + span] += second_sum
        self.second_count[first * 3 : first * 3 + span] += second_count

        count = second_count.reshape(-1, 3).sum(axis=0)
        present = np.flatnonzero(count)
        if present.size == 1:
            # The usual case for one direction (or a block of one): no masks needed.
            direction = int(present[0])
            chunk_mean = float(floats.mean())
            deviation = floats - chunk_mean
            self._merge(direction, size, chunk_mean, float(deviation @ deviation))
            self.minimum[direction] = min(self.minimum[direction], float(value.min()))
            self.maximum[direction] = max(self.maximum[direction], float(value.max()))
            return
        means = second_sum.reshape(-1, 3).sum(axis=0) / np.maximum(count, 1)
        deviation = floats - means[ddir]
        m2 = np.bincount(ddir, weights=deviation * deviation, minlength=3)
        for direction in present.tolist():
            self._merge(direction, int(count[direction]), float(means[direction]), float(m2[direction]))
            # The extremes lie in the direction's lowest and highest non-empty buckets: look only
            # at the values there (cheaper than selecting all of the direction's values).
            used = np.flatnonzero(chunk_counts[direction * buckets : (direction + 1) * buckets])
            low, high = int(used[0]) + direction * buckets, int(used[-1]) + direction * buckets
            self.minimum[direction] = min(self.minimum[direction], float(value[index == low].min()))
            self.maximum[direction] = max(self.maximum[direction], float(value[index == high].max()))

    def _grow_seconds(self, needed: int) -> None:
        if needed <= self.second_sum.size:
            return
        grown = max(needed, 2 * self.second_sum.size, 3 * 64)
        grown += (-grown) % 3
        self.second_sum = np.concatenate([self.second_sum, np.zeros(grown - self.second_sum.size)])
        self.second_count = np.concatenate(
            [self.second_count, np.zeros(grown - self.second_count.size, dtype=np.int64)]
        )

    def _merge(self, direction: int, count: int, mean: float, m2: float) -> None:
        """Chan et al.'s parallel update of count, mean and sum of squared deviations."""
        before = int(self.n[direction])
        total = before + count
        delta = mean - self.mean[direction]
        self.mean[direction] += delta * count / total
        self.m2[direction] += m2 + delta * delta * before * count / total
        self.n[direction] = total

    def result(self, files: tuple[Path, ...], kind: str, percents: Sequence[float]) -> LatencySummary:
        buckets = self.histogram.n_buckets
        used = np.flatnonzero(self.second_count)
        seconds = int(used.max()) // 3 + 1 if used.size else 0
        times = np.arange(1, seconds + 1, dtype=np.float64)
        sums = self.second_sum[: seconds * 3].reshape(seconds, 3)
        counts = self.second_count[: seconds * 3].reshape(seconds, 3)
        directions: dict[str, DirectionLatency] = {}
        for index, name in enumerate(DIRECTION_NAMES):
            n = int(self.n[index])
            if n == 0:
                continue
            histogram = LogLinearHistogram(self.histogram.sub_bucket_bits)
            histogram.add_counts(
                self.counts[index * buckets : (index + 1) * buckets],
                float(self.minimum[index]),
                float(self.maximum[index]),
            )
            mean = float(self.mean[index])
            stddev = math.sqrt(float(self.m2[index]) / n)
            per_count = counts[:, index].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_mean = np.where(per_count > 0, sums[:, index] / per_count, np.nan)
            directions[name] = DirectionLatency(
                direction=name,
                count=n,
                mean_ns=mean,
                min_ns=float(self.minimum[index]),
                max_ns=float(self.maximum[index]),
                stddev_ns=stddev,
                cov_pct=stddev / mean * 100.0 if mean > 0 else math.inf,
                percentiles_ns=histogram.percentiles(percents),
                per_second=IntervalSeries(kind or "lat", name, "ns", 1000, times, per_mean, files),
                per_second_count=IntervalSeries(
                    "samples" if self.averaged else "iops",
                    name,
                    "samples/s" if self.averaged else "IO/s",
                    1000,
                    times,
                    per_count,
                    files,
                ),
            )
        return LatencySummary(
            files=files,
            kind=kind,
            lines=self.lines,
            per_io=not self.averaged,
            relative_error=self.histogram.relative_error,
            directions=directions,
        )


def _kind_of(path: Path) -> str:
    """ "clat" for ``fio_clat.1.log`` and the like; "" when the name does not say."""
    match = re.search(r"_(iops|bw|lat|clat|slat)(\.\d+)?\.log$", path.name)
    return match.group(1) if match else ""


def summarise_latency_log(
    path: str | Path,
    percentiles: Sequence[float] = PERCENTILES,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    sub_bucket_bits: int = 7,
) -> LatencySummary:
    """Summarise one fio latency log (lat, clat or slat; values in ns) per direction, streaming.

    Count, mean, min and max are exact; stddev and CoV are exact up to float rounding; percentiles
    come from a :class:`LogLinearHistogram` (relative error <= ``1 / 2**(sub_bucket_bits + 1)``,
    0.39 % by default). Memory: one block of ``chunk_bytes``, the histogram (57 KiB per direction)
    and the per-second series (48 bytes per second of run), whatever the number of lines.

    Raises:
        LogFormatError: the file cannot be read or a line is not fio's.
        ValueError: a percentile is outside 0..100, or ``chunk_bytes``/``sub_bucket_bits`` is invalid.
    """
    return summarise_latency_logs(
        [path], percentiles, chunk_bytes=chunk_bytes, sub_bucket_bits=sub_bucket_bits
    )


def summarise_latency_logs(
    paths: Sequence[str | Path],
    percentiles: Sequence[float] = PERCENTILES,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    sub_bucket_bits: int = 7,
) -> LatencySummary:
    """Summarise several latency logs as one population (e.g. every thread of a job).

    Per-second counts add up across files, so ``per_second_count`` is the job's total IOPS when
    the logs have one line per I/O. Raises as :func:`summarise_latency_log`.
    """
    for percent in percentiles:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percentile {percent} is outside 0..100")
    files = tuple(Path(p) for p in paths)
    accumulator = _LatencyAccumulator(sub_bucket_bits)
    for path in files:
        for chunk in iter_log_chunks(path, chunk_bytes):
            accumulator.add(chunk)
    kinds = {_kind_of(path) for path in files}
    kind = kinds.pop() if len(kinds) == 1 else ""
    return accumulator.result(files, kind, percentiles)


# --------------------------------------------------------------------------------------------------
# Averaged series
# --------------------------------------------------------------------------------------------------


def _infer_window_ms(logs: Sequence[LogChunk]) -> int:
    """fio's ``log_avg_msec`` from the spacing of the samples (median step), or 1000 if unknown."""
    steps: list[IntArray] = []
    firsts: list[int] = []
    for log in logs:
        for direction in range(3):
            times = np.unique(log.time_ms[log.ddir == direction])
            if times.size:
                firsts.append(int(times[0]))
            if times.size > 1:
                steps.append(np.diff(times))
    if steps:
        return max(1, round(float(np.median(np.concatenate(steps)))))
    if firsts and min(firsts) > 0:
        return min(firsts)
    return 1000


def _sibling(path: Path, kind: str, other: str) -> Path:
    return path.with_name(re.sub(rf"_{kind}(\.\d+)?\.log$", rf"_{other}\1.log", path.name))


def read_series(
    paths: Sequence[str | Path],
    kind: str,
    *,
    window_ms: int | None = None,
    iops_paths: Sequence[str | Path] | None = None,
) -> dict[str, IntervalSeries]:
    """Read averaged fio logs (written with ``log_avg_msec``) of ``kind`` into one series per direction.

    ``paths`` are the logs of threads that ran at the same time (a job's ``numjobs`` clones; fio
    stamps each thread's log from that thread's start). Samples are put in windows of
    ``window_ms`` (default: inferred from the sample spacing) by their time stamp, rounded to the
    nearest window end. Across files, iops and bw add up; latencies (lat, clat, slat) are averaged
    weighted by each thread's IOPS in that window, read from ``iops_paths`` (default: the
    ``fio_iops.N.log`` beside each latency log, when all exist; otherwise equal weights).

    fio writes no line for a window in which a direction did no I/O, so iops and bw series are
    filled with 0 over the whole run (a stall shows as zeros); latency series have only windows
    with samples. Directions without any sample are left out.

    Raises:
        LogFormatError: a file cannot be read, is not fio's format, or logs every I/O (has a
            block size) instead of window averages.
        ValueError: ``kind`` is not one of iops, bw, lat, clat, slat, or ``window_ms`` < 1.
    """
    if kind not in UNITS:
        raise ValueError(f"unknown log kind '{kind}' (expected one of {', '.join(UNITS)})")
    if window_ms is not None and window_ms < 1:
        raise ValueError(f"window_ms must be at least 1, not {window_ms}")
    files = tuple(Path(p) for p in paths)
    if not files:
        return {}
    logs = [read_log(path) for path in files]
    for log in logs:
        _require_averaged(log)
    window = window_ms or _infer_window_ms(logs)

    weights = _weight_logs(files, kind, iops_paths) if kind in LATENCY_KINDS and len(files) > 1 else None

    slots_all = [_slots(log.time_ms, window) for log in logs]
    nonempty = [s for s in slots_all if s.size]
    if not nonempty:
        return {}
    low = min(int(s.min()) for s in nonempty)
    high = max(int(s.max()) for s in nonempty)
    span = high - low + 1
    times = (np.arange(low, high + 1, dtype=np.float64) * window) / 1000.0

    result: dict[str, IntervalSeries] = {}
    for direction, name in enumerate(DIRECTION_NAMES):
        grid = np.full((len(logs), span), np.nan)
        for row, (log, slots) in enumerate(zip(logs, slots_all, strict=True)):
            mask = log.ddir == direction
            if mask.any():
                grid[row] = _window_means(slots[mask] - low, log.value[mask], span)
        present = ~np.isnan(grid)
        if not present.any():
            continue
        if kind in ADDITIVE_KINDS:
            values = np.where(present, grid, 0.0).sum(axis=0)
            keep = np.ones(span, dtype=bool)
        else:
            weight = _weight_grid(weights, direction, window, low, present)
            keep = present.any(axis=0)
            total = weight.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = (np.where(present, grid, 0.0) * weight).sum(axis=0) / total
        result[name] = IntervalSeries(
            kind=kind,
            direction=name,
            unit=UNITS[kind],
            window_ms=window,
            times_s=times[keep],
            values=np.asarray(values[keep], dtype=np.float64),
            files=files,
        )
    return result


def is_per_io_log(path: str | Path) -> bool:
    """True when fio log ``path`` has one line per I/O (a block size, no ``log_avg_msec``); False
    for window averages or an empty log.

    Raises:
        LogFormatError: as :func:`iter_log_chunks`.
    """
    for chunk in iter_log_chunks(Path(path)):
        if len(chunk):
            return bool(chunk.bs[0])
    return False


def per_io_series(paths: Sequence[str | Path], kind: str, window_ms: int) -> dict[str, IntervalSeries]:
    """Windowed series from fio logs with one line per I/O (no ``log_avg_msec``), one per direction.

    A line stamped ``t`` ms (the I/O's completion) belongs to the window ``((k-1)·w, k·w]`` with
    ``k = floor(t / w) + 1``; its end ``k·w`` is the window's time, as fio stamps averages. Unlike
    fio's own averages, whose time stamps slip whenever the guest stalls, every I/O lands in the
    window it completed in. ``iops``: completions per second in each window (any per-I/O log
    counts: iops, clat, lat...), 0 where none completed, from the first window to the last;
    latency kinds: the mean of the window's I/Os in ns, only windows with completions. ``paths``
    (``numjobs`` clones) add up. Reading is streamed: memory grows with the run's length, not its
    number of I/Os.

    Raises:
        LogFormatError: a file cannot be read, is not fio's format, or is a log of averages.
        ValueError: ``kind`` is not iops or a latency, or ``window_ms`` < 1.
    """
    if kind != "iops" and kind not in LATENCY_KINDS:
        raise ValueError(f"per-I/O series of '{kind}' are not supported (use iops, lat, clat or slat)")
    if window_ms < 1:
        raise ValueError(f"window_ms must be at least 1, not {window_ms}")
    files = tuple(Path(p) for p in paths)
    counts: dict[int, FloatArray] = {}
    sums: dict[int, FloatArray] = {}

    def grow(store: dict[int, FloatArray], direction: int, size: int) -> FloatArray:
        array = store.get(direction, np.zeros(0))
        if array.size < size:
            array = np.concatenate([array, np.zeros(size - array.size)])
            store[direction] = array
        return array

    for path in files:
        for chunk in iter_log_chunks(path):
            if not len(chunk):
                continue
            averaged = np.flatnonzero(chunk.bs == 0)
            if averaged.size:
                row = int(averaged[0])
                raise LogFormatError(
                    f"fio log '{path}' line {chunk.first_line + row}: no block size, so a window average "
                    "(log_avg_msec); per-I/O series need one line per I/O (log_avg_msec=0)"
                )
            slots = chunk.time_ms // window_ms + 1
            for direction in np.unique(chunk.ddir):
                mask = chunk.ddir == direction
                size = int(slots[mask].max()) + 1
                count = grow(counts, int(direction), size)
                total = grow(sums, int(direction), size)
                count += np.bincount(slots[mask], minlength=count.size)
                total += np.bincount(
                    slots[mask], weights=chunk.value[mask].astype(np.float64), minlength=total.size
                )
    result: dict[str, IntervalSeries] = {}
    for direction, count in sorted(counts.items()):
        if direction >= len(DIRECTION_NAMES) or not count.any():
            continue
        nonzero = np.flatnonzero(count)
        first, last = max(1, int(nonzero[0])), int(nonzero[-1])
        index = np.arange(first, last + 1)
        if kind == "iops":
            keep = index
            values = count[index] * 1000.0 / window_ms
        else:
            keep = index[count[index] > 0]
            values = sums[direction][keep] / count[keep]
        result[DIRECTION_NAMES[direction]] = IntervalSeries(
            kind=kind,
            direction=DIRECTION_NAMES[direction],
            unit=UNITS[kind],
            window_ms=window_ms,
            times_s=keep.astype(np.float64) * window_ms / 1000.0,
            values=np.asarray(values, dtype=np.float64),
            files=files,
        )
    return result


def _weight_logs(
    files: Sequence[Path], kind: str, iops_paths: Sequence[str | Path] | None
) -> list[LogChunk] | None:
    """The iops logs that weight the latency logs ``files``, or None for equal weights."""
    if iops_paths is not None:
        weight_files = [Path(p) for p in iops_paths]
        if len(weight_files) != len(files):
            raise ValueError(f"{len(weight_files)} iops logs for {len(files)} {kind} logs")
        return [read_log(p) for p in weight_files]
    siblings = [_sibling(path, kind, "iops") for path in files]
    if all(s.is_file() and s != p for s, p in zip(siblings, files, strict=True)):
        return [read_log(p) for p in siblings]
    return None


def _weight_grid(
    weights: Sequence[LogChunk] | None, direction: int, window: int, low: int, present: npt.NDArray[np.bool_]
) -> FloatArray:
    """Per file and window, the weight of its latency: its IOPS (0 where it has no latency)."""
    span = present.shape[1]
    if weights is None:
        return present.astype(np.float64)
    weight = np.zeros(present.shape)
    for row, log in enumerate(weights):
        mask = log.ddir == direction
        if mask.any():
            slots = _slots(log.time_ms[mask], window) - low
            inside = (slots >= 0) & (slots < span)
            means = _window_means(slots[inside], log.value[mask][inside], span)
            weight[row] = np.nan_to_num(means, nan=0.0)
    weight = np.where(present, weight, 0.0)
    # A window whose weights are all 0 (no iops sample) falls back to a plain mean.
    unweighted = weight.sum(axis=0) == 0
    weight[:, unweighted] = present[:, unweighted].astype(np.float64)
    return weight


def _require_averaged(log: LogChunk) -> None:
    sized = np.flatnonzero(log.bs)
    if sized.size:
        row = int(sized[0])
        raise LogFormatError(
            f"fio log '{log.path}' line {log.first_line + row}: block size {int(log.bs[row])} means one "
            "line per I/O; interval series need logs averaged over windows (fio's log_avg_msec)"
        )


def _slots(time_ms: IntArray, window: int) -> IntArray:
    """The window number of each time stamp: the nearest multiple of ``window`` (ends of windows)."""
    return np.asarray((time_ms + window // 2) // window, dtype=np.int64)


def _window_means(slots: IntArray, values: IntArray, span: int) -> FloatArray:
    """Mean value per slot 0..span-1 (NaN where none): two samples of one window are averaged."""
    sums = np.bincount(slots, weights=values.astype(np.float64), minlength=span)[:span]
    counts = np.bincount(slots, minlength=span)[:span]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def total_series(series: Mapping[str, IntervalSeries]) -> IntervalSeries:
    """Sum of iops or bw series over directions (read + write + trim), on the union of their times.

    Raises:
        ValueError: ``series`` is empty, mixes kinds, or is latency (which does not add up).
    """
    if not series:
        raise ValueError("no series to add up")
    parts = list(series.values())
    kinds = {s.kind for s in parts}
    if len(kinds) != 1 or next(iter(kinds)) not in ADDITIVE_KINDS:
        raise ValueError(f"only iops or bw series of one kind add up, not {', '.join(sorted(kinds))}")
    times = np.unique(np.concatenate([s.times_s for s in parts]))
    values = np.zeros(times.size)
    for part in parts:
        values[np.searchsorted(times, part.times_s)] += part.values
    first = parts[0]
    files = tuple(dict.fromkeys(f for s in parts for f in s.files))
    return IntervalSeries(first.kind, "total", first.unit, first.window_ms, times, values, files)


# --------------------------------------------------------------------------------------------------
# Consistency and steady state
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consistency:
    """How much a series varies after the ramp. Ratios are to the mean; stddev is the population one."""

    samples: int
    mean: float
    stddev: float
    minimum: float
    maximum: float
    cov_pct: float
    min_to_mean: float
    max_to_mean: float
    start_s: float
    end_s: float


def _after_ramp(series: IntervalSeries, ramp_s: float) -> tuple[FloatArray, FloatArray]:
    times = np.asarray(series.times_s, dtype=np.float64)
    values = np.asarray(series.values, dtype=np.float64)
    keep = (times > ramp_s) & ~np.isnan(values)
    return times[keep], values[keep]


def consistency(series: IntervalSeries, *, ramp_s: float = 0.0) -> Consistency:
    """CoV (%), min/mean and max/mean of ``series``, leaving out windows ending at or before ``ramp_s``.

    NaN values (no sample) are left out. A mean of 0 gives an infinite CoV and max/mean.

    Raises:
        AnalysisError: no value is left after the ramp.
    """
    times, values = _after_ramp(series, ramp_s)
    if values.size == 0:
        raise AnalysisError(
            f"{series.direction} {series.kind} has no interval after the {ramp_s:g} s ramp "
            f"({len(series)} intervals in all)"
        )
    mean = float(values.mean())
    stddev = float(values.std())
    low, high = float(values.min()), float(values.max())
    positive = mean > 0
    return Consistency(
        samples=int(values.size),
        mean=mean,
        stddev=stddev,
        minimum=low,
        maximum=high,
        cov_pct=stddev / mean * 100.0 if positive else math.inf,
        min_to_mean=low / mean if positive else 0.0,
        max_to_mean=high / mean if positive else math.inf,
        start_s=float(times[0]),
        end_s=float(times[-1]),
    )


@dataclass(frozen=True)
class SteadyState:
    """The SNIA PTS steady-state test over a window of ``rounds`` rounds.

    In the window, the data excursion (max - min) must be within ``max_range_pct`` of the mean
    and the excursion of the least-squares line (|slope| x window span) within ``max_slope_pct``.
    ``start_s``/``end_s`` are the times of the window's first and last round (NaN when there were
    too few rounds); ``detail`` says in one sentence what was found.
    """

    steady: bool
    rounds: int
    round_s: float
    start_s: float
    end_s: float
    mean: float
    range_pct: float
    slope_pct: float
    max_range_pct: float
    max_slope_pct: float
    detail: str


def steady_state(
    series: IntervalSeries,
    *,
    rounds: int = 5,
    round_s: float | None = None,
    ramp_s: float = 0.0,
    max_range_pct: float = 20.0,
    max_slope_pct: float = 10.0,
) -> SteadyState:
    """Find the first window of ``rounds`` consecutive rounds in steady state (SNIA PTS criteria).

    A round is one interval of ``series`` or, with ``round_s``, the mean of the intervals in each
    ``round_s`` seconds after the ramp. Windows ending at or before ``ramp_s`` are left out. When no
    window is steady, the result describes the last one (``steady`` False).

    Raises:
        ValueError: ``rounds`` < 2, ``round_s`` <= 0, or a limit is negative.
    """
    if rounds < 2:
        raise ValueError(f"a steady-state window needs at least 2 rounds, not {rounds}")
    if round_s is not None and round_s <= 0:
        raise ValueError(f"round_s must be positive, not {round_s}")
    if max_range_pct < 0 or max_slope_pct < 0:
        raise ValueError("steady-state limits must not be negative")
    times, values = _after_ramp(series, ramp_s)
    if round_s is not None and values.size:
        group = np.floor((times - times[0]) / round_s).astype(np.int64)
        counts = np.bincount(group)
        filled = counts > 0
        times = (np.bincount(group, weights=times) / np.maximum(counts, 1))[filled]
        values = (np.bincount(group, weights=values) / np.maximum(counts, 1))[filled]
    size = round_s if round_s is not None else series.window_ms / 1000.0
    name = f"{series.direction} {series.kind}"
    if values.size < rounds:
        return SteadyState(
            False,
            rounds,
            size,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            max_range_pct,
            max_slope_pct,
            f"{name}: only {values.size} rounds after the {ramp_s:g} s ramp, {rounds} needed",
        )
    last: SteadyState | None = None
    for start in range(values.size - rounds + 1):
        window_t = times[start : start + rounds]
        window_v = values[start : start + rounds]
        mean = float(window_v.mean())
        span = float(window_t[-1] - window_t[0])
        centred = window_t - window_t.mean()
        denominator = float(centred @ centred)
        slope = float(centred @ (window_v - mean)) / denominator if denominator > 0 else 0.0
        if mean > 0:
            range_pct = float(window_v.max() - window_v.min()) / mean * 100.0
            slope_pct = abs(slope) * span / mean * 100.0
        else:
            range_pct = slope_pct = math.inf
        steady = range_pct <= max_range_pct and slope_pct <= max_slope_pct
        verdict = "steady" if steady else "not steady"
        detail = (
            f"{name} {verdict} from {float(window_t[0]):g} s to {float(window_t[-1]):g} s: "
            f"range {range_pct:.1f} % of mean (limit {max_range_pct:g} %), "
            f"slope excursion {slope_pct:.1f} % (limit {max_slope_pct:g} %)"
        )
        last = SteadyState(
            steady,
            rounds,
            size,
            float(window_t[0]),
            float(window_t[-1]),
            mean,
            range_pct,
            slope_pct,
            max_range_pct,
            max_slope_pct,
            detail,
        )
        if steady:
            return last
    assert last is not None
    return last
