"""The exceptions the engine raises.

Every error the engine raises on purpose derives from :class:`NvmeChaosError`; its message is one
line that says what went wrong and where (file, key, job, command), so the keyword layer can turn it
into a Robot failure as it is.
"""

from __future__ import annotations


class NvmeChaosError(Exception):
    """Base class of every error the engine raises on purpose."""


class FioOutputError(NvmeChaosError):
    """fio's output is missing, truncated or not the JSON fio writes."""


class FioRunError(NvmeChaosError):
    """fio could not be started, was rejected by fio, or ended abnormally."""


class JobFileError(NvmeChaosError):
    """A fio job file is missing, unreadable or malformed, or an override is invalid."""


class ThresholdError(NvmeChaosError):
    """A threshold file or profile is invalid: unknown profile or metric, bad limit."""


class TargetError(NvmeChaosError):
    """The place fio should write to cannot be used (missing directory, not writable)."""
