"""Unit tests of lining up guest fio logs with the host clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from nvmechaos.analysis.runclock import (
    ClockError,
    ClockSample,
    RunClock,
    align_run,
    align_run_dir,
    estimate_offset,
    fio_start_ms,
    log_windows,
    measure_guest_clock,
    parse_guest_clock,
    rebase_epoch_logs,
)
from nvmechaos.analysis.series import read_series
from nvmechaos.fio.jobfile import JobFile
from nvmechaos.units import ArgumentError
from nvmechaos.vm.ssh import CommandResult

ADJTIMEX = "    time.tv_sec:  1795662795\n    time.tv_usec: 540127\n"


def test_parse_guest_clock() -> None:
    assert parse_guest_clock(ADJTIMEX) == pytest.approx(1795662795.540127)
    with pytest.raises(ClockError, match="cannot read the guest clock"):
        parse_guest_clock("adjtimex: not found")


def test_offset_from_shortest_round_trip() -> None:
    samples = [
        ClockSample(100.0, 100.2, 100.05),  # rtt 0.2
        ClockSample(101.0, 101.04, 101.03),  # rtt 0.04, midpoint 101.02 -> +10 ms
        ClockSample(102.0, 102.1, 101.9),
    ]
    offset, uncertainty = estimate_offset(samples)
    assert offset == pytest.approx(0.01)
    assert uncertainty == pytest.approx(0.02)
    with pytest.raises(ClockError):
        estimate_offset([])


def test_fio_start_from_late_samples() -> None:
    start = 1795662797591
    stamps = [start + 1000 + 2, start + 2000 + 1, start + 3000 + 7, start + 4000]
    assert fio_start_ms(stamps, 1000) == start
    with pytest.raises(ClockError):
        fio_start_ms([], 1000)


def write_log(path: Path, start: int, values: list[int]) -> None:
    lines = [f"{start + 1000 * (k + 1) + (k % 3)}, {v}, 0, 0, 0\n" for k, v in enumerate(values)]
    path.write_text("".join(lines), encoding="ascii")


def test_rebase_and_align(tmp_path: Path) -> None:
    start = 1795662797591
    write_log(tmp_path / "fio_iops.1.log", start, [3000, 3100, 2900, 3050])
    write_log(tmp_path / "fio_clat.1.log", start, [2_000_000] * 4)
    logs = sorted(tmp_path.glob("fio_*.1.log"))
    before = [ClockSample(1795662790.0, 1795662790.1, 1795662790.05 + 0.25)]  # guest 250 ms ahead
    clock = align_run(logs, before)
    assert clock.fio_start_guest_wall == pytest.approx(start / 1000)
    assert clock.fio_start_wall == pytest.approx(start / 1000 - 0.25)
    assert clock.uncertainty_s == pytest.approx(0.05)
    assert (tmp_path / "epoch" / "fio_iops.1.log").is_file()
    series = read_series([tmp_path / "fio_iops.1.log"], "iops", window_ms=1000)["read"]
    assert list(series.times_s) == [1.0, 2.0, 3.0, 4.0]
    assert list(series.values) == [3000, 3100, 2900, 3050]
    # Twice is the same as once (the original in epoch/ is read again).
    assert rebase_epoch_logs(logs) == {"fio_clat.1.log": start, "fio_iops.1.log": start}
    clock.save(tmp_path)
    assert RunClock.load(tmp_path) == clock
    assert RunClock.load(tmp_path / "epoch") is None


def test_relative_logs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "fio_iops.1.log").write_text("1000, 5, 0, 0, 0\n", encoding="ascii")
    with pytest.raises(ClockError, match="log_unix_epoch=1"):
        rebase_epoch_logs([tmp_path / "fio_iops.1.log"])


def test_a_new_run_in_the_same_folder_is_not_mixed_up(tmp_path: Path) -> None:
    log = tmp_path / "fio_iops.1.log"
    write_log(log, 1795662797591, [1, 2, 3])
    assert rebase_epoch_logs([log]) == {"fio_iops.1.log": 1795662797591}
    write_log(log, 1795662900000, [1, 2, 3])  # fio ran again: epoch stamps, stale epoch/ copy
    assert rebase_epoch_logs([log]) == {"fio_iops.1.log": 1795662900000}
    assert (tmp_path / "epoch" / "fio_iops.1.log").read_text().startswith("1795662901000")


def test_logs_older_than_the_job_are_refused(tmp_path: Path) -> None:
    write_log(tmp_path / "fio_iops.1.log", 1795662797591, [1, 2, 3])
    late = [ClockSample(1795662897.0, 1795662897.1, 1795662897.05)]
    with pytest.raises(ClockError, match="not this run's"):
        align_run([tmp_path / "fio_iops.1.log"], late)


def write_windows(path: Path, start: int, window_ms: int, count: int) -> None:
    lines = [f"{start + window_ms * (k + 1) + (k % 3)}, 100, 0, 0, 0\n" for k in range(count)]
    path.write_text("".join(lines), encoding="ascii")


def test_each_log_is_read_with_its_jobs_window(tmp_path: Path) -> None:
    """fio's start is found from each job's own log_avg_msec, not from an assumed 1 s window (which
    put a 500 ms log's start 500 ms early)."""
    (tmp_path / "job.fio").write_text(
        "[global]\nlog_avg_msec=500\n[a]\nrw=read\nnumjobs=2\n[b]\nrw=write\nlog_avg_msec=250\n",
        encoding="utf-8",
    )
    assert log_windows(JobFile.load(tmp_path / "job.fio")) == {"1": 500, "2": 500, "3": 250}
    start = 1795662797591
    write_windows(tmp_path / "fio_iops.1.log", start, 500, 6)
    write_windows(tmp_path / "fio_iops.2.log", start, 500, 6)
    write_windows(tmp_path / "fio_iops.3.log", start, 250, 12)
    (tmp_path / "fio.json").write_text("{}", encoding="utf-8")  # not a log: left alone
    before = [ClockSample(1795662790.0, 1795662790.1, 1795662790.05)]
    clock = align_run_dir(tmp_path, before)
    assert clock.starts_ms == {"fio_iops.1.log": start, "fio_iops.2.log": start, "fio_iops.3.log": start}
    assert clock.fio_start_guest_wall == pytest.approx(start / 1000)
    assert RunClock.load(tmp_path) == clock
    # One window for every log, as before, still works for callers that know it.
    assert rebase_epoch_logs([tmp_path / "fio_iops.1.log"], 500) == {"fio_iops.1.log": start}


def test_a_run_folder_without_a_job_file_assumes_one_second_windows(tmp_path: Path) -> None:
    start = 1795662797591
    write_log(tmp_path / "fio_iops.1.log", start, [1, 2, 3])
    assert align_run_dir(tmp_path).starts_ms == {"fio_iops.1.log": start}
    with pytest.raises(ArgumentError, match=r"^fio run folder '.*missing' does not exist$"):
        align_run_dir(tmp_path / "missing")


class FakeShell:
    def __init__(self) -> None:
        self.closed = False
        self.runs = 0

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        self.runs += 1
        return CommandResult(0, ADJTIMEX, "")

    def close(self) -> None:
        self.closed = True


def test_guest_clock_samples_over_one_connection() -> None:
    shell = FakeShell()
    samples = measure_guest_clock(lambda: shell, 3)
    assert len(samples) == 3 and shell.runs == 3 and shell.closed
    assert samples[0].guest == pytest.approx(1795662795.540127)

    def never() -> FakeShell:
        raise AssertionError("connected for a measurement that was refused")

    with pytest.raises(ArgumentError, match=r"^samples '0' is not 1 or more$"):
        measure_guest_clock(never, 0)
