"""Where fio runs, other than this host: each target copies a prepared job in, runs it, fetches
``fio.json`` and the logs back into the run folder and returns fio's exit code, so that
``nvmechaos.fio.runner.collect_result`` reads the result as it reads a host run.

- :mod:`nvmechaos.targets.guest`: the guest of a VM (``nvmechaos.vm``), over its SSH connection.
"""
