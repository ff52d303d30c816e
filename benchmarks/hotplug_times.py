"""Hot-unplug and hot-plug times of an emulated NVMe controller (QEMU q35, ACPI PCI hot-plug).

Boots the built-in guest with one NVMe namespace and repeats, ``--cycles`` times each, an idle
cycle and a cycle with fio running in the guest (4k random reads, QD4, started 1 s before the
unplug): unplug = QMP ``device_del`` until QEMU's ``DEVICE_DELETED``; plug = ``device_add``
until the guest reads the namespace again (``/dev/nvme0n1`` present and its first 4 KiB read,
polled over SSH every 50 ms). Reports min / median / max.

    .venv/bin/python benchmarks/hotplug_times.py [--cycles 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nvmechaos.process import ProcessRegistry
from nvmechaos.vm.faults import hot_plug, hot_unplug
from nvmechaos.vm.machine import launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec, VmSpec

FIO = (
    "setsid fio --name=bg --filename=/dev/nvme0n1 --ioengine=libaio --direct=1 --rw=randread --bs=4k "
    "--iodepth=4 --time_based --runtime=30 --output=/tmp/bg.json </dev/null >/dev/null 2>&1 &"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-hotplug-"))
    times: dict[str, list[float]] = {"idle unplug": [], "idle plug": [], "I/O unplug": [], "I/O plug": []}
    spec = VmSpec(
        name="hotplug-bench", controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=256 << 20),)),)
    )
    vm = launch_vm(spec, work / "vm", registry=ProcessRegistry())
    try:
        vm.wait_until_ready(180)
        log = vm.faults
        ssh = vm.ssh()
        try:
            for cycle in range(args.cycles):
                for mode in ("idle", "I/O"):
                    if mode == "I/O":
                        ssh.run(FIO, timeout=30)
                        time.sleep(1.0)
                        if ssh.run("pidof fio", timeout=30).exit_code != 0:
                            raise SystemExit("fio is not running in the guest")
                    unplug = hot_unplug(vm, "nvme0", log, timeout=20)
                    if mode == "I/O":
                        ssh.run("killall fio 2>/dev/null; sleep 0.2", timeout=30)
                    plug = hot_plug(vm, "nvme0", log, timeout=20, shell=ssh)
                    times[f"{mode} unplug"].append(unplug.seconds)
                    times[f"{mode} plug"].append(plug.seconds)
                    seconds = f"unplug {unplug.seconds:.3f} s, plug {plug.seconds:.3f} s"
                    print(f"  cycle {cycle + 1} {mode:4}: {seconds}", flush=True)
        finally:
            ssh.close()
    finally:
        vm.close()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"QEMU {vm.qemu.version_text}, {vm.accelerator.upper()}, {args.cycles} cycles each")
    print()
    print("| step | min (s) | median (s) | max (s) |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {min(values):.3f} | {statistics.median(values):.3f} | {max(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
