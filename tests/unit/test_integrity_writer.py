"""The integrity writer's checks of its guest device, before anything is installed or started."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from nvmechaos.integrity.oracle import IntegrityError
from nvmechaos.integrity.writer import _DEVICE_PROBE, GuestWriter, WriterSettings, device_problem

MIB64 = 64 << 20


def settings(**options: object) -> WriterSettings:
    return WriterSettings(seed=1, **options)  # type: ignore[arg-type]


def test_missing_device_names_it_and_the_guests_devices() -> None:
    output = "MISSING\nDEVICES nvme0 nvme0c0n1 nvme0n1 nvme-fabrics\n"
    assert device_problem(output, settings(device="/dev/nvme9n1"), "pl-err") == (
        "writer device /dev/nvme9n1 does not exist in VM 'pl-err' (its NVMe devices: /dev/nvme0n1)"
    )
    assert device_problem("MISSING\nDEVICES\n", settings(device="/dev/nvme9n1"), "x") == (
        "writer device /dev/nvme9n1 does not exist in VM 'x' (it has no NVMe namespace device)"
    )
    assert device_problem("NOTBLOCK\nDEVICES nvme0n1\n", settings(device="/dev/nvme0"), "x") == (
        "writer device /dev/nvme0 in VM 'x' is not a block device (its NVMe devices: /dev/nvme0n1)"
    )


def test_blocks_beyond_the_device_are_refused_with_the_figures() -> None:
    output = f"SIZE {MIB64 // 512} 512\nDEVICES nvme0n1\n"
    assert device_problem(output, settings(blocks=16384), "pl") is None
    assert device_problem(output, settings(blocks=1000000), "pl") == (
        "writer blocks=1000000 of block_size=4096 need 4096000000 bytes, more than /dev/nvme0n1 in VM 'pl' "
        "holds: 67108864 bytes (16384 blocks)"
    )
    assert device_problem(output, settings(blocks=16384, first_block=1), "pl") == (
        "writer blocks=16384 of block_size=4096 from first_block=1 need 67112960 bytes, more than "
        "/dev/nvme0n1 in VM 'pl' holds: 67108864 bytes (16384 blocks)"
    )


def test_block_size_must_suit_the_device() -> None:
    output = f"SIZE {MIB64 // 512} 4096\nDEVICES nvme0n1\n"
    assert device_problem(output, settings(block_size=512), "pl") == (
        "writer block_size=512 is not a multiple of the logical block size 4096 of /dev/nvme0n1 in VM 'pl' "
        "(O_DIRECT writes need it)"
    )
    assert device_problem("SIZE  512\n", settings(), "pl") == (
        "cannot read the size of writer device /dev/nvme0n1 in VM 'pl': SIZE  512"
    )
    assert device_problem("sh: oops\n", settings(), "pl") == (
        "cannot check writer device /dev/nvme0n1 in VM 'pl': sh: oops"
    )


def probe(device: str) -> str:
    command = _DEVICE_PROBE.replace("{device}", shlex.quote(device))
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False).stdout


def test_the_probe_runs_in_a_posix_shell(tmp_path: Path) -> None:
    assert probe(str(tmp_path / "nope")).startswith("MISSING\nDEVICES")
    assert probe("/dev/null").startswith("NOTBLOCK\n")
    disks = [p.name for p in Path("/sys/block").iterdir() if (Path("/dev") / p.name).exists()]
    if not disks:
        pytest.skip("no block device in /dev to probe")
    first = probe(f"/dev/{disks[0]}").splitlines()[0].split()
    sectors = int((Path("/sys/block") / disks[0] / "size").read_text())
    assert first[0] == "SIZE" and int(first[1]) == sectors and int(first[2]) in (512, 1024, 2048, 4096)


def test_settings_are_checked_before_the_guest_is_asked() -> None:
    with pytest.raises(IntegrityError, match=r"^writer setting blocks=0: write at least one block$"):
        WriterSettings(blocks=0)
    with pytest.raises(IntegrityError, match=r"^writer device 'nvme0n1' is not a /dev path$"):
        WriterSettings(device="nvme0n1")


def test_waits_that_can_never_end_fail_at_once(tmp_path: Path) -> None:
    counted = GuestWriter("vm", settings(count=10), tmp_path / "journal.txt")
    with pytest.raises(
        IntegrityError, match=r"^writes=11 can never be reached: the writer stops after count=10"
    ):
        counted.wait_for(writes=11, timeout=60)
    endless = GuestWriter("vm", settings(count=0), tmp_path / "journal.txt")
    with pytest.raises(IntegrityError, match=r"^finished=True can never be reached: the writer has no count"):
        endless.wait_for(ended=True, timeout=60)
