"""State the VmLibrary components share: settings, live VMs per scope, output folders, Robot glue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

from robot.api import logger
from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from nvmechaos.errors import NvmeChaosError
from nvmechaos.vm import Vm

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class VmKeywordError(AssertionError):
    """A keyword failure shown as its one-line message, without an exception name or traceback."""

    ROBOT_SUPPRESS_NAME = True


def fail(error: NvmeChaosError | str) -> NoReturn:
    raise VmKeywordError(str(error)) from None


def safe_name(text: str, limit: int = 60) -> str:
    return _UNSAFE.sub("_", text).strip("_")[:limit] or "unnamed"


class VmContext:
    """Settings and live VMs; does no work until a keyword needs it."""

    def __init__(self, cache_dir: str | None, boot_timeout: float, memory: int, cpus: int) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.boot_timeout = boot_timeout
        self.memory = memory
        self.cpus = cpus
        self.scope = ""
        self.vms: list[tuple[str, Vm]] = []
        self._counter: dict[str, int] = {}

    @staticmethod
    def variable(name: str, default: Any = None) -> Any:
        try:
            return BuiltIn().get_variable_value(name, default)
        except RobotNotRunningError:
            return default

    @property
    def output_dir(self) -> Path:
        return Path(self.variable("${OUTPUT DIR}", ".")).resolve()

    def vm_output_dir(self, name: str) -> Path:
        """OUTPUT DIR/vm/<suite>/<test>/<NN>-<name>: the VM's console, QEMU log and events."""
        suite = safe_name(str(self.variable("${SUITE NAME}", "suite")))
        test = safe_name(str(self.variable("${TEST NAME}", "suite-setup")))
        key = f"{suite}/{test}"
        self._counter[key] = self._counter.get(key, 0) + 1
        return self.output_dir / "vm" / suite / test / f"{self._counter[key]:02d}-{safe_name(name)}"

    def link(self, path: Path) -> str:
        """A path relative to log.html, for links in the log."""
        log_file = self.variable("${LOG FILE}", "NONE")
        base = Path(log_file).parent if log_file and log_file != "NONE" else self.output_dir
        if self.variable("${PABOTQUEUEINDEX}") is not None and self.output_dir.parent.name == "pabot_results":
            # A pabot worker writes into OUT/pabot_results/N/; the merged log.html lands in OUT.
            base = self.output_dir.parent.parent
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_uri()

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

    @staticmethod
    def html(message: str) -> None:
        logger.info(message, html=True)
