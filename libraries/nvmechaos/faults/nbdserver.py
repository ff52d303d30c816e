"""A small NBD server in pure Python with the same fault control as the nbdkit plugin.

For hosts without nbdkit (Windows): serves one file over the fixed newstyle handshake
(``NBD_OPT_GO``, ``NBD_OPT_INFO``, ``NBD_OPT_EXPORT_NAME``, ``NBD_OPT_LIST``, ``NBD_OPT_ABORT``) with
simple replies, and READ, WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES and DISC. It listens on
127.0.0.1 or a unix socket only.

Threads, not asyncio: ``time.sleep`` in a thread wakes within tens of microseconds, while an event
loop's timers round up to the next millisecond (5 % of a 10 ms delay). Each connection has a
reader thread; requests without a delay are answered inline (fast path), delayed ones by a pool
worker that sleeps and then answers, so concurrent delayed requests overlap as on a real device.

Run as ``python -m nvmechaos.faults.nbdserver --file F --control C (--unix PATH | --port N)``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from nvmechaos.faults.control import HOST_TO_NBD
from nvmechaos.faults.controlfile import ControlReader, Sleeper

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_INFO = 6
OPT_GO = 7

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_ERR_UNSUP = (1 << 31) + 1
REP_ERR_INVALID = (1 << 31) + 3
REP_ERR_UNKNOWN = (1 << 31) + 6

INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

TFLAG_HAS_FLAGS = 1
TFLAG_READ_ONLY = 2
TFLAG_SEND_FLUSH = 4
TFLAG_SEND_FUA = 8
TFLAG_SEND_TRIM = 32
TFLAG_SEND_WRITE_ZEROES = 64
TFLAG_CAN_MULTI_CONN = 256

#: What every export we serve offers: flush, FUA, trim, write-zeroes, several connections.
SERVED_FLAGS = (
    TFLAG_HAS_FLAGS
    | TFLAG_SEND_FLUSH
    | TFLAG_SEND_FUA
    | TFLAG_SEND_TRIM
    | TFLAG_SEND_WRITE_ZEROES
    | TFLAG_CAN_MULTI_CONN
)

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_WRITE_ZEROES = 6
CMD_FLAG_FUA = 1

EPERM = 1
EIO = 5
EINVAL = 22
ENOTSUP = 95

MAX_REQUEST = 32 << 20
_OPS = {CMD_READ: "read", CMD_WRITE: "write", CMD_FLUSH: "flush", CMD_TRIM: "trim", CMD_WRITE_ZEROES: "zero"}
_REQUEST = struct.Struct(">IHHQQI")
_REPLY = struct.Struct(">IIQ")
_ZEROS = bytes(1 << 20)


class DisconnectError(Exception):
    """The client went away (or asked to)."""


class Request(NamedTuple):
    flags: int
    command: int
    handle: int
    offset: int
    length: int


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise DisconnectError
    return data


class Served(Protocol):
    """What a connection serves: the plain file :class:`Export` or the drive model's export."""

    size: int
    flags: int

    def lookup(self, name: bytes) -> tuple[int, int] | None: ...

    def handle(self, connection: Connection, request: Request, payload: bytes) -> None: ...


