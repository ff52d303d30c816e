"""DriveLibrary: an emulated SSD (drive model served over NBD) as Robot Framework keywords."""

from DriveLibrary.library import DriveLibrary

__all__ = ["DriveLibrary"]
