"""What the DriveLibrary keywords share: the drives the library owns, and the check of a handle."""

from __future__ import annotations

from nvmechaos.drive import EmulatedDrive
from nvmechaos.units import require
from nvmechaos_robot import KeywordContext

#: The name the library owns its drives under (see nvmechaos_robot.OWNER).
LIBRARY = "DriveLibrary"
DRIVE = "an emulated drive (use the handle `Start Emulated Drive` returned)"


class DriveContext(KeywordContext):
    """The running test or suite, and the drives the library owns in it."""

    owner_name = LIBRARY

    def own_drive(self, drive: EmulatedDrive) -> None:
        """Stop ``drive`` (and remove its private folder) when the running test or suite ends."""
        # A drive serves its VMs' disks until its test ends by design: no news when it still runs.
        self.own(drive, f"drive {drive.name}", drive.close)


class DriveKeywords:
    """A component of the library: keywords sharing its :class:`DriveContext`."""

    def __init__(self, context: DriveContext) -> None:
        self.ctx = context


def as_drive(value: object) -> EmulatedDrive:
    """``value`` when it is a drive; else ``'x' is not an emulated drive (...)``."""
    return require(value, EmulatedDrive, "", DRIVE)
