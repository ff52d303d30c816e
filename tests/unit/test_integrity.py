"""The integrity oracle's pure logic: block format, journal, verdicts on synthetic images."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nvmechaos.integrity.oracle import (
    IntegrityError,
    Journal,
    JournalSnapshot,
    decode_block,
    flip_bytes,
    make_block,
    verify,
    verify_image,
)
from nvmechaos.integrity.writer import WriterSettings, build_writer

BS = 4096
SEED = 12345


def journal(*lines: str) -> JournalSnapshot:
    return Journal.parse("\n".join([f"S {SEED} {BS} 8 0", *lines])).snapshot()


def image(blocks: dict[int, bytes], count: int = 8) -> dict[int, bytes]:
    return {b: blocks.get(b, bytes(BS)) for b in range(count)}


def check(blocks: dict[int, bytes], snapshot: JournalSnapshot, plp: bool):
    return verify(lambda b: blocks[b], snapshot, plp)


# ----- block format ---------------------------------------------------------------------------------


def test_block_round_trip() -> None:
    data = make_block(BS, 5, 3, SEED)
    assert len(data) == BS
    content = decode_block(data, BS)
    assert (content.state, content.block, content.generation, content.seed) == ("valid", 5, 3, SEED)


def test_block_payload_differs_by_generation_and_block() -> None:
    assert make_block(BS, 5, 3, SEED)[48:] != make_block(BS, 5, 4, SEED)[48:]
    assert make_block(BS, 5, 3, SEED)[48:] != make_block(BS, 6, 3, SEED)[48:]


@pytest.mark.parametrize(
    ("offset", "state"), [(0, "garbage"), (20, "garbage"), (40, "torn"), (48, "torn"), (BS - 1, "torn")]
)
def test_decode_damage(offset: int, state: str) -> None:
    data = bytearray(make_block(BS, 1, 1, SEED))
    data[offset] ^= 0x01
    assert decode_block(bytes(data), BS).state == state


def test_decode_zero_and_short() -> None:
    assert decode_block(bytes(BS), BS).state == "zero"
    assert decode_block(b"x" * 10, BS).state == "garbage"


def test_torn_write_of_new_header_and_old_payload() -> None:
    new, old = make_block(BS, 2, 5, SEED), make_block(BS, 2, 4, SEED)
    torn = new[:512] + old[512:]
    content = decode_block(torn, BS)
    assert (content.state, content.generation) == ("torn", 5)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to build the writer")
def test_c_writer_writes_what_python_expects(tmp_path: Path) -> None:
    binary = build_writer(tmp_path / "cache")
    device = tmp_path / "disk.img"
    device.write_bytes(bytes(64 * BS))
    settings = WriterSettings(
        device="/dev/unused", blocks=32, count=300, flush_every=16, fua_every=7, seed=99
    )
    argv = [a if not a.startswith("dev=") else f"dev={device}" for a in settings.argv(str(binary))]
    argv[-1] = "idle=0"
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    snapshot = Journal.parse(output).snapshot()
    assert snapshot.writes == 300 and snapshot.flushes == 300 // 16 and snapshot.fua_writes == 300 // 7
    report = verify_image(device, snapshot, plp=True)
    assert report.passed and report.checked == len(snapshot.acked) == report.intact
    data = device.read_bytes()
    block = min(snapshot.acked)
    assert data[block * BS : (block + 1) * BS] == make_block(BS, block, snapshot.acked[block], 99)


# ----- journal ------------------------------------------------------------------------------------------


def test_journal_flush_makes_earlier_writes_durable() -> None:
    snapshot = journal("W 1 1", "W 2 1", "F 1", "W 1 2", "W 3 1")
    assert snapshot.acked == {1: 2, 2: 1, 3: 1}
    assert snapshot.durable == {1: 1, 2: 1}
    assert snapshot.unflushed_blocks == 2
    assert snapshot.required(1, plp=True) == 2
    assert snapshot.required(1, plp=False) == 1
    assert snapshot.required(3, plp=False) == 0


def test_journal_fua_write_is_durable_at_once() -> None:
    snapshot = journal("W 1 1", "D 2 1", "W 2 2")
    assert snapshot.durable == {2: 1}
    assert snapshot.fua_writes == 1


def test_journal_keeps_times_and_end() -> None:
    live = Journal()
    live.feed(f"S {SEED} {BS} 8 0", 1.0, 100.0)
    live.feed("W 0 1", 1.5, 100.5)
    live.feed("E 1 0", 2.0, 101.0)
    assert live.ended and live.last_ack is not None and live.last_ack.monotonic == 1.5


@pytest.mark.parametrize(
    ("line", "message"),
    [("W 9 1", "outside"), ("W x 1", "not a number"), ("Q 1", "not a writer report")],
)
def test_journal_rejects_bad_lines(line: str, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        journal(line)


def test_journal_write_before_start_and_no_start() -> None:
    with pytest.raises(IntegrityError, match="before the start line"):
        Journal.parse("W 1 1")
    with pytest.raises(IntegrityError, match="never started"):
        Journal().snapshot()


def test_journal_error_line() -> None:
    live = Journal.parse(f"S {SEED} {BS} 8 0\nX 5 pwrite: Input/output error")
    assert live.error == "5 pwrite: Input/output error"


# ----- verdicts -----------------------------------------------------------------------------------------


def test_plp_all_acknowledged_intact() -> None:
    snapshot = journal("W 1 1", "W 2 1", "F 1", "W 1 2")
    blocks = image({1: make_block(BS, 1, 2, SEED), 2: make_block(BS, 2, 1, SEED)})
    report = check(blocks, snapshot, plp=True)
    assert (report.checked, report.intact, report.lost_allowed, report.corrupt) == (2, 2, 0, 0)
    assert report.passed


def test_no_plp_unflushed_lost_is_allowed() -> None:
    snapshot = journal("W 1 1", "W 2 1", "F 1", "W 1 2", "W 3 1")
    blocks = image({1: make_block(BS, 1, 1, SEED), 2: make_block(BS, 2, 1, SEED)})
    report = check(blocks, snapshot, plp=False)
    assert (report.checked, report.intact, report.lost_allowed, report.corrupt) == (3, 1, 2, 0)
    assert report.passed


def test_same_image_fails_with_plp_as_stale() -> None:
    snapshot = journal("W 1 1", "W 2 1", "F 1", "W 1 2", "W 3 1")
    blocks = image({1: make_block(BS, 1, 1, SEED), 2: make_block(BS, 2, 1, SEED)})
    report = check(blocks, snapshot, plp=True)
    assert report.corrupt == 2 and report.stale == 2 and not report.passed
    kinds = {(b.block, b.kind, b.detail) for b in report.bad}
    assert (1, "stale", "generation 1 is older than required") in kinds
    assert (3, "stale", "unwritten (zeros)") in kinds


def test_flushed_block_lost_is_stale() -> None:
    snapshot = journal("W 1 1", "W 1 2", "F 1")
    report = check(image({1: make_block(BS, 1, 1, SEED)}), snapshot, plp=False)
    assert report.stale == 1
    assert report.bad[0].describe() == (
        "block 1 stale: generation 1 is older than required (needs generation >= 2, acknowledged 2, found 1)"
    )


def test_newer_than_acknowledged_is_intact() -> None:
    # The writer's line for generation 3 was still in flight at the cut.
    snapshot = journal("W 1 1", "W 1 2", "F 1")
    report = check(image({1: make_block(BS, 1, 3, SEED)}), snapshot, plp=True)
    assert (report.intact, report.newer, report.corrupt) == (1, 1, 0)


def test_torn_misplaced_and_garbage_are_corrupt() -> None:
    snapshot = journal("W 1 1", "W 2 1", "W 3 1", "F 1")
    torn = bytearray(make_block(BS, 1, 1, SEED))
    torn[1000] ^= 0xFF
    blocks = image({1: bytes(torn), 2: make_block(BS, 5, 1, SEED), 3: b"\x5a" * BS})
    report = check(blocks, snapshot, plp=False)
    assert report.corrupt == 3
    assert report.by_kind == {"torn": 1, "stale": 0, "misplaced": 1, "garbage": 1}
    assert [b.kind for b in report.bad] == ["torn", "misplaced", "garbage"]
    assert "torn 1, stale 0, misplaced 1, garbage 1" in report.summary()


def test_torn_unflushed_block_is_still_corrupt() -> None:
    # Unflushed data may be lost, never damaged.
    snapshot = journal("W 1 1")
    torn = bytearray(make_block(BS, 1, 1, SEED))
    torn[2000] ^= 0x01
    report = check(image({1: bytes(torn)}), snapshot, plp=False)
    assert report.torn == 1


def test_earlier_run_block_allowed_only_where_nothing_was_durable() -> None:
    snapshot = journal("W 1 1", "W 2 1", "F 1", "W 3 1")
    old = 777
    blocks = image(
        {1: make_block(BS, 1, 9, old), 2: make_block(BS, 2, 1, SEED), 3: make_block(BS, 3, 4, old)}
    )
    report = check(blocks, snapshot, plp=False)
    assert (report.intact, report.lost_allowed, report.stale) == (1, 1, 1)
    assert report.bad[0].block == 1 and "earlier run" in report.bad[0].detail


def test_only_journaled_blocks_are_checked() -> None:
    snapshot = journal("W 1 1", "F 1")
    blocks = image({1: make_block(BS, 1, 1, SEED), 4: b"\x01" * BS})
    report = check(blocks, snapshot, plp=True)
    assert report.checked == 1 and report.passed


def test_report_dict_and_first_bad_limit() -> None:
    snapshot = journal(*[f"W {b} 1" for b in range(8)], "F 1")
    report = check(image({}), snapshot, plp=False)
    assert report.as_dict()["stale"] == 8 and report.as_dict()["profile"] == "no-PLP"
    assert report.first_bad(limit=2).endswith("and 6 more")


# ----- images -------------------------------------------------------------------------------------------


def test_verify_image_with_offset_and_flip(tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    snapshot = Journal.parse(f"S {SEED} {BS} 4 2\nW 0 1\nW 3 2\nF 1").snapshot()
    data = bytearray(8 * BS)
    data[2 * BS : 3 * BS] = make_block(BS, 0, 1, SEED)
    data[5 * BS : 6 * BS] = make_block(BS, 3, 2, SEED)
    path.write_bytes(bytes(data))
    assert verify_image(path, snapshot, plp=True).intact == 2
    flip_bytes(path, 5 * BS + 100, 4)
    report = verify_image(path, snapshot, plp=True)
    assert report.torn == 1 and report.bad[0].block == 3


def test_verify_image_missing_and_flip_out_of_range(tmp_path: Path) -> None:
    snapshot = journal("W 1 1")
    with pytest.raises(IntegrityError, match="cannot read image"):
        verify_image(tmp_path / "none.raw", snapshot, plp=True)
    path = tmp_path / "small.raw"
    path.write_bytes(b"abc")
    with pytest.raises(IntegrityError, match="has no 4 bytes"):
        flip_bytes(path, 2, 4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"blocks": 0}, "blocks=0"),
        ({"block_size": 1000}, "multiple of 512"),
        ({"device": "nvme0n1"}, "not a /dev path"),
        ({"flush_every": -1}, "negative"),
    ],
)
def test_writer_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        WriterSettings(**settings)  # type: ignore[arg-type]


def test_writer_settings_pick_a_seed_and_quote_nothing() -> None:
    settings = WriterSettings(device="/dev/nvme0n1", count=10)
    assert settings.seed > 0
    assert settings.argv("/tmp/w")[:3] == ["/tmp/w", "dev=/dev/nvme0n1", "bs=4096"]
