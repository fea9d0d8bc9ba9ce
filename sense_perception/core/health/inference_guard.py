"""Batched detection that loses only the frame at fault: shared by the object_detector node and the replay.

Frames of several cameras share one ``detect`` call. When that call raises (an onnxruntime error
on one odd frame, a bug hit by one input), failing the whole batch would drop the other cameras'
good frames too, so :func:`safe_detect` runs the batch again frame by frame and reports, per frame,
its detections or the exception it raised alone. The extra calls happen only after a failure.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

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


__all__ = ["DetectFailed", "Detected", "DetectResult", "safe_detect"]
