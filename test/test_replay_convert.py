"""The replay's dict -> rosbags converter is as strict as rclpy, on the table of cases the ROS
converter is tested with too (test/ros/test_ros_convert.py): what one refuses, the other does."""
from __future__ import annotations

import pytest

from converter_cases import ACCEPTED, REFUSED, case_id
from sense_perception.errors import BagError
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore


@pytest.fixture(scope="module")
def convert() -> MessageConverter:
    return MessageConverter(make_typestore())


@pytest.mark.parametrize("msgtype, value", ACCEPTED, ids=[case_id(c) for c in ACCEPTED])
def test_accepted_dicts_convert_and_serialise(convert, msgtype, value):
    msg = convert(msgtype, value)
    store = convert.store
    assert store.deserialize_cdr(store.serialize_cdr(msg, msgtype), msgtype) is not None


@pytest.mark.parametrize("msgtype, value, fragment", REFUSED, ids=[case_id(c) for c in REFUSED])
def test_refused_dicts_name_the_field(convert, msgtype, value, fragment):
    with pytest.raises(BagError) as info:
        convert(msgtype, value)
    assert fragment in str(info.value)


def test_left_out_fields_get_ros_defaults(convert):
    info = convert("sensor_msgs/msg/CameraInfo", {})
    assert info.header.frame_id == "" and info.height == 0 and info.roi.do_rectify is False
    assert info.k.tolist() == [0.0] * 9 and len(info.d) == 0
    assert convert("geometry_msgs/msg/Pose", {}).orientation.w == 1.0  # declared in its .msg
    status = convert("diagnostic_msgs/msg/DiagnosticStatus", {"level": 255})
    assert status.level == -1  # rosbags keeps a byte signed: the same bits as rclpy's b"\xff"


def test_values_are_kept_not_coerced(convert):
    header = convert("std_msgs/msg/Header", {"stamp": {"sec": 1_700_000_000, "nanosec": 5},
                                             "frame_id": "cam"})
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1_700_000_000, 5, "cam")
    data = bytearray(b"\x01\x02")
    image = convert("sensor_msgs/msg/Image", {"data": data})
    data[0] = 9  # the message does not alias the caller's buffer
    assert image.data.tolist() == [1, 2]
