"""ChaosLibrary: inject latency spikes and I/O errors under a workload, as Robot Framework keywords."""

from ChaosLibrary.library import ChaosLibrary

__all__ = ["ChaosLibrary"]
