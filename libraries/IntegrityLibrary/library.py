"""The IntegrityLibrary keyword library: thin keywords over ``nvmechaos.integrity.drive``,
``nvmechaos.integrity.writer`` and ``nvmechaos.integrity.oracle``."""

from __future__ import annotations

from robotlibcore import DynamicCore

from IntegrityLibrary.context import IntegrityContext
from IntegrityLibrary.power import PowerKeywords
from IntegrityLibrary.verdict import VerdictKeywords
from IntegrityLibrary.writer import WriterKeywords
from nvmechaos_robot import ScopedListener

__version__ = "0.1.0"


class IntegrityLibrary(DynamicCore, ScopedListener):
    """Power cuts on drives with and without power-loss protection, and a data-integrity oracle.

    = Drives =
    `Start Power Loss Drive` serves a raw image over NBD (nbdkit on a unix socket in a private
    folder) for a VM namespace: ``Launch NVMe VM    nbd=${drive.uri}``. Without power-loss
    protection (``plp=False``, the default) writes are acknowledged from a volatile cache (nbdkit's
    ``cache`` filter, writeback mode) and only a flush or a FUA write makes them durable; with it
    (``plp=True``) every acknowledged write is durable. Killing QEMU alone would lose nothing
    (the host page cache keeps QEMU's writes): `Cut Power` kills the drives and QEMU together.

    = The oracle =
    `Start Integrity Writer` runs a small static program in the guest that writes self-describing
    blocks (magic, block number, generation, seed, PRNG payload, checksums) with O_DIRECT and
    reports every acknowledged write and completed flush; the host journals the reports as they
    arrive. After `Cut Power` (and `Restore Power` + ``Restart VM``), `Verify Data Integrity`
    checks exactly the journaled blocks: with PLP every acknowledged write must be there, without
    it every flushed one; unflushed data may be lost (``lost_allowed``) but never torn, stale,
    misplaced or garbage.

    | ${drive} =    Start Power Loss Drive    size=64M    plp=${False}
    | ${vm} =    Launch NVMe VM    nbd=${drive.uri}
    | ${writer} =    Start Integrity Writer    ${vm}    blocks=256    count=1000    flush_every=64
    | Wait For Integrity Writer    ${writer}    finished=${True}
    | Cut Power    ${vm}    ${drive}
    | Restore Power    ${drive}
    | Restart VM    ${vm}
    | ${report} =    Verify Data Integrity    ${writer}    ${drive}

    = Times =
    Timeouts (`Wait For Integrity Writer`) are Robot times: ``60s``, ``2 min``, ``1 hour``; a bare
    number is seconds.

    = Clean-up =
    The library is its own listener: writers and drives started in a test are stopped at its
    end, those started in a suite setup at the end of the suite; nbdkit also dies with Robot.
    Import it after VmLibrary so VMs are stopped before their drives.

    = Importing =
    The library takes no arguments and starts nothing on import; import it after VmLibrary:
    | Library    VmLibrary
    | Library    IntegrityLibrary
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    SCOPE_PREFIX = "integrity-"

    def __init__(self) -> None:
        """Import the library; it takes no arguments and starts nothing on import.

        Import it after VmLibrary, so that at the end of a test the VMs stop before their drives.
        Drive logs and writer journals go to ``${OUTPUT DIR}/integrity/<suite>/<test>/``; private
        folders (sockets, scratch images) under ``$NVMECHAOS_RUN_DIR`` (default: the temporary
        folder).

        Example:
        | Library    VmLibrary
        | Library    IntegrityLibrary
        """
        ScopedListener.__init__(self)
        self._ctx = IntegrityContext()
        DynamicCore.__init__(
            self, [PowerKeywords(self._ctx), WriterKeywords(self._ctx), VerdictKeywords(self._ctx)]
        )

    def scope_changed(self, scope: str) -> None:
        self._ctx.scope = scope

    def release(self, scope: str | None, what: str) -> list[str]:
        """Stop the writers, then the drives, that ``scope`` started."""
        return [f"Clean-up of the integrity library failed: {p}" for p in self._ctx.release(scope)]
