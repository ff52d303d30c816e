"""The README's promise, tested: on a fresh Debian 12, ``./run-suites`` installs what it needs and passes.

Builds (once, then cached) a minimal Debian 12 root with ``mmdebstrap --variant=minbase`` from the
mirror this machine's apt uses, gives it deb822-only apt sources (no ``/etc/apt/sources.list``, as
stock Debian 12 images have them), copies this checkout into it (tracked and new files; no .venv,
results or caches), then runs, inside it, ``./run-suites --include smoke`` — the bootstrap installs the
Debian packages, QEMU from bookworm-backports, the Python environment and the guest — and fails if
anything fails or if a QEMU, nbdkit or fio process is still alive in the root afterwards.

The root runs in its own mount and PID namespaces (``unshare --mount --pid --kill-child``): its
/proc, /dev and /sys mounts vanish with it, and every process in it dies with it, on success,
failure, timeout, Ctrl-C or if this script is killed. Downloaded .deb files and pip wheels are
kept between runs in the cache folder (apt and pip still resolve and install everything; only the
downloads are saved). Results land in ``results/fresh-root/``.

Usage: python tests/fresh_root/check_fresh_root.py [--release trixie] [--keep] [--timeout MINUTES]
       [-- RUN-SUITES ARGS]
Exit status: 0 passed or skipped (the reason is printed), 1 failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nvmechaos.process import spawn

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_RELEASE = "bookworm"
BASE_MAX_AGE_DAYS = 14
# Environment a new machine on this network would have too (proxies, registry settings).
NETWORK_ENV = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "PIP_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
)
# Variables naming a CA bundle file: the file is copied into the root at the same path.
CA_FILE_ENV = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

INNER_SCRIPT = """\
#!/bin/bash
# Runs inside the fresh root, as a new user would: a clone, then the main job's smoke subset.
set -euo pipefail
export HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /root/nvmechaos
status=0
./run-suites --include smoke "$@" || status=$?
# Nothing may be left running once the main job has ended.
left=""
for dir in /proc/[0-9]*; do
  comm=$(cat "$dir/comm" 2>/dev/null) || continue
  case "$comm" in qemu-system-x86* | nbdkit | fio) left="$left $comm(${dir#/proc/})" ;; esac
done
if [ -n "$left" ]; then
  echo "[fresh-root] still running after ./run-suites:$left" >&2
  [ "$status" -eq 0 ] && status=3
fi
exit "$status"
"""

# Mounts made inside the new mount namespace (they vanish with it), then the chroot. $1 is the root,
# $2 the apt archive cache, $3 the pip cache; no user data reaches this shell.
MOUNT_AND_ENTER = """\
set -eu
root=$1 archives=$2 pip_cache=$3
shift 3
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mkdir -p "$root/var/cache/apt/archives" "$root/root/.cache/pip"
mount --bind "$archives" "$root/var/cache/apt/archives"
mount --bind "$pip_cache" "$root/root/.cache/pip"
exec chroot "$root" /bin/bash /root/fresh-check.sh "$@"
"""


def say(message: str) -> None:
    print(f"[fresh-root] {message}", flush=True)


def skip_reason() -> str | None:
    """Why the check cannot run on this machine, or None."""
    if not sys.platform.startswith("linux"):
        return f"needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "needs root (chroot, mounts and namespaces); run ./run-tests as root to include it"
    for tool in ("mmdebstrap", "unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/bootstrap.sh --dev installs mmdebstrap)"
    return None


def debian_mirror() -> str:
    """The mirror this machine's apt uses for Debian 12, as the bootstrap reads it."""
    completed = subprocess.run(
        [str(PROJECT / "scripts" / "bootstrap.sh"), "--print-mirror"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NVMECHAOS_APT_ROOT": ""},
    )
    return completed.stdout.strip()


def deb822_sources(mirror: str, release: str) -> str:
    """Sources as a stock Debian 12 image has them: one deb822 file, no sources.list."""
    return (
        f"Types: deb\nURIs: {mirror}\nSuites: {release} {release}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def base_tarball(cache: Path, mirror: str, release: str) -> Path:
    """A minbase Debian root as a tar file, built once and reused for ``BASE_MAX_AGE_DAYS``."""
    safe = "".join(c if c.isalnum() else "_" for c in mirror)[-60:]
    tarball = cache / f"{release}-minbase-{safe}.tar"
    if tarball.exists() and time.time() - tarball.stat().st_mtime < BASE_MAX_AGE_DAYS * 86400:
        say(f"base root: cached {tarball}")
        return tarball
    say(f"base root: mmdebstrap --variant=minbase {release} from {mirror} (about 20 s)")
    partial = tarball.with_suffix(".partial")
    log = cache / "mmdebstrap.log"
    with log.open("wb") as sink:
        completed = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--format=tar", release, str(partial), mirror],
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise CheckFailed(f"mmdebstrap failed with status {completed.returncode}: see {log}")
    partial.replace(tarball)
    return tarball


def project_files() -> list[str]:
    """The checkout as a clone would have it, plus new files not yet committed (not ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (PROJECT / name).is_file())


def prepare_root(root: Path, tarball: Path, mirror: str, release: str) -> None:
    subprocess.run(["tar", "--numeric-owner", "-xpf", str(tarball), "-C", str(root)], check=True)
    apt = root / "etc" / "apt"
    (apt / "sources.list").unlink(missing_ok=True)
    for old in (apt / "sources.list.d").glob("*.list"):
        old.unlink()
    (apt / "sources.list.d" / "debian.sources").write_text(deb822_sources(mirror, release))
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
    trust = copy_network_trust(root)
    if trust:
        say(f"network trust carried into the root: {', '.join(trust)}")
    checkout = root / "root" / "nvmechaos"
    for name in project_files():
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, target)
    inner = root / "root" / "fresh-check.sh"
    inner.write_text(INNER_SCRIPT)
    inner.chmod(0o755)


def run_inside(root: Path, cache: Path, log: Path, timeout_s: float, suite_args: list[str]) -> int:
    archives = cache / "apt-archives"
    pip_cache = cache / "pip"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    pip_cache.mkdir(parents=True, exist_ok=True)
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
        "/bin/sh",
        "-c",
        MOUNT_AND_ENTER,
        "fresh-root",
        str(root),
        str(archives),
        str(pip_cache),
        *suite_args,
    ]
    with log.open("wb") as sink:
        process = spawn(
            "fresh-root",
            argv,
            env=_clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            return process.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            say(f"timed out after {timeout_s / 60:.0f} min")
            return 124
        finally:
            # unshare --kill-child takes the whole PID namespace (every process in the root) with it.
            process.stop(grace=10)


def _clean_env() -> dict[str, str]:
    """A new user's environment: nothing of ours (no venv, no NVMECHAOS_*, no tox variables), only
    this machine's network settings (proxies, the CA bundle that HTTPS to the registries needs)."""
    keep = ("TERM", *NETWORK_ENV, *CA_FILE_ENV)
    return {name: os.environ[name] for name in keep if name in os.environ} | {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"
    }


def copy_network_trust(root: Path) -> list[str]:
    """Carry this machine's network trust into the root, as an admin sets up a new machine on the same
    network: local CA certificates, the CA bundle files named by the environment, pip's system config.
    Returns what was copied. (On a network that does not intercept TLS this copies nothing that matters.)
    """
    copied = []
    candidates = [Path("/etc/pip.conf"), *sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))]
    candidates += [Path(os.environ[name]) for name in CA_FILE_ENV if name in os.environ]
    for source in candidates:
        if source.is_file():
            target = root / source.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(str(source))
    return sorted(set(copied))


