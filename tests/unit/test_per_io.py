"""Unit tests of fio logs with one line per I/O: exact windows, and their start on the guest clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nvmechaos.analysis.runclock import rebase_epoch_logs
from nvmechaos.analysis.series import is_per_io_log, per_io_series
from nvmechaos.fio.logs import LogFormatError

EPOCH = 1_796_000_000_000


def write_log(path: Path, rows: list[tuple[int, int, int]], bs: int = 4096) -> Path:
    """(time ms, value, direction) rows in fio's format."""
    path.write_text("".join(f"{t}, {v}, {d}, {bs}, 0\n" for t, v, d in rows), encoding="ascii")
    return path


def test_every_io_counts_in_the_window_it_completed_in(tmp_path: Path) -> None:
    # Reads completing at 10, 20, 499 ms (window 1: (0, 500]), 500 and 990 ms (window 2), none in
    # window 3, one at 1600 ms (window 4); a write at 700 ms.
    rows = [(10, 1_000_000, 0), (20, 3_000_000, 0), (499, 2_000_000, 0), (500, 4_000_000, 0)]
    rows += [(990, 6_000_000, 0), (1600, 9_000_000, 0), (700, 500_000, 1)]
    log = write_log(tmp_path / "fio_clat.1.log", rows)
    assert is_per_io_log(log)
    iops = per_io_series([log], "iops", 500)
    assert iops["read"].times_s.tolist() == [0.5, 1.0, 1.5, 2.0]
    assert iops["read"].values.tolist() == [6.0, 4.0, 0.0, 2.0]  # completions per second
    assert iops["write"].times_s.tolist() == [1.0] and iops["write"].values.tolist() == [2.0]
    latency = per_io_series([log], "clat", 500)["read"]
    assert latency.times_s.tolist() == [0.5, 1.0, 2.0]  # no latency where nothing completed
    assert latency.values.tolist() == [2_000_000.0, 5_000_000.0, 9_000_000.0]
    assert latency.unit == "ns" and latency.window_ms == 500


def test_threads_add_up(tmp_path: Path) -> None:
    first = write_log(tmp_path / "fio_clat.1.log", [(100, 1_000_000, 0), (600, 1_000_000, 0)])
    second = write_log(tmp_path / "fio_clat.2.log", [(200, 3_000_000, 0)])
    iops = per_io_series([first, second], "iops", 500)["read"]
    assert iops.values.tolist() == [4.0, 2.0]
    latency = per_io_series([first, second], "clat", 500)["read"]
    assert latency.values.tolist() == [2_000_000.0, 1_000_000.0]


def test_averaged_logs_are_refused(tmp_path: Path) -> None:
    log = write_log(tmp_path / "fio_iops.1.log", [(1000, 3000, 0), (2000, 3100, 0)], bs=0)
    assert not is_per_io_log(log)
    with pytest.raises(LogFormatError, match="line 1: no block size, so a window average"):
        per_io_series([log], "iops", 500)
    with pytest.raises(ValueError, match="not supported"):
        per_io_series([log], "bw", 500)
    with pytest.raises(ValueError, match="window_ms must be at least 1"):
        per_io_series([log], "iops", 0)
    assert not is_per_io_log(write_log(tmp_path / "empty.log", []))


def test_long_logs_are_streamed(tmp_path: Path) -> None:
    times = np.arange(1, 200_001) // 20  # 200k I/Os, 20 per ms, over 10 s
    path = tmp_path / "fio_clat.1.log"
    path.write_text("".join(f"{t}, 1000, 0, 4096, 0\n" for t in times), encoding="ascii")
    iops = per_io_series([path], "iops", 1000)["read"]
    assert iops.values.sum() == pytest.approx(200_000)
    assert iops.values[1:-1].tolist() == [20_000.0] * (iops.values.size - 2)


def test_per_io_logs_start_at_the_earliest_io(tmp_path: Path) -> None:
    # fio started at EPOCH + 5; its first I/O completed at +12 after 6.5 ms (lat log) and 6 ms (clat).
    lat = write_log(tmp_path / "fio_lat.1.log", [(EPOCH + 12, 6_500_000, 0), (EPOCH + 20, 1_000_000, 0)])
    clat = write_log(tmp_path / "fio_clat.1.log", [(EPOCH + 12, 6_000_000, 0), (EPOCH + 20, 900_000, 0)])
    iops = write_log(tmp_path / "fio_iops.1.log", [(EPOCH + 12, 1, 0), (EPOCH + 20, 1, 0)])
    starts = rebase_epoch_logs([lat, clat, iops])
    assert starts == {"fio_lat.1.log": EPOCH + 5, "fio_clat.1.log": EPOCH + 5, "fio_iops.1.log": EPOCH + 5}
    assert iops.read_text(encoding="ascii").splitlines() == ["7, 1, 0, 4096, 0", "15, 1, 0, 4096, 0"]
    assert (tmp_path / "epoch" / "fio_iops.1.log").is_file()
    assert rebase_epoch_logs([lat, clat, iops]) == starts  # again: from the originals


def test_averaged_and_per_io_threads_keep_their_own_starts(tmp_path: Path) -> None:
    averaged = write_log(tmp_path / "fio_iops.1.log", [(EPOCH + 1001, 10, 0), (EPOCH + 2001, 10, 0)], bs=0)
    per_io = write_log(tmp_path / "fio_clat.2.log", [(EPOCH + 300, 2_000_000, 0)])
    assert rebase_epoch_logs([averaged, per_io]) == {
        "fio_iops.1.log": EPOCH + 1,  # window ends 1 ms late: fio_start_ms
        "fio_clat.2.log": EPOCH + 298,
    }
