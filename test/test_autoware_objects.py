"""Autoware's DetectedObjects (core/autoware/objects.py) and the kinematics inside the ROIs, built
from a scene constructed here (a pedestrian crossing, a parked car, a traffic light) through the
real tracker, positioner and velocity filter; decoded with the published layout of the messages
(test/autoware_layout.py), not the project's own definitions."""
from __future__ import annotations

import numpy as np
import pytest
from autoware_layout import PUBLISHED, published_typestore

from sense_perception.core.autoware.objects import (BOUNDING_BOX, CYLINDER, DETECTED_OBJECTS,
                                                    detected_objects)
from sense_perception.core.autoware.rois import (DETECTED_OBJECTS_WITH_FEATURE, PEDESTRIAN, CAR,
                                                 UNKNOWN, AutowareConfig,
                                                 detected_objects_with_feature)
from sense_perception.core.geometry import estimate_positions, from_dict
from sense_perception.core.output.frame_outputs import (EXTERIOR_OUTPUTS, ExteriorFrame,
                                                        enabled_outputs, frame_messages, switches)
from sense_perception.core.tracking.tracker import TrackerBank
from sense_perception.core.types import Detections, Header
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore
from sense_perception.ros.settings import ObjectDetectorSettings
from test_geometry import NAMES, make_calibration, project_box

CALIB = make_calibration(model="plumb_bob", D=[-0.1, 0.01, 0.0, 0.0, 0.0])
LIGHT_BOX = [600.0, 100.0, 620.0, 150.0]


