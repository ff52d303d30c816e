"""VmLibrary's pure helpers: typing QMP arguments from Robot strings, and construction doing no work."""

from __future__ import annotations

from pathlib import Path

import pytest

from VmLibrary import VmLibrary
from VmLibrary.context import KeywordError, VmContext, as_vm, flag, safe_name, seconds
from VmLibrary.lifecycle import _layout
from VmLibrary.qmp import typed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200", 200),
        ("-1", -1),
        ("1.5", 1.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ('{"iops-total": 200}', {"iops-total": 200}),
        ("[1, 2]", [1, 2]),
        ("nvme0", "nvme0"),
        ("rp0", "rp0"),
        ("1G", "1G"),
        ("{not json", "{not json"),
        (7, 7),
    ],
)
def test_typed(text: object, expected: object) -> None:
    assert typed(text) == expected


def test_layout_json_and_errors() -> None:
    assert _layout('[["1G"], {"serial": "A", "namespaces": ["2G"]}]') == [
        ["1G"],
        {"serial": "A", "namespaces": ["2G"]},
    ]
    assert _layout("1G") == "1G"
    with pytest.raises(KeywordError, match="layout is not valid JSON"):
        _layout("[1G]")


def test_library_construction_does_no_work() -> None:
    library = VmLibrary(boot_timeout="30", memory="512", cpus="2")
    names = library.get_keyword_names()
    for name in (
        "Launch NVMe VM",
        "Wait Until VM Is Ready",
        "Shut Down VM",
        "Power Cut VM",
        "Restart VM",
        "Execute QMP Command",
        "Wait For QMP Event",
        "Get QMP Events",
    ):
        assert name in names
    listeners = library.ROBOT_LIBRARY_LISTENER
    assert library is listeners or library in listeners


def test_every_keyword_has_an_example() -> None:
    library = VmLibrary()
    for name in library.get_keyword_names():
        assert "Example" in library.get_keyword_documentation(name), name


def test_context_close_scope_without_vms() -> None:
    context = VmContext(None, 10.0, 512, 1)
    assert context.close_scope(None) == []
    assert safe_name("Suite / Test: one") == "Suite_Test_one"


def test_import_arguments_are_checked_in_one_line() -> None:
    library = VmLibrary(boot_timeout="3 min", memory="2G", cpus=2)
    assert (library._ctx.boot_timeout, library._ctx.memory, library._ctx.cpus) == (180.0, 2048, 2)
    for arguments, message in (
        ({"memory": "0"}, r"^VM memory '0' is not positive \(give MiB"),
        ({"memory": "64"}, r"^VM memory 64 MiB is too small \(at least 128 MiB\)$"),
        ({"cpus": "0"}, r"^VM CPUs 0 must be between 1 and 64$"),
        ({"cpus": "many"}, r"^cpus 'many' is not a whole number$"),
        ({"boot_timeout": "soon"}, r"^boot_timeout 'soon' is not a time \(use e\.g\. 30s, 2 min"),
        ({"boot_timeout": "0"}, r"^boot_timeout '0' is not positive$"),
    ):
        with pytest.raises(KeywordError, match=message):
            VmLibrary(**arguments)  # type: ignore[arg-type]


def test_the_import_has_documentation_with_an_example() -> None:
    doc = VmLibrary.__init__.__doc__ or ""
    assert "boot_timeout" in doc and "memory" in doc and "Example" in doc


def test_keyword_helpers_fail_in_one_line() -> None:
    assert seconds("2 min") == 120.0
    assert seconds("1.5") == 1.5
    assert seconds(10) == 10.0
    with pytest.raises(KeywordError, match=r"^timeout 'x' is not a time"):
        seconds("x")
    with pytest.raises(KeywordError, match=r"^timeout '-1s' is not positive$"):
        seconds("-1s")
    assert flag("yes", "wait") is True and flag("False", "wait") is False and flag(None, "wait") is False
    with pytest.raises(KeywordError, match=r"^wait 'maybe' is not true or false$"):
        flag("maybe", "wait")
    with pytest.raises(
        KeywordError, match=r"^'vm-1' is not a VM \(use the handle `Launch NVMe VM` returned\)$"
    ):
        as_vm("vm-1")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"memory": "0"}, r"^VM memory '0' is not positive"),
        ({"memory": "lots"}, r"^VM memory 'lots' is not an amount of memory"),
        ({"cpus": 0}, r"^VM CPUs 0 must be between 1 and 64$"),
        ({"cpus": "x"}, r"^cpus 'x' is not a whole number$"),
        ({"namespaces": "two"}, r"^namespaces 'two' is not a whole number$"),
        ({"namespaces": "0"}, r"^an NVMe controller needs at least one namespace$"),
        ({"controllers": "0"}, r"^0 NVMe controllers: use 1 to 16$"),
        ({"timeout": "soon"}, r"^timeout 'soon' is not a time"),
        ({"wait": "perhaps"}, r"^wait 'perhaps' is not true or false$"),
        ({"layout": '[["1G"]]', "size": "2G"}, r"^layout= describes every namespace: put size= inside"),
        (
            {"create_backing": True},
            r"^create_backing=True needs backing= \(the path of the file to create\)$",
        ),
        (
            {"backing": "/nonexistent/backing.raw"},
            r"^namespace 1 of nvme0: backing file '/nonexistent/backing\.raw' does not exist",
        ),
        ({"nbd": "nbd://127.0.0.1:1", "size": "1G"}, r"an NBD namespace takes its size from the export"),
        ({"accel": "fast"}, r"^accelerator 'fast' is not auto, kvm or tcg$"),
        ({"host_key": "garbage"}, r"^host key 'garbage' is not an SSH public key line"),
    ],
)
def test_launch_refuses_bad_arguments_before_anything(
    arguments: dict[str, object], message: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("NVMECHAOS_QEMU", "qemu-that-must-not-be-looked-up")
    library = VmLibrary()
    with pytest.raises(KeywordError, match=message):
        library.run_keyword("Launch NVMe VM", [], {"name": "t", **arguments})
    assert list(Path(str(tmp_path)).iterdir()) == []


def test_align_refuses_what_is_not_a_run_folder_or_clock_samples(tmp_path: Path) -> None:
    library = VmLibrary()
    with pytest.raises(KeywordError, match=r"^fio run folder '/no/such/run' does not exist$"):
        library.run_keyword("Align Fio Logs To Host Clock", ["/no/such/run"], {})
    with pytest.raises(
        KeywordError, match=r"^before is not a list of samples from `Measure Guest Clock`: 'x'$"
    ):
        library.run_keyword("Align Fio Logs To Host Clock", [str(tmp_path), "x"], {})
