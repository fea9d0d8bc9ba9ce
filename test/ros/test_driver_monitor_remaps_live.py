"""driver_monitor's outputs under remap rules, in-process (SECURITY.md R57): only object_detector's
outputs were checked (R45), so a remap rule put the faces on the cabin image the node reads, or the
driver's annotations and identity onto an exterior camera's topics. Refused at configure now,
before the gallery is read or a model loads."""
from __future__ import annotations

import pytest

from ros_helpers import overrides

pytestmark = pytest.mark.ros

CABIN = "/camera/cabin/image_raw"
FRONT = "/camera/front/image_raw"


def _monitor(context, tmp_path, rule):
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    return DriverMonitorNode("r57_remap", context=context, cli_args=["--ros-args", "-r", rule],
                             parameter_overrides=overrides(**{
                                 "camera_topic": CABIN, "exterior_camera_topics": [FRONT],
                                 "gallery.path": str(tmp_path / "gallery.json"),
                                 "runtime.providers": ["CPUExecutionProvider"],
                                 "runtime.intra_op_threads": 1}))


@pytest.mark.parametrize("rule, fragment", [
    (f"/camera/cabin/faces:={CABIN}", "the node would read its own output"),
    ("/camera/cabin/head_pose:=/camera/cabin/camera_info", "the node would read its own output"),
    (f"/camera/cabin/annotations:={FRONT}", f"which is the image input of camera '{FRONT}'"),
    ("/camera/cabin/driver_identity:=/camera/front/detections", "which is the detections output"),
    ("/camera/cabin/driver_attention:=/camera/cabin/faces", "two message types"),
])
def test_a_remap_moving_a_driver_monitor_output_where_it_must_not_go_is_refused(
        context, tmp_path, rule, fragment):
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _monitor(context, tmp_path, rule)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.identifier is None and not (tmp_path / "gallery.json").exists()
        assert "remap rules put" in node.config_error and fragment in node.config_error
        assert "driver_monitor's" in node.config_error and "remove the remap rule" in node.config_error
    finally:
        node.destroy_node()


def test_a_driver_monitor_output_remapped_to_a_topic_of_its_own_is_taken(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _monitor(context, tmp_path, "/camera/cabin/faces:=/cabin/faces")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._pubs["faces"].topic_name == "/cabin/faces"
    finally:
        node.destroy_node()
