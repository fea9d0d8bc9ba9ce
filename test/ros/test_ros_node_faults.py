"""Faults as a lifecycle node shows them (issue 8, point 2), with nodes built in the test process.

The ROS-free side of each fault is tested in test/test_faults_*.py and test/test_health.py; these
tests check the node wiring: lifecycle state, the /diagnostics status, and that the node keeps going.
In-process nodes cost no process start-up, and a fault that cannot be set through a parameter (a
face model, which comes from the registry) can be injected.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ros_helpers import (DATA, image_msg, level, overrides, published_status, read_bgr, spin_until,
                         status_values, wait_for)

pytestmark = pytest.mark.ros

GPU_FIRST = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
STREET = DATA / "street" / "pandaset_seq002_front_camera_10.jpg"
PORTRAIT = DATA / "faces" / "obama_1_official_portrait_2012.jpg"
WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]  # portraits: the face is anywhere, not at a driver's seat position


def _gpu_available() -> bool:
    import onnxruntime as ort

    return bool({"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(ort.get_available_providers()))


def _assert_fallback_to_cpu(reasons: str) -> None:
    """What the default provider list gives on a machine without a GPU provider."""
    assert "TensorrtExecutionProvider skipped: not available" in reasons, reasons
    assert "CUDAExecutionProvider skipped" in reasons, reasons


def _private_gallery(tmp_path: Path) -> str:
    folder = tmp_path / "gallery"
    folder.mkdir(mode=0o700)
    return str(folder / "gallery.json")


# -- model missing or altered: the node stays unconfigured, the reason in /diagnostics -----------------

def test_altered_custom_model_leaves_the_detector_unconfigured_naming_the_file(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core.runtime.model_registry import MODELS
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    bundled = MODELS["picodet_s_416"].path()
    model = tmp_path / "my_detector.onnx"
    data = bundled.read_bytes()
    model.write_bytes(data[: len(data) // 2])  # a truncated copy: an interrupted download or copy
    node = ObjectDetectorNode("inproc_altered", context=context, parameter_overrides=overrides(**{
        "detector.model_path": str(model), "detector.labels_path": str(bundled.parent / "coco_labels.txt"),
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == "unconfigured" and node.detector is None
        assert str(model) in node.config_error and "not a readable ONNX model" in node.config_error
        assert "detector.model_path" in node.config_error  # the parameter to fix
        status = published_status(node)
        assert level(status) == 2
        assert status.message.startswith("not configured: ") and str(model) in status.message
        assert status_values(status)["state"] == "unconfigured"
    finally:
        node.destroy_node()


def test_altered_face_model_leaves_the_driver_monitor_unconfigured_naming_the_file(context, tmp_path,
                                                                                    monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core.runtime import model_registry
    from sense_perception.core.runtime.model_registry import MODELS
    from sense_perception.face import model_fold
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    # The registry points at copies in tmp (the installed weights are never touched); one bit of the
    # SFace copy is flipped: it would still load and silently give wrong identities.
    real = {name: spec.path() for name, spec in MODELS.items()}
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("yunet", "sface"):
        shutil.copyfile(real[name], weights / real[name].name)
    altered = weights / real["sface"].name
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0x01
    altered.write_bytes(bytes(data))
    monkeypatch.setattr(model_registry.ModelSpec, "path", lambda self: weights / real[self.name].name)
    monkeypatch.setenv(model_fold.CACHE_ENV, str(tmp_path / "cache"))

    node = DriverMonitorNode("inproc_face_fault", context=context, parameter_overrides=overrides(**{
        "gallery.path": _private_gallery(tmp_path), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == "unconfigured" and node.identifier is None
        for part in (str(altered), "is altered", "reinstall"):
            assert part in node.config_error, node.config_error
        status = published_status(node)
        assert level(status) == 2
        assert status.message.startswith("not configured: ") and str(altered) in status.message
    finally:
        node.destroy_node()


# -- an exception inside inference: frame dropped and counted, the node continues ---------------------

def test_driver_monitor_inference_exception_drops_the_frame_and_the_node_continues(context, tmp_path):
    """Also: with the default GPU-first providers on a machine without them, the diagnostics show the
    CPU provider in use and why each GPU provider was skipped."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    topic = "/sp_inproc/cabin/image_raw"
    node = DriverMonitorNode("inproc_driver_fault", context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": WHOLE_IMAGE,
        "gallery.path": _private_gallery(tmp_path), "runtime.providers": GPU_FIRST,
        "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        msg = image_msg(read_bgr(PORTRAIT), 7, 0, "cabin")
        identifier = node.identifier
        real_process = identifier.process
        calls = []

        def failing_once(image, t, camera_fault=False):  # fault injection: the first frame raises
            calls.append(t)
            if len(calls) == 1:
                raise RuntimeError("injected: YuNet Run() failed")
            return real_process(image, t, camera_fault=camera_fault)

        identifier.process = failing_once
        node._slots.put(0, msg)  # the path a camera callback takes, through the worker thread
        assert wait_for(lambda: node.health.snapshot().inference_errors == 1)
        snap = node.health.snapshot()
        assert snap.dropped_error == 1 and snap.processed == 0
        status = published_status(node)
        assert level(status) == 2
        assert "injected: YuNet Run() failed" in status.message and topic in status.message
        values = status_values(status)
        assert values["inference_errors"] == "1" and values["frames_dropped_error"] == "1"

        node._slots.put(0, msg)
        assert wait_for(lambda: node.health.snapshot().processed == 1), "worker stopped after a failure"
        assert node._worker.is_alive() and len(calls) == 2
        status = published_status(node)
        values = status_values(status)
        assert level(status) == 0, status.message  # the error was reported once; the node recovered
        assert values["driver_state"] in ("no_face", "unknown", "uncertain", "identified")
        assert values["faces"] == "1"  # the portrait's face was found after the failure
        if _gpu_available():
            return  # the fallback below happens only where the GPU providers are missing
        for model in ("yunet", "sface"):
            assert values[f"provider[{model}]"] == "CPUExecutionProvider"
            _assert_fallback_to_cpu(values[f"provider_fallback[{model}]"])
        assert status.hardware_id == "CPUExecutionProvider"
    finally:
        node.stop()
        node.destroy_node()


# -- camera silence and the provider in use, as /diagnostics carries them -----------------------------

def test_silent_camera_warns_only_while_active_and_clears_when_frames_arrive(context):
    """Real /diagnostics messages from the node's timer, received by a subscriber in the same graph."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import Image

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_inproc/silent/image_raw"
    name = "/inproc_silence"
    node = ObjectDetectorNode(name[1:], context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 1.0, "diagnostics_period_s": 0.5,
        "publish_debug_image": False, "runtime.providers": GPU_FIRST, "runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("inproc_silence_probe", context=context)
    statuses: list = []
    probe.create_subscription(DiagnosticArray, "/diagnostics",
                              lambda m: statuses.extend(s for s in m.status if s.name == name), 50)
    camera = probe.create_publisher(Image, topic, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        # Inactive: no subscription exists, so silence is expected and must not warn.
        statuses.clear()
        spin_until(executor, lambda: False, 1.8)  # longer than no_input_warn_s
        assert len(statuses) >= 2, "no diagnostics from the node's timer"
        assert all(level(s) == 0 and s.message.startswith("inactive") for s in statuses), \
            [s.message for s in statuses]
        values = status_values(statuses[-1])
        assert values["state"] == "inactive"
        if not _gpu_available():  # the fallback happens only where the GPU providers are missing
            assert values["provider"] == "CPUExecutionProvider" == statuses[-1].hardware_id
            _assert_fallback_to_cpu(values["provider_fallback"])

        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        statuses.clear()
        warned = spin_until(executor, lambda: [s for s in statuses if level(s) == 1], 5.0)
        assert warned, f"no WARN within 5 s: {[s.message for s in statuses]}"
        assert f"no input for 1 s on {topic}" in warned[0].message
        assert status_values(warned[0])[f"seconds_since_input[{topic}]"] == "never"

        frame = image_msg(read_bgr(STREET), 9, 0, "silent")
        statuses.clear()
        ok = None
        for _ in range(40):  # a 5 Hz camera starts publishing
            camera.publish(frame)
            ok = spin_until(executor, lambda: [s for s in statuses if level(s) == 0
                                     and int(status_values(s)["frames_received"]) >= 1], 0.2)
            if ok:
                break
        assert ok, f"still warning while frames arrive: {[s.message for s in statuses]}"
        assert ok[0].message == "ok" and status_values(ok[0])["state"] == "active"
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.stop()
        node.destroy_node()
        probe.destroy_node()


# -- a wait no thread can wait: refused at configure; a dead inference thread is an ERROR -------------

def test_a_batch_wait_beyond_any_wait_is_refused_and_a_dead_worker_is_an_error(context):
    """batch_wait_ms = 1e300 (or set so at run time, then configure) was accepted: with two cameras
    the first frame's wait for the other camera raised OverflowError in the inference thread, which
    ended, while /diagnostics went on saying 'ok' and no frame was ever processed again."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cams = ["/sp_wait/a/image_raw", "/sp_wait/b/image_raw"]
    node = ObjectDetectorNode("inproc_batch_wait", context=context, parameter_overrides=overrides(**{
        "camera_topics": cams, "batch_wait_ms": 1e300, "no_input_warn_s": 60.0,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "parameter 'batch_wait_ms' must be in [0, 1000] ms, got 1e+300" in node.config_error
        # the same value set at run time is refused by ROS (the parameter's range)
        assert not node.set_parameters([Parameter("batch_wait_ms", value=1e300)])[0].successful
        assert node.set_parameters([Parameter("batch_wait_ms", value=5.0)])[0].successful
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.config_error

        # should the inference thread end anyway (a wait it cannot do, injected here since no
        # parameter can cause it any more), /diagnostics says so instead of 'ok'
        node.GATHER_S = 1e300
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        node._slots.put(0, image_msg(read_bgr(STREET)[::2, ::2].copy(), 5, 0, "a"))
        assert wait_for(lambda: not node._worker.is_alive(), 10.0)
        status = published_status(node)
        assert level(status) == 2, status.message
        assert status.message.startswith("inference thread stopped (OverflowError"), status.message
        assert "deactivate and activate the node" in status.message
    finally:
        node.stop()
        node.destroy_node()


@pytest.mark.parametrize("name, value, expected", [
    # no timer can wait that long: building the node raised OverflowError, ending the process
    ("diagnostics_period_s", 1e300, "parameter 'diagnostics_period_s' must be in [0.01, 3600.0] s"),
    # a timer due every picosecond: /diagnostics flooded, the executor never idle
    ("diagnostics_period_s", 1e-12, "parameter 'diagnostics_period_s' must be in [0.01, 3600.0] s"),
    # rclpy cannot build such a QoS profile: configure and activate failed with a pybind11
    # TypeError that named no parameter
    ("output_depth", 2**62, "parameter 'output_depth' must be in [1, 1000], got 4611686018427387904"),
    ("input_depth", 2**62, "parameter 'input_depth' must be in [1, 1000], got 4611686018427387904"),
])
def test_node_parameters_no_timer_or_queue_can_hold_leave_the_node_unconfigured_naming_them(
        context, name, value, expected):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    for cls in (ObjectDetectorNode, DriverMonitorNode):
        node = cls(f"inproc_bad_{name}", context=context, parameter_overrides=overrides(**{name: value}))
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
            assert expected in node.config_error, node.config_error
            status = published_status(node)
            assert level(status) == 2 and expected in status.message, status.message
            assert node._diag_timer.timer_period_ns == 1_000_000_000  # the default meanwhile
        finally:
            node.destroy_node()


def test_a_cabin_camera_info_with_absurd_distortion_loses_the_head_pose_not_the_frames(context,
                                                                                       tmp_path):
    """A CameraInfo (a real subscription) whose 14 distortion coefficients are 1e30 undistorts the
    face mesh to one spot, and OpenCV's SQPnP asserted: every frame was then dropped as an
    inference error (faces, identity and attention with it) for as long as that CameraInfo held.
    Now such a frame has no head pose, and everything else is published."""
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import CameraInfo

    from sense_perception.ros import qos
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    topic = "/sp_distort/cabin/image_raw"
    node = DriverMonitorNode("inproc_absurd_distortion", context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": WHOLE_IMAGE,
        "gallery.path": _private_gallery(tmp_path), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("absurd_distortion_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    executor.add_node(node)
    bgr = read_bgr(PORTRAIT)
    h, w = bgr.shape[:2]
    info = CameraInfo(width=w, height=h, distortion_model="rational_polynomial")
    info.k = [float(w), 0.0, w / 2, 0.0, float(w), h / 2, 0.0, 0.0, 1.0]
    info.d = [1e30] * 14
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        pub = probe.create_publisher(CameraInfo, "/sp_distort/cabin/camera_info", qos.profile("reliable", 1))
        attention = node.identifier.attention
        end = time.monotonic() + 20.0
        while attention.intrinsics is None and time.monotonic() < end:
            pub.publish(info)
            executor.spin_once(timeout_sec=0.05)
        assert attention.intrinsics is not None and attention.intrinsics.distortion.size == 14
        for i in range(3):
            node._slots.put(0, image_msg(bgr, 7 + i, 0, "cabin"))
            assert wait_for(lambda n=i + 1: node.health.snapshot().processed
                            + node.health.snapshot().inference_errors >= n)
        snap = node.health.snapshot()
        assert snap.inference_errors == 0 and snap.processed == 3, snap.last_error
        values = status_values(published_status(node))
        assert values["faces"] == "1" and values["driver_state"] in ("unknown", "uncertain"), values
    finally:
        node.stop()
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()


def test_a_configure_failing_at_an_output_it_cannot_make_leaves_no_publisher_behind(context,
                                                                                    monkeypatch):
    """Autoware's ROIs on, tier4_perception_msgs not installed: configure failed at the ROI row
    (naming the package), but the camera's five publishers made before it (detections,
    label_info...) were never destroyed, and every configure tried again added five more on the
    same topics. Now the node holds the publishers it held before; fixed, it configures with one
    publisher per topic."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros import convert
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    real = convert._import

    def missing_tier4(namespaces, name):
        if namespaces[0] == "tier4_perception_msgs":
            raise convert.MessageConversionError(f"message type {name} cannot be imported (test)")
        return real(namespaces, name)

    monkeypatch.setattr(convert, "_import", missing_tier4)
    node = ObjectDetectorNode("inproc_output_leak", context=context, parameter_overrides=overrides(
        camera_topics=["/sp_output_leak/camera0/image_raw"], autostart=False,
        **{"autoware.rois_topic": "/sp_output_leak/rois{index}", "runtime.intra_op_threads": 1}))
    try:
        before = sorted(p.topic_name for p in node.publishers)
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "cannot be imported" in node.config_error, node.config_error
        assert sorted(p.topic_name for p in node.publishers) == before  # five were left
        assert not node._managed_entities
        monkeypatch.setattr(convert, "_import", real)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.config_error
        topics = [p.topic_name for p in node.publishers]
        assert "/sp_output_leak/rois0" in topics
        assert len(topics) == len(set(topics)), sorted(topics)
    finally:
        node.destroy_node()


def test_a_camera_publishing_the_other_image_type_on_the_topic_is_named_with_the_fix(context):
    """R48: a camera publishing CompressedImage on the topic the node reads as Image (a driver's
    JPEG stream on a topic not ending in /compressed) is never matched by DDS, and Fast DDS gives no
    incompatible-type event: the node said only "no input for N s" while `ros2 topic info` showed
    the camera there. /diagnostics now names the publisher's type and the fix (logged once)."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import CompressedImage

    from ros_helpers import end_context
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_inproc/wrong_type/image_raw"
    node = ObjectDetectorNode("inproc_wrong_type", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 0.2, "publish_debug_image": False,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    camera_context = rclpy.Context()  # the camera driver: a participant of its own
    rclpy.init(context=camera_context)
    camera = rclpy.create_node("wrong_type_camera", context=camera_context)
    try:
        camera.create_publisher(CompressedImage, topic, 10)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        status = wait_for(lambda: (s := published_status(node)) and "CompressedImage" in s.message
                          and s, timeout=15)
        assert status, f"the other type is not named: {published_status(node).message}"
        assert level(status) == 1, status.message
        assert "no input for" in status.message
        assert (f"{topic} has publishers of sensor_msgs/msg/CompressedImage, but this node reads it "
                "as sensor_msgs/msg/Image and receives nothing from them; fix: set "
                "camera_transports to compressed for it") in status.message, status.message
    finally:
        node.stop()
        node.destroy_node()
        camera.destroy_node()
        end_context(camera_context)
