"""Power-loss drives against real nbdkit, driven by a minimal NBD client (no VM): without PLP
only flushed and FUA writes survive a cut, with PLP every acknowledged write does."""

from __future__ import annotations

import shutil
import socket
import stat
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvmechaos.faults.base import FaultError, InjectorStartError
from nvmechaos.integrity.drive import PowerLossDrive, cut_power, restore_power, start_drive
from nvmechaos.process import ProcessRegistry
from nvmechaos.timeline import Timeline

pytestmark = pytest.mark.skipif(
    shutil.which("nbdkit") is None or shutil.which("qemu-io") is None, reason="needs nbdkit and qemu-io"
)
KIB4 = 4096


class Client:
    """A minimal NBD client (fixed newstyle, NBD_OPT_GO, simple replies), kept open like a VM: it
    sends FLUSH only when asked, and nothing at all when its power is cut."""

    def __init__(self, drive: PowerLossDrive) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(drive.socket))
        assert self._read(18)[:16] == b"NBDMAGICIHAVEOPT"
        self.sock.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        self.sock.sendall(b"IHAVEOPT" + struct.pack(">II", 7, 6) + struct.pack(">IH", 0, 0))  # NBD_OPT_GO
        while True:
            _, _, kind, length = struct.unpack(">QIII", self._read(20))
            self._read(length)
            if kind == 1:  # NBD_REP_ACK
                break
            assert kind < (1 << 31), f"NBD_OPT_GO refused ({kind:#x})"
        self.handle = 0

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, "nbdkit closed the connection"
            data += chunk
        return data

    def _command(self, kind: int, offset: int = 0, data: bytes = b"", flags: int = 0) -> None:
        self.handle += 1
        header = struct.pack(">IHHQQI", 0x25609513, flags, kind, self.handle, offset, len(data))
        self.sock.sendall(header + data)
        magic, error, handle = struct.unpack(">IIQ", self._read(16))
        assert (magic, error, handle) == (0x67446698, 0, self.handle)

    def write(self, block: int, value: int, fua: bool = False) -> None:
        self._command(1, block * KIB4, bytes([value]) * KIB4, flags=1 if fua else 0)

    def flush(self) -> None:
        self._command(3)

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
    data = path.read_bytes()
    return [data[b * KIB4] for b in range(blocks)]


