"""A VM's NVMe devices: the controllers and namespaces a spec asks for, their backing files, and the
QEMU options that build them.

Planning (:func:`plan_namespaces`) checks everything and creates nothing: existing backing files
readable and big enough, new ones fitting in the free space, serials unique. Only then does
:func:`create_namespaces` create the backing files, so a refused launch leaves no file behind.

Every controller sits on its own PCIe root port (``rp<N>``) so that it can be hot-plugged; a
single-namespace controller takes its block node as ``drive=`` (plugged back in one ``device_add``),
a controller with several namespaces gets one ``nvme-ns`` device per namespace.

A multi-port drive (``paths`` > 1) is an ``nvme-subsys`` (``subsys<N>``) with one controller per
path: ``nvme<N>`` and ``nvme<N>p1``, ``nvme<N>p2``..., each on its own root port, all with the
subsystem's serial, and its namespaces as ``nvme-ns`` devices with ``shared=on`` (attached to every
path; QEMU moves them to the subsystem when a path is unplugged, and a path plugged back in takes
them again). The guest's native NVMe multipath shows one ``/dev/nvmeXnY`` per namespace, with a
hidden ``nvmeXcZnY`` per path.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvmechaos.files import cannot_create
from nvmechaos.vm.errors import VmSpecError
from nvmechaos.vm.qemu import create_image, image_format, virtual_size
from nvmechaos.vm.spec import NamespaceSpec, NbdExport, VmSpec, format_size


@dataclass(frozen=True)
class NamespaceHandle:
    """A namespace as QEMU sees it: block node names, backing store, nsid."""

    nsid: int
    node: str
    file_node: str
    size: int
    format: str
    backing: Path | None
    nbd: str | None
    device_id: str | None
    block_size: int

    def blockdev_argv(self) -> list[str]:
        """The ``-blockdev`` options of this namespace: its protocol node, then its format node."""
        if self.nbd is not None:
            protocol = NbdExport.parse(self.nbd).blockdev(self.file_node)
        else:
            assert self.backing is not None
            protocol = (
                f"driver=file,node-name={self.file_node},filename={escape(self.backing)},"
                "cache.direct=off,aio=threads"
            )
        size = f",size={self.size}" if self.format == "raw" and self.nbd is None else ""
        return [
            "-blockdev",
            protocol,
            "-blockdev",
            f"driver={self.format},node-name={self.node},file={self.file_node}{size}",
        ]


@dataclass(frozen=True)
class ControllerHandle:
    """An NVMe controller: its qdev id, the root port it sits on, its serial and namespaces."""

    id: str
    bus: str
    chassis: int
    slot: int
    serial: str
    namespaces: tuple[NamespaceHandle, ...]
    #: The ``nvme-subsys`` id of a multi-port drive's paths (None: a controller of its own).
    subsystem: str | None = None
    #: The ids of every path of the subsystem, this one included (empty: a controller of its own).
    paths: tuple[str, ...] = ()

    @property
    def single_namespace(self) -> bool:
        return len(self.namespaces) == 1

    @property
    def first_path(self) -> bool:
        """The controller that builds the subsystem and its namespaces (every plain controller)."""
        return not self.paths or self.paths[0] == self.id

    @property
    def last_path(self) -> bool:
        return not self.paths or self.paths[-1] == self.id

    def live_paths_probe(self) -> str:
        """A guest shell command printing ``paths N``: the live controllers with this serial that
        have every namespace attached (a path's namespaces show as ``nvmeXcYnZ`` in its sysfs
        folder); see :func:`parse_live_paths`."""
        return (
            "n=0; for c in /sys/class/nvme/nvme*; do "
            f'[ "$(echo $(cat $c/serial 2>/dev/null))" = "{self.serial}" ] || continue; '
            '[ "$(cat $c/state 2>/dev/null)" = live ] || continue; '
            'k=0; for p in $c/nvme*c*n*; do [ -e "$p" ] && k=$((k + 1)); done; '
            f"[ $k -ge {len(self.namespaces)} ] && n=$((n + 1)); done; echo paths $n"
        )

    def device_add_arguments(self) -> dict[str, Any]:
        """``device_add`` arguments that plug this controller back in.

        Namespaces of a multi-namespace controller: :meth:`namespace_add_arguments`.
        """
        arguments: dict[str, Any] = {"driver": "nvme", "id": self.id, "bus": self.bus, "serial": self.serial}
        if self.subsystem is not None:
            # A path takes the subsystem's shared namespaces, at launch and when plugged back in.
            arguments["subsys"] = self.subsystem
            return arguments
        if self.single_namespace:
            arguments["drive"] = self.namespaces[0].node
            if self.namespaces[0].block_size != 512:
                arguments["logical_block_size"] = self.namespaces[0].block_size
                arguments["physical_block_size"] = self.namespaces[0].block_size
        return arguments

    def namespace_add_arguments(self) -> list[dict[str, Any]]:
        """``device_add`` arguments of the nvme-ns devices (empty for a single-namespace controller;
        for a subsystem, shared namespaces on its first path)."""
        if self.single_namespace and self.subsystem is None:
            return []
        result = []
        for ns in self.namespaces:
            arguments: dict[str, Any] = {
                "driver": "nvme-ns",
                "id": ns.device_id,
                "bus": self.id,
                "drive": ns.node,
                "nsid": ns.nsid,
            }
            if ns.block_size != 512:
                arguments["logical_block_size"] = ns.block_size
                arguments["physical_block_size"] = ns.block_size
            if self.subsystem is not None:
                arguments["bus"] = self.paths[0]
                arguments["shared"] = "on"
            result.append(arguments)
        return result

    def argv(self) -> list[str]:
        """The QEMU options of this controller: its root port, its namespaces' block nodes, its
        device (the same arguments a hot-plug sends) and its nvme-ns devices. A subsystem's first
        path also builds the subsystem and the block nodes; its last path the shared namespaces,
        once every path exists."""
        argv = ["-device", f"pcie-root-port,id={self.bus},chassis={self.chassis},slot={self.slot}"]
        if self.subsystem is not None and self.first_path:
            argv += ["-device", f"nvme-subsys,id={self.subsystem},nqn=nqn.2026-11.io.nvmechaos:{self.serial}"]
        if self.first_path:
            for ns in self.namespaces:
                argv += ns.blockdev_argv()
        devices = [self.device_add_arguments()]
        if self.last_path:
            devices += self.namespace_add_arguments()
        for device in devices:
            argv += ["-device", ",".join(f"{key}={value}" for key, value in device.items())]
        return argv


@dataclass(frozen=True)
class NewImage:
    """A backing file a launch creates: sparse raw or qcow2 of ``size`` bytes; ``kept`` when the user
    asked for it at a path of their own (``create``), else it lives in the VM's run folder."""

    path: Path
    format: str
    size: int
    kept: bool


