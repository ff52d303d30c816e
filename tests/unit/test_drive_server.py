"""The emulated drive's server as a real process, driven by a minimal NBD client (no VM): what
survives a power cut (no PLP: flushed and FUA writes; PLP: every acknowledged write; ``liar``:
not even flushed ones; ``tearing``: torn pages), restore, namespaces, health, events, and errors."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvmechaos.drive import DriveError, EmulatedDrive, PersonalityError, next_drive_name, start_emulated_drive
from nvmechaos.integrity.drive import cut_power, restore_power, start_power_loss_drive
from nvmechaos.process import ProcessRegistry
from nvmechaos.timeline import Timeline

KIB4 = 4096
SIZE = 32 << 20


class Client:
    """A minimal NBD client (fixed newstyle, NBD_OPT_GO, simple replies), kept open like a VM: it
    sends FLUSH only when asked, and nothing at all when its power is cut."""

    def __init__(self, drive: EmulatedDrive, export: bytes = b"") -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(drive.socket))
        assert self._read(18)[:16] == b"NBDMAGICIHAVEOPT"
        self.sock.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        option = struct.pack(">I", len(export)) + export + struct.pack(">H", 0)
        self.sock.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(option)) + option)  # NBD_OPT_GO
        self.size = 0
        while True:
            _, _, kind, length = struct.unpack(">QIII", self._read(20))
            data = self._read(length)
            if kind == 3 and data[:2] == b"\0\0":  # NBD_REP_INFO, NBD_INFO_EXPORT
                self.size = struct.unpack(">Q", data[2:10])[0]
            if kind == 1:  # NBD_REP_ACK
                break
            assert kind < (1 << 31), f"NBD_OPT_GO refused ({kind:#x})"
        self.handle = 0

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, "the drive closed the connection"
            data += chunk
        return data

    def _command(self, kind: int, offset: int = 0, data: bytes = b"", flags: int = 0, length: int = 0) -> int:
        self.handle += 1
        header = struct.pack(">IHHQQI", 0x25609513, flags, kind, self.handle, offset, len(data) or length)
        self.sock.sendall(header + data)
        magic, error, handle = struct.unpack(">IIQ", self._read(16))
        assert (magic, handle) == (0x67446698, self.handle)
        return int(error)

    def write(self, block: int, value: int, fua: bool = False) -> None:
        assert self._command(1, block * KIB4, bytes([value]) * KIB4, flags=1 if fua else 0) == 0

    def read(self, block: int) -> bytes:
        assert self._command(0, block * KIB4, length=KIB4) == 0
        return self._read(KIB4)

    def trim(self, block: int, blocks: int) -> None:
        assert self._command(4, block * KIB4, length=blocks * KIB4) == 0

    def flush(self) -> None:
        assert self._command(3) == 0

    @property
    def name(self) -> str:
        return "nbd-client"

    @property
    def pid(self) -> int | None:
        return None

    def power_cut(self) -> int | None:
        self.sock.close()
        return None


def first_bytes(path: Path, blocks: int = 6) -> list[int]:
    with open(path, "rb") as handle:
        return [handle.read(KIB4)[0] for _ in range(blocks)]


@pytest.fixture(autouse=True)
def private_run_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drives' private folders under the test's folder (never left in the temp dir)."""
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path / "run"))


@pytest.fixture
def registry() -> Iterator[ProcessRegistry]:
    registry = ProcessRegistry()
    yield registry
    registry.stop_scope(None)


def start(tmp_path: Path, registry: ProcessRegistry, **options: object) -> EmulatedDrive:
    options.setdefault("timeline", Timeline())
    return start_power_loss_drive(SIZE, tmp_path / "d.raw", name="d", registry=registry, **options)  # type: ignore[arg-type]


