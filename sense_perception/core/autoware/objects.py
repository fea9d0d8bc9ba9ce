"""A camera frame's road users in 3-D for Autoware: ``autoware_perception_msgs/DetectedObjects``.

One message per camera image (``autoware.objects_topic``), header stamp of the image, frame
``base_link``. One DetectedObject per detection that has a ground position
(:mod:`..geometry.ground`) and an Autoware class:

* ``existence_probability``: the detector's score (calibrated per model and label where the
  detector calibrates scores), ``classification``: ``[{label, probability 1.0}]``, as in the ROIs
  (:mod:`.rois`);
* ``kinematics`` (:func:`object_states`): ``pose_with_covariance`` at the ground point raised by
  half the prior height (the object's centre), identity orientation, the 6x6 covariance of
  ``<ns>/detections_3d`` (the estimate's (x, y) block); ``has_position_covariance`` true;
  ``orientation_availability`` UNAVAILABLE (headings are not measured); the twist
  (:mod:`..tracking.ground_motion`) with ``has_twist`` and ``has_twist_covariance`` true only
  while the track's velocity is steady, else both false and the twist left zero;
* ``shape``: CYLINDER (x = y = diameter) for pedestrians, BOUNDING_BOX (x = length along base_link
  x, y = width, z = height) for vehicles, bicycles and motorcycles, as Autoware's shape_estimation
  chooses per label; sizes from the label's prior (:mod:`..geometry.priors`).

The twist is the object's velocity **relative to base_link** (the ego car's motion is not
subtracted: no odometry is read). Autoware expresses a DetectedObject's twist in the object's own
frame; with the orientation unavailable that frame is the identity orientation in base_link, so
(vx, vy) are base_link's axes. Autoware's multi_object_tracker reads it as the velocity over the
ground, so the outputs hand no velocities here (``motion`` None: ``has_twist`` false) unless
``autoware.twist: base_link`` says base_link stands still
(:mod:`sense_perception.core.output.frame_outputs`, R67).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..geometry.ground import GroundPositions
from ..geometry.priors import prior_table
from ..output.detections_3d import BASE_FRAME, covariances_6x6, pose_covariances
from ..output.messages import header_msg
from ..tracking.ground_motion import GroundVelocities
from ..types import Detections, Header
from .rois import PEDESTRIAN, label_lookup

DETECTED_OBJECTS = "autoware_perception_msgs/msg/DetectedObjects"

#: autoware_perception_msgs/Shape types and DetectedObjectKinematics orientation availability.
BOUNDING_BOX, CYLINDER, POLYGON = 0, 1, 2
UNAVAILABLE, SIGN_UNKNOWN, AVAILABLE = 0, 1, 2

# Twist covariance beyond the measured (vx, vy) block: road users move in the road plane and
# barely roll or pitch; the yaw rate is not measured.
_VZ_VAR = 0.1 ** 2
_TILT_RATE_VAR = 0.1 ** 2
_YAW_RATE_VAR = 1.0 ** 2
_IDENTITY = {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}


def object_states(detections: Detections, label_names: Sequence[str], positions: GroundPositions,
                  motion: GroundVelocities | None, index: np.ndarray,
                  classes: np.ndarray) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(kinematics, shape)`` message dicts of the placed detections ``index``.

    Args:
        detections, label_names: the frame's detections.
        positions: their ground positions (``positions.valid[index]`` must all be true).
        motion: their ground velocities (None: no twist).
        index: the detections to describe.
        classes: their Autoware classes (one per ``index``), for the shape.
    """
    index = np.asarray(index, np.int64)
    if not index.size:
        return []
    prior = prior_table(tuple(label_names))[detections.labels[index].astype(np.int64)]
    height, height_sd, length, width = prior[:, 1], prior[:, 2], prior[:, 3], prior[:, 4]
    xy = positions.xyz[index, :2].tolist()
    z = (0.5 * height).tolist()
    pose_cov = pose_covariances(positions, index, height_sd)
    cylinder = np.asarray(classes) == PEDESTRIAN
    dims = np.stack([np.where(cylinder, width, length), width, height], 1).tolist()
    shapes = np.where(cylinder, CYLINDER, BOUNDING_BOX).tolist()
    if motion is not None:
        steady = motion.steady[index].tolist()
        velocity = np.nan_to_num(motion.velocity[index]).tolist()
        twist_rows = covariances_6x6(np.nan_to_num(motion.covariance[index]), _VZ_VAR,
                                     _TILT_RATE_VAR, _YAW_RATE_VAR)
    else:
        steady = [False] * index.size
    out = []
    for k in range(index.size):
        kinematics: dict[str, Any] = {
            "pose_with_covariance": {
                "pose": {"position": {"x": xy[k][0], "y": xy[k][1], "z": z[k]},
                         "orientation": dict(_IDENTITY)},
                "covariance": pose_cov[k]},
            "has_position_covariance": True,
            "orientation_availability": UNAVAILABLE,
            "has_twist": steady[k],
            "has_twist_covariance": steady[k],
        }
        if steady[k]:
            kinematics["twist_with_covariance"] = {
                "twist": {"linear": {"x": velocity[k][0], "y": velocity[k][1], "z": 0.0},
                          "angular": {"x": 0.0, "y": 0.0, "z": 0.0}},
                "covariance": twist_rows[k]}
        shape = {"type": shapes[k], "dimensions": dict(zip("xyz", dims[k], strict=True))}
        out.append((kinematics, shape))
    return out


def detected_objects(header: Header, detections: Detections, label_names: Sequence[str],
                     positions: GroundPositions, motion: GroundVelocities | None = None,
                     other_labels: str = "drop", frame_id: str = BASE_FRAME) -> dict[str, Any]:
    """autoware_perception_msgs/DetectedObjects (message-shaped dict) of the placed detections
    with an Autoware class (see the module doc).

    Args:
        header: the image's header (its stamp is kept; the frame becomes ``frame_id``).
        detections, label_names: the frame's detections.
        positions: their ground positions.
        motion: their ground velocities (None: no twist).
        other_labels: ``drop`` or ``unknown`` for labels with no Autoware class (as the ROIs).
        frame_id: the vehicle frame the positions are in.
    """
    head = header_msg(Header(header.sec, header.nanosec, frame_id))
    if len(detections) == 0:
        return {"header": head, "objects": []}
    classes = label_lookup(label_names, other_labels)[detections.labels]
    keep = np.flatnonzero(positions.valid & (classes >= 0))
    labels = classes[keep].tolist()
    scores = detections.scores[keep].astype(np.float64).tolist()
    states = object_states(detections, label_names, positions, motion, keep, classes[keep])
    return {"header": head, "objects": [
        {"existence_probability": score, "classification": [{"label": label, "probability": 1.0}],
         "kinematics": kinematics, "shape": shape}
        for score, label, (kinematics, shape) in zip(scores, labels, states, strict=True)]}


__all__ = ["AVAILABLE", "BOUNDING_BOX", "CYLINDER", "DETECTED_OBJECTS", "POLYGON", "SIGN_UNKNOWN",
           "UNAVAILABLE", "detected_objects", "object_states"]
