"""The guest builder: cpio format, ldd parsing, module order, PVH kernel detection, and the cache key."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from io import BytesIO
from pathlib import Path

import pytest

from nvmechaos.guest.builder import (
    GuestImage,
    GuestImageError,
    GuestRecipe,
    _has_pvh_note,
    build_guest,
    image_directory,
    module_files,
    shared_libraries,
)
from nvmechaos.guest.cpio import CpioWriter

HAVE_TOOLS = all(
    shutil.which(t) for t in ("busybox", "dropbear", "dropbearkey", "fio", "nvme", "modprobe")
) and any(Path("/boot").glob("vmlinuz-*"))


def test_cpio_round_trip_with_cpio_tool() -> None:
    stream = BytesIO()
    archive = CpioWriter(stream)
    archive.directory("etc")
    archive.file("etc/hello", b"hi\n", 0o600)
    archive.symlink("etc/link", "/etc/hello")
    archive.char_device("console", 5, 1)
    archive.file("etc/hello", b"duplicate is ignored")
    archive.close()
    data = stream.getvalue()
    assert len(data) % 4 == 0
    assert data.count(b"070701") == 5
    if shutil.which("cpio"):
        listing = subprocess.run(
            ["cpio", "-itv"], input=data, capture_output=True, check=True
        ).stdout.decode()
        assert "etc/hello" in listing and "etc/link -> /etc/hello" in listing
        assert "-rw-------" in listing


def test_shared_libraries_lists_loader() -> None:
    libraries = shared_libraries(Path("/bin/ls"))
    assert Path("/lib64/ld-linux-x86-64.so.2") in libraries
    assert any(p.name.startswith("libc.so") for p in libraries)


def test_shared_libraries_of_static_binary() -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox not installed")
    assert shared_libraries(Path(busybox)) == []


@pytest.mark.skipif(not HAVE_TOOLS, reason="guest build tools not installed")
def test_module_order_puts_dependencies_first() -> None:
    release = sorted(Path("/lib/modules").iterdir())[-1].name
    files = module_files(release, ["crct10dif_generic", "crc64_rocksoft_generic", "nvme"])
    names = [Path(f).name for f in files]
    assert names.index("nvme-core.ko") < names.index("nvme.ko")
    assert names.index("t10-pi.ko") < names.index("nvme-core.ko")
    assert names[0] == "crct10dif_common.ko"
    assert len(names) == len(set(names))
    with pytest.raises(GuestImageError, match="kernel module 'no_such_module' not found"):
        module_files(release, ["no_such_module"])


def _elf_with_note(name: bytes, note_type: int) -> bytes:
    note = struct.pack("<III", len(name) + 1, 4, note_type) + name + b"\0" * (4 - len(name) % 4) + b"\0" * 4
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, 1)
    program = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(note), len(note), 4)
    return bytes(header) + program + note


def test_pvh_note_detection() -> None:
    assert _has_pvh_note(_elf_with_note(b"Xen", 18))
    assert not _has_pvh_note(_elf_with_note(b"Xen", 17))
    assert not _has_pvh_note(_elf_with_note(b"GNU", 18))
    assert not _has_pvh_note(b"MZ not an elf")


@pytest.mark.skipif(not HAVE_TOOLS, reason="guest build tools not installed")
def test_build_is_cached_and_keyed_by_recipe(tmp_path: Path) -> None:
    image = build_guest(GuestRecipe(pvh=False), cache_dir=tmp_path)
    assert image.kernel.name == "vmlinuz" and image.initrd.stat().st_size > 1 << 20
    assert image.host_key.startswith("ssh-ed25519 ")
    again = build_guest(GuestRecipe(pvh=False), cache_dir=tmp_path)
    assert again.directory == image.directory and again.host_key == image.host_key
    assert image_directory(GuestRecipe(pvh=False, with_fio=False), tmp_path) != image.directory
    with open(image.initrd, "rb") as initrd:
        listing = subprocess.run(["cpio", "-it"], stdin=initrd, capture_output=True, check=True)
    names = set(listing.stdout.decode().split())
    assert {
        "init",
        "usr/bin/fio",
        "usr/bin/dropbear",
        "usr/lib/sftp-server",
        "lib64/ld-linux-x86-64.so.2",
        "etc/dropbear/dropbear_ed25519_host_key",
    } <= names
    assert GuestImage.load(image.directory) == image
    assert image.tools_disk is not None and image.tools_disk.stat().st_size > 1 << 20


@pytest.mark.skipif(not HAVE_TOOLS, reason="guest build tools not installed")
def test_stale_images_are_pruned(tmp_path: Path) -> None:
    stale = tmp_path / "0123456789abcdef"
    stale.mkdir()
    os.utime(stale, (0, 0))
    fresh = tmp_path / "fedcba9876543210"
    fresh.mkdir()
    build_guest(GuestRecipe(pvh=False, with_fio=False), cache_dir=tmp_path)
    assert not stale.exists()
    assert fresh.exists()


def test_load_incomplete_image(tmp_path: Path) -> None:
    with pytest.raises(GuestImageError, match="no complete guest image"):
        GuestImage.load(tmp_path)


def test_missing_kernel() -> None:
    with pytest.raises(GuestImageError, match="kernel '/no/vmlinuz-1' does not exist"):
        GuestRecipe(kernel=Path("/no/vmlinuz-1")).kernel_path()
