"""State the IntegrityLibrary components share: the drives and writers each test or suite started."""

from __future__ import annotations

from nvmechaos.faults.base import Timeline
from nvmechaos.faults.guestwriter import GuestWriter
from nvmechaos.faults.powerloss import PowerLossDrive
from nvmechaos_robot import KeywordContext, fail


def as_bool(value: object) -> bool:
    """Robot's spellings of false ("false", "no", "off", "0", "none", "") and Python truth otherwise."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "off", "0", "none")
    return bool(value)


class IntegrityContext(KeywordContext):
    """Owns the drives and writers the keywords started, by the test or suite that started them."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline = Timeline()
        self.drives: list[tuple[str, PowerLossDrive]] = []
        self.writers: list[tuple[str, GuestWriter]] = []
        self.counter = 0

    def release(self, scope: str | None) -> list[str]:
        """Stop the writers, then the drives, of ``scope`` (all when None); return what went wrong."""
        problems: list[str] = []
        writers = [w for s, w in self.writers if scope is None or s == scope]
        self.writers = [(s, w) for s, w in self.writers if not (scope is None or s == scope)]
        for writer in writers:
            try:
                writer.stop(timeout=2.0)
            except Exception as error:
                problems.append(f"writer in {writer.vm_name}: {error}")
        drives = [d for s, d in self.drives if scope is None or s == scope]
        self.drives = [(s, d) for s, d in self.drives if not (scope is None or s == scope)]
        for drive in drives:
            try:
                drive.close()
            except Exception as error:
                problems.append(f"drive {drive.name}: {error}")
        return problems

    @staticmethod
    def drive(value: object) -> PowerLossDrive:
        if not isinstance(value, PowerLossDrive):
            fail(f"'{value}' is not a drive (use the handle `Start Power Loss Drive` returned)")
        return value

    @staticmethod
    def writer(value: object) -> GuestWriter:
        if not isinstance(value, GuestWriter):
            fail(f"'{value}' is not an integrity writer (use the handle `Start Integrity Writer` returned)")
        return value
