"""fio in the guest of a VM: a prepared job copied in, run, and its output fetched back.

:func:`start_guest_fio` opens the VM's own SSH connection (key login, host key pinned), creates a
fresh folder in the guest, copies the prepared ``job.fio`` into it and starts ``prepared.argv()``
there, in the background, under the guest's ``timeout``: a fio that runs ``margin`` seconds longer
than planned is ended in the guest (exit code 124, or 143 when it ends on the TERM). The exact
command is written to ``command.txt`` in the run folder. :meth:`GuestFioRun.wait` waits for the
exit code without polling (a busy wait would take a host core from QEMU for the whole run), copies
every ``fio*`` file (JSON, stdout, stderr, interval logs) back into the run folder, removes the
guest's folder and returns the exit code for ``collect_result``.

With ``reopen``, the guest runs fio as an application that survives its device going away would:
:data:`REOPEN_SCRIPT` (``fio-reopen.sh``) starts fio, and when fio ends on an error before the
job's planned time is up, waits until the namespace reads again (every 20 ms; found by its
controller's serial and nsid, since a replugged namespace may get another name), starts fio anew on
it for the time left, and so on. Each segment's JSON is kept (``fio.json.N``), its exit code, error
count and end time written to ``fio-segments.txt``; the interval logs of all segments are joined
(they are on the guest's wall clock, ``log_unix_epoch=1``), and ``fio.json`` is the last
segment's: the workload after it came back. See :func:`read_segments`.

With ``host_clock``, the guest's wall clock is compared with the host's before the start and after
the end, and the logs (written with ``log_unix_epoch=1``) are put on the host's clock in the run
folder (``timeline.json``, see :mod:`nvmechaos.analysis.runclock`), where the impact verdicts find
fio's start.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko  # type: ignore[import-untyped]

from nvmechaos.analysis.runclock import ClockSample, RunClock, align_run_dir, measure_guest_clock
from nvmechaos.errors import FioOutputError, NvmeChaosError
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.fio.runner import (
    COMMAND_NAME,
    JOB_NAME,
    JSON_NAME,
    LOG_PREFIX,
    STDERR_NAME,
    STDOUT_NAME,
    PreparedJob,
)
from nvmechaos.units import ArgumentError
from nvmechaos.vm.errors import VmError
from nvmechaos.vm.ssh import CommandResult, GuestSsh

#: Seconds a guest fio may run beyond its planned duration before the guest's ``timeout`` ends it.
GUEST_MARGIN_SECONDS = 120.0
#: The planned duration assumed for a job without a runtime (it runs until its size is done).
UNPLANNED_SECONDS = 3600.0
REMOTE_BASE = "/tmp"  # noqa: S108 - in the guest (a throwaway initramfs), not on the host
# How long fio gets to write its output after a TERM before it is killed.
STOP_GRACE_SECONDS = 10.0


class GuestFioError(NvmeChaosError):
    """fio could not be run in the guest, or outlived the time it was given there."""


class GuestTarget(Protocol):
    """What running fio needs of a VM (``nvmechaos.vm.Vm`` has it)."""

    @property
    def name(self) -> str: ...

    def ssh(self) -> GuestSsh: ...


def guest_time_limit(prepared: PreparedJob, margin: float = GUEST_MARGIN_SECONDS) -> int:
    """Whole seconds the guest's ``timeout`` gives fio: its planned duration plus ``margin``."""
    planned = prepared.expected_seconds
    return int((planned if planned is not None else UNPLANNED_SECONDS) + margin)


#: Runs fio (``$@``) for ``$1`` seconds on the device ``$2``, starting it again after each error
#: once the device reads again (see the module docstring). busybox sh; epoch seconds from ``date``.
REOPEN_SCRIPT = r"""#!/bin/sh
runtime=$1; device=$2; shift 2
# The namespace is found again by its controller's serial and its nsid: after a replug the guest
# may give it another name (/dev/nvme1n1 for /dev/nvme0n1), and the job file is pointed at it.
identity() {  # "<serial> <nsid>" of the block device folder $1 (read trims the serial's padding)
  read -r s <"$1/device/serial" && read -r i <"$1/nsid" && echo "$s $i"
} 2>/dev/null
wanted=$(identity "/sys/block/${device##*/}")
find_namespace() {
  for b in /sys/block/nvme*n*; do
    name=${b##*/}
    case "$name" in *c*) continue;; esac
    [ "$(identity "$b")" = "$wanted" ] || continue
    dd if="/dev/$name" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null && echo "/dev/$name" && return 0
  done
  return 1
}
end=$(( $(date +%s) + runtime )); n=0
while left=$(( end - $(date +%s) )); [ "$left" -gt 0 ]; do
  # allow_file_create=0: a namespace gone again between the check and fio's open must fail fio,
  # not make it create a file of that name in /dev and run on memory.
  timeout -s INT "$left" "$@" --allow_file_create=0 --output=fio.json.$n job.fio >>fio.stdout 2>>fio.stderr
  rc=$?
  now=$(date +%s); over=0
  [ "$now" -lt "$end" ] || over=1
  echo "$n $rc $now $over" >>fio-segments.txt
  for log in fio_*.log; do [ -e "$log" ] && cat "$log" >>"joined.$log" && rm "$log"; done
  cp fio.json.$n fio.json 2>/dev/null
  [ "$rc" -eq 0 ] && break
  until again=$(find_namespace); do
    [ "$(date +%s)" -lt "$end" ] || break 2
    usleep 20000
  done
  [ "$again" = "$device" ] || sed -i "s|^filename=$device\$|filename=$again|" job.fio
  device=$again
  n=$((n + 1))
done
for log in joined.fio_*.log; do [ -e "$log" ] && mv "$log" "${log#joined.}"; done
exit 0
"""
REOPEN_NAME = "fio-reopen.sh"
SEGMENTS_NAME = "fio-segments.txt"


