"""Fault injection: injectors that share one interface, schedules that drive them, and the
fault timeline they record (:mod:`nvmechaos.timeline`).

- :mod:`nvmechaos.faults.base`: :class:`Injector` (start, apply, clear, stop, describe, is_alive,
  timeline).
- :mod:`nvmechaos.faults.control`: fault parameters (:class:`LatencyParams`, :class:`ErrorParams`)
  and the control file the NBD servers read.
- :mod:`nvmechaos.faults.nbd`: :class:`NbdkitInjector` and :class:`PythonNbdProxy`.
- :mod:`nvmechaos.faults.schedule`: :class:`Schedule`.
"""

from nvmechaos.faults.base import (
    FaultError,
    Injector,
    InjectorDiedError,
    InjectorStartError,
    fault_windows,
)
from nvmechaos.faults.control import (
    ErrorParams,
    FaultParamError,
    FaultParams,
    LatencyParams,
    parse_duration,
)
from nvmechaos.faults.nbd import NbdInjector, NbdkitInjector, PythonNbdProxy, make_injector
from nvmechaos.faults.schedule import Schedule, Window, load_plan, periodic_windows

__all__ = [
    "ErrorParams",
    "FaultError",
    "FaultParamError",
    "FaultParams",
    "Injector",
    "InjectorDiedError",
    "InjectorStartError",
    "LatencyParams",
    "NbdInjector",
    "NbdkitInjector",
    "PythonNbdProxy",
    "Schedule",
    "Window",
    "fault_windows",
    "load_plan",
    "make_injector",
    "parse_duration",
    "periodic_windows",
]
