"""Robot Framework glue shared by the keyword libraries (Fio, Vm, Chaos and IntegrityLibrary).

The engine (``nvmechaos``) has no Robot imports; everything the keyword layers need from Robot lives
here once: the library base with its one error path (:class:`KeywordLibrary`), the one owner of what
the libraries start (:data:`OWNER`), the run's one timeline (:data:`RUN_TIMELINE`), failures without
tracebacks, variables, per-test output folders, links that work in log.html and in pabot's merged log.
"""

from nvmechaos_robot.context import RUN_TIMELINE, KeywordContext, KeywordError, fail, safe_name
from nvmechaos_robot.library import KeywordLibrary, import_arguments
from nvmechaos_robot.listener import ScopedListener
from nvmechaos_robot.owner import OWNER, Owner

__all__ = [
    "OWNER",
    "RUN_TIMELINE",
    "KeywordContext",
    "KeywordError",
    "KeywordLibrary",
    "Owner",
    "ScopedListener",
    "fail",
    "import_arguments",
    "safe_name",
]
