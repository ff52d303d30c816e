"""Generate libdoc HTML for every keyword library under libraries/ and every resource file."""

from __future__ import annotations

import sys
from pathlib import Path

from robot.libdoc import libdoc

ROOT = Path(__file__).resolve().parents[1]


def main(out_dir: str) -> int:
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    sources = [
        p.name for p in sorted((ROOT / "libraries").iterdir()) if p.name.endswith("Library") and p.is_dir()
    ]
    sources += [str(p) for p in sorted((ROOT / "resources").glob("*.resource"))]
    failures = 0
    for source in sources:
        output = target / f"{Path(source).stem}.html"
        status = libdoc(source, str(output), quiet=True)
        if status != 0 or not output.exists():
            print(f"libdoc failed for {source}", file=sys.stderr)
            failures += 1
        else:
            print(f"{source} -> {output}")
    return 1 if failures or not sources else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "results" / "docs")))