class Export:
    """The served file and the fault control, shared by all connections."""

    def __init__(self, path: Path, size: int | None, control: Path, readonly: bool = False) -> None:
        self.fd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | getattr(os, "O_BINARY", 0))
        self.size = size if size is not None else os.fstat(self.fd).st_size
        self.readonly = readonly
        self.control = ControlReader(control)
        self.sleeper = Sleeper()
        self.pool = ThreadPoolExecutor(max_workers=128, thread_name_prefix="nbd-delay")
        self.flags = SERVED_FLAGS | (TFLAG_READ_ONLY if readonly else 0)

    def pread(self, length: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            data = os.pread(self.fd, length, offset)
        else:  # Windows: no pread; a lock keeps seek+read atomic
            with _SEEK_LOCK:
                os.lseek(self.fd, offset, os.SEEK_SET)
                data = os.read(self.fd, length)
        return data if len(data) == length else data + bytes(length - len(data))

    def pwrite(self, data: bytes, offset: int) -> None:
        if hasattr(os, "pwrite"):
            os.pwrite(self.fd, data, offset)
        else:
            with _SEEK_LOCK:
                os.lseek(self.fd, offset, os.SEEK_SET)
                os.write(self.fd, data)

    def sync(self) -> None:
        (getattr(os, "fdatasync", None) or os.fsync)(self.fd)

    def lookup(self, name: bytes) -> tuple[int, int] | None:
        """(first byte, size) of the export called ``name``: one file, whatever the name."""
        return 0, self.size

    def handle(self, connection: Connection, request: Request, payload: bytes) -> None:
        """Answer one request: now, or after the injected delay on a pool thread."""
        op = _OPS.get(request.command)
        if op is None:
            connection.reply(request.handle, EINVAL)
            return
        delay, error = self.control.current().decide(op)
        if delay > 0:
            deadline = time.monotonic() + delay
            with connection.idle:
                connection.pending += 1
            self.pool.submit(connection.delayed, deadline, request, payload, error)
        else:
            connection.execute(request, payload, error)


_SEEK_LOCK = threading.Lock()


class Connection:
    def __init__(self, sock: socket.socket, export: Served) -> None:
        self.sock = sock
        self.export = export
        self.stream: BinaryIO = sock.makefile("rb", buffering=256 * 1024)  # type: ignore[assignment]
        self.send_lock = threading.Lock()
        self.pending = 0
        self.idle = threading.Condition()
        self.no_zeroes = False
        self.base = 0
        self.size = export.size

    # -- handshake -----------------------------------------------------------------------------
    def handshake(self) -> bool:
        """Negotiate; True when the client entered transmission."""
        self.sock.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack(">I", _read_exact(self.stream, 4))
        self.no_zeroes = bool(client_flags & FLAG_NO_ZEROES)
        while True:
            magic, option, length = struct.unpack(">QII", _read_exact(self.stream, 16))
            if magic != IHAVEOPT or length > 65536:
                return False
            data = _read_exact(self.stream, length)
            if option == OPT_EXPORT_NAME:
                found = self.export.lookup(data)
                if found is None:
                    return False  # the protocol's only answer to an unknown name: hang up
                self.base, self.size = found
                tail = b"" if self.no_zeroes else bytes(124)
                self.sock.sendall(struct.pack(">QH", self.size, self.export.flags) + tail)
                return True
            if option == OPT_ABORT:
                self._option_reply(option, REP_ACK)
                return False
            if option == OPT_LIST:
                self._option_reply(option, REP_SERVER, struct.pack(">I", 0))
                self._option_reply(option, REP_ACK)
            elif option in (OPT_INFO, OPT_GO):
                if len(data) < 6:
                    self._option_reply(option, REP_ERR_INVALID)
                    continue
                (name_length,) = struct.unpack(">I", data[:4])
                (count,) = struct.unpack(">H", data[4 + name_length : 6 + name_length])
                requests = struct.unpack(f">{count}H", data[6 + name_length : 6 + name_length + 2 * count])
                found = self.export.lookup(data[4 : 4 + name_length])
                if found is None:
                    self._option_reply(option, REP_ERR_UNKNOWN)
                    continue
                base, size = found
                self._option_reply(
                    option, REP_INFO, struct.pack(">HQH", INFO_EXPORT, size, self.export.flags)
                )
                if INFO_BLOCK_SIZE in requests:
                    self._option_reply(
                        option, REP_INFO, struct.pack(">HIII", INFO_BLOCK_SIZE, 1, 4096, MAX_REQUEST)
                    )
                self._option_reply(option, REP_ACK)
                if option == OPT_GO:
                    self.base, self.size = base, size
                    return True
            else:  # STARTTLS, STRUCTURED_REPLY, meta contexts, ...: simple replies only
                self._option_reply(option, REP_ERR_UNSUP)

    def _option_reply(self, option: int, reply: int, data: bytes = b"") -> None:
        self.sock.sendall(struct.pack(">QIII", REPLY_MAGIC, option, reply, len(data)) + data)

    # -- transmission --------------------------------------------------------------------------
    def serve(self) -> None:
        export = self.export
        stream = self.stream
        while True:
            header = stream.read(28)
            if not header or len(header) != 28:
                return
            magic, flags, command, handle, offset, length = _REQUEST.unpack(header)
            if magic != REQUEST_MAGIC:
                return
            request = Request(flags, command, handle, offset, length)
            payload = b""
            if command == CMD_WRITE:
                if length > MAX_REQUEST:
                    return  # cannot resynchronise: the spec says disconnect
                payload = _read_exact(stream, length)
            if command == CMD_DISC:
                return
            export.handle(self, request, payload)

    def delayed(self, deadline: float, request: Request, payload: bytes, error: int) -> None:
        try:
            assert isinstance(self.export, Export)
            self.export.sleeper.sleep_until(deadline)
            self.execute(request, payload, error)
        except OSError:
            pass  # the client went away while we slept
        finally:
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()

    def execute(self, request: Request, payload: bytes, error: int) -> None:
        flags, command, handle, offset, length = request
        export = self.export
        assert isinstance(export, Export)
        if error:
            self.reply(handle, error)
            return
        if command != CMD_FLUSH and (offset + length > export.size):
            self.reply(handle, EINVAL)
            return
        if export.readonly and command in (CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES):
            self.reply(handle, EPERM)
            return
        try:
            if command == CMD_READ:
                self.reply(handle, 0, export.pread(length, offset))
                return
            if command == CMD_WRITE:
                export.pwrite(payload, offset)
            elif command == CMD_WRITE_ZEROES:
                done = 0
                while done < length:
                    chunk = min(length - done, len(_ZEROS))
                    export.pwrite(_ZEROS[:chunk], offset + done)
                    done += chunk
            elif command == CMD_FLUSH:
                export.sync()
            # CMD_TRIM is advisory: nothing to do for a plain file.
            if flags & CMD_FLAG_FUA and command in (CMD_WRITE, CMD_WRITE_ZEROES):
                export.sync()
        except OSError as exc:
            self.reply(handle, HOST_TO_NBD.get(exc.errno or 0, EIO))
            return
        self.reply(handle, 0)

    def reply(self, handle: int, error: int, data: bytes = b"") -> None:
        header = _REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle)
        with self.send_lock:
            if data and hasattr(self.sock, "sendmsg"):
                sent = self.sock.sendmsg([header, data])
                total = len(header) + len(data)
                if sent < total:
                    self.sock.sendall((header + data)[sent:])
            else:
                self.sock.sendall(header + data if data else header)

    def run(self) -> None:
        try:
            if self.handshake():
                self.serve()
        except (DisconnectError, OSError, struct.error):
            pass
        finally:
            with self.idle:
                self.idle.wait_for(lambda: self.pending == 0, timeout=60)
            with contextlib.suppress(OSError):
                self.sock.close()


