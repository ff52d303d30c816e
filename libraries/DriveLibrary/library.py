"""The DriveLibrary keyword library: thin keywords over ``nvmechaos.drive``."""

from __future__ import annotations

from DriveLibrary.context import LIBRARY, DriveContext
from DriveLibrary.drives import DriveKeywordsComponent
from nvmechaos_robot import KeywordLibrary

__version__ = "0.1.0"


class DriveLibrary(KeywordLibrary):
    """An emulated SSD that behaves like one, under stock QEMU or fio's nbd engine.

    = The drive model =
    `Start Emulated Drive` starts a drive model served over NBD (our Python NBD server on a unix
    socket in a private 0700 folder). Every byte written is stored (a sparse image); the model
    decides when each request completes and what the drive reports about itself:

    - *geometry*: channels x dies working in parallel, pages striped over the dies, erase blocks,
      over-provisioning; reads wait for their die (program/erase suspend), programs and erases
      queue on it, so IOPS scale with queue depth up to the die count and tenants contend;
    - *write buffer*: writes are acknowledged once they fit and leave it as their programs
      complete: a full buffer stalls writes (the burst cliff);
    - *flash translation*: page-level mapping, greedy garbage collection below a free-block
      reserve (valid pages moved on the dies: GC costs host latency and IOPS), TRIM and
      write-zeroes unmap pages, write amplification counted;
    - *wear*: erase cycles against the rated endurance (``percent_used``), blocks retiring at
      their rating (``avail_spare``), media errors on reads growing with wear;
    - *heat*: the temperature follows NAND activity; above ``throttle_at`` the NAND slows down,
      above ``critical_at`` the temperature bit of the critical warning is set;
    - *durability*: with PLP every acknowledged write survives a power cut; without it only flushed
      (or FUA) data does. The ``liar`` and ``tearing`` personalities are firmware bugs the
      integrity oracle must catch (IntegrityLibrary's power cuts work on these drives).

    = Personalities =
    YAML files under ``variables/drives/`` (``datacenter-tlc``, ``client-qlc``, ``worn``, ``hot``,
    ``liar``, ``tearing``) or a path to your own; any parameter can be overridden per call by its
    name (``program_latency=2ms``). Sizes and times are scaled for a TCG guest: on ``client-qlc``
    the write cliff, GC and a moving ``percent_used`` appear within a minute of random writes.

    = Timeline =
    Every drive event (``gc``, ``buffer_full``, ``thermal_throttle``, ``critical_warning``, each
    ``begin`` and ``end``) goes on the run's timeline as it happens, so ChaosLibrary's impact
    charts shade it; when a VM's namespace is on the drive, its critical warning is raised on the
    VM's NVMe controller too (``nvme smart-log`` in the guest shows it).

    | ${drive} =    Start Emulated Drive    personality=client-qlc    size=256M
    | ${vm} =    Launch NVMe VM    nbd=${drive.uri}
    | ${health} =    Get Drive Health    ${drive}
    | Drive Health Should Be OK    ${drive}

    = Clean-up =
    The library is its own listener: drives started in a test are stopped at its end, those of a
    suite setup at the end of the suite; their servers also die with Robot. Import it before
    VmLibrary's users need the drives, e.g. right after VmLibrary.

    = Importing =
    The library takes no arguments and starts nothing on import:
    | Library    VmLibrary
    | Library    DriveLibrary
    """

    ROBOT_LIBRARY_VERSION = __version__
    OWNER_NAME = LIBRARY
    SCOPE_PREFIX = "drive-"

    def __init__(self) -> None:
        """Import the library; it takes no arguments and starts nothing on import.

        Drive logs go to ``${OUTPUT DIR}/drives/<suite>/<test>/``; private folders (socket,
        scratch image, health and events files) under ``$NVMECHAOS_RUN_DIR`` (default: the
        temporary folder).

        Example:
        | Library    DriveLibrary
        """
        self._ctx = DriveContext()
        super().__init__([DriveKeywordsComponent(self._ctx)])

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope
