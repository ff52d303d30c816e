"""The VM engine's pure parts: QEMU command line, namespace sizing, console tails, versions, keys,
run states."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from nvmechaos.units import ArgumentError
from nvmechaos.vm import qemu as qemu_module
from nvmechaos.vm import ssh as ssh_module
from nvmechaos.vm.devices import NewImage, create_namespaces, plan_namespaces
from nvmechaos.vm.errors import (
    HostKeyMismatchError,
    LoginRefusedError,
    QemuError,
    SshError,
    VmError,
    VmSpecError,
)
from nvmechaos.vm.machine import RunState, Vm, _tail, as_vm, free_port
from nvmechaos.vm.qemu import Qemu, image_format, parse_version, virtual_size
from nvmechaos.vm.spec import ControllerSpec, GuestSpec, NamespaceSpec, VmSpec, controllers_from
from nvmechaos.vm.ssh import GuestSsh, fingerprint, generate_key, load_key


def make_vm(tmp_path: Path, spec: VmSpec) -> Vm:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"k")
    spec = VmSpec(
        name=spec.name, controllers=spec.controllers, guest=GuestSpec(kernel=kernel, append="quiet")
    )
    key = generate_key(tmp_path / "id")
    return Vm(
        spec=spec,
        qemu=Qemu("/usr/bin/qemu-system-x86_64", (10, 0, 2)),
        run_dir=tmp_path,
        output_dir=tmp_path,
        key=key,
        image=None,
        controllers=create_namespaces(spec, tmp_path),
        ssh_port=2222,
    )


def test_argv_has_private_sockets_loopback_forward_and_root_ports(tmp_path: Path) -> None:
    spec = VmSpec(
        name="t", controllers=controllers_from([["64M", "32M"], {"serial": "S2", "namespaces": ["16M"]}])
    )
    argv = make_vm(tmp_path, spec).argv()
    line = " ".join(argv)
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in line
    assert f"socket,id=qmp0,path={tmp_path}/qmp.sock,server=on,wait=off" in line
    assert "pcie-root-port,id=rp0,chassis=1,slot=1" in line
    assert "pcie-root-port,id=rp1,chassis=2,slot=2" in line
    # Two namespaces: nvme-ns devices; one namespace: drive= on the controller (simplest hot-plug).
    assert "driver=nvme,id=nvme0,bus=rp0,serial=NVMECHAOS0000" in line
    assert "driver=nvme-ns,id=nvme0-ns2,bus=nvme0,drive=nvme0n2,nsid=2" in line
    assert "driver=nvme,id=nvme1,bus=rp1,serial=S2,drive=nvme1n1" in line
    assert f"driver=raw,node-name=nvme0n1,file=nvme0n1-file,size={64 << 20}" in line
    append = argv[argv.index("-append") + 1]
    assert append.startswith("quiet nvmechaos.authkey=ssh-ed25519:")
    assert " " not in append.split("nvmechaos.authkey=")[1]
    assert (tmp_path / "nvme0n2.raw").stat().st_size == 32 << 20


def test_device_add_arguments_round_trip(tmp_path: Path) -> None:
    vm = make_vm(tmp_path, VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=1 << 20),)),)))
    assert vm.controllers[0].device_add_arguments() == {
        "driver": "nvme",
        "id": "nvme0",
        "bus": "rp0",
        "serial": "NVMECHAOS0000",
        "drive": "nvme0n1",
    }
    assert vm.controllers[0].namespace_add_arguments() == []


def test_existing_backing_sizes(tmp_path: Path) -> None:
    backing = tmp_path / "disk.raw"
    backing.write_bytes(b"\0" * (1 << 20))
    spec = VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(backing=backing),)),))
    assert create_namespaces(spec, tmp_path)[0].namespaces[0].size == 1 << 20
    half = VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=1 << 19, backing=backing),)),))
    assert create_namespaces(half, tmp_path)[0].namespaces[0].size == 1 << 19
    big = VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=1 << 21, backing=backing),)),))
    with pytest.raises(VmSpecError, match=r"namespace 1 of nvme0: size 2 MiB does not fit in backing file"):
        create_namespaces(big, tmp_path)
    missing = VmSpec(
        controllers=(ControllerSpec(namespaces=(NamespaceSpec(backing=tmp_path / "no.raw", create=True),)),)
    )
    with pytest.raises(VmSpecError, match="does not exist and no size was given"):
        create_namespaces(missing, tmp_path)
    huge = VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=1 << 60),)),))
    with pytest.raises(VmSpecError, match=r"does not fit: only .* bytes free"):
        create_namespaces(huge, tmp_path)


def test_duplicate_serials(tmp_path: Path) -> None:
    spec = VmSpec(controllers=(ControllerSpec(serial="X"), ControllerSpec(serial="X")))
    with pytest.raises(VmSpecError, match="serials must differ"):
        create_namespaces(spec, tmp_path)


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")
def test_qcow2_detection_and_size(tmp_path: Path) -> None:
    image = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "100M"], check=True)
    assert image_format(image) == "qcow2"
    assert virtual_size(image, "qcow2") == 100 << 20
    spec = VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=50 << 20, backing=image),)),))
    with pytest.raises(VmSpecError, match="differs from qcow2 image"):
        create_namespaces(spec, tmp_path)


def test_tail_keeps_the_panic_line(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    lines = (
        ["boot"]
        + ["[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs"]
        + [f"trace {i}" for i in range(20)]
    )
    console.write_text("\n".join(lines))
    tail = _tail(console, lines=3)
    assert tail.startswith("[ 1.0] Kernel panic - not syncing")
    assert tail.endswith("trace 17 | trace 18 | trace 19")
    assert _tail(tmp_path / "missing") == ""


def test_parse_version() -> None:
    assert parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)") == (10, 0, 2)
    assert parse_version("QEMU emulator version 8.2") == (8, 2, 0)
    with pytest.raises(QemuError, match="cannot read QEMU's version"):
        parse_version("nothing here")


def test_keys_and_fingerprint(tmp_path: Path) -> None:
    pair = generate_key(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert pair.public.startswith("ssh-ed25519 ")
    assert load_key(tmp_path / "k").public == pair.public
    if shutil.which("ssh-keygen"):
        out = subprocess.run(
            ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True
        ).stdout
        assert fingerprint(pair.public) in out


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535


def test_accelerator_choice_and_probe_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NVMECHAOS_CACHE", str(tmp_path))
    monkeypatch.delenv("NVMECHAOS_ACCEL", raising=False)
    fake = Qemu("/nonexistent/qemu", (10, 0, 2))
    assert qemu_module.choose_accelerator(fake, "tcg", None) == ("tcg", "accel=tcg asked for")
    assert qemu_module.choose_accelerator(fake, "kvm", None) == ("kvm", "accel=kvm asked for")
    monkeypatch.setenv("NVMECHAOS_ACCEL", "tcg")
    assert qemu_module.choose_accelerator(fake, "auto", None) == ("tcg", "NVMECHAOS_ACCEL=tcg")
    # An explicit accel= wins over the environment.
    assert qemu_module.choose_accelerator(fake, "kvm", None) == ("kvm", "accel=kvm asked for")
    monkeypatch.setenv("NVMECHAOS_ACCEL", "fast")
    with pytest.raises(VmSpecError, match=r"^NVMECHAOS_ACCEL='fast' is not auto, kvm or tcg$"):
        qemu_module.choose_accelerator(fake, "auto", None)
    with pytest.raises(VmSpecError, match=r"^accelerator 'quick' is not auto, kvm or tcg$"):
        qemu_module.wanted_accelerator("quick")
    monkeypatch.delenv("NVMECHAOS_ACCEL")
    key = qemu_module._probe_key(fake)
    assert qemu_module._read_probe_cache(key) is None
    qemu_module._write_probe_cache(key, "tcg", "TCG: probe said so")
    assert qemu_module._read_probe_cache(key) == ("tcg", "probe said so")
    assert qemu_module._read_probe_cache(key + "other") is None
    assert (tmp_path / "accel-probe.json").is_file()


def test_argv_for_a_user_disk_image(tmp_path: Path) -> None:
    image = tmp_path / "cloud.qcow2"
    image.write_bytes(b"QFI\xfb" + b"\0" * 60)
    key = generate_key(tmp_path / "id")
    spec = VmSpec(name="cloud", guest=GuestSpec(disk_image=image, ssh_user="debian", ssh_key=key.private))
    spec.guest.check()
    vm = Vm(
        spec=spec,
        qemu=Qemu("/usr/bin/qemu-system-x86_64", (10, 0, 2)),
        run_dir=tmp_path,
        output_dir=tmp_path,
        key=key,
        image=None,
        controllers=create_namespaces(spec, tmp_path),
        ssh_port=2200,
    )
    argv = vm.argv()
    assert f"file={image},if=virtio,snapshot=on,format=qcow2" in argv
    assert "-kernel" not in argv and "-append" not in argv and "-bios" not in argv
    assert vm.ssh_user == "debian"


def one_namespace(**options: object) -> VmSpec:
    return VmSpec(controllers=(ControllerSpec(namespaces=(NamespaceSpec(**options),)),))  # type: ignore[arg-type]


def test_missing_backing_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    backing = tmp_path / "nonexistent" / "backing.raw"
    with pytest.raises(
        VmSpecError,
        match=r"^namespace 1 of nvme0: backing file '.*/nonexistent/backing\.raw' does not exist \(give an "
        r"existing raw or qcow2 file, or create_backing=True to create it\)$",
    ):
        plan_namespaces(one_namespace(backing=backing, size=1 << 20), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_create_backing_is_planned_then_created_in_an_existing_folder(tmp_path: Path) -> None:
    backing = tmp_path / "keep.raw"
    _, images = plan_namespaces(one_namespace(backing=backing, size=1 << 20, create=True), tmp_path)
    assert images == [NewImage(backing, "raw", 1 << 20, kept=True)]
    assert not backing.exists()  # planning creates nothing
    create_namespaces(one_namespace(backing=backing, size=1 << 20, create=True), tmp_path)
    assert backing.stat().st_size == 1 << 20
    # Once it exists, it is an existing backing file like any other.
    assert plan_namespaces(one_namespace(backing=backing, create=True), tmp_path)[1] == []
    nowhere = tmp_path / "no" / "such" / "folder.raw"
    with pytest.raises(
        VmSpecError, match=r"cannot create backing file '.*folder\.raw': folder '.*such' does not exist"
    ):
        plan_namespaces(one_namespace(backing=nowhere, size=1 << 20, create=True), tmp_path)
    assert not (tmp_path / "no").exists()
    with pytest.raises(VmSpecError, match="create asks for a backing file"):
        NamespaceSpec(size=1 << 20, create=True)


def test_run_folder_images_are_checked_before_the_folder_exists(tmp_path: Path) -> None:
    run_dir = tmp_path / "not-yet"
    _, images = plan_namespaces(one_namespace(size=1 << 20), run_dir)
    assert images == [NewImage(run_dir / "nvme0n1.raw", "raw", 1 << 20, kept=False)]
    with pytest.raises(VmSpecError, match=r"does not fit: only .* bytes free in '.*'"):
        plan_namespaces(one_namespace(size=1 << 60), run_dir)
    # Two namespaces that each fit but not together.
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    half = (free // 2 + (1 << 30)) // 512 * 512
    both = VmSpec(
        controllers=(ControllerSpec(namespaces=(NamespaceSpec(size=half), NamespaceSpec(size=half))),)
    )
    with pytest.raises(VmSpecError, match="does not fit"):
        plan_namespaces(both, run_dir)
    assert not run_dir.exists()


def test_unreadable_or_directory_backing(tmp_path: Path) -> None:
    with pytest.raises(VmSpecError, match=r"backing '.*' is not a file"):
        plan_namespaces(one_namespace(backing=tmp_path), tmp_path)


def test_kvm_probe_says_why_kvm_was_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"k")
    silent = tmp_path / "qemu-silent"
    silent.write_text("#!/bin/sh\nexec sleep 30\n")
    silent.chmod(0o755)
    real_exists, real_access = os.path.exists, os.access
    monkeypatch.setattr(qemu_module.os.path, "exists", lambda p: p != "/dev/kvm" and real_exists(p))
    assert qemu_module.probe_kvm(Qemu(str(silent), (10, 0, 2)), kernel) == ("tcg", "/dev/kvm missing")
    monkeypatch.setattr(qemu_module.os.path, "exists", lambda p: p == "/dev/kvm" or real_exists(p))
    monkeypatch.setattr(qemu_module.os, "access", lambda p, m: p == "/dev/kvm" or real_access(p, m))
    accel, reason = qemu_module.probe_kvm(Qemu(str(silent), (10, 0, 2)), kernel, seconds=0.3)
    assert (accel, reason) == (
        "tcg",
        "KVM probe timed out after 0.3 s (the guest printed nothing: KVM hangs here)",
    )
    monkeypatch.setattr(qemu_module.os, "access", lambda p, m: p != "/dev/kvm" and real_access(p, m))
    assert qemu_module.probe_kvm(Qemu(str(silent), (10, 0, 2)), kernel)[1] == (
        "/dev/kvm not accessible to this user (add it to group kvm)"
    )


def test_run_state_follows_the_life_cycle(tmp_path: Path) -> None:
    vm = make_vm(tmp_path, VmSpec(name="states"))
    assert vm.state is RunState.NEW and not vm.is_running()
    refusing = tmp_path / "qemu-refuses"
    refusing.write_text("#!/bin/sh\necho 'qemu-system-x86_64: -foo: invalid option' >&2\nexit 1\n")
    refusing.chmod(0o755)
    vm.qemu = Qemu(str(refusing), (10, 0, 2))
    with pytest.raises(QemuError, match=r"^QEMU of VM 'states' ended at start-up: .*-foo: invalid option$"):
        vm.start()
    assert vm.state is RunState.STOPPED
    with pytest.raises(VmError, match=r"^VM 'states' has no QMP session \(not running\)$"):
        vm.execute("query-status")
    vm.close(remove_run_dir=False)
    assert vm.state is RunState.CLOSED
    with pytest.raises(VmError, match=r"^VM 'states' is closed"):
        vm.restart()
    vm.close(remove_run_dir=False)  # closing twice is fine


def test_timeouts_and_counts_are_checked_by_the_engine(tmp_path: Path) -> None:
    vm = make_vm(tmp_path, VmSpec(name="checks"))
    with pytest.raises(ArgumentError, match=r"^timeout '0' is not positive$"):
        vm.wait_until_ready(0)
    with pytest.raises(ArgumentError, match=r"^timeout '-1' is not positive$"):
        vm.wait_for_event("SHUTDOWN", timeout=-1)
    with pytest.raises(ArgumentError, match=r"^lines '0' is not 1 or more$"):
        vm.console_tail(0)
    with pytest.raises(
        ArgumentError, match=r"^'vm-1' is not a VM \(use the handle `Launch NVMe VM` returned\)$"
    ):
        as_vm("vm-1")
    assert as_vm(vm) is vm


def test_host_keys_another_client_saw_are_checked_against_the_pin(tmp_path: Path) -> None:
    vm = make_vm(tmp_path, VmSpec(name="keys"))
    seen = generate_key(tmp_path / "seen").public
    with pytest.raises(VmError, match=r"^VM 'keys' has no pinned host key yet"):
        vm.check_host_key(seen)
    vm.host_key = seen + " comment"
    vm.check_host_key(seen)
    with pytest.raises(
        HostKeyMismatchError, match=r"^SSH host key SHA256:.* is not the key pinned for VM 'keys'"
    ):
        vm.check_host_key(generate_key(tmp_path / "other").public)


def test_login_refusals_are_told_apart_by_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused login or a wrong host key ends the wait at once; other SSH failures are retried."""
    monkeypatch.setattr(ssh_module, "sshd_banner", lambda host, port, timeout: True)
    attempts: list[int] = []

    def refuse(self: GuestSsh, timeout: float = 5.0) -> None:
        attempts.append(1)
        raise LoginRefusedError("SSH login as nobody to 127.0.0.1:1 refused: Authentication failed.")

    monkeypatch.setattr(GuestSsh, "connect", refuse)
    deadline = time.monotonic() + 30
    with pytest.raises(LoginRefusedError):
        ssh_module.wait_for_login("127.0.0.1", 1, "nobody", tmp_path / "k", None, deadline=deadline)
    assert len(attempts) == 1 and time.monotonic() < deadline - 25

    def reset(self: GuestSsh, timeout: float = 5.0) -> None:
        attempts.append(1)
        raise SshError("SSH to 127.0.0.1:1 failed: Connection reset by peer")

    monkeypatch.setattr(GuestSsh, "connect", reset)
    with pytest.raises(SshError, match="Connection reset"):
        ssh_module.wait_for_login(
            "127.0.0.1", 1, "root", tmp_path / "k", None, deadline=time.monotonic() + 0.5
        )
    assert len(attempts) > 2
