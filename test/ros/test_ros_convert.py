"""The generic dict -> rclpy converter against real typesupport (the project's built vision_msgs)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ros_helpers import require_ros

pytestmark = pytest.mark.ros


@pytest.fixture(autouse=True)
def _ros(monkeypatch):
    require_ros()
    # rclpy checks field types only with this set: the converter's output must pass those checks too.
    monkeypatch.setenv("ROS_PYTHON_CHECK_FIELDS", "1")


def _core_dicts():
    from sense_perception.core.output import messages
    from sense_perception.core.types import Detections, Header

    header = Header(1_700_000_000, 123_456_789, "camera_front")
    dets = Detections(
        boxes=np.array([[10.5, 20.25, 110.0, 220.0], [0.0, 0.0, 1.0, 2.0], [5, 6, 7, 9]], np.float32),
        scores=np.array([0.91, 0.5, 0.37], np.float32),
        labels=np.array([2, 0, 1], np.int32),
        track_ids=np.array([7, -1, 123456789012], np.int64))
    names = ["pedestrian", "bicycle", "car"]
    status = messages.diagnostic_status("node: x", messages.WARN, "no input", "CPUExecutionProvider",
                                        {"frames": 3, "rate": 9.5, "ok": True})
    return {
        "vision_msgs/msg/Detection2DArray": messages.detection2d_array(header, dets, names),
        "vision_msgs/msg/Detection2DArray#empty": messages.detection2d_array(header, Detections(), names),
        "vision_msgs/msg/LabelInfo": messages.label_info(header, names, 0.35),
        "vision_msgs/msg/Classification": messages.classification(header, [("drv-1a2b3c4d", 0.71), ("unknown", 0.1)]),
        "diagnostic_msgs/msg/DiagnosticStatus": status,
        "diagnostic_msgs/msg/DiagnosticArray": messages.diagnostic_array(header, [status, status]),
        "std_msgs/msg/Header": messages.header_msg(header),
    }, header, dets, names


def _equal(msg, value, where="msg"):
    """Every field given in the dict equals the message's field (floats to the field's precision)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _equal(getattr(msg, key), item, f"{where}.{key}")
    elif isinstance(value, list):
        assert len(msg) == len(value), where
        for i, (m, v) in enumerate(zip(msg, value, strict=True)):
            _equal(m, v, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isclose(float(msg), value, rel_tol=1e-6, abs_tol=1e-6), where
    elif isinstance(msg, bytes):
        assert msg == bytes([value]), where
    else:
        assert msg == value, where


def test_every_core_message_converts_serialises_and_round_trips():
    from rclpy.serialization import deserialize_message, serialize_message

    from sense_perception.ros.convert import msg_class, to_msg

    dicts, *_ = _core_dicts()
    for name, value in dicts.items():
        cls = msg_class(name.split("#")[0])
        msg = to_msg(cls, value)
        _equal(msg, value, name)
        raw = serialize_message(msg)
        back = deserialize_message(raw, cls)
        _equal(back, value, name)  # through real CDR typesupport
        assert deserialize_message(serialize_message(back), cls) == back  # stable through a 2nd trip


def test_detection_fields_match_the_detections():
    from vision_msgs.msg import Detection2DArray

    from sense_perception.ros.convert import to_msg

    dicts, header, dets, names = _core_dicts()
    msg = to_msg(Detection2DArray, dicts["vision_msgs/msg/Detection2DArray"])
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        header.sec, header.nanosec, header.frame_id)
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == ["car", "pedestrian", "bicycle"]
    assert [d.id for d in msg.detections] == ["7", "", "123456789012"]
    x1 = [d.bbox.center.position.x - d.bbox.size_x / 2 for d in msg.detections]
    y2 = [d.bbox.center.position.y + d.bbox.size_y / 2 for d in msg.detections]
    np.testing.assert_allclose(x1, dets.boxes[:, 0], atol=1e-4)
    np.testing.assert_allclose(y2, dets.boxes[:, 3], atol=1e-4)
    assert all(d.header == msg.header for d in msg.detections)
    assert msg.detections[0].results[0].pose.covariance.dtype == np.float64