def _scene(frames: int):
    """``frames`` frames at 10 Hz of a pedestrian crossing 12 m ahead at 1.5 m/s, a car parked at
    (20, 3) and a traffic light; returns the last frame's header, detections, positions, motion."""
    rng = np.random.default_rng(3)
    calib = from_dict(CALIB, "test")
    bank = TrackerBank(label_names=NAMES)
    labels = np.array([NAMES.index(n) for n in ("pedestrian", "car", "traffic_light")], np.int32)
    for k in range(frames):
        t = k / 10.0
        boxes = np.array([project_box(CALIB, (12.0, -3.0 + 1.5 * t), "pedestrian"),
                          project_box(CALIB, (20.0, 3.0), "car"), LIGHT_BOX])
        boxes += rng.normal(0.0, 1.0, boxes.shape)
        header = Header(1000 + k // 10, (k % 10) * 100_000_000, "front_camera_optical")
        dets = bank.update("cam", Detections(boxes.astype(np.float32),
                                             np.array([0.9, 0.8, 0.7], np.float32), labels),
                           header.seconds)
        placed = estimate_positions(calib, dets.boxes, dets.labels, NAMES)
        motion = bank.velocities("cam", dets, placed, header.seconds)
    return header, dets, placed, motion


def _decode(msgtype: str, message: dict):
    store = make_typestore()
    raw = store.serialize_cdr(MessageConverter(store)(msgtype, message), msgtype)
    return published_typestore().deserialize_cdr(raw, msgtype)


def test_detected_objects_of_placed_road_users_with_steady_twists():
    header, dets, placed, motion = _scene(30)
    assert motion.steady[:2].all()
    msg = detected_objects(header, dets, NAMES, placed, motion)
    assert msg["header"] == {"stamp": {"sec": header.sec, "nanosec": header.nanosec},
                             "frame_id": "base_link"}
    decoded = _decode(DETECTED_OBJECTS, msg)
    assert DETECTED_OBJECTS in PUBLISHED
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == (header.sec, header.nanosec)
    person, car = decoded.objects  # the traffic light has no Autoware class (and no position)
    assert [o.classification[0].label for o in (person, car)] == [PEDESTRIAN, CAR]
    assert [o.classification[0].probability for o in (person, car)] == [1.0, 1.0]
    assert [o.existence_probability for o in (person, car)] == pytest.approx([0.9, 0.8])
    for obj, k in ((person, 0), (car, 1)):
        kin = obj.kinematics
        pose = kin.pose_with_covariance.pose
        assert (pose.position.x, pose.position.y) == pytest.approx(tuple(placed.xyz[k, :2]))
        cov = kin.pose_with_covariance.covariance.reshape(6, 6)
        np.testing.assert_allclose(cov[:2, :2], placed.covariance[k], rtol=1e-12)
        assert kin.has_position_covariance and kin.orientation_availability == 0
        assert (pose.orientation.x, pose.orientation.y, pose.orientation.z,
                pose.orientation.w) == (0.0, 0.0, 0.0, 1.0)
        assert kin.has_twist and kin.has_twist_covariance
        twist = kin.twist_with_covariance
        np.testing.assert_allclose(twist.covariance.reshape(6, 6)[:2, :2], motion.covariance[k])
    assert person.kinematics.pose_with_covariance.pose.position.z == pytest.approx(0.85)
    assert (person.kinematics.twist_with_covariance.twist.linear.x,
            person.kinematics.twist_with_covariance.twist.linear.y) == pytest.approx((0.0, 1.5),
                                                                                     abs=0.3)
    assert abs(car.kinematics.twist_with_covariance.twist.linear.x) < 0.3
    assert person.shape.type == CYLINDER
    assert (person.shape.dimensions.x, person.shape.dimensions.y,
            person.shape.dimensions.z) == pytest.approx((0.5, 0.5, 1.7))
    assert car.shape.type == BOUNDING_BOX
    assert (car.shape.dimensions.x, car.shape.dimensions.y,
            car.shape.dimensions.z) == pytest.approx((4.6, 1.85, 1.55))


def test_no_twist_before_the_velocity_is_steady():
    header, dets, placed, motion = _scene(3)  # tracks confirmed on frame 2: two updates at most
    assert not motion.steady.any()
    decoded = _decode(DETECTED_OBJECTS, detected_objects(header, dets, NAMES, placed, motion))
    assert len(decoded.objects) == 2
    for obj in decoded.objects:
        assert not obj.kinematics.has_twist and not obj.kinematics.has_twist_covariance
        assert obj.kinematics.twist_with_covariance.twist.linear.y == 0.0
        assert obj.kinematics.has_position_covariance


def test_rois_carry_the_same_kinematics_when_placed():
    header, dets, placed, motion = _scene(30)
    objects = detected_objects(header, dets, NAMES, placed, motion)["objects"]
    rois = detected_objects_with_feature(header, dets, NAMES, (1280, 720), "unknown", placed, motion)
    person, car, light = (f["object"] for f in rois["feature_objects"])
    assert person["kinematics"] == objects[0]["kinematics"] and person["shape"] == objects[0]["shape"]
    assert car["kinematics"] == objects[1]["kinematics"]
    assert light["classification"] == [{"label": UNKNOWN, "probability": 1.0}]
    assert "kinematics" not in light and "shape" not in light  # not placed: defaults
    decoded = _decode(DETECTED_OBJECTS_WITH_FEATURE, rois)
    assert decoded.header.frame_id == "front_camera_optical"  # the ROIs keep the image's frame
    assert decoded.feature_objects[0].object.kinematics.has_position_covariance
    assert decoded.feature_objects[0].object.shape.type == CYLINDER
    assert not decoded.feature_objects[2].object.kinematics.has_position_covariance
    # without a calibration the ROIs are as before: no kinematics at all
    bare = detected_objects_with_feature(header, dets, NAMES, (1280, 720))
    assert all(set(f["object"]) == {"existence_probability", "classification"}
               for f in bare["feature_objects"])


def test_the_objects_row_needs_its_switch_and_a_calibration():
    header, dets, placed, motion = _scene(8)
    autoware = AutowareConfig(objects_topic="/perception/object_recognition/detection/camera{index}/objects")
    on = switches(ObjectDetectorSettings(), autoware=autoware)
    rows = [r for r in enabled_outputs(EXTERIOR_OUTPUTS, on, live=False) if r.name == "objects"]
    assert rows and not rows[0].keep_last_one
    frame = ExteriorFrame(header, dets, NAMES, 0.3, (1280, 720), autoware=autoware,
                          positions=placed, motion=motion)
    [message] = frame_messages(rows, "/sensing/camera/camera2", frame, switches=on)
    assert message.topic == "/perception/object_recognition/detection/camera2/objects"
    assert len(message.message["objects"]) == 2
    unplaced = ExteriorFrame(header, dets, NAMES, 0.3, (1280, 720), autoware=autoware)
    assert frame_messages(rows, "/sensing/camera/camera2", unplaced, switches=on) == []
    off = switches(ObjectDetectorSettings(), autoware=AutowareConfig())
    assert not [r for r in enabled_outputs(EXTERIOR_OUTPUTS, off) if r.name == "objects"]


def test_autowares_outputs_carry_no_ego_relative_twist_unless_asked():
    """R67: the DetectedObjects and the ROIs carried the tracked velocity with has_twist true, but
    it is relative to the ego car, while Autoware's multi_object_tracker reads a twist as the
    velocity over the ground (its trackers take their speed from it): driving at 10 m/s, a parked
    car was handed to it moving backwards at 10 m/s. has_twist is false now unless autoware.twist:
    base_link (a base_link standing still) asks for the velocity."""
    rng = np.random.default_rng(5)
    calib = from_dict(CALIB, "test")
    bank = TrackerBank(label_names=NAMES)
    labels = np.array([NAMES.index("car")], np.int32)
    for k in range(30):  # the ego car drives at 10 m/s past a car parked 3 m to the left
        boxes = np.array([project_box(CALIB, (40.0 - 1.0 * k, 3.0), "car")])
        boxes += rng.normal(0.0, 0.5, boxes.shape)
        header = Header(1000 + k // 10, (k % 10) * 100_000_000, "front_camera_optical")
        dets = bank.update("cam", Detections(boxes.astype(np.float32), np.array([0.9], np.float32),
                                             labels), header.seconds)
        placed = estimate_positions(calib, dets.boxes, dets.labels, NAMES)
        motion = bank.velocities("cam", dets, placed, header.seconds)
    assert motion.steady[0] and motion.velocity[0, 0] < -8.0  # relative: the parked car "moves"
    topics = {"objects_topic": "/perception/object_recognition/detection/camera{index}/objects",
              "rois_topic": "/perception/object_recognition/detection/rois{index}"}
    for twist, expected in (("none", False), ("base_link", True)):
        autoware = AutowareConfig(**topics, twist=twist)
        on = switches(ObjectDetectorSettings(), autoware=autoware)
        rows = [r for r in enabled_outputs(EXTERIOR_OUTPUTS, on, live=False)
                if r.name in ("objects", "rois")]
        frame = ExteriorFrame(header, dets, NAMES, 0.3, (1280, 720), autoware=autoware,
                              positions=placed, motion=motion)
        messages = frame_messages(rows, "/sensing/camera/camera0", frame, switches=on)
        assert len(messages) == 2
        for message in messages:
            msgtype = DETECTED_OBJECTS if message.topic.endswith("objects") else \
                DETECTED_OBJECTS_WITH_FEATURE
            decoded = _decode(msgtype, message.message)
            objects = decoded.objects if msgtype == DETECTED_OBJECTS else \
                [f.object for f in decoded.feature_objects]
            [car] = objects
            kin = car.kinematics
            assert kin.has_twist is expected and kin.has_twist_covariance is expected
            assert kin.has_position_covariance  # the position is still there
            linear = kin.twist_with_covariance.twist.linear
            assert (linear.x < -8.0) if expected else (linear.x, linear.y) == (0.0, 0.0)
    with pytest.raises(ValueError, match="autoware.twist is 'odom'; valid: none, base_link"):
        AutowareConfig(twist="odom")
