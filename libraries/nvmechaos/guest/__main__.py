"""``python -m nvmechaos.guest build [--cache-dir DIR] [--force] [--compression none|gzip|lz4]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nvmechaos.guest.builder import COMPRESSIONS, GuestImageError, GuestRecipe, build_guest, describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nvmechaos.guest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="build (or find in the cache) the built-in guest and print its paths"
    )
    build.add_argument("--cache-dir", type=Path, default=None, help="default: ~/.cache/nvmechaos/guest")
    build.add_argument("--kernel", type=Path, default=None, help="default: the newest /boot/vmlinuz-*")
    build.add_argument("--compression", choices=COMPRESSIONS, default="none")
    build.add_argument("--without-fio", action="store_true", help="leave fio out (for tests of that failure)")
    build.add_argument("--force", action="store_true", help="rebuild even if the cache holds the image")
    args = parser.parse_args(argv)
    recipe = GuestRecipe(kernel=args.kernel, compression=args.compression, with_fio=not args.without_fio)
    started = time.monotonic()
    try:
        image = build_guest(recipe, cache_dir=args.cache_dir, force=args.force)
    except GuestImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in describe(image):
        print(line)
    print(f"seconds: {time.monotonic() - started:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
