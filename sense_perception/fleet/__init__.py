"""Fleet replay: many rosbag2 recordings through the replay engine on Ray actors.

``sense-perception fleet`` finds every bag under its inputs (:mod:`.discover`), starts a local Ray
instance or joins a cluster (:mod:`.cluster`), and hands bags one at a time to long-lived worker
actors (:mod:`.actor` wrapping :class:`.worker.BagWorker`) that build the models once and run
:class:`sense_perception.replay.engine.Replayer` on each bag. :mod:`.dispatch` keeps the books:
retries of bags whose worker died or hung, resume, progress. :mod:`.report` writes
``fleet_summary.json`` and the final table.

Ray is the optional ``fleet`` extra. Only :mod:`.cluster` and :mod:`.actor` import it, and only
when a fleet run starts; nothing outside this package imports this package.
"""
from __future__ import annotations

# Per bag and try: long enough for a long recording on CPU, short enough that a hung read
# (a stale network mount) does not hold a worker for a day. `--time-limit 0` disables it.
DEFAULT_TIME_LIMIT_S = 3600.0
