"""The drive model's arithmetic on a fake clock: mapping, timing, buffer, GC victim choice, write
amplification against the analytic value, wear and retirement, media errors, heat and throttling,
and every personality file (shipped ones load; bad ones fail in one line naming file and key)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from nvmechaos.drive.model import (
    BEGIN,
    BUFFER_FULL,
    EIO,
    END,
    EPERM,
    GC,
    THERMAL_THROTTLE,
    WARN_READ_ONLY,
    WARN_RELIABILITY,
    WARN_SPARE,
    WARN_TEMPERATURE,
    DriveModel,
    greedy_write_amplification,
)
from nvmechaos.drive.personality import (
    DRIVES_DIR,
    Personality,
    PersonalityError,
    load_personality,
    shipped_personalities,
)
from nvmechaos.drive.store import Store

PAGE = 4096
MIB = 1 << 20


def small(**overrides: object) -> Personality:
    """4 dies, 256 KiB superblocks (16 pages per block), 8 MiB, 25 % OP; fast heat off."""
    base = Personality(
        size=8 * MIB,
        pages_per_block=16,
        over_provisioning=0.25,
        read_latency=100e-6,
        program_latency=1e-3,
        erase_latency=2e-3,
        buffer_latency=10e-6,
        buffer_size=64 * 1024,
        full_load_rise=0.0,
    )
    return base.with_overrides(overrides) if overrides else base


def test_every_shipped_personality_loads_and_is_what_the_issue_names() -> None:
    names = shipped_personalities()
    assert {"datacenter-tlc", "client-qlc", "worn", "hot", "liar", "tearing"} <= set(names)
    for name in names:
        p = load_personality(name)
        DriveModel(p)  # geometry the model can run
        assert p.description
    assert load_personality("datacenter-tlc").plp and not load_personality("client-qlc").plp
    assert not load_personality("liar").honours_flush and load_personality("tearing").atomic_unit == 512
    assert load_personality("worn").initial_used > 0.9 and load_personality("worn").media_error_rate > 0
    assert (
        load_personality("datacenter-tlc").over_provisioning
        > 2 * load_personality("client-qlc").over_provisioning
    )


def test_overrides_apply_by_leaf_name() -> None:
    p = load_personality("client-qlc", {"program_latency": "2ms", "size": "64M", "plp": True})
    assert (p.program_latency, p.size, p.plp) == (0.002, 64 * MIB, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("geometry: {channels: 0}", r"x\.yaml: channels: '0' is not a whole number of at least 1"),
        ("timing: {read_latency: 100}", r"x\.yaml: read_latency '100' has no unit"),
        ("timing: {progam_latency: 1ms}", r"x\.yaml: unknown key 'timing\.progam_latency'"),
        ("speed: 3", r"x\.yaml: unknown key 'speed'"),
        ("geometry: {over_provisioning: 150%}", r"over_provisioning: '150%' is not a fraction"),
        ("geometry: {over_provisioning: 1%}", r"x\.yaml: over_provisioning 1\.0% of .* need at least"),
        ("heat: {throttle_at: 20}", r"x\.yaml: throttle_at temperatures must rise"),
        ("durability: {atomic_unit: 8K}", r"x\.yaml: atomic_unit 8192 must be a multiple of 512"),
        ("durability: {plp: maybe}", r"x\.yaml: plp 'maybe' is not true or false"),
        ("size: 1000", r"x\.yaml: size 1000 is not a whole number of pages"),
        ("timing: [1, 2]", r"x\.yaml: timing must be a mapping"),
        ("- a list", r"x\.yaml: a personality is a mapping"),
        ("geometry: {channels: [", r"x\.yaml: line \d+ is not valid YAML"),
    ],
)
def test_bad_personality_files_fail_in_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(PersonalityError, match=message) as caught:
        load_personality(path)
    assert "\n" not in str(caught.value)


def test_unknown_personality_lists_the_shipped_ones() -> None:
    with pytest.raises(PersonalityError, match=r"'fast' not found .*; shipped: client-qlc, datacenter-tlc"):
        load_personality("fast", drives_dir=DRIVES_DIR)


def test_reads_wait_for_their_die_and_scale_with_parallelism() -> None:
    model = DriveModel(small())
    for page in range(8):  # sequential: pages 0..7 on dies 0,1,2,3,0,1,2,3
        model.submit("write", page * PAGE, PAGE, False, 0.0)
    now = 1.0  # programs long done
    one, _ = model.submit("read", 0, PAGE, False, now)
    assert one == pytest.approx(now + 100e-6)
    same_die, _ = model.submit("read", 4 * PAGE, PAGE, False, now)  # page 4 is on die 0 too
    assert same_die == pytest.approx(now + 200e-6)
    other_die, _ = model.submit("read", 1 * PAGE, PAGE, False, now)
    assert other_die == pytest.approx(now + 100e-6)
    wide, _ = model.submit("read", 8 * PAGE, 4 * PAGE, False, 2.0)  # unwritten: no NAND read
    assert wide == pytest.approx(2.0 + 10e-6)


def test_the_buffer_absorbs_a_burst_then_writes_wait_for_programs() -> None:
    model = DriveModel(small())  # 16 pages of buffer, 4 dies x 1 ms per page
    acks = [model.submit("write", page * PAGE, PAGE, False, 0.0)[0] for page in range(40)]
    assert acks[:16] == [pytest.approx(10e-6)] * 16
    assert acks[16] == pytest.approx(1e-3)  # the first program done frees a slot
    assert acks[39] == pytest.approx(6e-3)  # 24 pages later: 6 rounds of 4 dies
    assert [(kind, action) for _, kind, action, _ in model.take_events()] == [(BUFFER_FULL, BEGIN)]
    model.update(1.0)
    assert [(kind, action) for _, kind, action, _ in model.take_events()] == [(BUFFER_FULL, END)]
    read_from_buffer, _ = model.submit("read", 39 * PAGE, PAGE, False, 5e-3)
    assert read_from_buffer == pytest.approx(5e-3 + 10e-6)


def test_flush_waits_for_the_buffer_without_plp_only() -> None:
    for plp, expected in ((False, 4e-3), (True, 10e-6)):
        model = DriveModel(small(plp=plp))
        for page in range(16):
            model.submit("write", page * PAGE, PAGE, False, 0.0)
        done, _ = model.submit("flush", 0, 0, False, 0.0)
        assert done == pytest.approx(expected)


def fill(model: DriveModel, times: float, seed: int = 7) -> None:
    rng = random.Random(seed)
    pages = model.geometry.user_pages
    for _ in range(int(pages * times)):
        model.submit("write", rng.randrange(pages) * PAGE, PAGE, False, 0.0)


def test_greedy_gc_takes_the_block_with_fewest_valid_pages() -> None:
    model = DriveModel(small())
    g = model.geometry
    for page in range(g.user_pages):  # sequential fill: every closed superblock full
        model.submit("write", page * PAGE, PAGE, False, 0.0)
    victim_pages = range(3 * g.pages_per_superblock, 4 * g.pages_per_superblock)
    victim_lpns = [model.p2l[p] for p in victim_pages]
    for lpn in victim_lpns[:-1]:  # rewrite all but one page of superblock 3
        model.submit("write", lpn * PAGE, PAGE, False, 0.0)
    before = model.counters["gc_pages_moved"]
    rewrites = 0
    while model.counters["gc_runs"] == 0:  # spread over superblocks 4..31: each keeps most pages valid
        lpn = (4 + rewrites % 28) * g.pages_per_superblock + rewrites // 28
        model.submit("write", lpn * PAGE, PAGE, False, 0.0)
        rewrites += 1
    assert min(model.valid[4:32]) > g.pages_per_superblock // 2
    assert model.sb_state[3] != 2 and model.counters["gc_pages_moved"] - before == 1
    assert model.l2p[victim_lpns[-1]] >= 0 and model.p2l[model.l2p[victim_lpns[-1]]] == victim_lpns[-1]


def test_mapping_stays_consistent_under_random_writes_and_trims() -> None:
    model = DriveModel(small())
    rng = random.Random(3)
    pages = model.geometry.user_pages
    for _ in range(pages * 4):
        lpn = rng.randrange(pages)
        if rng.random() < 0.05:
            model.submit("trim", lpn * PAGE, 4 * PAGE, False, 0.0)
        else:
            model.submit("write", lpn * PAGE, PAGE, False, 0.0)
    mapped = [(lpn, ppn) for lpn, ppn in enumerate(model.l2p) if ppn >= 0]
    assert all(model.p2l[ppn] == lpn for lpn, ppn in mapped)
    per_block = [0] * model.geometry.superblocks
    for _, ppn in mapped:
        per_block[ppn // model.geometry.pages_per_superblock] += 1
    assert per_block == model.valid


@pytest.mark.parametrize("op", [0.12, 0.28])
def test_steady_write_amplification_is_within_20_percent_of_the_analytic_value(op: float) -> None:
    model = DriveModel(small(size=64 * MIB, pages_per_block=64, over_provisioning=op))
    fill(model, 6)
    before = dict(model.counters)
    fill(model, 2, seed=8)
    nand = model.counters["nand_pages_written"] - before["nand_pages_written"]
    host = model.counters["host_pages_written"] - before["host_pages_written"]
    analytic = model.geometry.analytic_write_amplification()
    assert analytic > 1.5
    assert nand / host == pytest.approx(analytic, rel=0.2)


def test_analytic_write_amplification_solves_desnoyers_equation() -> None:
    for alpha in (1.05, 1.12, 1.28, 2.0):
        u = 1 - 1 / greedy_write_amplification(100, int(alpha * 100))
        assert u == pytest.approx(math.exp(-alpha * (1 - u)), abs=1e-9)
    assert greedy_write_amplification(100, 200) < greedy_write_amplification(100, 120)
    assert greedy_write_amplification(100, 100) == float("inf")


def test_trim_of_the_whole_drive_ends_gc() -> None:
    model = DriveModel(small())
    fill(model, 3)
    model.submit("trim", 0, model.size, False, 0.0)
    assert all(ppn < 0 for ppn in model.l2p)
    before = model.counters["gc_pages_moved"]
    for page in range(model.geometry.user_pages):
        model.submit("write", page * PAGE, PAGE, False, 0.0)
    assert model.counters["gc_pages_moved"] == before  # victims hold no valid page after a trim


def test_wear_percent_used_retirement_spare_and_read_only() -> None:
    model = DriveModel(small(endurance=5, spare_threshold="50%"))
    assert model.percent_used() == 0 and model.avail_spare() == 100
    fill(model, 40)
    assert model.percent_used() >= 80 and model.erases.count(5) >= model.retired
    assert model.retired == model.geometry.spare_superblocks and model.read_only
    assert model.avail_spare() == 0
    bits = model.critical_warning()
    assert bits & WARN_SPARE and bits & WARN_READ_ONLY
    assert model.submit("write", 0, PAGE, False, 0.0)[1] == EPERM
    model.erases = [5] * len(model.erases)
    assert model.percent_used() == 100 and model.critical_warning() & WARN_RELIABILITY


def test_worn_pages_fail_reads_at_a_rate_growing_with_wear() -> None:
    def error_rate(used: float) -> float:
        model = DriveModel(
            small(endurance=100, initial_used=used, media_errors_from="90%", media_error_rate="10%")
        )
        model.erases = [int(used * 100)] * len(model.erases)
        for page in range(64):
            model.submit("write", page * PAGE, PAGE, False, 0.0)
        errors = sum(
            model.submit("read", (i % 64) * PAGE, PAGE, False, 1.0 + i)[1] == EIO for i in range(4000)
        )
        assert model.counters["media_errors"] == errors
        return errors / 4000

    assert error_rate(0.5) == 0
    assert 0.02 < error_rate(0.95) < 0.08  # half-way from onset to end of life: ~5 %
    assert 0.07 < error_rate(1.0) < 0.13


def test_heat_rises_with_load_throttles_slows_and_raises_the_warning() -> None:
    p = small(
        ambient=40,
        full_load_rise=50,
        thermal_time_constant="5s",
        throttle_at=70,
        throttle_release=65,
        critical_at=80,
        throttle_slowdown=2,
    )
    model = DriveModel(p)
    now = 0.0
    throttled_at = None
    while now < 60 and not model.critical_warning():
        now += 0.01
        for _ in range(40):  # 4 dies x 10 ms / 1 ms per program: every die busy
            model.submit("write", random.randrange(model.geometry.user_pages) * PAGE, PAGE, False, now)
        if model.throttled and throttled_at is None:
            throttled_at = now
    assert throttled_at is not None
    assert throttled_at == pytest.approx(5 * 0.916, abs=0.6)  # 5 s x ln(50 / (50 - 30))
    kinds = [(kind, action) for _, kind, action, _ in model.take_events()]
    assert (THERMAL_THROTTLE, BEGIN) in kinds
    assert model.slow == 2


def test_critical_temperature_sets_bit_1_and_cooling_clears_it() -> None:
    model = DriveModel(
        small(
            ambient=40,
            full_load_rise=60,
            thermal_time_constant="1s",
            throttle_at=50,
            throttle_release=45,
            critical_at=55,
            throttle_slowdown=1,
        )
    )
    model.busy = 4 * 3.0  # three seconds of every die busy
    model.update(3.0)
    assert model.critical_warning() & WARN_TEMPERATURE
    model.update(20.0)  # idle: back to ambient
    assert not model.critical_warning() and not model.throttled
    actions = [(kind, action) for _, kind, action, _ in model.take_events() if kind != GC]
    assert actions == [
        (THERMAL_THROTTLE, BEGIN),
        ("critical_warning", BEGIN),
        (THERMAL_THROTTLE, END),
        ("critical_warning", END),
    ]


def test_health_uses_smart_log_keys_and_units() -> None:
    model = DriveModel(small())
    model.submit("write", 0, 1_024_000, False, 0.0)
    model.submit("read", 0, 512, False, 1.0)
    health = model.health(1.0)
    assert health["data_units_written"] == 2 and health["data_units_read"] == 1
    assert health["host_write_commands"] == 1 and health["host_read_commands"] == 1
    assert health["temperature"] == round(35.0 + 273.15)
    for key in (
        "critical_warning",
        "avail_spare",
        "spare_thresh",
        "percent_used",
        "media_errors",
        "write_amplification",
        "free_blocks_pct",
        "gc_active",
        "throttled",
    ):
        assert key in health


def test_store_keeps_volatile_pages_until_flush_and_tears_on_512_byte_units(tmp_path: Path) -> None:
    image = tmp_path / "d.raw"
    image.write_bytes(bytes(8 * MIB))
    store = Store(image, 8 * MIB, small(plp=False, volatile_cache="16K"))
    store.write(0, b"\x11" * PAGE, fua=False)
    assert image.read_bytes()[:1] == b"\0" and store.read(0, 2)[:1] == b"\x11"
    store.write(100, b"\x22" * 10, fua=False)  # partial page merges with the volatile one
    assert store.read(96, 20) == b"\x11" * 4 + b"\x22" * 10 + b"\x11" * 6
    for page in range(1, 5):  # 16K cache: the oldest page is written back
        store.write(page * PAGE, b"\x33" * PAGE, fua=False)
    assert image.read_bytes()[:1] == b"\x11"
    store.flush()
    assert image.read_bytes()[4 * PAGE] == 0x33
    torn = Store(image, 8 * MIB, small(plp=False, atomic_unit=512))
    torn.write(0, b"\x44" * PAGE, fua=False)
    on_disk = image.read_bytes()[:PAGE]
    cut = on_disk.index(b"\x11")
    assert cut % 512 == 0 and 0 < cut < PAGE and torn.read(0, PAGE) == b"\x44" * PAGE
