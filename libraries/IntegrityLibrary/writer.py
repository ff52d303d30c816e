"""Keywords for the integrity writer that runs in the guest."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from IntegrityLibrary.context import IntegrityKeywords, as_writer
from nvmechaos.integrity.writer import GuestWriter, WriterSettings, start_writer
from nvmechaos.vm import Vm, as_vm
from nvmechaos_robot import OWNER


class WriterKeywords(IntegrityKeywords):
    """Start, wait for and stop the guest writer whose acknowledgements the host journals."""

    @keyword
    def start_integrity_writer(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        vm: Vm,
        device: str = "/dev/nvme0n1",
        blocks: int = 256,
        count: int = 0,
        flush_every: int = 64,
        fua_every: int = 0,
        block_size: int = 4096,
        first_block: int = 0,
        seed: int = 0,
    ) -> GuestWriter:
        """Start the integrity writer in ``vm``'s guest; return its handle once it has started.

        It writes ``blocks`` blocks of ``block_size`` bytes from ``first_block`` of ``device``
        (random block order, one write at a time, O_DIRECT), flushes after every ``flush_every``
        writes (0: never) and writes every ``fua_every``-th block with FUA (0: none). With
        ``count`` it stops after that many writes and waits (for the power cut); with 0 it writes
        until stopped. ``seed`` 0 picks a random one. The host journals every acknowledged write and
        flush as it arrives (``journal.txt`` in the test's output folder). Needs ``gcc`` and the
        static C library on the host (packages gcc, libc6-dev).

        Before anything is installed or started, the guest is asked about ``device``: a device that
        does not exist fails naming it and the guest's NVMe devices; ``blocks`` x ``block_size``
        (from ``first_block``) larger than the device fails naming blocks, block size and the
        device's size; a ``block_size`` that is not a multiple of the device's logical block size
        fails too.

        Example:
        | ${writer} =    Start Integrity Writer    ${vm}    blocks=256    flush_every=64
        """
        target = as_vm(vm)
        settings = WriterSettings.from_arguments(
            device, blocks, count, flush_every, fua_every, block_size, first_block, seed
        )
        journal = self.ctx.test_dir("integrity", f"writer-{target.name}") / "journal.txt"
        writer = start_writer(target, settings, journal)
        self.ctx.own_writer(writer)
        logger.info(
            f"Integrity writer in {writer.vm_name}: {json.dumps(writer.describe())}; journal "
            f'<a href="{html.escape(self.ctx.link(journal))}">{html.escape(journal.name)}</a>',
            html=True,
        )
        return writer

    @keyword
    def wait_for_integrity_writer(
        self,
        writer: GuestWriter,
        writes: int = 0,
        finished: bool = False,
        timeout: timedelta = timedelta(seconds=60),
    ) -> int:
        """Wait until ``writes`` writes were acknowledged, or (``finished``) all ``count`` were;
        return the number acknowledged so far. ``timeout`` is a Robot time (``60s``, ``2 min``,
        ``1 hour``; a bare number is seconds). Fails if the writer failed or on ``timeout``, and at
        once when it can never happen: ``writes`` beyond the writer's ``count``, or ``finished``
        for a writer without a ``count``.

        Example:
        | Wait For Integrity Writer    ${writer}    writes=500
        | Wait For Integrity Writer    ${writer}    finished=${True}    timeout=2 min
        """
        return as_writer(writer).wait_for(writes, finished, timeout.total_seconds())

    @keyword
    def stop_integrity_writer(self, writer: GuestWriter) -> dict[str, Any]:
        """Stop the writer (if its guest still runs) and return its figures (writes, flushes, ...).

        Example:
        | ${figures} =    Stop Integrity Writer    ${writer}
        """
        target = as_writer(writer)
        target.stop()
        OWNER.forget(target)
        figures = target.describe()
        logger.info(f"Integrity writer in {target.vm_name}: {json.dumps(figures)}")
        return figures
