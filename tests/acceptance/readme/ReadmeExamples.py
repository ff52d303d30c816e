"""README.md's Robot examples, run as written: a user copies them into a file and runs robot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from robot.api import logger
from robot.libraries.BuiltIn import BuiltIn

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
_BLOCK = re.compile(r"^```robotframework\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SUMMARY = re.compile(r"\d+ tests?, \d+ passed")


def robot_examples() -> list[str]:
    """The ```robotframework blocks of README.md that are whole suites (have test cases), in order;
    two-line fragments inside a paragraph are not examples a user could run."""
    blocks = _BLOCK.findall(README.read_text(encoding="utf-8"))
    return [block for block in blocks if "*** Test Cases ***" in block]


class ReadmeExamples:
    """Keywords that run README's Robot examples in a Robot process of their own."""

    ROBOT_LIBRARY_SCOPE = "SUITE"

    def readme_should_have_robot_examples(self, count: int) -> None:
        """Fail unless README.md has exactly ``count`` Robot examples (a new one needs its own test).

        Example:
        | README Should Have Robot Examples    2
        """
        found = len(robot_examples())
        if found != int(count):
            raise AssertionError(f"README.md has {found} whole Robot examples, the tests run {count}")

    def readme_robot_example_should_pass(self, number: int, first_line: str) -> None:
        """Run README's ``number``-th Robot example (from 1) saved in the repository's root, as the
        README says it runs, and fail with robot's summary unless every test in it passed.
        ``first_line`` is the example's first test name, so a reordered README fails clearly.

        Example:
        | README Robot Example Should Pass    1    Mixed Workload Meets The Default Profile
        """
        examples = robot_examples()
        index = int(number) - 1
        if not 0 <= index < len(examples):
            raise AssertionError(f"README.md has no robotframework example number {number}")
        text = examples[index]
        if f"\n{first_line}\n" not in text:
            raise AssertionError(f"README example {number} has no test '{first_line}': the README changed")
        out = Path(BuiltIn().get_variable_value("${OUTPUT DIR}")) / "readme" / f"example-{number}"
        out.mkdir(parents=True, exist_ok=True)
        suite = ROOT / f".readme-example-{number}.robot"
        suite.write_text(text, encoding="utf-8")
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "robot", "--outputdir", str(out), "--console", "dotted", str(suite)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        finally:
            suite.unlink(missing_ok=True)
        logger.info(f'<a href="{(out / "log.html").as_uri()}">log of example {number}</a>', html=True)
        summary = [line for line in completed.stdout.splitlines() if _SUMMARY.search(line) or "FAIL" in line]
        if completed.returncode != 0 or not summary:
            raise AssertionError(
                f"README example {number} failed (robot exit status {completed.returncode}): "
                + " / ".join(summary or completed.stderr.splitlines()[-3:])
            )
        logger.info(summary[-1])
