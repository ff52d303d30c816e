#!/usr/bin/env bash
# Installs what the framework needs on this machine, idempotently:
#   - Debian packages (fio, QEMU >= 8, nbdkit, the guest's ingredients) when root or via sudo,
#     otherwise a message that names what is missing;
#   - the Python virtual environment .venv with the project installed (editable);
#   - the built-in guest image (cached; rebuilt only when its inputs change).
# Usage: scripts/bootstrap.sh [--dev]     (--dev adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# ---- Debian packages --------------------------------------------------------------------------
APT_PACKAGES=(fio nbdkit nbdkit-plugin-python busybox-static dropbear-bin openssh-sftp-server nvme-cli cpio gcc libc6-dev
  e2fsprogs kmod linux-image-amd64 python3-venv qemu-utils)
QEMU_MIN_MAJOR=8

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 99
  fi
}

qemu_major() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 || { echo 0; return; }
  qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
need_qemu=0
[ "$(qemu_major)" -ge "$QEMU_MIN_MAJOR" ] 2>/dev/null || need_qemu=1

if [ ${#missing[@]} -gt 0 ] || [ $need_qemu -eq 1 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "not a Debian/Ubuntu system: install by hand: ${missing[*]} and QEMU >= $QEMU_MIN_MAJOR"
    exit 1
  fi
  if ! as_root true; then
    say "missing packages: ${missing[*]}$( [ $need_qemu -eq 1 ] && echo " qemu-system-x86(>= $QEMU_MIN_MAJOR)")"
    say "run this script as root or with password-less sudo, or install them by hand"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  qemu_target=()
  if [ $need_qemu -eq 1 ]; then
    # Debian 12 ships QEMU 7.2, whose NVMe emulation loses I/O under TCG: take QEMU from backports.
    . /etc/os-release
    if [ "${ID:-}" = "debian" ] && [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
      if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        mirror=$(grep -rhos 'http[s]*://[^ ]*debian ' /etc/apt/sources.list /etc/apt/sources.list.d/ | head -n1 | tr -d ' ')
        mirror=${mirror:-http://deb.debian.org/debian}
        say "adding bookworm-backports from $mirror for QEMU >= $QEMU_MIN_MAJOR"
        as_root tee /etc/apt/sources.list.d/nvmechaos-backports.list >/dev/null \
          <<<"deb $mirror bookworm-backports main"
      fi
      qemu_target=(-t bookworm-backports)
    fi
  fi
  say "installing: ${missing[*]} $( [ $need_qemu -eq 1 ] && echo qemu-system-x86 )"
  as_root apt-get update -q >/dev/null
  [ ${#missing[@]} -gt 0 ] && as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  if [ $need_qemu -eq 1 ]; then
    as_root apt-get install -y -q --no-install-recommends "${qemu_target[@]}" qemu-system-x86 qemu-utils >/dev/null
  fi
fi
if [ "$(qemu_major)" -lt "$QEMU_MIN_MAJOR" ]; then
  say "QEMU $(qemu_major) is too old (need >= $QEMU_MIN_MAJOR): the VM suites will fail to launch"
fi

# ---- Python environment ------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
extras=""
stamp=".venv/.installed"
if [ $DEV -eq 1 ]; then
  extras="[dev]"
  stamp=".venv/.installed-dev"
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extras}"
  echo "$want" >"$stamp"
fi

# ---- Guest image -------------------------------------------------------------------------------
if [ -f libraries/nvmechaos/guest/__main__.py ]; then
  say "checking the built-in guest image"
  .venv/bin/python -m nvmechaos.guest build >/dev/null
fi
say "ready"
