"""Throughput at zero delay: the pure-Python NBD server vs nbdkit (our plugin), same file.

4k random reads through fio's nbd engine at each queue depth, engines interleaved round by round
on the same 256 MiB file (in the page cache). Also shown, for reference, nbdkit's own C file
plugin, which cannot inject faults. Goal: Python server / nbdkit injector >= 0.5.

    .venv/bin/python benchmarks/nbd_throughput.py [--iodepths 8,16] [--runtime 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _nbdbench import load_average, read_stats, run_fio
from nvmechaos.faults import make_injector
from nvmechaos.process import spawn

SIZE = 256 << 20


def fill(path: Path) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as handle:
        for _ in range(SIZE >> 20):
            handle.write(block)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iodepths", default="8,16")
    parser.add_argument("--runtime", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-throughput-"))
    disk = work / "disk.img"
    fill(disk)
    servers = {"nbdkit": make_injector("nbdkit", disk, SIZE), "python": make_injector("python", disk, SIZE)}
    reference = None
    results: dict[tuple[str, int], list[float]] = {}
    print(f"load average at start: {load_average()}", flush=True)
    try:
        for server in servers.values():
            server.start()
        socket = work / "file.sock"
        reference = spawn(
            "nbdkit-file",
            ["nbdkit", "--foreground", "--exit-with-parent", "--unix", str(socket), "file", f"file={disk}"],
        )
        while not socket.exists():
            time.sleep(0.01)
        uris = {name: server.uri for name, server in servers.items()}
        uris["nbdkit-file (reference)"] = f"nbd+unix:///?socket={socket}"
        for depth in (int(d) for d in args.iodepths.split(",")):
            for round_index in range(args.rounds):
                for name, uri in uris.items():
                    iops, _ = read_stats(run_fio(uri, work, runtime=args.runtime, iodepth=depth))
                    results.setdefault((name, depth), []).append(iops)
                    print(f"  QD{depth} round {round_index + 1} {name}: {iops:,.0f} IOPS", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        if reference is not None:
            reference.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {load_average()}")
    print()
    print(
        "| QD | nbdkit + plugin (IOPS) | Python server (IOPS) | ratio Python/nbdkit "
        "| nbdkit file plugin (IOPS) |"
    )
    print("|---:|---:|---:|---:|---:|")
    worst = float("inf")
    for depth in sorted({d for _, d in results}):
        nbdkit = statistics.median(results[("nbdkit", depth)])
        python = statistics.median(results[("python", depth)])
        plain = statistics.median(results[("nbdkit-file (reference)", depth)])
        worst = min(worst, python / nbdkit)
        print(f"| {depth} | {nbdkit:,.0f} | {python:,.0f} | {python / nbdkit:.2f} | {plain:,.0f} |")
    return 0 if worst >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
