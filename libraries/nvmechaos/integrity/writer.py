"""Run the integrity writer in a VM's guest and record its reports on the host as they arrive.

The writer (``integrity_writer.c``, next to this module) is compiled on the host with
``gcc -static`` once per source version (cached like the guest image), copied into the guest's
``/tmp`` over SSH, and started there over its own SSH channel. A reader thread timestamps every
line it receives (host monotonic and wall clock) and feeds it to a :class:`Journal`: what the host
had received when the power went is exactly the acknowledged set the oracle checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paramiko  # type: ignore[import-untyped]

from nvmechaos.errors import NvmeChaosError
from nvmechaos.integrity.oracle import IntegrityError, Journal, JournalSnapshot
from nvmechaos.units import at_least, converted_flag, parse_seconds
from nvmechaos.vm.ssh import GuestSsh

SOURCE = Path(__file__).with_name("integrity_writer.c")
REMOTE_DIR = "/tmp"  # noqa: S108 - in the guest (a throwaway initramfs), not on the host


class SshTarget(Protocol):
    """What the writer needs of a VM (``nvmechaos.vm.Vm`` has it)."""

    @property
    def name(self) -> str: ...

    def ssh(self) -> GuestSsh: ...


def _cache_dir() -> Path:
    if os.environ.get("NVMECHAOS_CACHE"):
        return Path(os.environ["NVMECHAOS_CACHE"]) / "integrity"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nvmechaos" / "integrity"


def source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def build_writer(cache_dir: Path | None = None, compiler: str = "gcc") -> Path:
    """The static writer binary for this source version, compiled on first use.

    Raises:
        IntegrityError: no compiler or no static C library (``apt-get install gcc libc6-dev``).
    """
    cache = cache_dir or _cache_dir()
    target = cache / f"integrity-writer-{source_digest()}"
    if target.is_file():
        return target
    if shutil.which(compiler) is None:
        raise IntegrityError(
            f"'{compiler}' is not installed: the integrity writer is compiled on the host "
            "(apt-get install gcc libc6-dev)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        binary = work / "integrity-writer"
        result = subprocess.run(
            [compiler, "-static", "-O2", "-s", "-Wall", "-o", str(binary), str(SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise IntegrityError(
                "cannot compile the integrity writer (apt-get install gcc libc6-dev): "
                + " | ".join(result.stderr.strip().splitlines()[-3:])
            )
        binary.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def connect(target: SshTarget) -> paramiko.SSHClient:
    """The VM's own logged-in SSH client (its key, its pinned host key) for channels of our own.

    Raises:
        IntegrityError: SSH to the guest fails (not ready, refused, wrong host key).
    """
    try:
        return target.ssh().client
    except NvmeChaosError as error:
        raise IntegrityError(f"SSH to VM '{target.name}' failed: {error}") from None


def _run(
    client: paramiko.SSHClient, command: str, stdin: bytes = b"", timeout: float = 60.0
) -> tuple[int, str]:
    channel = client.get_transport().open_session()
    try:
        channel.settimeout(timeout)
        channel.set_combine_stderr(True)
        channel.exec_command(command)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        output = b""
        while True:
            chunk = channel.recv(65536)
            if not chunk:
                break
            output += chunk
        return int(channel.recv_exit_status()), output.decode(errors="replace").strip()
    except (OSError, paramiko.SSHException) as error:
        raise IntegrityError(f"SSH command '{command[:60]}' failed: {error}") from None
    finally:
        channel.close()


def install_writer(client: paramiko.SSHClient, binary: Path) -> str:
    """Copy the writer into the guest's /tmp unless it is there already; return its guest path."""
    remote = f"{REMOTE_DIR}/{binary.name}"
    code, _ = _run(client, f"test -x {shlex.quote(remote)}")
    if code != 0:
        temporary = remote + ".part"
        command = (
            f"cat > {shlex.quote(temporary)} && chmod 755 {shlex.quote(temporary)} "
            f"&& mv {shlex.quote(temporary)} {shlex.quote(remote)}"
        )
        code, output = _run(client, command, stdin=binary.read_bytes())
        if code != 0:
            raise IntegrityError(f"cannot copy the integrity writer into the guest: {output or code}")
    return remote


