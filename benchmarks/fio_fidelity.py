"""Fidelity: does running a job through `Run Fio Job` change what fio measures?

Runs the same job on the same target file, interleaved: once through Robot (`Run Fio Job`, with its
json+ output and interval logs), once as the plain fio command a user would type. Prints each pair
and the ratio of the medians (goal >= 0.98).

    .venv/bin/python benchmarks/fio_fidelity.py [--rounds 5] [--runtime 5] [--job mixed_randrw]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUITE = """*** Settings ***
Library    FioLibrary

*** Test Cases ***
Measure
    ${{result}}=    Run Fio Job    {job}    directory={target}    runtime={runtime}
    Evaluate    pathlib.Path(r"{out}").write_text(str($result.total_iops))    modules=pathlib
"""


def through_robot(work: Path, job: str, target: Path, runtime: int, index: int) -> float:
    out = work / f"robot-{index}.iops"
    suite = work / "fidelity.robot"
    suite.write_text(SUITE.format(job=job, target=target, runtime=runtime, out=out), encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "robot",
            "--outputdir",
            str(work / f"robot-{index}"),
            "--output",
            "NONE",
            "--report",
            "NONE",
            "--log",
            "NONE",
            "--console",
            "none",
            str(suite),
        ],
        check=True,
        cwd=ROOT,
    )
    return float(out.read_text())


def plain_fio(work: Path, job: str, target: Path, runtime: int, index: int) -> float:
    # fio lets a job file's options win over the command line, so a user edits a copy by hand:
    # set the runtime and the directory in [global].
    edited = work / f"{job}.plain.fio"
    text = (ROOT / "fio_jobs" / f"{job}.fio").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^runtime=.*$", f"runtime={runtime}", text)
    edited.write_text(text.replace("[global]", f"[global]\ndirectory={target}", 1), encoding="utf-8")
    output = work / f"plain-{index}.json"
    subprocess.run(
        ["fio", "--output-format=json", f"--output={output}", str(edited)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    document = json.loads(output.read_text())
    return sum(job[d]["iops"] for job in document["jobs"] for d in ("read", "write", "trim"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runtime", type=int, default=5)
    parser.add_argument("--job", default="mixed_randrw")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        work = Path(tmp)
        target = work / "target"
        target.mkdir()
        robot_iops: list[float] = []
        plain_iops: list[float] = []
        print(f"job {args.job}, {args.runtime} s per run, {args.rounds} interleaved rounds")
        print(f"{'round':>5} {'Run Fio Job':>12} {'plain fio':>12} {'ratio':>7}")
        for index in range(args.rounds):
            first, second = (through_robot, plain_fio) if index % 2 == 0 else (plain_fio, through_robot)
            a = first(work, args.job, target, args.runtime, index)
            b = second(work, args.job, target, args.runtime, index)
            robot, plain = (a, b) if first is through_robot else (b, a)
            robot_iops.append(robot)
            plain_iops.append(plain)
            print(f"{index + 1:>5} {robot:>12,.0f} {plain:>12,.0f} {robot / plain:>7.3f}")
        ratio = statistics.median(robot_iops) / statistics.median(plain_iops)
        print(
            f"median IOPS: Run Fio Job {statistics.median(robot_iops):,.0f}, plain fio "
            f"{statistics.median(plain_iops):,.0f}; ratio {ratio:.3f} (goal >= 0.98)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
