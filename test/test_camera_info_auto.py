"""``camera_info_topics: auto`` for a camera with no namespace (SECURITY.md R76).

image_transport puts a camera's CameraInfo beside its image (``getCameraInfoTopic``: the sibling
of the base topic): usb_cam started at the root publishes ``/image_raw`` and ``/camera_info``, a
driver in ``/cabin`` whose image a node names relatively (``image_raw``) publishes
``/cabin/camera_info``. ``auto`` gave ``/image_raw/camera_info`` and ``image_raw/camera_info``,
which no camera publishes: the 3-D positions and the head pose never got the calibration, while a
replay of the same relative camera (the bag's resolved topic) read it.
"""
from __future__ import annotations

from sense_perception.core.output.frame_outputs import taken_topics
from sense_perception.core.output.topics import camera_info_topic, output_namespaces
from sense_perception.ros.settings import DriverMonitorNodeSettings, ObjectDetectorSettings


def test_auto_is_the_sibling_of_an_image_with_no_namespace():
    assert camera_info_topic("/image_raw", "auto") == "/camera_info"
    assert camera_info_topic("/image_rect_color/compressed", "auto") == "/camera_info"
    assert camera_info_topic("image_raw", "auto") == "camera_info"  # resolved by the node
    assert camera_info_topic("image_raw/compressed", "auto") == "camera_info"
    # unchanged: a namespace, a private name, a one-name topic that is no image's
    assert camera_info_topic("/cam/image_raw/compressed", "auto") == "/cam/camera_info"
    assert camera_info_topic("cam/image_raw", "auto") == "cam/camera_info"
    assert camera_info_topic("~/image_raw", "auto") == "~/camera_info"
    assert camera_info_topic("/front", "auto") == "/front/camera_info"
    assert camera_info_topic("/image_raw", "") == ""
    assert camera_info_topic("/image_raw", "/calib") == "/calib"


def test_the_nodes_read_the_calibration_a_root_or_relative_camera_publishes():
    assert ObjectDetectorSettings(camera_topics=["/image_raw"]).info_topics() == ["/camera_info"]
    assert ObjectDetectorSettings(camera_topics=["image_raw"]).info_topics() == ["camera_info"]
    assert DriverMonitorNodeSettings(camera_topic="image_raw/compressed").camera_info() == \
        "camera_info"
    assert DriverMonitorNodeSettings(camera_topic="/image_raw").camera_info() == "/camera_info"


def test_a_root_cameras_calibration_topic_is_taken_for_autoware_outputs():
    cameras = ["/image_raw"]
    taken = taken_topics(cameras, output_namespaces(cameras))
    assert taken["/camera_info"] == "the CameraInfo topic of camera '/image_raw'"
