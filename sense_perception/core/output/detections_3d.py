"""``<ns>/detections_3d``: vision_msgs/Detection3DArray of the road users placed on the road.

Frame ``base_link``, stamp of the image. One Detection3D per detection that has a ground position
(road users; :mod:`..geometry.ground`): the class and score as in the 2-D output, the track id in
``id`` ("" when untracked), a box of the label's prior size (length along base_link x: headings
are not measured, road-aligned is assumed) centred half its height above the ground point, and the
hypothesis pose at the same point with the 6x6 covariance: the estimate's (x, y) block, z from the
height prior's spread, roll and pitch small, yaw unknown (the variance of a uniform heading).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..geometry.ground import GroundPositions
from ..geometry.priors import prior_table
from ..types import Detections, Header
from .messages import header_msg

BASE_FRAME = "base_link"
_TILT_VAR = math.radians(5.0) ** 2  # roll / pitch of a road user relative to the road
_YAW_VAR = math.pi ** 2 / 3.0  # variance of a heading uniform over (-pi, pi]


def covariances_6x6(xy: np.ndarray, z_var: Any, tilt_var: float,
                    yaw_var: float) -> list[list[float]]:
    """Row-major 6x6 covariances (x, y, z, roll, pitch, yaw; or their rates) of N estimates: the
    measured (N, 2, 2) ``xy`` block, ``z_var`` (one or N), ``tilt_var`` on roll and pitch and
    ``yaw_var`` on yaw, uncorrelated."""
    out = np.zeros((len(xy), 36))
    out[:, 0], out[:, 1], out[:, 6], out[:, 7] = xy[:, 0, 0], xy[:, 0, 1], xy[:, 1, 0], xy[:, 1, 1]
    out[:, 14] = z_var
    out[:, 21] = out[:, 28] = tilt_var
    out[:, 35] = yaw_var
    return out.tolist()


def pose_covariances(positions: GroundPositions, keep: np.ndarray,
                     height_sd: np.ndarray) -> list[list[float]]:
    """Row-major 6x6 pose covariances (x, y, z, roll, pitch, yaw) of the detections ``keep``: the
    estimate's (x, y) block, z from the height prior's spread (``height_sd``, one per ``keep``),
    roll and pitch small, yaw unknown."""
    return covariances_6x6(positions.covariance[keep],
                           (0.5 * np.asarray(height_sd, np.float64)) ** 2, _TILT_VAR, _YAW_VAR)


def detection3d_array(header: Header, detections: Detections, label_names: Sequence[str],
                      positions: GroundPositions, frame_id: str = BASE_FRAME) -> dict[str, Any]:
    """vision_msgs/Detection3DArray (message-shaped dict) of the placed detections."""
    head = header_msg(Header(header.sec, header.nanosec, frame_id))
    keep = np.flatnonzero(positions.valid)
    if not len(keep):
        return {"header": head, "detections": []}
    prior = prior_table(tuple(label_names))[detections.labels[keep].astype(np.int64)]
    height, height_sd, length, width = prior[:, 1], prior[:, 2], prior[:, 3], prior[:, 4]
    xy = positions.xyz[keep, :2].tolist()
    z = (0.5 * height).tolist()
    covariances = pose_covariances(positions, keep, height_sd)
    sizes = np.stack([length, width, height], 1).tolist()
    scores = detections.scores[keep].astype(np.float64).tolist()
    labels = [label_names[i] for i in detections.labels[keep].tolist()]
    ids = ["" if t < 0 else str(t) for t in detections.track_ids[keep].tolist()]
    out = []
    for k in range(len(keep)):
        covariance = covariances[k]
        position = {"x": xy[k][0], "y": xy[k][1], "z": z[k]}
        orientation = {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}
        out.append({
            "header": head,
            "results": [{"hypothesis": {"class_id": labels[k], "score": scores[k]},
                         "pose": {"pose": {"position": dict(position),
                                           "orientation": dict(orientation)},
                                  "covariance": covariance}}],
            "bbox": {"center": {"position": dict(position), "orientation": dict(orientation)},
                     "size": {"x": sizes[k][0], "y": sizes[k][1], "z": sizes[k][2]}},
            "id": ids[k],
        })
    return {"header": head, "detections": out}


def range_captions(detections: Detections, label_names: Sequence[str],
                   positions: GroundPositions | None) -> list[str]:
    """Captions with the range where there is one: ``"pedestrian 0.71 #4 · 14 m"``."""
    from .annotate import caption, label_name

    n = len(detections)
    ranges = positions.range_m.tolist() if positions is not None else [math.nan] * n
    return [caption(label_name(label, label_names), score, track)
            + (f" · {r:.0f} m" if math.isfinite(r) else "")
            for label, score, track, r in zip(detections.labels.tolist(),
                                              detections.scores.tolist(),
                                              detections.track_ids.tolist(), ranges, strict=True)]
