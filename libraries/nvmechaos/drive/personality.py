"""Drive personalities: the parameters of the emulated SSD model, loaded from YAML.

A personality file (``variables/drives/<name>.yaml``) groups the parameters in sections; every leaf
name is unique, so a keyword call overrides one by its leaf name (``program_latency=2ms``)::

    description: Client QLC drive, little over-provisioning, small SLC buffer, no PLP
    size: 256M                     # the namespace size when the keyword gives none
    geometry: {channels: 2, dies_per_channel: 2, page_size: 4K, pages_per_block: 128,
               over_provisioning: 7%, gc_reserve_blocks: 2}
    timing: {read_latency: 100us, program_latency: 1ms, erase_latency: 3ms, buffer_latency: 20us}
    buffer: {buffer_size: 2M}
    durability: {plp: false, honours_flush: true, atomic_unit: 4K, volatile_cache: 32M}
    wear: {endurance: 1000, initial_used: 0%, media_errors_from: 90%, media_error_rate: 0.001,
           spare_threshold: 10%}
    heat: {ambient: 35, full_load_rise: 30, thermal_time_constant: 20s, throttle_at: 75,
           throttle_release: 70, critical_at: 85, throttle_slowdown: 2}

Sizes take binary units (``4K``, ``2M``), times a unit (``100us``, ``1ms``, ``20s``), fractions
a ``%`` or a number in 0..1, temperatures °C. Every error names the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from nvmechaos.errors import NvmeChaosError
from nvmechaos.units import parse_delay, parse_flag, parse_size

#: Where the shipped personalities live (``variables/drives`` of the repository).
DRIVES_DIR = Path(__file__).resolve().parents[3] / "variables" / "drives"


class PersonalityError(NvmeChaosError):
    """A personality file or override is invalid (the message names the file and key)."""


#: YAML section → the parameters it holds (the leaf names are the dataclass fields).
SECTIONS: dict[str, tuple[str, ...]] = {
    "geometry": (
        "channels",
        "dies_per_channel",
        "page_size",
        "pages_per_block",
        "over_provisioning",
        "gc_reserve_blocks",
    ),
    "timing": ("read_latency", "program_latency", "erase_latency", "buffer_latency"),
    "buffer": ("buffer_size",),
    "durability": ("plp", "honours_flush", "atomic_unit", "volatile_cache", "writeback_after"),
    "wear": ("endurance", "initial_used", "media_errors_from", "media_error_rate", "spare_threshold"),
    "heat": (
        "ambient",
        "full_load_rise",
        "thermal_time_constant",
        "throttle_at",
        "throttle_release",
        "critical_at",
        "throttle_slowdown",
    ),
}
TOP_LEVEL = ("description", "size", "seed")


@dataclass(frozen=True)
class Personality:
    """Every parameter of the drive model. Times in seconds, sizes in bytes, fractions in 0..1."""

    name: str = "custom"
    description: str = ""
    size: int = 256 << 20
    seed: int = 1
    # geometry: channels x dies are the parallel units; a superblock is one erase block per die.
    channels: int = 2
    dies_per_channel: int = 2
    page_size: int = 4096
    pages_per_block: int = 128
    over_provisioning: float = 0.07
    gc_reserve_blocks: int = 2
    # NAND timing
    read_latency: float = 100e-6
    program_latency: float = 1e-3
    erase_latency: float = 3e-3
    buffer_latency: float = 20e-6
    # write buffer (timing): writes are acknowledged once they fit
    buffer_size: int = 2 << 20
    # durability (what survives a power cut)
    plp: bool = False
    honours_flush: bool = True
    atomic_unit: int = 4096
    volatile_cache: int = 32 << 20
    writeback_after: float | None = None
    # wear
    endurance: int = 1000
    initial_used: float = 0.0
    media_errors_from: float = 0.9
    media_error_rate: float = 0.0
    spare_threshold: float = 0.1
    # heat (°C)
    ambient: float = 35.0
    full_load_rise: float = 30.0
    thermal_time_constant: float = 20.0
    throttle_at: float = 75.0
    throttle_release: float = 70.0
    critical_at: float = 85.0
    throttle_slowdown: float = 2.0

    @property
    def dies(self) -> int:
        return self.channels * self.dies_per_channel

    @property
    def program_bandwidth(self) -> float:
        """Bytes per second the NAND can program with every die busy (no GC)."""
        return self.dies * self.page_size / self.program_latency

    def with_overrides(self, overrides: Mapping[str, object], where: str = "override") -> Personality:
        """A copy with ``overrides`` (leaf names, raw values as in YAML) applied and checked."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, raw in overrides.items():
            if key not in _PARSERS:
                raise PersonalityError(f"{where}: unknown drive parameter '{key}' ({_known()})")
            values[key] = _PARSERS[key](raw, f"{where}: {key}")
        return check(Personality(**values), where)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fraction(value: object, what: str) -> float:
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise PersonalityError(f"{what}: '{value}' is not a fraction (use e.g. 7% or 0.07)") from None
    if isinstance(value, bool) or not 0 <= number <= 1 or math.isnan(number):
        raise PersonalityError(f"{what}: '{value}' is not a fraction between 0 and 100 %")
    return number


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not re.fullmatch(r"\s*\d+\s*", str(value)) or int(str(value)) < 1:
        raise PersonalityError(f"{what}: '{value}' is not a whole number of at least 1")
    return int(str(value))


