"""The files a drive's server keeps in the drive's private folder (the server writes them, the
handle reads them)."""

#: One JSON line per drive event, appended as it happens.
EVENTS = "events.jsonl"
#: The SMART view, replaced atomically every 250 ms.
HEALTH = "health.json"
#: FTL, wear and counters, saved every second and at an orderly stop.
STATE = "state.pickle"
#: The resolved personality the server runs (written by the handle before the start).
PERSONALITY = "personality.json"
#: One JSON line of wear, temperature and free blocks every second (for charts over time).
SAMPLES = "samples.jsonl"
