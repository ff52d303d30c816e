"""Data integrity after power loss: drives with and without power-loss protection, the guest writer
that journals every acknowledged write and flush, and the oracle that judges the image afterwards.

- :mod:`nvmechaos.integrity.drive`: :class:`PowerLossDrive` (nbdkit, volatile write cache or not) and
  :func:`cut_power`.
- :mod:`nvmechaos.integrity.writer`: :class:`GuestWriter` and its C source ``integrity_writer.c``.
- :mod:`nvmechaos.integrity.oracle`: the journal and :func:`verify`.
"""
