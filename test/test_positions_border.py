"""Ground positions of road users the image border cuts (SECURITY.md R77).

The camera is PandaSet's front camera (sequence 002, frame 00: K and the lidar-fitted mount of
the developer set's ``ground_truth_3d.json``, copied here so that the test needs no data): 2.11 m
up, the image's bottom row meets the road about 7 m ahead of it, so a car or a pedestrian nearer
than that has its ground contact below the image.
"""
from __future__ import annotations

import numpy as np
import pytest

from sense_perception.core.geometry import estimate_positions, from_dict
from sense_perception.core.geometry.ground import GROUND, SIZE, TOP, normalised_rays
from sense_perception.core.geometry.priors import PRIORS
from test_geometry import NAMES, project_box

PANDASET_FRONT = {
    "K": [[1970.0131, 0.0, 970.0002], [0.0, 1970.0091, 483.2988], [0.0, 0.0, 1.0]],
    "D": [0.0, 0.0, 0.0, 0.0, 0.0], "distortion_model": "plumb_bob", "width": 1920,
    "height": 1080,
    "T_base_link_camera": [[-7.1e-05, -0.003648, 0.999993, 0.862343],
                           [-0.999929, 0.011921, -2.8e-05, -0.060016],
                           [-0.011921, -0.999922, -0.003648, 2.111054],
                           [0.0, 0.0, 0.0, 1.0]]}


def _place(box: list[float], label: str):
    return estimate_positions(from_dict(PANDASET_FRONT, "pandaset"), np.array([box]),
                              np.array([NAMES.index(label)]), NAMES)


@pytest.mark.parametrize("label, truth", [("pedestrian", (5.2, 0.0)), ("car", (6.2, 0.0)),
                                          ("car", (6.5, -1.5))])
@pytest.mark.parametrize("gap_px", [0.0, 2.5, 6.0, 11.0])
def test_a_box_ending_a_few_pixels_above_the_bottom_border_is_no_ground_contact(label, truth,
                                                                                gap_px):
    """A detector's box of an object whose ground contact is below the image ends a few pixels
    short of the bottom row as often as on it (PandaSet frames 00-28: a car 7.8 m away, its box
    3-11 px above the border). Only a box ending within 2 px of the border counted as cut: the
    others were placed where the bottom row meets the road, a pedestrian 4.4 m from base_link at
    8.5 m +- 0.9 m and a car 5.4 m away at 9.5 m, a confident wrong range (squared Mahalanobis
    distance 20-40). An edge within its own noise of the border is the border's now: no ground
    or size cue, the top ray places it, with its wide variance."""
    box = project_box(PANDASET_FRONT, truth, label)
    assert box[3] == 1080.0  # the object's contact is below the image
    box[3] -= gap_px
    pos = _place(box, label)
    assert pos.valid[0] and pos.method[0] & TOP and not pos.method[0] & (GROUND | SIZE)
    true_range = float(np.hypot(*truth))
    assert abs(pos.range_m[0] - true_range) < 0.1 * true_range
    d = pos.xyz[0, :2] - np.array(truth)
    assert d @ np.linalg.solve(pos.covariance[0], d) < 4.0


def test_a_bottom_cut_box_is_never_placed_beyond_where_its_bottom_ray_meets_the_road():
    """The top ray of a box cut at the bottom meets the plane of the label's height prior: a van
    taller than a car's prior, its top edge higher, was placed far beyond the road its box
    shows (PandaSet frames 61-63: 12.5-12.9 m for a car 8.5-9.5 m away). Its contact is below
    the box's bottom row, so its centre is at most that row's ground point plus half its
    footprint."""
    truth = (6.2, 0.0)
    box = project_box(PANDASET_FRONT, truth, "car")
    box[1] -= 120.0  # 0.5 m taller than the prior
    pos = _place(box, "car")
    calib = from_dict(PANDASET_FRONT, "pandaset")
    ray = normalised_rays(calib, np.array([[0.5 * (box[0] + box[2]), box[3]]]))[0]
    camera = calib.T_base_link_camera[:3, 3]
    bound = camera[:2] + ray[:2] * camera[2] / -ray[2]
    bound_range = float(np.hypot(*bound)) + 0.5 * PRIORS["car"].contact_length
    assert pos.valid[0] and pos.method[0] == TOP
    assert pos.range_m[0] <= bound_range + 0.05  # the top ray alone: 49.6 m


