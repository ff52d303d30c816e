"""Analysis of what fio measured, on the run's one clock.

- :mod:`nvmechaos.analysis.series`: per-interval series (averaged logs, per-I/O logs cut into windows).
- :mod:`nvmechaos.analysis.latency`: latency summaries (log-linear histograms) of long logs.
- :mod:`nvmechaos.analysis.steady`: variation over time and SNIA-style steady state.
- :mod:`nvmechaos.analysis.impact`: what each fault did (baseline, depth, recovery).
- :mod:`nvmechaos.analysis.runclock`: guest and host clocks, fio's start on the host clock.
- :mod:`nvmechaos.analysis.charts`: charts (imports matplotlib, so nothing here imports it).

Reading fio's log files is :mod:`nvmechaos.fio.logs`.
"""