@pytest.fixture(autouse=True)
def private_run_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drives' private folders under the test's folder (never left in the temp dir)."""
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path / "run"))


@pytest.fixture
def registry() -> Iterator[ProcessRegistry]:
    registry = ProcessRegistry()
    yield registry
    registry.stop_scope(None)


def test_no_plp_cut_keeps_only_flushed_and_fua_writes(tmp_path: Path, registry: ProcessRegistry) -> None:
    timeline = Timeline()
    drive = start_drive(
        16 << 20, tmp_path / "d.raw", plp=False, name="d", registry=registry, timeline=timeline
    )
    client = Client(drive)
    client.write(0, 0x11)
    client.write(1, 0x22)
    client.flush()
    client.write(0, 0x33)
    client.write(2, 0x44)
    client.write(3, 0x55, fua=True)
    cut = cut_power(client, [drive], timeline)
    assert not drive.is_alive()
    # 0x33 over block 0 and 0x44 were never flushed; the FUA write 0x55 is durable on its own (the
    # cache filter writes that block through and leaves the other dirty blocks in the cache).
    assert first_bytes(drive.backing)[:4] == [0x11, 0x22, 0, 0x55]
    assert [e.action for e in timeline.events] == ["start", "cut", "cut"]
    assert cut.drives == ("d",) and cut.wall > 0


def test_no_plp_cut_loses_unflushed_writes(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start_drive(16 << 20, tmp_path / "d.raw", plp=False, name="d", registry=registry)
    client = Client(drive)
    client.write(0, 0x11)
    client.flush()
    client.write(0, 0x22)
    client.write(1, 0x33)
    cut_power(client, [drive])
    assert first_bytes(drive.backing)[:2] == [0x11, 0]


def test_plp_cut_keeps_every_acknowledged_write(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start_drive(16 << 20, tmp_path / "d.raw", plp=True, name="d", registry=registry)
    client = Client(drive)
    client.write(0, 0x11)
    client.flush()
    client.write(0, 0x22)
    client.write(1, 0x33)
    cut_power(client, [drive])
    assert first_bytes(drive.backing)[:2] == [0x22, 0x33]


def test_restore_serves_the_durable_image_again(tmp_path: Path, registry: ProcessRegistry) -> None:
    drive = start_drive(16 << 20, tmp_path / "d.raw", plp=False, name="d", registry=registry)
    client = Client(drive)
    client.write(0, 0x11)
    client.flush()
    client.write(0, 0x22)
    cut_power(client, [drive])
    restore_power([drive])
    with pytest.raises(FaultError, match="still has power"):
        drive.restore()
    output = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", "read -P 0x11 0 4k", drive.uri],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "read 4096/4096" in output and "Pattern verification failed" not in output


def test_private_folder_scratch_image_and_close(registry: ProcessRegistry) -> None:
    drive = start_drive(1 << 20, plp=True, name="scratch", registry=registry)
    assert stat.S_IMODE(drive.run_dir.stat().st_mode) == 0o700
    assert drive.socket.parent == drive.run_dir and drive.uri.endswith(str(drive.socket))
    assert drive.backing.stat().st_size == 1 << 20 and drive.owns_backing
    assert registry.running() and drive.describe()["profile"] == "PLP"
    drive.close()
    assert not drive.run_dir.exists() and not registry.running()


def test_start_errors(tmp_path: Path, registry: ProcessRegistry) -> None:
    with pytest.raises(FaultError, match="give a size"):
        start_drive(None, tmp_path / "none.raw", registry=registry)
    with pytest.raises(InjectorStartError, match="not installed"):
        start_drive(1 << 20, nbdkit="no-such-nbdkit", registry=registry)
    small = tmp_path / "small.raw"
    small.write_bytes(b"x" * 512)
    with pytest.raises(FaultError, match="smaller than"):
        start_drive(1 << 20, small, registry=registry)
    broken = tmp_path / "fake-nbdkit"
    broken.write_text("#!/bin/sh\necho 'nbdkit: error: bad things' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(InjectorStartError, match="bad things"):
        start_drive(1 << 20, nbdkit=str(broken), registry=registry)


def test_drive_arguments_are_checked_before_anything_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: ProcessRegistry
) -> None:
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path / "runs"))
    with pytest.raises(
        FaultError,
        match=r"^drive d: cannot create image '/proc/x/disk\.img': folder '/proc/x' does not exist$",
    ):
        start_drive(1 << 20, Path("/proc/x/disk.img"), name="d", registry=registry)
    nowhere = tmp_path / "no" / "disk.img"
    with pytest.raises(FaultError, match=r"folder '.*/no' does not exist$"):
        start_drive(1 << 20, nowhere, name="d", registry=registry)
    with pytest.raises(FaultError, match=r"^drive d: image '.*' is not a file or block device$"):
        start_drive(1 << 20, tmp_path, name="d", registry=registry)
    with pytest.raises(FaultError, match=r"^drive d: size 0 is not a positive number of bytes$"):
        start_drive(0, name="d", registry=registry)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no image, no parent folder


def test_an_image_created_for_a_drive_that_fails_is_removed(
    tmp_path: Path, registry: ProcessRegistry
) -> None:
    broken = tmp_path / "fake-nbdkit"
    broken.write_text("#!/bin/sh\necho 'nbdkit: error: bad things' >&2\nexit 1\n")
    broken.chmod(0o755)
    image = tmp_path / "new.raw"
    with pytest.raises(InjectorStartError, match="bad things"):
        start_drive(1 << 20, image, nbdkit=str(broken), registry=registry)
    assert not image.exists()
