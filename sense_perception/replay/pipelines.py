"""The perception of a replay: exterior frames through the object detector (batched across cameras
close in bag time) and the tracker, cabin frames through the driver pipeline.

Each stage turns decoded frames into their results (:class:`ExteriorFrame`, :class:`CabinFrame`)
and hands them, with the messages they publish
(:func:`~sense_perception.core.output.frame_outputs.frame_messages`), to a callback; a frame whose
inference raises goes to ``on_failure`` and the replay goes on.
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np

from ..core.health.inference_guard import safe_detect
from ..core.imaging.image_decode import ImageView
from ..core.output.annotations import image_size_of
from ..core.output.frame_outputs import (CABIN_OUTPUTS, EXTERIOR_OUTPUTS, CabinFrame, ExteriorFrame,
                                         Message, Output, enabled_outputs, frame_messages)
from ..core.types import Header


class DecodedFrame(NamedTuple):
    """A camera frame of the bag, decoded."""

    topic: str
    timestamp: int  # bag time, ns
    header: Header
    image: np.ndarray | ImageView  # a view of the message buffer on exterior cameras
    started: float  # perf_counter() when its decode began

    @property
    def latency_ms(self) -> float:
        """Milliseconds since its decode began."""
        return (time.perf_counter() - self.started) * 1e3


Failure = Callable[[list[DecodedFrame], Exception], None]


class ExteriorStage:
    """Object detection of the exterior cameras.

    Args:
        detector, trackers: the core objects (trackers None with tracking off).
        namespaces: output namespace of each exterior topic.
        switches: which switchable outputs are on (:func:`~.frame_outputs.switches`).
        window_ns: frames of different cameras this close in bag time share one ``detect`` call.
        on_result: gets each frame, its results and the messages it publishes.
        on_failure: gets the frames whose inference raised, and the exception.
    """

    def __init__(self, detector: Any, trackers: Any, namespaces: dict[str, str],
                 switches: dict[str, bool], window_ns: float,
                 on_result: Callable[[DecodedFrame, ExteriorFrame, list[Message]], None],
                 on_failure: Failure) -> None:
        self.detector = detector
        self.trackers = trackers
        self.namespaces = namespaces
        self.outputs: list[Output] = enabled_outputs(EXTERIOR_OUTPUTS, switches, live=False)
        self.window_ns = window_ns
        self.pending: list[DecodedFrame] = []
        self._on_result = on_result
        self._on_failure = on_failure
        self._latched_done: set[str] = set()

    def add(self, frame: DecodedFrame) -> None:
        """Queue ``frame``; detect the queue once every camera has a frame in it, or when this
        frame is another of a queued camera or too far in bag time from the first."""
        pending = self.pending
        if pending and (frame.topic in {p.topic for p in pending}
                        or frame.timestamp - pending[0].timestamp > self.window_ns):
            self.flush()
        pending.append(frame)
        if len(pending) == len(self.namespaces):
            self.flush()

    def flush(self) -> None:
        """Detect every queued frame (one batch) and hand out the results."""
        if not self.pending:
            return
        detector = self.detector
        results = safe_detect(detector, [f.image for f in self.pending])
        for frame, (dets, error) in zip(self.pending, results, strict=True):
            if error is not None:
                self._on_failure([frame], error)
                continue
            if self.trackers is not None:
                dets = self.trackers.update(frame.topic, dets, frame.header.seconds)
            result = ExteriorFrame(frame.header, dets, detector.label_names, detector.min_score,
                                   image_size_of(frame.image))
            first = frame.topic not in self._latched_done
            self._latched_done.add(frame.topic)
            rows = [o for o in self.outputs if first or not o.latched]  # latched: once per camera
            self._on_result(frame, result, frame_messages(rows, self.namespaces[frame.topic], result))
        self.pending.clear()


class CabinStage:
    """The driver pipeline on the cabin camera.

    Args:
        identifier: the :class:`~sense_perception.face.pipeline.DriverIdentifier`.
        ns: the cabin camera's output namespace.
        switches: which switchable outputs are on.
        on_result: gets each frame, its results and the messages it publishes.
        on_failure: gets the frame whose pipeline raised, and the exception.
    """

    def __init__(self, identifier: Any, ns: str, switches: dict[str, bool],
                 on_result: Callable[[DecodedFrame, CabinFrame, list[Message]], None],
                 on_failure: Failure) -> None:
        self.identifier = identifier
        self.ns = ns
        self.outputs: list[Output] = enabled_outputs(CABIN_OUTPUTS, switches, live=False)
        self._on_result = on_result
        self._on_failure = on_failure

    def process(self, frame: DecodedFrame) -> None:
        """Run the driver pipeline on one frame and hand out its results."""
        try:
            result = self.identifier.process(frame.image, frame.header.seconds)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not end the replay
            self._on_failure([frame], exc)
            return
        cabin = CabinFrame(frame.header, result, image_size_of(frame.image))
        self._on_result(frame, cabin, frame_messages(self.outputs, self.ns, cabin))
