"""Robot Framework glue shared by the keyword libraries (Fio, Vm, Chaos and IntegrityLibrary).

The engine (``nvmechaos``) has no Robot imports; everything the keyword layers need from Robot —
failures without tracebacks, variables, per-test output folders, links that work in log.html and in
pabot's merged log — lives here once.
"""

from nvmechaos_robot.context import RUN_TIMELINE, KeywordContext, KeywordError, fail, safe_name
from nvmechaos_robot.listener import ScopedListener

__all__ = ["RUN_TIMELINE", "KeywordContext", "KeywordError", "ScopedListener", "fail", "safe_name"]
