"""What a VM is made of: memory, CPUs, guest, and NVMe controllers with their namespaces.

Sizes accept bytes or a number with a binary unit: ``512``, ``64M``, ``1G``, ``1GiB`` (K, M, G and T
are powers of 1024 with or without ``iB``). Memory is MiB as a bare number (QEMU's ``-m``) or a size
with a unit (``2G``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from nvmechaos import units
from nvmechaos.vm.errors import VmSpecError
from nvmechaos.vm.qemu import Accel

FORMATS = ("raw", "qcow2")
MAX_NAMESPACES = 256  # QEMU's NVME_MAX_NAMESPACES
#: Controllers (ports) one NVMe subsystem may have here: a dual-port drive has 2.
MAX_PATHS = 4
#: The size of a namespace nobody gave a size or a backing store.
DEFAULT_SIZE = 1 << 30


def parse_size(value: str | int, what: str = "size") -> int:
    """:func:`nvmechaos.units.parse_size`, failing with :class:`VmSpecError`."""
    return units.parse_size(value, what, error=VmSpecError)


def parse_memory(value: str | int, what: str = "VM memory") -> int:
    """MiB from ``value``: a bare number is MiB (``2048``, as QEMU's ``-m``), a number with a unit a
    size (``2G``, ``512M``, ``1.5GiB``) that must be a whole number of MiB.

    Raises:
        VmSpecError: not a number or size, not positive, or not whole MiB.
    """
    hint = "give MiB (e.g. 2048) or a size with a unit (e.g. 2G)"
    if isinstance(value, bool):
        raise VmSpecError(f"{what} '{value}' is not an amount of memory ({hint})")
    if isinstance(value, int):
        mib = value
    else:
        text = str(value).strip()
        if re.fullmatch(r"[+-]?\d+", text):
            mib = int(text)
        else:
            if not re.fullmatch(r"\s*\d+(\.\d+)?\s*[kmgtKMGT](i?[bB])?\s*", text):
                raise VmSpecError(f"{what} '{value}' is not an amount of memory ({hint})")
            size = parse_size(text, what)
            if size % (1 << 20):
                raise VmSpecError(f"{what} '{value}' is not a whole number of MiB ({hint})")
            mib = size >> 20
    if mib <= 0:
        raise VmSpecError(f"{what} '{value}' is not positive ({hint})")
    return mib


def format_size(size: int) -> str:
    """``1073741824`` -> ``1 GiB``; sizes that are not whole units stay in bytes."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class NbdExport:
    """An NBD export a namespace reads and writes through (``nbd://HOST:PORT[/NAME]`` or
    ``nbd+unix:///NAME?socket=PATH``)."""

    host: str | None = None
    port: int | None = None
    socket: str | None = None
    export: str = ""
    reconnect_delay: int = 20

    @classmethod
    def parse(cls, uri: str) -> NbdExport:
        """Raises VmSpecError on anything but the two forms above."""
        parsed = urlparse(uri)
        export = parsed.path.lstrip("/")
        if parsed.scheme == "nbd":
            if not parsed.hostname:
                raise VmSpecError(f"NBD URI '{uri}' has no host (use nbd://HOST:PORT[/EXPORT])")
            return cls(host=parsed.hostname, port=parsed.port or 10809, export=export)
        if parsed.scheme == "nbd+unix":
            sockets = parse_qs(parsed.query).get("socket")
            if not sockets:
                raise VmSpecError(f"NBD URI '{uri}' has no socket (use nbd+unix:///EXPORT?socket=PATH)")
            return cls(socket=sockets[0], export=export)
        raise VmSpecError(
            f"NBD URI '{uri}' is not nbd://HOST:PORT[/EXPORT] or nbd+unix:///EXPORT?socket=PATH"
        )

    def blockdev(self, node: str) -> str:
        """The ``-blockdev`` value of a protocol node reading this export."""
        if self.socket is not None:
            server = f"server.type=unix,server.path={_escape(self.socket)}"
        else:
            server = f"server.type=inet,server.host={self.host},server.port={self.port}"
        export = f",export={_escape(self.export)}" if self.export else ""
        return f"driver=nbd,node-name={node},{server}{export},reconnect-delay={self.reconnect_delay}"


def _escape(value: str) -> str:
    """QEMU option values escape commas by doubling them."""
    return value.replace(",", ",,")


@dataclass(frozen=True)
class NamespaceSpec:
    """One namespace: its size and what stores it.

    ``backing`` is an existing raw or qcow2 file; None means a sparse file created in the VM's
    private folder (deleted with it). With ``create`` a missing ``backing`` is created (sparse, of
    ``size``, in a folder that exists) and kept. ``nbd`` is an NBD URI instead. ``size`` None means
    "the size of the existing backing file".
    """

    size: int | None = None
    backing: Path | None = None
    format: str | None = None
    nbd: str | None = None
    block_size: int = 512
    create: bool = False

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise VmSpecError(f"namespace format '{self.format}' is not one of {', '.join(FORMATS)}")
        if self.block_size not in (512, 4096):
            raise VmSpecError(f"namespace block size {self.block_size} is not 512 or 4096")
        if self.nbd is not None and self.backing is not None:
            raise VmSpecError("a namespace has either a backing file or an NBD export, not both")
        if self.nbd is not None:
            NbdExport.parse(self.nbd)
        if self.create and self.backing is None:
            raise VmSpecError("create asks for a backing file to create: give its path (backing)")
        if self.size is not None and self.size % self.block_size:
            raise VmSpecError(
                f"namespace size {self.size} is not a multiple of its block size {self.block_size}"
            )


@dataclass(frozen=True)
class ControllerSpec:
    """One NVMe controller on its own PCIe root port, with one or more namespaces; with ``paths``
    above 1, a multi-port drive: that many controllers (each on its own root port) of one NVMe
    subsystem sharing the namespaces, which the guest sees as one multipath device per namespace."""

    namespaces: tuple[NamespaceSpec, ...] = (NamespaceSpec(size=1 << 30),)
    serial: str | None = None
    paths: int = 1

    def __post_init__(self) -> None:
        if not self.namespaces:
            raise VmSpecError("an NVMe controller needs at least one namespace")
        if (
            isinstance(self.paths, bool)
            or not isinstance(self.paths, int)
            or not 1 <= self.paths <= MAX_PATHS
        ):
            raise VmSpecError(f"paths '{self.paths}' of an NVMe controller must be 1 to {MAX_PATHS}")
        if len(self.namespaces) > MAX_NAMESPACES:
            raise VmSpecError(
                f"{len(self.namespaces)} namespaces on one NVMe controller: "
                f"QEMU takes at most {MAX_NAMESPACES}"
            )
        if self.serial is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,20}", self.serial):
            raise VmSpecError(f"NVMe serial '{self.serial}' must be 1-20 letters, digits, '.', '_' or '-'")


