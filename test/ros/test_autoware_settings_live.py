"""object_detector's settings and lifecycle as an Autoware drop-in, in-process (SECURITY.md R45):
a remap rule moving an output onto an image or one of the node's own inputs is refused at
configure, and a failed activate shows in /diagnostics until an activate succeeds."""
from __future__ import annotations

import pytest

from ros_helpers import level, overrides, published_status

pytestmark = pytest.mark.ros

CAMERA = "/sensing/camera/camera0/image_rect_color"
ROIS = "/perception/object_recognition/detection/rois0"


def _detector(context, name, cli_args=(), **params):
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    return ObjectDetectorNode(name, context=context, cli_args=["--ros-args", *cli_args] if cli_args else None,
                              parameter_overrides=overrides(**{
                                  "camera_topics": [CAMERA], "autoware.rois_topic": ROIS,
                                  "detector.pedestrian_model": "none",
                                  "runtime.providers": ["CPUExecutionProvider"],
                                  "runtime.intra_op_threads": 1, **params}))


def test_a_failed_activate_is_an_error_in_diagnostics_until_an_activate_succeeds(context):
    """A failed activate left /diagnostics at OK "inactive: waiting for lifecycle transitions":
    a monitor saw a healthy node that processed nothing. It is an ERROR naming why now."""
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _detector(context, "aw45_activate")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS

        def broken() -> None:  # fault injection: the latched LabelInfo cannot be published
            raise RuntimeError("injected: publish failed")

        node.on_outputs_active = broken
        assert node.trigger_activate() == TransitionCallbackReturn.FAILURE
        status = published_status(node)
        assert level(status) == 2, status.message
        assert "activate failed" in status.message and "injected: publish failed" in status.message
        del node.on_outputs_active
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert "activate failed" not in published_status(node).message
    finally:
        node.stop()
        node.destroy_node()


@pytest.mark.parametrize("rule, fragment", [
    # Autoware's ROIs onto the camera image the node reads: a loop, two types on one topic
    (f"{ROIS}:={CAMERA}", "the node would read its own output"),
    # onto another camera's image
    (f"{ROIS}:=/sensing/camera/camera1/image_rect_color", "a camera image topic"),
    # the detections onto the camera's CameraInfo input
    ("/sensing/camera/camera0/detections:=/sensing/camera/camera0/camera_info",
     "the node would read its own output"),
    # the image input onto the node's own ROI output
    (f"{CAMERA}:={ROIS}", "the node would read its own output"),
])
def test_a_remap_moving_an_output_onto_an_image_or_an_input_is_refused_at_configure(
        context, rule, fragment):
    """`--ros-args -r FROM:=TO` (a launch file's remappings) moves a publisher or subscription,
    not the parameter: the settings' checks of the names as given passed, and the node published
    its ROIs on the image topic it read. Refused now at configure, before any model loads."""
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _detector(context, "aw45_remap", ["-r", rule])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.detector is None and node.lifecycle_state == "unconfigured"
        assert "remap rules put" in node.config_error and fragment in node.config_error
        assert "remapped to" in node.config_error and "remove the remap rule" in node.config_error
    finally:
        node.destroy_node()


def test_mount_height_with_autowares_outputs_fails_configure(context):
    """mount_height places base_link's origin below the camera, Autoware's base_link is the rear
    axle: the DetectedObjects and the ROIs' kinematics were off by the camera's offset (R57).
    configure fails now, before any model loads, naming mount_transform and /tf_static."""
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _detector(context, "aw57_mount", mount_height=1.4)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.detector is None and "Autoware's base_link is the centre of the rear axle" in node.config_error
    finally:
        node.destroy_node()


def test_the_camera_info_check_reads_the_camera_info_the_positions_read(context):
    """R65: autoware.camera_info_topic: auto read <ns>/camera_info whatever camera_info_topics
    named, so autoware.launch.py's camera_info<i> (Autoware's CameraInfo of camera i, which its
    fusion reads) reached the 3-D positions but the check of what the fusion ignores watched
    another topic. auto follows the camera's camera_info_topics entry now: one subscription."""
    from rclpy.lifecycle import TransitionCallbackReturn

    info = "/sensing/camera/front/camera_info_rect"
    node = _detector(context, "aw65_info", camera_info_topics=[info])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert [sub.topic_name for sub in node._camera_info_subs] == [info]
        assert node.camera_infos is not None
    finally:
        node.stop()
        node.destroy_node()


def test_the_rois_reach_a_reliable_subscriber_as_autowares_own_detector_serves_one(context):
    """R65: the ROIs were published best effort, while autoware_tensorrt_yolox publishes them
    reliable, keep last 1 (create_publisher(..., 1)), which serves best-effort subscribers (the
    fusion) and reliable ones alike; Autoware's bytetrack (~/in/rect) and roi_based_detector
    subscribe rois<i> reliable, and a best-effort publisher is incompatible with them: swapped in
    for yolox, the node gave them nothing (an incompatible-QoS warning on their side only)."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    from sense_perception.ros import qos

    node = _detector(context, "aw65_qos")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        [info] = node.get_publishers_info_by_topic(ROIS)
        offered = info.qos_profile
        for wanted in ("reliable", "best_effort"):  # bytetrack's; the fusion's
            compatible, reason = qos_check_compatible(offered, qos.profile(wanted, 1))
            # (a WARNING only says a system-default policy cannot be judged)
            assert compatible != QoSCompatibility.ERROR, (wanted, reason)
    finally:
        node.stop()
        node.destroy_node()


def test_a_named_camera_info_check_other_than_the_positions_camera_info_fails_configure(context):
    """R67: autoware.camera_info_topic naming one CameraInfo and camera_info_topics (the 3-D
    positions', autoware.launch.py's camera_info<i>) another had the check watch a calibration
    nobody used. configure fails now, before any model loads, naming both and the fix."""
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _detector(context, "aw67_info", camera_info_topics=["/sensing/camera/front/camera_info"],
                     **{"autoware.camera_info_topic": "/sensing/camera/camera0/camera_info"})
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.detector is None
        assert "but camera_info_topics names '/sensing/camera/front/camera_info'" in node.config_error
        assert "autoware.camera_info_topic: auto" in node.config_error
    finally:
        node.destroy_node()
