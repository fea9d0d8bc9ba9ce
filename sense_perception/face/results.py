"""How a driver result becomes output messages, shared by the node and the replay (ROS-free).

Both publish, per cabin frame, the faces as a Detection2DArray labelled with :data:`FACE_LABELS`
(the driver's face ``driver``, every other ``face``), the identity as a Classification with one
hypothesis (:func:`identity_results`), annotations captioned by :func:`face_captions`, the
attention as a Classification (:func:`attention_results`) and, when a face was measured, the head
pose as a PoseStamped (:func:`head_pose_message`), so a live graph and a replayed bag carry the
same content. :func:`attention_values` are the diagnostics keys.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.output import messages
from ..core.types import Detections, Header

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
        One text per face: the driver's shows what ``driver_identity`` publishes: the pseudonymous
        driver id and its score when identified, else the state alone (``driver unknown``: a
        score without an identity reads like a bug); the others ``face`` and the detector score.
        Never a display name: annotations are broadcast like every other topic.
    """
    ((who, score),) = identity_results(state_name(result), result.driver_id, result.score)
    driver = f"driver {who} {score:.2f}" if result.driver_id else f"driver {who}"
    return [driver if label == DRIVER else f"face {s:.2f}"
            for label, s in zip(faces.labels.tolist(), faces.scores.tolist(), strict=True)]


def identity_results(state: str, driver_id: str | None, score: float) -> list[tuple[str, float]]:
    """Classification hypotheses of a driver state: the driver id when identified, else the state.

    A non-finite score (no face was scored) is published as 0.
    """
    return [(driver_id if driver_id else state, float(score) if math.isfinite(score) else 0.0)]


EYES = ("right", "left")  # the person's right and left eye


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def attention_results(attention: Any) -> list[tuple[str, float]]:
    """Classification hypotheses of an :class:`~.attention.estimator.AttentionResult`.

    In this order: the state (``attentive``, ``distracted``, ``eyes_closed``, ``drowsy``,
    ``no_face``) with its score, ``level_<0..3>`` with the inattention timer over the terminal
    time, then, when the eyes were measured, ``eye_openness_right`` and ``eye_openness_left``: each
    eye's EAR over the driver's open-eye baseline (1 = as open as usual).
    """
    status = attention.status
    out = [(status.state.value, _finite(status.score)), (f"level_{status.level}",
                                                         _finite(status.level_score))]
    openness = attention.eye_openness()
    if openness is not None:
        out += [(f"eye_openness_{eye}", openness[eye]) for eye in EYES]
    return out


def head_pose_message(header: Header, attention: Any) -> dict[str, Any] | None:
    """geometry_msgs/PoseStamped of the head in the camera optical frame (header copied from the
    image); None when no pose was measured on this frame."""
    pose = attention.pose
    if pose is None:
        return None
    return messages.pose_stamped(header, pose.translation, pose.quaternion())


def attention_values(attention: Any) -> dict[str, str]:
    """Diagnostics key/values of an attention result (angles in degrees, EAR, PERCLOS)."""
    status, pose, eyes, openness = (attention.status, attention.pose, attention.eyes,
                                    attention.eye_openness())

    def num(value: float, digits: int = 3) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"

    values = {
        "attention_state": status.state.value, "attention_level": str(status.level),
        "attention_score": num(status.score), "attention_calibrated": str(status.calibrated).lower(),
        "head_yaw_deg": num(pose.yaw, 1) if pose else "n/a",
        "head_pitch_deg": num(pose.pitch, 1) if pose else "n/a",
        "head_roll_deg": num(pose.roll, 1) if pose else "n/a",
        "neutral_yaw_deg": num(status.neutral_yaw, 1), "neutral_pitch_deg": num(status.neutral_pitch, 1),
        "ear_baseline": num(status.ear_baseline), "perclos": num(status.perclos),
        "intrinsics": attention.intrinsics,
    }
    for eye in EYES:
        values[f"eye_aspect_ratio_{eye}"] = num(eyes.ear[eye]) if eyes else "n/a"
        values[f"eye_openness_{eye}"] = num(openness[eye]) if openness else "n/a"
    if attention.measurement.reason:
        values["attention_reason"] = attention.measurement.reason
    return values


__all__ = ["DRIVER", "EYES", "FACE", "FACE_LABELS", "attention_results", "attention_values",
           "face_captions", "face_detections", "head_pose_message", "identity_results", "state_name"]
