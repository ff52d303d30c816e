"""Boot-to-ready of the built-in guest: QEMU start -> SSH login -> /dev/nvme0n1 present.

Runs the real engine path (``launch_vm`` + ``Vm.wait_until_ready``, which also checks that fio is
there) N times one after another and prints each boot and the median.

    .venv/bin/python benchmarks/boot_to_ready.py [--runs 5] [--memory 1024] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nvmechaos.guest import GuestRecipe, build_guest
from nvmechaos.vm import Accel, VmSpec, launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory", type=int, default=1024)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--accel", default="auto", choices=[accel.value for accel in Accel])
    args = parser.parse_args()
    started = time.monotonic()
    image = build_guest(GuestRecipe(), cache_dir=args.cache_dir)
    print(f"guest image {image.directory} ({time.monotonic() - started:.2f} s to build or find)")
    spec = VmSpec(
        name="bench",
        memory_mib=args.memory,
        accel=Accel(args.accel),
        controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=1 << 30),)),),
    )
    seconds = []
    with tempfile.TemporaryDirectory(prefix="boot-bench-") as out:
        for run in range(1, args.runs + 1):
            vm = launch_vm(spec, Path(out) / f"run{run}", cache_dir=args.cache_dir)
            try:
                ready = vm.wait_until_ready(timeout=120)
            finally:
                vm.close()
            seconds.append(ready)
            print(f"boot {run}: {ready:.2f} s ({vm.accelerator})", flush=True)
    print(
        f"median of {len(seconds)}: {statistics.median(seconds):.2f} s "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