@dataclass(frozen=True)
class Segment:
    """One fio run of a reopening workload: its exit code, when it ended (the guest's epoch
    seconds), whether the workload's time was up then (the guest's ``timeout`` ended it), and its
    I/O errors: those its JSON (``fio.json.N``) reports, or 1 for a fio that failed before its time
    was up without an I/O error of its own (e.g. its device was gone again when it opened it)."""

    index: int
    exit_code: int
    ended_epoch_s: int
    time_up: bool
    io_errors: int


def read_segments(run_dir: Path) -> list[Segment]:
    """The segments a reopening run wrote to ``fio-segments.txt`` (empty for an ordinary run)."""
    path = run_dir / SEGMENTS_NAME
    if not path.is_file():
        return []
    segments = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split()
        if len(words) == 4 and all(word.isdigit() for word in words):
            index, code, ended, over = (int(word) for word in words)
            try:
                errors = sum(job.io_errors for job in parse_fio_file(run_dir / f"{JSON_NAME}.{index}").jobs)
            except FioOutputError:
                errors = 0
            if not errors and code and not over:
                errors = 1
            segments.append(Segment(index, code, ended, bool(over), errors))
    return segments


def reopen_device(prepared: PreparedJob) -> str:
    """The device a reopening workload waits for: the first job's ``filename``.

    Raises:
        ArgumentError: the job names no single device file.
    """
    names = prepared.job_file.job_names
    filename = prepared.job_file.effective("filename", names[0]) if names else None
    if not filename or ":" in filename or not filename.startswith("/dev/"):
        raise ArgumentError(
            f"reopen needs a job on one device (filename=/dev/...), not '{filename or 'no filename'}'"
        )
    return filename


def guest_command(prepared: PreparedJob, remote: str, limit: int, *, reopen: bool = False) -> str:
    """The guest shell command that runs ``prepared`` in the guest folder ``remote``."""
    if reopen:
        planned = prepared.expected_seconds
        if planned is None:
            raise ArgumentError("reopen needs a job with a runtime (it runs for that long in all)")
        fio = " ".join(prepared.argv()[:2])  # fio --output-format=...: the script adds output and job
        return (
            f"cd {remote} && timeout {limit} sh {REOPEN_NAME} {math.ceil(planned)} "
            f"{shlex.quote(reopen_device(prepared))} {fio}"
        )
    return f"cd {remote} && timeout {limit} {' '.join(prepared.argv())} >{STDOUT_NAME} 2>{STDERR_NAME}"


