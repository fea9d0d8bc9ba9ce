"""Latest-first frame hand-off between transport callbacks and the inference worker (ROS-free).

Each camera has one slot holding only its newest unprocessed frame. A frame that arrives before the
worker took the previous one replaces it, and the replaced frame is counted as dropped: latency stays
bounded by one inference when inference is slower than the cameras, and memory never grows. The
worker takes every frame present at once, so frames that arrive together from several cameras go
into one batched inference.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Frame:
    """One received message waiting for inference.

    Attributes:
        source: index of the camera (its position in the node's topic list).
        msg: the message as received (decoded later, on the worker thread).
        received: monotonic time of arrival, for the latency statistics.
    """

    source: int
    msg: Any
    received: float


class LatestFrames:
    """One newest-frame slot per source.

    Args:
        sources: number of sources.
        on_stale: called with the source index of each frame overwritten before it was taken.
    """

    def __init__(self, sources: int, on_stale: Callable[[int], None] | None = None) -> None:
        self._slots: list[Frame | None] = [None] * sources
        self._pending = 0
        self._cond = threading.Condition()
        self._on_stale = on_stale
        self._closed = False

    def put(self, source: int, msg: Any, received: float | None = None) -> bool:
        """Store ``msg`` as the newest frame of ``source``; True if it replaced an untaken frame."""
        frame = Frame(source, msg, time.monotonic() if received is None else received)
        with self._cond:
            replaced = self._slots[source] is not None
            self._slots[source] = frame
            if not replaced:
                self._pending += 1
            self._cond.notify()
        if replaced and self._on_stale is not None:
            self._on_stale(source)
        return replaced

    def take(self, timeout: float, gather_s: float = 0.0) -> list[Frame]:
        """Wait up to ``timeout`` s for a frame, then up to ``gather_s`` more for the other sources.

        Returns every frame present (ordered by source), or [] on timeout or after :meth:`close`.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._pending and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            if self._closed:
                return []
            if gather_s > 0 and self._pending < len(self._slots):
                # Cameras triggered together deliver within a few ms of each other: wait a little so
                # their frames share one inference instead of costing one each.
                gather_end = time.monotonic() + gather_s
                while self._pending < len(self._slots) and not self._closed:
                    remaining = gather_end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            frames = [f for f in self._slots if f is not None]
            self._slots = [None] * len(self._slots)
            self._pending = 0
        return frames

    def clear(self) -> int:
        """Drop every waiting frame (e.g. on deactivation); returns how many were dropped."""
        return len(self.drop_all())

    def drop_all(self) -> list[int]:
        """Drop every waiting frame; the source of each, so that the caller can count them."""
        with self._cond:
            sources = [f.source for f in self._slots if f is not None]
            self._slots = [None] * len(self._slots)
            self._pending = 0
        return sources

    def close(self) -> None:
        """Wake and release any waiting :meth:`take`; later takes return []."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
