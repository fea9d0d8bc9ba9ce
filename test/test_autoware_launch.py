"""The Autoware set-up without ROS: config/autoware.yaml, and the logic of launch/autoware.launch.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sense_perception.config import bundled_config, load_params, resolve_config, section_from_params
from sense_perception.core.autoware.rois import AutowareConfig, rois_topics
from sense_perception.errors import ConfigError
from sense_perception.ros import autoware_launch
from sense_perception.ros.settings import ObjectDetectorSettings, check_param_names

ROOT = Path(__file__).resolve().parents[1]
AUTOWARE = ROOT / "config" / "autoware.yaml"
ROIS = "/perception/object_recognition/detection/rois"


def test_autoware_config_is_bundled_and_turns_the_rois_on():
    assert resolve_config("autoware") == bundled_config("autoware") == AUTOWARE
    params = load_params(AUTOWARE, "object_detector")
    check_param_names(params, ObjectDetectorSettings, str(AUTOWARE))
    cfg = section_from_params(AutowareConfig, params, "autoware.", str(AUTOWARE))
    assert cfg.enabled and cfg.other_labels == "drop" and cfg.camera_info_topic == "auto"
    assert rois_topics(params["camera_topics"], cfg.rois_topic) == [ROIS + "0"]
    # and each calibrated camera's road users in 3-D, on a topic of its own index
    assert rois_topics(params["camera_topics"], cfg.objects_topic, "autoware.objects_topic") == [
        "/perception/object_recognition/detection/camera0/objects"]
    # An overlay, not a copy: the rest comes from perception.yaml.
    assert AUTOWARE.read_text().startswith("# base: perception.yaml\n")
    base = load_params(ROOT / "config" / "perception.yaml", "object_detector")
    changed = {"camera_topics", "autoware.rois_topic", "autoware.objects_topic"}
    assert {k: v for k, v in params.items() if k not in changed} == {
        k: v for k, v in base.items() if k not in changed}
    assert base["autoware.rois_topic"] == base["autoware.objects_topic"] == ""  # off unless a config turns them on


@pytest.mark.parametrize("number, transport, topics", [
    ("1", "raw", ["/sensing/camera/camera0/image_rect_color"]),
    ("3", "compressed", [f"/sensing/camera/camera{i}/image_rect_color/compressed" for i in range(3)]),
    ("8", "raw", [f"/sensing/camera/camera{i}/image_rect_color" for i in range(8)]),
])
def test_image_number_gives_autowares_camera_topics(number, transport, topics):
    assert autoware_launch.camera_topics(number, transport) == topics


@pytest.mark.parametrize("number, transport, fragment", [
    ("0", "raw", "image_number:='0' must be a whole number from 1 to 8"),
    ("9", "raw", "from 1 to 8"), ("two", "raw", "from 1 to 8"),
    ("2", "h264", "image_transport:='h264' must be one of raw, compressed"),
])
def test_bad_launch_arguments_are_refused_with_the_valid_values(number, transport, fragment):
    with pytest.raises(ConfigError, match=fragment):
        autoware_launch.camera_topics(number, transport)


def test_node_parameters_wire_each_camera_to_its_own_rois_topic():
    params = autoware_launch.node_parameters({"image_number": "2"})
    assert params["camera_topics"] == ["/sensing/camera/camera0/image_rect_color",
                                       "/sensing/camera/camera1/image_rect_color"]
    assert rois_topics(params["camera_topics"], params["autoware.rois_topic"]) == [ROIS + "0", ROIS + "1"]
    # Not set on the node unless asked: Autoware's global use_sim_time (SetParameter) applies.
    assert "use_sim_time" not in params
    assert autoware_launch.node_parameters({"use_sim_time": "true"})["use_sim_time"] is True
    # Cameras chosen by topic keep their own index: camera3's ROIs go to rois3.
    params = autoware_launch.node_parameters({"camera_topics": "/sensing/camera/camera3/image_rect_color,"
                                                                "/sensing/camera/camera5/image_rect_color"})
    assert rois_topics(params["camera_topics"], params["autoware.rois_topic"]) == [ROIS + "3", ROIS + "5"]
    assert params["detector.model"] == "picodet_s_416"  # the rest comes from perception.yaml


def test_launch_file_starts_the_autoware_node_through_the_tested_logic():
    tree = ast.parse((ROOT / "launch" / "autoware.launch.py").read_text())
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    call = funcs["generate_launch_description"].body[0].value
    assert call.func.id == "launch_description" and not call.args
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [
        ("sense_perception.ros.autoware_launch", ["launch_description"])]