def _number(value: object, what: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or math.isnan(number) or math.isinf(number):
        raise PersonalityError(f"{what}: '{value}' is not a number")
    return number


def _size(value: object, what: str) -> int:
    return parse_size(value, what, error=PersonalityError)


def _time(value: object, what: str) -> float:
    return parse_delay(value, what, error=PersonalityError)


def _optional_time(value: object, what: str) -> float | None:
    return None if value is None or str(value).lower() in ("never", "none", "") else _time(value, what)


def _flag(value: object, what: str) -> bool:
    try:
        return parse_flag(value, what)
    except NvmeChaosError as error:
        raise PersonalityError(str(error)) from None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise PersonalityError(f"{what}: '{value}' is not text")
    return value


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "description": _text,
    "size": _size,
    "seed": _count,
    "channels": _count,
    "dies_per_channel": _count,
    "page_size": _size,
    "pages_per_block": _count,
    "over_provisioning": _fraction,
    "gc_reserve_blocks": _count,
    "read_latency": _time,
    "program_latency": _time,
    "erase_latency": _time,
    "buffer_latency": _time,
    "buffer_size": _size,
    "plp": _flag,
    "honours_flush": _flag,
    "atomic_unit": _size,
    "volatile_cache": _size,
    "writeback_after": _optional_time,
    "endurance": _count,
    "initial_used": _fraction,
    "media_errors_from": _fraction,
    "media_error_rate": _fraction,
    "spare_threshold": _fraction,
    "ambient": _number,
    "full_load_rise": _number,
    "thermal_time_constant": _time,
    "throttle_at": _number,
    "throttle_release": _number,
    "critical_at": _number,
    "throttle_slowdown": _number,
}


def _known() -> str:
    return "known: " + ", ".join(sorted(_PARSERS))


