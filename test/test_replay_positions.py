"""Replay places the exterior cameras' detections with the bag's CameraInfo and /tf_static, or with
--calibration FILE; without them it publishes no detections_3d and says why."""
from __future__ import annotations

import json
import math

import pytest
from replay_helpers import FRONT, SAMPLE_BAG, WINDSHIELD, copy_bag, read_output
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.core.geometry import mount_transform
from sense_perception.errors import ConfigError
from sense_perception.replay.engine import ReplayOptions, Replayer

# The sample bag's front camera: 960x540 JPEGs in frame "front_camera".
WIDTH, HEIGHT, FRAME = 960, 540, "front_camera"
K = [700.0, 0.0, 480.0, 0.0, 700.0, 270.0, 0.0, 0.0, 1.0]
T0 = 1557539956470000000  # the first front frame's bag time


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({}, "test")


def _calibrated_bag(tmp_path, with_tf: bool = True):
    store = get_typestore(Stores.ROS2_JAZZY)
    std = store.types["std_msgs/msg/Header"]
    stamp = store.types["builtin_interfaces/msg/Time"]
    info_t = store.types["sensor_msgs/msg/CameraInfo"]
    roi = store.types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False)
    import numpy as np

    info = info_t(std(stamp(0, 0), FRAME), HEIGHT, WIDTH, "plumb_bob", np.zeros(5),
                  np.array(K), np.eye(3).ravel(), np.zeros(12), 0, 0, roi)
    extra = [("/camera/front/camera_info", "sensor_msgs/msg/CameraInfo", None, T0 - 1000,
              bytes(store.serialize_cdr(info, "sensor_msgs/msg/CameraInfo")))]
    if with_tf:
        # base_link -> front_camera: 1.4 m up, pitched 2 degrees down (optical frame directly)
        T = mount_transform(1.4, math.radians(2.0))
        from scipy.spatial.transform import Rotation

        qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
        vec, quat = store.types["geometry_msgs/msg/Vector3"], store.types["geometry_msgs/msg/Quaternion"]
        tf = store.types["geometry_msgs/msg/TransformStamped"](
            std(stamp(0, 0), "base_link"), FRAME,
            store.types["geometry_msgs/msg/Transform"](vec(*T[:3, 3]), quat(qx, qy, qz, qw)))
        msg = store.types["tf2_msgs/msg/TFMessage"]([tf])
        extra.append(("/tf_static", "tf2_msgs/msg/TFMessage", None, T0 - 2000,
                      bytes(store.serialize_cdr(msg, "tf2_msgs/msg/TFMessage"))))
    return copy_bag(SAMPLE_BAG, tmp_path / "bag", extra=extra)


def test_camera_info_and_tf_static_place_the_front_camera(tmp_path, detector):
    bag = _calibrated_bag(tmp_path)
    out = tmp_path / "out"
    result = Replayer(ReplayOptions(bag, out, topics=[FRONT, WINDSHIELD]), detector=detector).run()
    front = result.summary["cameras"][FRONT]["positions"]
    assert front["placed"] > 0 and front["placed"] <= front["detections"]
    assert front["calibration"] == "/camera/front/camera_info (CameraInfo and /tf_static)"
    windshield = result.summary["cameras"][WINDSHIELD]["positions"]
    assert windshield["placed"] == 0 and "no sensor_msgs/CameraInfo on " \
        "/camera/windshield/camera_info" in windshield["reason"]
    messages = read_output(out / "bag")
    three_d = [m for m in messages if m.channel.topic == "/camera/front/detections_3d"]
    assert len(three_d) == 4  # one per front frame
    assert all(m.ros_msg.header.frame_id == "base_link" for m in three_d)
    placed = [d for m in three_d for d in m.ros_msg.detections]
    assert placed and all(0 < math.hypot(d.bbox.center.position.x, d.bbox.center.position.y) < 200
                          for d in placed)
    assert not any(m.channel.topic == "/camera/windshield/detections_3d" for m in messages)
    status = [s for m in messages if m.channel.topic == "/diagnostics" for s in m.ros_msg.status
              if s.name.endswith("object_detector")][-1]
    values = {kv.key: kv.value for kv in status.values}
    assert "detections placed (/camera/front/camera_info" in values[f"positions[{FRONT}]"]
    assert values[f"positions[{WINDSHIELD}]"].startswith("no calibration: no sensor_msgs/CameraInfo")


