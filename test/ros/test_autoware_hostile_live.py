"""object_detector refuses at configure what the Autoware drop-in's hostile round found (R25): the
node stays unconfigured, running, naming the parameter and the fix; no traceback, nothing
published on a topic an input or another output already has."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ros_helpers import GRAPH_ENV_KEYS

pytestmark = pytest.mark.ros

CAMERAS = "[/sensing/camera/camera0/image_rect_color, /sensing/camera/camera1/image_rect_color]"


@pytest.fixture()
def params_context(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Start a private rclpy context with ``--params-file FILE``; yields a function doing that."""
    import rclpy

    for key in GRAPH_ENV_KEYS:
        monkeypatch.setenv(key, ros_env[key])
    contexts = []

    def start(text: str) -> Any:
        path = tmp_path / f"params_{len(contexts)}.yaml"
        path.write_text(text)
        ctx = rclpy.Context()
        rclpy.init(context=ctx, args=["--ros-args", "--params-file", str(path)])
        contexts.append(ctx)
        return ctx

    yield start
    for ctx in contexts:
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("params, named", [
    # ROIs onto camera1's own image input
    (f"camera_topics: {CAMERAS}\n    autoware:\n      rois_topic: "
     "/sensing/camera/camera{index}/image_rect_color\n",
     "which is already the image input of camera '/sensing/camera/camera0/image_rect_color'"),
    # ROIs on driver_monitor's faces (Detection2DArray) of the cabin camera
    ("camera_topics: [/sensing/camera/camera0/image_rect_color]\n    autoware:\n"
     "      rois_topic: /camera/cabin/faces\n", "which is already driver_monitor's faces output"),
    # both Autoware outputs on one topic (two message types)
    (f"camera_topics: {CAMERAS}\n    autoware:\n      rois_topic: /x/rois{{index}}\n"
     "      objects_topic: /x/rois{index}\n", "which is already the ROI output of camera"),
    ("camera_topics: ['/sensing/camera/camera0/image rect']\n", "is not a ROS topic name"),
    # one CameraInfo topic checked for two cameras
    (f"camera_topics: {CAMERAS}\n    autoware:\n      rois_topic: /x/rois{{index}}\n"
     "      camera_info_topic: /sensing/camera/camera0/camera_info\n",
     "names one CameraInfo topic for 2 cameras"),
    ("detector:\n      max_detections: 0\n", "detector.max_detections"),
])
def test_what_the_hostile_round_found_leaves_the_node_unconfigured_naming_it(params_context, params,
                                                                             named):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("object_detector:\n  ros__parameters:\n    " + params)
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert named in node.config_error, node.config_error
        assert node.lifecycle_state == "unconfigured"
    finally:
        node.destroy_node()
