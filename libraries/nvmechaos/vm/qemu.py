"""QEMU itself: find it, check its version, probe the accelerator, and read disk files.

``-accel kvm`` can hang with the vCPU spinning in the host kernel (seen on nested and some cloud
machines), so KVM is used only after a probe boot shows the guest kernel running under it within a
few seconds; otherwise TCG. The result is remembered for the life of the process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from nvmechaos.guest.builder import default_cache_dir
from nvmechaos.process import spawn
from nvmechaos.vm.errors import QemuError, VmSpecError

QEMU_BINARY = "qemu-system-x86_64"
MINIMUM_VERSION = (8, 0)
QBOOT = Path("/usr/share/qemu/qboot.rom")
KVM_PROBE_SECONDS = 3.0
_QCOW2_MAGIC = b"QFI\xfb"


@dataclass(frozen=True)
class Qemu:
    """A usable QEMU binary and its version."""

    binary: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)


_found: dict[str, Qemu] = {}
_accel: dict[str, tuple[str, str]] = {}
_lock = threading.Lock()


def parse_version(text: str) -> tuple[int, int, int]:
    """``QEMU emulator version 10.0.2 (Debian ...)`` -> (10, 0, 2).

    Raises:
        QemuError: no version in ``text``.
    """
    match = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise QemuError(f"cannot read QEMU's version from: {text.strip()[:120]}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def find_qemu(binary: str | None = None) -> Qemu:
    """The QEMU to use (``$NVMECHAOS_QEMU`` or qemu-system-x86_64 on PATH), checked to be >= 8.0.

    Raises:
        QemuError: missing, not runnable, or older than 8.0 (whose NVMe emulation loses I/O under TCG).
    """
    name = binary or os.environ.get("NVMECHAOS_QEMU") or QEMU_BINARY
    with _lock:
        if name in _found:
            return _found[name]
    path = shutil.which(name)
    if path is None:
        raise QemuError(
            f"QEMU is not installed: no '{name}' on PATH (run scripts/bootstrap.sh, or apt-get "
            "install qemu-system-x86 qemu-utils; on Debian 12 from bookworm-backports)"
        )
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise QemuError(f"cannot run '{path} --version': {error}") from None
    version = parse_version(result.stdout + result.stderr)
    if version[:2] < MINIMUM_VERSION:
        raise QemuError(
            f"QEMU {'.'.join(map(str, version))} at {path} is too old: need >= 8.0 (7.2's NVMe emulation "
            "loses "
            "I/O under TCG); on Debian 12 install it from bookworm-backports (scripts/bootstrap.sh does)"
        )
    qemu = Qemu(binary=path, version=version)
    with _lock:
        _found[name] = qemu
    return qemu


class Accel(Enum):
    """The accelerator a VM asks for: ``auto`` (``$NVMECHAOS_ACCEL`` if set, else KVM when a probe
    boot shows it works, else TCG), ``kvm`` or ``tcg``."""

    auto = "auto"
    kvm = "kvm"
    tcg = "tcg"

    @classmethod
    def parse(cls, value: Accel | str) -> Accel:
        """``value`` as an accelerator: the enum itself, or its name (``"tcg"``) from code.

        Raises:
            VmSpecError: anything else.
        """
        if isinstance(value, Accel):
            return value
        try:
            return cls(value)
        except ValueError:
            raise VmSpecError(f"accelerator '{value}' is not auto, kvm or tcg") from None


ACCELERATORS = tuple(accel.value for accel in Accel)


def wanted_accelerator(accel: Accel | str = Accel.auto) -> str:
    """The accelerator asked for: ``accel`` (auto, kvm or tcg), with ``$NVMECHAOS_ACCEL`` deciding
    when it is auto; ``env:`` is put before a value that came from the environment.

    Raises:
        VmSpecError: ``accel`` or ``$NVMECHAOS_ACCEL`` is not auto, kvm or tcg.
    """
    asked = Accel.parse(accel)
    if asked is not Accel.auto:
        return str(asked.value)
    value = os.environ.get("NVMECHAOS_ACCEL", "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value not in ACCELERATORS:
        raise VmSpecError(f"NVMECHAOS_ACCEL='{os.environ['NVMECHAOS_ACCEL']}' is not auto, kvm or tcg")
    return f"env:{value}"


def choose_accelerator(qemu: Qemu, wanted: Accel | str, kernel: Path | None) -> tuple[str, str]:
    """The accelerator to run with and why: (``kvm`` or ``tcg``, reason).

    ``wanted`` is auto, kvm or tcg (or what :func:`wanted_accelerator` returns); with auto,
    ``$NVMECHAOS_ACCEL`` decides, else KVM is probed once per process by booting ``kernel`` under
    it for a few seconds. The reason says why KVM was or was not used (e.g. ``NVMECHAOS_ACCEL=tcg``,
    ``/dev/kvm missing``, ``KVM probe timed out after 3 s``).
    """
    if isinstance(wanted, Accel) or not wanted.startswith("env:"):
        wanted = wanted_accelerator(wanted)
    if wanted.startswith("env:"):
        chosen = wanted[4:]
        return chosen, f"NVMECHAOS_ACCEL={chosen}"
    if wanted in ("tcg", "kvm"):
        return wanted, f"accel={wanted} asked for"
    with _lock:
        if qemu.binary in _accel:
            accel, reason = _accel[qemu.binary]
            return accel, f"{reason} (probed earlier in this process)"
    key = _probe_key(qemu)
    cached = _read_probe_cache(key)
    if cached is not None:
        accel, reason = cached
        reason = f"{reason} (probe result cached less than a day ago)"
    else:
        accel, reason = probe_kvm(qemu, kernel)
        if kernel is not None and os.access("/dev/kvm", os.R_OK | os.W_OK):
            _write_probe_cache(key, accel, reason)
    with _lock:
        _accel[qemu.binary] = (accel, reason)
    return accel, reason


PROBE_CACHE_SECONDS = 86400.0


def _probe_cache_file() -> Path:
    return default_cache_dir().parent / "accel-probe.json"


def _probe_key(qemu: Qemu) -> str:
    """What the probe's verdict depends on: this QEMU, the host kernel, and /dev/kvm itself."""
    try:
        kvm = os.stat("/dev/kvm")
        device = f"{kvm.st_rdev}:{kvm.st_mode}:{kvm.st_gid}"
    except OSError:
        device = "none"
    return f"{qemu.binary}|{qemu.version_text}|{os.uname().release}|{device}|{os.getuid()}"