def test_without_calibration_no_3d_and_the_cli_says_why(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", FRONT]) == 0
    printed = capsys.readouterr().out
    assert f"3-D positions {FRONT}: none (no calibration: no sensor_msgs/CameraInfo on " \
        "/camera/front/camera_info" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"][FRONT]["positions"]["placed"] == 0
    assert not any(m.channel.topic.endswith("detections_3d") for m in read_output(out / "bag"))
    # --calibration FILE: refused before anything is written when wrong, used when right
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"K": [K[0:3], K[3:6], K[6:9]], "D": [], "distortion_model": "none",
                               "width": WIDTH, "height": HEIGHT,
                               "T_base_link_camera": mount_transform(-1.0).tolist()}))
    assert main(["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "o2"), "--topics", FRONT,
                 "--calibration", str(cal)]) == 2
    assert "from the road (z must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    cal.write_text(json.dumps({**json.loads(cal.read_text()),
                               "T_base_link_camera": mount_transform(1.4, 0.03).tolist()}))
    assert main(["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "o3"), "--topics", FRONT,
                 "--calibration", str(cal)]) == 0
    summary = json.loads((tmp_path / "o3" / "summary.json").read_text())
    assert summary["cameras"][FRONT]["positions"]["calibration"] == f"--calibration {cal}"
    assert summary["cameras"][FRONT]["positions"]["placed"] > 0


def test_autoware_objects_and_roi_kinematics_with_the_bags_calibration(tmp_path, detector):
    """With autoware.objects_topic set, the output bag has one DetectedObjects per front frame
    (frame base_link, the image's stamp), and the ROIs of placed detections carry the same
    kinematics."""
    bag = _calibrated_bag(tmp_path)
    config = tmp_path / "objects.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    autoware:\n"
                      "      objects_topic: /objects/{index}\n")
    # the sample bag's cameras have no index for {index}: refused before any model loads
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="autoware.objects_topic '/objects/{index}' takes each "
                                          "camera's index from its topic"):
        Replayer(ReplayOptions(bag, out, topics=[FRONT], config=config)).run()
    out = tmp_path / "out2"
    config.write_text("object_detector:\n  ros__parameters:\n    autoware:\n"
                      "      rois_topic: /rois/front\n      objects_topic: /objects/front\n")
    Replayer(ReplayOptions(bag, out, topics=[FRONT], config=config), detector=detector).run()
    messages = read_output(out / "bag")
    images = {m.ros_msg.header.stamp.sec * 10**9 + m.ros_msg.header.stamp.nanosec
              for m in messages if m.channel.topic == "/camera/front/detections"}
    objects = [m.ros_msg for m in messages if m.channel.topic == "/objects/front"]
    assert len(objects) == len(images) == 4
    assert {o.header.stamp.sec * 10**9 + o.header.stamp.nanosec for o in objects} == images
    assert all(o.header.frame_id == "base_link" for o in objects)
    placed = [obj for o in objects for obj in o.objects]
    assert placed
    for obj in placed:
        kin = obj.kinematics
        assert kin.has_position_covariance and kin.orientation_availability == 0
        assert kin.pose_with_covariance.covariance[0] > 0
        assert obj.shape.type in (0, 1) and obj.shape.dimensions.z > 0
        assert not kin.has_twist  # 4 frames: no track has min_updates (5) positions yet
    rois = [m.ros_msg for m in messages if m.channel.topic == "/rois/front"]
    assert len(rois) == 4
    with_kinematics = [f.object for r in rois for f in r.feature_objects
                       if f.object.kinematics.has_position_covariance]
    assert len(with_kinematics) == len(placed)
    assert sorted(round(o.kinematics.pose_with_covariance.pose.position.x, 6)
                  for o in with_kinematics) == sorted(
        round(o.kinematics.pose_with_covariance.pose.position.x, 6) for o in placed)
