"""State the VmLibrary components share: settings, live VMs per scope, output folders, Robot glue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robot.api import logger
from robot.utils import timestr_to_secs

from nvmechaos.vm import Vm
from nvmechaos_robot import KeywordContext, KeywordError, fail, safe_name

__all__ = ["KeywordError", "VmContext", "as_vm", "fail", "flag", "safe_name", "seconds", "whole"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "none", "")


def as_vm(value: object) -> Vm:
    """``value`` if it is a VM handle; else the keyword fails in one line."""
    if not isinstance(value, Vm):
        fail(f"'{value}' is not a VM (use the handle `Launch NVMe VM` returned)")
    return value


def seconds(value: Any, what: str = "timeout") -> float:
    """A Robot time (``30s``, ``2 min``, ``1h 5m``; a bare number is seconds) as positive seconds;
    else the keyword fails in one line naming ``what``."""
    try:
        result = float(timestr_to_secs(value))
    except (ValueError, TypeError):
        fail(f"{what} '{value}' is not a time (use e.g. 30s, 2 min; a bare number is seconds)")
    if result <= 0:
        fail(f"{what} '{value}' is not positive")
    return result


def whole(value: Any, what: str) -> int:
    """A whole number (``2``, ``"2"``); anything else fails the keyword in one line naming ``what``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        fail(f"{what} '{value}' is not a whole number")


def flag(value: Any, what: str) -> bool:
    """Robot's true/false spellings (``True``, ``yes``, ``on``, ``1`` / ``False``, ``no``, ``off``,
    ``0``, ``none``, empty) or a boolean; anything else fails the keyword in one line."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE or value is None:
        return False
    fail(f"{what} '{value}' is not true or false")


class VmContext(KeywordContext):
    """Settings and live VMs; does no work until a keyword needs it."""

    def __init__(self, cache_dir: str | None, boot_timeout: float, memory: int, cpus: int) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.boot_timeout = boot_timeout
        self.memory = memory
        self.cpus = cpus
        self.vms: list[tuple[str, Vm]] = []

    def vm_output_dir(self, name: str) -> Path:
        """OUTPUT DIR/vm/<suite>/<test>/<NN>-<name>: the VM's console, QEMU log and events."""
        return self.test_dir("vm", name)

    def add(self, vm: Vm) -> None:
        self.vms.append((self.scope, vm))

    def close_scope(self, scope: str | None) -> list[Vm]:
        """Close (force-stop, remove run folders) every VM launched in ``scope`` (all when None)."""
        chosen = [vm for s, vm in self.vms if scope is None or s == scope]
        self.vms = [(s, vm) for s, vm in self.vms if not (scope is None or s == scope)]
        running = [vm for vm in chosen if vm.is_running()]
        for vm in chosen:
            try:
                vm.close()
            except Exception as error:  # clean-up must go on for the other VMs
                logger.warn(f"closing VM '{vm.name}' failed: {error}")
        return running
