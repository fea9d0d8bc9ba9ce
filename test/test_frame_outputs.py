"""The output table (core/output/frame_outputs.py): rows, switches and the messages of a frame (no ROS).

That the nodes and the replay give the same dicts for the same frames is checked with real nodes in
test/ros/test_frame_outputs_live_replay.py.
"""
from __future__ import annotations

import numpy as np

import pytest

from sense_perception.core.autoware.rois import AUTOWARE_ROIS_TOPIC, AutowareConfig
from sense_perception.core.output.frame_outputs import (ATTENTION_SWITCH, AUTOWARE_OBJECTS_SWITCH,
                                                        AUTOWARE_SWITCH, CABIN_OUTPUTS,
                                                        EXTERIOR_OUTPUTS, ExteriorFrame, Output,
                                                        enabled_outputs, frame_messages, switches)
from sense_perception.core.types import Detections, Header
from sense_perception.ros.settings import DriverMonitorNodeSettings, ObjectDetectorSettings

NAMES = ["pedestrian", "car"]


def _frame(image=None) -> ExteriorFrame:
    dets = Detections(np.array([[10, 20, 110, 220]], np.float32), np.array([0.9], np.float32),
                      np.array([1], np.int32), np.array([4], np.int64))
    return ExteriorFrame(Header(7, 8, "front"), dets, NAMES, 0.35, (640, 480), image)


def test_topics_and_types_are_the_documented_ones():
    assert [(o.name, o.msgtype) for o in EXTERIOR_OUTPUTS] == [
        ("label_info", "vision_msgs/msg/LabelInfo"), ("detections", "vision_msgs/msg/Detection2DArray"),
        ("detections_3d", "vision_msgs/msg/Detection3DArray"),
        ("detections_image", "sensor_msgs/msg/Image"),
        ("annotations", "foxglove_msgs/msg/ImageAnnotations"),
        ("rois", "tier4_perception_msgs/msg/DetectedObjectsWithFeature"),
        ("objects", "autoware_perception_msgs/msg/DetectedObjects"),
        ("camera_health", "diagnostic_msgs/msg/DiagnosticStatus")]
    assert [(o.name, o.msgtype) for o in CABIN_OUTPUTS] == [
        ("faces", "vision_msgs/msg/Detection2DArray"), ("annotations", "foxglove_msgs/msg/ImageAnnotations"),
        ("driver_identity", "vision_msgs/msg/Classification"),
        ("driver_attention", "vision_msgs/msg/Classification"),
        ("head_pose", "geometry_msgs/msg/PoseStamped"),
        ("camera_health", "diagnostic_msgs/msg/DiagnosticStatus")]


def test_switches_come_from_the_node_settings():
    detector = ObjectDetectorSettings(publish_annotations=False, publish_debug_image=True)
    on = switches(detector)
    assert on == {"publish_annotations": False, "publish_debug_image": True, ATTENTION_SWITCH: False,
                  AUTOWARE_SWITCH: "", AUTOWARE_OBJECTS_SWITCH: ""}
    # Autoware's ROIs and DetectedObjects: off unless autoware.rois_topic / objects_topic is set
    live = [o.name for o in enabled_outputs(EXTERIOR_OUTPUTS, on)]
    assert live == ["label_info", "detections", "detections_3d", "detections_image", "camera_health"]
    # the replay writes no drawn debug image (its equivalent is --video)
    assert [o.name for o in enabled_outputs(EXTERIOR_OUTPUTS, switches(ObjectDetectorSettings()),
                                            live=False)] == ["label_info", "detections",
                                                             "detections_3d", "annotations",
                                                             "camera_health"]
    cabin = switches(DriverMonitorNodeSettings(), attention=False)
    assert [o.name for o in enabled_outputs(CABIN_OUTPUTS, cabin)] == [
        "faces", "annotations", "driver_identity", "camera_health"]
    with_attention = switches(DriverMonitorNodeSettings(), attention=True)
    assert len(enabled_outputs(CABIN_OUTPUTS, with_attention)) == len(CABIN_OUTPUTS)


