"""Both NBD injectors as real processes: data path, live latency and errors, failures, clean-up.

A minimal NBD client below speaks the fixed newstyle handshake (NBD_OPT_GO, or the old
NBD_OPT_EXPORT_NAME) and simple replies, so each request's result and timing is seen exactly.
"""

from __future__ import annotations

import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvmechaos.faults import (
    ErrorParams,
    FaultParamError,
    InjectorDiedError,
    InjectorEngine,
    InjectorStartError,
    LatencyParams,
    NbdInjector,
    NbdkitInjector,
    PythonNbdProxy,
    Transport,
    make_injector,
    resolve_engine,
)
from nvmechaos.faults.controlfile import Sleeper
from nvmechaos.process import ProcessRegistry

HAVE_NBDKIT = shutil.which("nbdkit") is not None
ENGINES = [
    pytest.param("nbdkit", marks=pytest.mark.skipif(not HAVE_NBDKIT, reason="nbdkit not installed")),
    "python",
]
SIZE = 8 << 20


class NbdClient:
    def __init__(self, injector: NbdInjector, export_name: bool = False) -> None:
        if injector.transport == "unix":
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(injector.socket_path))
        else:
            self.sock = socket.create_connection(("127.0.0.1", injector.port))
        self.sock.settimeout(10)
        self.handle = 0
        magic, opt, _flags = struct.unpack(">QQH", self._recv(18))
        assert magic == 0x4E42444D41474943 and opt == 0x49484156454F5054
        self.sock.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        if export_name:
            self.sock.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0))
            self.size, self.flags = struct.unpack(">QH", self._recv(10))
            return
        data = struct.pack(">I", 0) + struct.pack(">HH", 1, 3)
        self.sock.sendall(struct.pack(">QII", 0x49484156454F5054, 7, len(data)) + data)
        while True:
            _, _, reply, length = struct.unpack(">QIII", self._recv(20))
            body = self._recv(length)
            if reply == 3 and struct.unpack(">H", body[:2])[0] == 0:
                self.size, self.flags = struct.unpack(">QH", body[2:12])
            if reply == 1:
                break

    def _recv(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("server closed")
            data += chunk
        return data

    def request(self, command: int, offset: int = 0, length: int = 0, data: bytes = b"") -> tuple[int, bytes]:
        self.handle += 1
        self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, command, self.handle, offset, length) + data)
        magic, error, handle = struct.unpack(">IIQ", self._recv(16))
        assert magic == 0x67446698 and handle == self.handle
        payload = self._recv(length) if command == 0 and error == 0 else b""
        return error, payload

    def read(self, offset: int, length: int) -> tuple[int, bytes]:
        return self.request(0, offset, length)

    def write(self, offset: int, data: bytes) -> int:
        return self.request(1, offset, len(data), data)[0]

    def timed_read(self) -> tuple[int, float]:
        start = time.monotonic()
        error, _ = self.read(0, 4096)
        return error, time.monotonic() - start

    def fastest(self, command: int = 0, tries: int = 5) -> tuple[int, float]:
        """The worst error and the shortest time of ``tries`` requests: a busy host only ever adds
        to a request's time, so the shortest is the injected delay plus the server's own cost."""
        errors, times = [], []
        for _ in range(tries):
            start = time.monotonic()
            errors.append(self.request(command, 0, 4096 if command == 0 else 0)[0])
            times.append(time.monotonic() - start)
        return max(errors), min(times)

    def close(self) -> None:
        self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))
        self.sock.close()


@pytest.fixture
def registry() -> Iterator[ProcessRegistry]:
    registry = ProcessRegistry()
    yield registry
    assert registry.stop_scope(None) == [], "a server was left running"


@pytest.fixture(params=ENGINES)
def injector(
    request: pytest.FixtureRequest, registry: ProcessRegistry, tmp_path: Path
) -> Iterator[NbdInjector]:
    injector = make_injector(request.param, tmp_path / "disk.img", SIZE, registry=registry)
    injector.start()
    yield injector
    injector.stop()


def test_data_path(injector: NbdInjector) -> None:
    client = NbdClient(injector)
    assert client.size == SIZE
    pattern = bytes(range(256)) * 16
    assert client.write(4096, pattern) == 0
    assert client.read(4096, 4096) == (0, pattern)
    assert client.request(3)[0] == 0  # flush
    assert client.request(4, 0, 65536)[0] == 0  # trim
    assert client.request(6, 4096, 4096)[0] == 0  # write zeroes
    assert client.read(4096, 4096) == (0, bytes(4096))
    assert client.read(SIZE - 512, 4096)[0] == 22  # beyond the end: EINVAL
    client.close()
    assert injector.backing is not None and injector.backing.stat().st_size == SIZE


def test_export_name_handshake(injector: NbdInjector) -> None:
    client = NbdClient(injector, export_name=True)
    assert client.size == SIZE
    assert client.read(0, 512)[0] == 0
    client.close()


