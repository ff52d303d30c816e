"""The emulated drive's figures, through fio's nbd engine on this host (no VM):

1. latency fidelity: idle drive, QD1 4k random reads; mean completion latency less the transport's
   own (a 1 us personality in the same run) vs the configured read latency (goal: within ±5 %);
2. parallelism: IOPS vs queue depth 1..64 on 8 dies of 1 ms reads, sequential reads (striped:
   consecutive pages on consecutive dies) against min(QD, dies) x 1000 (goal: within 15 % until
   the transport saturates), random reads against the occupancy D (1 - (1 - 1/D)^QD) x 1000, and
   the transport's own ceiling (a 1 us personality at the same QD);
3. write cliff and write amplification on client-qlc: random 4k writes over 8x the capacity,
   fresh-out-of-box vs steady IOPS (goal >= 3x), steady WA over the last 2 fills vs Desnoyers'
   analytic value (goal within 20 %), and FOB IOPS again after trimming the whole drive;
4. throughput of the model: QD16 4k random reads on datacenter-tlc vs the plain Python NBD server
   on the same file, rounds interleaved (goal >= 20,000 IOPS and >= 0.5x);
5. heat: hot under sustained writes: when the throttle-on event came vs the personality's
   prediction, and vs the first 250 ms IOPS window that dipped (goal: within ±1 s).

    .venv/bin/python benchmarks/drive_model.py [--only 1,2,3,4,5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _nbdbench import load_average, read_stats, run_fio
from nvmechaos.analysis.impact import fio_origin
from nvmechaos.analysis.series import run_series
from nvmechaos.drive import EmulatedDrive, start_emulated_drive
from nvmechaos.faults import make_injector
from nvmechaos.fio.model import FioResult
from nvmechaos.process import REGISTRY
from nvmechaos.timeline import Timeline

MIB = 1 << 20
ZERO = {"read_latency": "1us", "buffer_latency": "0", "program_latency": "10us", "erase_latency": "10us"}


def drive(
    work: Path, personality: str, size: str, timeline: Timeline | None = None, **overrides: object
) -> EmulatedDrive:
    return start_emulated_drive(
        personality,
        int(size[:-1]) * MIB,
        None,
        overrides=overrides,
        name=personality[:8],
        log_dir=work,
        timeline=timeline,
    )


def fill_sequentially(d: EmulatedDrive, work: Path) -> None:
    """Write every page once (reads of unwritten pages never reach the NAND), then let it drain."""
    run_fio(d.uri, work, rw="write", bs="128k", iodepth=8, time_based=0, runtime=None, size=str(d.size))
    time.sleep(1.0)


def write_stats(result: FioResult) -> float:
    return result.jobs[0].directions["write"].iops


def qemu_img_mean_us(uri: str, count: int = 15000) -> float:
    """Mean QD1 4k read time of ``qemu-img bench`` (QEMU's own NBD client, as a guest's) in us."""
    out = subprocess.run(
        ["qemu-img", "bench", "-f", "raw", "-c", str(count), "-d", "1", "-s", "4096", "-S", "8192", uri],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Run completed in ([0-9.]+) seconds", out)
    assert match, out
    return float(match.group(1)) / count * 1e6


def _yes(error: float) -> str:
    return "yes" if abs(error) <= 0.05 else "NO"


def latency_fidelity(work: Path, rounds: int) -> bool:
    print("\n## 1. Latency fidelity: QD1 4k random reads, idle drive (rounds interleaved, medians)")
    configured = [0.1, 0.2, 0.5, 1.0]  # ms
    drives = {"transport": drive(work, "datacenter-tlc", "64M", **ZERO)}
    for ms in configured:
        drives[f"{ms:g}"] = drive(work, "datacenter-tlc", "64M", read_latency=f"{ms * 1000:g}us")
    fio_us: dict[str, list[float]] = {name: [] for name in drives}
    qemu_us: dict[str, list[float]] = {name: [] for name in drives}
    try:
        for d in drives.values():
            fill_sequentially(d, work)
        for _ in range(rounds):
            for name, d in drives.items():
                fio_us[name].append(read_stats(run_fio(d.uri, work, runtime=3, iodepth=1))[1] * 1000)
                qemu_us[name].append(qemu_img_mean_us(d.uri))
    finally:
        for d in drives.values():
            d.close()
    fio_base, qemu_base = statistics.median(fio_us["transport"]), statistics.median(qemu_us["transport"])
    print(
        f"transport's own mean (1 us personality): fio clat {fio_base:.1f} us, "
        f"qemu-img bench {qemu_base:.1f} us"
    )
    print(
        "| configured (us) | fio: mean less transport (us) | error | within ±5 % | qemu-img bench: mean less "
        "transport (us) | error | within ±5 % |"
    )
    print("|---:|---:|---:|:---:|---:|---:|:---:|")
    ok = True
    for ms in configured:
        want = ms * 1000
        fio_added = statistics.median(fio_us[f"{ms:g}"]) - fio_base
        qemu_added = statistics.median(qemu_us[f"{ms:g}"]) - qemu_base
        fio_error, qemu_error = (fio_added - want) / want, (qemu_added - want) / want
        ok &= abs(fio_error) <= 0.05
        print(
            f"| {want:.0f} | {fio_added:.1f} | {fio_error:+.1%} | {_yes(fio_error)} "
            f"| {qemu_added:.1f} | {qemu_error:+.1%} | {_yes(qemu_error)} |"
        )
    return ok


def parallelism(work: Path) -> bool:
    print("\n## 2. Parallelism: 8 dies (4 channels x 2), 1 ms page reads, 4k reads")
    depths = [1, 2, 4, 8, 16, 32, 64]
    dies = 8
    slow = drive(work, "datacenter-tlc", "64M", channels=4, dies_per_channel=2, read_latency="1ms")
    fast = drive(work, "datacenter-tlc", "64M", channels=4, dies_per_channel=2, **ZERO)
    rows = []
    try:
        for d in (slow, fast):
            fill_sequentially(d, work)
        for qd in depths:
            seq = read_stats(run_fio(slow.uri, work, rw="read", runtime=4, iodepth=qd))[0]
            rnd = read_stats(run_fio(slow.uri, work, rw="randread", runtime=4, iodepth=qd))[0]
            ceiling = read_stats(run_fio(fast.uri, work, rw="read", runtime=4, iodepth=qd))[0]
            rows.append((qd, seq, rnd, ceiling))
    finally:
        slow.close()
        fast.close()
    print(
        "| QD | model min(QD, 8) x 1000 | sequential (IOPS) | error | random (IOPS) "
        "| occupancy 8(1-(7/8)^QD) x 1000 | transport ceiling, 1 us (IOPS) | limit |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    ok = True
    for qd, seq, rnd, ceiling in rows:
        expected = min(qd, dies) * 1000.0
        occupancy = dies * (1 - (1 - 1 / dies) ** qd) * 1000.0
        transport_bound = ceiling < 1.5 * expected
        error = (seq - expected) / expected
        if not transport_bound:
            ok &= abs(error) <= 0.15
        limit = "transport" if transport_bound else "model"
        print(
            f"| {qd} | {expected:,.0f} | {seq:,.0f} | {error:+.1%} | {rnd:,.0f} | {occupancy:,.0f} "
            f"| {ceiling:,.0f} | {limit} |"
        )
    return ok


def trim_all(d: EmulatedDrive, work: Path) -> None:
    run_fio(d.uri, work, rw="trim", bs="1m", iodepth=1, time_based=0, runtime=None, size=str(d.size))


def window_iops(result: FioResult) -> tuple[np.ndarray, np.ndarray]:
    """Window ends in seconds from fio's start, and IOPS (epoch-stamped logs put on fio's start)."""
    series = run_series(result).total
    times = np.asarray(series.times_s, dtype=np.float64)
    if times.size and times[0] > 1e6:  # log_unix_epoch without a time-based run: still epoch seconds
        times = times - times[0] + series.window_ms / 1000
    return times, np.asarray(series.values)


def cliff(work: Path) -> bool:
    print("\n## 3. Write cliff and write amplification: client-qlc, 64 MiB, random 4k writes QD16, 8 fills")
    d = drive(work, "client-qlc", "64M")
    writes = {"rw": "randwrite", "iodepth": 16, "norandommap": 1, "randrepeat": 0, "size": str(d.size)}
    try:
        analytic = _analytic(d)
        first = run_fio(
            d.uri,
            work,
            time_based=0,
            runtime=None,
            io_size=str(6 * d.size),
            log_unix_epoch=1,
            log_avg_msec=250,
            **writes,
        )
        before = d.health()
        last = run_fio(d.uri, work, time_based=0, runtime=None, io_size=str(2 * d.size), **writes)
        after = d.health()
        trim_all(d, work)
        trimmed = d.health()["trimmed_pages"]
        time.sleep(1.0)
        fresh = run_fio(d.uri, work, runtime=2, log_unix_epoch=1, log_avg_msec=250, **writes)
    finally:
        d.close()
    times, iops = window_iops(first)
    fob = float(np.median(iops[times <= 2.0]))  # one fill takes ~4.5 s at 16 MiB/s
    steady = write_stats(last)
    steady_wa = (after["nand_pages_written"] - before["nand_pages_written"]) / (
        after["host_pages_written"] - before["host_pages_written"]
    )
    fresh_times, fresh_iops = window_iops(fresh)
    after_trim = float(np.median(fresh_iops[fresh_times <= 2.0]))
    ratio = fob / steady
    wa_error = (steady_wa - analytic) / analytic
    print(
        f"fresh-out-of-box {fob:,.0f} IOPS (median of 250 ms windows in the first 2 s); steady {steady:,.0f} "
        f"IOPS (fills 7-8): ratio {ratio:.2f} (goal >= 3)"
    )
    print(
        f"write amplification over fills 7-8: {steady_wa:.2f}; analytic (Desnoyers, greedy/LRW limit, "
        f"alpha = data pages / user pages): {analytic:.2f}; error {wa_error:+.1%} (goal within ±20 %)"
    )
    print(
        f"whole drive trimmed ({trimmed:,} pages unmapped): {after_trim:,.0f} IOPS in the first 2 s = "
        f"{after_trim / fob:.2f} x fresh-out-of-box"
    )
    return ratio >= 3 and abs(wa_error) <= 0.2 and after_trim >= 0.9 * fob


def _analytic(d: EmulatedDrive) -> float:
    from nvmechaos.drive.model import Geometry  # noqa: PLC0415 - the benchmark's one use

    return Geometry.of(d.personality, d.size).analytic_write_amplification()


def throughput(work: Path, rounds: int) -> bool:
    print(
        "\n## 4. Throughput of the model: QD16 4k random reads, datacenter-tlc vs the plain Python NBD server"
    )
    d = drive(work, "datacenter-tlc", "256M")
    plain = make_injector("python", d.backing, d.size)
    results: dict[str, list[float]] = {"drive model": [], "plain Python server": []}
    try:
        fill_sequentially(d, work)
        plain.start()
        for _ in range(rounds):
            results["drive model"].append(read_stats(run_fio(d.uri, work, runtime=5, iodepth=16))[0])
            results["plain Python server"].append(
                read_stats(run_fio(plain.uri, work, runtime=5, iodepth=16))[0]
            )
    finally:
        plain.stop()
        d.close()
    model = statistics.median(results["drive model"])
    python = statistics.median(results["plain Python server"])
    print("| server | IOPS per round | median |")
    print("|---|---|---:|")
    for name, values in results.items():
        print(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {statistics.median(values):,.0f} |")
    print(f"model / plain = {model / python:.2f} (goal >= 0.5); model {model:,.0f} IOPS (goal >= 20,000)")
    return model >= 20_000 and model / python >= 0.5


def heat(work: Path) -> bool:
    print("\n## 5. Heat: hot, sustained random 4k writes QD16, 250 ms IOPS windows")
    timeline = Timeline()
    d = drive(work, "hot", "1024M", timeline=timeline)  # a fill takes a minute: no GC in 20 s
    p = d.personality
    try:
        result = run_fio(
            d.uri,
            work,
            rw="randwrite",
            iodepth=16,
            runtime=20,
            norandommap=1,
            randrepeat=0,
            log_unix_epoch=1,
            log_avg_msec=250,
        )
        d.sync_events()
    finally:
        d.close()
    start, _ = fio_origin(result)
    throttles = [e for e in timeline.events if e.kind == "thermal_throttle" and e.action == "begin"]
    if not throttles:
        print("no throttle event: FAIL")
        return False
    on = throttles[0].monotonic - start
    predicted = p.thermal_time_constant * math.log(
        p.full_load_rise / (p.full_load_rise - (p.throttle_at - p.ambient))
    )
    times, iops = window_iops(result)
    before = iops[(times > 1) & (times <= on - 0.5)]
    base = float(np.median(before))
    dipped = times[(times > on - 3) & (iops < 0.75 * base)]
    dip = float(dipped[0]) if dipped.size else math.nan
    print(
        f"predicted throttle at {predicted:.1f} s of full load ({p.thermal_time_constant:g} s x "
        f"ln(rise / (rise - (throttle_at - ambient)))); throttle-on event at {on:.2f} s after fio's start"
    )
    print(
        f"IOPS before: {base:,.0f} (median of 250 ms windows); first window below 75 % ends at {dip:.2f} s "
        f"(window end; the event falls in it when it is within 0.25 s before): offset {dip - on:+.2f} s "
        "(goal within ±1 s)"
    )
    return abs(dip - on) <= 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="1,2,3,4,5")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-drive-bench-"))
    os.environ.setdefault("NVMECHAOS_RUN_DIR", str(work / "run"))
    figures: dict[str, Callable[[], bool]] = {
        "1": lambda: latency_fidelity(work, args.rounds),
        "2": lambda: parallelism(work),
        "3": lambda: cliff(work),
        "4": lambda: throughput(work, args.rounds),
        "5": lambda: heat(work),
    }
    print(f"load average at start: {load_average()}", flush=True)
    verdicts = {}
    try:
        for key in args.only.split(","):
            verdicts[key] = figures[key]()
            sys.stdout.flush()
    finally:
        REGISTRY.stop_scope(None)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at end: {load_average()}")
    print("goals met: " + ", ".join(f"{key}: {'yes' if ok else 'NO'}" for key, ok in verdicts.items()))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
