"""Frames a camera published that never reached the node, from the publisher's sequence numbers.

DDS numbers every sample a writer sends (``publication_sequence_number`` in a ROS 2 message's
info). A keep-last subscription whose history is full, or a best-effort link that loses a
packet, drops samples before any callback sees them; the numbers the node does receive then
skip. :class:`PublicationGaps` turns those skips into a count, so a node's ``/diagnostics`` can
say how many frames were lost on the way (``lost[transport]``), not only what it lost itself.

The number identifies a sample only within one writer, and a message's info does not name the
writer. So a skip is counted only when exactly one publisher is matched on the topic at that
moment (asked of the caller's ``publisher_count``, only when a skip is seen); with several, the
numbers of two writers interleave and nothing is counted. A number that goes back (the camera
driver restarted, or another writer) starts a new baseline, counting nothing. The first sample
after the subscription starts is a baseline too: what the writer sent before is not a loss.

ROS-free and thread-safe: the transport callbacks and the diagnostics timer call it.
"""
from __future__ import annotations

import threading
from typing import Callable

# rmw reports 0 (or rclpy None) where the middleware does not supply the number.
_UNSUPPORTED = (None, 0)


class PublicationGaps:
    """Per-source count of samples skipped between received publication sequence numbers.

    Args:
        publisher_count: how many publishers are matched on a source now (a ROS node's
            ``count_publishers``); asked only when a skip is seen.
    """

    def __init__(self, publisher_count: Callable[[str], int]) -> None:
        self._publisher_count = publisher_count
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._missed: dict[str, int] = {}

    def observe(self, source: str, sequence: int | None) -> int:
        """Record a sample of ``source`` numbered ``sequence``; returns how many samples of the same
        writer were skipped since the previous one received (0 when none or not countable)."""
        if sequence in _UNSUPPORTED:
            return 0
        seq = int(sequence)  # type: ignore[arg-type]
        with self._lock:
            last = self._last.get(source)
            self._last[source] = seq
        if last is None or seq <= last + 1 or self._publisher_count(source) != 1:
            return 0
        missed = seq - last - 1
        with self._lock:
            self._missed[source] = self._missed.get(source, 0) + missed
        return missed

    def missed(self, source: str) -> int:
        """Samples of ``source`` counted as skipped so far."""
        with self._lock:
            return self._missed.get(source, 0)


__all__ = ["PublicationGaps"]
