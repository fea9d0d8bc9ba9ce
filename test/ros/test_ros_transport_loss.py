"""Frames a camera published that DDS dropped before the node's callback (its keep-last input
queue full) are counted, as lost[transport], from the publisher's sequence numbers: every frame
published after the first one received is either received or counted. A real graph: the node's
own subscription and a real publisher in its context."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from ros_helpers import image_msg, overrides, published_status, status_values

pytestmark = pytest.mark.ros

TOPIC = "/sp_transport/front/image_raw"


def _spin_until_quiet(executor: Any, node: Any, quiet_s: float = 0.5, timeout: float = 20.0) -> None:
    """Spin until nothing new arrived for ``quiet_s`` and every received frame was handled."""
    end = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        snap = node.health.snapshot()
        handled = snap.processed + snap.dropped_stale
        if snap.received != last:
            last, since = snap.received, time.monotonic()
        elif time.monotonic() - since > quiet_s and handled >= snap.received:
            return
    raise AssertionError("frames still arriving or unhandled")


def test_frames_dropped_before_the_callback_are_counted_and_never_with_two_publishers(context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("transport_loss", context=context, parameter_overrides=overrides(**{
        "camera_topics": [TOPIC], "input_depth": 1, "input_reliability": "reliable",
        "no_input_warn_s": 60.0, "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    profile = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)  # the writer keeps all
    cameras = [rclpy.create_node(f"transport_camera_{i}", context=context) for i in range(2)]
    pubs = [cameras[0].create_publisher(Image, TOPIC, profile)]  # the second comes later
    executor = SingleThreadedExecutor(context=context)
    for n in (node, *cameras):
        executor.add_node(n)
    frame = np.full((64, 96, 3), 90, np.uint8)
    try:
        end = time.monotonic() + 20.0
        sent = 0
        while node.health.snapshot().received == 0:  # discovery: until the first frame arrives
            assert time.monotonic() < end, "no frame arrived"
            pubs[0].publish(image_msg(frame, 1, sent, "front"))
            sent += 1
            executor.spin_once(timeout_sec=0.05)
        _spin_until_quiet(executor, node)
        first = node.health.snapshot().received  # the baseline: earlier frames were not a loss
        for i in range(20):  # a burst while the node does not spin: its queue of 1 overflows
            pubs[0].publish(image_msg(frame, 2, i, "front"))
        _spin_until_quiet(executor, node)
        values = status_values(published_status(node))
        received = node.health.snapshot().received - first
        lost = int(values.get("lost[transport]", "0"))
        assert lost > 0, (node.health.snapshot(), received, values)
        assert received + lost == 20, (received, lost, values)  # every one accounted for
        assert TOPIC in values["last_error[transport]"], values

        pubs.append(cameras[1].create_publisher(Image, TOPIC, profile))
        end = time.monotonic() + 20.0
        while pubs[1].get_subscription_count() < 1 or node.count_publishers(TOPIC) < 2:
            assert time.monotonic() < end, "second camera not discovered"
            executor.spin_once(timeout_sec=0.05)
        for i in range(20):  # two writers numbering their own frames: skips tell nothing
            pubs[i % 2].publish(image_msg(frame, 3, i, "front"))
            if i % 4 == 3:
                _spin_until_quiet(executor, node, quiet_s=0.2)
        _spin_until_quiet(executor, node)
        values = status_values(published_status(node))
        assert int(values.get("lost[transport]", "0")) == lost, values
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.stop()
        for c in cameras:
            c.destroy_node()
        node.destroy_node()
