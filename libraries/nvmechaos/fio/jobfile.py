"""fio job files: find them, apply overrides, and write the job file exactly as it will run.

A job file is kept line by line (comments included) so the file saved next to the results reads like
the original with the overrides applied. An override ``key=value`` sets the option for every job: it
is removed from every section and written once into a ``[global]`` section ahead of all jobs. An
override ``section.key=value`` changes one section only. A value of None removes the option.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nvmechaos.errors import JobFileError

# fio accepts several names for the options users override most; an override of one replaces all.
_ALIASES: dict[str, str] = {"readwrite": "rw", "blocksize": "bs", "timeout": "runtime"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")


def _canonical(key: str) -> str:
    return _ALIASES.get(key.lower(), key.lower())


@dataclass
class _Section:
    name: str
    lines: list[str] = field(default_factory=list)

    def remove(self, key: str) -> None:
        wanted = _canonical(key)
        self.lines = [line for line in self.lines if _option_name(line) != wanted]

    def has(self, key: str) -> bool:
        wanted = _canonical(key)
        return any(_option_name(line) == wanted for line in self.lines)


def _option_name(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped[0] in ";#":
        return None
    return _canonical(stripped.split("=", 1)[0].strip())


def _section_value(section: _Section, key: str) -> str | None:
    wanted = _canonical(key)
    found: str | None = None
    for line in section.lines:
        if _option_name(line) == wanted:
            parts = line.split("=", 1)
            found = parts[1].strip() if len(parts) == 2 else ""
    return found


def _option_line(key: str, value: object) -> str:
    if isinstance(value, bool):
        # fio spells booleans as a bare flag or 0, never True/False.
        value = "" if value else "0"
    if value is not None and not isinstance(value, str | int | float | Path):
        # A list or dict would be written as Python shows it ("['4k', '8k']"), which fio misreads.
        raise JobFileError(
            f"override '{key}' has a value of type {type(value).__name__}, not text or a number"
        )
    text = "" if value is None else str(value)
    if "\n" in text or "\r" in text:
        raise JobFileError(f"override '{key}' has a line break in its value")
    return key if text == "" else f"{key}={text}"


@dataclass
class JobFile:
    """A parsed fio job file (see the module docstring)."""

    source: Path
    preamble: list[str]
    sections: list[_Section]

    @classmethod
    def load(cls, path: Path) -> JobFile:
        """Read and split ``path`` into sections.

        Raises:
            JobFileError: the file is missing or unreadable, or defines no job.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise JobFileError(f"fio job file '{path}' does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise JobFileError(f"cannot read fio job file '{path}': {error}") from None
        preamble: list[str] = []
        sections: list[_Section] = []
        for line in text.splitlines():
            match = _SECTION.match(line)
            if match:
                sections.append(_Section(match.group("name").strip()))
            elif sections:
                sections[-1].lines.append(line)
            else:
                preamble.append(line)
        if not any(section.name != "global" for section in sections):
            raise JobFileError(
                f"fio job file '{path}' defines no job (no [name] section other than [global])"
            )
        return cls(source=path, preamble=preamble, sections=sections)

    @property
    def job_names(self) -> list[str]:
        return [section.name for section in self.sections if section.name != "global"]

    def get(self, key: str, section: str | None = None) -> str | None:
        """Return the last value of ``key`` in ``section`` (or anywhere), None when unset."""
        found: str | None = None
        for candidate in self.sections:
            if section is None or candidate.name == section:
                found = _section_value(candidate, key) if candidate.has(key) else found
        return found

    def effective(self, key: str, job: str) -> str | None:
        """The value ``key`` has for ``job``: its own, else the last [global] before it sets."""
        value: str | None = None
        for section in self.sections:
            if section.name == "global":
                value = _section_value(section, key) if section.has(key) else value
            elif section.name == job:
                return _section_value(section, key) if section.has(key) else value
        return value

    def values(self, key: str) -> list[str]:
        """Every value ``key`` has in the file, one per section that sets it."""
        return [v for s in self.sections if (v := self.get(key, s.name)) is not None]

    def apply(self, overrides: Mapping[str, object]) -> None:
        """Apply overrides in place (see the module docstring).

        Raises:
            JobFileError: an override key is not an option name, or names a section that does not exist.
        """
        for raw_key, value in overrides.items():
            section_name, _, key = raw_key.rpartition(".")
            if not _KEY.match(key):
                raise JobFileError(f"override '{raw_key}' is not a fio option name")
            if section_name:
                targets = [s for s in self.sections if s.name == section_name]
                if not targets:
                    raise JobFileError(
                        f"override '{raw_key}': {self.source} has no job '{section_name}' "
                        f"(jobs: {', '.join(self.job_names)})"
                    )
                for section in targets:
                    section.remove(key)
                    if value is not None:
                        section.lines.insert(0, _option_line(key, value))
                continue
            for section in self.sections:
                section.remove(key)
            if value is not None:
                self._leading_global().lines.append(_option_line(key, value))

    def escape_drive_letters(self) -> None:
        """Escape the colon of Windows drive letters in every ``filename``/``directory`` value, so fio
        reads ``C:\\data\\file`` as one path rather than ``C`` and ``\\data\\file``."""
        for section in self.sections:
            for number, line in enumerate(section.lines):
                if _option_name(line) in PATH_OPTIONS and "=" in line:
                    key, value = line.split("=", 1)
                    escaped = join_fio_paths(split_fio_paths(value, windows=True))
                    section.lines[number] = f"{key.rstrip()}={escaped}"

    def set_defaults(self, options: Mapping[str, object]) -> None:
        """Set options that the file does not set anywhere (ours yield to the user's)."""
        missing = {k: v for k, v in options.items() if not any(s.has(k) for s in self.sections)}
        for key, value in missing.items():
            self._leading_global().lines.append(_option_line(key, value))

    def _leading_global(self) -> _Section:
        if self.sections and self.sections[0].name == "global":
            return self.sections[0]
        section = _Section("global", ["; added by nvmechaos for run-wide options"])
        self.sections.insert(0, section)
        return section

    def render(self) -> str:
        lines = list(self.preamble)
        for section in self.sections:
            lines.append(f"[{section.name}]")
            lines.extend(section.lines)
        return "\n".join(lines) + "\n"


# A drive letter ("C:") as the start of a Windows path, alone or after a \\?\ or \\.\ prefix.
_DRIVE = re.compile(r"(?:\\\\[?.]\\)?[A-Za-z]")
PATH_OPTIONS = ("filename", "directory")


def split_fio_paths(value: str, windows: bool = False) -> list[str]:
    """The paths in a ``filename=`` or ``directory=`` value, split as fio splits them.

    fio separates paths with ``:`` and reads ``\\:`` as a colon that belongs to the path (the
    backslash is dropped); empty names are skipped. On Windows (``windows``) the colon of a drive
    letter belongs to its path even when it is not escaped: ``C:\\data\\file``, ``C:/data`` and
    ``\\\\?\\C:\\data`` are one path each, as are device paths such as ``\\\\.\\PhysicalDrive1``.
    """
    paths: list[str] = []
    current: list[str] = []
    text = value.strip()
    for index, char in enumerate(text):
        if char != ":":
            current.append(char)
            continue
        if current and current[-1] == "\\":
            current[-1] = ":"
            continue
        following = text[index + 1 : index + 2]
        if windows and following in ("", "\\", "/") and _DRIVE.fullmatch("".join(current)):
            current.append(":")
            continue
        paths.append("".join(current))
        current = []
    paths.append("".join(current))
    return [path for path in paths if path]


def join_fio_paths(paths: Iterable[str]) -> str:
    """Paths as one ``filename=``/``directory=`` value: ``:`` between them, colons in them escaped."""
    return ":".join(path.replace(":", "\\:") for path in paths)


def find_job_file(job: str | Path, search_dirs: Iterable[Path]) -> Path:
    """Resolve ``job``: a path as given, else ``NAME`` or ``NAME.fio`` in one of ``search_dirs``.

    Raises:
        JobFileError: no such file, with the places that were searched.
    """
    candidate = Path(job)
    if candidate.is_file():
        return candidate.resolve()
    tried: list[str] = [str(candidate)]
    if not candidate.is_absolute():
        for directory in search_dirs:
            for name in (candidate, candidate.with_name(candidate.name + ".fio")):
                path = directory / name
                tried.append(str(path))
                if path.is_file():
                    return path.resolve()
    raise JobFileError(f"fio job file '{job}' not found (looked for {', '.join(tried)})")