def test_rclpy_bytes_decode_with_rosbags_definitions():
    """The cmake-built typesupport and the .msg files rosbags reads agree on the wire format."""
    from rclpy.serialization import serialize_message

    from sense_perception.replay.typestore import make_typestore
    from sense_perception.ros.convert import msg_class, to_msg

    store = make_typestore()
    dicts, *_ = _core_dicts()
    for name, value in dicts.items():
        name = name.split("#")[0]
        raw = serialize_message(to_msg(msg_class(name), value))
        ref = store.deserialize_cdr(raw, name)
        if "header" in value:
            assert ref.header.frame_id == value["header"]["frame_id"]
            assert ref.header.stamp.nanosec == value["header"]["stamp"]["nanosec"]
        if name.endswith("Detection2DArray") and value["detections"]:
            assert [d.results[0].hypothesis.class_id for d in ref.detections] == ["car", "pedestrian", "bicycle"]
            assert ref.detections[0].bbox.size_x == pytest.approx(99.5)
        if name.endswith("LabelInfo"):
            assert [c.class_name for c in ref.class_map] == ["pedestrian", "bicycle", "car"]


def test_image_data_from_numpy_and_bytes():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from sense_perception.ros.convert import to_msg

    bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = to_msg(Image, {"height": 2, "width": 3, "encoding": "bgr8", "step": 9,
                         "data": memoryview(bgr).cast("B")})
    back = deserialize_message(serialize_message(msg), Image)
    assert bytes(back.data) == bgr.tobytes()
    msg = to_msg(Image, {"height": 2, "width": 3, "encoding": "bgr8", "step": 9, "data": bgr})
    assert bytes(msg.data) == bgr.tobytes()
    comp = to_msg(CompressedImage, {"format": "jpeg", "data": b"\xff\xd8\xff"})
    assert bytes(deserialize_message(serialize_message(comp), CompressedImage).data) == b"\xff\xd8\xff"


@pytest.mark.parametrize("value, fragment", [
    ({"header": {"stamp": {"sec": 1.5}}}, "header.stamp.sec: expected an int"),
    ({"header": {"stamp": {"nanosec": -1}}}, "out of range for uint32"),
    ({"detections": [{"bogus": 1}]}, "detections[0]: 'bogus' is not a field of Detection2D"),
    ({"detections": [{"bbox": {"size_x": "wide"}}]}, "detections[0].bbox.size_x: expected a number"),
    ({"detections": [{"results": [{"pose": {"covariance": [0.0] * 35}}]}]}, "needs exactly 36 values"),
    ({"detections": "none"}, "detections: expected a list"),
    ({"header": {"frame_id": 5}}, "header.frame_id: expected a str"),
])
def test_bad_dicts_name_the_field(value, fragment):
    from vision_msgs.msg import Detection2DArray

    from sense_perception.ros.convert import MessageConversionError, to_msg

    with pytest.raises(MessageConversionError) as info:
        to_msg(Detection2DArray, value)
    assert fragment in str(info.value)


def test_unknown_type_name_is_a_clear_error():
    from sense_perception.ros.convert import MessageConversionError, msg_class

    with pytest.raises(MessageConversionError, match="cannot be imported"):
        msg_class("vision_msgs/msg/NoSuchMessage")


# -- the table both converters are tested with (test/converter_cases.py) ---------------------------
# test/ is not on the path of the ROS tests' own folder: the table is shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from converter_cases import ACCEPTED, REFUSED, case_id  # noqa: E402


@pytest.mark.parametrize("msgtype, value", ACCEPTED, ids=[case_id(c) for c in ACCEPTED])
def test_accepted_dicts_give_the_replays_bytes(msgtype, value):
    """rclpy (field checks on) builds the message, and the replay converter's CDR of the same dict
    reads back as that very message (left-out fields included: their ROS defaults)."""
    from rclpy.serialization import deserialize_message, serialize_message

    from sense_perception.replay.to_rosbags import MessageConverter
    from sense_perception.replay.typestore import make_typestore
    from sense_perception.ros.convert import msg_class, to_msg

    cls = msg_class(msgtype)
    live = to_msg(cls, value)
    store = make_typestore()
    replayed = store.serialize_cdr(MessageConverter(store)(msgtype, value), msgtype)
    # Compared as messages read back by rclpy (its CDR leaves alignment bytes uninitialised, so
    # bytes do not compare; a float32 is compared as the wire holds it).
    assert deserialize_message(bytes(replayed), cls) == deserialize_message(serialize_message(live),
                                                                            cls)


@pytest.mark.parametrize("msgtype, value, fragment", REFUSED, ids=[case_id(c) for c in REFUSED])
def test_refused_dicts_are_refused_by_both(msgtype, value, fragment):
    from sense_perception.errors import BagError
    from sense_perception.replay.to_rosbags import MessageConverter
    from sense_perception.replay.typestore import make_typestore
    from sense_perception.ros.convert import MessageConversionError, msg_class, to_msg

    with pytest.raises(MessageConversionError) as live:
        to_msg(msg_class(msgtype), value)
    with pytest.raises(BagError) as replay:
        MessageConverter(make_typestore())(msgtype, value)
    assert fragment in str(live.value) and fragment in str(replay.value)
