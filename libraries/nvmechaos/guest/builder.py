"""Build a small bootable guest from this host's packages, and cache it by its inputs.

The guest is the distro kernel plus an initramfs that holds busybox (init, shell, applets), fio,
nvme-cli and dropbear with the libraries they link, and the NVMe and virtio modules. Its ``/init``
loads the modules, configures slirp's static network and starts dropbear with the host key the
builder generated (key-only logins for root).

The per-run SSH key does not live in the image: the VM passes its public key on the kernel command
line (``nvmechaos.authkey=TYPE:BASE64``) and ``/init`` writes it to ``/root/.ssh/authorized_keys``,
so one cached image serves every run and every pabot worker.

An image lives in ``CACHE/<digest>/`` where the digest covers the recipe, the builder's version and
the size and modification time of every input file; a change to any of them builds a new image.
Builds go to a temporary folder renamed into place, so concurrent builders never see half an image.

One module (about 610 lines) because it is one pipeline, recipe → plan (the inputs and their
digest) → image folder, whose steps share the plan; the cpio writer and ``init.sh`` are apart.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nvmechaos.errors import NvmeChaosError
from nvmechaos.guest.cpio import CpioWriter

BUILDER_VERSION = "8"
MANIFEST = "manifest.json"
# Images unused for this many days are removed when a new one is built.
PRUNE_DAYS = 14
KERNEL_NAME = "vmlinuz"
# The kernel decompressed once at build time, booted through its PVH entry point: under TCG this
# skips ~3 s of in-guest xz decompression per boot.
VMLINUX_NAME = "vmlinux"
_XEN_ELFNOTE_PHYS32_ENTRY = 18
INITRD_NAME = "initrd.img"
TOOLS_NAME = "tools.img"
TOOLS_MOUNT = "/opt/tools"
# Modules that read the tools disk (virtio-blk, ext4 without journal or metadata checksums).
TOOLS_MODULES: tuple[str, ...] = ("virtio_blk", "ext4")
HOST_KEY_NAME = "ssh_host_ed25519_key"
HOST_KEY_PUB_NAME = "ssh_host_ed25519_key.pub"
AUTHKEY_PARAM = "nvmechaos.authkey"
GUEST_ADDRESS = "10.0.2.15"
# Loaded in this order before the dependencies modprobe lists: busybox insmod ignores softdeps, and
# crc-t10dif / crc64-rocksoft fail to initialise without the generic crypto drivers loaded first.
# The network first: the link comes up ~1 s after eth0 is set up (linkwatch), and that second
# overlaps with loading the rest.
DEFAULT_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_net",
    "crct10dif_generic",
    "crc64_rocksoft_generic",
    "nvme",
)
COMPRESSIONS = ("none", "gzip", "lz4")
# Kernel command line shared by every boot of the built-in guest.
BASE_APPEND = (
    "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init cryptomgr.notests "
    "i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1 no_timer_check tsc=reliable"
)

# The guest's /init (PID 1), kept as a shell script beside this module (package data).
INIT_SCRIPT = (Path(__file__).with_name("init.sh")).read_text(encoding="utf-8")


class GuestImageError(NvmeChaosError):
    """The guest image cannot be built or read: a missing host package, kernel or module."""


@dataclass(frozen=True)
class GuestImage:
    """A built guest: the files to boot and the host key to check SSH against."""

    directory: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    host_key: str
    append: str = BASE_APPEND
    has_fio: bool = True
    # Read-only ext4 image with fio, nvme-cli and their libraries (attach as the guest's /dev/vda).
    tools_disk: Path | None = None

    @classmethod
    def load(cls, directory: Path) -> GuestImage:
        """Read a built image from its folder.

        Raises:
            GuestImageError: the folder holds no complete image.
        """
        try:
            manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
            image = cls(
                directory=directory,
                kernel=directory / str(manifest.get("kernel_file", KERNEL_NAME)),
                initrd=directory / INITRD_NAME,
                kernel_version=str(manifest["kernel_version"]),
                host_key=str(manifest["host_key"]),
                append=str(manifest.get("append", BASE_APPEND)),
                has_fio=bool(manifest.get("has_fio", True)),
                tools_disk=directory / str(manifest["tools_disk"]) if manifest.get("tools_disk") else None,
            )
        except (OSError, ValueError, KeyError) as error:
            raise GuestImageError(f"no complete guest image in '{directory}': {error}") from None
        for path in (image.kernel, image.initrd, image.tools_disk):
            if path is not None and not path.is_file():
                raise GuestImageError(f"guest image '{directory}' lacks {path.name}")
        return image


@dataclass(frozen=True)
class GuestRecipe:
    """What goes into the guest. Every field is part of the cache key."""

    kernel: Path | None = None
    modules: tuple[str, ...] = DEFAULT_MODULES
    with_fio: bool = True
    compression: str = "none"
    pvh: bool = True
    # fio and nvme-cli (and the libraries only they need) on a read-only disk instead of the initramfs.
    tools_disk: bool = True
    busybox: str = "busybox"
    fio: str = "fio"
    nvme: str = "nvme"
    dropbear: str = "dropbear"
    # dropbear runs /usr/lib/sftp-server for SFTP (SSHLibrary's Put File / Get File).
    sftp_server: str = "/usr/lib/openssh/sftp-server"
    extra_programs: tuple[str, ...] = field(default_factory=tuple)

    def kernel_path(self) -> Path:
        """The kernel to boot: the one given, else the newest ``/boot/vmlinuz-*``.

        Raises:
            GuestImageError: no kernel found.
        """
        if self.kernel is not None:
            if not self.kernel.is_file():
                raise GuestImageError(f"kernel '{self.kernel}' does not exist")
            return self.kernel
        kernels = sorted(Path("/boot").glob("vmlinuz-*"), key=lambda p: _version_key(p.name))
        if not kernels:
            raise GuestImageError("no kernel in /boot: install one (apt-get install linux-image-amd64)")
        return kernels[-1]


def _version_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def kernel_version(kernel: Path) -> str:
    """The release of a ``/boot/vmlinuz-RELEASE`` kernel (its modules live in /lib/modules/RELEASE)."""
    name = kernel.name
    if name.startswith("vmlinuz-"):
        return name[len("vmlinuz-") :]
    raise GuestImageError(
        f"cannot tell the release of kernel '{kernel}': expected a file named vmlinuz-RELEASE"
    )


def default_cache_dir() -> Path:
    """``$NVMECHAOS_CACHE/guest``, else ``$XDG_CACHE_HOME/nvmechaos/guest``, else ``~/.cache/...``."""
    if os.environ.get("NVMECHAOS_CACHE"):
        return Path(os.environ["NVMECHAOS_CACHE"]) / "guest"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nvmechaos" / "guest"


def _which(program: str) -> Path:
    found = shutil.which(program, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        package = {"busybox": "busybox-static", "dropbear": "dropbear-bin", "nvme": "nvme-cli"}.get(
            program, program
        )
        raise GuestImageError(f"'{program}' is not installed on this host (apt-get install {package})")
    return Path(found)


def shared_libraries(binary: Path) -> list[Path]:
    """Every library ``binary`` loads, the dynamic loader included (ldd prints it without '=>').

    Raises:
        GuestImageError: ldd fails or a library is missing.
    """
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if "not a dynamic executable" in output:
        return []
    if result.returncode != 0:
        raise GuestImageError(f"ldd {binary} failed: {output.strip()}")
    libraries: list[Path] = []
    for line in output.splitlines():
        text = line.strip()
        if "=> not found" in text:
            raise GuestImageError(f"{binary} needs a library that is not installed: {text}")
        if "=>" in text:
            target = text.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
            if target.startswith("/"):
                libraries.append(Path(target))
        elif text.startswith("/"):
            libraries.append(Path(text.split(" (", 1)[0]))
    return libraries


def module_files(release: str, modules: Sequence[str], root: Path = Path("/")) -> list[str]:
    """Module files (relative to /lib/modules/RELEASE) to insmod, dependencies first, each once.

    Raises:
        GuestImageError: a module is unknown or modprobe is missing.
    """
    base = root / "lib" / "modules" / release
    if not base.is_dir():
        raise GuestImageError(
            f"no modules for kernel {release} in {base} (install the matching linux-image package)"
        )
    ordered: list[str] = []
    for module in modules:
        try:
            result = subprocess.run(
                ["modprobe", "-d", str(root), "-S", release, "--show-depends", module],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise GuestImageError("modprobe is not installed (apt-get install kmod)") from None
        if result.returncode != 0:
            raise GuestImageError(
                f"kernel module '{module}' not found for {release}: {result.stderr.strip()}"
            )
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "insmod":
                relative = str(Path("/" + parts[1].lstrip("/")).relative_to(base))
                if relative not in ordered:
                    ordered.append(relative)
    return ordered


def _file_stamp(path: Path) -> list[object]:
    info = path.stat()
    return [str(path), info.st_size, info.st_mtime_ns]


@dataclass
class _Plan:
    """Everything the build reads, resolved on this host."""

    recipe: GuestRecipe
    kernel: Path
    release: str
    busybox: Path
    programs: dict[str, Path]
    libraries: list[Path]
    modules: list[str]
    # Programs and libraries that go on the tools disk (empty without one).
    lazy_programs: set[str] = field(default_factory=set)
    lazy_libraries: list[Path] = field(default_factory=list)

    def digest(self) -> str:
        stamps: list[object] = [BUILDER_VERSION, INIT_SCRIPT, BASE_APPEND, repr(self.recipe)]
        stamps.append(_file_stamp(self.kernel))
        stamps.append(_file_stamp(self.busybox))
        stamps.extend(_file_stamp(p) for p in self.programs.values())
        stamps.extend(_file_stamp(p) for p in self.libraries + self.lazy_libraries)
        modules_dir = Path("/lib/modules") / self.release
        stamps.extend(_file_stamp(modules_dir / m) for m in self.modules)
        return hashlib.sha256(json.dumps(stamps, default=str).encode()).hexdigest()[:16]


def _plan(recipe: GuestRecipe) -> _Plan:
    if recipe.compression not in COMPRESSIONS:
        raise GuestImageError(
            f"unknown initramfs compression '{recipe.compression}' (one of {', '.join(COMPRESSIONS)})"
        )
    kernel = recipe.kernel_path()
    release = kernel_version(kernel)
    busybox = _which(recipe.busybox)
    if shared_libraries(busybox):
        raise GuestImageError(f"{busybox} is not static: install busybox-static")
    names = [recipe.dropbear, recipe.nvme, *recipe.extra_programs]
    if recipe.with_fio:
        names.insert(0, recipe.fio)
    programs = {name: _which(name) for name in names}
    sftp = Path(recipe.sftp_server)
    if not sftp.is_file():
        raise GuestImageError(f"'{sftp}' is not installed on this host (apt-get install openssh-sftp-server)")
    programs["sftp-server"] = sftp
    lazy = (
        {name for name in programs if name not in (recipe.dropbear, "sftp-server")}
        if recipe.tools_disk
        else set()
    )
    libraries: list[Path] = []
    lazy_libraries: list[Path] = []
    for name, program in programs.items():
        if name in lazy:
            continue
        for library in shared_libraries(program):
            if library not in libraries:
                libraries.append(library)
    for name in lazy:
        for library in shared_libraries(programs[name]):
            if library not in libraries and library not in lazy_libraries:
                lazy_libraries.append(library)
    if lazy:
        _which("mke2fs")
    modules = module_files(release, recipe.modules + (TOOLS_MODULES if lazy else ()))
    return _Plan(recipe, kernel, release, busybox, programs, libraries, modules, lazy, lazy_libraries)


def image_directory(recipe: GuestRecipe = GuestRecipe(), cache_dir: Path | None = None) -> Path:
    """Where the image for ``recipe`` lives (built or not)."""
    return (cache_dir or default_cache_dir()) / _plan(recipe).digest()


def build_guest(
    recipe: GuestRecipe = GuestRecipe(), cache_dir: Path | None = None, force: bool = False
) -> GuestImage:
    """Return the cached guest for ``recipe``, building it first if an input changed.

    Raises:
        GuestImageError: a host package, kernel or module is missing, or the cache is not writable.
    """
    plan = _plan(recipe)
    cache = cache_dir or default_cache_dir()
    target = cache / plan.digest()
    if target.is_dir() and not force:
        try:
            image = GuestImage.load(target)
        except GuestImageError:
            shutil.rmtree(target, ignore_errors=True)
        else:
            _mark_used(target)
            return image
    try:
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    except OSError as error:
        raise GuestImageError(f"cannot write the guest cache '{cache}': {error.strerror}") from None
    try:
        _build_into(plan, work)
        if force and target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:
            # Another builder (a parallel pabot worker) finished first: use its image.
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _prune(cache, keep=target)
    return GuestImage.load(target)


def _mark_used(directory: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(directory)


def _prune(cache: Path, keep: Path, max_age_days: float = PRUNE_DAYS) -> None:
    """Remove images (and failed builds) not used for ``max_age_days``: inputs change with every
    kernel or package update, and each image takes ~200 MB."""
    limit = time.time() - max_age_days * 86400
    for entry in cache.iterdir():
        with contextlib.suppress(OSError):
            if entry != keep and entry.is_dir() and entry.stat().st_mtime < limit:
                shutil.rmtree(entry, ignore_errors=True)


def _run(argv: Sequence[str]) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GuestImageError(f"'{' '.join(argv)}' failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def _host_key(work: Path) -> str:
    key = work / HOST_KEY_NAME
    _run(["dropbearkey", "-t", "ed25519", "-f", str(key)])
    for line in _run(["dropbearkey", "-y", "-f", str(key)]).splitlines():
        if line.startswith("ssh-ed25519 "):
            public = " ".join(line.split()[:2])
            (work / HOST_KEY_PUB_NAME).write_text(public + "\n", encoding="utf-8")
            return public
    raise GuestImageError("dropbearkey printed no ed25519 public key")


def _parents(archive: CpioWriter, path: str) -> None:
    parts = path.strip("/").split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        archive.directory("/".join(parts[:depth]))


def _busybox_applets(busybox: Path) -> list[str]:
    output = _run([str(busybox), "--list-full"])
    return [line.strip() for line in output.splitlines() if line.strip()]


def _build_into(plan: _Plan, work: Path) -> None:
    host_key = _host_key(work)
    shutil.copyfile(plan.kernel, work / KERNEL_NAME)
    kernel_file = KERNEL_NAME
    if plan.recipe.pvh and extract_pvh_vmlinux(plan.kernel, work / VMLINUX_NAME):
        kernel_file = VMLINUX_NAME
    raw = work / "initrd.cpio"
    with open(raw, "wb") as stream:
        archive = CpioWriter(stream)
        _fill(archive, plan, work)
        archive.close()
    _compress(raw, work / INITRD_NAME, plan.recipe.compression)
    tools = _tools_disk(plan, work) if plan.lazy_programs else None
    manifest = {
        "builder_version": BUILDER_VERSION,
        "kernel_version": plan.release,
        "kernel_source": str(plan.kernel),
        "kernel_file": kernel_file,
        "host_key": host_key,
        "append": BASE_APPEND,
        "has_fio": plan.recipe.with_fio,
        "compression": plan.recipe.compression,
        "programs": {name: str(path) for name, path in plan.programs.items()},
        "libraries": [str(p) for p in plan.libraries],
        "modules": plan.modules,
        "initrd_bytes": (work / INITRD_NAME).stat().st_size,
        "tools_disk": tools,
        "tools_programs": sorted(plan.lazy_programs),
        "tools_libraries": [str(p) for p in plan.lazy_libraries],
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _fill(archive: CpioWriter, plan: _Plan, work: Path) -> None:
    for directory in (
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "lib",
        "lib64",
        "etc",
        "etc/dropbear",
        "etc/nvmechaos",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "var",
        "mnt",
    ):
        archive.directory(directory)
    archive.directory("root", 0o700)
    archive.directory("root/.ssh", 0o700)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3, 0o666)
    archive.copy("bin/busybox", plan.busybox, 0o755)
    for applet in _busybox_applets(plan.busybox):
        name = applet.lstrip("/")
        if name != "bin/busybox":
            _parents(archive, name)
            archive.symlink(name, "/bin/busybox")
    for name, path in plan.programs.items():
        if name in plan.lazy_programs:
            archive.symlink(f"usr/bin/{name}", f"{TOOLS_MOUNT}/usr/bin/{name}")
            archive.symlink(f"usr/sbin/{name}", f"/usr/bin/{name}")
            continue
        if name == "sftp-server":
            _parents(archive, "usr/lib/sftp-server")
            archive.copy("usr/lib/sftp-server", path, 0o755)
            continue
        target = f"usr/bin/{name}"
        archive.copy(target, path, 0o755)
        archive.symlink(f"usr/sbin/{name}", f"/{target}")
    for library in plan.libraries:
        _parents(archive, str(library))
        archive.copy(str(library), library.resolve(), 0o755)
    for library in plan.lazy_libraries:
        _parents(archive, str(library))
        archive.symlink(str(library), f"{TOOLS_MOUNT}{library}")
    if plan.lazy_programs:
        _parents(archive, TOOLS_MOUNT + "/x")
        archive.directory(TOOLS_MOUNT.strip("/"))
        archive.file("etc/nvmechaos/tools", ("\n".join(sorted(plan.lazy_programs)) + "\n").encode())
    modules_dir = Path("/lib/modules") / plan.release
    for module in plan.modules:
        name = f"lib/modules/{module}"
        _parents(archive, name)
        archive.copy(name, modules_dir / module, 0o644)
    archive.file("etc/nvmechaos/modules", ("\n".join(plan.modules) + "\n").encode())
    archive.copy("etc/dropbear/dropbear_ed25519_host_key", work / HOST_KEY_NAME, 0o600)
    archive.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    archive.file("etc/group", b"root:x:0:\n")
    archive.file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o600)
    archive.file("etc/shells", b"/bin/sh\n")
    archive.file("init", INIT_SCRIPT.encode(), 0o755)


def _tools_disk(plan: _Plan, work: Path) -> str:
    """Write the read-only ext4 image holding the tools disk's programs and libraries."""
    staging = work / "tools"
    for name in plan.lazy_programs:
        target = staging / "usr" / "bin" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plan.programs[name], target)
        target.chmod(0o755)
    for library in plan.lazy_libraries:
        target = staging / str(library).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library.resolve(), target)
        target.chmod(0o755)
    total = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    megabytes = int(total * 1.15) // (1 << 20) + 16
    _run(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal,^metadata_csum",
            "-E",
            "root_owner=0:0",
            "-L",
            "nvmechaos-tools",
            "-d",
            str(staging),
            str(work / TOOLS_NAME),
            f"{megabytes}M",
        ]
    )
    shutil.rmtree(staging)
    return TOOLS_NAME


