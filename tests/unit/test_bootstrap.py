"""scripts/bootstrap.sh's decisions, run for real against fixture apt roots and stub commands.

Each test builds a root with ``etc/os-release`` and apt sources in one of the layouts found on real
machines, a folder of stub commands (``id``, ``sudo``, ``dpkg-query``, ``apt-get``,
``qemu-system-x86_64``) that record how they were called, and runs the script with
``--system-only`` and a PATH that holds only those stubs and the real text tools the script uses.
Nothing on this machine is read or changed.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bootstrap.sh"
REAL_TOOLS = (
    "bash",
    "awk",
    "sed",
    "head",
    "tail",
    "cat",
    "mkdir",
    "tee",
    "dirname",
    "cut",
    "sha256sum",
    "chmod",
)
EVERY_PACKAGE = (
    "fio nbdkit nbdkit-plugin-python busybox-static dropbear-bin openssh-sftp-server nvme-cli cpio gcc "
    "libc6-dev e2fsprogs kmod python3-venv qemu-utils linux-image-amd64"
)

BOOKWORM = (
    'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
)
TRIXIE = 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\nPRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n'
NOBLE = 'ID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n'
FEDORA = 'ID=fedora\nVERSION_ID=41\nPRETTY_NAME="Fedora Linux 41"\n'

# A stock Debian 12 cloud/container image: deb822 only, no /etc/apt/sources.list.
DEB822_BOOKWORM = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.net/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.net/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE_BOOKWORM = """\
# deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
https://ftp.example.org/debian/ bookworm main
deb-src https://ftp.example.org/debian/ bookworm main
deb http://security.debian.org/debian-security bookworm-security main
"""

STUBS = {
    "id": '[ "$1" = "-u" ] && echo "${STUB_UID:-0}"\n',
    "sudo": (
        'echo "sudo $*" >>"$STUB_LOG"\n[ "${STUB_SUDO:-no}" = yes ] || exit 1\n[ "$1" = -n ] && shift\n"$@"\n'
    ),
    "dpkg-query": (
        'pkg="${!#}"\nfor have in ${STUB_INSTALLED:-}; do\n'
        '  [ "$have" = "$pkg" ] && { printf "install ok installed"; exit 0; }\ndone\nexit 1\n'
    ),
    # apt-get records its arguments; installing qemu-system-x86 puts a QEMU of STUB_NEW_QEMU on PATH.
    "apt-get": (
        'echo "apt-get $*" >>"$STUB_LOG"\n'
        'if [ "$1" = update ] && [ -n "${STUB_UPDATE_FAILS:-}" ]; then\n'
        '  echo "E: Failed to fetch http://mirror.example.net/debian/dists/bookworm/InRelease"\n'
        "  exit 100\nfi\n"
        'case " $* " in *" qemu-system-x86 "*)\n'
        '  printf \'#!/bin/sh\\necho "QEMU emulator version %s"\\n\' "${STUB_NEW_QEMU:-10.0.2}" '
        '>"$STUB_BIN/qemu-system-x86_64"\n'
        '  chmod +x "$STUB_BIN/qemu-system-x86_64";;\nesac\n'
    ),
}


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str
    calls: list[str]
    apt_root: Path

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def written_backports(self) -> str | None:
        path = self.apt_root / "etc/apt/sources.list.d/nvmechaos-backports.sources"
        return path.read_text() if path.exists() else None


@pytest.fixture
def machine(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A function that makes a fixture machine and runs the bootstrap on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the bootstrap tests"
        (bin_dir / tool).symlink_to(found)

    def make(
        os_release: str | None,
        sources: dict[str, str],
        *,
        installed: str = "",
        qemu: str | None = None,
        uid: int = 0,
        dpkg: bool = True,
        args: tuple[str, ...] = ("--system-only",),
        **env: str,
    ) -> Run:
        apt_root = tmp_path / "root"
        (apt_root / "etc/apt/sources.list.d").mkdir(parents=True)
        if os_release is not None:
            (apt_root / "etc/os-release").write_text(os_release)
        for name, text in sources.items():
            (apt_root / "etc/apt" / name).write_text(text)
        for name, body in STUBS.items():
            if name == "dpkg-query" and not dpkg:
                continue
            stub = bin_dir / name
            stub.write_text("#!/bin/bash\n" + body)
            stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
        if qemu is not None:
            stub = bin_dir / "qemu-system-x86_64"
            stub.write_text(f'#!/bin/sh\necho "QEMU emulator version {qemu} (Debian 1:{qemu}+ds-1)"\n')
            stub.chmod(0o755)
        log = tmp_path / "calls.log"
        log.touch()
        completed = subprocess.run(
            [str(bin_dir / "bash"), str(SCRIPT), *args],
            env={
                "PATH": str(bin_dir),
                "HOME": str(tmp_path),
                "NVMECHAOS_APT_ROOT": str(apt_root),
                "NVMECHAOS_BOOTSTRAP_LOGS": str(tmp_path / "logs"),
                "STUB_LOG": str(log),
                "STUB_BIN": str(bin_dir),
                "STUB_UID": str(uid),
                "STUB_INSTALLED": installed,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(
            completed.returncode, completed.stdout, completed.stderr, log.read_text().splitlines(), apt_root
        )

    return make


def test_debian12_deb822_only_adds_backports_from_its_mirror(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {"sources.list.d/debian.sources": DEB822_BOOKWORM})
    assert run.status == 0, run.stderr
    written = run.written_backports()
    assert written is not None
    assert "URIs: http://mirror.example.net/debian\n" in written
    assert "Suites: bookworm-backports\n" in written
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in written
    assert run.calls[0] == "apt-get update"
    assert run.calls[1].startswith("apt-get install -y -q --no-install-recommends fio nbdkit")
    assert "linux-image-amd64" in run.calls[1]
    assert run.calls[2] == (
        "apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils"
    )
    # A few lines, not pages of tool output.
    assert len(run.lines) <= 4, run.stderr
    assert run.lines[-1] == "[bootstrap] system packages: installed (debian-bookworm, QEMU 10)"


def test_debian12_one_line_sources_with_options_and_trailing_slash(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {"sources.list": ONE_LINE_BOOKWORM})
    assert run.status == 0, run.stderr
    assert "URIs: https://ftp.example.org/debian\n" in (run.written_backports() or "")


def test_debian12_with_no_sources_at_all_uses_the_default_mirror(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {})
    assert run.status == 0, run.stderr
    assert "URIs: http://deb.debian.org/debian\n" in (run.written_backports() or "")


@pytest.mark.parametrize(
    "sources",
    [
        {
            "sources.list.d/debian.sources": DEB822_BOOKWORM.replace(
                "bookworm-updates", "bookworm-updates bookworm-backports"
            )
        },
        {
            "sources.list": ONE_LINE_BOOKWORM
            + "deb http://mirror.example.net/debian bookworm-backports main\n"
        },
        {
            "sources.list.d/debian.sources": DEB822_BOOKWORM,
            "sources.list.d/backports.list": "deb http://mirror.example.net/debian/ bookworm-backports main",
        },
    ],
    ids=["deb822", "one-line", "both-formats"],
)
def test_debian12_backports_already_configured_is_used_not_added(machine, sources) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, sources)
    assert run.status == 0, run.stderr
    assert run.written_backports() is None
    assert "-t bookworm-backports qemu-system-x86" in run.calls[-1]


def test_debian12_disabled_backports_stanza_counts_as_absent(machine) -> None:  # type: ignore[no-untyped-def]
    disabled = "\nTypes: deb\nURIs: http://other.example/debian\nSuites: bookworm-backports\nEnabled: no\n"
    run = machine(BOOKWORM, {"sources.list.d/debian.sources": DEB822_BOOKWORM + disabled})
    assert run.status == 0, run.stderr
    assert "URIs: http://mirror.example.net/debian\n" in (run.written_backports() or "")


def test_debian12_with_new_qemu_installed_needs_no_backports(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(
        BOOKWORM, {"sources.list.d/debian.sources": DEB822_BOOKWORM}, installed="fio", qemu="10.0.2"
    )
    assert run.status == 0, run.stderr
    assert run.written_backports() is None
    assert all("qemu-system-x86" not in call for call in run.calls)


def test_debian13_installs_qemu_from_its_own_suite(machine) -> None:  # type: ignore[no-untyped-def]
    trixie = DEB822_BOOKWORM.replace("bookworm", "trixie")
    run = machine(TRIXIE, {"sources.list.d/debian.sources": trixie})
    assert run.status == 0, run.stderr
    assert run.written_backports() is None
    assert run.calls[-1] == "apt-get install -y -q --no-install-recommends qemu-system-x86 qemu-utils"


def test_everything_present_installs_nothing(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {}, installed=EVERY_PACKAGE, qemu="10.0.2")
    assert run.status == 0, run.stderr
    assert run.calls == []
    assert run.lines == ["[bootstrap] system packages: all present (debian-bookworm, QEMU 10)"]


def test_ubuntu_names_what_to_install_by_hand(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(NOBLE, {}, installed="fio gcc")
    assert run.status == 1
    assert run.calls == []
    assert "missing on Ubuntu 24.04.1 LTS:" in run.stderr
    assert "linux-image-generic" in run.stderr
    assert "apt-get install --no-install-recommends nbdkit" in run.stderr
    assert "Traceback" not in run.stderr


def test_other_distributions_name_the_tools(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(FEDORA, {}, dpkg=False)
    assert run.status == 1
    assert "missing on Fedora Linux 41 (fedora-41): fio nbdkit" in run.stderr
    assert "install these with your package manager" in run.stderr


def test_no_os_release_is_an_unknown_distribution_not_a_silent_exit(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(None, {}, dpkg=False)
    assert run.status == 1
    assert "(unknown-unknown)" in run.stderr


def test_without_root_or_sudo_it_names_the_packages_and_installs_nothing(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {}, uid=1000, installed=EVERY_PACKAGE.replace("fio ", ""))
    assert run.status == 1
    assert "missing: fio qemu-system-x86 (>= 8)" in run.stderr
    assert "root or with password-less sudo" in run.stderr
    assert [call for call in run.calls if call.startswith("apt-get")] == []
    assert run.written_backports() is None


def test_with_password_less_sudo_it_installs_through_sudo(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(
        BOOKWORM, {}, uid=1000, installed=EVERY_PACKAGE.replace("fio ", ""), qemu="10.0.2", STUB_SUDO="yes"
    )
    assert run.status == 0, run.stderr
    assert "sudo apt-get install -y -q --no-install-recommends fio" in run.calls


def test_a_failing_apt_get_names_step_command_log_and_remedy(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {"sources.list.d/debian.sources": DEB822_BOOKWORM}, STUB_UPDATE_FAILS="1")
    assert run.status == 100
    failed = next(line for line in run.lines if "FAILED" in line)
    assert "FAILED in step 'apt-get update' (exit status 100)" in failed
    assert "as_root apt-get update" in failed
    assert "E: Failed to fetch" in run.stderr  # the tail of the tool's log
    assert "[bootstrap] what to do: check the network" in run.stderr


def test_qemu_still_too_old_after_install_stops(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(TRIXIE, {}, installed=EVERY_PACKAGE, qemu="7.2.15", STUB_NEW_QEMU="7.2.19")
    assert run.status == 1
    assert "QEMU 7 is installed but the VM suites need >= 8" in run.stderr


@pytest.mark.parametrize(
    ("sources", "mirror"),
    [
        ({"sources.list.d/debian.sources": DEB822_BOOKWORM}, "http://mirror.example.net/debian"),
        ({"sources.list": ONE_LINE_BOOKWORM}, "https://ftp.example.org/debian"),
        ({}, "http://deb.debian.org/debian"),
    ],
)
def test_print_mirror(machine, sources, mirror) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, sources, args=("--print-mirror",))
    assert run.status == 0, run.stderr
    assert run.stdout == mirror + "\n"
    assert run.calls == []


def test_unknown_option_is_one_line(machine) -> None:  # type: ignore[no-untyped-def]
    run = machine(BOOKWORM, {}, args=("--devv",))
    assert run.status == 2
    assert run.lines == ["[bootstrap] unknown option --devv (use --dev, --system-only or --print-mirror)"]
