"""The nodes' first inference and their hung inference across lifecycle transitions (in-process,
SECURITY.md R72).

* A model's first run (a TensorRT engine build, an OpenVINO or CUDA compile) happened on the
  first camera frame, inside a batch the inference-stall watch (R69) times: a node with nothing
  wrong said ERROR, "inference has not returned". Each node now warms its models up at
  configure, before it reports ready; a warm-up that fails fails configure, naming the model,
  and so does one that has not returned after ``warm_up_timeout_s`` (R81: it held configure,
  and the node, for ever).
* A batch that hung past a deactivate (which waits ``JOIN_TIMEOUT_S`` for it, then leaves the
  thread behind) and returned after the node was activated again was published on the active
  publishers, its frames older than those already out; and behind a hung driver pipeline, each
  later activation's worker waited for its lock for ever, one more thread left each cycle.

The engine build's duration is an injected clock; the hangs are Events the test releases.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest

from ros_helpers import (DATA, StallClock, camera_callback, hang, image_msg, level, overrides,
                         published_status, published_statuses, read_bgr, record_published,
                         status_values, wait_for)

pytestmark = pytest.mark.ros

STREET = DATA / "street" / "pandaset_seq002_front_camera_10.jpg"
PORTRAIT = DATA / "faces" / "obama_1_official_portrait_2012.jpg"


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

    clock = StallClock()
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
        camera_callback(node, cam)(image_msg(street, 5, 0, "front"), {})
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


def _configure_gives_up(node: Any, message_start: str) -> str:
    """A configure behind a hung model call fails after warm_up_timeout_s (0.5 here), nothing
    configured, the node's ERROR naming what hung, the bound and the fix; its message."""
    from rclpy.lifecycle import TransitionCallbackReturn

    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # was: never returned
    assert node.detector is None and node._outputs == []
    own = published_status(node)
    assert level(own) == 2
    assert own.message.startswith(message_start), own.message
    assert "(warm_up_timeout_s 0.5)" in own.message and "raise warm_up_timeout_s" in own.message
    return str(own.message)


def _next_configure_is_untouched_by(hung: threading.Thread, release: threading.Event, node: Any,
                                    cam: str, published: list[Any]) -> None:
    """The next configure runs while ``hung`` is still in the old call; released then, that call
    changes nothing: the node keeps its own detector, stays ok and publishes its frame alone."""
    from rclpy.lifecycle import TransitionCallbackReturn

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    mine = node.detector
    release.set()  # the hung call returns now: nothing of it is used
    hung.join(30)
    assert not hung.is_alive() and node.detector is mine
    street = read_bgr(STREET)[::2, ::2].copy()
    camera_callback(node, cam)(image_msg(street, 7, 0, "front"), {})
    assert wait_for(lambda: node.health.snapshot().processed == 1)
    assert node.lifecycle_state == "active" and node.config_error == ""
    own = published_status(node)
    assert level(own) == 0 and own.message == "ok", own.message
    stamps = [m.message["header"]["stamp"]["sec"] for m in published
              if m.topic == f"{cam.rsplit('/', 1)[0]}/detections"]
    assert stamps == [7], stamps


def test_a_warm_up_that_never_returns_fails_configure_after_warm_up_timeout_s(context,
                                                                            monkeypatch):
    """R81: a model hung in its warm-up held configure, the transition and with it the node's
    executor (no /diagnostics, no shutdown), for ever. It fails after warm_up_timeout_s, naming
    the model, the time waited and the fix; the hung call, left behind, warms nothing of the
    next configure and changes nothing when it returns."""
    entered, release = threading.Event(), threading.Event()

    def hung(images: Any) -> None:  # the first detector's warm-up, until the test lets it go
        entered.set()
        release.wait(20)

    _first_run_builds(monkeypatch, hung)
    published = record_published(monkeypatch)
    cam = "/sp_warm_hung/front/image_raw"
    node = _detector_node(context, "warm_hung_detector", cam, warm_up_timeout_s=0.5, **ONE_MODEL)
    try:
        _configure_gives_up(node, "not configured: the warm-up inference of picodet_s_416 on 1 "
                                  "blank 416x416 frame(s) has not returned after ")
        assert entered.is_set()
        left = [t for t in threading.enumerate() if t.name == "warm_hung_detector-warm-up"]
        assert len(left) == 1 and left[0].daemon  # left behind: never holds the process
        # the next configure warms its own detector while the hung call is still in the old one
        _next_configure_is_untouched_by(left[0], release, node, cam, published)
    finally:
        release.set()
        node.stop()
        node.destroy_node()