def test_latency_changes_live(injector: NbdInjector) -> None:
    client = NbdClient(injector)
    baseline = min(client.timed_read()[1] for _ in range(5))
    assert baseline < 0.01
    injector.apply(LatencyParams(read=0.05))
    error, spiked = client.fastest()
    assert error == 0
    # The server wakes up to Sleeper.MAX_BIAS early when it has learnt that this host wakes it late.
    assert 0.05 - Sleeper.MAX_BIAS <= spiked < 0.05 + 0.015
    assert client.write(0, bytes(512)) == 0  # writes are not delayed
    injector.apply(LatencyParams(flush=0.03))
    error, flushed = client.fastest(command=3)
    assert error == 0
    assert 0.03 - Sleeper.MAX_BIAS <= flushed < 0.03 + 0.015
    assert client.fastest()[1] < 0.01  # the new spike replaced the read delay
    injector.clear("latency")
    assert client.fastest()[1] < 0.01
    client.close()
    actions = [(e.kind, e.action) for e in injector.timeline]
    assert actions == [
        ("injector", "start"),
        ("latency", "apply"),
        ("latency", "apply"),
        ("latency", "clear"),
    ]
    described = injector.describe()
    assert described["alive"] is True and described["active"] == {}
    assert described["uri"] == injector.uri


def test_latency_compensation(injector: NbdInjector) -> None:
    client = NbdClient(injector)
    injector.apply(LatencyParams(read=0.05))
    injector.set_latency_compensation(0.008)  # rewrites the active delay
    error, took = client.fastest()
    assert error == 0
    assert 0.042 - Sleeper.MAX_BIAS <= took < 0.042 + 0.006
    assert injector.timeline[-1].action == "compensation"
    with pytest.raises(FaultParamError, match="not between 0 and 10 ms"):
        injector.set_latency_compensation(0.5)
    client.close()


def test_errors_change_live(injector: NbdInjector) -> None:
    client = NbdClient(injector)
    injector.apply(ErrorParams.parse(rate=1.0, operation="read", errno="EIO"))
    assert client.read(0, 4096)[0] == 5
    assert client.write(0, bytes(512)) == 0
    injector.apply(ErrorParams.parse(rate=1.0, operation="write", errno="ENOSPC"))
    assert client.write(0, bytes(512)) == 28
    assert client.read(0, 512)[0] == 0  # the connection survives errors
    injector.apply(ErrorParams.parse(rate=0.5, operation="read"))
    failed = sum(client.read(0, 512)[0] != 0 for _ in range(400))
    assert 120 < failed < 280
    injector.clear()
    assert client.read(0, 512)[0] == 0
    client.close()


def test_concurrent_delays_overlap(injector: NbdInjector) -> None:
    """Requests in flight together are delayed together (QD > 1), not one after another."""
    client = NbdClient(injector)
    injector.apply(LatencyParams(read=0.1))
    start = time.monotonic()
    for handle in range(1, 9):
        client.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, handle, 0, 4096))
    for _ in range(8):
        _, error, _ = struct.unpack(">IIQ", client._recv(16))
        assert error == 0
        client._recv(4096)
    assert time.monotonic() - start < 0.25
    client.sock.close()


def test_killed_server_is_detected(injector: NbdInjector) -> None:
    assert injector.is_alive()
    assert injector.process is not None
    injector.process.popen.send_signal(signal.SIGKILL)
    injector.process.popen.wait(5)
    assert not injector.is_alive()
    with pytest.raises(InjectorDiedError, match="no longer running \\(killed by signal 9"):
        injector.apply(LatencyParams(read=0.01))
    assert injector.timeline[-1].action == "died"


def test_stop_leaves_nothing(registry: ProcessRegistry, tmp_path: Path) -> None:
    injector = PythonNbdProxy(None, SIZE, registry=registry)
    injector.start()
    run_dir = injector.run_dir
    assert run_dir is not None and (run_dir / "scratch.img").exists()
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    client = NbdClient(injector)
    injector.stop()
    assert not injector.is_alive()
    assert not run_dir.exists()
    client.sock.close()
    injector.stop()  # twice is fine


def test_tcp_transport(registry: ProcessRegistry) -> None:
    injector = PythonNbdProxy(None, SIZE, transport="tcp", registry=registry)
    injector.start()
    try:
        assert injector.uri == f"nbd://127.0.0.1:{injector.port}"
        assert "server.type=inet,server.host=127.0.0.1" in injector.qemu_blockdev("n0")
        client = NbdClient(injector)
        assert client.read(0, 512)[0] == 0
        client.close()
    finally:
        injector.stop()


@pytest.mark.parametrize("engine", ENGINES)
def test_port_in_use(engine: str, registry: ProcessRegistry) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        injector = make_injector(engine, None, SIZE, transport="tcp", port=port, registry=registry)
        with pytest.raises(InjectorStartError, match=f"port 127.0.0.1:{port} is in use"):
            injector.start()
    assert not injector.is_alive()


def test_socket_in_use(registry: ProcessRegistry, tmp_path: Path) -> None:
    path = tmp_path / "taken.sock"
    path.touch()
    injector = PythonNbdProxy(None, SIZE, socket_path=path, registry=registry)
    with pytest.raises(InjectorStartError, match="is in use"):
        injector.start()
    assert path.exists()  # not ours: left alone


