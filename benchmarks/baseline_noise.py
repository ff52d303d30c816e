"""How noisy a TCG guest's fio windows are beside a busy neighbour VM, and which recovery rule
survives that noise.

Boots the built-in guest on an nbdkit injector (as ``suites/faults/latency_errors.robot`` does) and,
unless ``--neighbour none``, a second VM whose guest keeps busy like another suite on the second
pabot worker (``suite``: fio QD4 random reads for 8-14 s, pattern writes, pauses; ``bursts``: QD1-32
random read/write bursts of 2-6 s, 1-4 s apart). Then runs ``--runs`` fault-free fio jobs in the
first guest, alternating the suites' two workloads (QD1 and QD4 4 KiB random reads), and fetches
the completion-latency logs (kept under ``--keep``): one line per I/O (``--logging per-io``,
windows exact) or fio's 250 ms averages (``--logging averaged``, whose time stamps slip when the
guest stalls).

The analysis needs no VM (``--load DIR`` re-reads kept logs). For windows of 250, 500 and 1000 ms
it slides a pseudo-fault over every run: a ``--baseline`` before it, 3 s of "fault", then the
recovery rule must find 1 s of windows in a row back within its band within ``--limit`` s of the
fault's end. Nothing was injected, so every miss is a false failure. Rules: the old fixed
tolerances (IOPS within 10 % / 50 % of the baseline mean, latency within that or 1 ms) and noise
bands from the baseline's own spread (mean - k·SD, median - k·1.4826·MAD) with a floor of
``--floor`` % of the mean. It also prints the baseline spreads (coefficient of variation of the
windows) and, per rule, the smallest lasting IOPS loss / latency rise the rule still calls "not
recovered" (median over the pseudo-faults): the rule's sharpness.

    .venv/bin/python benchmarks/baseline_noise.py [--runs 8] [--runtime 30] [--neighbour suite|bursts|none]
    .venv/bin/python benchmarks/baseline_noise.py --load /tmp/noise   # analysis only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nvmechaos.analysis.series import is_per_io_log, per_io_series, read_series
from nvmechaos.faults import make_injector
from nvmechaos.process import ProcessRegistry
from nvmechaos.vm.machine import Vm, launch_vm
from nvmechaos.vm.spec import ControllerSpec, NamespaceSpec, VmSpec
from nvmechaos.vm.ssh import GuestSsh

QUARTER_MS = 250
JOBS = {"qd1": 1, "qd4": 4}
FIO = (
    "rm -rf /tmp/nz && mkdir /tmp/nz && cd /tmp/nz && fio --name=nz --filename=/dev/nvme0n1 "
    "--ioengine=libaio --direct=1 --rw=randread --bs=4k --iodepth={qd} --time_based --runtime={runtime} "
    "--offset=64m --size=128m --write_lat_log=fio {logging} "
    "--output-format=json --output=fio.json >/dev/null 2>&1; echo rc=$?"
)
LOGGING = {
    "per-io": "",  # one line per I/O: exact windows of any width
    "averaged": "--write_iops_log=fio --log_avg_msec=250",  # fio's own 250 ms averages
}
NEIGHBOURS = {
    # Another fault suite: fio QD4 random reads for 8-14 s, pattern writes, pauses.
    "suite": (
        'setsid sh -c \'while :; do for p in "randread 4 4k 10 3" "write 4 64k 2 2" "randread 4 4k 14 4" '
        '"randread 1 4k 8 2"; do set -- $p; fio --name=n --filename=/dev/nvme0n1 --ioengine=libaio '
        "--direct=1 --rw=$1 --iodepth=$2 --bs=$3 --time_based --runtime=$4 --size=128m >/dev/null 2>&1; "
        "sleep $5; done; done' </dev/null >/dev/null 2>&1 &"
    ),
    # Heavier: QD1-32 random read/write bursts of 2-6 s, 1-4 s apart.
    "bursts": (
        'setsid sh -c \'while :; do for p in "16 4 3" "4 2 1" "32 6 2" "1 3 4" "8 5 1"; do set -- $p; '
        "fio --name=n --filename=/dev/nvme0n1 --ioengine=libaio --direct=1 --rw=randrw --bs=4k "
        "--iodepth=$1 --time_based --runtime=$2 --size=128m >/dev/null 2>&1; sleep $3; done; done' "
        "</dev/null >/dev/null 2>&1 &"
    ),
}
Rule = Callable[[np.ndarray, np.ndarray], tuple[float, float]]


def boot(name: str, namespace: NamespaceSpec, work: Path, registry: ProcessRegistry) -> Vm:
    spec = VmSpec(name=name, controllers=(ControllerSpec(namespaces=(namespace,)),))
    vm = launch_vm(spec, work / name, registry=registry)
    vm.wait_until_ready(240)
    return vm


def collect(args: argparse.Namespace, keep: Path) -> None:
    """Run the fault-free jobs and keep their logs under ``keep/<run>-<job>/``."""
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-noise-"))
    registry = ProcessRegistry()
    injector = make_injector("nbdkit", work / "disk.img", 256 << 20)
    injector.start()
    vms: list[Vm] = []
    try:
        probe = boot("noise-probe", NamespaceSpec(nbd=injector.uri), work, registry)
        vms.append(probe)
        if args.neighbour != "none":
            neighbour = boot("noise-neighbour", NamespaceSpec(size=256 << 20), work, registry)
            vms.append(neighbour)
            other = neighbour.ssh()
            other.run(NEIGHBOURS[args.neighbour], timeout=30)
            other.close()
        ssh: GuestSsh = probe.ssh()
        try:
            for run in range(args.runs):
                job = list(JOBS)[run % len(JOBS)]
                command = FIO.format(qd=JOBS[job], runtime=args.runtime, logging=LOGGING[args.logging])
                out = ssh.run(command, timeout=args.runtime + 120)
                folder = keep / f"{run:02d}-{job}"
                folder.mkdir(parents=True, exist_ok=True)
                for kind in ("clat", "iops") if args.logging == "averaged" else ("clat",):
                    text = ssh.run(f"cat /tmp/nz/fio_{kind}.1.log", timeout=60).stdout
                    (folder / f"fio_{kind}.1.log").write_text(text, encoding="ascii")
                print(f"  run {run + 1}/{args.runs}: {job} {out.stdout.strip()}", flush=True)
        finally:
            ssh.close()
    finally:
        for vm in vms:
            vm.close()
        injector.stop()
        shutil.rmtree(work, ignore_errors=True)


def load(folder: Path, width_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """IOPS and mean latency (ms) per window of ``width_ms``, without fio's first and last windows."""
    clat_log = folder / "fio_clat.1.log"
    if is_per_io_log(clat_log):
        counts = per_io_series([clat_log], "iops", width_ms)["read"]
        means = per_io_series([clat_log], "clat", width_ms)["read"]
        lat_ms = np.full(counts.times_s.size, np.nan)
        lat_ms[np.searchsorted(counts.times_s, means.times_s)] = means.values / 1e6
        return counts.values[1:-1], lat_ms[1:-1]
    iops = read_series([folder / "fio_iops.1.log"], "iops", window_ms=QUARTER_MS)["read"]
    clat = read_series([folder / "fio_clat.1.log"], "clat", window_ms=QUARTER_MS)["read"]
    times = np.union1d(iops.times_s, clat.times_s)
    io = np.zeros(times.size)
    io[np.searchsorted(times, iops.times_s)] = iops.values
    lat = np.full(times.size, np.nan)
    lat[np.searchsorted(times, clat.times_s)] = clat.values / 1e6
    io, lat = io[1:-1], lat[1:-1]  # fio's start-up window and its partial last one
    group = width_ms // QUARTER_MS
    usable = io.size // group * group
    io_g = io[:usable].reshape(-1, group)
    lat_g = np.nan_to_num(lat[:usable]).reshape(-1, group)
    weights = io_g.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        latency = np.where(weights > 0, (lat_g * io_g).sum(axis=1) / weights, np.nan)
    return io_g.mean(axis=1), latency


