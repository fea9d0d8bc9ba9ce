"""How a driver identity result becomes output messages, shared by the node and the replay (ROS-free).

Both publish, per cabin frame, the faces as a Detection2DArray labelled with :data:`FACE_LABELS`
(the driver's face ``driver``, every other ``face``) and the identity as a Classification with one
hypothesis (:func:`identity_results`), and annotations captioned by :func:`face_captions`, so a
live graph and a replayed bag carry the same content.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.types import Detections

FACE_LABELS = ("face", "driver")  # label index 1 marks the driver's face
FACE, DRIVER = 0, 1


def state_name(result: Any) -> str:
    """The driver state of a :class:`~.pipeline.DriverResult` as published (``no_face``, ``unknown``...)."""
    return getattr(result.state, "value", str(result.state))


def face_detections(result: Any) -> Detections:
    """Every face of a :class:`~.pipeline.DriverResult` as :class:`Detections` over :data:`FACE_LABELS`."""
    faces = result.faces
    boxes = np.asarray(faces.boxes, np.float32).reshape(-1, 4)
    labels = np.full(len(boxes), FACE, np.int32)
    if result.driver_index >= 0:
        labels[result.driver_index] = DRIVER
    return Detections(boxes, np.asarray(faces.scores, np.float32).reshape(-1), labels)


def face_captions(faces: Detections, result: Any) -> list[str]:
    """Caption of each face for the ``<ns>/annotations`` topic.

    Args:
        faces: :func:`face_detections` of ``result``.
        result: the :class:`~.pipeline.DriverResult` of the frame.

    Returns:
        One text per face: the driver's shows what ``driver_identity`` publishes (the pseudonymous
        driver id when identified, else the state) and its score, the others ``face`` and the
        detector score. Never a display name: annotations are broadcast like every other topic.
    """
    ((who, score),) = identity_results(state_name(result), result.driver_id, result.score)
    return [f"driver {who} {score:.2f}" if label == DRIVER else f"face {s:.2f}"
            for label, s in zip(faces.labels.tolist(), faces.scores.tolist())]


def identity_results(state: str, driver_id: str | None, score: float) -> list[tuple[str, float]]:
    """Classification hypotheses of a driver state: the driver id when identified, else the state.

    A non-finite score (no face was scored) is published as 0.
    """
    return [(driver_id if driver_id else state, float(score) if math.isfinite(score) else 0.0)]


__all__ = ["DRIVER", "FACE", "FACE_LABELS", "face_captions", "face_detections", "identity_results",
           "state_name"]
