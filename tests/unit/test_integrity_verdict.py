"""What the integrity keywords judge, without a VM: argument checks, the report's failure line and
table, the writer's blocks verified on an image and damaged on purpose, and the power timeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from nvmechaos.drive import EmulatedDrive, PowerAction, load_personality
from nvmechaos.integrity.drive import backing_drives, power_events
from nvmechaos.integrity.oracle import IntegrityError, failure_line, make_block
from nvmechaos.integrity.verdict import damage_flushed_block, verify_writer
from nvmechaos.integrity.writer import GuestWriter, WriterSettings
from nvmechaos.timeline import Timeline
from nvmechaos.units import ArgumentError, at_least, converted_flag

BS = 4096
SEED = 777


def test_flags_and_counts_name_the_argument_and_quote_the_value() -> None:
    assert converted_flag(True, "plp") is True
    assert converted_flag(None, "plp") is False
    assert converted_flag(1, "plp") is True
    with pytest.raises(ArgumentError, match=r"^plp 'maybe' is not true or false$"):
        converted_flag("maybe", "plp")
    assert at_least(0, "count") == 0
    with pytest.raises(ArgumentError, match=r"^blocks '0' is not a whole number of at least 1$"):
        at_least(0, "blocks", 1)
    with pytest.raises(ArgumentError, match=r"^count 'True' is not a whole number$"):
        at_least(True, "count")


def test_writer_arguments_are_checked_under_their_names() -> None:
    with pytest.raises(ArgumentError, match=r"^blocks '0' is not a whole number of at least 1$"):
        WriterSettings.from_arguments("/dev/nvme0n1", 0, 0, 64, 0, 4096, 0, 1)
    with pytest.raises(ArgumentError, match=r"^block_size '256' is not a whole number of at least 512$"):
        WriterSettings.from_arguments("/dev/nvme0n1", 8, 0, 64, 0, 256, 0, 1)
    settings = WriterSettings.from_arguments("/dev/nvme0n1", 8, 10, 4, 0, 4096, 2, 5)
    assert (settings.blocks, settings.count, settings.flush_every, settings.first_block) == (8, 10, 4, 2)


def test_wait_arguments_are_checked_before_waiting(tmp_path: Path) -> None:
    writer = GuestWriter("vm", WriterSettings(seed=1, count=10), tmp_path / "journal.txt")
    with pytest.raises(ArgumentError, match=r"^writes '-1' is not a whole number of at least 0$"):
        writer.wait_for(writes=-1)
    with pytest.raises(ArgumentError, match=r"^finished 'perhaps' is not true or false$"):
        writer.wait_for(ended="perhaps")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match=r"^timeout 0.0 is not positive$"):
        writer.wait_for(writes=1, timeout=0.0)


def finished_writer(tmp_path: Path, *lines: str, blocks: int = 4) -> GuestWriter:
    """A writer whose guest already ended, with ``lines`` in its journal."""
    writer = GuestWriter("vm", WriterSettings(seed=SEED, blocks=blocks), tmp_path / "journal.txt")
    writer.journal.feed_lines([f"S {SEED} {BS} {blocks} 0", *lines])
    writer._done.set()  # nothing left to drain
    return writer


def drive_on(image: Path, plp: bool = False, name: str = "d", run_dir: Path | None = None) -> EmulatedDrive:
    """A drive handle (never started) on ``image``: what the verdicts read is its backing image."""
    personality = load_personality("client-qlc", {"plp": plp})
    return EmulatedDrive(name, personality, image, run_dir or image.parent, image.parent / "drive.log")


def test_verify_writer_reads_the_drive_and_judges_by_its_profile(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(make_block(BS, 0, 1, SEED) + bytes(3 * BS))
    writer = finished_writer(tmp_path, "W 0 1", "F 1", "W 1 1")
    report = verify_writer(writer, drive_on(image))
    assert (report.profile, report.intact, report.lost_allowed, report.passed) == ("no-PLP", 1, 1, True)
    assert report.source == str(image) and f"Integrity of {image}: <table>" in report.html()
    strict = verify_writer(writer, drive_on(image), plp=True)
    assert strict.failure().startswith("Data integrity failed (PLP): 1 of 2 acknowledged blocks corrupt")
    assert failure_line(strict.as_dict()) == strict.failure()
    assert "<li>block 1 stale: unwritten (zeros)" in strict.html()


def test_verify_writer_refuses_what_it_cannot_judge(tmp_path: Path) -> None:
    writer = finished_writer(tmp_path, "W 0 1")
    with pytest.raises(ArgumentError, match=r"^give plp=True or plp=False, or the drive"):
        verify_writer(writer)
    with pytest.raises(ArgumentError, match=r"^plp 'maybe' is not true or false$"):
        verify_writer(writer, plp="maybe")  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentError, match=r"^image '/no-such-folder/x.img' does not exist \(or is not a file\)$"
    ):
        verify_writer(writer, plp=True, image="/no-such-folder/x.img")
    with pytest.raises(ArgumentError, match=r"^give the drive, an image or a VM to read the blocks from$"):
        verify_writer(writer, plp=True)


def test_damage_flushed_block_flips_a_durable_block(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(make_block(BS, 0, 1, SEED) + make_block(BS, 1, 1, SEED) + bytes(2 * BS))
    writer = finished_writer(tmp_path, "W 1 1", "W 0 1", "F 1", "W 2 1")
    drive = drive_on(image)
    assert damage_flushed_block(drive, writer, block=None, offset=1000, count=4, pick=1) == 1
    report = verify_writer(writer, drive)
    assert report.torn == 1 and report.bad[0].block == 1
    with pytest.raises(
        IntegrityError, match=r"^the writer's journal has 2 flushed blocks: no number 2 to damage$"
    ):
        damage_flushed_block(drive, writer, block=None, offset=0, count=1, pick=2)
    with pytest.raises(ArgumentError, match=r"^offset=4000 \+ count=200 go beyond one block of 4096 bytes$"):
        damage_flushed_block(drive, writer, block=None, offset=4000, count=200, pick=0)
    with pytest.raises(ArgumentError, match=r"^block 9 is not one the writer writes \(0 to 3\)$"):
        damage_flushed_block(drive, writer, block=9, offset=0, count=1, pick=0)
    with pytest.raises(ArgumentError, match=r"^count '0' is not a whole number of at least 1$"):
        damage_flushed_block(drive, writer, block=0, offset=0, count=0, pick=0)


def test_power_events_are_a_view_of_the_timeline() -> None:
    timeline = Timeline()
    timeline.record("power", "start", {}, "d1")
    timeline.record("latency", "apply", {}, "injector")
    timeline.record("power", "cut", {}, "vm")
    timeline.record("power", "cut", {}, "d1")
    assert [(e.source, e.action) for e in power_events(timeline.events)] == [
        ("d1", "start"),
        ("vm", "cut"),
        ("d1", "cut"),
    ]
    assert [e.source for e in power_events(timeline.events, action=PowerAction.CUT)] == ["vm", "d1"]
    assert [e.action for e in power_events(timeline.events, source="d1")] == ["start", "cut"]


class _Namespace:
    def __init__(self, nbd: str | None) -> None:
        self.nbd = nbd


class _Controller:
    def __init__(self, *uris: str | None) -> None:
        self.namespaces = tuple(_Namespace(uri) for uri in uris)


class _Vm:
    name = "vm"
    controllers = (_Controller(None), _Controller("nbd+unix:///?socket=/run/a/nbd.sock"))


def test_a_vm_is_cut_with_the_live_drives_under_its_namespaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    under = drive_on(tmp_path / "a.raw", name="a", run_dir=Path("/run/a"))
    elsewhere = drive_on(tmp_path / "b.raw", name="b", run_dir=Path("/run/b"))
    monkeypatch.setattr(EmulatedDrive, "is_alive", lambda self: True)
    assert backing_drives(_Vm(), [under, elsewhere]) == [under]
    monkeypatch.setattr(EmulatedDrive, "is_alive", lambda self: False)
    assert backing_drives(_Vm(), [under, elsewhere]) == []
