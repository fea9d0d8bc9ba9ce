"""A hostile round on the Autoware drop-in and the output table (R25 in SECURITY.md).

Real parts: the sample bag's frames in Autoware's camera layout (test_autoware_replay's writer),
replayed through ``sense-perception replay``; the launch logic through ``node_parameters``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from test_autoware_replay import write_autoware_bag

from sense_perception.cli.main import main


@pytest.fixture(scope="module")
def autoware_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("autoware_hostile") / "drive"
    write_autoware_bag(path)
    return path


def _overlay(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text("# base: autoware\nobject_detector:\n  ros__parameters:\n" + body)
    return path


@pytest.mark.parametrize("setting, value, fragment", [
    # ROIs onto camera1's own image input: a DetectedObjectsWithFeature publisher on an Image topic
    ("rois_topic", "/sensing/camera/camera{index}/image_rect_color",
     "already the image input of camera '/sensing/camera/camera1/image_rect_color'"),
    ("rois_topic", "/sensing/camera/camera{index}/detections", "already the detections output"),
    ("rois_topic", "/sensing/camera/camera{index}/camera_info", "already the CameraInfo input"),
    # ROIs on config/autoware.yaml's DetectedObjects topic: the objects setting is told to move
    ("rois_topic", "/perception/object_recognition/detection/camera{index}/objects",
     "autoware.objects_topic '/perception/object_recognition/detection/camera{index}/objects' gives "
     "camera '/sensing/camera/camera0/image_rect_color/compressed' the topic "
     "'/perception/object_recognition/detection/camera0/objects', which is already the ROI output"),
    ("objects_topic", "/sensing/camera/camera{index}/annotations", "already the annotations output"),
])
def test_an_autoware_topic_taken_by_an_input_or_another_output_is_refused(
        autoware_bag, tmp_path, capsys, setting, value, fragment):
    config = _overlay(tmp_path, f"    autoware:\n      {setting}: {value}\n")
    out = tmp_path / "out"
    assert main(["replay", str(autoware_bag), "--out", str(out), "--config", str(config)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "autoware." in err and fragment in err and "a topic of its own" in err
    assert not (out / "bag").exists()  # refused before anything was written
