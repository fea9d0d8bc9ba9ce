"""A node's private camera topic (``~/image_raw``) is that node's wherever it is handed over
(SECURITY.md R81), ROS-free: the config loader, the launch files' parameters and ``run``'s
check. rclpy resolves ``~/image_raw`` to ``<namespace>/<node>/image_raw``; the loader and
the launch files handed driver_monitor's private camera to object_detector as given, where it
resolved under object_detector's own name, so the cabin camera was no cabin camera to it, and
two nodes' private ``~/image_raw`` (two cameras) were refused as one. The nodes' own resolution
of what is handed over is checked with rclpy in ``test/ros/test_private_topics_live.py``. (A
replay, which knows neither the nodes' namespace nor their names, takes a private name as any
camera it may be: ``test_replay_guards.py``, R70 and R74.)"""
from __future__ import annotations

import pytest

from sense_perception.config import load_params
from sense_perception.core.output.topics import camera_info_topic, private_as_relative
from sense_perception.errors import PrivacyError
from sense_perception.ros.launch_support import node_parameters
from sense_perception.ros.settings import DriverMonitorNodeSettings, ObjectDetectorSettings

BOTH_PRIVATE = ("object_detector:\n  ros__parameters:\n    camera_topics: ['~/image_raw']\n"
                "driver_monitor:\n  ros__parameters:\n    camera_topic: '~/image_raw'\n")


def test_a_private_camera_handed_to_the_other_node_is_that_nodes(tmp_path):
    assert private_as_relative("~/image_raw", "driver_monitor") == "driver_monitor/image_raw"
    assert private_as_relative("~", "driver_monitor") == "driver_monitor"
    for name in ("/cabin/image_raw", "cabin/image_raw", "image_raw"):  # everyone's alike
        assert private_as_relative(name, "driver_monitor") == name
    # its CameraInfo (auto) is its sibling, resolved by the same node: <ns>/<node>/camera_info
    assert camera_info_topic("~/image_raw", "auto") == "~/camera_info"
    config = tmp_path / "private.yaml"
    config.write_text(BOTH_PRIVATE)
    # was: '~/image_raw', which object_detector resolves to <ns>/object_detector/image_raw
    detector = load_params(config, "object_detector")
    monitor = load_params(config, "driver_monitor")
    assert detector["cabin_camera_topic"] == "driver_monitor/image_raw"
    assert monitor["exterior_camera_topics"] == ["object_detector/image_raw"]
    launch = {"config": str(config), "camera_topic": "~/cam", "camera_topics": "~/a,/b/image_raw"}
    assert node_parameters("object_detector", launch)["cabin_camera_topic"] == "driver_monitor/cam"
    assert node_parameters("driver_monitor", launch)["exterior_camera_topics"] == [
        "object_detector/image_raw", "object_detector/a", "/b/image_raw"]
    # two nodes' private ~/image_raw are two cameras: neither node, nor run, refuses (was: both)
    ObjectDetectorSettings(camera_topics=detector["camera_topics"],
                           cabin_camera_topic=detector["cabin_camera_topic"]).validate()
    DriverMonitorNodeSettings(camera_topic=monitor["camera_topic"],
                              exterior_camera_topics=monitor["exterior_camera_topics"]).validate()
    from sense_perception.cli.run import check_cabin_not_exterior

    check_cabin_not_exterior(config)
    # the cabin camera named relatively by object_detector is still the cabin camera
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: "
                      "[driver_monitor/image_raw]\n" + BOTH_PRIVATE.split("\n", 3)[3])
    with pytest.raises(PrivacyError, match="driver_monitor/image_raw is the cabin camera"):
        check_cabin_not_exterior(config)
