"""The integrity keywords' judgements: a writer's journal against what survived the power cut, read
from a drive's image (or any raw image) or through the restarted guest, and damage done on purpose to
prove that the judgement catches it.

:func:`verify_writer` decides where the blocks are read and which profile says what had to survive;
:func:`damage_flushed_block` flips bytes of a block the journal shows as durable.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import paramiko  # type: ignore[import-untyped]

from nvmechaos.drive import EmulatedDrive
from nvmechaos.integrity.oracle import IntegrityError, IntegrityReport, flip_bytes, verify, verify_image
from nvmechaos.integrity.writer import GuestWriter, SshTarget, connect
from nvmechaos.units import ArgumentError, at_least, converted_flag


def verify_writer(
    writer: GuestWriter,
    drive: EmulatedDrive | None = None,
    plp: bool | None = None,
    image: str | None = None,
    vm: SshTarget | None = None,
) -> IntegrityReport:
    """Check every block ``writer``'s journal has.

    What had to survive: ``plp`` True, every acknowledged write; False, every flushed (or FUA) one;
    None, as ``drive``'s profile says. The blocks are read through ``vm``'s guest, else from
    ``image``, else from ``drive``'s image. Everything is checked before the journal is read.

    Raises:
        ArgumentError: no profile (neither ``plp`` nor ``drive``), ``plp`` not true or false, both
            ``image`` and ``vm``, an ``image`` that is not a file, or nothing to read the blocks from.
        IntegrityError: the writer never started, or the blocks cannot be read.
    """
    if plp is None and drive is None:
        raise ArgumentError("give plp=True or plp=False, or the drive (its profile decides)")
    profile = converted_flag(plp, "plp") if plp is not None else bool(drive and drive.plp)
    if vm is not None and image:
        raise ArgumentError("give image= or vm= to read the blocks from, not both")
    if image and not Path(image).is_file():
        raise ArgumentError(f"image '{image}' does not exist (or is not a file)")
    path = Path(image) if image else (drive.backing if drive is not None else None)
    if vm is None and path is None:
        raise ArgumentError("give the drive, an image or a VM to read the blocks from")
    snapshot = writer.snapshot()
    if vm is None:
        assert path is not None  # checked above, before the journal was read
        return verify_image(path, snapshot, profile)
    size = snapshot.block_size
    data = read_through_guest(vm, writer.settings.device, snapshot.first_block, snapshot.blocks, size)
    return verify(lambda b: data[b * size : (b + 1) * size], snapshot, profile, f"the guest of VM {vm.name}")


def damage_flushed_block(
    drive: EmulatedDrive, writer: GuestWriter, *, block: int | None, offset: int, count: int, pick: int
) -> int:
    """Invert ``count`` bytes at ``offset`` of a block in ``drive``'s image that ``writer``'s journal
    shows as durable: ``block``, or else the ``pick``-th (from 0) durable one; return its number.

    Raises:
        ArgumentError: a negative ``offset``, ``pick`` or ``block``, ``count`` below 1, bytes beyond
            one block, or a ``block`` the writer does not write.
        IntegrityError: the journal has no ``pick``-th durable block, or the image cannot be changed.
    """
    size, blocks = writer.settings.block_size, writer.settings.blocks
    where, many, index = at_least(offset, "offset"), at_least(count, "count", 1), at_least(pick, "pick")
    if where + many > size:
        raise ArgumentError(f"offset={where} + count={many} go beyond one block of {size} bytes")
    if block is not None and not 0 <= at_least(block, "block") < blocks:
        raise ArgumentError(f"block {block} is not one the writer writes (0 to {blocks - 1})")
    snapshot = writer.snapshot()
    if block is None:
        durable = sorted(b for b, g in snapshot.durable.items() if g > 0)
        if len(durable) <= index:
            raise IntegrityError(
                f"the writer's journal has {len(durable)} flushed blocks: no number {pick} to damage"
            )
        block = durable[index]
    flip_bytes(drive.backing, (snapshot.first_block + block) * snapshot.block_size + where, many)
    return block


def read_through_guest(
    target: SshTarget, device: str, first_block: int, blocks: int, block_size: int
) -> bytes:
    """Read ``blocks`` blocks from ``device`` in the guest (after a restart: what the drive kept).

    Raises:
        IntegrityError: SSH or dd failed, or fewer bytes came back.
    """
    client = connect(target)
    try:
        command = " ".join(
            shlex.quote(a)
            for a in ("dd", f"if={device}", f"bs={block_size}", f"skip={first_block}", f"count={blocks}")
        )
        channel = client.get_transport().open_session()
        channel.settimeout(120)
        channel.exec_command(command + " 2>/dev/null")
        data = bytearray()
        while True:
            chunk = channel.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        code = channel.recv_exit_status()
    except (OSError, paramiko.SSHException) as error:
        raise IntegrityError(f"reading {device} in VM '{target.name}' failed: {error}") from None
    finally:
        client.close()
    if code != 0 or len(data) != blocks * block_size:
        raise IntegrityError(
            f"reading {device} in VM '{target.name}' returned {len(data)} of {blocks * block_size} bytes "
            f"(dd exit status {code})"
        )
    return bytes(data)
