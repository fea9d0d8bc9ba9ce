"""One table of cases for both dict -> message converters: the replay's (rosbags,
``sense_perception.replay.to_rosbags``) and the nodes' (rclpy, ``sense_perception.ros.convert``).

Each case is (message type, dict, fragment): ``fragment`` None means both converters accept the
dict (and, in the ROS environment, build byte-identical CDR from it); otherwise both refuse it
with an error containing ``fragment``. The wording is shared, so a fragment fits both messages.
The cases follow what rclpy itself checks (``ROS_PYTHON_CHECK_FIELDS=1``): types and ranges of
ints, floats, strings, bools and bytes, array lengths, nested messages, unknown fields.
"""
from __future__ import annotations

import numpy as np

TIME = "builtin_interfaces/msg/Time"
HEADER = "std_msgs/msg/Header"
BBOX = "vision_msgs/msg/BoundingBox2D"
DETECTIONS = "vision_msgs/msg/Detection2DArray"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
POSE = "geometry_msgs/msg/PoseWithCovariance"
IMAGE = "sensor_msgs/msg/Image"
ROI = "sensor_msgs/msg/RegionOfInterest"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
JOINTS = "sensor_msgs/msg/JointState"
STATUS = "diagnostic_msgs/msg/DiagnosticStatus"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"

ACCEPTED: list[tuple[str, dict]] = [
    (TIME, {"sec": 1, "nanosec": 2}),
    (TIME, {"sec": np.int32(5), "nanosec": np.uint32(7)}),
    (TIME, {"sec": -2**31, "nanosec": 2**32 - 1}),
    (HEADER, {}),
    (HEADER, {"frame_id": "camera_front", "stamp": {"sec": 3}}),
    (HEADER, {"stamp": None}),  # a nested message given as None: its defaults
    (BBOX, {"size_x": 3, "size_y": np.float32(2.5)}),  # ints and numpy numbers into float64
    (LABEL_INFO, {"threshold": 0.35}),
    (LABEL_INFO, {"threshold": float("inf")}),  # rclpy lets inf into a float32
    (POSE, {"covariance": list(range(36))}),  # the orientation left out: its declared w = 1
    (POSE, {"pose": {"orientation": {"x": 1.0, "w": 0.0}}}),
    (POSE, {"covariance": np.zeros(36, np.float32)}),
    (IMAGE, {"height": 1, "width": 3, "encoding": "mono8", "step": 3, "data": b"\x01\x02\xff"}),
    (IMAGE, {"data": [0, 1, 255]}),
    (IMAGE, {"data": np.arange(6, dtype=np.uint8)}),
    (ROI, {"do_rectify": True}),
    (ROI, {"do_rectify": np.bool_(False)}),
    (STATUS, {"level": 2, "name": "node: x", "values": [{"key": "frames", "value": "3"}]}),
    (STATUS, {"level": b"\x01"}),
    (DETECTIONS, {"detections": [{}, None]}),
    (CAMERA_INFO, {"d": [0.1, 0], "k": [1.0] * 9}),
    (JOINTS, {"name": ["a", "b"], "position": [1.0, 2]}),
]

REFUSED: list[tuple[str, dict, str]] = [
    (TIME, {"sec": 1.9}, "Time.sec: expected an int"),
    (TIME, {"sec": 1.0}, "Time.sec: expected an int"),
    (TIME, {"sec": True}, "Time.sec: expected an int"),
    (TIME, {"sec": "1"}, "Time.sec: expected an int"),
    (TIME, {"sec": None}, "Time.sec: expected an int"),
    (TIME, {"sec": 2**31}, "Time.sec: 2147483648 is out of range for int32"),
    (TIME, {"nanosec": -1}, "Time.nanosec: -1 is out of range for uint32"),
    (HEADER, {"frame_id": 7}, "Header.frame_id: expected a str, got 7"),
    (HEADER, {"frame_id": b"cam"}, "Header.frame_id: expected a str"),
    (HEADER, {"frame_id": None}, "Header.frame_id: expected a str"),
    (HEADER, {"stamp": 5}, "Header.stamp: expected a dict for"),
    (HEADER, {"bogus": 1}, "Header: 'bogus' is not a field of Header; fields: stamp, frame_id"),
    (HEADER, {"stamp": {"sec": 1.5}}, "Header.stamp.sec: expected an int"),
    (BBOX, {"size_x": "wide"}, "BoundingBox2D.size_x: expected a number"),
    (BBOX, {"size_x": True}, "BoundingBox2D.size_x: expected a number"),
    (LABEL_INFO, {"threshold": 1e39}, "LabelInfo.threshold: 1e+39 is out of range for float32"),
    (POSE, {"covariance": [0.0] * 35}, "covariance: needs exactly 36 values, got 35"),
    (POSE, {"covariance": []}, "covariance: needs exactly 36 values, got 0"),
    (POSE, {"covariance": ["a"] * 36}, "covariance: expected numbers"),
    (IMAGE, {"data": [1.5]}, "Image.data: expected numbers"),
    (IMAGE, {"data": [256]}, "Image.data: expected numbers"),
    (IMAGE, {"data": [-1]}, "Image.data: expected numbers"),
    (IMAGE, {"data": "abc"}, "Image.data: expected numbers"),
    (ROI, {"do_rectify": 1}, "RegionOfInterest.do_rectify: expected a bool"),
    (STATUS, {"level": 256}, "DiagnosticStatus.level: expected one byte"),
    (STATUS, {"level": "1"}, "DiagnosticStatus.level: expected one byte"),
    (DETECTIONS, {"detections": "none"}, "Detection2DArray.detections: expected a list"),
    (DETECTIONS, {"detections": {"a": 1}}, "Detection2DArray.detections: expected a list"),
    (DETECTIONS, {"detections": [{"bbox": {"size_z": 1.0}}]},
     "Detection2DArray.detections[0].bbox: 'size_z' is not a field of BoundingBox2D"),
    (DIAGNOSTICS, {"status": [{"values": [{"key": "k", "value": 3}]}]},
     "DiagnosticArray.status[0].values[0].value: expected a str"),
    (CAMERA_INFO, {"d": [1, "x"]}, "CameraInfo.d: expected numbers"),
    (CAMERA_INFO, {"k": [1.0] * 8}, "CameraInfo.k: needs exactly 9 values, got 8"),
    (JOINTS, {"name": ["a", 1]}, "JointState.name[1]: expected a str"),
    (JOINTS, {"name": "ab"}, "JointState.name: expected a list"),
]


def case_id(case: tuple) -> str:
    """A readable test id: the type's short name and the dict."""
    return f"{case[0].rsplit('/', 1)[-1]}-{case[1]!r}"[:80]