# Prints what the writer needs to know of a guest device before it starts: MISSING, NOTBLOCK, or
# "SIZE <512-byte sectors> <logical block size>"; then "DEVICES <names in /dev starting with nvme>".
_DEVICE_PROBE = (
    'd={device}; if [ ! -e "$d" ]; then echo MISSING; elif [ ! -b "$d" ]; then echo NOTBLOCK; else '
    'n=$(basename "$(readlink -f "$d")"); s=/sys/class/block/$n; q=$s/queue; [ -d "$q" ] || q=$s/../queue; '
    'echo "SIZE $(cat "$s/size") $(cat "$q/logical_block_size" 2>/dev/null || echo 512)"; fi; '
    "echo DEVICES $(cd /dev && ls -d nvme* 2>/dev/null)"
)
_NAMESPACE_NAME = re.compile(r"^nvme\d+n\d+(p\d+)?$")


def device_problem(output: str, settings: WriterSettings, vm_name: str) -> str | None:
    """What is wrong with the writer's device, from the output of :data:`_DEVICE_PROBE`; None if
    it can take ``blocks`` blocks of ``block_size`` from ``first_block``."""
    lines = output.strip().splitlines()
    devices = [
        f"/dev/{name}"
        for line in lines
        if line.startswith("DEVICES")
        for name in line.split()[1:]
        if _NAMESPACE_NAME.match(name)
    ]
    known = f"its NVMe devices: {', '.join(devices)}" if devices else "it has no NVMe namespace device"
    where = f"{settings.device} in VM '{vm_name}'"
    verdicts = [line.split() for line in lines if line.split()[:1] in (["MISSING"], ["NOTBLOCK"], ["SIZE"])]
    if not verdicts:
        said = " | ".join(lines)[:200] or "no output"
        return f"cannot check writer device {settings.device} in VM '{vm_name}': {said}"
    first = verdicts[0]
    if first[0] == "MISSING":
        return f"writer device {settings.device} does not exist in VM '{vm_name}' ({known})"
    if first[0] == "NOTBLOCK":
        return f"writer device {where} is not a block device ({known})"
    if len(first) < 3 or not first[1].isdigit() or not first[2].isdigit():
        return f"cannot read the size of writer device {where}: {' | '.join(lines)[:200]}"
    device_bytes, logical = int(first[1]) * 512, int(first[2])
    if logical and settings.block_size % logical:
        return (
            f"writer block_size={settings.block_size} is not a multiple of the logical block size "
            f"{logical} of {where} (O_DIRECT writes need it)"
        )
    needed = (settings.first_block + settings.blocks) * settings.block_size
    if needed > device_bytes:
        start = f" from first_block={settings.first_block}" if settings.first_block else ""
        return (
            f"writer blocks={settings.blocks} of block_size={settings.block_size}{start} need "
            f"{needed} bytes, more than {where} holds: {device_bytes} bytes "
            f"({device_bytes // settings.block_size} blocks)"
        )
    return None


def check_device(client: paramiko.SSHClient, settings: WriterSettings, vm_name: str) -> None:
    """Make sure the guest's device exists and holds every block the writer would write.

    Raises:
        IntegrityError: the device is missing (naming the guest's NVMe devices), not a block
            device, too small, or its logical block size does not divide ``block_size``.
    """
    _, output = _run(client, _DEVICE_PROBE.replace("{device}", shlex.quote(settings.device)), timeout=30)
    problem = device_problem(output, settings, vm_name)
    if problem is not None:
        raise IntegrityError(problem)