def serve(listener: socket.socket, export: Served) -> None:
    while True:
        sock, _ = listener.accept()
        if sock.family != getattr(socket, "AF_UNIX", None):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Connection(sock, export).run, name="nbd-conn", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--size", type=int)
    parser.add_argument("--control", required=True, type=Path)
    parser.add_argument("--unix", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--readonly", action="store_true")
    args = parser.parse_args(argv)
    if (args.unix is None) == (args.port is None):
        parser.error("give exactly one of --unix and --port")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("only loopback addresses are served")
    try:
        export = Export(args.file, args.size, args.control, args.readonly)
    except OSError as error:
        print(f"nbdserver: cannot open '{args.file}': {error.strerror}", file=sys.stderr)
        return 1
    try:
        if args.unix is not None:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(os.fspath(args.unix))
            os.chmod(args.unix, 0o600)
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((args.host, args.port))
        listener.listen(16)
    except OSError as error:
        where = args.unix if args.unix is not None else f"{args.host}:{args.port}"
        print(f"nbdserver: cannot listen on {where}: {error.strerror}", file=sys.stderr)
        return 1
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.pidfile is not None:
        tmp = args.pidfile.with_name(args.pidfile.name + ".tmp")
        tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
        os.replace(tmp, args.pidfile)
    with contextlib.suppress(KeyboardInterrupt):
        serve(listener, export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
