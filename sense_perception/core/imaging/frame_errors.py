"""A ledger of the frames a pipeline lost, by cause, ROS-free.

Every frame that does not make it to a result is counted under one *kind*:

* ``decode.<field>`` -- the message could not be decoded; ``<field>`` is the
  :attr:`~sense_perception.errors.ImageDecodeError.field` at fault (``decode.step``, ``decode.data``...);
* ``inference`` -- the model raised on the batch that held the frame;
* ``stale`` -- a newer frame replaced it before the worker reached it;
* any other name a caller passes to :meth:`FrameErrorLedger.record`.

Counts are frames, so one inference failure on a batch of four counts four. The ledger also keeps,
per kind, the last message and the source (topic) it came from, so a diagnostic can say what went
wrong, not only how often. Each pipeline's
:class:`~sense_perception.core.health.stats.HealthStats` keeps one (the nodes and the replay alike):
its frame counters (``decode_errors``, ``frames_dropped_stale``, ``frames_dropped_error``) are read
from it, and :meth:`FrameErrorLedger.diagnostic_values` adds ``lost_frames``, ``lost[<kind>]`` and
``last_error[<kind>]`` to the pipeline's ``/diagnostics`` status. (The replay's summary.json lists
what it skipped, frames and other messages, in its own :class:`~sense_perception.replay.skips.SkipLog`.)

All methods are thread-safe: transport callbacks and inference workers record concurrently.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ...errors import ImageDecodeError

DECODE_PREFIX = "decode."
INFERENCE = "inference"
STALE = "stale"

# Error texts can quote user data (an exception's repr); keep what a diagnostic carries bounded.
DEFAULT_MAX_MESSAGE_CHARS = 300


def decode_kind(field: str) -> str:
    """The ledger kind of a decode error in message field ``field``, e.g. ``decode.step``."""
    return DECODE_PREFIX + field


@dataclass
class _Entry:
    count: int = 0
    last_message: str = ""
    last_source: str = ""


def _snapshot(entries: dict[str, _Entry]) -> dict[str, Any]:
    kinds = {k: {"count": e.count, "last_message": e.last_message, "last_source": e.last_source}
             for k, e in sorted(entries.items())}
    return {"total": sum(v["count"] for v in kinds.values()), "kinds": kinds}


class FrameErrorLedger:
    """Thread-safe counts of lost frames by kind, with the last message of each kind.

    Args:
        max_message_chars: longest message kept per kind; longer ones are cut and end in "...".
    """

    def __init__(self, max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> None:
        if max_message_chars < 4:
            raise ValueError(f"max_message_chars must be >= 4, got {max_message_chars}")
        self._max_chars = max_message_chars
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def record(self, kind: str, message: str = "", frames: int = 1, source: str = "") -> None:
        """Count ``frames`` frames lost to ``kind``; ``message`` and ``source`` become its latest.

        Raises:
            ValueError: ``kind`` is empty or ``frames`` is negative (a caller bug, not bad input).
        """
        if not kind:
            raise ValueError("kind must be a non-empty string")
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        if len(message) > self._max_chars:
            message = message[: self._max_chars - 3] + "..."
        with self._lock:
            entry = self._entries.get(kind)
            if entry is None:
                entry = self._entries[kind] = _Entry()
            entry.count += frames
            entry.last_message = message
            entry.last_source = source

    def record_decode_error(self, error: ImageDecodeError, source: str = "") -> str:
        """Count one frame lost to ``error``, under ``decode.<error.field>``; returns that kind."""
        kind = decode_kind(error.field)
        self.record(kind, str(error), 1, source)
        return kind

    def record_inference_error(self, error: BaseException | str, frames: int = 1, source: str = "") -> None:
        """Count the ``frames`` frames of a batch on which inference raised ``error``."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.record(INFERENCE, text, frames, source)

    def record_stale(self, frames: int = 1, source: str = "") -> None:
        """Count ``frames`` frames replaced by newer ones before they were processed."""
        self.record(STALE, f"{frames} frame(s) replaced by newer ones before processing", frames, source)

    def count(self, kind: str) -> int:
        """Frames lost to exactly ``kind`` (0 when none)."""
        with self._lock:
            entry = self._entries.get(kind)
            return entry.count if entry else 0

    def total(self, prefix: str = "") -> int:
        """Frames lost to every kind starting with ``prefix`` (all kinds by default).

        ``total(DECODE_PREFIX)`` is the number of undecodable frames.
        """
        with self._lock:
            return sum(e.count for k, e in self._entries.items() if k.startswith(prefix))

    def last_message(self, kind: str) -> str | None:
        """The latest message recorded for ``kind``, or None when nothing was."""
        with self._lock:
            entry = self._entries.get(kind)
            return entry.last_message if entry else None

    def as_dict(self) -> dict[str, Any]:
        """A consistent, JSON-ready snapshot: ``{"total": n, "kinds": {kind: {count, last_message,
        last_source}}}`` with kinds sorted by name."""
        with self._lock:
            return _snapshot(self._entries)

    def diagnostic_values(self) -> dict[str, str]:
        """Flat string key/values for a ``diagnostic_msgs/DiagnosticStatus``: ``lost_frames``, then
        ``lost[<kind>]`` and ``last_error[<kind>]`` per kind."""
        snap = self.as_dict()
        values = {"lost_frames": str(snap["total"])}
        for kind, entry in snap["kinds"].items():
            values[f"lost[{kind}]"] = str(entry["count"])
            where = f"{entry['last_source']}: " if entry["last_source"] else ""
            values[f"last_error[{kind}]"] = where + entry["last_message"]
        return values

    def reset(self) -> dict[str, Any]:
        """Clear every count atomically; returns the :meth:`as_dict` snapshot taken just before."""
        with self._lock:
            old, self._entries = self._entries, {}
        return _snapshot(old)


__all__ = [
    "DECODE_PREFIX",
    "DEFAULT_MAX_MESSAGE_CHARS",
    "INFERENCE",
    "STALE",
    "FrameErrorLedger",
    "decode_kind",
]
