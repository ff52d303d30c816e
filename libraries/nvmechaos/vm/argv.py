"""The QEMU command line of a VM: the machine, the guest it boots, its NVMe devices.

Kept apart from the life cycle (:mod:`nvmechaos.vm.machine`) so that what QEMU is asked to build can
be read, and tested, without starting anything. The devices' own options come from
:meth:`nvmechaos.vm.devices.ControllerHandle.argv`, the same arguments a hot-plug sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nvmechaos.guest.builder import BASE_APPEND, GuestImage
from nvmechaos.vm.devices import ControllerHandle, escape
from nvmechaos.vm.qemu import QBOOT, Qemu, image_format
from nvmechaos.vm.spec import GuestSpec, VmSpec
from nvmechaos.vm.ssh import KeyPair

# SSH is forwarded from this host address only: nothing outside the machine reaches a guest.
HOST = "127.0.0.1"
GUEST_SSH_PORT = 22


def qemu_argv(
    qemu: Qemu,
    spec: VmSpec,
    controllers: Sequence[ControllerHandle],
    *,
    accelerator: str,
    ssh_port: int,
    console_log: Path,
    qmp_socket: Path,
    key: KeyPair,
    image: GuestImage | None,
) -> list[str]:
    """The whole command line: machine, serial console and QMP, network, guest, devices, extras."""
    argv = [
        qemu.binary,
        "-name",
        f"nvmechaos-{spec.name},process=nvmechaos-{spec.name}",
        "-M",
        "q35",
        "-accel",
        accelerator,
        "-cpu",
        "max",
        "-m",
        str(spec.memory_mib),
        "-smp",
        str(spec.cpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-chardev",
        f"file,id=serial0,path={escape(console_log)},append=on",
        "-serial",
        "chardev:serial0",
        "-chardev",
        f"socket,id=qmp0,path={escape(qmp_socket)},server=on,wait=off",
        "-mon",
        "chardev=qmp0,mode=control",
        "-netdev",
        f"user,id=net0,hostfwd=tcp:{HOST}:{ssh_port}-:{GUEST_SSH_PORT}",
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]
    argv += guest_argv(spec.guest, image, key)
    for controller in controllers:
        argv += controller.argv()
    argv += list(spec.extra_args)
    return argv


def guest_argv(guest: GuestSpec, image: GuestImage | None, key: KeyPair) -> list[str]:
    """What the guest boots: a user's disk image (snapshot: never written), or a kernel and initrd
    (the built-in image's, unless the spec names its own) with the per-run SSH key on the kernel
    command line, and the built-in image's read-only tools disk."""
    if guest.disk_image is not None:
        return [
            "-drive",
            f"file={escape(guest.disk_image)},if=virtio,snapshot=on,format={image_format(guest.disk_image)}",
        ]
    argv: list[str] = []
    kernel = guest.kernel or (image.kernel if image else None)
    initrd = guest.initrd if guest.kernel is not None else (image.initrd if image else None)
    if QBOOT.is_file():
        argv += ["-bios", str(QBOOT)]
    argv += ["-kernel", str(kernel)]
    if initrd is not None:
        argv += ["-initrd", str(initrd)]
    append = guest.append if guest.append is not None else (image.append if image else BASE_APPEND)
    if guest.io_timeout is not None:
        append = f"{append} nvme_core.io_timeout={guest.io_timeout}"
    argv += ["-append", f"{append} nvmechaos.authkey={key.kernel_argument}".strip()]
    if image is not None and image.tools_disk is not None and guest.kernel is None:
        argv += [
            "-blockdev",
            f"driver=file,node-name=tools-file,filename={escape(image.tools_disk)},read-only=on",
            "-blockdev",
            "driver=raw,node-name=tools,file=tools-file,read-only=on",
            "-device",
            "virtio-blk-pci,drive=tools,id=tools",
        ]
    return argv


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as one shell line (for ``qemu-argv.txt``: copy, paste, run)."""
    return " ".join(_quote(arg) for arg in argv)


def _quote(arg: str) -> str:
    return (
        arg
        if arg and all(c.isalnum() or c in "-_=.,:/+@" for c in arg)
        else "'" + arg.replace("'", "'\\''") + "'"
    )


__all__ = ["GUEST_SSH_PORT", "HOST", "command_line", "guest_argv", "qemu_argv"]
