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
