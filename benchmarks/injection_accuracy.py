"""Injection accuracy: injected vs measured added latency, both NBD engines.

QD1 4k random reads through fio's nbd engine. For each engine and delay: a baseline run with no
fault, then a run with the read delay applied for the whole run; measured added latency = mean
completion latency with the delay - the baseline mean. Goal: within ±5 % of the injected delay.

    .venv/bin/python benchmarks/injection_accuracy.py [--delays 10,50,100,200] [--runtime 4]
        [--rounds 1] [--engines nbdkit,python] [--nice -10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _nbdbench import load_average, print_accuracy_table, read_stats, run_fio
from nvmechaos.faults import LatencyParams, make_injector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="10,50,100,200", help="milliseconds, comma-separated")
    parser.add_argument("--runtime", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--engines", default="nbdkit,python")
    parser.add_argument(
        "--nice",
        type=int,
        help="run fio at this nice value (e.g. -10) so a busy host's wake-up delays stay out",
    )
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    work = Path(tempfile.mkdtemp(prefix="nvmechaos-accuracy-"))
    rows = []
    print(f"load average at start: {load_average()}; fio nice: {args.nice or 0}", flush=True)
    try:
        for engine in args.engines.split(","):
            injector = make_injector(engine, work / "disk.img", 256 << 20)
            injector.start()
            try:
                for delay in delays:
                    added = []
                    baselines = []
                    for _ in range(args.rounds):
                        injector.clear()
                        _, base = read_stats(run_fio(injector.uri, work, args.nice, runtime=args.runtime))
                        injector.apply(LatencyParams(read=delay / 1000))
                        _, spiked = read_stats(run_fio(injector.uri, work, args.nice, runtime=args.runtime))
                        injector.clear()
                        baselines.append(base)
                        added.append(spiked - base)
                    measured = statistics.median(added)
                    rows.append((engine, delay, statistics.median(baselines), measured))
                    error = (measured - delay) / delay
                    print(f"  {engine:6} {delay:5.0f} ms -> {measured:8.3f} ms ({error:+.2%})", flush=True)
            finally:
                injector.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return print_accuracy_table(rows, "baseline mean")


if __name__ == "__main__":
    sys.exit(main())
