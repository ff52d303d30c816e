"""Injection accuracy through a VM: the injector under the guest's NVMe namespace.

Boots the built-in guest (QEMU, TCG here) with one NVMe namespace served by each NBD injector in
turn, and runs QD1 4k random reads on /dev/nvme0n1 in the guest (fio over SSH, libaio, direct):
baseline, then with the read delay applied for the whole run. Measured added latency = mean
completion latency in the guest with the delay - without. Goal: within ±5 % of the injected delay.

    .venv/bin/python benchmarks/vm_injection_accuracy.py [--delays 10,50,100,200] [--runtime 4]
        [--engines nbdkit,python] [--calibrate]

With ``--calibrate`` the guest's own extra latency for a slow request (its interrupt and wake-up
path, ~0.6 ms under TCG) is measured at 20 ms (median of three) and set as the injector's latency compensation
(``Set Latency Compensation``) before the table is measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _nbdbench import load_average, print_accuracy_table
from nvmechaos.faults import LatencyParams, make_injector
from nvmechaos.process import ProcessRegistry
from nvmechaos.vm.machine import Vm, launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec, VmSpec

FIO = (
    "fio --name=qd1 --filename=/dev/nvme0n1 --ioengine=libaio --direct=1 --rw=randread --bs=4k "
    "--iodepth=1 --time_based --runtime={runtime} --output-format=json"
)


def guest_mean_ms(vm: Vm, runtime: int) -> float:
    ssh = vm.ssh()
    try:
        result = ssh.run(FIO.format(runtime=runtime), timeout=runtime + 60)
    finally:
        ssh.close()
    if result.exit_code != 0:
        raise SystemExit(f"fio in the guest failed: {result.stderr.strip()}")
    text = result.stdout[result.stdout.index("{") :]
    return float(json.loads(text)["jobs"][0]["read"]["clat_ns"]["mean"]) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="10,50,100,200")
    parser.add_argument("--runtime", type=int, default=4)
    parser.add_argument("--engines", default="nbdkit,python")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="first measure the guest's own extra latency at 20 ms and set it as the injector's compensation",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-vm-accuracy-"))
    rows = []
    print(f"load average at start: {load_average()}", flush=True)
    try:
        for engine in args.engines.split(","):
            injector = make_injector(engine, work / f"{engine}.img", 256 << 20)
            injector.start()
            spec = VmSpec(
                name=f"accuracy-{engine}",
                controllers=(ControllerSpec(namespaces=(NamespaceSpec(nbd=injector.uri),)),),
            )
            try:
                vm = launch_vm(spec, work / f"vm-{engine}", registry=ProcessRegistry())
            except BaseException:
                injector.stop()
                raise
            try:
                vm.wait_until_ready(180)
                if args.calibrate:  # median of three, so one noisy run does not set it
                    extras = []
                    for _ in range(3):
                        base = guest_mean_ms(vm, args.runtime)
                        injector.apply(LatencyParams(read=0.02))
                        extras.append(guest_mean_ms(vm, args.runtime) - base - 20.0)
                        injector.clear()
                    extra = statistics.median(extras)
                    injector.set_latency_compensation(min(max(extra, 0.0), 9.0) / 1000)
                    print(f"  {engine}: compensation {extra:.3f} ms", flush=True)
                for delay in (float(d) for d in args.delays.split(",")):
                    injector.clear()
                    base = guest_mean_ms(vm, args.runtime)
                    injector.apply(LatencyParams(read=delay / 1000))
                    spiked = guest_mean_ms(vm, args.runtime)
                    injector.clear()
                    rows.append((engine, delay, base, spiked - base))
                    print(f"  {engine:6} {delay:5.0f} ms -> {spiked - base:8.3f} ms", flush=True)
            finally:
                vm.close()
                injector.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return print_accuracy_table(rows, "guest baseline mean")


if __name__ == "__main__":
    sys.exit(main())
