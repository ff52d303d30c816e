"""State the IntegrityLibrary components share: the drives and writers each test or suite started."""

from __future__ import annotations

from typing import Any

from robot.utils import timestr_to_secs

from nvmechaos.integrity.drive import PowerLossDrive
from nvmechaos.integrity.writer import GuestWriter
from nvmechaos_robot import KeywordContext, fail


def as_bool(value: object, what: str = "value") -> bool:
    """Robot's true/false spellings (``True``, ``yes``, ``on``, ``1`` / ``False``, ``no``, ``off``,
    ``0``, ``none``, empty) or a boolean; anything else fails the keyword in one line naming ``what``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if value is None or text in ("", "false", "no", "off", "0", "none"):
        return False
    fail(f"{what} '{value}' is not true or false")


def as_seconds(value: Any, what: str = "timeout") -> float:
    """A Robot time (``60s``, ``2 min``, ``1 hour``; a bare number is seconds), positive; else the
    keyword fails in one line."""
    try:
        seconds = float(timestr_to_secs(value))
    except (ValueError, TypeError):
        fail(f"{what} '{value}' is not a time (use e.g. 60s, 2 min; a bare number is seconds)")
    if seconds <= 0:
        fail(f"{what} '{value}' is not positive")
    return seconds


def as_count(value: Any, what: str, minimum: int = 0) -> int:
    """A whole number of at least ``minimum``; else the keyword fails in one line."""
    try:
        number = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        fail(f"{what} '{value}' is not a whole number")
    if isinstance(value, bool) or number < minimum:
        fail(f"{what} '{value}' is not a whole number of at least {minimum}")
    return number


def as_vm(value: Any, needs: tuple[str, ...] = ("name", "ssh")) -> Any:
    """``value`` if it looks like a VM handle (has ``needs``); else the keyword fails in one line."""
    if isinstance(value, str) or not all(hasattr(value, attribute) for attribute in needs):
        fail(f"'{value}' is not a VM (use the handle `Launch NVMe VM` returned)")
    return value


class IntegrityContext(KeywordContext):
    """Owns the drives and writers the keywords started, by the test or suite that started them."""

    def __init__(self) -> None:
        super().__init__()
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