def keep_results(root: Path, out: Path) -> None:
    checkout = root / "root" / "nvmechaos" / "results"
    for name in ("output.xml", "log.html", "report.html", "xunit.xml"):
        if (checkout / name).exists():
            shutil.copy2(checkout / name, out / name)
    if (checkout / "bootstrap").is_dir():
        shutil.copytree(checkout / "bootstrap", out / "bootstrap", dirs_exist_ok=True)


def summary(log: Path) -> list[str]:
    """The lines of the run a reader needs: the bootstrap's own lines and pabot's totals."""
    lines = log.read_text(errors="replace").splitlines()
    wanted = ("[bootstrap]", "[fresh-root]", " tests, ", "FAILED", "Elapsed time")
    return [line for line in lines if any(mark in line for mark in wanted)]


class CheckFailed(Exception):
    """The check could not run to its end (not a test failure inside the root)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the root afterwards (path is printed)")
    parser.add_argument("--timeout", type=float, default=20.0, help="minutes for the whole run (default 20)")
    parser.add_argument(
        "--release", default=DEFAULT_RELEASE, help="Debian release of the root (default bookworm, i.e. 12)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="default: ~/.cache/nvmechaos/fresh-root")
    parser.add_argument("suite_args", nargs="*", help="extra ./run-suites arguments (after --)")
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason:
        say(f"SKIPPED: {reason}")
        return 0
    cache = (
        args.cache
        or Path(os.environ.get("NVMECHAOS_CACHE", Path.home() / ".cache" / "nvmechaos")) / "fresh-root"
    )
    cache.mkdir(parents=True, exist_ok=True)
    out = PROJECT / "results" / "fresh-root"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="nvmechaos-fresh-root-", dir="/var/tmp"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        mirror = debian_mirror()
        tarball = base_tarball(cache, mirror, args.release)
        prepare_root(root, tarball, mirror, args.release)
        say(f"{args.release} root ready in {root}: deb822 sources only, this checkout in /root/nvmechaos")
        say("running ./run-suites --include smoke inside it, bootstrap and all (log: results/fresh-root/)")
        log = out / "run.log"
        status = run_inside(root, cache, log, args.timeout * 60, args.suite_args)
        keep_results(root, out)
        for line in summary(log):
            print(f"  {line}")
        elapsed = time.monotonic() - started
        if status != 0:
            say(f"FAILED (exit status {status}) after {elapsed:.0f} s: see {log} and {out}/log.html")
            return 1
        say(f"passed in {elapsed:.0f} s")
        return 0
    except (CheckFailed, subprocess.CalledProcessError, OSError) as error:
        say(f"FAILED: {error}")
        return 1
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
