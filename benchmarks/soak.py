"""Soak: the main job N times back to back, exactly as a user runs it, and how often each test passed.

Runs ``./run-suites`` (bootstrap check, two pabot workers, every suite not tagged manual) ``--runs``
times, keeps each run's output.xml, log.html and console log in ``results/soak/run-NN/``, then prints
each test's pass count (the flakiest first), every failure's first line, and per run its wall time,
counts and load average. ``--stress-cpu N`` keeps N cores busy with ``stress-ng --cpu N`` for the whole
soak, as a neighbour on a shared Jenkins agent would.

    .venv/bin/python benchmarks/soak.py --runs 10
    .venv/bin/python benchmarks/soak.py --runs 3 --stress-cpu 1
    .venv/bin/python benchmarks/soak.py --runs 2 -- --include fault       # extra ./run-suites arguments
    .venv/bin/python benchmarks/soak.py --table results/soak/run-*         # tabulate earlier runs
    .venv/bin/python benchmarks/soak.py --readme --runs 10   # README's ./run-suites examples first, once each

The summary is also written to ``results/soak/summary.md``. Exit status 0 if every run was green.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from robot.api import ExecutionResult, ResultVisitor
from robot.result import TestCase

from nvmechaos.process import spawn

ROOT = Path(__file__).resolve().parents[1]
SOAK_DIR = ROOT / "results" / "soak"


@dataclass
class RunOutcome:
    """One run of the main job: its tests' statuses and failure messages, and how long it took."""

    name: str
    statuses: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    wall_s: float = float("nan")
    load: tuple[float, float] = (float("nan"), float("nan"))
    exit_status: int | None = None

    def count(self, status: str) -> int:
        return sum(1 for value in self.statuses.values() if value == status)

    @property
    def green(self) -> bool:
        return bool(self.statuses) and self.count("FAIL") == 0 and self.exit_status in (0, None)


class _Collector(ResultVisitor):  # type: ignore[misc]
    def __init__(self, outcome: RunOutcome) -> None:
        self.outcome = outcome

    def visit_test(self, test: TestCase) -> None:
        self.outcome.statuses[test.longname] = test.status
        if test.status == "FAIL":
            self.outcome.failures[test.longname] = test.message.strip().splitlines()[0][:300]


def read_outcome(folder: Path) -> RunOutcome:
    """The tests of one run from ``folder/output.xml`` (an empty outcome if the run left none)."""
    outcome = RunOutcome(folder.name)
    output = folder / "output.xml"
    if output.is_file():
        ExecutionResult(str(output)).visit(_Collector(outcome))
    meta = folder / "soak.txt"
    if meta.is_file():
        values = dict(line.split("=", 1) for line in meta.read_text().splitlines() if "=" in line)
        outcome.wall_s = float(values.get("wall_s", "nan"))
        outcome.load = (float(values.get("load_start", "nan")), float(values.get("load_end", "nan")))
        outcome.exit_status = int(values["exit_status"]) if "exit_status" in values else None
    return outcome


