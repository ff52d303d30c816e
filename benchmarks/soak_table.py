"""Pass counts per test over repeated runs of the same suites (a soak), from their output.xml files.

    .venv/bin/python benchmarks/soak_table.py /tmp/soak-1 /tmp/soak-2 ...   # folders or output.xml files

Prints one Markdown row per test (suite, test, PASS/FAIL/SKIP counts) and then the first line of
every failure message, so a flaky verdict shows how it failed.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path


def main(paths: list[str]) -> int:
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    failures: list[str] = []
    runs = 0
    for given in paths:
        path = Path(given)
        output = path / "output.xml" if path.is_dir() else path
        if not output.is_file() or output.suffix != ".xml":
            print(f"{given}: no output.xml (the run did not finish)", file=sys.stderr)
            continue
        runs += 1
        root = ET.parse(output).getroot()
        for suite in root.iter("suite"):
            for test in suite.findall("test"):
                status = test.find("status")
                result = status.get("status", "?") if status is not None else "?"
                key = (suite.get("name", "?"), test.get("name", "?"))
                counts[key][result] += 1
                if result == "FAIL" and status is not None:
                    message = (status.text or "").strip().splitlines()
                    failures.append(f"{path.name}: {key[1]}: {' / '.join(message[:3])[:400]}")
    print(f"{runs} runs\n")
    print("| suite | test | pass | fail | skip |")
    print("|---|---|---:|---:|---:|")
    for (suite, test), count in counts.items():
        print(f"| {suite} | {test} | {count['PASS']} | {count['FAIL']} | {count['SKIP']} |")
    if failures:
        print("\nFailures:")
        for line in failures:
            print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
