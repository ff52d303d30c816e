"""What the IntegrityLibrary components share: the running test or suite, the drives and writers the
library owns (on the one :data:`~nvmechaos_robot.OWNER`), and the checks of their handles."""

from __future__ import annotations

from nvmechaos.drive import EmulatedDrive
from nvmechaos.integrity.writer import GuestWriter
from nvmechaos.units import require
from nvmechaos_robot import OWNER, KeywordContext

#: The name the library owns its drives and writers under.
LIBRARY = "IntegrityLibrary"
DRIVE = "a drive (use the handle `Start Power Loss Drive` returned)"
WRITER = "an integrity writer (use the handle `Start Integrity Writer` returned)"


class IntegrityContext(KeywordContext):
    """The running test or suite (``scope``), and what the library started in it (stopped newest
    first when it ends: a writer before its drive)."""

    owner_name = LIBRARY

    def own_drive(self, drive: EmulatedDrive) -> None:
        """Stop ``drive`` (and remove its private folder) when the running test or suite ends."""
        # A drive powers its VM's disks until its test ends by design (no keyword stops it): finding
        # it still powered then is no news, so it is never reported as left running.
        self.own(drive, f"drive {drive.name}", drive.close)

    def own_writer(self, writer: GuestWriter) -> None:
        """Stop ``writer`` when the running test or suite ends; a writer still writing then is news."""
        self.own(
            writer,
            f"integrity writer in {writer.vm_name}",
            lambda: writer.stop(timeout=2.0),
            lambda: writer.running,
        )

    @staticmethod
    def drives() -> list[EmulatedDrive]:
        """The drives the library started and still owns, oldest first."""
        return [d for d in OWNER.things(LIBRARY, EmulatedDrive) if isinstance(d, EmulatedDrive)]


class IntegrityKeywords:
    """A component of the library: keywords sharing its :class:`IntegrityContext`."""

    def __init__(self, context: IntegrityContext) -> None:
        self.ctx = context


def as_drive(value: object) -> EmulatedDrive:
    """``value`` when it is a drive; else ``'x' is not a drive (...)``, as the suites know it."""
    return require(value, EmulatedDrive, "", DRIVE)


def as_writer(value: object) -> GuestWriter:
    """``value`` when it is an integrity writer; else ``'x' is not an integrity writer (...)``."""
    return require(value, GuestWriter, "", WRITER)
