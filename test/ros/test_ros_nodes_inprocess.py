"""Node behaviour checked in-process (no DDS traffic needed): failure paths and parameter handling.

Fault tests that need a node's /diagnostics or an injected model fault are in test_ros_node_faults.py."""
from __future__ import annotations

import contextlib
import time

import pytest

from ros_helpers import DATA, image_msg, overrides, published_status, read_bgr, status_values, wait_for

pytestmark = pytest.mark.ros


@contextlib.contextmanager
def run_pair(context, monitor: dict, detector: dict):
    """driver_monitor and object_detector built as `run` builds them (cabin first, each handed
    the other's cameras), with these keyword arguments each; both destroyed after."""
    from sense_perception.cli.run import cabin_first
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode
    from sense_perception.ros.run import to_parameters

    made = cabin_first({"driver_monitor": DriverMonitorNode, "object_detector": ObjectDetectorNode},
                       to_parameters)
    built = made["driver_monitor"](context=context, **monitor)
    try:
        other = made["object_detector"](context=context, **detector)
        try:
            yield built, other
        finally:
            other.destroy_node()
    finally:
        built.destroy_node()


def test_inference_failure_drops_the_frame_counts_it_and_the_node_continues(context):
    """Two cameras share one detect() call; it raises because of one frame: the batch is retried frame
    by frame, so only that frame is dropped and counted, the other camera's frame is published."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cams = ["/sp_inproc/cam_a/image_raw", "/sp_inproc/cam_b/image_raw"]
    node = ObjectDetectorNode("inproc_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": cams, "batch_wait_ms": 500.0, "no_input_warn_s": 60.0,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        good = image_msg(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg"), 5, 0, "cam_a")
        bad_image = read_bgr(DATA / "street" / "comma2k19_highway280_rav4_preview.png")
        bad = image_msg(bad_image, 5, 0, "cam_b")
        real_detect = node.detector.detect
        batches: list[int] = []

        def failing_detect(images):  # fault injection: onnxruntime failing on one particular frame
            batches.append(len(images))
            if any(im.shape == bad_image.shape for im in images):
                raise RuntimeError("injected: onnxruntime Run() failed")
            return real_detect(images)

        node.detector.detect = failing_detect
        node._slots.put(0, good)  # the path a camera callback takes, through the worker thread
        node._slots.put(1, bad)
        assert wait_for(lambda: node.health.snapshot().processed == 1 and len(batches) == 3)
        assert batches == [2, 1, 1]  # one batch of both cameras, then each frame alone
        snap = node.health.snapshot()
        assert snap.inference_errors == 1 and snap.dropped_error == 1
        status = node.health.report("n")
        assert status["level"] == 2 and "injected: onnxruntime Run() failed" in status["message"]
        assert cams[1] in status["message"] and cams[0] not in status["message"]  # the camera at fault
        node.detector.detect = real_detect
        node._slots.put(1, bad)
        assert wait_for(lambda: node.health.snapshot().processed == 2), "worker stopped after a failure"
        assert node._worker.is_alive() and node.health.snapshot().inference_errors == 1
    finally:
        node.stop()
        node.destroy_node()


def test_unknown_parameter_leaves_the_node_unconfigured_with_the_reason(context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("inproc_typo", context=context,
                              parameter_overrides=overrides(camera_topic="/typo/image_raw"))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == "unconfigured"
        assert "unknown parameter(s) camera_topic" in node.config_error
        assert "camera_topics" in node.config_error  # the valid names are listed
    finally:
        node.destroy_node()


def test_identity_is_refused_on_an_exterior_camera(context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode("inproc_driver", context=context,
                             parameter_overrides=overrides(camera_role="front", camera_topic="/front/image_raw"))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.identifier is None and node.lifecycle_state == "unconfigured"
        assert "refused" in node.config_error and "front" in node.config_error
        assert node._pubs == {}  # nothing to publish identity on
    finally:
        node.destroy_node()


def test_node_parameters_are_declared_with_descriptions(context):
    from sense_perception.ros.object_detector_node import ObjectDetectorNode
    from sense_perception.ros.settings import ObjectDetectorSettings

    node = ObjectDetectorNode("inproc_params", context=context)
    try:
        import dataclasses

        for f in dataclasses.fields(ObjectDetectorSettings):
            assert node.has_parameter(f.name)
            descriptor = node.describe_parameter(f.name)
            assert descriptor.description, f.name
        assert node.get_parameter("input_reliability").value == "best_effort"
    finally:
        node.destroy_node()


def test_input_size_limits_apply_to_the_node_frames(context):
    """The ``input.*`` limits the replay applies: a frame beyond one is a counted decode error that
    names the limit; a frame within them is processed."""
    import cv2
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core.imaging.frame_guard import InputLimits
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_inproc/limits/image_raw"
    node = ObjectDetectorNode("inproc_limits", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 60.0, "input.max_width": 1280,
        "input.max_pixels": 1_000_000, "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.limits == InputLimits(max_width=1280, max_pixels=1_000_000)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")  # 1920 x 1080
        node._slots.put(0, image_msg(street, 3, 0, "cam"))
        assert wait_for(lambda: node.health.snapshot().decode_errors == 1)
        status = node.health.report("n")
        assert status["level"] == 2 and "input.max_width=1280" in status["message"] and topic in status["message"]
        small = cv2.resize(street, (960, 540), interpolation=cv2.INTER_AREA)  # 0.52 MP: within both
        node._slots.put(0, image_msg(small, 4, 0, "cam"))
        assert wait_for(lambda: node.health.snapshot().processed == 1)
        assert node.health.snapshot().decode_errors == 1
    finally:
        node.stop()
        node.destroy_node()


def test_a_12_bit_mono16_camera_is_read_with_input_mono16_bits(context):
    """A 12-bit sensor's mono16 frames (0-4095) read as the picture with ``input.mono16_bits: 12``
    on the node, the same decode the replay does; the node's default (16) reads them nearly black."""
    import cv2
    import numpy as np
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import Image

    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    grey = cv2.cvtColor(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg"), cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (480, 270), interpolation=cv2.INTER_AREA)
    msg = Image(height=270, width=480, encoding="mono16", is_bigendian=0, step=960)
    msg.data = (grey.astype("<u2") * 16).tobytes()
    means = {}
    for bits in (16, 12):
        node = ObjectDetectorNode(f"inproc_mono16_{bits}", context=context, parameter_overrides=overrides(**{
            "camera_topics": ["/sp_inproc/mono16/image_raw"], "input.mono16_bits": bits,
            "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.limits.mono16_bits == bits
            image = node.decode(Frame(0, msg, time.monotonic()))
            means[bits] = float(np.mean(image))
        finally:
            node.destroy_node()
    assert means[16] < 16 and abs(means[12] - float(np.mean(grey))) < 1.0


@pytest.mark.parametrize("name, value, expected", [
    ("input.mono16_bits", 17, "input.mono16_bits must be an integer in 8..16"),
    ("decode_max_pixels", 50_000_000, "'decode_max_pixels' was replaced by input.max_pixels"),
    ("inputs.max_pixels", 1000, "unknown parameter(s) inputs.max_pixels"),  # a misspelt prefix
    ("input.max_pixel", 1000, "unknown parameter 'input.max_pixel'"),
    ("input.max_width", 0, "input.max_width must be a positive integer"),
])
def test_bad_input_parameters_leave_the_node_unconfigured(context, name, value, expected):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("inproc_bad_input", context=context, parameter_overrides=overrides(**{name: value}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == "unconfigured" and node.detector is None
        assert expected in node.config_error, node.config_error
    finally:
        node.destroy_node()


def test_annotations_are_built_only_while_subscribed(context, monkeypatch):
    """``publish_annotations``: nothing is built for nobody; with a subscriber, one ImageAnnotations per
    frame with the frame's stamp and one closed box per published detection."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from foxglove_msgs.msg import ImageAnnotations
    from vision_msgs.msg import Detection2DArray

    from sense_perception.core.output import frame_outputs
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    built: list[int] = []
    real = frame_outputs.image_annotations

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(frame_outputs, "image_annotations", counting)
    topic = "/sp_inproc/ann/image_raw"
    node = ObjectDetectorNode("inproc_annotations", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 60.0, "tracking.enabled": False,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("inproc_annotations_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.annotations_state == "on (while subscribed)"
        frame = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")
        detections: list = []
        probe.create_subscription(Detection2DArray, "/sp_inproc/ann/detections", detections.append, 10)
        node._slots.put(0, image_msg(frame, 5, 0, "ann"))
        assert wait_for(lambda: node.health.snapshot().processed == 1)
        assert built == []  # nobody subscribed: not even built

        got: list = []
        probe.create_subscription(ImageAnnotations, "/sp_inproc/ann/annotations", got.append, 10)
        publisher = node._outputs[0][1]["annotations"]  # (namespace, publishers) of camera 0
        end = time.monotonic() + 20.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert publisher.get_subscription_count() == 1
        node._slots.put(0, image_msg(frame, 6, 250, "ann"))
        end = time.monotonic() + 30.0
        while not (got and any(d.header.stamp.sec == 6 for d in detections)) and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert len(built) == 1 and len(got) == 1
        [ann] = got
        [det] = [d for d in detections if d.header.stamp.sec == 6]
        assert len(ann.points) == len(det.detections) > 0
        for poly, d in zip(ann.points, det.detections, strict=True):
            assert (poly.timestamp.sec, poly.timestamp.nanosec) == (6, 250)
            assert poly.type == poly.LINE_LOOP and len(poly.points) == 4
            x1 = d.bbox.center.position.x - d.bbox.size_x / 2
            assert abs(poly.points[0].x - x1) < 1e-6
    finally:
        node.stop()
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()


def test_annotations_off_creates_no_publisher(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode("inproc_no_annotations", context=context, parameter_overrides=overrides(**{
        "camera_topic": "/sp_inproc/cabin_off/image_raw", "publish_annotations": False,
        "gallery.path": str(tmp_path / "gallery.json"),
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert "annotations" not in node._pubs and "faces" in node._pubs
        assert node.annotations_state == "off (publish_annotations: false)"
        assert not node.count_publishers("/sp_inproc/cabin_off/annotations")
    finally:
        node.destroy_node()



def test_missing_foxglove_msgs_leaves_annotations_unavailable_and_the_node_working(context, tmp_path,
                                                                                  monkeypatch):
    """A ROS install without foxglove_msgs: the node still configures and publishes its real outputs;
    the log and /diagnostics say why there are no annotations and how to get them."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros import node_common
    from sense_perception.ros.convert import MessageConversionError
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    real = node_common.msg_class

    def missing(name):  # every other package is there
        if not name.startswith("foxglove_msgs/"):
            return real(name)
        raise MessageConversionError(f"message type {name} cannot be imported (No module named 'foxglove_msgs')")

    monkeypatch.setattr(node_common, "msg_class", missing)
    node = DriverMonitorNode("inproc_no_foxglove", context=context, parameter_overrides=overrides(**{
        "camera_topic": "/sp_inproc/cabin_nofox/image_raw", "gallery.path": str(tmp_path / "gallery.json"),
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert "annotations" not in node._pubs and "faces" in node._pubs
        assert node.annotations_state.startswith("unavailable: message type foxglove_msgs/msg/ImageAnnotations")
        assert status_values(published_status(node))["annotations"] == node.annotations_state
    finally:
        node.destroy_node()


@pytest.mark.parametrize("rule", [
    "/sp_remap/front/image_raw:=/sp_remap/cabin/image_raw",  # the detector's camera onto the cabin
    "/sp_remap/cabin/image_raw/compressed:=/sp_remap/front/image_raw/compressed",  # and back
])
def test_a_remap_joining_a_camera_with_the_cabin_camera_is_refused_at_configure(context, rule):
    """`--ros-args -r FROM:=TO` (or a launch file's remappings) changes the topic a subscription
    takes, not the parameter: configure compared the names as given, and object_detector
    subscribed to the driver's camera (its debug image and annotations would publish the face).
    The names as the node resolves them are compared now; configure fails before any model."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("inproc_remap", context=context, cli_args=["--ros-args", "-r", rule],
                              parameter_overrides=overrides(**{
                                  "camera_topics": ["/sp_remap/front/image_raw"],
                                  "cabin_camera_topic": "/sp_remap/cabin/image_raw/compressed",
                                  "runtime.providers": ["CPUExecutionProvider"]}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.detector is None and node.lifecycle_state == "unconfigured"
        assert "is the cabin camera" in node.config_error and "remapped to" in node.config_error
        assert "remove the remap rule" in node.config_error
    finally:
        node.destroy_node()


def test_run_gives_object_detector_the_cabin_camera_as_driver_monitor_resolves_it(context):
    """`run` handed object_detector driver_monitor's camera_topic parameter: a remap of
    driver_monitor alone (`-r driver_monitor:FROM:=TO`) pointing it at an exterior camera ran
    face identification there and the detector on it too, unrefused. The name driver_monitor
    subscribes to is object_detector's cabin camera now."""
    from rclpy.lifecycle import TransitionCallbackReturn

    with run_pair(context, monitor=dict(
            node_name="inproc_remap_dm",
            cli_args=["--ros-args", "-r", "/sp_remap2/cabin/image_raw:=/sp_remap2/front/image_raw"],
            parameter_overrides=overrides(camera_topic="/sp_remap2/cabin/image_raw")),
            detector=dict(node_name="inproc_remap_od", parameter_overrides=overrides(**{
                "camera_topics": ["/sp_remap2/front/image_raw"],
                "runtime.providers": ["CPUExecutionProvider"]}))) as (_, detector):
        assert detector.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "/sp_remap2/front/image_raw is the cabin camera" in detector.config_error


@pytest.mark.parametrize("cli_args, camera_topic", [
    ([], "/sp_ext/front/image_raw/compressed"),  # named so (a config or -p slip)
    ([], "/sp_ext/front/image_rect_color"),  # its rectified image is that camera (R70)
    (["--ros-args", "-r", "/sp_ext/cabin/image_raw:=/sp_ext/front/image_raw"],  # or remapped so
     "/sp_ext/cabin/image_raw"),
    # a bare name resolves in the node's namespace (R74: the replay, knowing none, never guesses)
    (["--ros-args", "-r", "__ns:=/sp_ext/front"], "image_rect_color"),
])
def test_driver_monitor_refuses_an_exterior_camera_at_configure(context, cli_args, camera_topic):
    """driver_monitor ran face identification on a camera object_detector's camera_topics name
    (an exterior camera: pedestrians never consented), whenever it ran without object_detector
    in its process (`run --nodes driver_monitor`, the launch files); its exterior_camera_topics
    refuse it now, as given or as remapped, before any model loads."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode("inproc_ext_dm", context=context, cli_args=cli_args,
                             parameter_overrides=overrides(**{
                                 "camera_topic": camera_topic,
                                 "exterior_camera_topics": ["/sp_ext/front/image_raw"]}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.identifier is None and node.lifecycle_state == "unconfigured"
        assert "face identification refused on camera_topic" in node.config_error
        assert "exterior_camera_topics" in node.config_error
    finally:
        node.destroy_node()


def test_run_hands_driver_monitor_the_cameras_object_detector_took(context):
    """`run -- --ros-args -p object_detector:camera_topics:=[C]` naming the camera driver_monitor
    watches: object_detector refused it (P12) and driver_monitor identified faces on a camera
    that command line calls exterior. run hands driver_monitor object_detector's cameras."""
    from rclpy.lifecycle import TransitionCallbackReturn

    with run_pair(context, monitor=dict(
            node_name="inproc_ext_run_dm", parameter_overrides=overrides(camera_topic="/sp_ext3/cam/image_raw")),
            detector=dict(node_name="inproc_ext_run_od",
                          parameter_overrides=overrides(camera_topics=["/sp_ext3/cam/image_raw"]))) as (monitor, _):
        assert monitor.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "face identification refused on camera_topic /sp_ext3/cam/image_raw" in \
            monitor.config_error


def test_run_hands_the_cameras_set_at_run_time_over_at_each_configure(context):
    """`run` handed each node the other's cameras once, when it built them: after `ros2 param
    set /object_detector camera_topics [..., /side]` (cleanup, set, configure, as the refusal of a
    set names) driver_monitor, set to /side in turn, configured and ran face identification on
    that exterior camera; and object_detector, set to driver_monitor's new cabin camera, ran the
    detector (its debug image and annotations) on the driver's face. Each configure takes the
    other node's cameras as they are now."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    with run_pair(context, monitor=dict(
            node_name="inproc_rt_dm", parameter_overrides=overrides(camera_topic="/sp_rt/cabin/image_raw")),
            detector=dict(node_name="inproc_rt_od", parameter_overrides=overrides(**{
                "camera_topics": ["/sp_rt/front/image_raw"],
                "runtime.providers": ["CPUExecutionProvider"]}))) as (monitor, detector):
        # both unconfigured: `ros2 param set` is taken, read at the next configure
        assert detector.set_parameters([Parameter("camera_topics", value=[
            "/sp_rt/front/image_raw", "/sp_rt/side/image_raw"])])[0].successful
        assert monitor.set_parameters([Parameter("camera_topic", value="/sp_rt/side/image_raw")])[0].successful
        assert monitor.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "face identification refused on camera_topic /sp_rt/side/image_raw" in monitor.config_error
        assert monitor.identifier is None and monitor.lifecycle_state == "unconfigured"
        # the other way round: driver_monitor moved to another cabin camera, then object_detector
        # pointed at it
        assert monitor.set_parameters([Parameter("camera_topic", value="/sp_rt/cabin2/image_raw")])[0].successful
        assert detector.set_parameters([Parameter("camera_topics", value=[
            "/sp_rt/front/image_raw", "/sp_rt/cabin2/image_raw"])])[0].successful
        assert detector.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "/sp_rt/cabin2/image_raw is the cabin camera" in detector.config_error
        assert detector.detector is None and detector.lifecycle_state == "unconfigured"


def test_a_camera_object_detector_no_longer_takes_leaves_driver_monitor_s_exterior_list(
        context, tmp_path):
    """`run` handed driver_monitor object_detector's cameras at each configure (R92) by adding
    them to ``exterior_camera_topics``, and the config loader had put the file's there before:
    a camera object_detector took once stayed exterior until a restart. After `ros2 param set
    /object_detector camera_topics [/front]` (no longer /side), driver_monitor set to /side was
    refused at configure ("face identification refused on camera_topic /side"), a camera no node
    calls exterior. Each hand-over now replaces the last; the user's own entries stay (R95)."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from ros_helpers import write_params

    from sense_perception.cli.run import node_plan
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode
    from sense_perception.ros.run import to_parameters

    front, side, rear = (f"/sp_stale/{c}/image_raw" for c in ("front", "side", "rear"))
    config = write_params(tmp_path / "run.yaml", {
        "object_detector": {"camera_topics": [front, side]},
        "driver_monitor": {"camera_topic": "/sp_stale/cabin/image_raw",
                           "gallery": {"path": str(tmp_path / "gallery.json")},
                           "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}}})
    factories, kwargs = node_plan(str(config), ["object_detector", "driver_monitor"], "",
                                  {"object_detector": ObjectDetectorNode,
                                   "driver_monitor": DriverMonitorNode}, to_parameters)
    names = ["inproc_stale_dm", "inproc_stale_od"]  # driver_monitor first, as run makes them
    monitor, detector = (factory(node_name=name, context=context, **kw)
                         for factory, kw, name in zip(factories, kwargs, names, strict=True))
    try:
        monitor.take_peer_cameras()  # what its configure does first
        assert monitor.get_parameter("exterior_camera_topics").value == [front, side]
        assert detector.set_parameters([Parameter("camera_topics", value=[front])])[0].successful
        assert monitor.set_parameters([Parameter("camera_topic", value=side)])[0].successful
        assert monitor.trigger_configure() == TransitionCallbackReturn.SUCCESS, monitor.config_error
        assert monitor.get_parameter("exterior_camera_topics").value == [front]
        assert monitor.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        # an exterior camera the user sets is theirs and stays; a camera object_detector takes
        # again is exterior again at the next configure
        assert monitor.set_parameters([Parameter("exterior_camera_topics", value=[rear])])[0].successful
        assert detector.set_parameters([Parameter("camera_topics", value=[front, side])])[0].successful
        assert monitor.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert f"face identification refused on camera_topic {side}" in monitor.config_error
        assert monitor.get_parameter("exterior_camera_topics").value == [rear, front, side]
        assert detector.set_parameters([Parameter("camera_topics", value=[front])])[0].successful
        monitor.take_peer_cameras()
        assert monitor.get_parameter("exterior_camera_topics").value == [rear, front]
    finally:
        detector.destroy_node()
        monitor.destroy_node()


def _run_pair(context, tmp_path, tag, monitor_ns, monitor_camera, detector_ns, detector_cameras):
    """driver_monitor and object_detector as `run` makes them, each in its own namespace as
    `--ros-args -r driver_monitor:__ns:=NS` puts it (a node's own remap rule)."""
    from ros_helpers import write_params

    from sense_perception.cli.run import node_plan
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode
    from sense_perception.ros.run import to_parameters

    config = write_params(tmp_path / f"{tag}.yaml", {
        "object_detector": {"camera_topics": detector_cameras,
                            "runtime": {"providers": ["CPUExecutionProvider"]}},
        "driver_monitor": {"camera_topic": monitor_camera,
                           "gallery": {"path": str(tmp_path / f"{tag}.json")},
                           "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}}})
    factories, kwargs = node_plan(str(config), ["object_detector", "driver_monitor"], "",
                                  {"object_detector": ObjectDetectorNode,
                                   "driver_monitor": DriverMonitorNode}, to_parameters)
    made = [factory(node_name=f"inproc_{tag}_{i}", context=context,
                    cli_args=["--ros-args", "-r", f"__ns:={ns}"], **kw)
            for i, (factory, kw, ns) in enumerate(zip(factories, kwargs, (monitor_ns, detector_ns),
                                                      strict=True))]
    return made[0], made[1]


@pytest.mark.parametrize("monitor_ns, monitor_camera, detector_ns, detector_camera", [
    ("/sp_ns1/cabin", "image_raw", "/", "/sp_ns1/cabin/image_raw"),  # absolute onto relative
    ("/sp_ns2/cabin", "image_raw", "/sp_ns2", "cabin/image_raw"),  # relative onto relative
    ("/", "/sp_ns3/ext/image_raw", "/sp_ns3/ext", "image_raw"),  # relative onto absolute
])
def test_run_refuses_the_cabin_camera_across_namespaces(context, tmp_path, monitor_ns,
                                                        monitor_camera, detector_ns, detector_camera):
    """The nodes of `run` in different namespaces (`-r driver_monitor:__ns:=...`): a camera both
    resolve alike is refused to each, whatever names they give it (probed: sound)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    monitor, detector = _run_pair(context, tmp_path, "nsx", monitor_ns, monitor_camera,
                                  detector_ns, [detector_camera])
    try:
        assert monitor.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "face identification refused on camera_topic" in monitor.config_error
        assert detector.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "is the cabin camera" in detector.config_error, detector.config_error
    finally:
        detector.destroy_node()
        monitor.destroy_node()


def test_run_does_not_refuse_a_camera_of_one_name_in_another_namespace(context, tmp_path):
    """`run` handed driver_monitor object_detector's cameras as given as well as resolved,
    assuming one namespace: with driver_monitor in /cabin on `image_raw` (/cabin/image_raw) and
    object_detector in /front on `image_raw` (/front/image_raw), two cameras, driver_monitor was
    refused at configure ("face identification refused on camera_topic image_raw"). A relative
    name is handed as object_detector resolves it only now (R95)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    monitor, detector = _run_pair(context, tmp_path, "nsok", "/sp_nsok/cabin", "image_raw",
                                  "/sp_nsok/front", ["image_raw"])
    try:
        assert monitor.trigger_configure() == TransitionCallbackReturn.SUCCESS, monitor.config_error
        assert monitor.get_parameter("exterior_camera_topics").value == ["/sp_nsok/front/image_raw"]
    finally:
        detector.destroy_node()
        monitor.destroy_node()


def test_a_cabin_camera_the_user_gave_object_detector_is_kept_at_each_configure(context):
    """R92 hands driver_monitor's camera to object_detector at each configure; a
    cabin_camera_topic the user gave object_detector wins over it, as when `run` built them."""
    from rclpy.parameter import Parameter

    with run_pair(context, monitor=dict(
            node_name="inproc_rt2_dm", parameter_overrides=overrides(camera_topic="/sp_rt2/cabin/image_raw")),
            detector=dict(node_name="inproc_rt2_od", parameter_overrides=overrides(**{
                "cabin_camera_topic": "/sp_rt2/mine/image_raw",
                "camera_topics": ["/sp_rt2/front/image_raw"]}))) as (monitor, detector):
        assert monitor.set_parameters([Parameter("camera_topic", value="/sp_rt2/cabin2/image_raw")])[0].successful
        detector.take_peer_cameras()  # what its configure does first
        assert detector.get_parameter("cabin_camera_topic").value == "/sp_rt2/mine/image_raw"


def test_a_node_started_alone_takes_the_other_node_s_cameras_from_its_params_file(context, tmp_path):
    """`ros2 run sense_perception driver_monitor --ros-args --params-file FILE` (the way
    docs/ros2-nodes.md starts it alone): rclpy gives the node its own section of FILE only, so
    driver_monitor knew none of the exterior cameras FILE lists under object_detector and ran
    face identification on one given as camera_topic; object_detector likewise knew FILE's cabin
    camera only if its own section named it. A node started alone takes them from FILE now."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode
    from sense_perception.ros.run import alone_kwargs

    params = tmp_path / "params.yaml"
    params.write_text("object_detector:\n  ros__parameters:\n"
                      "    camera_topics: [/sp_alone/front/image_raw]\n"
                      "driver_monitor:\n  ros__parameters:\n"
                      "    camera_topic: /sp_alone/front/image_raw/compressed\n")
    args = ["--ros-args", "--params-file", str(params)]
    # named as `ros2 run` names them: rclpy reads the file's section of that name
    monitor = DriverMonitorNode("driver_monitor", context=context, cli_args=args,
                                **alone_kwargs(DriverMonitorNode, ["driver_monitor", *args]))
    detector = ObjectDetectorNode("object_detector", context=context, cli_args=args,
                                  **alone_kwargs(ObjectDetectorNode, ["object_detector", *args]))
    try:
        assert monitor.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "face identification refused on camera_topic" in monitor.config_error
        assert detector.get_parameter("cabin_camera_topic").value == \
            "/sp_alone/front/image_raw/compressed"
        assert detector.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "is the cabin camera" in detector.config_error
    finally:
        detector.destroy_node()
        monitor.destroy_node()
