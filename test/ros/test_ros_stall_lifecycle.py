"""The nodes' first inference (in-process, SECURITY.md R72).

* A model's first run (a TensorRT engine build, an OpenVINO or CUDA compile) happened on the
  first camera frame, inside a batch the inference-stall watch (R69) times: a node with nothing
  wrong said ERROR, "inference has not returned". Each node now warms its models up at
  configure, before it reports ready; a warm-up that fails fails configure, naming the model.

The engine build's duration is an injected clock; nothing sleeps for it.
"""
from __future__ import annotations

from typing import Any

import pytest

from ros_helpers import (DATA, image_msg, level, overrides, published_status, published_statuses,
                         read_bgr, wait_for)

pytestmark = pytest.mark.ros

STREET = DATA / "street" / "pandaset_seq002_front_camera_10.jpg"


class _Clock:
    """The stall watch's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _camera_callback(node: Any, topic: str) -> Any:
    from sense_perception.core.health.publication_gaps import PublicationGaps

    return node._make_callback(node._slots, 0, topic, PublicationGaps(node.count_publishers))


def _detector_node(context: Any, name: str, cam: str, **more: Any) -> Any:
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    return ObjectDetectorNode(name, context=context, parameter_overrides=overrides(**{
        "camera_topics": [cam], "no_input_warn_s": 60.0, "runtime.intra_op_threads": 1,
        "inference_stall_s": 2.0, **more}))


#: The general model alone: loads in a fraction of the time of both (the test is about neither).
ONE_MODEL = {"detector.pedestrian_model": "none"}


def _first_run_builds(monkeypatch: Any, on_first: Any) -> list[Any]:
    """Every detector the node builds calls ``on_first(images)`` on its first ``detect`` (a
    TensorRT engine build); returns the images of each first call."""
    from sense_perception.core.detection import detector_setup

    real_build = detector_setup.build_detector
    firsts: list[Any] = []

    def build(params: Any, source: str = "config") -> Any:
        detector = real_build(params, source)
        real = detector.detect

        def detect(images: Any) -> Any:
            if not firsts:
                firsts.append(list(images))
                on_first(images)
            return real(images)
        detector.detect = detect
        return detector

    monkeypatch.setattr(detector_setup, "build_detector", build)
    return firsts


def test_the_models_first_run_is_a_warm_up_at_configure_not_a_stall_on_the_first_frame(
        context, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core.health.inference_guard import InferenceWatch
    from sense_perception.ros import node_common

    clock = _Clock()
    monkeypatch.setattr(node_common, "InferenceWatch", lambda: InferenceWatch(clock))
    cam = "/sp_warm/front/image_raw"
    node = _detector_node(context, "warm_detector", cam, **ONE_MODEL)
    during: list[Any] = []  # (lifecycle state, /diagnostics) while the engine is being built

    def engine_build(images: Any) -> None:
        clock.now += 30.0  # a TensorRT engine built on the first run: 30 s
        during.append((node.lifecycle_state, published_statuses(node)))

    firsts = _first_run_builds(monkeypatch, engine_build)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        street = read_bgr(STREET)[::2, ::2].copy()
        _camera_callback(node, cam)(image_msg(street, 5, 0, "front"), {})
        assert wait_for(lambda: node.health.snapshot().processed == 1)
        # the engine build never fell inside a batch the stall watch timed (was: ERROR,
        # "inference has not returned for 30 s" on the first frame)
        assert len(during) == 1
        state, statuses = during[0]
        assert level(statuses[0]) != 2, statuses[0].message
        # it came at configure, on a blank frame of the network's input size
        assert state == "unconfigured"
        (blank,) = firsts[0]
        assert blank.shape == (416, 416, 3) and not blank.any()
        own = published_status(node)
        assert level(own) == 0 and own.message == "ok", own.message
    finally:
        node.stop()
        node.destroy_node()


def test_a_warm_up_that_fails_fails_configure_naming_the_model(context, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn

    def broken(images: Any) -> None:
        raise RuntimeError("CUDA failure 700: an illegal memory access was encountered")

    _first_run_builds(monkeypatch, broken)
    node = _detector_node(context, "warm_fail_detector", "/sp_warm_fail/front/image_raw",
                          **ONE_MODEL)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # was: SUCCESS
        assert node.detector is None and node._outputs == []  # what configure built is let go
        own = published_status(node)
        assert level(own) == 2
        assert own.message.startswith("not configured: the warm-up inference of "), own.message
        assert "of picodet_s_416 on 1 blank 416x416 frame(s) failed" in own.message, own.message
        assert "CUDA failure 700" in own.message and "runtime.providers" in own.message
    finally:
        node.destroy_node()
