"""The datacenter faults' figures, median of ``--rounds`` (default 5) runs each, in one run:

fio in the built-in guest (4k random reads, QD4, every I/O logged) through each fault; from the
guest's per-I/O log: the longest time without a completion (the I/O gap) and fio's errors; the same
run without a fault first, as the baseline gap (TCG's own stalls).

- failover: dual-port drive, one path unplugged and plugged back during I/O;
- single-path unplug: the reopening workload (``reopen``): the gap from the last completion before
  the unplug to the first after the plug (unplug, plug, reopen, fio restart), and the unplug
  (device_del to DEVICE_DELETED) and plug (device_add to namespace readable) times against
  blktests nvme/032's 5 s bound;
- flaps: 5 unplug/plug cycles 200 ms apart, on one path of a dual-port drive and on a single
  path (reopening workload: errors, restarts, seconds from the last plug until stable);
- PCIe AER: correctable and non-fatal errors at the root port (gap, errors, guest report);
- stall: the NBD backend answers nothing for 2 s and for 8 s with the guest's io_timeout at 5 s
  (gap, gap minus stall, errors, whether the guest aborted);
- resets: ``nvme reset`` and a PCIe function-level reset (gap, errors, seconds until live).

    .venv/bin/python benchmarks/datacenter_faults.py [--rounds 5] [--only failover,unplug,...]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nvmechaos.faults import StallParams, make_injector
from nvmechaos.process import ProcessRegistry
from nvmechaos.targets.guest import REOPEN_SCRIPT
from nvmechaos.vm.faults import (
    PcieError,
    ResetKind,
    flap,
    hot_plug,
    hot_unplug,
    inject_pcie_error,
    kernel_log,
    reset_controller,
)
from nvmechaos.vm.machine import Vm, launch_vm
from nvmechaos.vm.spec import ControllerSpec, GuestSpec, NamespaceSpec, VmSpec
from nvmechaos.vm.ssh import GuestSsh

RUNTIME = 8
FIO_ARGS = (
    "--name=w --ioengine=libaio --direct=1 --rw=randread --bs=4k --iodepth=4 --offset=64m --size=128m "
    f"--time_based --runtime={RUNTIME} --write_lat_log=w --log_avg_msec=0 "
    "--output-format=json --output=w.json"
)
REGISTRY = ProcessRegistry()


def device_of(vm: Vm, ssh: GuestSsh) -> str:
    serial = vm.controllers[0].serial
    for line in ssh.run(
        "for b in /sys/block/nvme*n*; do echo ${b##*/} $(cat $b/device/serial); done"
    ).stdout.splitlines():
        words = line.split()
        if len(words) == 2 and "c" not in words[0][4:] and words[1] == serial:
            return f"/dev/{words[0]}"
    raise SystemExit(f"no namespace with serial {serial} in the guest")


def start_fio(ssh: GuestSsh, device: str, *, reopen: bool = False) -> None:
    ssh.run("rm -rf /tmp/b && mkdir /tmp/b", timeout=30)
    if reopen:
        # The script restarts fio on job.fio, pointing it at the namespace's new name after a
        # replug (the guest may call it /dev/nvme1n1): the device goes in the job file.
        options = FIO_ARGS.replace("--write_lat_log=w", "--write_lat_log=fio --log_unix_epoch=1")
        options = options.replace(" --output-format=json --output=w.json", "").replace("--name=w ", "")
        job = (
            "[global]\n"
            + "\n".join(option.lstrip("-") for option in options.split())
            + f"\nfilename={device}\n[w]\n"
        )
        ssh.run(
            f"cat > /tmp/b/r.sh <<'EOF'\n{REOPEN_SCRIPT}\nEOF\ncat > /tmp/b/job.fio <<'EOF'\n{job}EOF",
            timeout=30,
        )
        command = f"sh r.sh {RUNTIME} {device} fio --output-format=json"
    else:
        command = f"fio {FIO_ARGS} --allow_file_create=0 --filename={device}"
    ssh.run(f"cd /tmp/b && (setsid sh -c '{command}; touch done' </dev/null >out.txt 2>&1 &)", timeout=30)
    deadline = time.monotonic() + 30
    count = "$(cat /sys/block/nvme*/stat | awk '{n+=$1}END{print n}')"
    probe = f"a={count}; usleep 200000; b={count}; [ $b -gt $a ]"
    while ssh.run(probe, timeout=30).exit_code != 0:
        if time.monotonic() > deadline:
            output = ssh.run(
                "cd /tmp/b && tail -3 out.txt fio.stderr fio-segments.txt 2>&1; ls /dev/nvme*", timeout=30
            )
            raise SystemExit(f"fio did no I/O on {device} in the guest: {output.stdout}")
    time.sleep(2.0)


def finish_fio(ssh: GuestSsh) -> dict[str, float]:
    """Wait for fio, then the longest completion gap (ms) and the errors it reported."""
    deadline = time.monotonic() + RUNTIME + 120
    while ssh.run("test -e /tmp/b/done", timeout=30).exit_code != 0:
        if time.monotonic() > deadline:
            raise SystemExit("fio did not end in the guest")
        time.sleep(0.5)
    logs = ssh.run("cat /tmp/b/w_clat.1.log /tmp/b/fio_clat.1.log 2>/dev/null", timeout=60).stdout
    stamps = np.sort(np.array([float(line.split(",")[0]) for line in logs.splitlines() if line.strip()]))
    errors = ssh.run(
        "cat /tmp/b/*.json* 2>/dev/null | grep -c '\"error\" : [1-9]'", timeout=30
    ).stdout.strip()
    segments = ssh.run("cat /tmp/b/fio-segments.txt 2>/dev/null | wc -l", timeout=30).stdout.strip()
    gaps = np.diff(stamps) if stamps.size > 1 else np.zeros(1)
    return {
        "gap_ms": float(gaps.max()),
        "errors": float(errors or 0),
        "restarts": max(0.0, float(segments or 1) - 1),
    }


def launch(
    name: str, work: Path, *, paths: int = 1, nbd: str | None = None, io_timeout: int | None = None
) -> Vm:
    namespace = NamespaceSpec(nbd=nbd) if nbd else NamespaceSpec(size=256 << 20)
    spec = VmSpec(
        name=name,
        controllers=(ControllerSpec(namespaces=(namespace,), paths=paths),),
        guest=GuestSpec(io_timeout=io_timeout),
    )
    vm = launch_vm(spec, work / name, registry=REGISTRY)
    vm.wait_until_ready(180)
    return vm


def run_rounds(rounds: int, one: Callable[[], dict[str, float]]) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        for key, value in one().items():
            figures.setdefault(key, []).append(value)
    return figures


def show(title: str, figures: dict[str, list[float]]) -> None:
    parts = [
        f"{key} median {statistics.median(v):.3f} (min {min(v):.3f}, max {max(v):.3f})"
        for key, v in figures.items()
    ]
    print(f"{title}: " + "; ".join(parts), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="failover,unplug,flaps,aer,stall,reset")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-dcbench-"))
    try:
        if only & {"failover", "flaps", "aer", "reset"}:
            vm = launch("dual", work, paths=2)
            with vm.ssh() as ssh:

                def no_fault() -> dict[str, float]:
                    start_fio(ssh, device_of(vm, ssh))
                    return finish_fio(ssh)

                show("baseline: no fault (dual-port drive)", run_rounds(args.rounds, no_fault))
                if "failover" in only:

                    def failover() -> dict[str, float]:
                        start_fio(ssh, device_of(vm, ssh))
                        unplug = hot_unplug(vm, "nvme0", vm.faults, timeout=20)
                        time.sleep(1.0)
                        plug = hot_plug(vm, "nvme0", vm.faults, timeout=20, shell=ssh)
                        return {**finish_fio(ssh), "unplug_s": unplug.seconds, "plug_s": plug.seconds}

                    show("failover (dual-port, one path out 1 s)", run_rounds(args.rounds, failover))
                if "flaps" in only:

                    def path_flaps() -> dict[str, float]:
                        start_fio(ssh, device_of(vm, ssh))
                        result = flap(vm, "nvme0p1", vm.faults, cycles=5, interval=0.2, timeout=20, shell=ssh)
                        return {**finish_fio(ssh), "stable_s": result.stable_s}

                    show(
                        "flaps on one path of a dual-port drive (5 cycles, 200 ms)",
                        run_rounds(args.rounds, path_flaps),
                    )
                if "aer" in only:
                    for severity in (PcieError.correctable, PcieError.non_fatal):

                        def aer(severity: PcieError = severity) -> dict[str, float]:
                            start_fio(ssh, device_of(vm, ssh))
                            before = len(kernel_log(ssh))
                            inject_pcie_error(vm, "nvme0", severity, vm.faults, ssh)
                            figures = finish_fio(ssh)
                            reported = any("AER:" in line for line in kernel_log(ssh)[before:])
                            return {**figures, "reported": float(reported)}

                        show(f"AER {severity.value} at the root port", run_rounds(args.rounds, aer))
                if "reset" in only:
                    for kind in (ResetKind.controller, ResetKind.function):

                        def reset(kind: ResetKind = kind) -> dict[str, float]:
                            start_fio(ssh, device_of(vm, ssh))
                            seconds = reset_controller(vm, "nvme0", kind, vm.faults, ssh)
                            return {**finish_fio(ssh), "live_again_s": seconds}

                        show(f"{kind.value} reset", run_rounds(args.rounds, reset))
            vm.close()
        if only & {"unplug", "flaps"}:
            vm = launch("single", work)
            with vm.ssh() as ssh:
                if "unplug" in only:

                    def unplug() -> dict[str, float]:
                        start_fio(ssh, device_of(vm, ssh), reopen=True)
                        out = hot_unplug(vm, "nvme0", vm.faults, timeout=20)
                        back = hot_plug(vm, "nvme0", vm.faults, timeout=20, shell=ssh)
                        return {**finish_fio(ssh), "unplug_s": out.seconds, "plug_s": back.seconds}

                    show("single-path unplug + plug, reopening workload", run_rounds(args.rounds, unplug))
                if "flaps" in only:

                    def single_flaps() -> dict[str, float]:
                        start_fio(ssh, device_of(vm, ssh), reopen=True)
                        result = flap(vm, "nvme0", vm.faults, cycles=5, interval=0.2, timeout=20, shell=ssh)
                        return {**finish_fio(ssh), "stable_s": result.stable_s}

                    show(
                        "flaps on a single path (5 cycles, 200 ms), reopening workload",
                        run_rounds(args.rounds, single_flaps),
                    )
            vm.close()
        if "stall" in only:
            injector = make_injector("nbdkit", None, 256 << 20)
            injector.start()
            vm = launch("stall", work, nbd=injector.uri, io_timeout=5)
            with vm.ssh() as ssh:
                for seconds in (2.0, 8.0):

                    def stall(seconds: float = seconds) -> dict[str, float]:
                        start_fio(ssh, device_of(vm, ssh))
                        before = len(kernel_log(ssh))
                        injector.apply(StallParams(seconds), seconds)
                        time.sleep(seconds)
                        figures = finish_fio(ssh)
                        aborted = any("timeout, aborting" in line for line in kernel_log(ssh)[before:])
                        return {
                            **figures,
                            "gap_minus_stall_ms": figures["gap_ms"] - seconds * 1000,
                            "aborted": float(aborted),
                        }

                    show(f"stall {seconds:g} s (guest io_timeout 5 s)", run_rounds(args.rounds, stall))
            vm.close()
            injector.stop()
    finally:
        REGISTRY.stop_scope()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
