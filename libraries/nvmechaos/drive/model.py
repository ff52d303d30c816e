"""The emulated SSD: when each request completes, and what the drive reports about itself.

Pure arithmetic on a clock the caller passes in (``now``, seconds), so unit tests drive it with a
fake clock and the NBD server (:mod:`nvmechaos.drive.server`) with ``time.monotonic``. The data
itself is not here: the server stores every byte (:mod:`nvmechaos.drive.store`).

- **Geometry.** ``channels x dies_per_channel`` dies work in parallel. A *superblock* is one erase
  block on every die; its pages are striped over the dies (page ``i`` of a superblock is on die
  ``i % dies``), so sequential data spreads over every die, as in FTLs that program superpages.
  Physical capacity is the namespace size times ``1 + over_provisioning``.
- **Timing.** Each die keeps the time it is next free. A page read waits for the operation in
  progress on its die (reads are served before queued programs: program/erase suspend) and pushes
  the die's queued work back by one read. Programs and erases queue on their dies.
- **Write buffer.** A written page is acknowledged as soon as it fits into the buffer
  (``buffer_size``) and leaves the buffer when its program completes: while the NAND keeps up,
  writes complete in ``buffer_latency``; once the buffer is full they wait for programs (the burst
  cliff). A read of a page still in the buffer is served from it.
- **Flash translation.** Page-level mapping; host and GC writes share one write frontier. When
  fewer than ``gc_reserve_blocks`` superblocks are free, greedy garbage collection takes the closed
  superblock with the fewest valid pages, moves them (a read and a program each, on the dies) and
  erases it on every die. TRIM and write-zeroes unmap pages; superblocks they leave empty are
  erased in the background at once. Write amplification = NAND pages programmed / host pages
  written.
- **Wear.** Erase counts per superblock against ``endurance`` give ``percent_used``; superblocks at
  their rated endurance retire, which eats the spare (``avail_spare``) and, when none is left, makes
  the drive read-only. From ``media_errors_from`` of its life a page read fails with a probability
  growing linearly to ``media_error_rate`` at end of life (a seeded generator: runs repeat).
- **Heat.** The temperature approaches ``ambient + full_load_rise x utilisation`` (dies busy) with
  ``thermal_time_constant``; at ``throttle_at`` every NAND operation takes ``throttle_slowdown``
  times longer (and heats that much less) until it falls to ``throttle_release``; at ``critical_at``
  the temperature bit of the critical warning is set.

State changes worth a line on the test's timeline (:data:`SPAN_KINDS`) are collected as
``(monotonic, kind, action, params)`` and taken with :meth:`DriveModel.take_events`.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any

from nvmechaos.drive.personality import Personality
from nvmechaos.verdicts.health import describe_warning

# The operations of a request (the NBD server maps its commands onto these).
READ = "read"
WRITE = "write"
FLUSH = "flush"
TRIM = "trim"
ZERO = "zero"

EIO = 5
EPERM = 1

#: Kinds of drive events; each opens with action ``begin`` and closes with ``end``.
GC = "gc"
BUFFER_FULL = "buffer_full"
THERMAL_THROTTLE = "thermal_throttle"
CRITICAL_WARNING = "critical_warning"
SPAN_KINDS = (GC, BUFFER_FULL, THERMAL_THROTTLE, CRITICAL_WARNING)
BEGIN = "begin"
END = "end"

#: A span ends after this long without the condition (GC, a full buffer): one span per episode.
QUIET_AFTER = {GC: 1.0, BUFFER_FULL: 0.5}

# critical_warning bits (NVMe base specification, SMART / Health Information log page)
WARN_SPARE = 1 << 0
WARN_TEMPERATURE = 1 << 1
WARN_RELIABILITY = 1 << 2
WARN_READ_ONLY = 1 << 3

_FREE, _OPEN, _CLOSED, _RETIRED = 0, 1, 2, 3
_UPDATE_EVERY = 0.05
_KELVIN = 273.15


def greedy_write_amplification(user_pages: int, data_pages: int) -> float:
    """Analytic steady-state write amplification of greedy (equivalently least-recently-written)
    cleaning under uniform random writes, for large erase blocks.

    Desnoyers, "Analytic Modeling of SSD Write Performance", SYSTOR 2012 (and ACM TOS 10(4), 2014):
    a block written ``w`` host writes ago keeps a fraction ``exp(-w/U)`` of its pages valid; the
    cleaner reaches it after ``T(1-u)`` host writes, so the victim's valid fraction ``u`` solves
    ``u = exp(-alpha (1 - u))`` with ``alpha = T/U`` (physical data pages over user pages), and
    ``WA = 1 / (1 - u)``. Greedy with a finite block does a little better than this limit.
    """
    alpha = data_pages / user_pages
    if alpha <= 1:
        return math.inf
    u = 0.5
    for _ in range(200):  # Newton on f(u) = u - exp(-alpha (1 - u)), from below the root at 1
        f = u - math.exp(-alpha * (1 - u))
        step = f / (1 - alpha * math.exp(-alpha * (1 - u)))
        u -= step
        if abs(step) < 1e-12:
            break
    return 1 / (1 - u)


@dataclass(frozen=True)
class Geometry:
    """Sizes derived from a personality and the namespace size."""

    page_size: int
    dies: int
    pages_per_superblock: int
    user_pages: int
    superblocks: int
    reserve: int

    @classmethod
    def of(cls, p: Personality, size: int) -> Geometry:
        user_pages = size // p.page_size
        per_superblock = p.pages_per_block * p.dies
        superblocks = int(user_pages * (1 + p.over_provisioning) / per_superblock)
        return cls(p.page_size, p.dies, per_superblock, user_pages, superblocks, p.gc_reserve_blocks)

    @property
    def physical_pages(self) -> int:
        return self.superblocks * self.pages_per_superblock

    @property
    def spare_superblocks(self) -> int:
        """Superblocks beyond what the user's data and the GC reserve need (what wear eats)."""
        return self.superblocks - math.ceil(self.user_pages / self.pages_per_superblock) - self.reserve - 1

    def analytic_write_amplification(self) -> float:
        """:func:`greedy_write_amplification` for this geometry: the data pages in rotation are the
        physical pages less the free reserve kept by GC."""
        data_pages = (self.superblocks - self.reserve + 1) * self.pages_per_superblock
        return greedy_write_amplification(self.user_pages, data_pages)


