"""The emulated SSD: a drive model (geometry, buffer, FTL/GC, wear, heat) served over NBD.

- :mod:`nvmechaos.drive.personality`: the parameters, from YAML under ``variables/drives``;
- :mod:`nvmechaos.drive.model`: when each request completes, and the drive's health (pure, clocked);
- :mod:`nvmechaos.drive.store`: the data and what of it survives a power cut;
- :mod:`nvmechaos.drive.server`: the NBD server process;
- :mod:`nvmechaos.drive.handle`: a running drive (start, health, events, power).
"""

from nvmechaos.drive.handle import (
    DriveError,
    EmulatedDrive,
    PowerAction,
    next_drive_name,
    start_emulated_drive,
)
from nvmechaos.drive.personality import Personality, PersonalityError, load_personality, shipped_personalities

__all__ = [
    "DriveError",
    "EmulatedDrive",
    "Personality",
    "PersonalityError",
    "PowerAction",
    "load_personality",
    "next_drive_name",
    "shipped_personalities",
    "start_emulated_drive",
]