@dataclass(frozen=True)
class GuestSpec:
    """The guest to boot: the built-in image (all None), a kernel+initrd, or a disk image.

    For a user's image, ``ssh_key`` is the private key its ``ssh_user`` accepts, and ``host_key``
    (``TYPE BASE64``) pins the guest's SSH host key; without it the key first seen is pinned.
    """

    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    disk_image: Path | None = None
    ssh_user: str = "root"
    ssh_key: Path | None = None
    host_key: str | None = None
    #: Seconds the guest's NVMe driver waits for an I/O before it aborts it and resets the
    #: controller (kernel option ``nvme_core.io_timeout``; Linux's default is 30). None: the default.
    io_timeout: int | None = None

    @property
    def builtin(self) -> bool:
        return self.kernel is None and self.disk_image is None

    def check(self) -> None:
        """Raises VmSpecError when a file the guest needs does not exist."""
        if self.disk_image is not None and self.kernel is not None:
            raise VmSpecError("give either a disk image or a kernel (and initrd), not both")
        for what, path in (
            ("kernel", self.kernel),
            ("initrd", self.initrd),
            ("disk image", self.disk_image),
            ("SSH key", self.ssh_key),
        ):
            if path is not None and not path.is_file():
                raise VmSpecError(f"{what} '{path}' does not exist")
        if self.initrd is not None and self.kernel is None:
            raise VmSpecError(f"initrd '{self.initrd}' given without a kernel")
        if self.io_timeout is not None:
            if self.disk_image is not None:
                raise VmSpecError(
                    "io_timeout is a kernel option: a disk image boots its own kernel command line "
                    "(set nvme_core.io_timeout there)"
                )
            if not 1 <= self.io_timeout <= 3600:
                raise VmSpecError(f"io_timeout {self.io_timeout} s is not 1 to 3600 s")
        if not self.builtin and self.ssh_key is None and self.kernel is None:
            raise VmSpecError("a user disk image needs the SSH private key its guest accepts (ssh_key)")
        if self.host_key is not None:
            check_host_key(self.host_key)
        if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}", self.ssh_user):
            raise VmSpecError(
                f"SSH user '{self.ssh_user}' is not a user name (letters, digits, '.', '_', '-')"
            )


