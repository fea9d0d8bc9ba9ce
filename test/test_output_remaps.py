"""core.output.remaps: outputs the remap rules move where they must not go (ROS-free; R45)."""
from __future__ import annotations

import pytest

from sense_perception.core.output.remaps import Endpoint, check_remapped_outputs
from sense_perception.core.output.topics import looks_like_image
from sense_perception.errors import ConfigError

IMAGE = Endpoint("/cam/image_raw", "sensor_msgs/msg/Image", "the image input", False)
ROIS = Endpoint("/rois0", "tier4_perception_msgs/msg/DetectedObjectsWithFeature", "the rois output", True)
DEBUG = Endpoint("/cam/detections_image", "sensor_msgs/msg/Image", "the detections_image output", True)


def check(rules: dict[str, str], *ends: Endpoint, foreign: dict[str, str] | None = None) -> None:
    check_remapped_outputs(ends, lambda t: rules.get(t, t), lambda t: t, foreign)


def test_names_as_given_are_left_to_the_settings_checks():
    check({}, IMAGE, ROIS, DEBUG)
    check({"/rois0": "/perception/rois0"}, IMAGE, ROIS, DEBUG)  # a remap to a topic of its own


@pytest.mark.parametrize("rules, fragment", [
    ({"/rois0": "/cam/image_raw"}, "the node would read its own output"),
    ({"/cam/image_raw": "/rois0"}, "the node would read its own output"),
    ({"/rois0": "/cam2/image_rect_color/compressed"}, "a camera image topic"),
    ({"/cam/detections_image": "/cam2/image_raw"}, "the drawn detections would mix"),
    ({"/cam/detections_image": "/rois0"}, "two message types"),
    ({"/rois0": "/cabin/image_raw"}, "which is the cabin camera"),
])
def test_a_moved_output_is_refused_naming_the_remap_and_the_fix(rules, fragment):
    with pytest.raises(ConfigError, match="remap rules put") as caught:
        check(rules, IMAGE, ROIS, DEBUG, foreign={"/cabin/image_raw": "the cabin camera"})
    assert fragment in str(caught.value) and "remapped to" in str(caught.value)
    assert "remove the remap rule" in str(caught.value)


def test_image_topics_are_told_by_their_names():
    assert looks_like_image("/sensing/camera/camera0/image_rect_color")
    assert looks_like_image("/c/image/compressed") and looks_like_image("/c/image_raw/theora")
    assert not looks_like_image("/perception/object_recognition/detection/rois0")
    assert not looks_like_image("/c/detections_image") and not looks_like_image("/p/image_rois0")


def test_the_drawn_detections_may_go_to_a_debug_image_topic():
    """An image output remapped to a debug image name (Autoware's `.../debug/image`) was refused
    as "a camera image topic" though no camera publishes there (R57). Still refused: another
    message type there, and the drawn detections on a camera's image name outside `debug`."""
    check({"/cam/detections_image": "/x/debug/image"}, IMAGE, ROIS, DEBUG)
    check({"/cam/detections_image": "/perception/object_recognition/detection/rois0/debug/image_raw"},
          IMAGE, ROIS, DEBUG)
    with pytest.raises(ConfigError, match="a camera image topic"):
        check({"/rois0": "/x/debug/image"}, IMAGE, ROIS, DEBUG)
    with pytest.raises(ConfigError, match="the drawn detections would mix"):
        check({"/cam/detections_image": "/x/debugging/image_raw"}, IMAGE, ROIS, DEBUG)
    with pytest.raises(ConfigError, match="the node would read its own output"):  # still its input
        check({"/cam/detections_image": "/cam/debug/image_raw", "/cam/image_raw": "/cam/debug/image_raw"},
              IMAGE, ROIS, DEBUG)
