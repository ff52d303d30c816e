"""Pure logic of the datacenter faults: dual-port devices and their QEMU options, outage figures and
verdicts, reopening workloads' segments, stalls in the control file, io_timeout, fio's error count."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from nvmechaos.analysis.outage import FaultOutage, longest_gap, run_errors
from nvmechaos.faults.control import FaultParamError, StallParams
from nvmechaos.faults.controlfile import ControlState
from nvmechaos.fio.model import FioArtifacts, FioResult, JobResult
from nvmechaos.fio.parser import parse_fio_text
from nvmechaos.fio.runner import prepare_job
from nvmechaos.targets.guest import guest_command, read_segments, reopen_device
from nvmechaos.units import ArgumentError
from nvmechaos.verdicts.impact import outage_violations
from nvmechaos.vm.devices import parse_live_paths, plan_namespaces
from nvmechaos.vm.errors import VmSpecError
from nvmechaos.vm.faults import guest_pci_address
from nvmechaos.vm.spec import (
    ControllerSpec,
    GuestSpec,
    NamespaceSpec,
    SimpleLayout,
    VmSpec,
    controllers_from,
    parse_paths,
)

JOBS = Path(__file__).resolve().parents[2] / "fio_jobs"


# ----- dual-port drives --------------------------------------------------------------------------


def dual_port(tmp_path: Path) -> list[list[str]]:
    spec = VmSpec(
        controllers=controllers_from([{"serial": "DUAL1", "paths": 2, "namespaces": ["64M"]}, ["64M"]])
    )
    controllers, _ = plan_namespaces(spec, tmp_path)
    return [c.argv() for c in controllers]


def test_a_dual_port_drive_is_a_subsystem_with_a_controller_per_path(tmp_path: Path) -> None:
    spec = VmSpec(
        controllers=controllers_from([{"serial": "DUAL1", "paths": 2, "namespaces": ["64M"]}, ["64M"]])
    )
    controllers, _ = plan_namespaces(spec, tmp_path)
    assert [(c.id, c.bus, c.subsystem) for c in controllers] == [
        ("nvme0", "rp0", "subsys0"),
        ("nvme0p1", "rp16", "subsys0"),
        ("nvme1", "rp1", None),
    ]
    assert controllers[0].serial == controllers[1].serial == "DUAL1"
    first, second, plain = (" ".join(argv) for argv in dual_port(tmp_path))
    assert "nvme-subsys,id=subsys0" in first and "nvme-subsys" not in second
    assert (
        "subsys=subsys0" in first and "subsys=subsys0" in second and "drive=" not in first.split("nvme,")[-1]
    )
    # The shared namespace comes once every path exists, on the first path's bus.
    assert "nvme-ns" not in first
    assert "driver=nvme-ns,id=nvme0-ns1,bus=nvme0,drive=nvme0n1,nsid=1,shared=on" in second
    assert "subsys" not in plain and "drive=nvme1n1" in plain


def test_a_path_plugs_back_without_its_namespaces(tmp_path: Path) -> None:
    spec = VmSpec(controllers=(ControllerSpec(paths=2, namespaces=(NamespaceSpec(size=1 << 26),) * 2),))
    controllers, _ = plan_namespaces(spec, tmp_path)
    assert controllers[1].device_add_arguments() == {
        "driver": "nvme",
        "id": "nvme0p1",
        "bus": "rp16",
        "serial": "NVMECHAOS0000",
        "subsys": "subsys0",
    }
    assert (
        "nvme0" in controllers[0].live_paths_probe() or "NVMECHAOS0000" in controllers[0].live_paths_probe()
    )


@pytest.mark.parametrize("value", [0, 5, "two", True, "-1"])
def test_bad_paths_are_refused_in_one_line(value: object) -> None:
    with pytest.raises(VmSpecError, match=r"paths .* must be"):
        parse_paths(value)
    with pytest.raises(VmSpecError, match="controller 0: paths"):
        controllers_from([{"paths": value, "namespaces": ["64M"]}])


def test_paths_beside_a_layout_is_refused() -> None:
    assert SimpleLayout(paths=2).given() == ["paths="]
    assert SimpleLayout(size="64M", paths=2).controller_specs()[0].paths == 2


def test_live_paths_are_read_from_the_probe() -> None:
    assert parse_live_paths("junk\npaths 2\n") == 2
    assert parse_live_paths("nothing") is None


def test_io_timeout_is_a_kernel_option_of_a_kernel_boot() -> None:
    GuestSpec(io_timeout=5).check()
    with pytest.raises(VmSpecError, match="io_timeout 0 s is not 1 to 3600 s"):
        GuestSpec(io_timeout=0).check()
    with pytest.raises(VmSpecError, match="kernel option"):
        GuestSpec(disk_image=Path(__file__), ssh_key=Path(__file__), io_timeout=5).check()


# ----- outages -----------------------------------------------------------------------------------


def test_the_longest_gap_overlapping_a_fault_and_when_io_resumed() -> None:
    stamps = np.array([100.0, 200.0, 300.0, 2300.0, 2310.0, 2320.0])
    assert longest_gap(stamps, 5000.0, 0.25, 0.5) == (300.0, 2300.0, 2300.0)
    # A gap before the fault does not count; the tail after the last completion never resumed.
    assert longest_gap(stamps, 5000.0, 2.4, 3.0) == (2320.0, 5000.0, None)


def outage(**changes: object) -> FaultOutage:
    values: dict[str, object] = {
        "label": "unplug nvme0",
        "start_s": 2.0,
        "end_s": 3.0,
        "gap_ms": 1200.0,
        "gap_from_s": 2.1,
        "gap_to_s": 3.3,
        "resumed_s": 1.3,
        "io_errors": 1,
        "restarts": 1,
    }
    values.update(changes)
    return FaultOutage(**values)  # type: ignore[arg-type]


def test_outage_verdict_names_fault_metric_value_and_limit() -> None:
    lines = outage_violations([outage()], {"max_gap_ms": 1000, "max_io_errors": 0, "max_restarts": 1})
    assert lines == [
        "fault 'unplug nvme0' at 2.0-3.0 s: max_gap_ms is 1200 ms, above the limit 1000 ms",
        "fault 'unplug nvme0' at 2.0-3.0 s: max_io_errors is 1 errors, above the limit 0 errors",
    ]
    never = outage_violations([outage(resumed_s=None, gap_to_s=10.0)], {"max_resume_s": 5})
    assert never == [
        "fault 'unplug nvme0' at 2.0-3.0 s: I/O never resumed after it (no completion from 2.1 s to the "
        "end of the run at 10.0 s; limit max_resume_s 5 s)"
    ]
    assert outage_violations([outage()], {"max_resume_s": 2}) == []
    assert outage_violations([outage(resumed_s=None, gap_ms=7000.0)], {"max_gap_ms": 1000}) == [
        "fault 'unplug nvme0' at 2.0-3.0 s: max_gap_ms is 7000 ms (I/O never resumed), "
        "above the limit 1000 ms"
    ]


def test_outage_verdict_refuses_no_or_unknown_limits() -> None:
    with pytest.raises(Exception, match="no outage limit given"):
        outage_violations([outage()], {})
    with pytest.raises(Exception, match="unknown outage metric"):
        outage_violations([outage()], {"max_gap": 1})


def result_in(directory: Path, *jobs: JobResult) -> FioResult:
    return FioResult("fio-3.33", tuple(jobs), artifacts=FioArtifacts(directory=directory))


def test_errors_of_a_run_and_of_a_reopening_run(tmp_path: Path) -> None:
    failed = JobResult("w", 0, 5, {}, error_count=0)
    counted = JobResult("w", 0, 5, {}, error_count=7)
    assert run_errors(result_in(tmp_path, failed, counted)) == (8, 0)
    segments = "0 1 1796066600 0\n1 1 1796066601 0\n2 128 1796066610 1\n"
    (tmp_path / "fio-segments.txt").write_text(segments, encoding="utf-8")
    (tmp_path / "fio.json.0").write_text(
        json.dumps({"jobs": [{"jobname": "w", "error": 5}]}), encoding="utf-8"
    )
    # Segment 1 failed with no JSON (its device gone again); segment 2 was ended when time was up.
    found = read_segments(tmp_path)
    assert [(s.index, s.exit_code, s.time_up, s.io_errors) for s in found] == [
        (0, 1, False, 1),
        (1, 1, False, 1),
        (2, 128, True, 0),
    ]
    assert run_errors(result_in(tmp_path)) == (2, 2)


def test_fio_total_err_is_read() -> None:
    text = json.dumps({"fio version": "fio-3.33", "jobs": [{"jobname": "w", "error": 5, "total_err": 12}]})
    job = parse_fio_text(text).jobs[0]
    assert (job.error, job.error_count, job.io_errors) == (5, 12, 12)


# ----- reopening workloads, stalls ---------------------------------------------------------------


def test_a_reopening_run_needs_one_device_and_a_runtime(tmp_path: Path) -> None:
    job = prepare_job(
        JOBS / "faults" / "fault_workload.fio", {"filename": "/dev/nvme1n1", "runtime": "9"}, tmp_path / "a"
    )
    assert reopen_device(job) == "/dev/nvme1n1"
    assert guest_command(job, "/tmp/x", 130, reopen=True) == (
        "cd /tmp/x && timeout 130 sh fio-reopen.sh 9 /dev/nvme1n1 fio --output-format=json+"
    )
    files = prepare_job(JOBS / "faults" / "fault_workload.fio", {"filename": "/tmp/a:/tmp/b"}, tmp_path / "b")
    with pytest.raises(ArgumentError, match="reopen needs a job on one device"):
        reopen_device(files)


def test_a_stall_holds_every_request_until_it_ends() -> None:
    state = ControlState(delays={"read": 0.01}, stall_until=time.monotonic() + 5)
    delay, error = state.decide("write")
    assert 4.5 < delay <= 5 and error == 0
    assert ControlState.from_mapping(json.loads(state.to_json())).stall_until == state.stall_until
    assert ControlState(delays={"read": 0.01}, stall_until=time.monotonic() - 1).decide("read") == (0.01, 0)


def test_a_stall_needs_a_length_with_its_unit() -> None:
    assert StallParams.parse("8s").seconds == 8.0
    with pytest.raises(FaultParamError):
        StallParams.parse("8")
    with pytest.raises(FaultParamError):
        StallParams(0.0)


def test_the_guest_pci_address_of_a_controller_comes_from_query_pci() -> None:
    class Pci:
        name = "vm"
        controllers = ()

        def execute(self, command: str) -> object:
            assert command == "query-pci"
            nvme = {"bus": 3, "slot": 0, "function": 0, "qdev_id": "nvme0"}
            port = {"bus": 0, "slot": 3, "function": 0, "qdev_id": "rp0", "pci_bridge": {"devices": [nvme]}}
            return [{"bus": 0, "devices": [{"bus": 0, "slot": 2, "function": 0, "qdev_id": "tools"}, port]}]

    assert guest_pci_address(Pci(), "nvme0") == "0000:03:00.0"  # type: ignore[arg-type]
    assert guest_pci_address(Pci(), "nvme9") is None  # type: ignore[arg-type]
