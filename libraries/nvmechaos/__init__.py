"""nvmechaos: the engine behind the NVMe chaos and performance keyword libraries.

Everything in this package is plain, typed Python with no Robot Framework imports, so it can be
unit-tested on its own and reused outside Robot. The keyword libraries (``FioLibrary`` and friends)
are thin layers that convert arguments, log, and call into it.
"""

from nvmechaos.errors import NvmeChaosError

__all__ = ["NvmeChaosError"]
