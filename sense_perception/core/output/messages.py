"""Message-shaped results: nested dicts with exactly the fields of the ROS messages they become.

The nodes turn them into rclpy messages and the replay CLI into rosbags messages (each with a
generic converter), so a frame gives the same result live and in a replay. Field names and nesting
follow vision_msgs 4.x, diagnostic_msgs and std_msgs exactly.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..types import Detections, Header

# diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR, STALE = 0, 1, 2, 3

_IDENTITY_COVARIANCE = [0.0] * 36


def header_msg(header: Header) -> dict[str, Any]:
    """std_msgs/Header copied from the input image."""
    return {"stamp": {"sec": header.sec, "nanosec": header.nanosec}, "frame_id": header.frame_id}


def detection2d_array(header: Header, detections: Detections, label_names: Sequence[str]) -> dict[str, Any]:
    """vision_msgs/Detection2DArray: class_id = label name, id = track id ("" when untracked)."""
    head = header_msg(header)
    n = len(detections)
    if n == 0:
        return {"header": head, "detections": []}
    boxes = detections.boxes.astype(np.float64)
    centres = ((boxes[:, :2] + boxes[:, 2:]) * 0.5).tolist()
    sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
    scores = detections.scores.astype(np.float64).tolist()
    labels = [label_names[i] for i in detections.labels.tolist()]
    ids = ["" if t < 0 else str(t) for t in detections.track_ids.tolist()]
    return {
        "header": head,
        "detections": [
            {
                "header": head,
                "results": [{
                    "hypothesis": {"class_id": labels[i], "score": scores[i]},
                    "pose": {
                        "pose": {"position": {"x": centres[i][0], "y": centres[i][1], "z": 0.0},
                                 "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}},
                        "covariance": list(_IDENTITY_COVARIANCE),
                    },
                }],
                "bbox": {
                    "center": {"position": {"x": centres[i][0], "y": centres[i][1]}, "theta": 0.0},
                    "size_x": sizes[i][0],
                    "size_y": sizes[i][1],
                },
                "id": ids[i],
            }
            for i in range(n)
        ],
    }


def label_info(header: Header, label_names: Sequence[str], threshold: float) -> dict[str, Any]:
    """vision_msgs/LabelInfo: class_map index -> name, and the score threshold in use."""
    return {
        "header": header_msg(header),
        "class_map": [{"class_id": i, "class_name": name} for i, name in enumerate(label_names)],
        "threshold": float(threshold),
    }


def classification(header: Header, results: Iterable[tuple[str, float]]) -> dict[str, Any]:
    """vision_msgs/Classification with (class_id, score) hypotheses."""
    return {
        "header": header_msg(header),
        "results": [{"class_id": str(c), "score": float(s)} for c, s in results],
    }


def pose_stamped(header: Header, position: Sequence[float],
                 orientation: Sequence[float]) -> dict[str, Any]:
    """geometry_msgs/PoseStamped: ``position`` (x, y, z) metres, ``orientation`` (x, y, z, w)."""
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in orientation)
    return {
        "header": header_msg(header),
        "pose": {"position": {"x": x, "y": y, "z": z},
                 "orientation": {"x": qx, "y": qy, "z": qz, "w": qw}},
    }


def diagnostic_status(name: str, level: int, message: str, hardware_id: str = "",
                      values: dict[str, Any] | None = None) -> dict[str, Any]:
    """diagnostic_msgs/DiagnosticStatus; values are stringified as the message requires."""
    return {
        "level": int(level),
        "name": name,
        "message": message,
        "hardware_id": hardware_id,
        "values": [{"key": str(k), "value": str(v)} for k, v in (values or {}).items()],
    }


def diagnostic_array(header: Header, statuses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """diagnostic_msgs/DiagnosticArray."""
    return {"header": header_msg(header), "status": list(statuses)}
