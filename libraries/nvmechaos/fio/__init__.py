"""fio: job files, runs, and the typed result model every verdict reads."""
