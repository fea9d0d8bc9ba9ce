"""An inference that never returns, on the live nodes (in-process, SECURITY.md R69).

A hung GPU call or a deadlocked execution provider raises nothing: the node's worker thread stays
inside ``detect`` (or the driver pipeline) while the camera's frames keep arriving. The node's
status said ``ok``, ``frames_received`` growing and ``frames_processed`` standing still, and every
camera's health stayed at its last frame judged. The hang is a real one here (an Event the
injected model waits on); the time it lasts is an injected clock, so no test sleeps for it.
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


def test_an_inference_that_never_returns_is_an_error_naming_the_stall(context, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cam = "/sp_stall/front/image_raw"
    node = ObjectDetectorNode("stall_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": [cam], "no_input_warn_s": 60.0, "runtime.intra_op_threads": 1,
        "inference_stall_s": 2.0}))
    record_published(monkeypatch)
    entered, release = threading.Event(), threading.Event()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        clock = node._watch.clock = StallClock()
        monkeypatch.setattr(node.detector, "detect", hang(node.detector.detect, entered, release))
        street = read_bgr(STREET)[::2, ::2].copy()
        on_image = camera_callback(node, cam)
        on_image(image_msg(street, 5, 0, "front"), {})
        assert entered.wait(30)  # the worker is inside detect, for good
        for i in range(1, 4):  # the camera goes on: its frames wait
            on_image(image_msg(street, 5, i * 100_000_000, "front"), {})
        clock.now += 1.9  # within inference_stall_s: a slow batch is no stall
        assert level(published_status(node)) == 0
        clock.now += 1.1
        own, camera = published_statuses(node)
        values = status_values(own)
        assert level(own) == 2, own.message  # was OK: "ok"
        assert own.message.startswith("inference has not returned for 3 s (inference_stall_s 2; "
                                      f"its batch: {cam}); frames are waiting: 3 received since "
                                      f"it began ({cam}: 3)"), own.message
        assert values["frames_received"] == "4" and values["frames_processed"] == "0"
        assert values["inference_running_s"] == "3.0"
        # the camera waits on the stalled inference: it said its last verdict, OK, beside the
        # node's ERROR (R72); at least WARN now, naming the stall, its last verdict kept
        assert camera.hardware_id == cam and level(camera) == 1, camera.message
        assert camera.message.startswith("waiting for the node's inference, which has not "
                                         "returned for 3 s (inference_stall_s 2)"), camera.message
        assert camera.message.endswith("its last frame judged said: ok"), camera.message
        assert status_values(camera)["inference_running_s"] == "3.0"
        release.set()  # it returns: the batch, then the newest frame waiting
        assert wait_for(lambda: node.health.snapshot().processed == 2)
        assert wait_for(lambda: node._watch.running_s() is None)
        own, camera = published_statuses(node)
        assert level(own) == 0 and own.message == "ok", own.message
        assert "inference_running_s" not in status_values(own)
        assert level(camera) == 0 and camera.message == "ok", camera.message  # frames flow again
        # its stream timing measured every frame the camera sent, the two replaced unjudged
        # too: stamps 0.1 s apart (was 0.3 s, the frames judged; R69)
        assert status_values(camera)["stamp_step_s"] == "0.1", status_values(camera)
    finally:
        release.set()
        node.stop()
        node.destroy_node()


def test_a_stalled_face_model_is_an_error_and_holds_no_service_or_transition(context, tmp_path,
                                                                            monkeypatch):
    """driver_monitor: a face model that never returns is the same ERROR, and the driver is not
    reported ``no_face`` or looking away for it. Its gallery service and a cleanup waited for
    the pipeline's lock on the executor's thread, for ever: the service never answered and
    /diagnostics (the same executor) stopped, hiding the stall; both now give up after
    ``PIPELINE_WAIT_S``."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from std_srvs.srv import Trigger

    from sense_perception.ros import driver_monitor_node, node_common
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    monkeypatch.setattr(driver_monitor_node, "PIPELINE_WAIT_S", 0.2)
    monkeypatch.setattr(node_common, "JOIN_TIMEOUT_S", 0.2)  # deactivate: the worker is hung
    gallery = tmp_path / "gallery"
    gallery.mkdir(mode=0o700)
    topic = "/sp_stall/cabin/image_raw"
    node = DriverMonitorNode("stall_driver", context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": [0.0, 0.0, 1.0, 1.0],
        "gallery.path": str(gallery / "gallery.json"), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1, "inference_stall_s": 2.0}))
    entered, release = threading.Event(), threading.Event()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        clock = node._watch.clock = StallClock()
        face = read_bgr(PORTRAIT)
        on_image = camera_callback(node, topic)
        on_image(image_msg(face, 1, 0, "cabin"), {})
        assert wait_for(lambda: node.health.snapshot().processed == 1)
        before = status_values(published_status(node))
        assert before["attention_state"] == "attentive" and before["faces"] == "1"
        identifier = node.identifier
        monkeypatch.setattr(identifier, "process", hang(identifier.process, entered, release))
        on_image(image_msg(face, 1, 100_000_000, "cabin"), {})
        assert entered.wait(30)
        on_image(image_msg(face, 1, 200_000_000, "cabin"), {})
        clock.now += 5.0
        own = published_status(node)
        values = status_values(own)
        assert level(own) == 2 and own.message.startswith("inference has not returned for 5 s")
        assert f"frames are waiting: 1 received since it began ({topic}: 1)" in own.message
        assert values["driver_state"] == before["driver_state"] != "no_face"
        assert values["attention_state"] == "attentive"

        answered: list[Any] = []
        service = threading.Thread(target=lambda: answered.append(node._on_reload_gallery(
            Trigger.Request(), Trigger.Response())))
        service.start()
        service.join(10)  # was: waiting for the hung frame, the executor with it
        assert answered, "the gallery service waited for the hung face model"
        assert not answered[0].success and "has not returned from a frame" in answered[0].message

        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        cleanup = threading.Thread(target=lambda: answered.append(node.trigger_cleanup()))
        cleanup.start()
        cleanup.join(10)
        assert len(answered) == 2, "cleanup waited for the hung face model"
        assert answered[1] == TransitionCallbackReturn.SUCCESS and node.identifier is None
        worker = [t for t in threading.enumerate() if t.name == "stall_driver-worker"]
        release.set()  # the hung model returns after the cleanup let its models go
        for thread in worker:
            thread.join(10)
        # its frame, judged by a pipeline and a gallery the cleanup let go, is dropped: it set
        # the driver state /diagnostics shows unconfigured (and, configured again, under the
        # new gallery: a forgotten driver's id), and published on whatever publishers were
        # there by then (R71)
        assert node._last == {} and node._last_attention is None, node._last
    finally:
        release.set()
        node.stop()
        node.destroy_node()
