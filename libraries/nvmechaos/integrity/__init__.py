"""Data integrity after power loss: drives with and without power-loss protection, the guest writer
that journals every acknowledged write and flush, and the oracle that judges the image afterwards.

- :mod:`nvmechaos.integrity.drive`: power-cut drives (emulated SSDs of :mod:`nvmechaos.drive`, with
  or without PLP), :func:`cut_power`, the power events (:class:`PowerAction`) on the timeline.
- :mod:`nvmechaos.integrity.writer`: :class:`GuestWriter` and its C source ``integrity_writer.c``.
- :mod:`nvmechaos.integrity.oracle`: the journal, :func:`verify` and its report.
- :mod:`nvmechaos.integrity.verdict`: what the keywords judge: a writer's blocks read from an image or
  through the guest (:func:`verify_writer`), damage on purpose (:func:`damage_flushed_block`).
"""