class GuestFioRun:
    """A prepared fio job running in a guest (what :func:`start_guest_fio` returns)."""

    def __init__(
        self,
        vm: GuestTarget,
        prepared: PreparedJob,
        *,
        ssh: GuestSsh,
        remote: str,
        command: str,
        channel: paramiko.Channel,
        clock_before: list[ClockSample] | None = None,
    ) -> None:
        self.vm = vm
        self.prepared = prepared
        self.ssh = ssh
        self.remote = remote
        self.command = command
        self.channel = channel
        self.clock_before = clock_before
        self.clock: RunClock | None = None
        self.exit_code: int | None = None
        self.started_monotonic = time.monotonic()
        self._ended = False

    @property
    def name(self) -> str:
        return self.prepared.name

    def is_running(self) -> bool:
        return not self._ended and not self.channel.exit_status_ready()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for fio to end, fetch its output into the run folder and return its exit code.

        ``timeout`` (seconds, None: as long as the guest's own limit lets it run) guards the wait:
        a fio still running then is stopped (TERM, so it writes its output) and this fails.

        Raises:
            ArgumentError: ``timeout`` is not above zero.
            GuestFioError: fio still ran after ``timeout`` seconds (the output it wrote is fetched).
            VmError: the guest could not be reached to fetch the output.
            ClockError: (``host_clock``) the logs could not be put on the host's clock.
        """
        if timeout is not None and not timeout > 0:
            raise ArgumentError(f"timeout '{timeout:g}' is not positive")
        if self._ended:
            raise GuestFioError(f"fio job '{self.name}' in VM '{self.vm.name}' was waited for already")
        try:
            if not self.channel.status_event.wait(timeout):
                self._terminate()
                self._fetch()
                raise GuestFioError(
                    f"fio job '{self.name}' in VM '{self.vm.name}' still ran after {timeout:g} s and was "
                    f"stopped (output in {self.prepared.run_dir})"
                )
            exit_code = int(self.channel.recv_exit_status())
            self.exit_code = exit_code
            self._fetch()
            if self.clock_before is not None:
                after = measure_guest_clock(lambda: _Borrowed(self.ssh))
                self.clock = align_run_dir(self.prepared.run_dir, self.clock_before, after)
        finally:
            # A keyword timeout or Ctrl-C interrupts the wait: never leave fio running behind it.
            self.stop()
        return exit_code

    def stop(self) -> None:
        """Stop fio in the guest if it still runs, and close the connection (safe to call again,
        and when the VM is gone)."""
        if self._ended:
            return
        self._ended = True
        if not self.channel.exit_status_ready():
            with contextlib.suppress(VmError, GuestFioError):
                self._terminate()
        self.channel.close()
        self.ssh.close()

    def _terminate(self) -> None:
        """TERM every guest process working in this run's folder (``timeout``, fio and its job
        processes), then KILL what still runs after :data:`STOP_GRACE_SECONDS`."""
        self._signal("TERM")
        if not self.channel.status_event.wait(STOP_GRACE_SECONDS):
            self._signal("KILL")
            self.channel.status_event.wait(2.0)

    def _signal(self, name: str) -> None:
        folder = shlex.quote(self.remote)
        self.ssh.run(
            f'for p in /proc/[0-9]*; do [ "$(readlink $p/cwd)" = {folder} ] && kill -{name} ${{p##*/}}; done',
            timeout=10,
        )

    def _fetch(self) -> None:
        """Copy the run's ``fio*`` files back and remove the guest's folder."""
        self.ssh.fetch(self.remote, LOG_PREFIX, self.prepared.run_dir)
        self.ssh.run(f"rm -rf {shlex.quote(self.remote)}", timeout=30)


class _Borrowed:
    """A connection lent to a clock measurement, which must not close it."""

    def __init__(self, ssh: GuestSsh) -> None:
        self.ssh = ssh

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        return self.ssh.run(command, timeout)

    def close(self) -> None:
        """The run closes its connection itself."""


def start_guest_fio(
    vm: GuestTarget,
    prepared: PreparedJob,
    *,
    margin: float = GUEST_MARGIN_SECONDS,
    remote_base: str = REMOTE_BASE,
    host_clock: bool = False,
    reopen: bool = False,
) -> GuestFioRun:
    """Copy ``prepared`` into a fresh folder under ``remote_base`` in the guest of ``vm`` and start it
    there in the background (see the module docstring; ``reopen``: as an application that reopens
    its device after errors).

    Raises:
        ArgumentError: ``margin`` is negative.
        GuestFioError: the guest folder cannot be created.
        VmError: the guest cannot be reached, or the job file cannot be copied.
    """
    if margin < 0:
        raise ArgumentError(f"margin '{margin:g}' is negative")
    if reopen:
        reopen_device(prepared)  # refuse a job without one device before anything starts
    ssh = vm.ssh()
    try:
        clock_before = measure_guest_clock(lambda: _Borrowed(ssh)) if host_clock else None
        made = ssh.run(f"mktemp -d {shlex.quote(remote_base)}/fio.XXXXXX", timeout=30)
        remote = made.stdout.strip()
        if made.exit_code != 0 or not remote:
            raise GuestFioError(
                f"cannot create a run folder in the guest of VM '{vm.name}': "
                f"{(made.stderr or made.stdout).strip() or f'exit code {made.exit_code}'}"
            )
        ssh.put(prepared.run_dir / JOB_NAME, f"{remote}/{JOB_NAME}")
        if reopen:
            script = prepared.run_dir / REOPEN_NAME
            script.write_text(REOPEN_SCRIPT, encoding="utf-8")
            ssh.put(script, f"{remote}/{REOPEN_NAME}")
        command = guest_command(prepared, remote, guest_time_limit(prepared, margin), reopen=reopen)
        (prepared.run_dir / COMMAND_NAME).write_text(f"ssh {vm.name}: {command}\n", encoding="utf-8")
        channel = ssh.start(command)
    except BaseException:
        ssh.close()
        raise
    return GuestFioRun(
        vm, prepared, ssh=ssh, remote=remote, command=command, channel=channel, clock_before=clock_before
    )


__all__ = [
    "GUEST_MARGIN_SECONDS",
    "REOPEN_SCRIPT",
    "GuestFioError",
    "GuestFioRun",
    "GuestTarget",
    "Segment",
    "guest_command",
    "guest_time_limit",
    "read_segments",
    "reopen_device",
    "start_guest_fio",
]
