"""Fault injection: injectors that share one interface, schedules that drive them, and the
fault timeline they record (:mod:`nvmechaos.timeline`).

- :mod:`nvmechaos.faults.base`: :class:`Injector` (start, apply, clear, stop, describe, is_alive,
  timeline), and :func:`fault_windows`: when faults of any source were active.
- :mod:`nvmechaos.faults.control`: fault parameters (:class:`LatencyParams`, :class:`ErrorParams`)
  and the control file the NBD servers read.
- :mod:`nvmechaos.faults.nbd`: :class:`NbdkitInjector` and :class:`PythonNbdProxy`.
- :mod:`nvmechaos.faults.schedule`: :class:`Schedule`.
"""

from nvmechaos.faults.base import (
    Clock,
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
    Operation,
    StallParams,
    parse_delay,
    parse_duration,
)
from nvmechaos.faults.nbd import (
    InjectorEngine,
    NbdInjector,
    NbdkitInjector,
    PythonNbdProxy,
    Transport,
    make_injector,
    resolve_engine,
)
from nvmechaos.faults.schedule import Schedule, Window, load_plan, periodic_windows, repeated_fault

__all__ = [
    "Clock",
    "ErrorParams",
    "FaultError",
    "FaultParamError",
    "FaultParams",
    "Injector",
    "InjectorDiedError",
    "InjectorEngine",
    "InjectorStartError",
    "LatencyParams",
    "NbdInjector",
    "NbdkitInjector",
    "Operation",
    "PythonNbdProxy",
    "Schedule",
    "StallParams",
    "Transport",
    "Window",
    "fault_windows",
    "load_plan",
    "make_injector",
    "parse_delay",
    "parse_duration",
    "periodic_windows",
    "repeated_fault",
    "resolve_engine",
]
