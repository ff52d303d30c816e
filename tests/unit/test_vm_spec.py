"""VM specs: sizes, NBD URIs, layouts, and the validation messages users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from nvmechaos.vm.errors import VmSpecError
from nvmechaos.vm.qemu import Accel
from nvmechaos.vm.spec import (
    DEFAULT_SIZE,
    ControllerSpec,
    GuestSpec,
    NamespaceSpec,
    NbdExport,
    SimpleLayout,
    VmSpec,
    controllers_from,
    format_size,
    parse_memory,
    parse_size,
    storage_from,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512", 512),
        (4096, 4096),
        ("64M", 64 << 20),
        ("1G", 1 << 30),
        ("1GiB", 1 << 30),
        ("2gb", 2 << 30),
        ("1.5G", 3 << 29),
        ("1T", 1 << 40),
        (" 8 K ", 8192),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "1X", "-1G", "0", "G1"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(VmSpecError, match="size"):
        parse_size(text, "namespace size")


def test_format_size() -> None:
    assert format_size(1 << 30) == "1 GiB"
    assert format_size(3 << 20) == "3 MiB"
    assert format_size(1000) == "1000 B"


def test_nbd_inet_and_unix() -> None:
    inet = NbdExport.parse("nbd://127.0.0.1:10810/disk")
    assert (inet.host, inet.port, inet.export) == ("127.0.0.1", 10810, "disk")
    assert inet.blockdev("n0") == (
        "driver=nbd,node-name=n0,server.type=inet,server.host=127.0.0.1,server.port=10810,"
        "export=disk,reconnect-delay=20"
    )
    unix = NbdExport.parse("nbd+unix:///x?socket=/tmp/a,b.sock")
    assert unix.blockdev("n1").startswith(
        "driver=nbd,node-name=n1,server.type=unix,server.path=/tmp/a,,b.sock"
    )
    assert NbdExport.parse("nbd://host").port == 10809


@pytest.mark.parametrize("uri", ["http://x", "nbd://:1/", "nbd+unix:///x"])
def test_nbd_rejects(uri: str) -> None:
    with pytest.raises(VmSpecError, match="NBD URI"):
        NbdExport.parse(uri)


def test_namespace_validation() -> None:
    with pytest.raises(VmSpecError, match="not a multiple of its block size 4096"):
        NamespaceSpec(size=5000, block_size=4096)
    with pytest.raises(VmSpecError, match="format 'vmdk'"):
        NamespaceSpec(size=512, format="vmdk")
    with pytest.raises(VmSpecError, match="either a backing file or an NBD export"):
        NamespaceSpec(backing=Path("/x"), nbd="nbd://h:1")


def test_controller_and_vm_validation() -> None:
    with pytest.raises(VmSpecError, match="at least one namespace"):
        ControllerSpec(namespaces=())
    with pytest.raises(VmSpecError, match="serial 'has space'"):
        ControllerSpec(serial="has space")
    with pytest.raises(VmSpecError, match="VM name"):
        VmSpec(name="bad/name")
    with pytest.raises(VmSpecError, match="too small"):
        VmSpec(memory_mib=64)
    with pytest.raises(VmSpecError, match="accelerator 'xen'"):
        VmSpec(accel="xen")
    with pytest.raises(VmSpecError, match="17 NVMe controllers"):
        VmSpec(controllers=(ControllerSpec(),) * 17)


def test_guest_check(tmp_path: Path) -> None:
    assert GuestSpec().builtin
    with pytest.raises(VmSpecError, match="kernel '/no/vmlinuz' does not exist"):
        GuestSpec(kernel=Path("/no/vmlinuz")).check()
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k")
    with pytest.raises(VmSpecError, match="initrd '/no/initrd' does not exist"):
        GuestSpec(kernel=kernel, initrd=Path("/no/initrd")).check()
    image = tmp_path / "disk.img"
    image.write_bytes(b"d")
    with pytest.raises(VmSpecError, match="needs the SSH private key"):
        GuestSpec(disk_image=image).check()
    with pytest.raises(VmSpecError, match="not both"):
        GuestSpec(disk_image=image, kernel=kernel).check()


def test_layout_forms() -> None:
    simple = controllers_from("1G")
    assert len(simple) == 1 and simple[0].namespaces[0].size == 1 << 30
    layout = controllers_from(
        [
            {"serial": "A1", "namespaces": ["1G", {"size": "512M", "block_size": 4096}]},
            ["256M"],
            {"nbd": "nbd://127.0.0.1:10809"},
        ]
    )
    assert [c.serial for c in layout] == ["A1", None, None]
    assert layout[0].namespaces[1].block_size == 4096
    assert layout[1].namespaces[0].size == 256 << 20
    assert layout[2].namespaces[0].nbd == "nbd://127.0.0.1:10809"
    assert layout[2].namespaces[0].size is None


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ([], "non-empty list"),
        ([[]], "controller 0: needs at least one namespace"),
        ([{"namespaces": ["1G"], "colour": "red"}], "controller 0: unknown key"),
        ([["1G", {"sise": "1G"}]], "controller 0 namespace 2: unknown key"),
        ([["1G"], ["huge"]], "controller 1 namespace 1 size 'huge' is not a size"),
    ],
)
def test_layout_errors(layout: object, message: str) -> None:
    with pytest.raises(VmSpecError, match=message.replace("(", r"\(")):
        controllers_from(layout)


@pytest.mark.parametrize(
    ("value", "mib"),
    [(1024, 1024), ("2048", 2048), ("2G", 2048), ("512M", 512), ("1.5GiB", 1536), (" 3 g ", 3072)],
)
def test_parse_memory(value: str | int, mib: int) -> None:
    assert parse_memory(value) == mib


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            0,
            r"^VM memory '0' is not positive "
            r"\(give MiB \(e\.g\. 2048\) or a size with a unit \(e\.g\. 2G\)\)$",
        ),
        ("0", r"^VM memory '0' is not positive"),
        ("-512", r"^VM memory '-512' is not positive"),
        ("lots", r"^VM memory 'lots' is not an amount of memory \(give MiB"),
        ("1.5", r"^VM memory '1\.5' is not an amount of memory"),
        ("1000K", r"^VM memory '1000K' is not a whole number of MiB"),
        (True, r"^VM memory 'True' is not an amount of memory"),
    ],
)
def test_parse_memory_rejects(value: str | int, message: str) -> None:
    with pytest.raises(VmSpecError, match=message):
        parse_memory(value)


def test_host_key_and_user_are_checked_before_launch(tmp_path: Path) -> None:
    GuestSpec(
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmlUeA6MFqRgBGD7a6RHhJvVZ7IBX9ZY4ZUDp5rKzPe x"
    ).check()
    for bad in ("garbage", "ssh-ed25519", "ssh-ed25519 not-base64!"):
        with pytest.raises(VmSpecError, match=r"is not an SSH public key line \(TYPE BASE64"):
            GuestSpec(host_key=bad).check()
    with pytest.raises(VmSpecError, match="SSH user 'two words' is not a user name"):
        GuestSpec(ssh_user="two words").check()


def test_layout_namespace_errors_name_the_namespace() -> None:
    with pytest.raises(VmSpecError, match=r"^controller 0 namespace 1: block_size 'big' is not 512 or 4096$"):
        controllers_from([[{"size": "1G", "block_size": "big"}]])
    with pytest.raises(VmSpecError, match=r"^controller 0 namespace 2: size 'x' is not a size"):
        controllers_from([["1G", {"size": "x"}]])
    with pytest.raises(VmSpecError, match=r"^controller 0 namespace 1: create 'yes' is not true or false$"):
        controllers_from([[{"size": "1G", "backing": "/tmp/x", "create": "yes"}]])
    created = controllers_from([[{"size": "1G", "backing": "/tmp/x.raw", "create": True}]])
    assert created[0].namespaces[0].create


def test_namespaces_per_controller_are_bounded() -> None:
    with pytest.raises(VmSpecError, match=r"^257 namespaces on one NVMe controller: QEMU takes at most 256$"):
        ControllerSpec(namespaces=(NamespaceSpec(size=1 << 20),) * 257)


def test_the_simple_form_and_the_layout_are_one_or_the_other() -> None:
    simple = storage_from(None, SimpleLayout(size="64M", namespaces=2, controllers=2), ["A", "B"])
    assert [c.serial for c in simple] == ["A", "B"]
    assert [ns.size for ns in simple[0].namespaces] == [64 << 20, 64 << 20]
    assert storage_from(None, SimpleLayout())[0].namespaces[0].size == DEFAULT_SIZE
    assert storage_from(None, SimpleLayout(nbd="nbd://127.0.0.1:1"))[0].namespaces[0].size is None
    layout = storage_from('[["1G"], {"serial": "S", "namespaces": ["2G"]}]', SimpleLayout())
    assert [c.serial for c in layout] == [None, "S"]
    for layout_, simple_, serials, message in (
        (
            '[["1G"]]',
            SimpleLayout(size="2G", create=True),
            None,
            r"^layout= describes every namespace: put size=, create_backing= ",
        ),
        (None, SimpleLayout(create=True), None, r"^create_backing=True needs backing="),
        (
            None,
            SimpleLayout(backing="/x.raw", controllers=2),
            None,
            r"^backing= and nbd= describe one",
        ),
        (None, SimpleLayout(controllers=2), ["A"], r"^1 serials given for 2 controllers$"),
        ("[1G]", SimpleLayout(), None, r"^layout is not valid JSON: "),
        (None, SimpleLayout(size="lots"), None, r"^namespace size 'lots' is not a size"),
    ):
        with pytest.raises(VmSpecError, match=message):
            storage_from(layout_, simple_, serials)


def test_the_accelerator_is_an_enum_and_text_still_works() -> None:
    assert VmSpec(accel="tcg").accel is Accel.tcg  # type: ignore[arg-type]
    assert VmSpec().accel is Accel.auto
    assert [accel.value for accel in Accel] == ["auto", "kvm", "tcg"]