def test_nbdkit_missing(registry: ProcessRegistry) -> None:
    injector = NbdkitInjector(None, SIZE, nbdkit="nbdkit-does-not-exist", registry=registry)
    with pytest.raises(InjectorStartError, match=r"nbdkit not found.*nbdkit-plugin-python.*engine=python"):
        injector.start()
    assert injector.run_dir is None  # refused before its private folder was made


def test_server_failing_at_start_says_why(registry: ProcessRegistry) -> None:
    injector = PythonNbdProxy(None, SIZE, python="/bin/false", registry=registry)
    with pytest.raises(InjectorStartError, match="exited at start \\(exit code 1\\)"):
        injector.start()


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(FaultParamError, match="unknown engine"):
        make_injector("spdk", None, SIZE)
    with pytest.raises(FaultParamError, match="unknown transport"):
        PythonNbdProxy(None, SIZE, transport="rdma")
    with pytest.raises(
        FaultParamError, match=r"^port 10809 is for transport=tcp \(this injector uses a unix socket\)$"
    ):
        PythonNbdProxy(None, SIZE, transport="unix", port=10809)
    with pytest.raises(FaultParamError, match="no size"):
        PythonNbdProxy(tmp_path / "missing.img").start()
    small = tmp_path / "small.img"
    small.write_bytes(bytes(4096))
    with pytest.raises(FaultParamError, match="fewer than size"):
        PythonNbdProxy(small, SIZE).start()


@pytest.mark.skipif(shutil.which("qemu-io") is None, reason="qemu-io not installed")
@pytest.mark.parametrize("engine", ENGINES)
def test_qemu_client(engine: str, registry: ProcessRegistry) -> None:
    injector = make_injector(engine, None, SIZE, registry=registry)
    injector.start()
    try:
        commands = [
            "write -P 0xab 4096 1M",
            "read -P 0xab 4096 1M",
            "flush",
            "write -z 0 64k",
            "read -P 0 0 64k",
        ]
        argv = ["qemu-io", "-f", "raw"]
        for command in commands:
            argv += ["-c", command]
        run = subprocess.run([*argv, injector.uri], check=False, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "Pattern verification failed" not in run.stdout
    finally:
        injector.stop()


def test_everything_is_checked_before_anything_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: ProcessRegistry
) -> None:
    monkeypatch.setenv("NVMECHAOS_RUN_DIR", str(tmp_path / "runs"))
    nowhere = tmp_path / "no" / "such" / "disk.img"
    with pytest.raises(
        FaultParamError, match=r"^cannot create backing file '.*disk\.img': folder '.*such' does not exist$"
    ):
        PythonNbdProxy(nowhere, SIZE, registry=registry).start()
    with pytest.raises(FaultParamError, match=r"^backing '.*' is not a regular file$"):
        PythonNbdProxy(tmp_path, SIZE, registry=registry).start()
    with pytest.raises(FaultParamError, match="does not exist and no size was given"):
        PythonNbdProxy(tmp_path / "missing.img", registry=registry).start()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no file, no parent folder


def test_a_backing_file_created_for_a_failed_start_is_removed(
    tmp_path: Path, registry: ProcessRegistry
) -> None:
    backing = tmp_path / "new.img"
    injector = PythonNbdProxy(backing, SIZE, python="/bin/false", registry=registry)
    with pytest.raises(InjectorStartError, match="exited at start"):
        injector.start()
    assert not backing.exists()
    kept = tmp_path / "kept.img"
    kept.write_bytes(bytes(SIZE))
    with pytest.raises(InjectorStartError, match="exited at start"):
        PythonNbdProxy(kept, SIZE, python="/bin/false", registry=registry).start()
    assert kept.stat().st_size == SIZE  # a file the user had stays


def test_engines_and_transports_by_enum_or_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_engine(InjectorEngine.python) == "python"
    assert resolve_engine(" NBDKIT ") == "nbdkit"
    assert resolve_engine("auto", nbdkit="nbdkit-does-not-exist") == "python"
    monkeypatch.setattr(shutil, "which", lambda program: f"/usr/bin/{program}")
    assert resolve_engine(InjectorEngine.auto) == "nbdkit"
    injector = make_injector(InjectorEngine.nbdkit, None, "8M", nbdkit="my-nbdkit", transport=Transport.tcp)
    assert isinstance(injector, NbdkitInjector)
    assert (injector.nbdkit, injector.size, injector.transport) == ("my-nbdkit", SIZE, "tcp")
    assert make_injector("python", None, SIZE, nbdkit="unused").engine == "python"
    with pytest.raises(FaultParamError, match=r"^unknown engine 'spdk' \(use auto or nbdkit or python\)$"):
        resolve_engine("spdk")
    with pytest.raises(FaultParamError, match=r"^port '80' is not a port number"):
        PythonNbdProxy(None, SIZE, transport="tcp", port="80")  # type: ignore[arg-type]
    with pytest.raises(FaultParamError, match=r"^size 'lots' is not a size"):
        PythonNbdProxy(None, "lots")