@pytest.mark.parametrize("roll_deg", [15.0, 45.0, 80.0, -30.0])
def test_a_camera_rolled_about_its_axis_is_refused_not_placed_metres_off(roll_deg):
    """A camera rolled about its viewing direction (up to 89.9 degrees passed the checks, as a
    mount_roll or from /tf_static) was placed as if level: the box's bottom centre taken for the
    object's contact, along a row that is no longer level. Rolled 15 degrees, PandaSet's front
    camera put cars and pedestrians 8-45 m away beyond 3 sigma; 45 degrees put a pedestrian 30 m
    away at 46 m, 80 degrees (a portrait mount) at 110 m. A roll beyond 5 degrees is refused by
    name now; within it, every placement stays inside its covariance (squared Mahalanobis
    distance under 6; 4.3 at 5 degrees)."""
    import math

    from sense_perception.core.geometry import CalibrationError, mount_transform
    from sense_perception.ros.settings import ObjectDetectorSettings
    from sense_perception.errors import ConfigError

    rolled = {**PANDASET_FRONT, "T_base_link_camera": mount_transform(
        2.1, 0.01, math.radians(roll_deg)).tolist()}
    with pytest.raises(CalibrationError, match=rf"rolls the camera {abs(roll_deg):.1f} degrees "
                       r"about its viewing direction .* level within 5 degrees"):
        from_dict(rolled, "pandaset")
    with pytest.raises(ConfigError, match=r"rolls the camera"):
        ObjectDetectorSettings(mount_height=1.5, mount_roll=math.radians(roll_deg)).validate()

    level = {**PANDASET_FRONT, "T_base_link_camera": mount_transform(2.1, 0.01,
                                                                    math.radians(4.9)).tolist()}
    for label in ("pedestrian", "car"):
        for truth in [(8.0, -2.0), (12.0, 3.0), (20.0, 0.0), (30.0, -3.0), (45.0, 5.0)]:
            box = project_box(level, truth, label)
            pos = estimate_positions(from_dict(level, "level"), np.array([box]),
                                     np.array([NAMES.index(label)]), NAMES)
            d = pos.xyz[0, :2] - np.array(truth)
            assert d @ np.linalg.solve(pos.covariance[0], d) < 6.0, (label, truth)


def test_a_road_user_whose_feet_the_bonnet_hides_is_not_placed_at_the_bonnet_edge():
    """A camera that sees the ego car's bonnet has it in an ignore region; a pedestrian right in
    front of the car shows above it, its feet hidden, its box ending on the bonnet's edge. That
    edge was taken for the feet: the ground ray placed them where the bonnet edge's row meets the
    road, 11.1 m +- 1.0 m from base_link for a pedestrian 6 m away (squared Mahalanobis distance
    25), in detections_3d and Autoware's objects. A box whose bottom lies on an ignore region
    is cut there as at the image border now; one standing clear of it keeps its ground ray."""
    from types import SimpleNamespace

    from sense_perception.core.detection.ignore_regions import (IgnoreRegions,
                                                                IgnoreRegionSettings)
    from sense_perception.core.exterior_steps import ExteriorSteps
    from sense_perception.core.geometry.positioner import CameraPositions
    from sense_perception.core.types import Detections, Header

    topic = "/camera/front/image_raw"
    bonnet = IgnoreRegions(IgnoreRegionSettings([f"{topic}: 0,930 1920,930 1920,1080 0,1080"]))
    steps = ExteriorSteps(SimpleNamespace(label_names=list(NAMES), min_score=0.3),
                          positions=CameraPositions(from_dict(PANDASET_FRONT, "pandaset")),
                          ignore=bonnet)
    hidden, clear = (6.0, 0.5), (14.0, -2.0)
    boxes = [project_box(PANDASET_FRONT, hidden, "pedestrian"),
             project_box(PANDASET_FRONT, clear, "pedestrian")]
    assert boxes[0][3] > 930 and boxes[1][3] < 900  # the feet behind the bonnet; in view
    boxes[0][3] = 928.0  # the box ends where the bonnet begins
    frame = steps.frame(topic, Header(1, 0, "front"), Detections(
        np.array(boxes, np.float32), np.array([0.9, 0.9], np.float32),
        np.zeros(2, np.int32)), (1920, 1080))
    pos = frame.positions
    assert pos is not None and pos.valid.all()
    assert pos.method[0] & TOP and not pos.method[0] & (GROUND | SIZE)
    assert pos.method[1] & GROUND
    for k, truth in enumerate((hidden, clear)):
        d = pos.xyz[k, :2] - np.array(truth)
        assert abs(pos.range_m[k] - np.hypot(*truth)) < 0.1 * np.hypot(*truth), k
        assert d @ np.linalg.solve(pos.covariance[k], d) < 4.0, k
