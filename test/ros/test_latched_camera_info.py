"""A CameraInfo latched by its publisher (TRANSIENT_LOCAL) before the node started reaches the node,
and a volatile per-frame one still does (SECURITY.md R55). The CameraInfo subscription was
volatile only: the latched message, published once before it matched, never came ("no CameraInfo
yet" for ever); a transient-local subscription alone would match no volatile publisher."""
from __future__ import annotations

from typing import Any

import pytest

from ros_helpers import overrides, spin_publishing, spin_until
from test_positions_live import _active, _camera_info

pytestmark = pytest.mark.ros

FRONT = "/camera/front/image_raw/compressed"
LEFT = "/camera/left/image_raw/compressed"
FRONT_INFO, LEFT_INFO = "/camera/front/camera_info", "/camera/left/camera_info"


def test_a_camera_info_latched_before_the_node_started_is_used_and_a_volatile_one_too(context):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo

    from sense_perception.ros import qos
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    probe = rclpy.create_node("latched_info_probe", context=context)
    # as `ros2 topic pub --once --qos-durability transient_local` and latching drivers do: once,
    # before the node exists
    latched = probe.create_publisher(CameraInfo, FRONT_INFO, QoSProfile(
        depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE))
    latched.publish(_camera_info())
    per_frame = probe.create_publisher(CameraInfo, LEFT_INFO, qos.profile("reliable", 1))
    node = ObjectDetectorNode("latched_info", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT, LEFT], **{"runtime.intra_op_threads": 1}))  # no mount: one per camera (R57)
    with _active(context, node, probe) as executor:
        # (the old node waited here for ever: its volatile subscription missed the message)
        assert spin_until(executor, lambda: node.positions._camera(FRONT).info is not None, 15.0)
        assert node.positions._camera(FRONT).info.k[0] == 700.0
        assert spin_publishing(executor, lambda: per_frame.publish(_camera_info()),
                               lambda: node.positions._camera(LEFT).info is not None)
        # no transient-local subscription where no publisher latches: a volatile publisher
        # would log an incompatible-QoS warning for it
        assert list(node._latched.subscriptions) == [FRONT_INFO]
        assert "no CameraInfo" not in str(node.status_values())


def test_a_driver_monitor_reads_a_camera_info_latched_before_it_started(context, tmp_path):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    probe = rclpy.create_node("latched_cabin_probe", context=context)
    latched = probe.create_publisher(CameraInfo, "/cabin/camera_info", QoSProfile(
        depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE))
    info: Any = _camera_info()
    latched.publish(info)
    node = DriverMonitorNode("latched_cabin", context=context, parameter_overrides=overrides(**{
        "camera_topic": "/cabin/image_raw", "gallery.path": str(tmp_path / "gallery.json"),
        "runtime.intra_op_threads": 1}))
    with _active(context, node, probe) as executor:
        attention = node.identifier.attention
        assert spin_until(executor, lambda: attention.intrinsics is not None
                          and attention.intrinsics.matrix[0, 0] == 700.0, 15.0)
        # R66: a failed look at the publishers shows in driver_monitor's status too
        node._latched._failed("/cabin/camera_info", "RuntimeError: graph query failed")
        assert any("/cabin/camera_info: cannot look for a latched publisher" in w
                   for w in node.status_warnings())
        assert node.status_values()["latched_lookup_error[/cabin/camera_info]"] == \
            "RuntimeError: graph query failed"


def test_a_failed_lookup_of_the_latched_publishers_shows_in_diagnostics(context, monkeypatch):
    """A graph query of LatchedInputs that failed was kept in ``errors`` only: /diagnostics said
    nothing (the node's status OK) while a CameraInfo latched before the node started could not
    be found, and a subscription that could not be made raised out of the poll timer, ending
    the executor's spin. The failure is now a WARN in the node's status naming the topic and
    the error (``latched_lookup_error[<topic>]``), logged once, retried, and cleared when a
    poll works; the node keeps running (R66)."""
    import rclpy

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    probe = rclpy.create_node("latched_fault_probe", context=context)
    node = ObjectDetectorNode("latched_fault", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], **{"runtime.intra_op_threads": 1}))
    fault = {"on": True}
    real_query = node.get_publishers_info_by_topic

    def query(topic):
        if fault["on"]:
            raise RuntimeError("rcl graph query failed")
        return real_query(topic)

    monkeypatch.setattr(node, "get_publishers_info_by_topic", query)
    with _active(context, node, probe) as executor:
        latched = node._latched
        assert latched.errors == {FRONT_INFO: "RuntimeError: rcl graph query failed"}
        warnings = node.status_warnings()
        assert any(FRONT_INFO in w and "cannot look for a latched publisher" in w
                   for w in warnings), warnings
        assert node.status_values()[f"latched_lookup_error[{FRONT_INFO}]"] == \
            "RuntimeError: rcl graph query failed"
        # a subscription that cannot be made: kept and shown as well, never raised
        fault["on"] = False
        monkeypatch.setattr(node, "create_subscription", _raises)
        monkeypatch.setattr("sense_perception.ros.latched_inputs.latched_profile",
                            lambda publishers: object())
        latched.poll()
        assert "subscription refused" in latched.errors[FRONT_INFO]
        monkeypatch.undo()  # the query works again: the next poll clears it
        latched.poll()
        assert latched.errors == {} and node.status_warnings() == []
        executor.spin_once(timeout_sec=0.1)
        assert node.lifecycle_state == "active"


def _raises(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("subscription refused")