def parse_live_paths(output: str) -> int | None:
    """The ``N`` of the ``paths N`` line :meth:`ControllerHandle.live_paths_probe` prints (None: none)."""
    for line in output.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "paths" and words[1].isdigit():
            return int(words[1])
    return None


#: Guest command that makes every multipath device spread its I/O over all live paths (the
#: kernel's default, ``numa``, keeps using one path while it lives).
ROUND_ROBIN_COMMAND = "for f in /sys/class/nvme-subsystem/*/iopolicy; do echo round-robin > $f; done"


def escape(path: Path | str) -> str:
    """A path as a QEMU option value (commas doubled)."""
    return str(path).replace(",", ",,")


def create_namespaces(
    spec: VmSpec, run_dir: Path, created: list[Path] | None = None
) -> tuple[ControllerHandle, ...]:
    """The controllers of ``spec`` with their namespaces, creating the backing files they need.

    Every file created at a path the user chose (``create``) is appended to ``created`` as soon as
    it exists, so a launch that fails later can remove it again.

    Raises:
        VmSpecError: as :func:`plan_namespaces`, or a file cannot be created.
    """
    controllers, images = plan_namespaces(spec, run_dir)
    for image in images:
        create_image(image.path, image.format, image.size)
        if image.kept and created is not None:
            created.append(image.path)
    return controllers


def plan_namespaces(spec: VmSpec, run_dir: Path) -> tuple[tuple[ControllerHandle, ...], list[NewImage]]:
    """The controllers of ``spec`` and the backing files to create for them, checked (existing files
    readable and big enough, free space for new ones) without creating anything; ``run_dir`` need
    not exist yet.

    Raises:
        VmSpecError: naming the namespace and the file at fault.
    """
    controllers: list[ControllerHandle] = []
    images: list[NewImage] = []
    for index, controller in enumerate(spec.controllers):
        serial = controller.serial or f"NVMECHAOS{index:04d}"
        handles = []
        for ns_index, ns in enumerate(controller.namespaces):
            nsid = ns_index + 1
            node = f"nvme{index}n{nsid}"
            handle, image = _namespace(
                ns,
                node,
                nsid,
                run_dir,
                with_device=len(controller.namespaces) > 1 or controller.paths > 1,
                controller=f"nvme{index}",
            )
            handles.append(handle)
            if image is not None:
                if any(image.path == other.path for other in images):
                    raise VmSpecError(f"backing file '{image.path}' is given to two namespaces")
                images.append(image)
        ids = tuple(f"nvme{index}" + (f"p{path}" if path else "") for path in range(controller.paths))
        for path, device in enumerate(ids):
            # Root ports: rp<N> for the first path of controller N (as without multipath), then
            # rp16, rp17... for further paths (16 controllers at most).
            port = (
                index if path == 0 else 16 + sum(1 for c in controllers if c.subsystem and not c.first_path)
            )
            controllers.append(
                ControllerHandle(
                    id=device,
                    bus=f"rp{port}",
                    chassis=port + 1,
                    slot=port + 1,
                    serial=serial,
                    namespaces=tuple(handles),
                    subsystem=f"subsys{index}" if controller.paths > 1 else None,
                    paths=ids if controller.paths > 1 else (),
                )
            )
    serials = [c.serial for c in controllers if c.first_path]
    if len(set(serials)) != len(serials):
        raise VmSpecError(f"NVMe serials must differ between controllers: {', '.join(serials)}")
    _check_free_space(images)
    return tuple(controllers), images


