"""nbdkit Python plugin: a file served over NBD with live-changeable delays and errors.

Run by :class:`nvmechaos.faults.nbd.NbdkitInjector` as
``nbdkit python nbdkit_plugin.py file=PATH size=BYTES control=PATH``. Before each request it checks
the control file (see :mod:`nvmechaos.faults.control`) and sleeps and/or fails the request as it
says. ``time.sleep`` releases the GIL and the thread model is parallel, so concurrent requests
are delayed concurrently, as on a real device.

This file runs inside nbdkit's embedded interpreter, not in our package: it loads
``controlfile.py`` from its own folder by path and imports nothing else of ours.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import Any

import nbdkit  # type: ignore[import-not-found]

_spec = importlib.util.spec_from_file_location(
    "nvmechaos_fault_control", os.path.join(os.path.dirname(os.path.abspath(__file__)), "controlfile.py")
)
assert _spec is not None and _spec.loader is not None
_control = importlib.util.module_from_spec(_spec)
sys.modules["nvmechaos_fault_control"] = _control
_spec.loader.exec_module(_control)

API_VERSION = 2

_config: dict[str, str] = {}
_state: dict[str, Any] = {}  # reader, fd, size: set once by config_complete
_ZERO_CHUNK = bytes(1 << 20)


def config(key: str, value: str) -> None:
    if key not in ("file", "size", "control"):
        raise RuntimeError(f"unknown parameter {key}")
    _config[key] = value


def config_complete() -> None:
    if "file" not in _config or "control" not in _config:
        raise RuntimeError("file= and control= are required")
    fd = os.open(_config["file"], os.O_RDWR)
    _state["fd"] = fd
    _state["size"] = int(_config["size"]) if "size" in _config else os.fstat(fd).st_size
    _state["reader"] = _control.ControlReader(_config["control"])
    _state["sleeper"] = _control.Sleeper()


def thread_model() -> int:
    return int(nbdkit.THREAD_MODEL_PARALLEL)


def open(readonly: bool) -> int:
    return 1


def get_size(h: int) -> int:
    return int(_state["size"])


def can_write(h: int) -> bool:
    return True


def can_flush(h: int) -> bool:
    return True


def can_trim(h: int) -> bool:
    return True


def can_zero(h: int) -> bool:
    return True


def can_fua(h: int) -> int:
    return int(nbdkit.FUA_NATIVE)


def can_multi_conn(h: int) -> bool:
    return True


def _fault(op: str) -> None:
    arrived = time.monotonic()
    delay, err = _state["reader"].current().decide(op)
    if delay > 0:
        _state["sleeper"].sleep_until(arrived + delay)
    if err:
        nbdkit.set_error(err)
        raise OSError(err, f"injected {op} error")


def pread(h: int, buf: bytearray, offset: int, flags: int) -> None:
    _fault("read")
    done = os.preadv(_state["fd"], [buf], offset)
    if done < len(buf):  # beyond the end of a shorter file: zeros
        memoryview(buf)[done:] = bytes(len(buf) - done)


def pwrite(h: int, buf: bytes, offset: int, flags: int) -> None:
    _fault("write")
    os.pwrite(_state["fd"], buf, offset)
    if flags & nbdkit.FLAG_FUA:
        os.fdatasync(_state["fd"])


def flush(h: int, flags: int) -> None:
    _fault("flush")
    os.fdatasync(_state["fd"])


def trim(h: int, count: int, offset: int, flags: int) -> None:
    _fault("trim")  # trim is advisory: nothing to discard in a plain file we keep simple


def zero(h: int, count: int, offset: int, flags: int) -> None:
    _fault("zero")
    while count > 0:
        chunk = min(count, len(_ZERO_CHUNK))
        os.pwrite(_state["fd"], _ZERO_CHUNK[:chunk], offset)
        offset += chunk
        count -= chunk
    if flags & nbdkit.FLAG_FUA:
        os.fdatasync(_state["fd"])