def test_a_batch_returning_after_its_worker_was_let_go_is_dropped_not_published(context,
                                                                             monkeypatch):
    """deactivate waits ``JOIN_TIMEOUT_S`` for a hung batch, then leaves the (daemon) thread
    behind; activate starts a new worker. The old batch, returning then, was published on the
    publishers active again, older than the frames out before it."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros import node_common

    monkeypatch.setattr(node_common, "JOIN_TIMEOUT_S", 0.2)
    cam = "/sp_late/front/image_raw"
    node = _detector_node(context, "late_detector", cam, **ONE_MODEL)
    published = record_published(monkeypatch)
    entered, release = threading.Event(), threading.Event()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        real = node.detector.detect
        monkeypatch.setattr(node.detector, "detect", hang(real, entered, release))
        street = read_bgr(STREET)[::2, ::2].copy()
        camera_callback(node, cam)(image_msg(street, 7, 0, "front"), {})
        assert entered.wait(30)
        old = node._worker
        assert old.daemon  # never holds the process at exit
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS  # after 0.2 s
        assert old.is_alive() and node._worker is None
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        monkeypatch.setattr(node.detector, "detect", real)
        # the new worker takes a frame and waits behind the hung detect
        camera_callback(node, cam)(image_msg(street, 9, 0, "front"), {})
        assert wait_for(lambda: node._slots._pending == 0)
        release.set()  # the hung batch returns, the node active again
        old.join(30)
        assert not old.is_alive()
        assert wait_for(lambda: node.health.snapshot().processed == 1)
        stamps = [m.message["header"]["stamp"]["sec"] for m in published
                  if m.topic == "/sp_late/front/detections"]
        assert stamps == [9], f"the late batch was published: {stamps}"
        values = status_values(published_status(node))  # counted, as lost to the deactivate
        assert values.get("lost[deactivated]") == "1", values
    finally:
        release.set()
        node.stop()
        node.destroy_node()



def test_a_worker_behind_a_hung_driver_pipeline_ends_when_the_node_lets_it_go(context, tmp_path,
                                                                             monkeypatch):
    """driver_monitor: a face model hung in one activation holds the pipeline's lock. The next
    activation's worker waited for that lock for ever, its frame with it; deactivated, it was
    left behind too, one more thread (and frame) each deactivate and activate. And the lock
    was the node's: after cleanup, configure and activate, the new pipeline's worker waited
    for it too, so the node never processed a frame again. The waiting worker now gives up
    once the node lets it go, each configure has a lock of its own, and the hung one's late
    frame is dropped."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros import driver_monitor_node, node_common
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    monkeypatch.setattr(node_common, "JOIN_TIMEOUT_S", 0.2)
    monkeypatch.setattr(node_common, "LOCK_POLL_S", 0.02, raising=False)  # (new here)
    monkeypatch.setattr(driver_monitor_node, "PIPELINE_WAIT_S", 0.2)
    gallery = tmp_path / "gallery"
    gallery.mkdir(mode=0o700)
    topic = "/sp_late/cabin/image_raw"
    node = DriverMonitorNode("late_driver", context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "attention.enabled": False,
        "gallery.path": str(gallery / "gallery.json"), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    published = record_published(monkeypatch)
    entered, release = threading.Event(), threading.Event()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        monkeypatch.setattr(node.identifier, "process",
                            hang(node.identifier.process, entered, release))
        face = read_bgr(PORTRAIT)
        camera_callback(node, topic)(image_msg(face, 1, 0, "cabin"), {})
        assert entered.wait(30)
        hung = node._worker
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        camera_callback(node, topic)(image_msg(face, 2, 0, "cabin"), {})
        waiting = node._worker  # takes the frame, then waits for the hung pipeline's lock
        assert wait_for(lambda: node._slots._pending == 0)
        # its deactivate need not wait JOIN_TIMEOUT_S for it: its frame is not in inference
        monkeypatch.setattr(node_common, "JOIN_TIMEOUT_S", 5.0)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert not waiting.is_alive(), "the worker still waits for the hung pipeline's lock"
        monkeypatch.setattr(node_common, "JOIN_TIMEOUT_S", 0.2)
        # a new pipeline: its worker runs while the old one is still hung
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        camera_callback(node, topic)(image_msg(face, 3, 0, "cabin"), {})
        assert wait_for(lambda: node.health.snapshot().processed == 1, 15), \
            "the new pipeline's worker waited for the hung one's lock"
        assert hung.is_alive()
        release.set()  # the hung one returns: its frame is of a pipeline gone
        hung.join(30)
        stamps = [m.message["header"]["stamp"]["sec"] for m in published
                  if m.topic == "/sp_late/cabin/faces"]
        assert stamps == [3], stamps
    finally:
        release.set()
        node.stop()
        node.destroy_node()


def _hung_first_session(monkeypatch: Any, entered: Any, release: Any) -> list[Any]:
    """The first onnxruntime session the nodes create does not return until ``release`` (a
    session creation hung in a provider's engine build or a GPU driver); the later ones load as
    they do. Returns the threads that created the hung one."""
    import onnxruntime

    real = onnxruntime.InferenceSession
    hung: list[Any] = []

    def session(*args: Any, **kwargs: Any) -> Any:
        if not hung:
            hung.append(threading.current_thread())
            entered.set()
            release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    return hung


def test_a_model_load_that_never_returns_fails_configure_after_warm_up_timeout_s(context,
                                                                               monkeypatch):
    """R85: R81 bounded the warm-up, not the load before it: an onnxruntime session creation
    that never returned held configure, and with it the node's executor (no /diagnostics, no
    shutdown), for ever. The load runs in a thread of its own as the warm-up does and fails
    after warm_up_timeout_s, naming the model, the time waited and the fix; the hung load,
    left behind, gives the next configure nothing and publishes nothing when it returns."""
    entered, release = threading.Event(), threading.Event()
    hung = _hung_first_session(monkeypatch, entered, release)
    published = record_published(monkeypatch)
    cam = "/sp_load_hung/front/image_raw"
    node = _detector_node(context, "load_hung_detector", cam, warm_up_timeout_s=0.5,
                          **{"runtime.openvino": "off", "runtime.providers":
                             ["CPUExecutionProvider"]}, **ONE_MODEL)
    try:
        message = _configure_gives_up(node, "not configured: the load of picodet_s_416 (an "
                                            "onnxruntime session on CPUExecutionProvider) has "
                                            "not returned after ")
        assert entered.is_set() and "CPUExecutionProvider alone" in message, message
        assert hung[0].name == "load_hung_detector-load" and hung[0].daemon and hung[0].is_alive()
        # the next configure loads its own detector while the hung load is still in its session
        _next_configure_is_untouched_by(hung[0], release, node, cam, published)
    finally:
        release.set()
        node.stop()
        node.destroy_node()


def test_driver_monitors_face_models_load_bounded_and_a_stop_ends_the_wait(context, tmp_path,
                                                                            monkeypatch):
    """R85, driver_monitor: its face models' load, hung, fails configure after
    warm_up_timeout_s naming the model; the next configure works; and a stop (Ctrl-C, SIGTERM:
    the context shut down) ends the wait at once, whatever the bound."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    gallery = tmp_path / "gallery"
    gallery.mkdir(mode=0o700)
    entered, release = threading.Event(), threading.Event()
    hung = _hung_first_session(monkeypatch, entered, release)
    params = {"camera_topic": "/sp_load_hung/cabin/image_raw", "no_input_warn_s": 60.0,
              "attention.enabled": False, "gallery.path": str(gallery / "gallery.json"),
              "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}
    node = DriverMonitorNode("load_hung_driver", context=context, parameter_overrides=overrides(
        **params, warm_up_timeout_s=0.5))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # was: never returned
        assert entered.is_set() and node.identifier is None
        assert node.config_error.startswith(
            "the load of yunet (an onnxruntime session on CPUExecutionProvider) has not returned "
            "after "), node.config_error
        assert "(warm_up_timeout_s 0.5)" in node.config_error
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        release.set()
        hung[0].join(30)
    finally:
        release.set()
        node.destroy_node()
    # a stop while a load hangs, the bound far off: the configure returns at once, no fault
    entered.clear()
    release.clear()
    hung.clear()
    node = DriverMonitorNode("load_stopped_driver", context=context,
                             parameter_overrides=overrides(**params))
    stopper = threading.Thread(target=lambda: entered.wait(30) and rclpy.try_shutdown(
        context=context))
    stopper.start()
    try:
        # the configure callback itself: rclpy cannot publish the transition of a context shut
        # down (`run` stops there, test_ros_node_life.py)
        result = node.on_configure(None)
        assert entered.is_set() and not context.ok()
        assert hung[0].is_alive()  # the load still hangs: the wait ended on the stop alone
        assert result == TransitionCallbackReturn.FAILURE and node.config_error == ""
    finally:
        release.set()
        stopper.join(30)
        node.destroy_node()