def check_host_key(line: str) -> None:
    """Raises VmSpecError unless ``line`` is an SSH public key line ``TYPE BASE64 [comment]``."""
    parts = line.split()
    try:
        valid = (
            len(parts) >= 2
            and re.fullmatch(r"(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+", parts[0]) is not None
            and len(base64.b64decode(parts[1], validate=True)) > 0
        )
    except ValueError:
        valid = False
    if not valid:
        raise VmSpecError(
            f"host key '{line[:60]}' is not an SSH public key line (TYPE BASE64, e.g. the guest's "
            "/etc/ssh/ssh_host_ed25519_key.pub)"
        )


@dataclass(frozen=True)
class VmSpec:
    """A whole VM (see the module docstring for sizes)."""

    name: str = "vm"
    memory_mib: int = 1024
    cpus: int = 1
    controllers: tuple[ControllerSpec, ...] = (ControllerSpec(),)
    guest: GuestSpec = field(default_factory=GuestSpec)
    accel: Accel = Accel.auto
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise VmSpecError(f"VM name '{self.name}' must be 1-64 letters, digits, '.', '_' or '-'")
        if self.memory_mib < 128:
            raise VmSpecError(f"VM memory {self.memory_mib} MiB is too small (at least 128 MiB)")
        if not 1 <= self.cpus <= 64:
            raise VmSpecError(f"VM CPUs {self.cpus} must be between 1 and 64")
        # Code may still name the accelerator as text ("tcg"); the spec always holds the enum.
        object.__setattr__(self, "accel", Accel.parse(self.accel))
        if not 1 <= len(self.controllers) <= 16:
            raise VmSpecError(f"{len(self.controllers)} NVMe controllers: use 1 to 16")


def _namespace_from(item: object, where: str) -> NamespaceSpec:
    if isinstance(item, (str, int)) and not isinstance(item, bool):
        return NamespaceSpec(size=parse_size(item, f"{where} size"))
    if not isinstance(item, dict):
        raise VmSpecError(
            f"{where}: expected a size or a mapping with size/backing/format/nbd/block_size/create"
        )
    unknown = set(item) - {"size", "backing", "format", "nbd", "block_size", "create"}
    if unknown:
        raise VmSpecError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    size = item.get("size")
    backing = item.get("backing")
    block_size = item.get("block_size", 512)
    if isinstance(block_size, bool) or not str(block_size).strip().isdigit():
        raise VmSpecError(f"{where}: block_size '{block_size}' is not 512 or 4096")
    create = item.get("create", False)
    if not isinstance(create, bool):
        raise VmSpecError(f"{where}: create '{create}' is not true or false")
    try:
        return NamespaceSpec(
            size=parse_size(size, "size") if size not in (None, "") else None,
            backing=Path(str(backing)) if backing else None,
            format=str(item["format"]) if item.get("format") else None,
            nbd=str(item["nbd"]) if item.get("nbd") else None,
            block_size=int(str(block_size)),
            create=create,
        )
    except VmSpecError as error:
        raise VmSpecError(f"{where}: {error}") from None


def controllers_from(layout: object) -> tuple[ControllerSpec, ...]:
    """Controllers from data (YAML/JSON/Robot lists and dicts).

    ``layout`` is a list with one entry per controller; each entry is a list of namespaces or a
    mapping ``{serial: ..., paths: 2, namespaces: [...]}``; each namespace is a size (``1G``) or a mapping
    ``{size, backing, format, nbd, block_size}``. A single mapping or size means one controller.

    Raises:
        VmSpecError: naming the controller and namespace at fault.
    """
    if isinstance(layout, (str, int, dict)):
        layout = [layout]
    if not isinstance(layout, (list, tuple)) or not layout:
        raise VmSpecError("VM layout must be a non-empty list of controllers")
    controllers = []
    for index, entry in enumerate(layout):
        where = f"controller {index}"
        serial: str | None = None
        paths: object = 1
        items: object = entry
        if isinstance(entry, dict) and "namespaces" in entry:
            unknown = set(entry) - {"namespaces", "serial", "paths"}
            if unknown:
                raise VmSpecError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
            serial = str(entry["serial"]) if entry.get("serial") else None
            paths = entry.get("paths", 1)
            items = entry["namespaces"]
        if isinstance(items, (str, int, dict)):
            items = [items]
        if not isinstance(items, (list, tuple)) or not items:
            raise VmSpecError(f"{where}: needs at least one namespace")
        namespaces = tuple(
            _namespace_from(item, f"{where} namespace {n + 1}") for n, item in enumerate(items)
        )
        try:
            controllers.append(ControllerSpec(namespaces=namespaces, serial=serial, paths=parse_paths(paths)))
        except VmSpecError as error:
            raise VmSpecError(f"{where}: {error}") from None
    return tuple(controllers)


