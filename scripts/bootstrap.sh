#!/usr/bin/env bash
# Installs what the framework needs on this machine, idempotently, and says what it does in a few lines:
#   1. system packages (fio, QEMU >= 8, nbdkit, the guest's ingredients): installed with apt-get on Debian 12
#      (QEMU from bookworm-backports, added in deb822 form if no source has it) and Debian 13, as root or with
#      password-less sudo; elsewhere (Ubuntu, other distributions, no root) it names what to install by hand;
#   2. the Python virtual environment .venv with the project installed (editable);
#   3. the built-in guest image (cached; rebuilt only when its inputs change).
# Every failure names the step, the command and what to do; tool output goes to results/bootstrap/*.log.
#
# Usage: scripts/bootstrap.sh [--dev] [--system-only] [--print-mirror]
#   --dev           also the test and lint tools (shellcheck, mmdebstrap, stress-ng; the [dev] Python extras)
#   --system-only   stop after the system packages
#   --print-mirror  print the Debian mirror apt uses (the fresh-root check builds from it) and exit
# Environment (the tests point these at fixtures and stub commands):
#   NVMECHAOS_APT_ROOT        root whose etc/os-release and etc/apt/ are read and written (default /)
#   NVMECHAOS_BOOTSTRAP_LOGS  folder for the tools' output (default results/bootstrap)
#   PYTHON                    the interpreter that makes .venv (default python3)
set -Eeuo pipefail
cd "$(dirname "$0")/.."

DEV=0
SYSTEM_ONLY=0
PRINT_MIRROR=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --system-only) SYSTEM_ONLY=1 ;;
    --print-mirror) PRINT_MIRROR=1 ;;
    *) printf '[bootstrap] unknown option %s (use --dev, --system-only or --print-mirror)\n' "$arg" >&2; exit 2 ;;
  esac
done

APT_ROOT=${NVMECHAOS_APT_ROOT:-}
APT_ROOT=${APT_ROOT%/}
LOG_DIR=${NVMECHAOS_BOOTSTRAP_LOGS:-results/bootstrap}
STEP="start"
HINT="re-run scripts/bootstrap.sh; if it fails again, report the lines above"
LAST_LOG=""
RUNNING=""

# Messages go to the script's own stderr (fd 3), also from an ERR trap that fires inside a command
# whose output is redirected to a log.
exec 3>&2
say() { printf '[bootstrap] %s\n' "$*" >&3; }

# step NAME HINT: what the script is doing now, and what a user can do if it fails there.
step() {
  STEP=$1
  HINT=$2
  LAST_LOG=""
  RUNNING=""
}

on_error() {
  local status=$1 line=$2 command=$3
  trap - ERR
  say "FAILED in step '$STEP' (exit status $status), scripts/bootstrap.sh line $line: ${RUNNING:-$command}"
  if [ -n "$LAST_LOG" ] && [ -s "$LAST_LOG" ]; then
    say "last lines of $LAST_LOG:"
    tail -n 15 "$LAST_LOG" | sed 's/^/[bootstrap]   | /' >&3
  fi
  say "what to do: $HINT"
  exit "$status"
}
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR

# stop MESSAGE...: a failure the script diagnosed itself (no command failed); each argument is one line.
stop() {
  trap - ERR
  say "STOPPED in step '$STEP':"
  local line
  for line in "$@"; do say "  $line"; done
  exit 1
}

# logged NAME COMMAND...: run a command with its output in $LOG_DIR/NAME.log (shown only if it fails).
logged() {
  local name=$1
  shift
  mkdir -p "$LOG_DIR"
  LAST_LOG="$LOG_DIR/$name.log"
  RUNNING="$*"
  printf '$ %s\n' "$RUNNING" >"$LAST_LOG"
  "$@" >>"$LAST_LOG" 2>&1
  RUNNING=""
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 99
  fi
}

