"""Fidelity of ``Run Fio Job On VM``: its IOPS vs the same fio command run by hand over SSH.

Boots one built-in guest, then runs ``--rounds`` rounds of both paths (A first in odd rounds, B
first in even ones):
  A. the framework path: an in-process Robot run of ``Run Fio Job On VM`` (resources/vm.resource:
     FioLibrary prepares the job, VmLibrary copies it in over the VM's own SSH connection, runs fio
     under the guest's ``timeout`` and fetches JSON and logs, FioLibrary collects the result);
  B. by hand: the same job file copied with paramiko's SFTP and the same fio command run over one
     SSH channel.
Prints each pair and the ratio of the medians (A / B); the goal is >= 0.98.

    .venv/bin/python benchmarks/vm_fidelity.py [--rounds 5] [--runtime 5] [--job mixed_randrw]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import robot

import __main__
from nvmechaos.fio.runner import prepare_job
from nvmechaos.process import ProcessRegistry
from nvmechaos.vm import Vm, VmSpec, launch_vm

ROOT = Path(__file__).resolve().parents[1]
VM: Vm | None = None

SUITE = """\
*** Settings ***
Resource    {resource}

*** Test Cases ***
Framework Path
    ${{result}}    Run Fio Job On VM    ${{VM}}    {job}    runtime={runtime}
"""


def total_iops(fio_json: Path) -> float:
    data = json.loads(fio_json.read_text(encoding="utf-8"))
    return sum(job[d]["iops"] for job in data["jobs"] for d in ("read", "write", "trim"))


def framework_round(work: Path, job: str, runtime: int, index: int) -> float:
    suite = work / "fidelity.robot"
    suite.write_text(SUITE.format(resource=ROOT / "resources" / "vm.resource", job=job, runtime=runtime))
    varfile = work / "fidelity_vars.py"
    varfile.write_text("import __main__\n\ndef get_variables():\n    return {'VM': __main__.VM}\n")
    out = work / f"robot-{index}"
    rc = robot.run(
        str(suite),
        variablefile=[str(varfile)],
        outputdir=str(out),
        log="NONE",
        report="NONE",
        output="output.xml",
        console="none",
    )
    if rc != 0:
        raise SystemExit(f"framework round {index} failed (rc {rc}); see {out}/output.xml")
    found = sorted(out.glob("fio/*/*/*/fio.json"))
    return total_iops(found[-1])


def manual_round(vm: Vm, work: Path, job: str, runtime: int, index: int) -> float:
    prepared = prepare_job(
        job, {"filename": "/dev/nvme0n1", "runtime": runtime}, work / f"manual-{index}", [ROOT / "fio_jobs"]
    )
    ssh = vm.ssh()
    try:
        remote = f"/tmp/manual-{index}"
        ssh.run(f"rm -rf {remote} && mkdir -p {remote}")
        sftp = ssh.client.open_sftp()
        sftp.put(str(prepared.run_dir / "job.fio"), f"{remote}/job.fio")
        # Exactly the command Run Fio Job On VM runs (json+ and interval logs), minus its guard.
        result = ssh.run(f"cd {remote} && {' '.join(prepared.argv())}", timeout=runtime + 120)
        if result.exit_code != 0:
            raise SystemExit(f"manual fio failed: {result.stderr}")
        sftp.get(f"{remote}/fio.json", str(prepared.run_dir / "fio.json"))
        sftp.close()
        ssh.run(f"rm -rf {remote}")
    finally:
        ssh.close()
    return total_iops(prepared.run_dir / "fio.json")


def main() -> int:
    global VM  # noqa: PLW0603 - the in-process Robot run reads the VM through a variable file
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runtime", type=int, default=5)
    parser.add_argument("--job", default="mixed_randrw")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        work = Path(tmp)
        # A registry of its own: the libraries' listeners end their registries' processes at close.
        vm = launch_vm(VmSpec(name="fidelity"), work / "vm", registry=ProcessRegistry())
        __main__.VM = VM = vm
        try:
            vm.wait_until_ready(120)
            framework, manual = [], []
            for index in range(1, args.rounds + 1):
                # Alternate which path goes first (ABBA), so drift over time cancels out.
                if index % 2:
                    framework.append(framework_round(work, args.job, args.runtime, index))
                    manual.append(manual_round(vm, work, args.job, args.runtime, index))
                else:
                    manual.append(manual_round(vm, work, args.job, args.runtime, index))
                    framework.append(framework_round(work, args.job, args.runtime, index))
                print(
                    f"round {index}: framework {framework[-1]:8.1f} IOPS, by hand {manual[-1]:8.1f} IOPS, "
                    f"ratio {framework[-1] / manual[-1]:.3f}",
                    flush=True,
                )
        finally:
            vm.close()
    ratio = statistics.median(framework) / statistics.median(manual)
    pairs = statistics.geometric_mean([a / b for a, b in zip(framework, manual, strict=True)])
    median_a, median_b = statistics.median(framework), statistics.median(manual)
    print(f"median framework {median_a:.1f} IOPS, by hand {median_b:.1f} IOPS")
    print(f"fidelity ratio (median A / median B): {ratio:.3f} (goal >= 0.98)")
    print(f"geometric mean of the per-round ratios: {pairs:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
