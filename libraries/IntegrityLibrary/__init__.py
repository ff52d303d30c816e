"""IntegrityLibrary: drives with and without power-loss protection, power cuts, and the data-integrity
oracle, as Robot Framework keywords."""

from IntegrityLibrary.library import IntegrityLibrary

__all__ = ["IntegrityLibrary"]
