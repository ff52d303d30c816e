"""The QMP event log: matching, waiting with a cursor, and the timeout message."""

from __future__ import annotations

import threading
import time

import pytest

from nvmechaos.vm.errors import QmpError
from nvmechaos.vm.qmp import EventLog, QmpEvent, matches


def event(name: str, **data: object) -> QmpEvent:
    return QmpEvent(name=name, data=data, monotonic=time.monotonic(), wall=time.time())


def test_matches() -> None:
    data = {"device": "nvme0", "path": "/machine/peripheral/nvme0", "nested": {"offset": 0, "ok": True}}
    assert matches(data, None)
    assert matches(data, {"device": "nvme0"})
    assert matches(data, {"nested.offset": "0", "nested.ok": "true"})
    assert not matches(data, {"device": "nvme1"})
    assert not matches(data, {"missing": "x"})
    assert not matches(data, {"device.deeper": "x"})


def test_wait_finds_earlier_event_once() -> None:
    log = EventLog()
    log.add(event("DEVICE_DELETED", device="nvme0"))
    first = log.wait_for("DEVICE_DELETED", {"device": "nvme0"}, timeout=0.1)
    assert first.data["device"] == "nvme0"
    with pytest.raises(
        QmpError, match=r"no QMP event DEVICE_DELETED matching \{'device': 'nvme0'\} within 0.1 s"
    ):
        log.wait_for("DEVICE_DELETED", {"device": "nvme0"}, timeout=0.1)


def test_wait_with_since_ignores_the_cursor() -> None:
    log = EventLog()
    before = time.monotonic()
    log.add(event("SHUTDOWN"))
    log.wait_for("SHUTDOWN", None, timeout=0.1)
    assert log.wait_for("SHUTDOWN", None, timeout=0.1, since=before).name == "SHUTDOWN"


def test_wait_for_event_from_another_thread() -> None:
    log = EventLog()
    timer = threading.Timer(0.2, lambda: log.add(event("RESUME")))
    timer.start()
    started = time.monotonic()
    found = log.wait_for("RESUME", None, timeout=5)
    assert found.name == "RESUME"
    assert time.monotonic() - started < 2


def test_timeout_names_events_seen() -> None:
    log = EventLog()
    log.add(event("NIC_RX_FILTER_CHANGED"))
    with pytest.raises(QmpError, match=r"events seen: NIC_RX_FILTER_CHANGED"):
        log.wait_for("DEVICE_DELETED", None, timeout=0.05)


def test_events_filter_and_dict() -> None:
    log = EventLog()
    log.add(event("A", x=1))
    log.add(event("B"))
    assert [e.name for e in log.events("A")] == ["A"]
    as_dict = log.events()[0].as_dict()
    assert as_dict["event"] == "A" and as_dict["data"] == {"x": 1}
    assert {"monotonic", "wall", "qemu_time", "session"} <= set(as_dict)