# ---- apt sources: one-line (sources.list, *.list) and deb822 (*.sources) ------------------------------
# Prints "URI SUITE" for every enabled deb source on its own line, trailing slashes removed.
apt_sources() {
  local dir="$APT_ROOT/etc/apt"
  local one_line=() deb822=() file
  [ -f "$dir/sources.list" ] && one_line+=("$dir/sources.list")
  for file in "$dir"/sources.list.d/*.list; do [ -f "$file" ] && one_line+=("$file"); done
  for file in "$dir"/sources.list.d/*.sources; do [ -f "$file" ] && deb822+=("$file"); done
  if [ ${#one_line[@]} -gt 0 ]; then
    # deb [ options ] URI SUITE [COMPONENT...]; options may hold spaces inside the brackets.
    awk '{
      sub(/#.*/, "")
      gsub(/\[[^]]*\]/, "")
      if ($1 == "deb" && NF >= 3) { uri = $2; sub(/\/+$/, "", uri); print uri, $3 }
    }' "${one_line[@]}"
  fi
  if [ ${#deb822[@]} -gt 0 ]; then
    # Stanzas separated by blank lines; "Field: value"; indented lines continue a field (e.g. a key).
    awk '
      function flush(   n, m, i, j, uri) {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
          n = split(uris, u, " "); m = split(suites, s, " ")
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) { uri = u[i]; sub(/\/+$/, "", uri); print uri, s[j] }
        }
        types = ""; uris = ""; suites = ""; enabled = ""; field = ""
      }
      FNR == 1 { flush() }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { if (field == "uris" || field == "suites") { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v); if (field == "uris") uris = uris " " v; else suites = suites " " v }; next }
      {
        i = index($0, ":"); if (i == 0) next
        field = tolower(substr($0, 1, i - 1)); value = substr($0, i + 1); gsub(/^[ \t]+|[ \t]+$/, "", value)
        if (field == "types") types = value
        else if (field == "uris") uris = value
        else if (field == "suites") suites = value
        else if (field == "enabled") enabled = value
      }
      END { flush() }
    ' "${deb822[@]}"
  fi
}

# The mirror serving SUITE (the first source that has it), else Debian's default mirror.
debian_mirror() {
  local suite=$1 uri
  uri=$(apt_sources | awk -v suite="$suite" '$2 == suite { print $1; exit }')
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

has_suite() {
  apt_sources | awk -v suite="$1" '$2 == suite { found = 1 } END { exit !found }'
}

# ---- 1. system packages ---------------------------------------------------------------------------------
step "detect the distribution" "check that $APT_ROOT/etc/os-release exists and is readable"
ID="" VERSION_ID="" VERSION_CODENAME="" PRETTY_NAME=""
if [ -r "$APT_ROOT/etc/os-release" ]; then
  # shellcheck disable=SC1091  # os-release is a shell fragment by specification
  . "$APT_ROOT/etc/os-release"
fi
DISTRO="${ID:-unknown}-${VERSION_CODENAME:-${VERSION_ID:-unknown}}"

if [ $PRINT_MIRROR -eq 1 ]; then
  debian_mirror "${VERSION_CODENAME:-bookworm}"
  exit 0
fi

QEMU_MIN_MAJOR=8
# Debian names; the same names on Ubuntu 24.04 except the kernel (linux-image-generic there).
PACKAGES=(fio nbdkit nbdkit-plugin-python busybox-static dropbear-bin openssh-sftp-server nvme-cli cpio gcc
  libc6-dev e2fsprogs kmod python3-venv qemu-utils)
KERNEL_PACKAGE=linux-image-amd64
[ "${ID:-}" = "ubuntu" ] && KERNEL_PACKAGE=linux-image-generic
PACKAGES+=("$KERNEL_PACKAGE")
[ $DEV -eq 1 ] && PACKAGES+=(shellcheck mmdebstrap stress-ng)
# Tools by command, for distributions without dpkg.
TOOLS=(fio nbdkit busybox dropbear nvme cpio gcc mke2fs modprobe qemu-img qemu-system-x86_64)
[ $DEV -eq 1 ] && TOOLS+=(shellcheck)

qemu_major() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 || { echo 0; return; }
  local major
  major=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p' | head -n1)
  echo "${major:-0}"
}

step "check the installed packages" "install dpkg-query's package (dpkg) or the packages named above by hand"
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
  done
else
  for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 ||
      missing+=("$tool")
  done
fi
need_qemu=0
[ "$(qemu_major)" -ge "$QEMU_MIN_MAJOR" ] || need_qemu=1
qemu_wanted=""
[ $need_qemu -eq 1 ] && qemu_wanted="qemu-system-x86 (>= $QEMU_MIN_MAJOR)"

