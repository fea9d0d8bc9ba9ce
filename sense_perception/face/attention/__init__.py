"""Driver attention (ROS-free): head pose, eye openness and an attention state for the driver seat.

Per cabin frame, on the driver face the monitor already selects: MediaPipe's 468-point face mesh
(:mod:`.mesh`) -> head pose by solvePnP against the canonical face (:mod:`.head_pose`) -> eye
aspect ratios from the iris landmark network (:mod:`.eyes`) -> the state machine of the seat
(:mod:`.state`): attentive, distracted, eyes_closed, drowsy, no_face, with escalation levels.
No identity is needed: it runs for whoever sits in the driver seat.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttentionConfig": "state", "AttentionMonitor": "state", "AttentionState": "state",
    "AttentionStatus": "state", "Observation": "state", "CameraIntrinsics": "head_pose",
    "HeadPose": "head_pose", "AttentionEstimator": "estimator", "AttentionResult": "estimator",
    "DriverAttention": "estimator", "FaceMeasurement": "estimator",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
