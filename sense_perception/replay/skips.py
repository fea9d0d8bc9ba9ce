"""Accounting of what a replay could not use: one entry per (topic, reason) with a count."""
from __future__ import annotations

from typing import Any

ALL_TOPICS = "*"  # topic of an entry that concerns the whole bag or an unknown topic

#: Distinct reasons listed per topic. A reason names sizes and values (``has 4100 items; 9216
#: bytes are needed``), so a camera whose every frame is broken differently made one entry per
#: frame: 650 000 for an hour of six 30 Hz cameras, in memory and in summary.json.
MAX_REASONS_PER_TOPIC = 16
#: Entries listed in all (a bag of thousands of topics, each with its own error).
MAX_ENTRIES = 1024
#: Reasons beyond these limits are counted together, per topic while fewer than this many topics
#: have such a count, then under :data:`ALL_TOPICS`.
MAX_OTHER_TOPICS = 64


class SkipLog:
    """Counts skipped items by topic and reason, in the order they were first seen.

    Bounded whatever the bag holds: at most :data:`MAX_REASONS_PER_TOPIC` reasons per topic and
    :data:`MAX_ENTRIES` entries are listed; the items of further reasons are counted in one entry
    per topic (``other reasons ...; the last: <reason>``), so :meth:`total` stays exact.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._reasons: dict[str, int] = {}  # topic -> distinct reasons listed
        self._other: dict[str, list[Any]] = {}  # topic -> [count, the last reason]

    def add(self, topic: str, reason: str, count: int = 1) -> None:
        """Record ``count`` items of ``topic`` skipped for ``reason``."""
        if count <= 0:
            return
        key = (topic, reason)
        if key in self._counts:
            self._counts[key] += int(count)
        elif self._reasons.get(topic, 0) < MAX_REASONS_PER_TOPIC and len(self._counts) < MAX_ENTRIES:
            self._counts[key] = int(count)
            self._reasons[topic] = self._reasons.get(topic, 0) + 1
        else:
            bucket = topic if topic in self._other or len(self._other) < MAX_OTHER_TOPICS \
                else ALL_TOPICS
            other = self._other.setdefault(bucket, [0, ""])
            other[0] += int(count)
            other[1] = reason

    def add_undecodable(self, topic: str, error: Exception) -> None:
        """Record one frame of ``topic`` whose image could not be decoded, with the error."""
        if getattr(error, "field", None) == "size":  # decodable, but too small to be a frame
            self.add(topic, str(error).removeprefix("size: ")[:200])
            return
        self.add(topic, f"undecodable image: {str(error)[:200]}")

    def entries(self) -> list[dict[str, Any]]:
        """``[{"topic", "reason", "count"}]`` as summary.json lists them."""
        listed = [{"topic": t, "reason": r, "count": c} for (t, r), c in self._counts.items()]
        for topic, (count, last) in self._other.items():
            scope = "topics and reasons" if topic == ALL_TOPICS else "reasons"
            listed.append({"topic": topic, "count": count, "reason": (
                f"other {scope}, not listed one by one (at most {MAX_REASONS_PER_TOPIC} reasons per "
                f"topic and {MAX_ENTRIES} entries are); the last: {last}")})
        return listed

    def total(self) -> int:
        """Number of skipped items over all entries."""
        return sum(self._counts.values()) + sum(other[0] for other in self._other.values())

    def __bool__(self) -> bool:
        return bool(self._counts) or bool(self._other)