def _read_probe_cache(key: str) -> tuple[str, str] | None:
    """A verdict of the last day for the same key (pabot workers then skip the few-second probe)."""
    try:
        data = json.loads(_probe_cache_file().read_text(encoding="utf-8"))
        entry = data[key]
        if time.time() - float(entry["time"]) < PROBE_CACHE_SECONDS and entry["accel"] in ("kvm", "tcg"):
            return str(entry["accel"]), re.sub(r"^(TCG|KVM): ", "", str(entry["reason"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_probe_cache(key: str, accel: str, reason: str) -> None:
    path = _probe_cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        data[key] = {"accel": accel, "reason": reason, "time": time.time()}
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass


def probe_kvm(qemu: Qemu, kernel: Path | None, seconds: float = KVM_PROBE_SECONDS) -> tuple[str, str]:
    """Boot ``kernel`` under KVM for up to ``seconds``; KVM if it prints on the serial port.

    Returns (accelerator, reason): why KVM was or was not used, e.g. ``/dev/kvm missing`` or
    ``KVM probe timed out after 3 s (...)``."""
    if not os.path.exists("/dev/kvm"):
        return "tcg", "/dev/kvm missing"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm not accessible to this user (add it to group kvm)"
    if kernel is None:
        return "tcg", "no kernel to probe KVM with"
    argv = [
        qemu.binary,
        "-accel",
        "kvm",
        "-M",
        "q35",
        "-cpu",
        "max",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 earlyprintk=serial panic=-1",
    ]
    try:
        process = spawn(
            "qemu kvm probe", argv, scope="kvm-probe", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError as error:
        return "tcg", f"KVM probe could not start: {error}"
    output = b""
    try:
        assert process.popen.stdout is not None
        os.set_blocking(process.popen.stdout.fileno(), False)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunk = process.popen.stdout.read()
            if chunk:
                output += chunk
                if b"Linux version" in output:
                    return "kvm", "the KVM probe guest booted"
            if process.popen.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        process.kill()
    if process.popen.returncode not in (None, -9) and output:
        return "tcg", f"KVM failed: {output.decode(errors='replace').strip().splitlines()[-1][:120]}"
    return "tcg", f"KVM probe timed out after {seconds:g} s (the guest printed nothing: KVM hangs here)"


def image_format(path: Path) -> str:
    """``qcow2`` or ``raw``, from the file's first bytes."""
    with open(path, "rb") as handle:
        return "qcow2" if handle.read(4) == _QCOW2_MAGIC else "raw"


def virtual_size(path: Path, fmt: str) -> int:
    """The guest-visible size of a raw or qcow2 file.

    Raises:
        VmSpecError: the file cannot be read or is not the format named.
    """
    try:
        if fmt == "raw":
            return path.stat().st_size
        with open(path, "rb") as handle:
            header = handle.read(32)
    except OSError as error:
        raise VmSpecError(f"cannot read backing file '{path}': {error.strerror}") from None
    if len(header) < 32 or header[:4] != _QCOW2_MAGIC:
        raise VmSpecError(f"backing file '{path}' is not a qcow2 image")
    return int(struct.unpack(">Q", header[24:32])[0])


def create_image(path: Path, fmt: str, size: int) -> None:
    """Create a sparse raw file or a qcow2 image of ``size`` bytes.

    Raises:
        VmSpecError: the size does not fit the free space, or the file cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stats = os.statvfs(path.parent)
    except OSError as error:
        raise VmSpecError(f"cannot create backing file '{path}': {error.strerror}") from None
    free = stats.f_bavail * stats.f_frsize
    if size > free:
        raise VmSpecError(
            f"namespace size {size} bytes does not fit: only {free} bytes free in '{path.parent}'"
        )
    if fmt == "raw":
        try:
            with open(path, "wb") as handle:
                handle.truncate(size)
        except OSError as error:
            raise VmSpecError(f"cannot create backing file '{path}': {error.strerror}") from None
        return
    tool = shutil.which("qemu-img")
    if tool is None:
        raise VmSpecError(
            "qemu-img is not installed (apt-get install qemu-utils): needed for qcow2 namespaces"
        )
    result = subprocess.run(
        [tool, "create", "-q", "-f", "qcow2", str(path), str(size)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise VmSpecError(f"qemu-img create '{path}' failed: {result.stderr.strip()}")