if [ ${#missing[@]} -eq 0 ] && [ $need_qemu -eq 0 ]; then
  say "system packages: all present ($DISTRO, QEMU $(qemu_major))"
else
  supported=0
  qemu_suite=""
  case "$DISTRO" in
    debian-bookworm) supported=1 qemu_suite=bookworm-backports ;;
    debian-trixie | debian-forky | debian-sid) supported=1 ;;
  esac
  wanted="${missing[*]}${qemu_wanted:+ $qemu_wanted}"
  wanted=${wanted# }
  if [ $supported -eq 0 ]; then
    case "${ID:-unknown}" in
      ubuntu)
        stop "missing on ${PRETTY_NAME:-Ubuntu}: $wanted" \
          "this script installs packages only on Debian 12 and 13; on Ubuntu 24.04 run, as root:" \
          "  apt-get install --no-install-recommends ${missing[*]}${qemu_wanted:+ qemu-system-x86}" \
          "(Ubuntu 24.04 ships QEMU 8.2, which is new enough), then run this command again" ;;
      *)
        stop "missing on ${PRETTY_NAME:-this system} ($DISTRO): $wanted" \
          "this script installs packages only on Debian 12 and 13; install these with your package manager:" \
          "fio, nbdkit with its python plugin, QEMU >= $QEMU_MIN_MAJOR (qemu-system-x86_64, qemu-img)," \
          "busybox (static), dropbear, sftp-server, nvme-cli, cpio, gcc with static libc, e2fsprogs, kmod," \
          "a kernel in /boot, python3 with venv; then run this command again" ;;
    esac
  fi
  step "check for root" "run as root or with password-less sudo, or install by hand: $wanted"
  if ! as_root true; then
    stop "missing: $wanted" "installing them needs root: run this command as root or with password-less sudo," \
      "or install them by hand (apt-get install --no-install-recommends ${missing[*]}${qemu_wanted:+ qemu-system-x86})"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ $need_qemu -eq 1 ] && [ -n "$qemu_suite" ] && ! has_suite "$qemu_suite"; then
    # Debian 12 ships QEMU 7.2, whose NVMe emulation loses I/O under TCG: QEMU comes from backports.
    step "add $qemu_suite" "add a '$qemu_suite' source for your Debian mirror to /etc/apt/sources.list.d/ by hand"
    mirror=$(debian_mirror bookworm)
    say "adding $qemu_suite from $mirror (QEMU >= $QEMU_MIN_MAJOR): /etc/apt/sources.list.d/nvmechaos-backports.sources"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' "$mirror" "$qemu_suite" \
      /usr/share/keyrings/debian-archive-keyring.gpg |
      as_root tee "$APT_ROOT/etc/apt/sources.list.d/nvmechaos-backports.sources" >/dev/null
  fi
  step "apt-get update" "check the network and the mirrors in /etc/apt/sources.list.d/, then run apt-get update by hand"
  say "installing on $DISTRO: $wanted (logs: $LOG_DIR/apt-*.log)"
  logged apt-update as_root apt-get update
  if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install" "run by hand: apt-get install --no-install-recommends ${missing[*]}"
    logged apt-install as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  if [ $need_qemu -eq 1 ]; then
    step "install QEMU" "run by hand: apt-get install --no-install-recommends ${qemu_suite:+-t $qemu_suite }qemu-system-x86 qemu-utils"
    logged apt-qemu as_root apt-get install -y -q --no-install-recommends ${qemu_suite:+-t "$qemu_suite"} \
      qemu-system-x86 qemu-utils
  fi
  step "check QEMU" "install QEMU >= $QEMU_MIN_MAJOR by hand"
  if [ "$(qemu_major)" -lt "$QEMU_MIN_MAJOR" ]; then
    stop "QEMU $(qemu_major) is installed but the VM suites need >= $QEMU_MIN_MAJOR" \
      "(older NVMe emulation loses I/O under TCG): install a newer qemu-system-x86"
  fi
  say "system packages: installed ($DISTRO, QEMU $(qemu_major))"
fi
[ $SYSTEM_ONLY -eq 1 ] && exit 0

# ---- 2. Python environment ------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "create .venv" "check that '$PYTHON -m venv' works (Debian: apt-get install python3-venv)"
  say "creating .venv with $PYTHON"
  logged venv "$PYTHON" -m venv .venv
fi
extras=""
stamp=".venv/.installed"
if [ $DEV -eq 1 ]; then
  extras="[dev]"
  stamp=".venv/.installed-dev"
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  step "install Python packages" "check access to PyPI (pip's proxy settings), then re-run"
  say "installing Python packages into .venv${extras:+ with $extras} (log: $LOG_DIR/pip.log)"
  logged pip-upgrade .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip
  logged pip .venv/bin/python -m pip install --disable-pip-version-check -e ".${extras}"
  echo "$want" >"$stamp"
fi

# ---- 3. guest image -------------------------------------------------------------------------------------
step "build the guest image" "read $LOG_DIR/guest.log; the guest is built from this machine's kernel and packages"
logged guest .venv/bin/python -m nvmechaos.guest build
say "ready"
