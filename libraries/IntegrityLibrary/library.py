"""The IntegrityLibrary keyword library: thin keywords over ``nvmechaos.integrity`` (``drive``,
``writer``, ``oracle``, ``verdict``)."""

from __future__ import annotations

from IntegrityLibrary.context import LIBRARY, IntegrityContext
from IntegrityLibrary.power import PowerKeywords
from IntegrityLibrary.verdict import VerdictKeywords
from IntegrityLibrary.writer import WriterKeywords
from nvmechaos_robot import KeywordLibrary

__version__ = "0.1.0"


class IntegrityLibrary(KeywordLibrary):
    """Power cuts on drives with and without power-loss protection, and a data-integrity oracle.

    = Drives =
    `Start Power Loss Drive` starts an emulated SSD (the drive model of DriveLibrary, served over
    NBD on a unix socket in a private folder) for a VM namespace: ``Launch NVMe VM
    nbd=${drive.uri}``. Without power-loss protection (``plp=False``, the default ``client-qlc``
    personality) writes are acknowledged from a volatile cache and only a flush or a FUA write
    makes them durable; with it (``plp=True``) every acknowledged write is durable. The firmware-bug
    personalities ``liar`` (flush acknowledged, data not durable) and ``tearing`` (512-byte
    power-fail atomicity: torn 4 KiB blocks) are drives the oracle must fail. Killing QEMU alone
    would lose nothing (the host page cache keeps QEMU's writes): `Cut Power` kills the drives and
    QEMU together.

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

    = Arguments =
    Timeouts (`Wait For Integrity Writer`) are Robot times: ``60s``, ``2 min``, ``1 hour``; a bare
    number is seconds. Flags (``plp``, ``finished``) are true or false, counts whole numbers, and a
    timeline's ``action`` one of `PowerAction`: Robot converts them before the keyword runs, so a
    bad value fails before anything starts. Handles are the ones `Start Power Loss Drive`,
    `Start Integrity Writer` and ``Launch NVMe VM`` return.

    = Clean-up =
    The library is its own listener: writers and drives started in a test are stopped at its
    end, those started in a suite setup at the end of the suite, each writer before the drives
    started before it; drive servers also die with Robot. A writer still running then is named in a
    warning. Import it after VmLibrary so VMs are stopped before their drives.

    = Importing =
    The library takes no arguments and starts nothing on import; import it after VmLibrary:
    | Library    VmLibrary
    | Library    IntegrityLibrary
    """

    ROBOT_LIBRARY_VERSION = __version__
    OWNER_NAME = LIBRARY
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
        self._ctx = IntegrityContext()
        super().__init__([PowerKeywords(self._ctx), WriterKeywords(self._ctx), VerdictKeywords(self._ctx)])

    def scope_changed(self, scope: str) -> None:
        # Drives and writers are owned, and drives' servers registered, under the running test or suite.
        self._ctx.scope = scope