@dataclass
class WriterSettings:
    """What the writer writes: ``blocks`` blocks of ``block_size`` from block ``first_block`` of
    ``device``; ``count`` writes then idle (0: until stopped); a flush after every ``flush_every``
    writes (0: never) and every ``fua_every``-th write with FUA (O_DSYNC; 0: none)."""

    device: str = "/dev/nvme0n1"
    blocks: int = 256
    block_size: int = 4096
    first_block: int = 0
    count: int = 0
    flush_every: int = 64
    fua_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("blocks", "block_size", "first_block", "count", "flush_every", "fua_every", "seed"):
            if getattr(self, name) < 0:
                raise IntegrityError(f"writer setting {name}={getattr(self, name)} is negative")
        if self.blocks == 0:
            raise IntegrityError("writer setting blocks=0: write at least one block")
        if self.block_size < 512 or self.block_size % 512 or self.block_size > (1 << 20):
            raise IntegrityError(f"writer block size {self.block_size} is not a multiple of 512 up to 1 MiB")
        if not self.device.startswith("/dev/"):
            raise IntegrityError(f"writer device '{self.device}' is not a /dev path")
        if self.seed == 0:
            self.seed = int.from_bytes(os.urandom(6), "little") | 1

    @classmethod
    def from_arguments(  # noqa: PLR0917 - the keyword's arguments, in its order
        cls,
        device: str,
        blocks: int,
        count: int,
        flush_every: int,
        fua_every: int,
        block_size: int,
        first_block: int,
        seed: int,
    ) -> WriterSettings:
        """The settings from `Start Integrity Writer`'s arguments, each count checked under its own
        name first (``blocks '0' is not a whole number of at least 1``).

        Raises:
            ArgumentError: a count that is not a whole number, or below its minimum.
            IntegrityError: see the class (a device outside /dev, a block size not a multiple of 512).
        """
        return cls(
            device=str(device),
            blocks=at_least(blocks, "blocks", 1),
            block_size=at_least(block_size, "block_size", 512),
            first_block=at_least(first_block, "first_block"),
            count=at_least(count, "count"),
            flush_every=at_least(flush_every, "flush_every"),
            fua_every=at_least(fua_every, "fua_every"),
            seed=at_least(seed, "seed"),
        )

    def argv(self, program: str) -> list[str]:
        return [
            program,
            f"dev={self.device}",
            f"bs={self.block_size}",
            f"blocks={self.blocks}",
            f"first={self.first_block}",
            f"seed={self.seed}",
            f"count={self.count}",
            f"flush_every={self.flush_every}",
            f"fua_every={self.fua_every}",
            "idle=1",
        ]


