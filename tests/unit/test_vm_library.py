"""VmLibrary without a VM: typing QMP arguments from Robot strings, construction doing no work, and
arguments refused in one line before anything starts.

Robot converts typed arguments (times, counts, the accelerator) before a keyword runs, so values it
cannot convert fail with its own message; :func:`robot_import` and :func:`robot_run` go through
that same conversion.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from robot.running.testlibraries import TestLibrary as RobotLibrary

from nvmechaos.units import converted_flag
from nvmechaos.vm.qmp import typed
from nvmechaos.vm.spec import layout_from
from nvmechaos_robot import KeywordError, safe_name
from VmLibrary import VmLibrary


@cache
def _robot_library() -> RobotLibrary:
    return RobotLibrary.from_name("VmLibrary")


def robot_import(**arguments: str) -> VmLibrary:
    """Import VmLibrary as Robot does: the arguments converted by their types, then ``__init__``."""
    _, named = _robot_library().init.args.convert([], list(arguments.items()))
    return VmLibrary(**dict(named))


def robot_run(library: VmLibrary, keyword_name: str, /, *args: object, **named: object) -> Any:
    """Run ``keyword_name`` as Robot does: its arguments converted by their types first."""
    keyword = _robot_library().find_keywords(keyword_name)[0]
    positional, converted = keyword.args.convert(list(args), list(named.items()))
    return library.run_keyword(keyword_name, tuple(positional), dict(converted))


def robot_converts(name: str, argument: str, value: str) -> object:
    """What Robot hands the keyword ``name`` for ``argument=value``."""
    keyword = _robot_library().find_keywords(name)[0]
    return dict(keyword.args.convert([], [(argument, value)])[1])[argument]


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


def test_layout_json_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert layout_from('[["1G"], {"serial": "A", "namespaces": ["2G"]}]') == [
        ["1G"],
        {"serial": "A", "namespaces": ["2G"]},
    ]
    assert layout_from("1G") == "1G"
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("NVMECHAOS_QEMU", "qemu-that-must-not-be-looked-up")
    with pytest.raises(KeywordError, match="layout is not valid JSON"):
        robot_run(VmLibrary(), "Launch NVMe VM", name="t", layout="[1G]")


def test_library_construction_does_no_work() -> None:
    library = robot_import(boot_timeout="30", memory="512", cpus="2")
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
        "Start Prepared Fio Job On VM",
        "Wait For Prepared Fio Job On VM",
    ):
        assert name in names
    listeners = library.ROBOT_LIBRARY_LISTENER
    assert library is listeners or library in listeners


def test_every_keyword_has_an_example() -> None:
    library = VmLibrary()
    for name in library.get_keyword_names():
        assert "Example" in library.get_keyword_documentation(name), name


def test_stopping_all_vms_without_vms() -> None:
    assert VmLibrary().run_keyword("Stop All VMs", (), {}) == 0
    assert safe_name("Suite / Test: one") == "Suite_Test_one"


def test_import_arguments_are_checked_in_one_line() -> None:
    library = robot_import(boot_timeout="3 min", memory="2G", cpus="2")
    assert (library._ctx.boot_timeout, library._ctx.memory, library._ctx.cpus) == (180.0, 2048, 2)
    for arguments, message in (
        ({"memory": "0"}, r"^VM memory '0' is not positive \(give MiB"),
        ({"memory": "64"}, r"^VM memory 64 MiB is too small \(at least 128 MiB\)$"),
        ({"cpus": "0"}, r"^VM CPUs 0 must be between 1 and 64$"),
        ({"boot_timeout": "0"}, r"^boot_timeout '0' is not positive$"),
    ):
        with pytest.raises(KeywordError, match=message):
            robot_import(**arguments)
    # Robot refuses these before the library is created, with its own message.
    for arguments, message in (
        ({"cpus": "many"}, r"^Argument 'cpus' got value 'many' that cannot be converted to integer\.$"),
        (
            {"boot_timeout": "soon"},
            r"^Argument 'boot_timeout' got value 'soon' that cannot be converted to timedelta",
        ),
    ):
        with pytest.raises(ValueError, match=message):
            robot_import(**arguments)


def test_the_import_has_documentation_with_an_example() -> None:
    doc = VmLibrary.__init__.__doc__ or ""
    assert "boot_timeout" in doc and "memory" in doc and "Example" in doc


def test_keyword_arguments_fail_in_one_line() -> None:
    assert robot_converts("Wait Until VM Is Ready", "timeout", "2 min") == timedelta(seconds=120)
    assert robot_converts("Wait Until VM Is Ready", "timeout", "1.5") == timedelta(seconds=1.5)
    assert robot_converts("Shut Down VM", "timeout", "10") == timedelta(seconds=10)
    with pytest.raises(
        ValueError, match=r"^Argument 'timeout' got value 'x' that cannot be converted to timedelta"
    ):
        robot_converts("Wait Until VM Is Ready", "timeout", "x")
    library = VmLibrary()
    with pytest.raises(KeywordError, match=r"^timeout '-1' is not positive$"):
        robot_run(library, "Launch NVMe VM", name="t", timeout="-1s")
    assert robot_converts("Launch NVMe VM", "wait", "yes") is True
    assert robot_converts("Launch NVMe VM", "wait", "False") is False
    assert converted_flag(robot_converts("Launch NVMe VM", "wait", "None"), "wait") is False
    with pytest.raises(KeywordError, match=r"^wait 'maybe' is not true or false$"):
        robot_run(library, "Launch NVMe VM", name="t", wait="maybe")
    with pytest.raises(
        KeywordError, match=r"^'vm-1' is not a VM \(use the handle `Launch NVMe VM` returned\)$"
    ):
        robot_run(library, "VM Should Be Running", "vm-1")


# Robot refuses what it cannot convert before the keyword runs, with its own message (ValueError).
_ROBOT = ValueError


@pytest.mark.parametrize(
    ("arguments", "message", "error"),
    [
        ({"memory": "0"}, r"^VM memory '0' is not positive", KeywordError),
        ({"memory": "lots"}, r"^VM memory 'lots' is not an amount of memory", KeywordError),
        ({"cpus": 0}, r"^VM CPUs 0 must be between 1 and 64$", KeywordError),
        (
            {"cpus": "x"},
            r"^Argument 'cpus' got value 'x' that cannot be converted to integer or None\.$",
            _ROBOT,
        ),
        (
            {"namespaces": "two"},
            r"^Argument 'namespaces' got value 'two' that cannot be converted to integer\.$",
            _ROBOT,
        ),
        ({"namespaces": "0"}, r"^an NVMe controller needs at least one namespace$", KeywordError),
        ({"controllers": "0"}, r"^0 NVMe controllers: use 1 to 16$", KeywordError),
        (
            {"timeout": "soon"},
            r"^Argument 'timeout' got value 'soon' that cannot be converted to timedelta",
            _ROBOT,
        ),
        ({"wait": "perhaps"}, r"^wait 'perhaps' is not true or false$", KeywordError),
        (
            {"layout": '[["1G"]]', "size": "2G"},
            r"^layout= describes every namespace: put size= inside",
            KeywordError,
        ),
        (
            {"create_backing": True},
            r"^create_backing=True needs backing= \(the path of the file to create\)$",
            KeywordError,
        ),
        (
            {"backing": "/nonexistent/backing.raw"},
            r"^namespace 1 of nvme0: backing file '/nonexistent/backing\.raw' does not exist",
            KeywordError,
        ),
        (
            {"nbd": "nbd://127.0.0.1:1", "size": "1G"},
            r"an NBD namespace takes its size from the export",
            KeywordError,
        ),
        ({"accel": "fast"}, r"^Argument 'accel' got value 'fast' that cannot be converted to Accel", _ROBOT),
        ({"host_key": "garbage"}, r"^host key 'garbage' is not an SSH public key line", KeywordError),
    ],
)
def test_launch_refuses_bad_arguments_before_anything(
    arguments: dict[str, object],
    message: str,
    error: type[Exception],
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("NVMECHAOS_QEMU", "qemu-that-must-not-be-looked-up")
    library = VmLibrary()
    with pytest.raises(error, match=message):
        robot_run(library, "Launch NVMe VM", name="t", **arguments)
    assert list(Path(str(tmp_path)).iterdir()) == []


def test_align_refuses_what_is_not_a_run_folder_or_clock_samples(tmp_path: Path) -> None:
    library = VmLibrary()
    with pytest.raises(KeywordError, match=r"^fio run folder '/no/such/run' does not exist$"):
        library.run_keyword("Align Fio Logs To Host Clock", ["/no/such/run"], {})
    with pytest.raises(
        KeywordError, match=r"^before is not a list of samples from `Measure Guest Clock`: 'x'$"
    ):
        library.run_keyword("Align Fio Logs To Host Clock", [str(tmp_path), "x"], {})
