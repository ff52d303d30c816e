"""Verdicts: limits a result is judged against (threshold profiles, consistency, fault impact), and
the one-line findings a failed verdict reports.

- :mod:`nvmechaos.verdicts.thresholds`: profiles from YAML, overrides, :func:`check_thresholds`.
- :mod:`nvmechaos.verdicts.consistency`: variation over time from the interval logs.
- :mod:`nvmechaos.verdicts.impact`: limits on what a fault did (depth, recovery) and throttle accuracy.
"""