class DriveModel:
    """One drive: FTL, dies, buffer, wear and heat. Not thread-safe: the server holds a lock."""

    def __init__(self, personality: Personality, size: int | None = None, now: float = 0.0) -> None:
        p = personality
        self.p = p
        self.size = size if size is not None else p.size
        g = Geometry.of(p, self.size)
        self.geometry = g
        self.page = g.page_size
        self.dies = g.dies
        self.sb_pages = g.pages_per_superblock
        self.l2p = array("l", [-1]) * g.user_pages
        self.p2l = array("l", [-1]) * g.physical_pages
        self.program_done = array("d", [0.0]) * g.user_pages
        self.valid = [0] * g.superblocks
        self.rng = random.Random(p.seed)  # noqa: S311 - reproducible media errors, not crypto
        start_cycles = p.initial_used * p.endurance
        jitter = 0.05 * p.endurance if p.initial_used > 0 else 0.0
        self.erases = [
            max(0, round(start_cycles + self.rng.uniform(-jitter, jitter))) for _ in range(g.superblocks)
        ]
        self.sb_state = [_FREE] * g.superblocks
        self.free: deque[int] = deque(range(g.superblocks))
        self.closed: set[int] = set()
        self.retired = 0
        self.open_sb = self.free.popleft()
        self.sb_state[self.open_sb] = _OPEN
        self.write_ptr = 0
        self.die_free = [now] * g.dies
        self.die_read = [now] * g.dies
        self.buffer: list[float] = []
        self.buffer_pages = max(1, p.buffer_size // g.page_size)
        self.busy = 0.0
        self.last_update = now
        self.temperature = p.ambient
        self.throttled = False
        self.slow = 1.0
        self.read_only = False
        self.warning = 0
        self.open_spans: dict[str, float] = {}
        self.last_seen: dict[str, float] = {}
        self.events: list[tuple[float, str, str, dict[str, Any]]] = []
        self.counters = dict.fromkeys(
            (
                "host_read_commands",
                "host_write_commands",
                "host_read_bytes",
                "host_write_bytes",
                "host_pages_written",
                "nand_pages_written",
                "gc_pages_moved",
                "gc_runs",
                "erases",
                "media_errors",
                "trimmed_pages",
                "flushes",
            ),
            0,
        )
        self.seconds_above = {"warning": 0.0, "critical": 0.0}
        self.gc_collecting = False

    # ---- requests -------------------------------------------------------------------------------
    def submit(self, op: str, offset: int, length: int, fua: bool, now: float) -> tuple[float, int]:
        """One host request: (when it completes, NBD errno or 0)."""
        if now - self.last_update >= _UPDATE_EVERY:
            self.update(now)
        if op == READ:
            return self._read(offset, length, now)
        if op in (WRITE, ZERO):
            if self.read_only:
                return now + self.p.buffer_latency, EPERM
            if op == ZERO:
                self._unmap(offset, length, now)
                self.counters["host_write_commands"] += 1
                return now + self.p.buffer_latency, 0
            return self._write(offset, length, fua, now), 0
        if op == TRIM:
            self._unmap(offset, length, now)
            return now + self.p.buffer_latency, 0
        if op == FLUSH:
            self.counters["flushes"] += 1
            if self.p.plp or not self.p.honours_flush or not self.buffer:
                return now + self.p.buffer_latency, 0
            return max(now + self.p.buffer_latency, *self.buffer), 0
        return now, 0

    def _pages(self, offset: int, length: int) -> range:
        return range(offset // self.page, (offset + max(length, 1) - 1) // self.page + 1)

    def _read(self, offset: int, length: int, now: float) -> tuple[float, int]:
        counters = self.counters
        counters["host_read_commands"] += 1
        counters["host_read_bytes"] += length
        p = self.p
        done = now + p.buffer_latency
        t_read = p.read_latency * self.slow
        errno = 0
        for lpn in self._pages(offset, length):
            if self.program_done[lpn] > now:
                continue  # still in the write buffer
            ppn = self.l2p[lpn]
            if ppn < 0:
                continue  # never written or trimmed: the controller answers without the NAND
            die = ppn % self.dies
            start = max(now, self.die_read[die])
            queued = self.die_free[die] - start
            if queued > 0:  # wait for the operation in progress, not the whole queue
                start += queued % (p.program_latency * self.slow)
            end = start + t_read
            self.die_read[die] = end
            self.die_free[die] = max(self.die_free[die], now) + t_read
            self.busy += t_read
            done = max(done, end)
            if p.media_error_rate > 0 and self._media_error(ppn // self.sb_pages):
                errno = EIO
        if errno:
            counters["media_errors"] += 1
        return done, errno

    def _media_error(self, superblock: int) -> bool:
        used = self.erases[superblock] / self.p.endurance
        onset = self.p.media_errors_from
        if used < onset:
            return False
        chance = self.p.media_error_rate * min(1.0, (used - onset) / max(1e-9, 1 - onset))
        return self.rng.random() < chance

    def _write(self, offset: int, length: int, fua: bool, now: float) -> float:
        counters = self.counters
        counters["host_write_commands"] += 1
        counters["host_write_bytes"] += length
        p = self.p
        t_prog = p.program_latency * self.slow
        last_program = now
        pages = self._pages(offset, length)
        for lpn in pages:
            self._invalidate(lpn)
            ppn = self._allocate(now)
            self.l2p[lpn] = ppn
            self.p2l[ppn] = lpn
            self.valid[ppn // self.sb_pages] += 1
            die = ppn % self.dies
            end = max(now, self.die_free[die]) + t_prog
            self.die_free[die] = end
            self.busy += t_prog
            self.program_done[lpn] = end
            heapq.heappush(self.buffer, end)
            last_program = max(last_program, end)
        counters["host_pages_written"] += len(pages)
        counters["nand_pages_written"] += len(pages)
        ack = now + p.buffer_latency
        buffer = self.buffer
        while buffer and buffer[0] <= now:
            heapq.heappop(buffer)
        over = len(buffer) - self.buffer_pages
        if over > 0:
            for _ in range(over):
                ack = max(ack, heapq.heappop(buffer))
            self._seen(BUFFER_FULL, now, {"buffer_bytes": p.buffer_size})
        if fua and not p.plp and p.honours_flush:
            ack = max(ack, last_program)
        return ack

    def _invalidate(self, lpn: int) -> None:
        old = self.l2p[lpn]
        if old >= 0:
            self.p2l[old] = -1
            self.valid[old // self.sb_pages] -= 1
            self.l2p[lpn] = -1

    def _unmap(self, offset: int, length: int, now: float) -> None:
        first = -(-offset // self.page)  # only whole pages are unmapped
        last = (offset + length) // self.page
        for lpn in range(first, min(last, len(self.l2p))):
            if self.l2p[lpn] >= 0:
                self._invalidate(lpn)
                self.counters["trimmed_pages"] += 1
            self.program_done[lpn] = 0.0
        # Superblocks left without a valid page are erased in the background (the dies' time is
        # taken from now on), as drives do after a TRIM: they are free again without a GC move.
        for superblock in [sb for sb in self.closed if self.valid[sb] == 0]:
            self.closed.discard(superblock)
            self._erase(superblock, now)

    # ---- flash translation ----------------------------------------------------------------------
    def _allocate(self, now: float) -> int:
        if self.write_ptr == self.sb_pages:
            self.sb_state[self.open_sb] = _CLOSED
            self.closed.add(self.open_sb)
            self.open_sb = self.free.popleft()
            self.sb_state[self.open_sb] = _OPEN
            self.write_ptr = 0
            if len(self.free) < self.p.gc_reserve_blocks and not self.gc_collecting:
                self._collect(now)
        ppn = self.open_sb * self.sb_pages + self.write_ptr
        self.write_ptr += 1
        return ppn

    def _collect(self, now: float) -> None:
        """Greedy GC until the free reserve is back (or nothing can be reclaimed)."""
        self.gc_collecting = True
        try:
            while len(self.free) < self.p.gc_reserve_blocks and self.closed:
                victim = min(self.closed, key=self.valid.__getitem__)
                if self.valid[victim] >= self.sb_pages:
                    break  # every closed block full: nothing to gain (cannot happen with OP > 0)
                self.closed.discard(victim)
                self._move_valid_pages(victim, now)
                self._erase(victim, now)
            self._seen(GC, now, {})
        finally:
            self.gc_collecting = False

    def _move_valid_pages(self, victim: int, now: float) -> None:
        p = self.p
        t_read = p.read_latency * self.slow
        t_prog = p.program_latency * self.slow
        base = victim * self.sb_pages
        moved = 0
        for ppn in range(base, base + self.sb_pages):
            lpn = self.p2l[ppn]
            if lpn < 0:
                continue
            src = ppn % self.dies
            self.die_free[src] = max(now, self.die_free[src]) + t_read
            self.p2l[ppn] = -1
            new = self._allocate(now)
            self.l2p[lpn] = new
            self.p2l[new] = lpn
            self.valid[new // self.sb_pages] += 1
            dst = new % self.dies
            self.die_free[dst] = max(now, self.die_free[dst]) + t_prog
            moved += 1
        self.valid[victim] = 0
        self.busy += moved * (t_read + t_prog)
        self.counters["gc_pages_moved"] += moved
        self.counters["nand_pages_written"] += moved
        self.counters["gc_runs"] += 1

    def _erase(self, victim: int, now: float) -> None:
        t_erase = self.p.erase_latency * self.slow
        for die in range(self.dies):
            self.die_free[die] = max(now, self.die_free[die]) + t_erase
        self.busy += t_erase * self.dies
        self.erases[victim] += 1
        self.counters["erases"] += 1
        if self.erases[victim] >= self.p.endurance and self.retired < self.geometry.spare_superblocks:
            self.sb_state[victim] = _RETIRED
            self.retired += 1
            if self.retired >= self.geometry.spare_superblocks:
                self.read_only = True
            return
        self.sb_state[victim] = _FREE
        self.free.append(victim)

    # ---- heat, hysteresis and warnings ----------------------------------------------------------
    def update(self, now: float) -> None:
        """Advance temperature and the state spans to ``now`` (called often; cheap)."""
        dt = now - self.last_update
        if dt <= 0:
            return
        p = self.p
        utilisation = min(1.0, self.busy / (self.dies * dt)) / self.slow
        self.busy = 0.0
        self.last_update = now
        target = p.ambient + p.full_load_rise * utilisation
        self.temperature += (target - self.temperature) * (1 - math.exp(-dt / p.thermal_time_constant))
        if self.temperature >= p.throttle_at:
            self.seconds_above["warning"] += dt
        if self.temperature >= p.critical_at:
            self.seconds_above["critical"] += dt
        if not self.throttled and self.temperature >= p.throttle_at:
            self.throttled, self.slow = True, p.throttle_slowdown
            self._begin(THERMAL_THROTTLE, now, {"temperature_c": round(self.temperature, 1)})
        elif self.throttled and self.temperature <= p.throttle_release:
            self.throttled, self.slow = False, 1.0
            self._end(THERMAL_THROTTLE, now, {"temperature_c": round(self.temperature, 1)})
        for kind, quiet in QUIET_AFTER.items():
            if kind in self.open_spans and now - self.last_seen[kind] >= quiet:
                self._end(kind, self.last_seen[kind], {})
        warning = self.critical_warning()
        if warning != self.warning:
            if self.warning:
                self._end(CRITICAL_WARNING, now, {"critical_warning": self.warning})
            if warning:
                self._begin(
                    CRITICAL_WARNING, now, {"critical_warning": warning, "meaning": describe_warning(warning)}
                )
            self.warning = warning

    def _seen(self, kind: str, now: float, params: dict[str, Any]) -> None:
        self.last_seen[kind] = now
        if kind not in self.open_spans:
            self._begin(kind, now, params)

    def _begin(self, kind: str, now: float, params: dict[str, Any]) -> None:
        self.open_spans[kind] = now
        self.events.append((now, kind, BEGIN, params))

    def _end(self, kind: str, now: float, params: dict[str, Any]) -> None:
        started = self.open_spans.pop(kind, now)
        self.events.append((now, kind, END, {**params, "duration_s": round(now - started, 3)}))

    def take_events(self) -> list[tuple[float, str, str, dict[str, Any]]]:
        events, self.events = self.events, []
        return events

    # ---- health ---------------------------------------------------------------------------------
    def percent_used(self) -> int:
        mean = sum(self.erases) / len(self.erases)
        return min(255, int(100 * mean / self.p.endurance))

    def avail_spare(self) -> int:
        spare = self.geometry.spare_superblocks
        return 100 if spare <= 0 else max(0, round(100 * (spare - self.retired) / spare))

    def critical_warning(self) -> int:
        bits = 0
        if self.avail_spare() < 100 * self.p.spare_threshold:
            bits |= WARN_SPARE
        if self.temperature >= self.p.critical_at:
            bits |= WARN_TEMPERATURE
        if self.percent_used() >= 100:
            bits |= WARN_RELIABILITY
        if self.read_only:
            bits |= WARN_READ_ONLY
        return bits

    def sample(self, now: float) -> dict[str, float]:
        """What a chart over time shows: wear (% of rated endurance, unrounded), temperature, free
        superblocks (%) and write amplification so far."""
        return {
            "monotonic": now,
            "wear_pct": round(100 * sum(self.erases) / len(self.erases) / self.p.endurance, 3),
            "temperature_c": round(self.temperature, 2),
            "free_blocks_pct": round(100 * len(self.free) / self.geometry.superblocks, 2),
            "write_amplification": round(self.write_amplification(), 3),
        }

    def write_amplification(self) -> float:
        host = self.counters["host_pages_written"]
        return self.counters["nand_pages_written"] / host if host else 1.0

    def health(self, now: float) -> dict[str, Any]:
        """The drive's SMART view: keys of ``nvme smart-log -o json`` where one exists, then the model's."""
        self.update(now)
        c = self.counters
        return {
            "critical_warning": self.warning,
            "temperature": round(self.temperature + _KELVIN),
            "avail_spare": self.avail_spare(),
            "spare_thresh": round(100 * self.p.spare_threshold),
            "percent_used": self.percent_used(),
            "data_units_read": data_units(c["host_read_bytes"]),
            "data_units_written": data_units(c["host_write_bytes"]),
            "host_read_commands": c["host_read_commands"],
            "host_write_commands": c["host_write_commands"],
            "media_errors": c["media_errors"],
            "num_err_log_entries": c["media_errors"],
            "warning_temp_time": int(self.seconds_above["warning"] // 60),
            "critical_comp_time": int(self.seconds_above["critical"] // 60),
            "temperature_c": round(self.temperature, 1),
            "write_amplification": round(self.write_amplification(), 3),
            "free_blocks_pct": round(100 * len(self.free) / self.geometry.superblocks, 1),
            "gc_active": GC in self.open_spans,
            "throttled": self.throttled,
            "buffer_full": BUFFER_FULL in self.open_spans,
            "read_only": self.read_only,
            "host_pages_written": c["host_pages_written"],
            "nand_pages_written": c["nand_pages_written"],
            "gc_pages_moved": c["gc_pages_moved"],
            "erase_count_mean": round(sum(self.erases) / len(self.erases), 2),
            "erase_count_max": max(self.erases),
            "retired_blocks": self.retired,
            "trimmed_pages": c["trimmed_pages"],
        }

    # ---- persistence across power cycles (wear and mapping survive, timing does not) -------------
    _PERSISTENT = (
        "l2p",
        "p2l",
        "valid",
        "erases",
        "sb_state",
        "free",
        "closed",
        "retired",
        "open_sb",
        "write_ptr",
        "counters",
        "seconds_above",
        "read_only",
    )

    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PERSISTENT}

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._PERSISTENT:
            if name in state:
                setattr(self, name, state[name])


def data_units(nbytes: int) -> int:
    """NVMe data units (thousands of 512-byte units, rounded up), as SMART counts bytes."""
    return -(-nbytes // 512_000)