@dataclass
class GuestWriter:
    """A writer running in a guest; ``journal`` fills while it runs. Start with :func:`start_writer`."""

    vm_name: str
    settings: WriterSettings
    journal_file: Path
    journal: Journal = field(default_factory=Journal)
    started_monotonic: float = 0.0
    started_wall: float = 0.0
    guest_pid: int | None = None
    stderr: str = ""
    exit_status: int | None = None
    _client: paramiko.SSHClient | None = None
    _channel: Any = None
    _thread: threading.Thread | None = None
    _pid_seen: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _reader_error: str | None = None

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def _read(self) -> None:
        """Reader thread: timestamp and journal every line until the channel ends."""
        pending = b""
        try:
            with open(self.journal_file, "w", encoding="utf-8") as record:
                while True:
                    try:
                        chunk = self._channel.recv(65536)
                    except (OSError, paramiko.SSHException, EOFError):
                        chunk = b""
                    monotonic, wall = time.monotonic(), time.time()
                    if not chunk:
                        break
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        text = raw.decode(errors="replace").strip()
                        if text.startswith("P "):
                            with contextlib.suppress(ValueError):
                                self.guest_pid = int(text[2:])
                            self._pid_seen.set()
                            continue
                        record.write(f"{monotonic:.6f} {wall:.6f} {text}\n")
                        try:
                            self.journal.feed(text, monotonic, wall)
                        except IntegrityError as error:
                            self._reader_error = str(error)
                    record.flush()
        except OSError as error:
            self._reader_error = f"cannot write the journal '{self.journal_file}': {error.strerror}"
        finally:
            with contextlib.suppress(Exception):
                if self._channel.exit_status_ready():
                    self.exit_status = int(self._channel.recv_exit_status())
                self.stderr = self._channel.recv_stderr(65536).decode(errors="replace").strip()
            self._pid_seen.set()
            self._done.set()

    def wait_started(self, timeout: float = 30.0) -> None:
        """Wait for the writer's start line.

        Raises:
            IntegrityError: it ended (its message quoted) or did not start within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while self.journal.seed is None:
            if self._done.is_set() or self.journal.error:
                raise IntegrityError(f"the integrity writer in VM '{self.vm_name}' failed: {self.problem()}")
            if time.monotonic() > deadline:
                raise IntegrityError(
                    f"the integrity writer in VM '{self.vm_name}' did not start in {timeout:g} s"
                )
            time.sleep(0.02)

    def wait_for(self, writes: int = 0, ended: bool = False, timeout: float = 60.0) -> int:
        """Wait until ``writes`` writes were acknowledged, or (``ended``) the writer finished its count;
        return the number acknowledged so far.

        Raises:
            ArgumentError: ``writes`` negative, ``ended`` not true or false, ``timeout`` not positive.
            IntegrityError: the writer failed, or the timeout passed; at once when the wait can never
                end (``writes`` beyond the writer's count, or ``ended`` for a writer without one).
        """
        writes = at_least(writes, "writes")
        # The keyword calls it ``finished``; the messages below name it so too.
        ended = converted_flag(ended, "finished")
        timeout = parse_seconds(timeout, "timeout")
        count = self.settings.count
        if count and writes > count:
            raise IntegrityError(
                f"writes={writes} can never be reached: the writer stops after count={count} writes"
            )
        if ended and not count:
            raise IntegrityError(
                "finished=True can never be reached: the writer has no count (it writes until stopped)"
            )
        deadline = time.monotonic() + timeout
        while not ((ended and self.journal.ended) or (not ended and self.journal.writes >= writes)):
            if self.journal.error or (self._done.is_set() and not self.journal.ended):
                raise IntegrityError(f"the integrity writer in VM '{self.vm_name}' failed: {self.problem()}")
            if time.monotonic() > deadline:
                raise IntegrityError(
                    f"the integrity writer in VM '{self.vm_name}' reached {self.journal.writes} writes "
                    f"in {timeout:g} s (waited for {'its end' if ended else writes})"
                )
            time.sleep(0.02)
        return self.journal.writes

    def problem(self) -> str:
        return (
            self.journal.error
            or self._reader_error
            or self.stderr
            or (f"exit status {self.exit_status}" if self.exit_status is not None else "connection lost")
        )

    def snapshot(self, drain: float = 2.0) -> JournalSnapshot:
        """The acknowledged set: every line received. After a power cut, first lets the reader take
        what the dead QEMU had already sent (at most ``drain`` seconds)."""
        self._done.wait(timeout=drain)
        return self.journal.snapshot()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer (if the guest still runs) and close the SSH connection."""
        if self._client is not None and not self._done.is_set() and self.guest_pid is not None:
            with contextlib.suppress(IntegrityError, OSError, paramiko.SSHException):
                _run(self._client, f"kill {self.guest_pid}", timeout=timeout)
        self._done.wait(timeout=timeout)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def describe(self) -> dict[str, Any]:
        journal = self.journal
        return {
            "vm": self.vm_name,
            "device": self.settings.device,
            "blocks": self.settings.blocks,
            "block_size": self.settings.block_size,
            "first_block": self.settings.first_block,
            "seed": self.settings.seed,
            "count": self.settings.count,
            "flush_every": self.settings.flush_every,
            "fua_every": self.settings.fua_every,
            "writes": journal.writes,
            "flushes": journal.flushes,
            "fua_writes": journal.fua_writes,
            "journal": str(self.journal_file),
        }


def start_writer(
    target: SshTarget, settings: WriterSettings, journal_file: Path, cache_dir: Path | None = None
) -> GuestWriter:
    """Compile (once), install and start the writer in ``target``'s guest; wait for its start line.

    The device is checked first (it exists and holds every block to write: :func:`check_device`).

    Raises:
        IntegrityError: no compiler, SSH failed, the device is missing or too small, or the writer
            could not open it.
    """
    client = connect(target)
    writer: GuestWriter | None = None
    try:
        check_device(client, settings, target.name)
        binary = build_writer(cache_dir)
        remote = install_writer(client, binary)
        command = "echo P $$; exec " + " ".join(shlex.quote(a) for a in settings.argv(remote))
        channel = client.get_transport().open_session()
        channel.exec_command(command)
        journal_file.parent.mkdir(parents=True, exist_ok=True)
        writer = GuestWriter(target.name, settings, journal_file, _client=client, _channel=channel)
        writer.started_monotonic, writer.started_wall = time.monotonic(), time.time()
        writer._thread = threading.Thread(
            target=writer._read, name=f"integrity-writer-{target.name}", daemon=True
        )
        writer._thread.start()
        writer.wait_started()
    except BaseException:
        if writer is not None:
            writer.stop()
        client.close()
        raise
    return writer
