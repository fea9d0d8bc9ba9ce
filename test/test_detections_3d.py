"""The camera mount from /tf_static, and vision_msgs/Detection3DArray through the bag typestore."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sense_perception.core.geometry import estimate_positions, from_dict, mount_transform
from sense_perception.core.geometry.calibration import CalibrationError
from sense_perception.core.geometry.tf_static import StaticTransforms, mount_from_tf
from sense_perception.core.output.detections_3d import detection3d_array, range_captions
from sense_perception.core.types import Detections, Header
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore
from test_geometry import NAMES, make_calibration, project_box

# REP-103's rotation from a camera_link (x forward) to its optical frame (z forward, y down).
OPTICAL = {"x": -0.5, "y": 0.5, "z": -0.5, "w": 0.5}


def _stamped(parent: str, child: str, xyz, quaternion) -> dict:
    return {"header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": parent},
            "child_frame_id": child,
            "transform": {"translation": dict(zip("xyz", xyz, strict=True)),
                          "rotation": quaternion}}


def _pitch_quaternion(pitch: float) -> dict:
    return {"x": 0.0, "y": math.sin(pitch / 2), "z": 0.0, "w": math.cos(pitch / 2)}


def test_mount_from_a_chain_of_static_transforms():
    """base_link -> camera_link (1.5 m up, pitched 0.05 rad down) -> optical frame: the same
    T_base_link_camera as the mount given as parameters."""
    messages = [
        {"transforms": [_stamped("base_link", "camera_link", (0.0, 0.0, 1.5),
                                 _pitch_quaternion(0.05))]},
        # another publisher, as objects (rclpy / rosbags messages), with tf's optional slash
        SimpleNamespace(transforms=[SimpleNamespace(
            header=SimpleNamespace(frame_id="/camera_link"), child_frame_id="camera_optical",
            transform=SimpleNamespace(translation=SimpleNamespace(x=0.0, y=0.0, z=0.0),
                                      rotation=SimpleNamespace(**OPTICAL)))]),
    ]
    T = mount_from_tf(messages, "camera_optical")
    np.testing.assert_allclose(T, mount_transform(1.5, pitch=0.05), atol=1e-12)
    tree = StaticTransforms()
    for m in messages:
        tree.add(m)
    np.testing.assert_allclose(tree.lookup("camera_optical", "base_link"), np.linalg.inv(T),
                               atol=1e-12)
    assert tree.frames == ["base_link", "camera_link", "camera_optical"]
    from_dict({**make_calibration(), "T_base_link_camera": T.tolist()}, "tf")  # a valid mount


def test_missing_chain_and_bad_quaternion_are_named():
    tree = StaticTransforms()
    tree.add({"transforms": [_stamped("base_link", "lidar", (1, 0, 2), OPTICAL)]})
    with pytest.raises(CalibrationError, match="no chain of transforms from base_link to "
                                               "cam_front .frames known: base_link, lidar"):
        tree.lookup("base_link", "cam_front")
    with pytest.raises(CalibrationError, match="zero or non-finite rotation quaternion"):
        tree.add({"transforms": [_stamped("base_link", "x", (0, 0, 0),
                                          {"x": 0, "y": 0, "z": 0, "w": 0})]})


def test_a_bad_transform_is_refused_by_name_and_the_others_of_its_message_are_kept():
    tree = StaticTransforms()
    with pytest.raises(CalibrationError, match="base_link -> lidar: a /tf_static transform has a "
                                               "zero or non-finite"):
        tree.add({"transforms": [_stamped("base_link", "lidar", (float("nan"), 0, 2), OPTICAL),
                                 _stamped("base_link", "cam_front", (1, 0, 1.5), OPTICAL)]})
    assert tree.frames == ["base_link", "cam_front"]  # the camera after the bad one is kept
    assert tree.lookup("base_link", "cam_front")[2, 3] == 1.5
    with pytest.raises(CalibrationError, match=r"frames known: base_link, cam_front; refused: "
                                               r"base_link -> lidar \(a /tf_static transform"):
        tree.lookup("base_link", "lidar")
    tree.add({"transforms": [_stamped("base_link", "lidar", (1, 0, 2), OPTICAL)]})  # fixed later
    assert tree.lookup("base_link", "lidar")[0, 3] == 1.0


def test_detection3d_array_round_trips_through_the_typestore():
    calib_doc = make_calibration()
    calib = from_dict(calib_doc, "test")
    boxes = np.array([project_box(calib_doc, (12.0, 2.0), "pedestrian"),
                      project_box(calib_doc, (25.0, -3.0), "car"), [600, 100, 620, 140]],
                     np.float32)
    labels = np.array([NAMES.index("pedestrian"), NAMES.index("car"),
                       NAMES.index("traffic_light")], np.int32)
    dets = Detections(boxes, np.array([0.71, 0.9, 0.8], np.float32), labels,
                      np.array([4, -1, 7], np.int64))
    positions = estimate_positions(calib, boxes, labels, NAMES)
    msg = detection3d_array(Header(12, 34, "camera_optical"), dets, NAMES, positions)
    assert msg["header"] == {"stamp": {"sec": 12, "nanosec": 34}, "frame_id": "base_link"}
    assert [d["id"] for d in msg["detections"]] == ["4", ""]  # the traffic light has no place
    store = make_typestore()
    name = "vision_msgs/msg/Detection3DArray"
    back = store.deserialize_cdr(store.serialize_cdr(MessageConverter(store)(name, msg), name), name)
    first = back.detections[0]
    assert first.results[0].hypothesis.class_id == "pedestrian"
    assert first.bbox.center.position.x == pytest.approx(12.0, rel=0.05)
    assert first.bbox.center.position.z == pytest.approx(0.85)  # half the height prior
    assert (first.bbox.size.x, first.bbox.size.z) == (0.5, 1.7)
    cov = np.asarray(first.results[0].pose.covariance).reshape(6, 6)
    np.testing.assert_allclose(cov[:2, :2], positions.covariance[0])
    assert cov[5, 5] == pytest.approx(math.pi ** 2 / 3)  # heading unknown
    assert back.detections[1].bbox.size.x == 4.6
    assert range_captions(dets, NAMES, positions) == [
        f"pedestrian 0.71 #4 · {positions.range_m[0]:.0f} m",
        f"car 0.90 · {positions.range_m[1]:.0f} m", "traffic_light 0.80 #7"]
    assert range_captions(dets, NAMES, None)[1] == "car 0.90"


def test_frame_with_positions_publishes_detections_3d_and_ranged_captions():
    from dataclasses import replace

    from sense_perception.core.output.frame_outputs import (EXTERIOR_OUTPUTS, ExteriorFrame,
                                                            frame_messages)

    calib_doc = make_calibration()
    boxes = np.array([project_box(calib_doc, (14.0, 1.0), "pedestrian")], np.float32)
    labels = np.array([NAMES.index("pedestrian")], np.int32)
    dets = Detections(boxes, np.array([0.71], np.float32), labels)
    positions = estimate_positions(from_dict(calib_doc, "t"), boxes, labels, NAMES)
    frame = ExteriorFrame(Header(1, 2, "cam"), dets, NAMES, 0.3, (1280, 720),
                          np.zeros((720, 1280, 3), np.uint8), positions=positions)
    out = {m.output.name: m.message for m in frame_messages(EXTERIOR_OUTPUTS, "/cam", frame)}
    assert out["detections_3d"]["header"]["frame_id"] == "base_link"
    assert out["detections_3d"]["detections"][0]["results"][0]["hypothesis"]["class_id"] == \
        "pedestrian"
    assert out["annotations"]["texts"][0]["text"] == "pedestrian 0.71 · 14 m"
    assert out["detections_image"]["width"] == 1280
    unplaced = {m.output.name for m in frame_messages(EXTERIOR_OUTPUTS, "/cam",
                                                      replace(frame, positions=None))}
    assert "detections_3d" not in unplaced and "detections" in unplaced


def test_node_mount_parameters():
    from sense_perception.errors import ConfigError
    from sense_perception.ros.settings import ObjectDetectorSettings

    s = ObjectDetectorSettings(camera_topics=["/a/image_raw", "/b/image_raw/compressed"])
    s.validate()
    assert s.mount() is None  # from /tf_static
    assert s.info_topics() == ["/a/camera_info", "/b/camera_info"]
    s = ObjectDetectorSettings(camera_topics=["/a/image_raw", "/b/image"],
                               camera_info_topics=["", "/b/info"])
    s.validate()
    assert s.info_topics() == ["", "/b/info"]
    # the mount parameters are one camera's (with several cameras they are refused: R57)
    s = ObjectDetectorSettings(camera_topics=["/b/image"], mount_height=1.3, mount_pitch=0.04)
    s.validate()
    np.testing.assert_allclose(s.mount(), mount_transform(1.3, 0.04))
    T = mount_transform(1.6, 0.01)
    assert np.allclose(ObjectDetectorSettings(mount_transform=T.ravel().tolist()).mount(), T)
    for bad, words in [
        (ObjectDetectorSettings(mount_transform=[1.0, 2.0]), "needs 16 numbers"),
        (ObjectDetectorSettings(mount_transform=T.ravel().tolist(), mount_height=1.0),
         "both give the camera mount"),
        (ObjectDetectorSettings(camera_info_topics=["a", "b"]), "camera_info_topics' needs 1"),
    ]:
        with pytest.raises(ConfigError, match=words):
            bad.validate()
    inverse = ObjectDetectorSettings(mount_transform=np.linalg.inv(T).ravel().tolist())
    with pytest.raises(ConfigError, match="parameter 'mount_transform'.*not its inverse"):
        inverse.mount()


def test_positioner_says_why_and_counts():
    from sense_perception.core.geometry.positioner import CameraPositions

    calib_doc = make_calibration()
    boxes = np.array([project_box(calib_doc, (14.0, 1.0), "pedestrian")])
    labels = np.array([0])
    info = {"k": np.ravel(calib_doc["K"]).tolist(), "d": [], "distortion_model": "",
            "width": 1280, "height": 720, "header": SimpleNamespace(frame_id="cam_optical")}
    info_obj = SimpleNamespace(**info)
    p = CameraPositions()
    p.camera_info_topic("/cam/image", "/cam/camera_info")
    assert p.positions("/cam/image", "cam_optical", 1280, 720, boxes, labels, NAMES) is None
    assert "no sensor_msgs/CameraInfo on /cam/camera_info" in p.reason("/cam/image")
    p.camera_info("/cam/image", info_obj, "/cam/camera_info")
    assert p.positions("/cam/image", "cam_optical", 1280, 720, boxes, labels, NAMES) is None
    assert "no chain of transforms from base_link to cam_optical" in p.reason("/cam/image")
    T = mount_transform(1.5, 0.02)
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    p.tf_static({"transforms": [_stamped("base_link", "cam_optical", T[:3, 3],
                                         dict(zip("xyzw", q, strict=True)))]})
    placed = p.positions("/cam/image", "cam_optical", 1280, 720, boxes, labels, NAMES)
    assert placed is not None and placed.range_m[0] == pytest.approx(np.hypot(14, 1), rel=0.05)
    summary = p.summary("/cam/image")
    # the two frames before the calibration was whole are counted with their reasons
    assert summary.pop("frames_without_positions") == {
        "no calibration: no sensor_msgs/CameraInfo on /cam/camera_info yet and no calibration "
        "file (replay: --calibration TOPIC=FILE)": 1,
        "no calibration: /tf_static has no chain of transforms from base_link to cam_optical "
        "(frames known: none); fix: publish the camera's static transform "
        "(robot_state_publisher or static_transform_publisher, parent base_link, child the "
        "images' frame_id), or set the mount as parameters": 1}
    assert summary == {"detections": 3, "placed": 1, "frames": 3,
                       "calibration": "/cam/camera_info (CameraInfo and /tf_static)"}
    assert p.warnings(["/cam/image"]) == []  # a calibration missing for a while is no fault
    assert p.positions("/cam/image", "cam_optical", 640, 360, boxes, labels, NAMES) is None
    assert "1280x720 images but the image is 640x360" in p.reason("/cam/image")
    values = p.diagnostic_values(["/cam/image"])
    assert "1280x720 images" in values["positions[/cam/image]"]
    # a node without tf2_msgs says so with the missing mount
    q2 = CameraPositions()
    q2.tf_note = "tf2_msgs is not installed"
    q2.camera_info("/c", info_obj, "/c/info")
    assert q2.positions("/c", "cam_optical", 1280, 720, boxes, labels, NAMES) is None
    assert q2.reason("/c").endswith("(tf2_msgs is not installed)")
