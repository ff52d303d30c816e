"""Keywords that run a prepared fio job in a VM's guest (``resources/vm.resource`` composes them with
FioLibrary's `Prepare Fio Job` and `Collect Fio Result` into `Run Fio Job On VM`)."""

from __future__ import annotations

from datetime import timedelta

from robot.api import logger
from robot.api.deco import keyword

from nvmechaos.fio.runner import PreparedJob
from nvmechaos.targets.guest import GUEST_MARGIN_SECONDS, REMOTE_BASE, GuestFioRun, start_guest_fio
from nvmechaos.units import converted_flag, require
from nvmechaos.vm import Vm, as_vm
from nvmechaos_robot import OWNER
from VmLibrary.context import VmContext
from VmLibrary.faults import log_clock

_PREPARED = "a prepared fio job (use what Prepare Fio Job returned)"
_RUN = "a fio job in a guest (use the handle Start Prepared Fio Job On VM returned)"


class GuestFioKeywords:
    """Start a prepared fio job in a guest, and wait for it."""

    def __init__(self, context: VmContext) -> None:
        self.ctx = context

    @keyword("Start Prepared Fio Job On VM")
    def start_prepared_fio_job_on_vm(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        vm: Vm,
        prepared: PreparedJob,
        margin: timedelta = timedelta(seconds=GUEST_MARGIN_SECONDS),
        remote_base: str = REMOTE_BASE,
        host_clock: bool = False,
        reopen: bool = False,
    ) -> GuestFioRun:
        """Copy the job `Prepare Fio Job` wrote into a fresh folder under ``remote_base`` in the guest
        of ``vm``, start it there in the background over the VM's own SSH connection, and return a
        handle for `Wait For Prepared Fio Job On VM`.

        The guest's ``timeout`` ends a fio that runs ``margin`` (a Robot time) longer than the job
        plans to (exit code 124, or 143). The command is written to ``command.txt`` in the run
        folder. With ``host_clock=True`` the guest's clock is compared with the host's now and when
        the job ends, so that `Wait For Prepared Fio Job On VM` can put fio's logs (run it with
        ``log_unix_epoch=1``) on the clock the fault timeline uses, as `Align Fio Logs To Host
        Clock` does. A job still running when its test ends is stopped.

        ``reopen=True`` runs the job as an application that survives its device going away: when
        fio ends on an error (the namespace was unplugged or reset), the guest waits until the
        device (the job's ``filename``) reads again, every 20 ms, and starts fio anew on it for the
        rest of the job's runtime. The logs of all these segments are joined into one run, so the
        chart shows the I/O before, the gap and after; ``fio.json`` is the last segment's (the
        workload after it came back), and `Fault Outage Should Be Within` counts the errors and
        restarts of all of them (``fio-segments.txt``).

        Example:
        | ${prepared} =    Prepare Fio Job    mixed_randrw    filename=/dev/nvme0n1    runtime=5
        | ${fio} =    Start Prepared Fio Job On VM    ${vm}    ${prepared}
        | ${again} =    Start Prepared Fio Job On VM    ${vm}    ${prepared}    reopen=True
        | ${rc} =    Wait For Prepared Fio Job On VM    ${fio}
        | ${result} =    Collect Fio Result    ${prepared}    ${rc}
        """
        target = as_vm(vm)
        job = require(prepared, PreparedJob, "prepared", _PREPARED)
        run = start_guest_fio(
            target,
            job,
            margin=margin.total_seconds(),
            remote_base=remote_base,
            host_clock=converted_flag(host_clock, "host_clock"),
            reopen=converted_flag(reopen, "reopen"),
        )
        self.ctx.own(run, f"fio job '{job.name}' in VM '{target.name}'", run.stop, run.is_running)
        logger.info(f"fio job '{job.name}' started in VM '{target.name}': {run.command}")
        return run

    @keyword("Wait For Prepared Fio Job On VM")
    def wait_for_prepared_fio_job_on_vm(self, handle: GuestFioRun, timeout: timedelta | None = None) -> int:
        """Wait for a job started by `Start Prepared Fio Job On VM`, copy its output (``fio.json``,
        stdout, stderr, interval logs) back into its run folder, remove its folder in the guest, and
        return fio's exit code for `Collect Fio Result`.

        ``timeout`` (a Robot time) guards the wait: a job still running then is stopped (it writes
        what it has) and the keyword fails. Without it, the guest's own limit (the job's planned
        time plus the margin) ends a hung fio.

        Example:
        | ${rc} =    Wait For Prepared Fio Job On VM    ${fio}    timeout=2 min
        """
        run = require(handle, GuestFioRun, "handle", _RUN)
        try:
            code = run.wait(timeout.total_seconds() if timeout is not None else None)
        finally:
            OWNER.forget(run)  # waited for: it has ended, one way or the other
        if run.clock is not None:
            log_clock(run.clock)
        logger.info(f"fio job '{run.name}' in VM '{run.vm.name}' exited with code {code}")
        return code
