"""Unit tests of the fio output parser, the job-file overrides and the runner's duration helpers.

The parser tests read outputs of real fio runs in tests/fixtures/fio (made by make_fixtures.sh; see
versions.txt there for the fio that made them) and compare what the parser returns with the figures
in the JSON itself, read here independently with :mod:`json`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nvmechaos.errors import FioOutputError, JobFileError, NvmeChaosError, TargetError
from nvmechaos.fio import runner
from nvmechaos.fio.jobfile import JobFile, find_job_file, join_fio_paths, split_fio_paths
from nvmechaos.fio.model import DIRECTIONS, FioResult
from nvmechaos.fio.parser import parse_fio_file, parse_fio_text
from nvmechaos.units import ArgumentError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fio"
NOT_FIXTURES = {"make_fixtures.sh", "versions.txt", "exit-codes.txt"}

# Fixtures holding a complete fio report.
REPORTS = [
    "randrw_jsonplus.json",
    "randrw_json.json",
    "multi_jobs.json",
    "numjobs2_group.json",
    "read_only.json",
    "lat_percentiles.json",
    "percentile_list.json",
    "job_error.txt",
    "nbd_connected.txt",
    "trim_nbd.txt",
]
# Fixtures without a usable report.
BROKEN = ["truncated.txt", "killed_sigkill.txt", "empty.txt", "bogus_option.txt"]
# fio's default percentile_list.
DEFAULT_PERCENTILES = {
    1.0,
    5.0,
    10.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    70.0,
    80.0,
    90.0,
    95.0,
    99.0,
    99.5,
    99.9,
    99.95,
    99.99,
}


def fixture(name: str) -> Path:
    return FIXTURES / name


def raw_report(name: str) -> dict[str, Any]:
    """The fio JSON of a fixture, read without the parser (it starts at the first line that is '{')."""
    text = fixture(name).read_text(encoding="utf-8")
    start = 0 if text.startswith("{") else text.index("\n{") + 1
    document: dict[str, Any] = json.loads(text[start:])
    return document


def raw_job(name: str, index: int = 0) -> dict[str, Any]:
    job: dict[str, Any] = raw_report(name)["jobs"][index]
    return job


def parsed(name: str) -> FioResult:
    return parse_fio_file(fixture(name))


def fio_version() -> str:
    for line in fixture("versions.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("fio: "):
            return line.removeprefix("fio: ").strip()
    raise AssertionError("versions.txt records no fio version")


def exit_codes() -> dict[str, str]:
    lines = fixture("exit-codes.txt").read_text(encoding="utf-8").splitlines()
    return dict(line.split("\t") for line in lines if line)


# --------------------------------------------------------------------------------------------------
# The fixtures themselves


def test_every_fixture_is_listed_with_its_exit_code() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.name not in NOT_FIXTURES}
    assert on_disk == set(exit_codes())
    assert on_disk == set(REPORTS) | set(BROKEN)


def test_fixtures_record_how_fio_ended() -> None:
    codes = exit_codes()
    assert codes["job_error.txt"] == "1"
    assert codes["bogus_option.txt"] == "1"
    assert codes["killed_sigkill.txt"] == "137"  # 128 + SIGKILL
    assert all(codes[name] == "0" for name in REPORTS if name != "job_error.txt")


@pytest.mark.parametrize("name", sorted(set(REPORTS) | set(BROKEN)))
def test_fixtures_are_small(name: str) -> None:
    assert fixture(name).stat().st_size < 64 * 1024


# --------------------------------------------------------------------------------------------------
# Every complete report: the parser returns exactly what fio wrote


@pytest.mark.parametrize("name", REPORTS)
def test_report_matches_the_json(name: str) -> None:
    document = raw_report(name)
    result = parsed(name)

    assert result.fio_version == document["fio version"] == fio_version()
    assert result.timestamp_ms == document["timestamp_ms"] > 0
    assert result.exit_code is None
    assert result.artifacts is None
    assert len(result.jobs) == len(document["jobs"])
    for job, raw in zip(result.jobs, document["jobs"], strict=True):
        assert job.name == raw["jobname"]
        assert job.group_id == raw["groupid"]
        assert job.error == raw["error"]
        assert job.runtime_ms == raw["job_runtime"]
        assert job.options == {k: str(v) for k, v in raw["job options"].items()}
        # fio 3.33 reports every direction, with zeros where the job did nothing.
        assert set(job.directions) == set(DIRECTIONS)
        for direction in DIRECTIONS:
            got, want = job.directions[direction], raw[direction]
            assert got.direction == direction
            assert got.iops == pytest.approx(want["iops"])
            assert got.total_ios == want["total_ios"]
            assert got.io_bytes == want["io_bytes"]
            assert got.bw_bytes == want["bw_bytes"]
            assert got.runtime_ms == want["runtime"]
            assert got.did_io == (want["total_ios"] > 0)
            for attribute, block in (("lat", "lat_ns"), ("clat", "clat_ns"), ("slat", "slat_ns")):
                stats, raw_stats = getattr(got, attribute), want[block]
                assert stats is not None
                assert stats.samples == raw_stats["N"]
                assert stats.min_ns == raw_stats["min"]
                assert stats.max_ns == raw_stats["max"]
                assert stats.mean_ns == pytest.approx(raw_stats["mean"])
                assert stats.stddev_ns == pytest.approx(raw_stats["stddev"])
                assert stats.percentiles_ns == {
                    float(k): float(v) for k, v in raw_stats.get("percentile", {}).items()
                }
                assert stats.bins == {int(k): v for k, v in raw_stats.get("bins", {}).items()}


@pytest.mark.parametrize("name", REPORTS)
def test_text_and_file_parse_alike(name: str) -> None:
    text = fixture(name).read_text(encoding="utf-8")
    from_text = parse_fio_text(text, source=str(fixture(name)))
    assert from_text == parsed(name)


@pytest.mark.parametrize("name", [n for n in REPORTS if n.endswith(".json")])
def test_pure_json_reports_have_no_messages(name: str) -> None:
    assert parsed(name).messages == ()


@pytest.mark.parametrize("name", [n for n in REPORTS if n != "job_error.txt"])
def test_total_iops_is_the_sum_of_what_the_jobs_did(name: str) -> None:
    document = raw_report(name)
    result = parsed(name)
    want = sum(job[d]["iops"] for job in document["jobs"] for d in DIRECTIONS)
    assert result.total_iops == pytest.approx(want)
    assert result.total_iops > 0
    assert result.total_bw_bytes == pytest.approx(
        sum(job[d]["bw_bytes"] for job in document["jobs"] for d in DIRECTIONS)
    )


# --------------------------------------------------------------------------------------------------
# Single randrw job: json+ against json


def test_jsonplus_randrw_reads_and_writes() -> None:
    job = parsed("randrw_jsonplus.json").job("randrw")
    raw = raw_job("randrw_jsonplus.json")
    assert [d.direction for d in job.active_directions] == ["read", "write"]
    assert job.did_io
    read, write = job.directions["read"], job.directions["write"]
    assert read.iops > 0
    assert write.iops > 0
    assert read.iops == raw["read"]["iops"]
    assert write.iops == raw["write"]["iops"]
    # rwmixread=70: clearly more reads than writes.
    assert read.total_ios > write.total_ios
    assert job.options["rwmixread"] == "70"
    assert job.options["runtime"] == "500ms"
    assert job.runtime_ms == 500
    assert not job.directions["trim"].did_io


def test_jsonplus_has_completion_latency_bins() -> None:
    job = parsed("randrw_jsonplus.json").job("randrw")
    for direction in ("read", "write"):
        clat = job.directions[direction].clat
        assert clat is not None
        assert clat.bins, f"{direction} clat has no json+ bins"
        assert all(isinstance(k, int) and isinstance(v, int) for k, v in clat.bins.items())
        # Every completed I/O falls in exactly one bin.
        assert sum(clat.bins.values()) == clat.samples == job.directions[direction].total_ios
        assert min(clat.bins) >= clat.min_ns * 0.9
        assert max(clat.bins) <= clat.max_ns * 1.1
        raw_bins = raw_job("randrw_jsonplus.json")[direction]["clat_ns"]["bins"]
        assert clat.bins == {int(k): v for k, v in raw_bins.items()}
    # Only clat gets bins; trim did nothing and has none.
    read = job.directions["read"]
    assert read.lat is not None and read.lat.bins == {}
    assert read.slat is not None and read.slat.bins == {}
    trim_clat = job.directions["trim"].clat
    assert trim_clat is not None and trim_clat.bins == {}


@pytest.mark.parametrize("name", [n for n in REPORTS if n != "randrw_jsonplus.json"])
def test_plain_json_has_no_bins(name: str) -> None:
    for job in parsed(name).jobs:
        for direction in job.directions.values():
            for stats in (direction.lat, direction.clat, direction.slat):
                assert stats is not None
                assert stats.bins == {}


@pytest.mark.parametrize("name", ["randrw_json.json", "randrw_jsonplus.json"])
def test_default_percentiles(name: str) -> None:
    job = parsed(name).jobs[0]
    raw = raw_job(name)
    for direction in ("read", "write"):
        result = job.directions[direction]
        clat = result.clat
        assert clat is not None
        assert set(clat.percentiles_ns) == DEFAULT_PERCENTILES
        for percent, key in ((99.0, "99.000000"), (99.9, "99.900000"), (99.99, "99.990000")):
            value = clat.percentile(percent)
            assert value is not None
            assert value == raw[direction]["clat_ns"]["percentile"][key]
            # fio reports a percentile as its histogram bucket's value: it can be a little above max.
            assert clat.min_ns <= value <= clat.max_ns * 1.05
        tail = [clat.percentiles_ns[p] for p in (99.0, 99.9, 99.99)]
        assert tail == sorted(tail)
        assert clat.percentile(42.0) is None
        # Without lat_percentiles only clat carries percentiles.
        assert result.lat is not None and result.lat.percentiles_ns == {}
        assert result.completion_latency is clat


def test_plain_json_randrw_did_io() -> None:
    result = parsed("randrw_json.json")
    job = result.job("randrw")
    raw = raw_job("randrw_json.json")
    assert job.runtime_ms == 1000
    assert job.directions["read"].iops == raw["read"]["iops"] > 0
    assert job.directions["write"].iops == raw["write"]["iops"] > 0
    assert job.directions["read"].runtime_ms >= 1000
    # psync submits synchronously: fio reports slat with no samples.
    slat = job.directions["read"].slat
    assert slat is not None and slat.samples == 0


# --------------------------------------------------------------------------------------------------
# Several jobs, groups, directions


def test_several_jobs_in_one_file() -> None:
    result = parsed("multi_jobs.json")
    assert [job.name for job in result.jobs] == ["seqread", "seqwrite", "mixed"]
    assert [job.group_id for job in result.jobs] == [0, 0, 1]
    assert [d.direction for d in result.job("seqread").active_directions] == ["read"]
    assert [d.direction for d in result.job("seqwrite").active_directions] == ["write"]
    assert [d.direction for d in result.job("mixed").active_directions] == ["read", "write"]
    # Options are those the job file set in the job's own section ([global] ones are not repeated).
    assert result.job("seqwrite").options == {"rw": "write", "bs": "16k"}
    seqwrite = result.job("seqwrite").directions["write"]
    assert seqwrite.io_bytes == seqwrite.total_ios * 16 * 1024
    for index, job in enumerate(result.jobs):
        raw = raw_job("multi_jobs.json", index)
        for direction in job.active_directions:
            assert direction.iops == raw[direction.direction]["iops"] > 0


def test_unknown_job_name_lists_the_jobs() -> None:
    result = parsed("multi_jobs.json")
    with pytest.raises(KeyError, match=r"no job named 'nope' \(jobs: seqread, seqwrite, mixed\)"):
        result.job("nope")


def test_unknown_job_name_is_an_engine_error_of_one_unquoted_line() -> None:
    with pytest.raises(NvmeChaosError) as error:
        parsed("multi_jobs.json").job("nope")
    assert str(error.value) == "no job named 'nope' (jobs: seqread, seqwrite, mixed)"


def test_numjobs_with_group_reporting_is_one_job() -> None:
    result = parsed("numjobs2_group.json")
    assert len(result.jobs) == 1
    job = result.jobs[0]
    assert job.name == "grouped"
    assert job.options["numjobs"] == "2"
    assert job.options["group_reporting"] == "1"
    # job_runtime adds up both clones' runtime.
    assert job.runtime_ms == 2000
    read = job.directions["read"]
    assert read.iops == raw_job("numjobs2_group.json")["read"]["iops"] > 0
    assert [d.direction for d in job.active_directions] == ["read"]


def test_read_only_job_reports_idle_write_and_trim() -> None:
    job = parsed("read_only.json").job("reader")
    assert set(job.directions) == {"read", "write", "trim"}
    assert job.directions["read"].did_io
    for idle in ("write", "trim"):
        direction = job.directions[idle]
        assert not direction.did_io
        assert direction.iops == 0.0
        assert direction.total_ios == 0
        assert direction.io_bytes == 0
        assert direction.clat is not None and direction.clat.samples == 0
        assert direction.clat.percentiles_ns == {}
    assert [d.direction for d in job.active_directions] == ["read"]
    assert parsed("read_only.json").total_iops == job.directions["read"].iops


def test_trim_job_over_nbd() -> None:
    result = parsed("trim_nbd.txt")
    job = result.job("trimmer")
    raw = raw_job("trim_nbd.txt")
    trim = job.directions["trim"]
    assert [d.direction for d in job.active_directions] == ["trim"]
    assert trim.iops == raw["trim"]["iops"] > 0
    assert trim.io_bytes == trim.total_ios * 64 * 1024
    assert trim.clat is not None and trim.clat.percentile(99.9) is not None
    assert not job.directions["read"].did_io
    assert not job.directions["write"].did_io
    assert result.messages == ("fio: connected to NBD server",)


# --------------------------------------------------------------------------------------------------
# Latency blocks and percentiles


def test_lat_percentiles_and_slat() -> None:
    job = parsed("lat_percentiles.json").job("latency")
    raw = raw_job("lat_percentiles.json")
    for name in ("read", "write"):
        direction = job.directions[name]
        for attribute, block in (("lat", "lat_ns"), ("clat", "clat_ns"), ("slat", "slat_ns")):
            stats = getattr(direction, attribute)
            assert stats is not None
            assert stats.samples == direction.total_ios > 0
            for percent, key in ((99.0, "99.000000"), (99.9, "99.900000"), (99.99, "99.990000")):
                assert stats.percentile(percent) == raw[name][block]["percentile"][key]
        # Total latency is submission plus completion latency.
        assert direction.lat is not None and direction.clat is not None and direction.slat is not None
        assert direction.lat.mean_ns == pytest.approx(
            direction.clat.mean_ns + direction.slat.mean_ns, rel=0.01
        )
        assert direction.lat.min_ns >= direction.clat.min_ns
        assert direction.slat.mean_ns > 0


def test_completion_latency_is_lat_with_lat_percentiles() -> None:
    direction = parsed("lat_percentiles.json").job("latency").directions["read"]
    assert direction.completion_latency is direction.lat


def test_custom_percentile_list() -> None:
    job = parsed("percentile_list.json").job("custom")
    raw = raw_job("percentile_list.json")["read"]["clat_ns"]["percentile"]
    clat = job.directions["read"].clat
    assert clat is not None
    assert job.options["percentile_list"] == "50:90:99.5:99.999"
    assert set(clat.percentiles_ns) == {50.0, 90.0, 99.5, 99.999}
    assert clat.percentile(99.999) == raw["99.999000"]
    assert clat.percentile(50) == raw["50.000000"]
    assert clat.percentile(99.0) is None
    assert clat.percentile(99.9) is None
    assert job.directions["read"].completion_latency is clat


def test_nbd_slat_has_samples_but_no_percentiles() -> None:
    direction = parsed("nbd_connected.txt").job("nbd").directions["write"]
    assert direction.slat is not None
    assert direction.slat.samples == direction.total_ios > 0
    assert direction.slat.percentiles_ns == {}
    assert direction.clat is not None and direction.clat.percentile(99.0) is not None


# --------------------------------------------------------------------------------------------------
# Text around the JSON and job errors


def test_connected_line_before_the_json_is_a_message() -> None:
    result = parsed("nbd_connected.txt")
    assert result.messages == ("fio: connected to NBD server",)
    job = result.job("nbd")
    assert [d.direction for d in job.active_directions] == ["read", "write"]
    assert job.directions["read"].iops == raw_job("nbd_connected.txt")["read"]["iops"] > 0


def test_text_after_the_json_is_kept_in_order() -> None:
    text = fixture("nbd_connected.txt").read_text(encoding="utf-8")
    text += "\nfio: something went wrong afterwards\n\n   \nRun status: done\n"
    result = parse_fio_text(text)
    assert result.messages == (
        "fio: connected to NBD server",
        "fio: something went wrong afterwards",
        "Run status: done",
    )
    assert result.jobs == parsed("nbd_connected.txt").jobs


def test_job_error() -> None:
    result = parsed("job_error.txt")
    job = result.job("bad")
    assert job.error == 1 == raw_job("job_error.txt")["error"]  # EPERM
    assert job.options["filename"] == "/proc/version"
    assert not job.did_io
    assert job.active_directions == []
    assert result.total_iops == 0
    assert len(result.messages) == 1
    assert result.messages[0].startswith("fio: pid=")
    assert "error=Operation not permitted" in result.messages[0]
    assert fixture("job_error.txt").read_text(encoding="utf-8").startswith(result.messages[0] + "\n{")


# --------------------------------------------------------------------------------------------------
# Outputs that are not a complete fio report


def test_truncated_output() -> None:
    path = fixture("truncated.txt")
    with pytest.raises(FioOutputError) as caught:
        parse_fio_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "fio's JSON is truncated" in message
    assert "fio may have been killed or crashed" in message
    assert re.search(r"\(line \d+, column \d+: ", message)


def test_output_left_by_sigkill() -> None:
    # fio writes its JSON at the end: a SIGKILL leaves the output file empty.
    path = fixture("killed_sigkill.txt")
    assert path.stat().st_size == 0
    with pytest.raises(FioOutputError) as caught:
        parse_fio_file(path)
    assert str(caught.value) == f"{path}: no JSON report found in fio's output; it is empty"


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n"])
def test_empty_output(text: str) -> None:
    expected = r"^fio output: no JSON report found in fio's output; it is empty$"
    with pytest.raises(FioOutputError, match=expected):
        parse_fio_text(text)


def test_empty_fixture_names_the_file() -> None:
    path = fixture("empty.txt")
    with pytest.raises(FioOutputError) as caught:
        parse_fio_file(path)
    assert str(caught.value) == f"{path}: no JSON report found in fio's output; it is empty"


def test_rejected_option_shows_fio_complaint() -> None:
    path = fixture("bogus_option.txt")
    with pytest.raises(FioOutputError) as caught:
        parse_fio_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: no JSON report found in fio's output; it ends with: ")
    assert "fio: unrecognized option '--bogus'" in message
    assert "Did you mean bs?" in message


def test_garbage_output() -> None:
    garbage = "Segmentation fault (core dumped)\n" + "x" * 1000 + "\n\x00\x01binary"
    with pytest.raises(FioOutputError) as caught:
        parse_fio_text(garbage, source="run-7/fio.json")
    message = str(caught.value)
    assert message.startswith("run-7/fio.json: no JSON report found in fio's output; it ends with: ")
    assert "Segmentation fault" in message
    # The tail quoted is bounded.
    assert len(message) < 400


def test_garbage_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fio.json"
    path.write_bytes(b"\xff\xfe not fio at all \x80\n")
    with pytest.raises(FioOutputError, match=re.escape(f"{path}: no JSON report found")):
        parse_fio_file(path)


def test_malformed_json_is_not_called_truncated() -> None:
    text = fixture("randrw_json.json").read_text(encoding="utf-8").replace('"iops" :', '"iops" ::', 1)
    with pytest.raises(FioOutputError, match=r"^x\.json: fio's JSON is malformed \(line \d+, column \d+: "):
        parse_fio_text(text, source="x.json")


@pytest.mark.parametrize(
    "document",
    [
        {"hello": "world"},
        {"jobs": []},
        {"fio version": "fio-3.33"},
        {"fio version": "fio-3.33", "jobs": {"randrw": {}}},
    ],
)
def test_json_that_is_not_a_fio_report(tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    with pytest.raises(FioOutputError) as caught:
        parse_fio_file(path)
    assert str(caught.value) == f"{path}: the JSON is not a fio report (no 'fio version' or 'jobs')"


def test_json_array_is_not_a_report() -> None:
    with pytest.raises(FioOutputError, match="no JSON report found"):
        parse_fio_text('[{"fio version": "fio-3.33", "jobs": []}]\n')


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "fio.json"
    with pytest.raises(FioOutputError, match=f"^fio output file '{re.escape(str(path))}' does not exist$"):
        parse_fio_file(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FioOutputError, match=f"^cannot read fio output file '{re.escape(str(tmp_path))}': "):
        parse_fio_file(tmp_path)  # a directory


def _edited(name: str, edit: Any) -> str:
    document = raw_report(name)
    edit(document)
    return json.dumps(document, indent=2)


def test_non_numeric_figure_names_job_direction_and_field() -> None:
    text = _edited("randrw_json.json", lambda d: d["jobs"][0]["write"].update(iops="fast"))
    with pytest.raises(FioOutputError) as caught:
        parse_fio_text(text, source="r.json")
    assert str(caught.value) == "r.json: job 'randrw' write iops is 'fast', not a number"


def test_boolean_is_not_a_number() -> None:
    text = _edited("randrw_json.json", lambda d: d["jobs"][0].update(error=True))
    with pytest.raises(FioOutputError, match=r"^r\.json: job 'randrw' error is True, not a number$"):
        parse_fio_text(text, source="r.json")


def test_non_numeric_percentile() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["jobs"][0]["read"]["clat_ns"]["percentile"]["99.000000"] = "slow"

    with pytest.raises(FioOutputError, match=r"^r\.json: job 'randrw' read clat_ns: percentile or bins"):
        parse_fio_text(_edited("randrw_json.json", edit), source="r.json")


def test_job_that_is_not_an_object() -> None:
    text = _edited("multi_jobs.json", lambda d: d["jobs"].__setitem__(1, "seqwrite"))
    with pytest.raises(FioOutputError, match=r"^m\.json: jobs\[1\] is not an object$"):
        parse_fio_text(text, source="m.json")


def test_cut_anywhere_raises_fio_output_error_only() -> None:
    text = fixture("randrw_jsonplus.json").read_text(encoding="utf-8")
    for cut in range(0, len(text) - 2, 211):
        with pytest.raises(FioOutputError, match=r"^cut: (no JSON report found|fio's JSON is )"):
            parse_fio_text(text[:cut], source="cut")


def test_cut_after_a_value_is_called_truncated() -> None:
    text = fixture("randrw_json.json").read_text(encoding="utf-8")
    cut = text.index('"iops" : ') + len('"iops" : 5')
    with pytest.raises(FioOutputError, match=r"^t: fio's JSON is truncated"):
        parse_fio_text(text[:cut], source="t")


def test_cut_inside_a_string_is_called_truncated() -> None:
    text = fixture("randrw_json.json").read_text(encoding="utf-8")
    cut = text.index('"jobname" : "randrw"') + len('"jobname" : "ran')
    with pytest.raises(FioOutputError, match=r"^t: fio's JSON is truncated"):
        parse_fio_text(text[:cut], source="t")


def test_legacy_timestamp_and_bw_fallbacks() -> None:
    def edit(document: dict[str, Any]) -> None:
        del document["timestamp_ms"]
        del document["jobs"][0]["read"]["bw_bytes"]

    result = parse_fio_text(_edited("randrw_json.json", edit))
    raw = raw_report("randrw_json.json")
    assert result.timestamp_ms == raw["timestamp"] * 1000
    assert result.jobs[0].directions["read"].bw_bytes == raw["jobs"][0]["read"]["bw"] * 1024


def test_missing_direction_is_absent() -> None:
    text = _edited("read_only.json", lambda d: [d["jobs"][0].pop(k) for k in ("write", "trim")])
    job = parse_fio_text(text).jobs[0]
    assert set(job.directions) == {"read"}
    assert [d.direction for d in job.active_directions] == ["read"]


# --------------------------------------------------------------------------------------------------
# Job files

JOB_TEXT = """\
; a test job file
# second comment line

