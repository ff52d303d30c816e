"""Throttle accuracy: IOPS and bandwidth fio measures in the guest under a QEMU throttle group.

Boots the built-in guest with one NVMe namespace, measures the unthrottled rate, then for each
limit sets it live (``Set IO Throttle``'s engine: throttle node inserted with ``blockdev-reopen``,
limits by ``qom-set``) and runs fio in the guest for ``--runtime`` seconds: 4k random reads at
QD8 for IOPS limits, 64k sequential reads at QD4 for bandwidth limits. Measured = mean of fio's
per-second log without its first window (the throttle's burst bucket drains there). Goal: within
±5 % of the limit.

    .venv/bin/python benchmarks/throttle_accuracy.py [--iops 100,300,1000,2000] [--bps 4M,16M]
        [--runtime 6]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from nvmechaos.process import ProcessRegistry
from nvmechaos.vm.faults import ThrottleLimits, set_throttle
from nvmechaos.vm.machine import Vm, launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec, VmSpec, parse_size

FIO = (
    "cd /tmp && rm -f b_*.log && fio --name=b --filename=/dev/nvme0n1 --ioengine=libaio --direct=1 "
    "--rw={rw} --bs={bs} --iodepth={qd} --time_based --runtime={runtime} --write_iops_log=b "
    "--write_bw_log=b --log_avg_msec=1000 >/dev/null && cat b_{kind}.1.log"
)


def guest_rate(vm: Vm, kind: str, runtime: int) -> float:
    """Mean per-second IOPS (kind iops) or bytes/s (kind bw) without the first window."""
    rw, bs, qd = ("randread", "4k", 8) if kind == "iops" else ("read", "64k", 4)
    ssh = vm.ssh()
    try:
        result = ssh.run(FIO.format(rw=rw, bs=bs, qd=qd, runtime=runtime, kind=kind), timeout=runtime + 60)
    finally:
        ssh.close()
    if result.exit_code != 0:
        raise SystemExit(f"fio in the guest failed: {result.stderr.strip()}")
    values = [float(line.split(",")[1]) for line in result.stdout.splitlines() if line.strip()]
    kept = values[1:] if len(values) > 2 else values
    return statistics.fmean(kept) * (1024.0 if kind == "bw" else 1.0)  # bw logs are KiB/s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iops", default="100,300,1000,2000")
    parser.add_argument("--bps", default="4M,16M")
    parser.add_argument("--runtime", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-throttle-"))
    spec = VmSpec(
        name="throttle-bench", controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=256 << 20),)),)
    )
    vm = launch_vm(spec, work / "vm", registry=ProcessRegistry())
    rows: list[tuple[str, float, float]] = []
    try:
        vm.wait_until_ready(180)
        log = vm.faults
        set_throttle(vm, "nvme0", ThrottleLimits(), log)  # insert the throttle node, unlimited
        free_iops = guest_rate(vm, "iops", args.runtime)
        free_bw = guest_rate(vm, "bw", args.runtime)
        print(f"  unthrottled: {free_iops:.0f} IOPS (4k QD8), {free_bw / 1e6:.1f} MB/s (64k QD4)", flush=True)
        for text in filter(None, args.iops.split(",")):
            limit = float(text)
            set_throttle(vm, "nvme0", ThrottleLimits(iops_total=int(limit)), log)
            measured = guest_rate(vm, "iops", args.runtime)
            rows.append(("IOPS", limit, measured))
            print(f"  iops {limit:g}: {measured:.1f}", flush=True)
        for text in filter(None, args.bps.split(",")):
            limit = float(parse_size(text, "bps"))
            set_throttle(vm, "nvme0", ThrottleLimits(bps_total=int(limit)), log)
            measured = guest_rate(vm, "bw", args.runtime)
            rows.append(("bytes/s", limit, measured))
            print(f"  bps {text}: {measured:.0f}", flush=True)
        set_throttle(vm, "nvme0", ThrottleLimits(), log)
        cleared = guest_rate(vm, "iops", args.runtime)
    finally:
        vm.close()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"QEMU {vm.qemu.version_text}, {vm.accelerator.upper()}, {args.runtime} s per run")
    print(f"unthrottled {free_iops:.0f} IOPS / {free_bw / 1e6:.1f} MB/s; after clearing {cleared:.0f} IOPS")
    print()
    print("| limit | unit | measured | error | within ±5 % |")
    print("|---:|---|---:|---:|:---:|")
    worst = 0.0
    for unit, limit, measured in rows:
        error = (measured - limit) / limit
        worst = max(worst, abs(error))
        shown = f"{limit / (1 << 20):g} MiB/s" if unit == "bytes/s" else f"{limit:g}"
        value = f"{measured / (1 << 20):.3f} MiB/s" if unit == "bytes/s" else f"{measured:.1f}"
        print(f"| {shown} | {unit} | {value} | {error:+.2%} | {'yes' if abs(error) <= 0.05 else 'NO'} |")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
