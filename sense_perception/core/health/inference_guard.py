"""Inference that fails or hangs is seen: shared by the nodes and the replay.

Frames of several cameras share one ``detect`` call. When that call raises (an onnxruntime error
on one odd frame, a bug hit by one input), failing the whole batch would drop the other cameras'
good frames too, so :func:`safe_detect` runs the batch again frame by frame and reports, per frame,
its detections or the exception it raised alone. The extra calls happen only after a failure.

An inference that never returns (a hung GPU call, a deadlocked execution provider) raises
nothing: the node's worker thread stays inside it while the cameras' frames keep arriving and
wait. :class:`InferenceWatch` is told when the worker takes a batch and when it is done with it,
and says, for the node's ``/diagnostics``, when one has not returned for too long (R69).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from ...durations import duration
from ..imaging.image_decode import ImageView
from ..types import Detections


class Detected(NamedTuple):
    """A frame's detections."""

    detections: Detections
    error: None = None


class DetectFailed(NamedTuple):
    """The exception ``detect`` raised on this frame alone."""

    detections: None
    error: Exception


# One frame's outcome: exactly one of ``detections`` and ``error`` is not None. Checking
# ``result.error is not None`` tells a type checker which one (an unpacked pair loses that).
DetectResult = Detected | DetectFailed


def safe_detect(detector: Any, images: Sequence[np.ndarray | ImageView]) -> list[DetectResult]:
    """Run ``detector.detect`` on ``images`` as one batch; retry frame by frame if it raises.

    Args:
        detector: anything with ``detect(list[np.ndarray]) -> list[Detections]``
            (:class:`~sense_perception.core.detection.detector.ObjectDetector`).
        images: BGR frames (or ImageViews), one per camera.

    Returns:
        One :class:`DetectResult` per image, in order. Never raises an ``Exception`` from ``detect``
        (a KeyboardInterrupt still propagates).
    """
    images = list(images)
    if not images:
        return []
    try:
        return [Detected(d) for d in detector.detect(images)]
    except Exception as exc:  # noqa: BLE001 - one bad frame must not cost the other cameras theirs
        if len(images) == 1:
            return [DetectFailed(None, exc)]
    return [safe_detect(detector, [image])[0] for image in images]


class InferenceWatch:
    """How long the batch the worker thread is in has run, and what arrived meanwhile.

    Thread-safe: the worker calls :meth:`begin` and :meth:`end` around each batch, the diagnostics
    timer :meth:`stalled`. One per worker thread (a node's activation).

    Args:
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._topics: tuple[str, ...] = ()
        self._received: dict[str, int] = {}
        self._flagged = False

    def begin(self, topics: Sequence[str], received: Mapping[str, int]) -> None:
        """The worker took a batch of frames of ``topics``; ``received``: the frames received so
        far per topic (:meth:`~.stats.HealthStats.received_by_source`)."""
        with self._lock:
            self._since = self.clock()
            self._topics = tuple(dict.fromkeys(topics))
            self._received = dict(received)
            self._flagged = False

    def end(self) -> float | None:
        """The worker is done with its batch (returned or raised); how long it ran when
        :meth:`stalled` had said so (for the caller to log that it returned), else None."""
        with self._lock:
            since, flagged = self._since, self._flagged
            self._since, self._flagged = None, False
        return None if since is None or not flagged else self.clock() - since

    def running_s(self) -> float | None:
        """Seconds the batch in flight has run; None while the worker waits for frames."""
        with self._lock:
            return None if self._since is None else self.clock() - self._since

    def stalled(self, limit_s: float, received: Mapping[str, int]) -> tuple[str, bool] | None:
        """The text naming a batch that has not returned for more than ``limit_s`` seconds, and
        whether this is the first time it is said (to log it once); None when none has.

        Args:
            limit_s: ``inference_stall_s``.
            received: the frames received so far per topic, now.
        """
        with self._lock:
            if self._since is None:
                return None
            running = self.clock() - self._since
            if running <= limit_s:
                return None
            first, self._flagged = not self._flagged, True
            topics, before = self._topics, dict(self._received)
        waiting = {t: n - before.get(t, 0) for t, n in received.items() if n > before.get(t, 0)}
        if waiting:
            since = (f"frames are waiting: {sum(waiting.values())} received since it began ("
                     + ", ".join(f"{t}: {n}" for t, n in waiting.items()) + ")")
        else:
            since = "no frame has arrived since it began"
        return (f"inference has not returned for {duration(running)} (inference_stall_s "
                f"{limit_s:g}; its batch: {', '.join(topics) or 'no frame'}); {since}, and nothing "
                "is published or judged until it returns (a hung GPU call or execution provider; "
                "the models were warmed up at configure, but TensorRT builds an engine anew for "
                "an input shape it has not met, which can take minutes: runtime.trt_cache_dir "
                "keeps it); if it never returns, restart the node"), first


def waiting_camera(status: dict[str, Any], running_s: float, limit_s: float) -> dict[str, Any]:
    """A camera's ``/diagnostics`` status (a ``diagnostic_status`` dict) while the node's
    inference has stalled: at least WARN, naming the stall, its last verdict kept in the message.

    Every camera of a node waits on its one worker, so none is judged while a batch hangs: each
    camera's status still said its last frame's verdict (``ok``) beside the node's ERROR (R72).
    """
    from ..output import messages

    return {**status, "level": max(int(status["level"]), messages.WARN),
            "message": (f"waiting for the node's inference, which has not returned for "
                        f"{duration(running_s)} (inference_stall_s {limit_s:g}): no frame of this "
                        "camera is judged or published until it returns; its last frame judged "
                        f"said: {status['message']}"),
            "values": [*status["values"],
                       {"key": "inference_running_s", "value": f"{running_s:.1f}"}]}


__all__ = ["DetectFailed", "Detected", "DetectResult", "InferenceWatch", "safe_detect",
           "waiting_camera"]