[global]
ioengine=psync
size=8M
readwrite=randrw

[a]
bs=4k
; comment inside a
rw=randread

[b]
blocksize=16k
time_based
"""


@pytest.fixture
def job_path(tmp_path: Path) -> Path:
    path = tmp_path / "two.fio"
    path.write_text(JOB_TEXT, encoding="utf-8")
    return path


def test_load_splits_sections(job_path: Path) -> None:
    job = JobFile.load(job_path)
    assert job.source == job_path
    assert job.preamble == ["; a test job file", "# second comment line", ""]
    assert [s.name for s in job.sections] == ["global", "a", "b"]
    assert job.job_names == ["a", "b"]
    assert job.get("ioengine") == "psync"
    assert job.get("bs", "a") == "4k"
    assert job.get("bs", "b") == "16k"  # blocksize is bs
    assert job.get("rw") == "randread"  # the last one anywhere
    assert job.get("rw", "global") == "randrw"
    assert job.get("time_based", "b") == ""
    assert job.get("time_based", "a") is None
    assert job.get("runtime") is None
    assert job.values("rw") == ["randrw", "randread"]
    assert job.values("bs") == ["4k", "16k"]


def test_render_unchanged_is_the_original(job_path: Path) -> None:
    assert JobFile.load(job_path).render() == JOB_TEXT


def test_global_override_replaces_the_option_everywhere(job_path: Path) -> None:
    job = JobFile.load(job_path)
    job.apply({"bs": "64k"})
    assert job.values("bs") == ["64k"]
    text = job.render()
    assert "bs=4k" not in text
    assert "blocksize=16k" not in text
    assert text.count("bs=64k") == 1
    assert job.sections[0].lines[-1] == "bs=64k"


def test_alias_override_replaces_the_canonical_name(job_path: Path) -> None:
    job = JobFile.load(job_path)
    job.apply({"rw": "write"})
    assert job.values("readwrite") == ["write"]
    assert "readwrite=randrw" not in job.render()
    assert "rw=randread" not in job.render()
    job.apply({"readwrite": "read"})
    assert job.values("rw") == ["read"]
    assert job.get("rw", "global") == "read"
    job.apply({"timeout": "5s"})
    assert job.get("runtime") == "5s"
    job.apply({"RUNTIME": "6s"})
    assert job.values("timeout") == ["6s"]


def test_section_scoped_override(job_path: Path) -> None:
    job = JobFile.load(job_path)
    job.apply({"b.rw": "read"})
    assert job.get("rw", "b") == "read"
    assert job.get("rw", "a") == "randread"
    assert job.get("rw", "global") == "randrw"
    b = next(s for s in job.sections if s.name == "b")
    assert b.lines[0] == "rw=read"
    job.apply({"a.readwrite": "write"})
    assert job.get("rw", "a") == "write"
    assert "rw=randread" not in job.render()
    job.apply({"global.size": "16M"})
    assert job.values("size") == ["16M"]


def test_section_scoped_flag_and_none(job_path: Path) -> None:
    job = JobFile.load(job_path)
    job.apply({"a.time_based": ""})
    assert job.get("time_based", "a") == ""
    assert "time_based" in next(s for s in job.sections if s.name == "a").lines
    job.apply({"b.time_based": None, "a.bs": None})
    assert job.get("time_based", "b") is None
    assert job.get("time_based", "a") == ""
    assert job.get("bs", "a") is None
    assert job.get("bs", "b") == "16k"


def test_none_removes_everywhere(job_path: Path) -> None:
    job = JobFile.load(job_path)
    before = len(job.sections[0].lines)
    job.apply({"bs": None, "rw": None})
    assert job.values("bs") == []
    assert job.values("rw") == []
    assert len(job.sections[0].lines) == before - 1  # readwrite=randrw went, nothing was added
    text = job.render()
    for gone in ("bs=4k", "blocksize=16k", "readwrite=randrw", "rw=randread"):
        assert gone not in text
    assert "ioengine=psync" in text


def test_global_override_without_global_section(tmp_path: Path) -> None:
    path = tmp_path / "single.fio"
    path.write_text("[only]\nrw=read\n", encoding="utf-8")
    job = JobFile.load(path)
    job.apply({"runtime": 3})
    assert [s.name for s in job.sections] == ["global", "only"]
    assert job.render() == (
        "[global]\n; added by nvmechaos for run-wide options\nruntime=3\n[only]\nrw=read\n"
    )
    job.apply({"size": "1M"})
    assert [s.name for s in job.sections] == ["global", "only"]  # added once


def test_unknown_section(job_path: Path) -> None:
    job = JobFile.load(job_path)
    with pytest.raises(JobFileError) as caught:
        job.apply({"c.rw": "read"})
    assert str(caught.value) == f"override 'c.rw': {job_path} has no job 'c' (jobs: a, b)"


@pytest.mark.parametrize("key", ["bad key", "b.", "rw=read", "1bs", "a.b-c", ""])
def test_override_that_is_not_an_option_name(job_path: Path, key: str) -> None:
    job = JobFile.load(job_path)
    with pytest.raises(JobFileError, match=f"^override '{re.escape(key)}' is not a fio option name$"):
        job.apply({key: "1"})


def test_override_with_a_line_break(job_path: Path) -> None:
    job = JobFile.load(job_path)
    with pytest.raises(JobFileError, match=r"^override 'filename' has a line break in its value$"):
        job.apply({"filename": "a\n[evil]"})


@pytest.mark.parametrize("value", [["4k", "8k"], {"bs": "4k"}, ("4k",)])
def test_override_that_is_not_text_or_a_number(job_path: Path, value: object) -> None:
    with pytest.raises(JobFileError, match=r"^override 'bs' has a value of type \w+, not text or a number$"):
        JobFile.load(job_path).apply({"bs": value})
    assert JobFile.load(job_path).apply({"bs": 8192, "size": 1.5, "directory": Path("/x")}) is None


def test_boolean_override_renders_as_fio_accepts(job_path: Path) -> None:
    job = JobFile.load(job_path)
    job.apply({"time_based": True})
    assert "time_based=True" not in job.render()


def test_set_defaults_yields_to_the_file(job_path: Path) -> None:
    job = JobFile.load(job_path)
    job.set_defaults({"blocksize": "1M", "iodepth": 4, "size": "1G", "direct": ""})
    assert job.values("bs") == ["4k", "16k"]
    assert job.values("size") == ["8M"]
    assert job.get("iodepth", "global") == "4"
    assert job.get("direct", "global") == ""
    assert job.sections[0].lines[-2:] == ["iodepth=4", "direct"]


def test_missing_job_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.fio"
    with pytest.raises(JobFileError, match=f"^fio job file '{re.escape(str(path))}' does not exist$"):
        JobFile.load(path)


def test_unreadable_job_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.fio"
    path.write_bytes(b"[job]\nrw=\xff\xfe\n")
    with pytest.raises(JobFileError, match=f"^cannot read fio job file '{re.escape(str(path))}': "):
        JobFile.load(path)


@pytest.mark.parametrize("text", ["", "; nothing\n", "[global]\nrw=read\n"])
def test_job_file_without_a_job(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nojob.fio"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(JobFileError, match=r"defines no job \(no \[name\] section other than \[global\]\)"):
        JobFile.load(path)


def test_find_job_file(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (second / "seq.fio").write_text("[seq]\n", encoding="utf-8")
    (second / "plain").write_text("[plain]\n", encoding="utf-8")
    (first / "plain").write_text("[plain]\n", encoding="utf-8")
    direct = tmp_path / "direct.fio"
    direct.write_text("[direct]\n", encoding="utf-8")

    assert find_job_file(direct, [first]) == direct.resolve()
    assert find_job_file(str(direct), []) == direct.resolve()
    assert find_job_file("seq", [first, second]) == (second / "seq.fio").resolve()
    assert find_job_file("seq.fio", [first, second]) == (second / "seq.fio").resolve()
    assert find_job_file("plain", [first, second]) == (first / "plain").resolve()


def test_find_job_file_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(JobFileError) as caught:
        find_job_file("nothere", [tmp_path])
    assert str(caught.value) == (
        f"fio job file 'nothere' not found (looked for nothere, {tmp_path / 'nothere'}, "
        f"{tmp_path / 'nothere.fio'})"
    )
    absolute = tmp_path / "abs.fio"
    with pytest.raises(JobFileError) as caught:
        find_job_file(absolute, [tmp_path / "elsewhere"])
    assert str(caught.value) == f"fio job file '{absolute}' not found (looked for {absolute})"


# --------------------------------------------------------------------------------------------------
# Runner: durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        ("30s", 30.0),
        ("30S", 30.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("500ms", 0.5),
        ("250us", 0.00025),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("0", 0.0),
    ],
)
def test_fio_seconds(value: str, seconds: float) -> None:
    assert runner.fio_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "10x", "-5", "1 2", "5 sec", "$runtime", ".5s"])
def test_fio_seconds_rejects(value: str) -> None:
    assert runner.fio_seconds(value) is None


def _prepare(tmp_path: Path, text: str, overrides: dict[str, object] | None = None) -> runner.PreparedJob:
    source = tmp_path / "job.src.fio"
    source.write_text(text, encoding="utf-8")
    return runner.prepare_job(source, overrides or {}, tmp_path / "runs" / "one")


@pytest.mark.parametrize(
    ("text", "overrides", "seconds"),
    [
        ("[a]\nruntime=2\n", {}, 2.0),
        ("[a]\nruntime=500ms\nramp_time=1s\n", {}, 1.5),
        ("[global]\nruntime=1\n[a]\n[b]\n[c]\n", {}, 3.0),
        ("[global]\nruntime=1\nramp_time=2\n[a]\n[b]\n", {}, 6.0),
        ("[a]\nrw=read\n", {"runtime": "5s"}, 5.0),
        ("[a]\nruntime=60\n", {"timeout": "2m"}, 120.0),
    ],
)
def test_expected_seconds(tmp_path: Path, text: str, overrides: dict[str, object], seconds: float) -> None:
    assert _prepare(tmp_path, text, overrides).expected_seconds == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "overrides", "stonewalled"),
    [
        ("[a]\nruntime=2\n[b]\nruntime=3\n", {}, 5.0),
        ("[a]\nruntime=60\n[b]\n", {"b.runtime": 30}, 90.0),
        ("[global]\nruntime=1\n[a]\nruntime=4\nramp_time=1\n[b]\n", {}, 6.0),
    ],
)
def test_expected_seconds_bounds_jobs_with_their_own_runtime(
    tmp_path: Path, text: str, overrides: dict[str, object], stonewalled: float
) -> None:
    # Jobs run one after another at worst: the bound is at least the sum of their runtimes.
    expected = _prepare(tmp_path, text, overrides).expected_seconds
    assert expected is not None
    assert expected >= stonewalled


@pytest.mark.parametrize(
    ("text", "overrides"),
    [
        ("[a]\nrw=read\nsize=1M\n", {}),
        ("[a]\nruntime=$budget\n", {}),
        ("[a]\nruntime=10\n", {"runtime": None}),
        # fio reads runtime=0 as no time limit: the job runs until its size is done.
        ("[a]\nruntime=0\nsize=10G\n", {}),
        ("[a]\nruntime=10\n[b]\nruntime=10\n", {"b.runtime": "0s"}),
    ],
)
def test_expected_seconds_unbounded(tmp_path: Path, text: str, overrides: dict[str, object]) -> None:
    assert _prepare(tmp_path, text, overrides).expected_seconds is None


def test_expected_seconds_with_a_job_without_runtime(tmp_path: Path) -> None:
    assert _prepare(tmp_path, "[a]\nruntime=2\n[b]\nsize=10G\n").expected_seconds is None


def test_prepare_job_writes_the_job_as_it_will_run(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, "; mine\n[a]\nrw=read\nbs=4k\n[b]\nrw=write\n", {"b.rw": "randwrite"})
    assert prepared.name == "job.src"
    assert prepared.run_dir == tmp_path / "runs" / "one"
    assert prepared.source == (tmp_path / "job.src.fio").resolve()
    written = (prepared.run_dir / runner.JOB_NAME).read_text(encoding="utf-8")
    assert written == prepared.job_file.render()
    assert written.startswith("; mine\n[global]\n")
    job = prepared.job_file
    assert job.get("rw", "b") == "randwrite"
    assert job.get("log_avg_msec", "global") == "1000"
    for key in ("write_iops_log", "write_bw_log", "write_lat_log"):
        assert job.values(key) == [runner.LOG_PREFIX]
    assert job.values("per_job_logs") == ["1"]
    assert prepared.argv("/usr/bin/fio") == [
        "/usr/bin/fio",
        "--output-format=json+",
        f"--output={runner.JSON_NAME}",
        runner.JOB_NAME,
    ]


def test_prepare_job_keeps_the_users_log_settings(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, "[a]\nlog_avg_msec=250\nwrite_bw_log=mine\n", {})
    assert prepared.job_file.values("log_avg_msec") == ["250"]
    # The runner's log names win: it collects fio_<kind>.<index>.log.
    assert prepared.job_file.values("write_bw_log") == [runner.LOG_PREFIX]
    prepared = runner.prepare_job(prepared.source, {}, tmp_path / "r2", log_avg_msec=100)
    assert prepared.job_file.values("log_avg_msec") == ["250"]


def test_prepare_job_finds_the_job_by_name(tmp_path: Path) -> None:
    jobs = tmp_path / "fio_jobs"
    jobs.mkdir()
    (jobs / "seq.fio").write_text("[seq]\nrw=read\nruntime=4\n", encoding="utf-8")
    prepared = runner.prepare_job("seq", {}, tmp_path / "run", search_dirs=[jobs])
    assert prepared.name == "seq"
    assert prepared.expected_seconds == 4.0
    with pytest.raises(JobFileError, match="fio job file 'nope' not found"):
        runner.prepare_job("nope", {}, tmp_path / "run2", search_dirs=[jobs])
    assert not (tmp_path / "run2").exists()


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_prepared_job_is_accepted_by_fio(tmp_path: Path) -> None:
    prepared = _prepare(
        tmp_path,
        "[a]\nrw=read\nsize=1M\n[b]\nrw=write\nsize=1M\n",
        {"b.bs": "16k", "runtime": "1s", "time_based": ""},
    )
    completed = subprocess.run(
        ["fio", "--parse-only", runner.JOB_NAME],
        cwd=prepared.run_dir,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


# --------------------------------------------------------------------------------------------------
# Reports that cannot be judged, and figures of the wrong type


def test_report_without_jobs_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty_jobs.json"
    path.write_text(json.dumps({"fio version": "fio-3.33", "jobs": []}), encoding="utf-8")
    with pytest.raises(FioOutputError) as caught:
        parse_fio_file(path)
    assert str(caught.value) == f'{path}: fio\'s report has no jobs ("jobs": []); there is nothing to judge'


def _set(path: tuple[str | int, ...], value: Any) -> Any:
    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "path",
    [
        ("timestamp_ms",),
        ("timestamp",),
        ("jobs", 0, "groupid"),
        ("jobs", 0, "error"),
        ("jobs", 0, "job_runtime"),
        ("jobs", 0, "read", "iops"),
        ("jobs", 0, "read", "bw_bytes"),
        ("jobs", 0, "read", "total_ios"),
        ("jobs", 0, "read", "runtime"),
        ("jobs", 0, "write", "clat_ns", "mean"),
        ("jobs", 0, "write", "clat_ns", "N"),
        ("jobs", 0, "write", "clat_ns", "percentile"),
    ],
)
@pytest.mark.parametrize("value", ["fast", None, [], {}, True, 1e400])
def test_a_figure_of_the_wrong_type_never_escapes_as_another_error(
    path: tuple[str | int, ...], value: Any
) -> None:
    document = raw_report("randrw_json.json")
    if path == ("timestamp",):
        del document["timestamp_ms"]
    _set(path, value)(document)
    text = json.dumps(document)
    try:
        parse_fio_text(text, source="odd.json")
    except FioOutputError as error:
        assert str(error).startswith("odd.json: ")
        assert "\n" not in str(error)


def test_a_file_name_that_is_empty_is_refused_naming_the_argument() -> None:
    with pytest.raises(
        ArgumentError, match=r"^path is empty: give the path of a file holding fio's JSON output$"
    ):
        parse_fio_file("")


def test_legacy_bw_that_is_not_a_number() -> None:
    document = raw_report("randrw_json.json")
    del document["jobs"][0]["read"]["bw_bytes"]
    document["jobs"][0]["read"]["bw"] = "fast"
    with pytest.raises(FioOutputError, match=r"^odd\.json: job 'randrw' read bw is 'fast', not a number$"):
        parse_fio_text(json.dumps(document), source="odd.json")


def test_timestamp_that_is_not_a_number() -> None:
    document = raw_report("randrw_json.json")
    document["timestamp_ms"] = "yesterday"
    with pytest.raises(FioOutputError, match=r"^odd\.json: timestamp_ms is 'yesterday', not a number$"):
        parse_fio_text(json.dumps(document), source="odd.json")


def test_collect_result_names_fios_complaint_with_a_report_fio_could_not_fill(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, "[a]\nrw=read\nsize=1M\n")
    (prepared.run_dir / runner.JSON_NAME).write_text(
        json.dumps({"fio version": "fio-3.33", "jobs": []}), encoding="utf-8"
    )
    (prepared.run_dir / runner.STDERR_NAME).write_text("fio: something went wrong\n", encoding="utf-8")
    with pytest.raises(FioOutputError) as caught:
        runner.collect_result(prepared, 1)
    message = str(caught.value)
    assert message.startswith("fio exited with code 1; ")
    assert "has no jobs" in message
    assert message.endswith(": fio: something went wrong")


# --------------------------------------------------------------------------------------------------
# filename= and directory= hold paths separated by ':'


@pytest.mark.parametrize(
    ("value", "paths"),
    [
        ("/dev/nvme0n1", ["/dev/nvme0n1"]),
        ("/mnt/a:/mnt/b", ["/mnt/a", "/mnt/b"]),
        ("a:b:c", ["a", "b", "c"]),
        (" /mnt/a : ", ["/mnt/a "]),
        ("/dev/dsk/foo@3,0\\:c", ["/dev/dsk/foo@3,0:c"]),
        ("::a::b:", ["a", "b"]),
        # Without Windows, a drive letter is a path of its own: fio on Linux splits it too.
        ("C:\\data\\file", ["C", "\\data\\file"]),
        ("C\\:\\data\\file", ["C:\\data\\file"]),
        ("\\\\.\\PhysicalDrive1", ["\\\\.\\PhysicalDrive1"]),
    ],
)
def test_split_fio_paths_on_posix(value: str, paths: list[str]) -> None:
    assert split_fio_paths(value) == paths


@pytest.mark.parametrize(
    ("value", "paths"),
    [
        ("C:\\data\\file", ["C:\\data\\file"]),
        ("c:/data/file", ["c:/data/file"]),
        ("D:", ["D:"]),
        ("C\\:\\data\\file", ["C:\\data\\file"]),
        ("\\\\.\\PhysicalDrive1", ["\\\\.\\PhysicalDrive1"]),
        ("\\\\?\\C:\\data", ["\\\\?\\C:\\data"]),
        ("C:\\a:D:\\b", ["C:\\a", "D:\\b"]),
        ("\\\\.\\PhysicalDrive1:\\\\.\\PhysicalDrive2", ["\\\\.\\PhysicalDrive1", "\\\\.\\PhysicalDrive2"]),
        # Not a drive letter: more than one letter, or no slash after the colon.
        ("ab:\\x", ["ab", "\\x"]),
        ("a:b", ["a", "b"]),
    ],
)
def test_split_fio_paths_on_windows_keeps_drive_letters(value: str, paths: list[str]) -> None:
    assert split_fio_paths(value, windows=True) == paths


def test_join_fio_paths_escapes_colons_and_splits_back() -> None:
    paths = ["C:\\data\\file", "/dev/dsk/foo@3,0:c", "plain"]
    joined = join_fio_paths(paths)
    assert joined == "C\\:\\data\\file:/dev/dsk/foo@3,0\\:c:plain"
    assert split_fio_paths(joined) == paths
    assert split_fio_paths(joined, windows=True) == paths


def test_prepare_job_on_windows_escapes_drive_letters_for_fio(tmp_path: Path) -> None:
    source = tmp_path / "w.fio"
    source.write_text("[a]\nfilename=\\\\.\\PhysicalDrive1\n[b]\nrw=read\n", encoding="utf-8")
    overrides = {"b.directory": "C:\\data", "b.filename": "D:\\f1:E\\:\\f2"}
    prepared = runner.prepare_job(source, overrides, tmp_path / "run", windows=True)
    job = prepared.job_file
    assert job.get("filename", "a") == "\\\\.\\PhysicalDrive1"
    assert job.get("directory", "b") == "C\\:\\data"
    assert job.get("filename", "b") == "D\\:\\f1:E\\:\\f2"
    # On POSIX the job file keeps what was given.
    posix = runner.prepare_job(source, overrides, tmp_path / "run2", windows=False)
    assert posix.job_file.get("directory", "b") == "C:\\data"


def test_local_target_check_splits_like_fio(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    prepared = _prepare(tmp_path, "[a]\nrw=write\nsize=1M\n", {"directory": f"{first}:{second}"})
    runner.check_local_target(prepared, windows=False)
    missing = _prepare(tmp_path, "[a]\nrw=write\nsize=1M\n", {"directory": f"{first}:{tmp_path}/gone"})
    with pytest.raises(TargetError, match=r"^target directory '.*/gone' \(option directory, \[global\]\)"):
        runner.check_local_target(missing, windows=False)
    # A Windows drive path is one path: 'C:\data' is checked whole (it does not exist here).
    windows = _prepare(tmp_path, "[a]\nrw=write\nsize=1M\n", {"directory": "C:\\data"})
    with pytest.raises(TargetError, match=r"^target directory 'C:\\data' \(option directory"):
        runner.check_local_target(windows, windows=True)
    with pytest.raises(TargetError, match=r"^target directory 'C' \(option directory"):
        runner.check_local_target(windows, windows=False)
