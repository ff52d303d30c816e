"""fio in a guest (nvmechaos.targets.guest) against a fake SSH connection: the command it runs, the
files it copies both ways, the guard, the clean-up, the host clock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nvmechaos.analysis.runclock import RunClock
from nvmechaos.fio.runner import PreparedJob, prepare_job
from nvmechaos.targets.guest import GuestFioError, guest_time_limit, start_guest_fio
from nvmechaos.units import ArgumentError
from nvmechaos.vm.errors import SshError
from nvmechaos.vm.ssh import CommandResult, GuestSsh

ADJTIMEX = "    time.tv_sec:  1795662795\n    time.tv_usec: 540127\n"
REMOTE = "/tmp/fio.abc123"


class FakeChannel:
    def __init__(self, code: int | None) -> None:
        self.status_event = threading.Event()
        self.code = code if code is not None else -1
        if code is not None:
            self.status_event.set()
        self.closed = False

    def exit_status_ready(self) -> bool:
        return self.status_event.is_set()

    def recv_exit_status(self) -> int:
        self.status_event.wait()
        return self.code

    def close(self) -> None:
        self.closed = True


class FakeSsh:
    """Answers what the target asks of a guest; ``code`` None: fio runs until it gets a TERM."""

    def __init__(self, code: int | None = 0, mktemp: CommandResult | None = None, gone: bool = False) -> None:
        self.channel = FakeChannel(code)
        self.mktemp = mktemp or CommandResult(0, REMOTE + "\n", "")
        self.gone = gone
        self.commands: list[str] = []
        self.started: list[str] = []
        self.put_files: list[tuple[Path, str]] = []
        self.closed = False
        self.logs: dict[str, str] = {}

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        if self.gone:
            raise SshError("SSH command failed on 127.0.0.1:2222: the VM is gone")
        self.commands.append(command)
        if command.startswith("mktemp"):
            return self.mktemp
        if "adjtimex" in command:
            return CommandResult(0, ADJTIMEX, "")
        if "kill -TERM" in command:
            self.channel.code = 143
            self.channel.status_event.set()
        return CommandResult(0, "", "")

    def put(self, local: Path, remote: str) -> None:
        self.put_files.append((local, remote))

    def start(self, command: str) -> FakeChannel:
        self.started.append(command)
        return self.channel

    def fetch(self, folder: str, prefix: str, local: Path) -> list[str]:
        assert (folder, prefix) == (REMOTE, "fio")
        files = {"fio.json": "{}", "fio.stdout": "", "fio.stderr": "", **self.logs}
        for name, text in files.items():
            (local / name).write_text(text, encoding="ascii")
        return sorted(files)

    def close(self) -> None:
        self.closed = True


class FakeVm:
    name = "fake"

    def __init__(self, ssh: FakeSsh) -> None:
        self.connection = ssh

    def ssh(self) -> GuestSsh:
        return self.connection  # type: ignore[return-value]


def prepared(tmp_path: Path, **overrides: object) -> PreparedJob:
    job = tmp_path / "probe.fio"
    job.write_text("[global]\nioengine=libaio\n[probe]\nrw=randread\n", encoding="utf-8")
    return prepare_job(job, {"filename": "/dev/nvme0n1", **overrides}, tmp_path / "run")


def test_a_run_copies_the_job_in_runs_it_guarded_and_fetches_its_output(tmp_path: Path) -> None:
    ssh = FakeSsh(code=0)
    job = prepared(tmp_path, runtime=5)
    run = start_guest_fio(FakeVm(ssh), job)
    fio = "fio --output-format=json+ --output=fio.json job.fio"
    command = f"cd {REMOTE} && timeout 125 {fio} >fio.stdout 2>fio.stderr"
    assert ssh.started == [command]
    assert ssh.put_files == [(job.run_dir / "job.fio", f"{REMOTE}/job.fio")]
    assert (job.run_dir / "command.txt").read_text() == f"ssh fake: {command}\n"
    assert run.wait() == 0
    assert (job.run_dir / "fio.json").is_file()
    assert ssh.commands[-1] == f"rm -rf {REMOTE}"
    assert ssh.closed and ssh.channel.closed and not run.is_running()
    run.stop()  # safe again


def test_the_guest_limit_is_the_planned_time_plus_the_margin(tmp_path: Path) -> None:
    assert guest_time_limit(prepared(tmp_path, runtime=5, ramp_time=2)) == 127
    assert guest_time_limit(prepared(tmp_path), margin=10) == 3610  # no runtime: until its size is done
    with pytest.raises(ArgumentError, match=r"^margin '-1' is negative$"):
        start_guest_fio(FakeVm(FakeSsh()), prepared(tmp_path), margin=-1)


def test_a_timeout_stops_fio_and_fails_in_one_line(tmp_path: Path) -> None:
    ssh = FakeSsh(code=None)
    job = prepared(tmp_path, runtime=30)
    run = start_guest_fio(FakeVm(ssh), job)
    with pytest.raises(
        GuestFioError,
        match=r"^fio job 'probe' in VM 'fake' still ran after 0.1 s and was stopped \(output in .*run\)$",
    ):
        run.wait(0.1)
    assert any("kill -TERM" in command and REMOTE in command for command in ssh.commands)
    assert (job.run_dir / "fio.json").is_file()  # what fio wrote on the TERM is kept
    assert ssh.closed
    with pytest.raises(ArgumentError, match=r"^timeout '0' is not positive$"):
        start_guest_fio(FakeVm(FakeSsh()), job).wait(0)


def test_a_guest_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    ssh = FakeSsh(mktemp=CommandResult(1, "", "mktemp: No space left on device\n"))
    with pytest.raises(
        GuestFioError, match=r"^cannot create a run folder in the guest of VM 'fake': mktemp: No space left"
    ):
        start_guest_fio(FakeVm(ssh), prepared(tmp_path))
    assert ssh.closed and not ssh.started


def test_stopping_a_run_on_a_vm_that_is_gone_does_not_fail(tmp_path: Path) -> None:
    ssh = FakeSsh(code=None)
    run = start_guest_fio(FakeVm(ssh), prepared(tmp_path, runtime=30))
    ssh.gone = True
    ssh.channel.status_event.set()  # the connection died with the VM
    ssh.channel.status_event.clear()
    run.stop()
    assert ssh.closed and not run.is_running()


def test_host_clock_puts_the_logs_on_the_host_clock(tmp_path: Path) -> None:
    ssh = FakeSsh(code=0)
    start = 1795662797591
    ssh.logs = {"fio_iops.1.log": "".join(f"{start + 1000 * k}, 100, 0, 0, 0\n" for k in (1, 2, 3))}
    job = prepared(tmp_path, runtime=3, log_unix_epoch=1)
    run = start_guest_fio(FakeVm(ssh), job, host_clock=True)
    assert run.clock_before is not None and len(run.clock_before) == 5
    assert run.wait() == 0
    assert run.clock is not None and run.clock.fio_start_guest_wall == pytest.approx(start / 1000)
    assert RunClock.load(job.run_dir) == run.clock
    assert sum("adjtimex" in command for command in ssh.commands) == 10