def parse_paths(value: object) -> int:
    """The number of paths (ports) of a controller: a whole number from 1 to :data:`MAX_PATHS`.

    Raises:
        VmSpecError: anything else.
    """
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_PATHS:
        raise VmSpecError(
            f"paths '{value}' of an NVMe controller must be a whole number from 1 to {MAX_PATHS}"
        )
    return int(text)


def layout_from(value: object) -> object:
    """A layout given as JSON text (``[["1G"], {"serial": "A", ...}]``) as data; anything else as it is.

    Raises:
        VmSpecError: text that starts like JSON but is not.
    """
    if isinstance(value, str) and value.strip()[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError as error:
            raise VmSpecError(f"layout is not valid JSON: {error}") from None
    return value


@dataclass(frozen=True)
class SimpleLayout:
    """The simple form of a VM's storage: ``controllers`` controllers with ``namespaces`` namespaces
    each, all of ``size``; or one namespace on a ``backing`` file (created when ``create``) or an
    ``nbd`` export. ``size`` None means the default size, or the backing store's own."""

    size: str | None = None
    namespaces: int = 1
    controllers: int = 1
    backing: str | None = None
    format: str | None = None
    nbd: str | None = None
    create: bool = False
    paths: int = 1

    def given(self) -> list[str]:
        """The options set, as ``name=`` (for a message)."""
        return [
            f"{key}="
            for key, set_ in (
                ("size", self.size not in (None, "")),
                ("namespaces", self.namespaces != 1),
                ("controllers", self.controllers != 1),
                ("backing", bool(self.backing)),
                ("format", bool(self.format)),
                ("nbd", bool(self.nbd)),
                ("create_backing", self.create),
                ("paths", self.paths != 1),
            )
            if set_
        ]

    def controller_specs(self) -> tuple[ControllerSpec, ...]:
        """The controllers this describes.

        Raises:
            VmSpecError: ``create`` without a backing file, a size that is not one, a backing file or
                NBD export given to several namespaces, or a spec the controllers refuse.
        """
        if self.create and not self.backing:
            raise VmSpecError("create_backing=True needs backing= (the path of the file to create)")
        if self.size not in (None, ""):
            size: int | None = parse_size(str(self.size), "namespace size")
        else:
            size = None if (self.backing or self.nbd) else DEFAULT_SIZE
        namespace = NamespaceSpec(
            size=size,
            backing=Path(self.backing) if self.backing else None,
            format=self.format,
            nbd=self.nbd,
            create=self.create,
        )
        if (self.backing or self.nbd) and (self.namespaces > 1 or self.controllers > 1):
            raise VmSpecError("backing= and nbd= describe one namespace: use layout= for several")
        paths = parse_paths(self.paths)
        return tuple(
            ControllerSpec(namespaces=(namespace,) * self.namespaces, paths=paths)
            for _ in range(self.controllers)
        )


def storage_from(
    layout: object, simple: SimpleLayout, serials: Sequence[str] | None = None
) -> tuple[ControllerSpec, ...]:
    """The controllers a launch asks for: from ``layout`` (data or JSON, see :func:`controllers_from`)
    when given, else from the simple form; ``serials`` names the controllers' serial numbers.

    Raises:
        VmSpecError: simple options given beside a layout, ``serials`` not one per controller, or
            anything :func:`controllers_from` and :meth:`SimpleLayout.controller_specs` refuse.
    """
    if layout:
        beside = simple.given()
        if beside:
            raise VmSpecError(
                f"layout= describes every namespace: put {', '.join(beside)} inside the layout, not beside it"
            )
        specs = controllers_from(layout_from(layout))
    else:
        specs = simple.controller_specs()
    if serials:
        if len(serials) != len(specs):
            raise VmSpecError(f"{len(serials)} serials given for {len(specs)} controllers")
        specs = tuple(
            ControllerSpec(namespaces=c.namespaces, serial=s, paths=c.paths)
            for c, s in zip(specs, serials, strict=True)
        )
    return specs
