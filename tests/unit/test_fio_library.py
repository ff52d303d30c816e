"""FioLibrary as Robot calls it: one error path, times as the test wrote them, fio runs owned and
stopped when their test ends, and the engine's HTML, checks and verdict lines the keywords use."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from FioLibrary import FioLibrary
from nvmechaos.fio import runner
from nvmechaos.fio.html import result_chart_html, run_folder_html
from nvmechaos.fio.model import FioArtifacts
from nvmechaos.fio.parser import parse_fio_file
from nvmechaos.units import ArgumentError
from nvmechaos_robot import OWNER, KeywordError
from nvmechaos_robot.times import robot_time, seconds

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "fio"
TINY = ROOT / "tests" / "acceptance" / "fio" / "data" / "tiny.fio"
needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")


@pytest.mark.parametrize(
    ("written", "total"), [("-5 s", -5.0), ("0", 0.0), ("1 min 30 s", 90.0), (2, 2.0), (0.5, 0.5)]
)
def test_times_convert_as_robot_converts_them_and_remember_how_they_were_written(
    written: str | int | float, total: float
) -> None:
    time = robot_time(written)
    assert isinstance(time, timedelta)
    assert time.total_seconds() == total
    assert getattr(time, "written", None) == str(written)


@pytest.mark.parametrize(
    ("text", "error"),
    [("banana", "Invalid time string 'banana'."), ("nan", "cannot convert float NaN to integer")],
)
def test_what_is_not_a_time_fails_in_robots_words(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{error}$"):
        robot_time(text)


def test_refused_times_are_quoted_as_written() -> None:
    assert seconds(robot_time("2 min"), "timeout") == 120.0
    assert seconds(robot_time("0"), "ramp", allow_zero=True) == 0.0
    with pytest.raises(ArgumentError, match=r"^timeout '-5 s' is negative$"):
        seconds(robot_time("-5 s"), "timeout")
    with pytest.raises(ArgumentError, match=r"^timeout '0' is not positive$"):
        seconds(robot_time("0"), "timeout")
    # A timedelta made elsewhere (Python, ${{ }}) has no written form: its seconds are shown.
    with pytest.raises(ArgumentError, match=r"^ramp -3.0 is negative$"):
        seconds(timedelta(seconds=-3), "ramp", allow_zero=True)


def test_engine_errors_fail_the_keyword_in_one_line() -> None:
    library = FioLibrary()
    with pytest.raises(KeywordError) as failure:
        library.run_keyword("get_fio_metric", ("tiny", "iops"))
    assert str(failure.value) == (
        "result 'tiny' is not a fio result "
        "(use what Run Fio Job, Wait For Fio Job or Parse Fio Output returned)"
    )
    assert failure.value.__cause__ is None
    with pytest.raises(KeywordError, match=r"^Start Fio Job takes no timeout \(got timeout=2 min\)"):
        library.run_keyword("start_fio_job", ("tiny",), {"timeout": "2 min"})


def test_a_bad_import_argument_fails_the_import_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"^log_avg_msec 0 is not positive$") as failure:
        FioLibrary(log_avg_msec=0)
    assert failure.value.__cause__ is None
    with pytest.raises(Exception, match=r"^job_dir '.*nope' does not exist$"):
        FioLibrary(job_dir=str(tmp_path / "nope"))


@needs_fio
def test_a_background_run_is_owned_and_stopped_when_its_test_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # run folders go below ${OUTPUT DIR}, here "."
    library = FioLibrary()
    test = SimpleNamespace(id="s1-t1")
    library.start_test(test, None)
    fio = library.run_keyword("start_fio_job", (str(TINY),), {"directory": str(tmp_path), "runtime": "60"})
    assert OWNER.things("FioLibrary", runner.FioProcess) == [fio]
    assert fio.process.scope == "fio-test:s1-t1"
    warnings: list[str] = []
    monkeypatch.setattr("nvmechaos_robot.listener.logger.warn", warnings.append)
    library.end_test(test, None)
    assert not fio.is_running()
    assert warnings == [f"{fio.process.name} was still running at the end of the test; stopped it."]
    assert OWNER.things("FioLibrary") == []


def test_check_job_refuses_what_belongs_to_another_keyword() -> None:
    assert runner.check_job("tiny", {"runtime": "5"}, "Start Fio Job", runner.REFUSED_BY_START) == "tiny"
    with pytest.raises(ArgumentError, match=r"^job is empty: give a fio job file name or path$"):
        runner.check_job(" ", {}, "Run Fio Job", runner.REFUSED_BY_START)
    refused = (
        r"^Prepare Fio Job takes no allow_errors \(got allow_errors=True\): give it to Collect Fio Result$"
    )
    with pytest.raises(ArgumentError, match=refused):
        runner.check_job("tiny", {"allow_errors": "True"}, "Prepare Fio Job", runner.REFUSED_BY_PREPARE)


def test_a_wait_lasts_the_planned_runtime_plus_grace(tmp_path: Path) -> None:
    planned = runner.prepare_job(TINY, {"runtime": "3", "ramp_time": "1"}, tmp_path / "a")
    assert planned.default_timeout == 4.0 + runner.GRACE_SECONDS
    unplanned = runner.prepare_job(TINY, {"runtime": None, "time_based": None}, tmp_path / "b")
    assert unplanned.default_timeout is None


def test_run_folder_links_its_files_but_not_the_interval_logs(tmp_path: Path) -> None:
    run_dir = tmp_path / "01-tiny"
    run_dir.mkdir()
    for name in ("fio.json", "job.fio", "fio_iops.1.log", "a&b.txt"):
        (run_dir / name).write_text("", encoding="utf-8")
    html = run_folder_html(run_dir, lambda path: f"x/{path.name}")
    assert html == (
        'Run folder <a href="x/01-tiny">01-tiny</a>: <a href="x/a&amp;b.txt">a&amp;b.txt</a> '
        '<a href="x/fio.json">fio.json</a> <a href="x/job.fio">job.fio</a>'
    )
    assert run_folder_html(tmp_path / "gone", str) == ""


def test_the_chart_of_a_run(tmp_path: Path) -> None:
    result = parse_fio_file(FIXTURES / "randrw_json.json")
    assert result_chart_html(result) == ""  # saved JSON alone: no interval logs, no chart
    logs: dict[str, tuple[Path, ...]] = {}
    for kind in ("iops", "clat"):
        path = tmp_path / f"fio_{kind}.1.log"
        path.write_text("".join(f"{t * 1000}, {500 + t}, 0, 0, 0\n" for t in range(1, 4)), encoding="utf-8")
        logs[kind] = (path,)
    logged = replace(result, artifacts=FioArtifacts(directory=tmp_path, logs=logs))
    assert result_chart_html(logged).startswith('<img src="data:image/png;base64,')
    logs["iops"][0].write_text("1000, many\n", encoding="utf-8")
    assert result_chart_html(logged).startswith("<i>No chart: ")
