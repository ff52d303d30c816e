"""SSH to the guest: the per-run key pair, host-key pinning, running commands and copying files with
paramiko.

The engine uses paramiko directly (readiness checks, shutdown, fio runs in the guest, clock
samples); suites that open SSHLibrary connections of their own use the same key file and check the
same pinned host key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nvmechaos.vm.errors import HostKeyMismatchError, LoginRefusedError, SshError, SshRefusedError


@dataclass(frozen=True)
class KeyPair:
    """A private key file (0600) and its public key line (``ssh-ed25519 BASE64``)."""

    private: Path
    public: str

    @property
    def kernel_argument(self) -> str:
        """The public key as the guest's ``nvmechaos.authkey=`` value (``TYPE:BASE64``, no spaces)."""
        kind, blob = self.public.split()[:2]
        return f"{kind}:{blob}"


def generate_key(path: Path) -> KeyPair:
    """Write a new ed25519 key pair: ``path`` (OpenSSH private key, mode 0600) and ``path.pub``."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public_line = public.decode()
    path.with_name(path.name + ".pub").write_text(public_line + "\n", encoding="utf-8")
    return KeyPair(private=path, public=public_line)


def load_key(path: Path) -> KeyPair:
    """An existing private key file (any type paramiko reads) and its public line."""
    try:
        key = paramiko.PKey.from_path(str(path))
    except (OSError, paramiko.SSHException) as error:
        raise SshError(f"cannot read SSH key '{path}': {error}") from None
    return KeyPair(private=path, public=f"{key.get_name()} {key.get_base64()}")


def host_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class _Pinned(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Accept exactly the pinned host key; remember the first one seen when none is pinned."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected
        self.seen: str | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = host_key_line(key)
        self.seen = line
        if self.expected is not None and " ".join(self.expected.split()[:2]) != line:
            raise HostKeyMismatchError(
                f"guest SSH host key {key.get_name()} {key.get_fingerprint().hex()} at {hostname} "
                "is not the pinned key (another machine answers on that port?)"
            )


@dataclass
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


class GuestSsh:
    """One paramiko connection to the guest (used for readiness checks and shutdown)."""

    def __init__(self, host: str, port: int, user: str, key: Path, host_key: str | None) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.key = key
        self.policy = _Pinned(host_key)
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def connect(self, timeout: float = 5.0) -> None:
        """Connect and log in once.

        Raises:
            SshError: refused/reset (the guest's sshd is not up yet: retry), wrong host key, or key rejected.
        """
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(self.policy)
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=str(self.key),
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except SshError:
            client.close()
            raise
        except paramiko.AuthenticationException as error:
            client.close()
            raise LoginRefusedError(
                f"SSH login as {self.user} to {self.host}:{self.port} refused: {error}"
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as error:
            client.close()
            raise SshError(
                f"SSH to {self.host}:{self.port} failed: {error or type(error).__name__}"
            ) from None
        self._client = client

    @property
    def host_key(self) -> str | None:
        return self.policy.seen

    @property
    def client(self) -> paramiko.SSHClient:
        """The logged-in paramiko client, for channels of one's own (long-running commands, stdin).

        Raises:
            SshError: not connected.
        """
        if self._client is None:
            raise SshError("SSH is not connected")
        return self._client

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run ``command`` in the guest's shell.

        Raises:
            SshError: not connected, or the channel broke / timed out.
        """
        if self._client is None:
            raise SshError("SSH is not connected")
        try:
            _, stdout, stderr = self._client.exec_command(command, timeout=timeout)
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            code = stdout.channel.recv_exit_status()
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as error:
            raise SshError(
                f"SSH command failed on {self.host}:{self.port}: {error or type(error).__name__}"
            ) from None
        return CommandResult(code, out, err)

    def start(self, command: str) -> paramiko.Channel:
        """Start ``command`` in the guest's shell and return its channel at once (wait for it with
        ``channel.status_event`` and read ``channel.recv_exit_status()``).

        Raises:
            SshError: not connected, or the channel cannot be opened.
        """
        transport = self.client.get_transport()
        if transport is None:
            raise SshError("SSH is not connected")
        try:
            channel = transport.open_session()
            channel.exec_command(command)
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise SshError(
                f"SSH command failed on {self.host}:{self.port}: {error or type(error).__name__}"
            ) from None
        return channel

    def put(self, local: Path, remote: str) -> None:
        """Copy the file ``local`` to ``remote`` in the guest (SFTP).

        Raises:
            SshError: not connected, or the copy failed.
        """
        try:
            self._sftp_session().put(str(local), remote)
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise SshError(f"cannot copy '{local}' to the guest's '{remote}': {error}") from None

    def fetch(self, folder: str, prefix: str, local: Path) -> list[str]:
        """Copy every file of the guest's ``folder`` whose name starts with ``prefix`` into the
        folder ``local``; return their names, sorted.

        Raises:
            SshError: not connected, or a copy failed.
        """
        try:
            sftp = self._sftp_session()
            names = sorted(name for name in sftp.listdir(folder) if name.startswith(prefix))
            for name in names:
                sftp.get(f"{folder}/{name}", str(local / name))
        except (OSError, paramiko.SSHException, EOFError) as error:
            raise SshError(f"cannot copy {prefix}* from the guest's '{folder}': {error}") from None
        return names

    def _sftp_session(self) -> paramiko.SFTPClient:
        # One SFTP session for the connection's whole life: closing one can make the guest's
        # dropbear drop the whole connection (a third of the time, measured), killing the command
        # started on it next.
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        return self._sftp

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # ends the SFTP session with it
            self._client = None
        self._sftp = None

    def __enter__(self) -> GuestSsh:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def wait_for_login(
    host: str, port: int, user: str, key: Path, host_key: str | None, *, deadline: float, alive: object = None
) -> GuestSsh:
    """Retry :meth:`GuestSsh.connect` until it works or ``deadline`` (monotonic) passes.

    Raises:
        SshError: the last failure, once the deadline passed (a wrong host key fails at once).
    """
    last: SshError | None = None
    # Short banner probes at first: slirp accepts at once and forwards the SYN to the guest; a SYN
    # sent before the guest's network is up is only retransmitted after ~1 s, so a fresh connection
    # is faster than waiting on the old one. The wait grows in case the guest is merely slow.
    probe = 0.3
    while True:
        if not sshd_banner(host, port, timeout=max(0.1, min(probe, deadline - time.monotonic()))):
            last = SshError(f"SSH to {host}:{port} failed: no SSH banner yet (the guest's sshd is not up)")
            if (callable(alive) and not alive()) or time.monotonic() >= deadline:
                raise last
            probe = min(probe * 1.25, 3.0)
            time.sleep(0.05)
            continue
        ssh = GuestSsh(host, port, user, key, host_key)
        try:
            ssh.connect(timeout=max(1.0, min(5.0, deadline - time.monotonic())))
            return ssh
        except SshRefusedError:
            raise
        except SshError as error:
            last = error
        if callable(alive) and not alive():
            raise last
        if time.monotonic() >= deadline:
            raise last
        time.sleep(0.1)


def sshd_banner(host: str, port: int, timeout: float) -> bool:
    """True once an SSH server answers with its banner (slirp accepts and resets before sshd listens)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as probe:
            probe.settimeout(timeout)
            return probe.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def fingerprint(public_line: str) -> str:
    """SHA256 fingerprint of ``TYPE BASE64`` as ssh-keygen prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