def fixed(tolerance: float, slack_ms: float = 1.0) -> Rule:
    def rule(io: np.ndarray, lat: np.ndarray) -> tuple[float, float]:
        mean_lat = float(np.nanmean(lat))
        return (1 - tolerance) * float(io.mean()), max((1 + tolerance) * mean_lat, mean_lat + slack_ms)

    return rule


def band(k: float, floor: float, robust: bool, slack_ms: float = 1.0) -> Rule:
    def spread(values: np.ndarray) -> tuple[float, float]:
        values = values[~np.isnan(values)]
        if robust:
            centre = float(np.median(values))
            return centre, 1.4826 * float(np.median(np.abs(values - centre)))
        return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0

    def rule(io: np.ndarray, lat: np.ndarray) -> tuple[float, float]:
        io_centre, io_sd = spread(io)
        lat_centre, lat_sd = spread(lat)
        return (
            io_centre - max(k * io_sd, floor * io_centre),
            lat_centre + max(k * lat_sd, floor * lat_centre, slack_ms),
        )

    return rule


def simulate(
    series: list[tuple[np.ndarray, np.ndarray]], width_ms: int, rule: Rule, args: argparse.Namespace
) -> tuple[int, int, list[float], list[float]]:
    """(pseudo-faults, false failures, IOPS loss still caught %, latency rise still caught %)."""
    width = width_ms / 1000.0
    base_n = round(args.baseline / width)
    fault_n = round(3.0 / width)
    needed = max(2, round(1.0 / width))
    limit_n = round(args.limit / width)
    total = misses = 0
    losses: list[float] = []
    rises: list[float] = []
    for io, lat in series:
        for start in range(base_n, io.size - fault_n - limit_n - needed + 1):
            base_io, base_lat = io[start - base_n : start], lat[start - base_n : start]
            low, high = rule(base_io, base_lat)
            after = range(start + fault_n, io.size)
            run = 0
            recovered_at = None
            for index in after:
                good = io[index] >= low and not (lat[index] > high)
                run = run + 1 if good else 0
                if run >= needed:
                    recovered_at = index - needed + 1
                    break
            total += 1
            if recovered_at is None or recovered_at - (start + fault_n) + 1 > limit_n:
                misses += 1
            losses.append((1 - low / float(base_io.mean())) * 100)
            rises.append((high / float(np.nanmean(base_lat)) - 1) * 100)
    return total, misses, losses, rises