def test_no_plp_cut_keeps_only_flushed_and_fua_writes(tmp_path: Path, registry: ProcessRegistry) -> None:
    timeline = Timeline()
    drive = start(tmp_path, registry, plp=False, timeline=timeline)
    client = Client(drive)
    client.write(0, 0x11)
    client.write(1, 0x22)
    client.flush()
    client.write(0, 0x33)
    client.write(2, 0x44)
    client.write(3, 0x55, fua=True)
    assert client.read(0)[0] == 0x33  # served from the volatile cache
    cut = cut_power(client, [drive], timeline)
    assert not drive.is_alive()
    # 0x33 over block 0 and 0x44 were never flushed; the FUA write 0x55 is durable on its own.
    assert first_bytes(drive.backing)[:4] == [0x11, 0x22, 0, 0x55]
    assert [e.action for e in timeline.events if e.kind == "power"] == ["start", "cut", "cut"]
    assert cut.drives == ("d",) and cut.wall > 0


def test_plp_cut_keeps_every_acknowledged_write(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start(tmp_path, registry, plp=True)
    client = Client(drive)
    client.write(0, 0x11)
    client.flush()
    client.write(0, 0x22)
    client.write(1, 0x33)
    cut_power(client, [drive])
    assert first_bytes(drive.backing)[:2] == [0x22, 0x33]


def test_liar_loses_flushed_writes(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start(tmp_path, registry, personality="liar")
    client = Client(drive)
    client.write(0, 0x11)
    client.write(1, 0x22, fua=True)
    client.flush()
    assert client.read(0)[0] == 0x11
    cut_power(client, [drive])
    assert first_bytes(drive.backing)[:2] == [0, 0]


def test_tearing_leaves_torn_pages_and_flushed_ones_whole(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start(tmp_path, registry, personality="tearing")
    client = Client(drive)
    client.write(0, 0x11)
    client.flush()
    client.write(0, 0x22)
    client.write(1, 0x33)
    assert client.read(0) == bytes([0x22]) * KIB4
    cut_power(client, [drive])
    with open(drive.backing, "rb") as handle:
        page0, page1 = handle.read(KIB4), handle.read(KIB4)
    # Torn on 512-byte sectors: some new sectors first, then the old (flushed 0x11, or zeros).
    assert page0[0] == 0x22 and page0[-1] == 0x11 and set(page0) == {0x11, 0x22}
    assert page1[0] == 0x33 and page1[-1] == 0 and page1.index(0) % 512 == 0


def test_restore_serves_the_durable_image_and_counts_an_unsafe_shutdown(
    tmp_path: Path, registry: ProcessRegistry
) -> None:
    drive = start(tmp_path, registry, plp=False)
    client = Client(drive)
    client.write(0, 0x11)
    client.flush()
    client.write(0, 0x22)
    before = drive.health()
    cut_power(client, [drive])
    with pytest.raises(DriveError, match="not running"):
        drive.health()
    restore_power([drive])
    with pytest.raises(DriveError, match="still has power"):
        drive.restore()
    assert Client(drive).read(0) == bytes([0x11]) * KIB4
    after = drive.health()
    assert (before["power_cycles"], before["unsafe_shutdowns"]) == (1, 0)
    assert (after["power_cycles"], after["unsafe_shutdowns"]) == (2, 1)
    assert after["host_write_commands"] >= 2  # the counters survived the cut (saved every second)
    drive.stop()
    drive.start()
    assert drive.health()["unsafe_shutdowns"] == 1  # an orderly stop is not unsafe


def test_qemu_reads_the_drive(tmp_path: Path, registry: ProcessRegistry) -> None:
    if shutil.which("qemu-io") is None:
        pytest.skip("needs qemu-io")
    drive = start(tmp_path, registry, plp=True)
    Client(drive).write(0, 0x11)
    output = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", "read -P 0x11 0 4k", drive.uri],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "read 4096/4096" in output and "Pattern verification failed" not in output


def test_namespaces_are_slices_of_one_drive(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start_emulated_drive("client-qlc", SIZE, name="ns", namespaces=2, registry=registry)
    first, second = Client(drive, b"ns1"), Client(drive, b"ns2")
    assert first.size == second.size == SIZE // 2
    first.write(0, 0x11)
    second.write(0, 0x22)
    whole = Client(drive)
    assert whole.read(0)[0] == 0x11 and whole.read(SIZE // 2 // KIB4)[0] == 0x22
    assert drive.uris[1].startswith("nbd+unix:///ns2?socket=")
    health = drive.health()
    assert health["host_write_commands"] == 2  # one drive: both tenants count
    drive.close()


def test_health_and_events_of_a_drive_under_writes(registry: ProcessRegistry) -> None:
    timeline = Timeline()
    drive = start_emulated_drive(
        "client-qlc", SIZE, name="gc", registry=registry, timeline=timeline, overrides={"buffer_size": "64K"}
    )
    client = Client(drive)
    for round_ in range(3):  # three fills of a 32 MiB drive, sequentially: GC must run
        for block in range(SIZE // KIB4):
            client.write(block, round_ + 1)
    client.trim(0, 16)
    health = drive.health()
    assert health["data_units_written"] == -(-3 * SIZE // 512_000)
    assert health["host_write_commands"] == 3 * SIZE // KIB4
    assert health["trimmed_pages"] == 16 and health["write_amplification"] >= 1.0
    assert health["temperature"] > 273 and health["critical_warning"] == 0
    kinds = {(e.kind, e.action) for e in timeline.events if e.source == "gc"}
    assert ("buffer_full", "begin") in kinds and ("gc", "begin") in kinds
    drive.close()
    assert not drive.run_dir.exists() and not registry.running()


def test_private_folder_scratch_image_and_close(registry: ProcessRegistry) -> None:
    drive = start_emulated_drive("datacenter-tlc", 64 << 20, name="scratch", registry=registry)
    assert stat.S_IMODE(drive.run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(drive.socket.stat().st_mode) == 0o600
    assert drive.socket.parent == drive.run_dir and drive.uri.endswith(str(drive.socket))
    assert drive.backing.stat().st_size == 64 << 20 and drive.owns_backing
    assert json.loads((drive.run_dir / "personality.json").read_text())["plp"] is True
    assert registry.running() and drive.describe()["profile"] == "PLP"
    drive.close()
    assert not drive.run_dir.exists() and not registry.running()


def test_start_errors_name_the_drive_and_leave_nothing(tmp_path: Path, registry: ProcessRegistry) -> None:
    small = tmp_path / "small.raw"
    small.write_bytes(b"x" * 512)
    with pytest.raises(DriveError, match="smaller than"):
        start_emulated_drive("client-qlc", SIZE, small, name="d", registry=registry)
    with pytest.raises(DriveError, match=r"^drive d: cannot create image '/proc/x/disk\.img': folder"):
        start_emulated_drive("client-qlc", SIZE, Path("/proc/x/disk.img"), name="d", registry=registry)
    with pytest.raises(DriveError, match=r"is not a regular file$"):
        start_emulated_drive("client-qlc", SIZE, tmp_path, name="d", registry=registry)
    with pytest.raises(PersonalityError, match=r"drive personality 'nope' not found .* shipped: client-qlc"):
        start_emulated_drive("nope", name="d", registry=registry)
    with pytest.raises(PersonalityError, match="client-qlc override: unknown drive parameter 'speed'"):
        start_emulated_drive("client-qlc", overrides={"speed": 1}, name="d", registry=registry)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.raw"]
    assert not registry.running()


def test_drive_names_are_unique_and_a_log_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, registry: ProcessRegistry
) -> None:
    first, second = next_drive_name(), next_drive_name()
    assert first != second and first.startswith("drive") and second.startswith("drive")
    with pytest.raises(DriveError, match=r"^drive d: cannot write '/proc/nowhere[^']*': "):
        start_emulated_drive(
            "client-qlc", SIZE, name="d", log_dir=Path("/proc/nowhere/logs"), registry=registry
        )
    assert not list((tmp_path / "run").glob("nvmechaos-*")) and not registry.running()