def _compress(raw: Path, target: Path, compression: str) -> None:
    if compression == "none":
        raw.rename(target)
        return
    if compression == "gzip":
        with open(raw, "rb") as source, gzip.open(target, "wb", compresslevel=6) as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
    else:  # lz4, in the legacy frame format the kernel's unpacker reads
        _run(["lz4", "-l", "-9", "-q", "-f", str(raw), str(target)])
    raw.unlink()


def _has_pvh_note(elf: bytes) -> bool:
    """True if a 64-bit little-endian ELF has the Xen PHYS32_ENTRY note QEMU needs to boot it (PVH)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for index in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + index * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        position, end = p_offset, p_offset + p_filesz
        while position + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, position)
            name = elf[position + 12 : position + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and note_type == _XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            position += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def extract_pvh_vmlinux(bzimage: Path, target: Path) -> bool:
    """Decompress an xz-compressed bzImage into ``target`` if the result can boot via PVH.

    Returns False (and writes nothing) for other compressions or kernels without the PVH note;
    the image then boots the bzImage as it is.
    """
    data = bzimage.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        return False
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    except lzma.LZMAError:
        return False
    if not _has_pvh_note(elf):
        return False
    target.write_bytes(elf)
    return True


def describe(image: GuestImage) -> Iterable[str]:
    """Lines for the CLI: where the image's files are."""
    yield f"directory: {image.directory}"
    yield f"kernel: {image.kernel}"
    yield f"initrd: {image.initrd}"
    yield f"kernel_version: {image.kernel_version}"
    yield f"host_key: {image.host_key}"
