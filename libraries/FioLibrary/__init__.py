"""FioLibrary: run fio workloads and judge their results, as Robot Framework keywords."""

from FioLibrary.library import FioLibrary

__all__ = ["FioLibrary"]