def check(p: Personality, where: str) -> Personality:
    """Refuse geometry and limits the model cannot run (one line naming ``where`` and the key)."""

    def bad(key: str, why: str) -> PersonalityError:
        return PersonalityError(f"{where}: {key} {why}")

    if p.page_size % 512:
        raise bad("page_size", f"{p.page_size} is not a multiple of 512 bytes")
    if p.atomic_unit % 512 or p.atomic_unit > p.page_size:
        raise bad("atomic_unit", f"{p.atomic_unit} must be a multiple of 512 bytes and at most page_size")
    if p.size % p.page_size:
        raise bad("size", f"{p.size} is not a whole number of pages of {p.page_size} bytes")
    if p.over_provisioning <= 0:
        raise bad("over_provisioning", "must be more than 0 % (garbage collection needs spare blocks)")
    superblock = p.dies * p.pages_per_block * p.page_size
    user_pages = p.size // p.page_size
    per_superblock = p.dies * p.pages_per_block
    # as the model counts them (nvmechaos.drive.model.Geometry)
    spare_blocks = int(user_pages * (1 + p.over_provisioning) / per_superblock) - math.ceil(
        user_pages / per_superblock
    )
    if spare_blocks < p.gc_reserve_blocks + 1:
        raise bad(
            "over_provisioning",
            f"{p.over_provisioning:.1%} of {p.size} bytes is {spare_blocks} spare superblocks of "
            f"{superblock} bytes: need at least gc_reserve_blocks + 1 = {p.gc_reserve_blocks + 1} "
            "(raise it, or use a bigger size or smaller blocks)",
        )
    if p.size // superblock < 2:
        raise bad("size", f"{p.size} bytes is less than two superblocks of {superblock} bytes")
    if p.buffer_size < p.page_size:
        raise bad("buffer_size", f"{p.buffer_size} is smaller than a page ({p.page_size} bytes)")
    for key in ("read_latency", "program_latency", "erase_latency"):
        if getattr(p, key) <= 0:
            raise bad(key, "must be more than 0")
    if not p.ambient < p.throttle_release <= p.throttle_at <= p.critical_at:
        raise bad(
            "throttle_at",
            f"temperatures must rise ambient < throttle_release <= throttle_at <= critical_at "
            f"({p.ambient:g} < {p.throttle_release:g} <= {p.throttle_at:g} <= {p.critical_at:g})",
        )
    if p.throttle_slowdown < 1:
        raise bad("throttle_slowdown", f"{p.throttle_slowdown:g} is less than 1 (a throttle slows down)")
    if p.full_load_rise < 0:
        raise bad("full_load_rise", "is negative")
    return p


def parse_personality(name: str, data: object, where: str) -> Personality:
    """A personality from the mapping of a YAML file (sections or flat leaf names)."""
    if not isinstance(data, Mapping):
        raise PersonalityError(f"{where}: a personality is a mapping of sections (geometry, timing, ...)")
    flat: dict[str, object] = {}
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise PersonalityError(f"{where}: {key} must be a mapping")
            for leaf, raw in value.items():
                if leaf not in SECTIONS[key]:
                    raise PersonalityError(
                        f"{where}: unknown key '{key}.{leaf}' (known: {', '.join(SECTIONS[key])})"
                    )
                flat[leaf] = raw
        elif key in TOP_LEVEL:
            flat[key] = value
        else:
            raise PersonalityError(
                f"{where}: unknown key '{key}' (known: {', '.join(TOP_LEVEL + tuple(SECTIONS))})"
            )
    return Personality(name=name).with_overrides(flat, where)


def personality_path(name_or_path: str | Path, drives_dir: Path = DRIVES_DIR) -> Path:
    """The file of a shipped personality (``client-qlc``) or a path to a user's YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    return drives_dir / f"{text}.yaml"


def shipped_personalities(drives_dir: Path = DRIVES_DIR) -> list[str]:
    return sorted(path.stem for path in drives_dir.glob("*.yaml"))


def load_personality(
    name_or_path: str | Path,
    overrides: Mapping[str, object] | None = None,
    drives_dir: Path = DRIVES_DIR,
) -> Personality:
    """Load a personality by name or path and apply ``overrides``.

    Raises:
        PersonalityError: unknown personality (the shipped ones are listed), unreadable or invalid
            YAML, unknown keys, bad values or impossible geometry, each naming file and key.
    """
    path = personality_path(name_or_path, drives_dir)
    if not path.is_file():
        raise PersonalityError(
            f"drive personality '{name_or_path}' not found ({path}); shipped: "
            f"{', '.join(shipped_personalities(drives_dir)) or 'none'}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise PersonalityError(f"{path}: cannot read: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise PersonalityError(
            f"{path}:{line} is not valid YAML: {getattr(error, 'problem', error)}"
        ) from None
    personality = parse_personality(path.stem, data, str(path))
    if overrides:
        personality = personality.with_overrides(overrides, f"{path.stem} override")
    return personality