def analyse(keep: Path, args: argparse.Namespace) -> None:
    folders = sorted(p for p in keep.iterdir() if (p / "fio_clat.1.log").is_file())
    rules: dict[str, Rule] = {
        "fixed 10 %": fixed(0.10),
        "fixed 50 %": fixed(0.50),
        f"mean-3SD, floor {args.floor:g} % / 1 ms": band(3, args.floor / 100, robust=False),
        f"mean-4SD, floor {args.floor:g} % / 1 ms": band(4, args.floor / 100, robust=False),
        f"median-3MAD, floor {args.floor:g} % / 1 ms": band(3, args.floor / 100, robust=True),
        f"mean-3SD, floor {args.floor:g} %, no latency slack": band(3, args.floor / 100, False, 0.0),
    }
    print(f"{len(folders)} runs from {keep}; baseline {args.baseline:g} s, recovery limit {args.limit:g} s")
    for job in JOBS:
        chosen = [f for f in folders if f.name.endswith(job)]
        if not chosen:
            continue
        print(f"\n## {job} ({len(chosen)} runs)\n")
        print(
            "| window | baseline windows | IOPS mean | IOPS CoV % (median / p90 / max) | latency ms | "
            "latency CoV % (median / p90 / max) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        per_width: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for width_ms in (250, 500, 1000):
            series = [load(f, width_ms) for f in chosen]
            per_width[width_ms] = series
            n = round(args.baseline * 1000 / width_ms)
            io_cov, lat_cov = [], []
            for io, lat in series:
                for start in range(n, io.size + 1):
                    b_io, b_lat = io[start - n : start], lat[start - n : start]
                    io_cov.append(b_io.std(ddof=1) / b_io.mean() * 100)
                    lat_cov.append(np.nanstd(b_lat, ddof=1) / np.nanmean(b_lat) * 100)
            all_io = np.concatenate([s[0] for s in series])
            all_lat = np.concatenate([s[1] for s in series])
            print(
                f"| {width_ms} ms | {n} | {all_io.mean():.0f} | {np.median(io_cov):.1f} / "
                f"{np.percentile(io_cov, 90):.1f} / {np.max(io_cov):.1f} | {np.nanmean(all_lat):.2f} | "
                f"{np.median(lat_cov):.1f} / {np.percentile(lat_cov, 90):.1f} / {np.max(lat_cov):.1f} |"
            )
        print(
            "\n| window | rule | pseudo-faults | false 'not recovered' | lasting IOPS loss caught "
            "| latency rise caught |"
        )
        print("|---:|---|---:|---:|---:|---:|")
        for width_ms, series in per_width.items():
            for name, rule in rules.items():
                total, misses, losses, rises = simulate(series, width_ms, rule, args)
                print(
                    f"| {width_ms} ms | {name} | {total} | {misses} ({misses / max(total, 1):.1%}) | "
                    f"> {np.median(losses):.0f} % | > {np.median(rises):.0f} % |"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--runtime", type=int, default=30)
    parser.add_argument("--neighbour", choices=(*NEIGHBOURS, "none"), default="suite")
    parser.add_argument("--logging", choices=tuple(LOGGING), default="per-io")
    parser.add_argument("--keep", type=Path, help="folder for the fio logs (default: a temporary one)")
    parser.add_argument("--load", type=Path, help="analyse logs kept by an earlier run; run nothing")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of baseline before a fault")
    parser.add_argument("--limit", type=float, default=3.0, help="max_recovery_s of the verdict")
    parser.add_argument("--floor", type=float, default=10.0, help="band floor, %% of the baseline")
    args = parser.parse_args()
    if args.load is not None:
        analyse(args.load, args)
        return 0
    keep = args.keep or Path(tempfile.mkdtemp(prefix="nvmechaos-noise-logs-"))
    collect(args, keep)
    (keep / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}), encoding="ascii")
    analyse(keep, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