def _existing_folder(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (a run folder is created only after the checks)."""
    while not path.is_dir() and path.parent != path:
        path = path.parent
    return path


def _check_free_space(images: list[NewImage]) -> None:
    """Raises VmSpecError when the new images do not fit in the free space of their file systems."""
    used: dict[int, int] = {}
    for image in images:
        folder = _existing_folder(image.path.parent)
        try:
            stats = os.statvfs(folder)
            device = folder.stat().st_dev
        except OSError as error:
            raise VmSpecError(f"cannot create backing file '{image.path}': {error.strerror}") from None
        free = stats.f_bavail * stats.f_frsize - used.get(device, 0)
        # qcow2 starts small; a sparse raw file takes no space until written, but may be filled.
        if image.size > free:
            raise VmSpecError(
                f"namespace size {image.size} bytes does not fit: only {max(0, free)} bytes free "
                f"in '{folder}'"
            )
        used[device] = used.get(device, 0) + image.size


def _namespace(
    ns: NamespaceSpec, node: str, nsid: int, run_dir: Path, *, with_device: bool, controller: str
) -> tuple[NamespaceHandle, NewImage | None]:
    device_id = f"{controller}-ns{nsid}" if with_device else None
    where = f"namespace {nsid} of {controller}"
    if ns.nbd is not None:
        if ns.size is not None:
            raise VmSpecError(f"{where}: an NBD namespace takes its size from the export; give no size")
        handle = NamespaceHandle(
            nsid, node, f"{node}-nbd", 0, ns.format or "raw", None, ns.nbd, device_id, ns.block_size
        )
        return handle, None
    backing = ns.backing if ns.backing is not None else run_dir / f"{node}.{ns.format or 'raw'}"
    if ns.backing is not None and (backing.exists() or not ns.create):
        fmt, size = _existing_backing(ns, backing, where)
        image: NewImage | None = None
    else:
        fmt, size = ns.format or "raw", _new_backing_size(ns, backing, where)
        image = NewImage(backing, fmt, size, kept=ns.backing is not None)
    handle = NamespaceHandle(nsid, node, f"{node}-file", size, fmt, backing, None, device_id, ns.block_size)
    return handle, image


def _existing_backing(ns: NamespaceSpec, backing: Path, where: str) -> tuple[str, int]:
    """(format, size) of the namespace on an existing backing file, checked."""
    if not backing.exists():
        raise VmSpecError(
            f"{where}: backing file '{backing}' does not exist (give an existing raw or qcow2 file, "
            "or create_backing=True to create it)"
        )
    if not backing.is_file():
        raise VmSpecError(f"{where}: backing '{backing}' is not a file")
    if not os.access(backing, os.R_OK | os.W_OK):
        raise VmSpecError(f"{where}: backing file '{backing}' is not readable and writable")
    try:
        fmt = ns.format or image_format(backing)
    except OSError as error:
        raise VmSpecError(f"{where}: cannot read backing file '{backing}': {error.strerror}") from None
    available = virtual_size(backing, fmt)
    size = ns.size if ns.size is not None else available
    if size > available:
        raise VmSpecError(
            f"{where}: size {format_size(size)} does not fit in backing file '{backing}' "
            f"({format_size(available)})"
        )
    if fmt == "qcow2" and ns.size is not None and ns.size != available:
        raise VmSpecError(
            f"{where}: size {format_size(size)} differs from qcow2 image '{backing}' "
            f"({format_size(available)}); give no size or the image's size"
        )
    if size % ns.block_size:
        raise VmSpecError(f"{where}: size {size} of '{backing}' is not a multiple of {ns.block_size} bytes")
    return fmt, size


def _new_backing_size(ns: NamespaceSpec, backing: Path, where: str) -> int:
    """The size of a backing file to create, once it is known that it can be created."""
    if ns.size is None:
        raise VmSpecError(f"{where}: backing file '{backing}' does not exist and no size was given")
    problem = cannot_create(backing) if ns.backing is not None else None
    if problem is not None:
        raise VmSpecError(f"{where}: cannot create backing file '{backing}': {problem}")
    if (ns.format or "raw") == "qcow2" and shutil.which("qemu-img") is None:
        raise VmSpecError(
            "qemu-img is not installed (apt-get install qemu-utils): needed for qcow2 namespaces"
        )
    return ns.size


__all__ = [
    "ROUND_ROBIN_COMMAND",
    "ControllerHandle",
    "NamespaceHandle",
    "NewImage",
    "create_namespaces",
    "escape",
    "parse_live_paths",
    "plan_namespaces",
]