def test_frame_messages_in_the_camera_namespace():
    rows = enabled_outputs(EXTERIOR_OUTPUTS, switches(ObjectDetectorSettings()), live=False)
    messages = frame_messages(rows, "/cam/front", _frame())
    assert [(m.topic, m.output.latched) for m in messages] == [
        ("/cam/front/label_info", True), ("/cam/front/detections", False),
        ("/cam/front/annotations", False)]  # no detections_3d without a calibration
    det = messages[1].message
    assert det["header"] == {"stamp": {"sec": 7, "nanosec": 8}, "frame_id": "front"}
    [d] = det["detections"]
    assert d["results"][0]["hypothesis"]["class_id"] == "car" and d["id"] == "4"
    assert messages[0].message["threshold"] == 0.35
    # a relative namespace stays relative (a node resolves it in its own namespace)
    assert frame_messages(rows[1:2], "front", _frame())[0].topic == "front/detections"


def test_wanted_is_asked_before_building_and_none_means_nothing_this_frame():
    built: list[str] = []

    def build(frame):
        built.append("x")
        return None

    rows = [Output("maybe", "std_msgs/msg/String", None, build),
            Output("never", "std_msgs/msg/String", None, build)]
    assert frame_messages(rows, "/ns", _frame(), wanted=lambda row: row.name == "maybe") == []
    assert built == ["x"]  # "never" was not built; "maybe" built, returned None: no message


def test_debug_image_draws_the_boxes():
    image = np.zeros((480, 640, 3), np.uint8)
    [debug] = [o for o in EXTERIOR_OUTPUTS if o.name == "detections_image"]
    [message] = frame_messages([debug], "/cam", _frame(image))
    msg = message.message
    assert (msg["height"], msg["width"], msg["encoding"], msg["step"]) == (480, 640, "bgr8", 1920)
    drawn = np.frombuffer(msg["data"], np.uint8).reshape(480, 640, 3)
    assert drawn.any()  # the box and caption
    assert frame_messages([debug], "/cam", _frame(None)) == []  # nothing to draw on


def test_autoware_rois_row_goes_to_the_cameras_own_rois_topic():
    autoware = AutowareConfig(rois_topic=AUTOWARE_ROIS_TOPIC)
    on = switches(ObjectDetectorSettings(), autoware=autoware)
    rows = enabled_outputs(EXTERIOR_OUTPUTS, on, live=False)
    assert [o.name for o in rows] == ["label_info", "detections", "detections_3d", "annotations", "rois",
                                      "camera_health"]
    rows = rows[:-1]  # the rois row last
    assert rows[-1].keep_last_one  # reliable, keep last 1: as autoware_tensorrt_yolox publishes (R65)
    frame = ExteriorFrame(Header(7, 8, "camera3/camera_optical_link"), _frame().detections, NAMES, 0.35,
                          (640, 480), autoware=autoware)
    [rois] = frame_messages(rows[-1:], "/sensing/camera/camera3", frame, switches=on)
    assert rois.topic == "/perception/object_recognition/detection/rois3"
    assert rois.message["header"] == {"stamp": {"sec": 7, "nanosec": 8}, "frame_id": "camera3/camera_optical_link"}
    [obj] = rois.message["feature_objects"]
    assert obj["object"]["classification"] == [{"label": 1, "probability": 1.0}]  # car
    assert obj["feature"]["roi"] == {"x_offset": 10, "y_offset": 20, "width": 100, "height": 200,
                                     "do_rectify": False}
    # A frame without the Autoware settings has no ROIs; a topic needs the switches it was made with.
    assert frame_messages(rows[-1:], "/sensing/camera/camera3", _frame(), switches=on) == []
    with pytest.raises(ValueError, match="needs the switch 'autoware.rois_topic'"):
        frame_messages(rows[-1:], "/sensing/camera/camera3", frame)
