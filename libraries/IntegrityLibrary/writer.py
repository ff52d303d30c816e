"""Keywords for the integrity writer that runs in the guest."""

from __future__ import annotations

import html
import json
from typing import Any

from robot.api import logger
from robot.api.deco import keyword

from IntegrityLibrary.context import IntegrityContext, as_bool
from nvmechaos.errors import NvmeChaosError
from nvmechaos.faults.control import parse_duration
from nvmechaos.faults.guestwriter import GuestWriter, WriterSettings, start_writer
from nvmechaos_robot import fail


class WriterKeywords:
    """Start, wait for and stop the guest writer whose acknowledgements the host journals."""

    def __init__(self, context: IntegrityContext) -> None:
        self.ctx = context

    @keyword
    def start_integrity_writer(  # noqa: PLR0917 - Robot keywords take their options positionally too
        self,
        vm: Any,
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

        Example:
        | ${writer} =    Start Integrity Writer    ${vm}    blocks=256    flush_every=64
        """
        try:
            settings = WriterSettings(
                device=device,
                blocks=int(blocks),
                block_size=int(block_size),
                first_block=int(first_block),
                count=int(count),
                flush_every=int(flush_every),
                fua_every=int(fua_every),
                seed=int(seed),
            )
            folder = self.ctx.test_dir("integrity", f"writer-{getattr(vm, 'name', 'vm')}")
            journal = folder / "journal.txt"
            writer = start_writer(vm, settings, journal)
        except NvmeChaosError as error:
            fail(error)
        self.ctx.writers.append((self.ctx.scope, writer))
        logger.info(
            f"Integrity writer in {writer.vm_name}: {json.dumps(writer.describe())}; journal "
            f'<a href="{html.escape(self.ctx.link(journal))}">{html.escape(journal.name)}</a>',
            html=True,
        )
        return writer

    @keyword
    def wait_for_integrity_writer(
        self, writer: GuestWriter, writes: int = 0, finished: bool = False, timeout: str = "60s"
    ) -> int:
        """Wait until ``writes`` writes were acknowledged, or (``finished``) all ``count`` were;
        return the number acknowledged so far. Fails if the writer failed or on ``timeout``.

        Example:
        | Wait For Integrity Writer    ${writer}    writes=500
        | Wait For Integrity Writer    ${writer}    finished=${True}
        """
        target = self.ctx.writer(writer)
        try:
            target.wait_for(int(writes), as_bool(finished), parse_duration(timeout, "timeout"))
        except NvmeChaosError as error:
            fail(error)
        return target.journal.writes

    @keyword
    def stop_integrity_writer(self, writer: GuestWriter) -> dict[str, Any]:
        """Stop the writer (if its guest still runs) and return its figures (writes, flushes, ...).

        Example:
        | ${figures} =    Stop Integrity Writer    ${writer}
        """
        target = self.ctx.writer(writer)
        target.stop()
        self.ctx.writers = [(s, w) for s, w in self.ctx.writers if w is not target]
        figures = target.describe()
        logger.info(f"Integrity writer in {target.vm_name}: {json.dumps(figures)}")
        return figures
