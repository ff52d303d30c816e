"""Does a VM writing its scratch image slow a host-target fio job on the same disk?

Runs, for each run-folder location (``/tmp`` on the disk, ``/dev/shm`` in memory), a VM doing 128 KiB
random writes over its 900 MiB namespace while ``write_endurance`` runs on a scratch file on the disk,
and prints the host job's worst and p99 write latency side by side (interleaved rounds).

    .venv/bin/python benchmarks/run_dir_contention.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = f"""*** Settings ***
Resource    {ROOT}/resources/vm.resource
Library     OperatingSystem

*** Test Cases ***
Host Write Beside A Writing VM
    ${{vm}}=    Launch NVMe VM    name=noisy    size=1G
    ${{bg}}=    Start Fio Job On VM    ${{vm}}    write_endurance    runtime=40    size=900m
    ...    bs=128k    iodepth=16
    Sleep    5s
    Create Directory    ${{OUTPUT DIR}}/target
    ${{r}}=    Run Fio Job    write_endurance    directory=${{OUTPUT DIR}}/target    runtime=30
    ${{max}}=    Get Fio Metric    ${{r}}    max_latency_ms    direction=write
    ${{p99}}=    Get Fio Metric    ${{r}}    p99_latency_ms    direction=write
    Log To Console    \\nRESULT ${{max}} ${{p99}}
    Wait For Fio Job On VM    ${{bg}}
"""


def one(work: Path, run_dir: str) -> tuple[float, float]:
    suite = work / "contention.robot"
    suite.write_text(SUITE, encoding="utf-8")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "robot",
            "--outputdir",
            str(work / "out"),
            "--output",
            "NONE",
            "--log",
            "NONE",
            "--report",
            "NONE",
            str(suite),
        ],
        env={**os.environ, "NVMECHAOS_RUN_DIR": run_dir},
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"RESULT ([\d.]+) ([\d.]+)", completed.stdout)
    if not match:
        raise SystemExit(f"no result in robot's output:\n{completed.stdout}")
    return float(match.group(1)), float(match.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    places = ("/tmp", "/dev/shm")
    rows: dict[str, list[tuple[float, float]]] = {place: [] for place in places}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.rounds):
            for place in places:
                rows[place].append(one(Path(work), place))
    print("| run folders | host write max (ms), per round | host write p99 (ms), per round |")
    print("|---|---|---|")
    for place, values in rows.items():
        maxima = ", ".join(f"{m:.0f}" for m, _ in values)
        p99s = ", ".join(f"{p:.2f}" for _, p in values)
        print(f"| {place} | {maxima} | {p99s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