def readme_commands() -> list[str]:
    """The ``./run-suites`` lines of README.md's ```sh blocks, as written (comments removed)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            words = shlex.split(command)
            program = next((w for w in words if "=" not in w.split("/")[0]), "")
            # The plain command is what every soak run is; the ones with arguments run once each.
            if program == "./run-suites" and command != "./run-suites":
                lines.append(command)
    return lines


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """``VAR=value ./run-suites ARGS`` as (environment additions, arguments after ./run-suites)."""
    words = shlex.split(command)
    env = {}
    while words and words[0] != "./run-suites":
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words[1:]


def run_once(
    index: int, suite_args: list[str], env: dict[str, str] | None = None, label: str = ""
) -> RunOutcome:
    folder = SOAK_DIR / (label or f"run-{index:02d}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for stale in ("output.xml", "log.html", "report.html"):
        (ROOT / "results" / stale).unlink(missing_ok=True)
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    with (folder / "console.log").open("wb") as console:
        process = spawn(
            "run-suites", [str(ROOT / "run-suites"), *suite_args], cwd=ROOT, stdout=console, stderr=console
        )
        try:
            status = process.popen.wait()
        finally:
            process.stop()
    wall = time.monotonic() - started
    for name in ("output.xml", "log.html", "report.html"):
        if (ROOT / "results" / name).exists():
            shutil.copy2(ROOT / "results" / name, folder / name)
    (folder / "soak.txt").write_text(
        f"wall_s={wall:.1f}\nload_start={load_start:.2f}\nload_end={os.getloadavg()[0]:.2f}\nexit_status={status}\n"
    )
    return read_outcome(folder)


def summary(outcomes: list[RunOutcome], note: str) -> list[str]:
    counts: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        for test, status in outcome.statuses.items():
            counts.setdefault(test, Counter())[status] += 1
    green = sum(outcome.green for outcome in outcomes)
    lines = [f"# Soak: {green} of {len(outcomes)} runs green{note}", ""]
    lines += ["| test | pass | fail | skip |", "|---|---:|---:|---:|"]
    for test in sorted(counts, key=lambda t: (-counts[t]["FAIL"], t)):
        count = counts[test]
        lines.append(f"| {test} | {count['PASS']} | {count['FAIL']} | {count['SKIP']} |")
    lines += ["", "| run | green | wall s | pass | fail | skip | load avg start → end | exit |"]
    lines.append("|---|---|---:|---:|---:|---:|---|---:|")
    for o in outcomes:
        lines.append(
            f"| {o.name} | {'yes' if o.green else 'NO'} | {o.wall_s:.0f} | {o.count('PASS')} "
            f"| {o.count('FAIL')} | {o.count('SKIP')} | {o.load[0]:.2f} → {o.load[1]:.2f} | {o.exit_status} |"
        )
    failures = [(o.name, test, message) for o in outcomes for test, message in o.failures.items()]
    if failures:
        lines += ["", "Failures:"]
        lines += [f"- {name}: {test}: {message}" for name, test, message in failures]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="how many runs of ./run-suites (default 10)")
    parser.add_argument("--stress-cpu", type=int, default=0, help="cores stress-ng keeps busy meanwhile")
    parser.add_argument("--table", nargs="+", type=Path, help="only tabulate these earlier run folders")
    parser.add_argument(
        "--readme", action="store_true", help="first run README's ./run-suites examples once each"
    )
    parser.add_argument("suite_args", nargs="*", help="extra ./run-suites arguments (after --)")
    args = parser.parse_args(argv)
    if args.table:
        outcomes = [read_outcome(folder) for folder in args.table]
        print("\n".join(summary(outcomes, "")))
        return 0 if all(o.green for o in outcomes) else 1
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    stress = None
    note = ""
    if args.stress_cpu > 0:
        if shutil.which("stress-ng") is None:
            parser.error(
                "stress-ng is not installed (apt-get install stress-ng; scripts/bootstrap.sh --dev has it)"
            )
        stress = spawn("stress-ng", ["stress-ng", "--cpu", str(args.stress_cpu), "--timeout", "0", "--quiet"])
        note = f", with stress-ng --cpu {args.stress_cpu} beside it"
    SOAK_DIR.mkdir(parents=True, exist_ok=True)
    outcomes = []
    examples: list[tuple[str, RunOutcome]] = []
    try:
        for number, command in enumerate(readme_commands() if args.readme else [], start=1):
            env, words = split_command(command)
            outcome = run_once(0, words, env, label=f"readme-{number:02d}")
            examples.append((command, outcome))
            print(
                f"README `{command}`: {'green' if outcome.green else 'RED'} in {outcome.wall_s:.0f} s",
                flush=True,
            )
        for index in range(1, args.runs + 1):
            outcome = run_once(index, args.suite_args)
            outcomes.append(outcome)
            counts = f"{outcome.count('PASS')} passed, {outcome.count('FAIL')} failed"
            print(
                f"run {index}/{args.runs}: {'green' if outcome.green else 'RED'} in {outcome.wall_s:.0f} s "
                f"({counts}, {outcome.count('SKIP')} skipped, load {outcome.load[0]:.2f})",
                flush=True,
            )
    finally:
        if stress is not None:
            stress.stop()
    lines = summary(outcomes, note)
    if examples:
        lines += [
            "",
            "| README example | green | wall s | pass | fail | skip |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| `{command}` | {'yes' if o.green else 'NO'} | {o.wall_s:.0f} | {o.count('PASS')} | "
            f"{o.count('FAIL')} | {o.count('SKIP')} |"
            for command, o in examples
        ]
    (SOAK_DIR / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(o.green for o in outcomes) and all(o.green for _, o in examples) else 1


if __name__ == "__main__":
    sys.exit(main())
