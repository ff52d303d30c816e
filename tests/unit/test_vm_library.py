"""VmLibrary's pure helpers: typing QMP arguments from Robot strings, and construction doing no work."""

from __future__ import annotations

import pytest

from VmLibrary import VmLibrary
from VmLibrary.context import KeywordError, VmContext, safe_name
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
