"""How well fio's logs from a guest line up with the host's fault timeline.

Boots the built-in guest on an nbdkit injector and, ``--runs`` times, runs fio in the guest (QD1 4k
random reads, logs averaged over ``--window`` ms and stamped with the guest's wall clock), applies a
50 ms read delay about 3 s in (stamped on the host's ``time.monotonic()`` by the injector), and puts
fio's logs on the host clock the way ``Wait For Timed Fio Job On VM`` does (guest clock compared
over SSH before and after, ``nvmechaos.analysis.runclock.align_run``). The first delayed request
completes ~50 ms after the spike starts, so the first log window with delayed completions should
end at or after ``spike + 50 ms`` and start before it. Error = (window end - (spike + 50 ms)),
which lies in [0, window) when the clocks agree; the clock uncertainty is half the shortest SSH
round trip. A window holding a delayed request closes only when that request completes, so the
error can reach ``window + 50 ms``.

    .venv/bin/python benchmarks/timeline_alignment.py [--runs 5] [--window 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from nvmechaos.analysis.runclock import GUEST_CLOCK_COMMAND, ClockSample, align_run, parse_guest_clock
from nvmechaos.faults import LatencyParams, make_injector
from nvmechaos.process import ProcessRegistry
from nvmechaos.vm.machine import launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec, VmSpec
from nvmechaos.vm.ssh import GuestSsh

FIO = (
    "rm -rf /tmp/al && mkdir /tmp/al && cd /tmp/al && (setsid fio --name=a --filename=/dev/nvme0n1 "
    "--ioengine=libaio --direct=1 --rw=randread --bs=4k --iodepth=1 --time_based --runtime=6 --size=32m "
    "--write_lat_log=fio --write_iops_log=fio --log_avg_msec={window} --log_unix_epoch=1 "
    "</dev/null >/dev/null 2>&1 &)"
)
DELAY = 0.05


def clock_samples(ssh: GuestSsh, count: int = 5) -> list[ClockSample]:
    samples = []
    for _ in range(count):
        before = time.time()
        output = ssh.run(GUEST_CLOCK_COMMAND, timeout=15)
        samples.append(ClockSample(before, time.time(), parse_guest_clock(output.stdout)))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-align-"))
    injector = make_injector("nbdkit", work / "disk.img", 64 << 20)
    injector.start()
    rows = []
    try:
        spec = VmSpec(
            name="align-bench", controllers=(ControllerSpec(namespaces=(NamespaceSpec(nbd=injector.uri),)),)
        )
        vm = launch_vm(spec, work / "vm", registry=ProcessRegistry())
        try:
            vm.wait_until_ready(180)
            ssh = vm.ssh()
            try:
                for run in range(args.runs):
                    before = clock_samples(ssh)
                    ssh.run(FIO.format(window=args.window), timeout=30)
                    time.sleep(3.0)
                    applied = injector.apply(LatencyParams(read=DELAY))
                    time.sleep(1.0)
                    injector.clear()
                    time.sleep(4.0)
                    after = clock_samples(ssh)
                    folder = work / f"run{run}"
                    folder.mkdir()
                    for kind in ("clat", "iops"):
                        text = ssh.run(f"cat /tmp/al/fio_{kind}.1.log", timeout=30).stdout
                        (folder / f"fio_{kind}.1.log").write_text(text, encoding="ascii")
                    clock = align_run(sorted(folder.glob("fio_*.log")), before, after, window_ms=args.window)
                    spike = applied.monotonic - clock.fio_start_monotonic
                    windows = [
                        (int(line.split(",")[0]) / 1000.0, int(line.split(",")[1]) / 1e9)
                        for line in (folder / "fio_clat.1.log").read_text(encoding="ascii").splitlines()
                    ]
                    end = next(t for t, mean in windows if t > spike and mean > DELAY / 20)
                    error = end - (spike + DELAY)
                    rows.append((spike, end, error, clock.uncertainty_s, clock.drift_s or 0.0))
                    print(
                        f"  run {run + 1}: spike at {spike:.3f} s, first slow window ends {end:.3f} s",
                        flush=True,
                    )
            finally:
                ssh.close()
        finally:
            vm.close()
    finally:
        injector.stop()
        shutil.rmtree(work, ignore_errors=True)
    window = args.window / 1000.0
    print()
    print(
        f"{args.window} ms windows; error = first slow window's end - (spike + 50 ms); aligned when in "
        f"[0, {args.window} + 50 ms) give or take the clock uncertainty"
    )
    print()
    print(
        "| run | spike (s, fio time) | first slow window ends (s) | error (ms) | clock ± (ms) "
        "| drift (ms) | aligned |"
    )
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    bad = 0
    for index, (spike, end, error, uncertainty, drift) in enumerate(rows, 1):
        # A window is stamped when fio next samples it; one holding a delayed request closes only when
        # that request completes, so its end can be up to one delay late.
        ok = -uncertainty - 0.005 <= error < window + DELAY + uncertainty + 0.005
        bad += not ok
        print(
            f"| {index} | {spike:.3f} | {end:.3f} | {error * 1000:+.0f} | {uncertainty * 1000:.0f} | "
            f"{drift * 1000:+.0f} | {'yes' if ok else 'NO'} |"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
