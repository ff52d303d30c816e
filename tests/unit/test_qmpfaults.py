"""Unit tests of the QMP faults engine against a fake VM (the QMP traffic it sends, its errors)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from nvmechaos.vm.devices import ControllerHandle, NamespaceHandle
from nvmechaos.vm.errors import QmpError
from nvmechaos.vm.faults import (
    HotplugError,
    ThrottleError,
    ThrottleLimits,
    fault_channel,
    get_throttle,
    hot_plug,
    hot_unplug,
    namespaces_of,
    set_throttle,
    throttle,
)
from nvmechaos.vm.qmp import QmpEvent


def namespace(node: str, nsid: int = 1) -> NamespaceHandle:
    return NamespaceHandle(nsid, node, f"{node}-file", 1 << 28, "raw", None, None, None, 512)


@dataclass
class Result:
    stdout: str
    exit_code: int = 0


@dataclass
class FakeShell:
    answers: list[str]
    closed: bool = False

    def run(self, command: str, timeout: float = 30.0) -> Result:
        assert "NVMECHAOS0000" in command
        return Result(self.answers.pop(0) if self.answers else "")

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeVm:
    name: str = "fake"
    controllers: tuple[ControllerHandle, ...] = (
        ControllerHandle("nvme0", "rp0", 1, 1, "NVMECHAOS0000", (namespace("nvme0n1"),)),
    )
    calls: list[tuple[str, Any]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    deleted: bool = True
    nodes: list[str] = field(default_factory=list)

    @property
    def device_ids(self) -> list[str]:
        return [c.id for c in self.controllers]

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None, timeout: float = 30.0) -> Any:
        self.calls.append((command, arguments))
        if command in self.refuse:
            raise QmpError(f"QMP '{command}' failed: GenericError: {self.refuse[command]}")
        if command == "query-named-block-nodes":
            return [{"node-name": n} for n in self.nodes]
        if command == "blockdev-add":
            assert arguments is not None
            self.nodes.append(arguments["node-name"])
        if command == "qom-get":
            return {"iops-total": 7, "bps-read": 0}
        return {}

    def wait_for_event(
        self,
        name: str,
        match: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        since: float | None = None,
    ) -> QmpEvent:
        if not self.deleted:
            raise QmpError("no event")
        assert since is not None
        return QmpEvent(name, dict(match or {}), since + 0.25, 1.0)

    def is_running(self) -> bool:
        return True

    def console_tail(self, lines: int = 8) -> str:
        return "tail"


def test_unplug_records_sent_and_deleted() -> None:
    vm, log = FakeVm(), fault_channel("fake")
    result = hot_unplug(vm, "nvme0", log)  # type: ignore[arg-type]
    assert vm.calls == [("device_del", {"id": "nvme0"})]
    assert result.seconds == pytest.approx(0.25)
    assert [(e.kind, e.action) for e in log.events] == [("hotplug", "apply"), ("hotplug", "deleted")]
    assert log.events[0].source == "qmp:fake"


def test_unplug_errors() -> None:
    log = fault_channel("fake")
    with pytest.raises(HotplugError, match=r"no NVMe controller 'nvme7' \(controllers: nvme0\)"):
        hot_unplug(FakeVm(), "nvme7", log)  # type: ignore[arg-type]
    with pytest.raises(HotplugError, match="GenericError: Device 'nvme0' not found"):
        hot_unplug(FakeVm(refuse={"device_del": "Device 'nvme0' not found"}), "nvme0", log)  # type: ignore[arg-type]
    with pytest.raises(HotplugError, match=r"was not unplugged: no DEVICE_DELETED within 0\.5 s"):
        hot_unplug(FakeVm(deleted=False), "nvme0", log, timeout=0.5)  # type: ignore[arg-type]
    assert log.events[-1].action == "timeout"


def test_plug_waits_until_the_namespace_reads() -> None:
    vm, log = FakeVm(), fault_channel("fake")
    shell = FakeShell(["", "", "/dev/nvme0n1 1\n"])
    result = hot_plug(vm, "nvme0", log, shell=shell, poll=0.001)  # type: ignore[arg-type]
    assert vm.calls == [
        (
            "device_add",
            {"driver": "nvme", "id": "nvme0", "bus": "rp0", "serial": "NVMECHAOS0000", "drive": "nvme0n1"},
        )
    ]
    assert result.guest_devices == ("/dev/nvme0n1",)
    assert [e.action for e in log.events] == ["plug", "clear"]
    assert not shell.closed  # the caller's connection stays open


def test_plug_that_never_comes_back() -> None:
    with pytest.raises(
        HotplugError, match=r"did not come back.*within 0.05 s after device_add; console: tail"
    ):
        hot_plug(FakeVm(), "nvme0", fault_channel("fake"), timeout=0.05, shell=FakeShell([]), poll=0.01)  # type: ignore[arg-type]


def test_plug_refuses_a_multi_namespace_controller() -> None:
    two = ControllerHandle("nvme0", "rp0", 1, 1, "S", (namespace("nvme0n1"), namespace("nvme0n2", 2)))
    vm = FakeVm(controllers=(two,))
    with pytest.raises(HotplugError, match="has 2 namespaces: QEMU cannot plug nvme-ns"):
        hot_plug(vm, "nvme0", fault_channel("fake"), shell=FakeShell([]))  # type: ignore[arg-type]
    assert vm.calls == []


def test_throttle_inserts_the_node_once_and_sends_every_limit() -> None:
    vm, log = FakeVm(), fault_channel("fake")
    assert set_throttle(vm, "nvme0", ThrottleLimits(iops_total=200), log) == ["tg-nvme0n1"]  # type: ignore[arg-type]
    set_throttle(vm, "nvme0n1", ThrottleLimits(), log)  # type: ignore[arg-type]
    commands = [c for c, _ in vm.calls]
    assert commands.count("blockdev-reopen") == 1 and commands.count("object-add") == 1
    reopen = dict(vm.calls)["blockdev-reopen"]
    assert reopen == {
        "options": [{"driver": "raw", "node-name": "nvme0n1", "file": "throttle-nvme0n1", "size": 1 << 28}]
    }
    limits = [a["value"] for c, a in vm.calls if c == "qom-set"]
    assert limits[0] == {
        "iops-total": 200,
        "iops-read": 0,
        "iops-write": 0,
        "bps-total": 0,
        "bps-read": 0,
        "bps-write": 0,
    }
    assert not any(limits[1].values())
    assert [(e.action, dict(e.params)) for e in log.events] == [
        ("apply", {"device": "nvme0", "iops-total": 200}),
        ("clear", {"device": "nvme0n1"}),
    ]
    assert get_throttle(vm, "nvme0") == {
        "nvme0n1": {
            "iops-total": 7,
            "iops-read": 0,
            "iops-write": 0,
            "bps-total": 0,
            "bps-read": 0,
            "bps-write": 0,
        }
    }  # type: ignore[arg-type]


def test_throttle_errors() -> None:
    with pytest.raises(ThrottleError, match="negative"):
        ThrottleLimits(iops_total=-1)
    with pytest.raises(ThrottleError, match="cannot be combined"):
        ThrottleLimits(bps_total=1, bps_write=2)
    with pytest.raises(ThrottleError, match=r"no NVMe controller or namespace 'x' \(known: nvme0, nvme0n1\)"):
        namespaces_of(FakeVm(), "x")  # type: ignore[arg-type]
    vm = FakeVm(refuse={"qom-set": "bps/iops/max values must be within [0, 1000000000000000]"})
    with pytest.raises(
        ThrottleError, match=r"QEMU refused throttle limits iops-total 5.*GenericError: bps/iops"
    ):
        set_throttle(vm, "nvme0/1", ThrottleLimits(iops_total=5), fault_channel("fake"))  # type: ignore[arg-type]
    assert ThrottleLimits(iops_read=3, bps_write=4).describe() == "iops-read 3, bps-write 4"


def test_limits_as_a_keyword_takes_them() -> None:
    limits = ThrottleLimits.parse(iops_read=500, bps_write="10M", iops=None, bps="NONE")
    assert limits.as_qmp() == {
        "iops-total": 0,
        "iops-read": 500,
        "iops-write": 0,
        "bps-total": 0,
        "bps-read": 0,
        "bps-write": 10 << 20,
    }
    assert ThrottleLimits.parse(iops=0, bps="").is_unlimited
    for arguments, message in (
        ({"iops": "lots"}, r"^iops 'lots' is not a whole number$"),
        ({"bps": "fast"}, r"^bps 'fast' is not a size per second$"),
        ({"iops_write": -5}, r"^iops_write '-5' is negative$"),
        ({"iops": 100, "iops_read": 50}, r"^iops \(total\) cannot be combined with iops_read/iops_write$"),
    ):
        with pytest.raises(ThrottleError, match=message):
            ThrottleLimits.parse(**arguments)  # type: ignore[arg-type]


def test_a_throttle_must_limit_something() -> None:
    vm = FakeVm()
    with pytest.raises(
        ThrottleError,
        match=r"^no throttle limit given \(use iops=, bps=, iops_read=, \.\.\.; or Clear IO Throttle\)$",
    ):
        throttle(vm, "nvme0", ThrottleLimits(), fault_channel("fake"))  # type: ignore[arg-type]
    assert vm.calls == []
