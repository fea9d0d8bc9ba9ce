"""Accounting of what a replay could not use: one entry per (topic, reason) with a count."""
from __future__ import annotations

from typing import Any

ALL_TOPICS = "*"  # topic of an entry that concerns the whole bag or an unknown topic


class SkipLog:
    """Counts skipped items by topic and reason, in the order they were first seen."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, topic: str, reason: str, count: int = 1) -> None:
        """Record ``count`` items of ``topic`` skipped for ``reason``."""
        if count <= 0:
            return
        key = (topic, reason)
        self._counts[key] = self._counts.get(key, 0) + int(count)

    def add_undecodable(self, topic: str, error: Exception) -> None:
        """Record one frame of ``topic`` whose image could not be decoded, with the error."""
        if getattr(error, "field", None) == "size":  # decodable, but too small to be a frame
            self.add(topic, str(error).removeprefix("size: ")[:200])
            return
        self.add(topic, f"undecodable image: {str(error)[:200]}")

    def entries(self) -> list[dict[str, Any]]:
        """``[{"topic", "reason", "count"}]`` as summary.json lists them."""
        return [{"topic": t, "reason": r, "count": c} for (t, r), c in self._counts.items()]

    def total(self) -> int:
        """Number of skipped items over all entries."""
        return sum(self._counts.values())

    def __bool__(self) -> bool:
        return bool(self._counts)
