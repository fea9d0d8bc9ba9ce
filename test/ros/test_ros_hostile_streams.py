"""Hostile camera streams and service calls against the running nodes (built in the test process,
frames sent as real messages through a real publisher and the node's own subscription and
inference thread): what a node holds must stay bounded whatever the stamps, and a forgotten
driver must not be shown after the gallery was reloaded.

SECURITY.md R19 names these tests.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from ros_helpers import DATA, image_msg, overrides, published_status, read_bgr, status_values

pytestmark = pytest.mark.ros

WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]  # a portrait: the face is anywhere, not at a driver's seat position
FACE = DATA / "faces" / "obama_3_blue_room_2010.jpg"


class Camera:
    """A camera publisher in the node's context, spun with the node on one executor."""

    def __init__(self, context: Any, node: Any, topic: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = node
        self.pub_node = rclpy.create_node(f"camera_{node.get_name()}", context=context)
        self.pub = self.pub_node.create_publisher(Image, topic, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.executor.add_node(self.pub_node)

    def send(self, msg: Any, timeout: float = 20.0) -> None:
        """Publish ``msg`` (again, until it arrives: discovery) and wait until the node's
        inference thread has processed it."""
        target = self.node.health.snapshot().processed + 1
        end = time.monotonic() + timeout
        while self.node.health.snapshot().processed < target:
            assert time.monotonic() < end, f"frame not processed within {timeout} s"
            if self.node.health.snapshot().received < target:
                self.pub.publish(msg)
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, name: str) -> Any:
        """Call the std_srvs/Trigger service ``name`` through a real client; its response."""
        from std_srvs.srv import Trigger

        client = self.pub_node.create_client(Trigger, name)
        try:
            end = time.monotonic() + 20.0
            while not client.service_is_ready():
                assert time.monotonic() < end, f"service {name} not available"
                self.executor.spin_once(timeout_sec=0.05)
            future = client.call_async(Trigger.Request())
            self.executor.spin_until_future_complete(future, timeout_sec=20.0)
            assert future.done(), f"service {name} did not answer"
            return future.result()
        finally:
            self.pub_node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.pub_node.destroy_node()


def _driver_monitor(context: Any, name: str, topic: str, gallery: Any, **params: Any) -> Any:
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode(name, context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": WHOLE_IMAGE,
        "gallery.path": str(gallery), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1, **params}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return node


def test_a_cabin_camera_whose_stamps_stand_still_holds_bounded_attention_state(context, tmp_path):
    """A camera whose header stamps stand still (paused sim time; R39: a camera that never stamps
    its frames, 0, is timed by their arrival): the attention's time windows never saw time pass,
    so nothing left them; each frame added an item to six windows, for as long as the node ran
    (30 frames: 155 items). Now frames without time between them share an item."""
    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    face = read_bgr(FACE)[::2, ::2].copy()
    topic = "/sp_hostile_zero/cabin/image_raw"
    node = _driver_monitor(context, "hostile_zero_stamps", topic, gallery)
    camera = Camera(context, node, topic)
    try:
        monitor = node.identifier.attention.monitor
        rng = np.random.default_rng(0)
        for _ in range(30):  # a live camera's noise: the pixels are never frozen
            noisy = np.clip(face + rng.normal(0.0, 2.0, face.shape), 0, 255).astype(np.uint8)
            camera.send(image_msg(noisy, 7, 0, "cabin"))
        values = status_values(published_status(node))
        assert values["faces"] == "1" and int(values["frames_processed"]) >= 30, values
        # one item per window (six); calibration samples only from the first frames: from the
        # fifth, camera health calls stamps that stand still frozen, a camera fault
        assert monitor.held["windows"] <= 6, f"attention holds {monitor.held} after 30 frames"
        assert monitor.held["samples"] <= 3 * 5, monitor.held
    finally:
        camera.close()
        node.stop()
        node.destroy_node()


def test_a_cabin_camera_that_never_stamps_its_frames_is_timed_by_their_arrival(context, tmp_path,
                                                                             monkeypatch):
    """R39: every header stamp 0 (a driver leaving them unset): attention, timed by the stamps,
    never saw time pass (no second in any state, no eyes-off-road ever timed) and camera health
    called the camera `frozen`, a camera fault, for as long as it ran. Timed by the frames'
    arrival now, as its camera health and an exterior camera's tracks are; outputs keep stamp 0."""
    from ros_helpers import record_published
    from sense_perception.ros.frame_slots import Frame

    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    face = read_bgr(FACE)[::2, ::2].copy()
    topic = "/sp_hostile_unstamped_cabin/cabin/image_raw"
    node = _driver_monitor(context, "hostile_unstamped_cabin", topic, gallery)
    try:
        published = record_published(monkeypatch)
        rng = np.random.default_rng(0)
        start = time.monotonic()
        for i in range(15):  # 5 Hz, as they arrive: the node's clock at arrival times them
            noisy = np.clip(face + rng.normal(0.0, 2.0, face.shape), 0, 255).astype(np.uint8)
            node.process([Frame(0, image_msg(noisy, 0, 0, "cabin"), start + 0.2 * i)])
        spent = node.identifier.attention.monitor.time_in_state
        assert sum(spent.values()) == pytest.approx(14 * 0.2, abs=0.01), spent
        assert spent.get("camera_fault", 0.0) == 0.0, spent
        health = [m.message for m in published if m.topic.endswith("/camera_health")]
        assert len(health) == 15 and all(h["message"] == "ok" for h in health), \
            [h["message"] for h in health]
        assert all(m.message["header"]["stamp"] == {"sec": 0, "nanosec": 0}
                   for m in published if m.topic.endswith("/driver_attention"))
        assert node.frame_clock.unstamped == {topic}
    finally:
        node.stop()
        node.destroy_node()


def test_a_driver_forgotten_while_reloads_hammer_the_node_is_never_shown_again(context, tmp_path):
    """`driver forget` (the real command) while ~/reload_gallery is called again and again and
    frames flow: once forget returned and a reload answered, no frame identifies the driver. And
    a driver forgotten after the camera stopped: /diagnostics kept showing their id as the
    identified driver after the reload, until a next frame came (never, with the camera off)."""
    import subprocess
    import sys

    from vision_msgs.msg import Classification

    from ros_helpers import ROOT
    from sense_perception.face import ConsentRecord, FaceConfig, FaceEngine, GalleryStore

    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    engine = FaceEngine(FaceConfig(driver_region=WHOLE_IMAGE))
    photos = [DATA / "faces" / "obama_1_official_portrait_2012.jpg",
              DATA / "faces" / "obama_2_congress_2009.jpg"]
    templates = np.stack([engine.driver_embedding(read_bgr(p))[2] for p in photos])

    def enrol() -> str:
        return GalleryStore(gallery).enroll("Barack Obama", templates,
                                            ConsentRecord.now("Barack Obama")).id

    driver = enrol()
    topic = "/sp_hostile_forget/cabin/image_raw"
    node = _driver_monitor(context, "hostile_forget", topic, gallery)
    camera = Camera(context, node, topic)
    identities: list[Any] = []
    camera.pub_node.create_subscription(Classification, "/sp_hostile_forget/cabin/driver_identity",
                                        identities.append, 100)
    face = read_bgr(FACE)[::2, ::2].copy()
    rng = np.random.default_rng(1)
    stamp = [100.0]
    reload = f"/{node.get_name()}/reload_gallery"

    def frame() -> Any:
        stamp[0] += 0.1
        noisy = np.clip(face + rng.normal(0.0, 2.0, face.shape), 0, 255).astype(np.uint8)
        sec = int(stamp[0])
        return image_msg(noisy, sec, int(round((stamp[0] - sec) * 10)) * 100_000_000, "cabin")

    def shown() -> dict[str, str]:
        return status_values(published_status(node))

    def identified() -> None:
        for _ in range(8):
            camera.send(frame())
        values = shown()
        assert values["driver_state"] == "identified" and values["driver_id"] == driver, values

    def forget(frames: bool) -> None:
        """The real `driver forget`, ~/reload_gallery hammered meanwhile (with frames or not);
        then one more reload, which must find the driver gone."""
        command = subprocess.Popen(
            [sys.executable, "-m", "sense_perception.cli.main", "driver", "forget", driver,
             "--gallery", str(gallery)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        answers = []
        while command.poll() is None:
            answers.append(camera.call(reload))
            if frames:
                camera.send(frame())
        assert command.wait(timeout=60) == 0, command.stdout.read()
        assert answers and all(a.success or "locked" in a.message for a in answers), \
            [a.message for a in answers]
        done = camera.call(reload)
        assert done.success and "0 driver(s)" in done.message, done.message

    try:
        identified()
        forget(frames=True)
        after = len(identities)
        for _ in range(4):
            camera.send(frame())
        camera.executor.spin_once(timeout_sec=0.2)
        later = [c.results[0].class_id for c in identities[after:]]
        assert later and driver not in later, later
        assert driver not in shown().values()

        driver = enrol()  # enrolled again; the camera then stops before they are forgotten
        camera.call(reload)
        identified()
        forget(frames=False)
        values = shown()  # no frame since the reload
        assert driver not in values.values() and values["driver_state"] != "identified", values
        assert values["enrolled_drivers"] == "0", values
    finally:
        camera.close()
        node.stop()
        node.destroy_node()


def test_a_camera_flipping_its_frame_id_grows_no_state_in_the_object_detector(context):
    """A camera whose frame_id flips back and forth (two drivers on one topic, a misconfigured
    bridge): each flip raised and cleared frame_id_changed, and the node kept every such event
    for a report it never makes, for as long as it ran. Its camera health still says so."""
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_hostile_flip/front/image_raw"
    node = ObjectDetectorNode("hostile_flip", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 60.0, "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1, "camera_health.stream.clear_frames": 1}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    camera = Camera(context, node, topic)
    health: list[Any] = []
    camera.pub_node.create_subscription(DiagnosticStatus, "/sp_hostile_flip/front/camera_health",
                                        health.append, 100)
    street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::6, ::6].copy()
    try:
        for i in range(24):
            image = np.roll(street, 7 * i, axis=1)  # a moving scene: never frozen
            camera.send(image_msg(image, 50 + i // 10, (i % 10) * 100_000_000,
                                  "front_a" if i // 2 % 2 == 0 else "front_b"))
        camera.executor.spin_once(timeout_sec=0.2)
        flips = sum(a.message != b.message for a, b in zip(health, health[1:], strict=False))
        assert flips >= 10 and any("frame_id_changed" in h.message for h in health), \
            [h.message for h in health]
        events = node.camera_health.summary()[topic]["events"]
        assert events == [], f"the node holds {len(events)} health events after 24 frames"
    finally:
        camera.close()
        node.stop()
        node.destroy_node()


def test_one_cabin_frame_stamped_far_ahead_does_not_clear_the_attention_alert(context, tmp_path):
    """A distracted driver has raised an alert; one frame with a corrupt header stamp (2**31 - 1 s)
    then frames back on the camera's clock. The step back was taken for a restarted bag: the
    alert fell to level 0 and the calibration was learned again from the driver looking away.
    Now the alert stays and the calibration is kept, and so after one frame stamped 0; a real
    restart (two frames back in time) still starts afresh."""
    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    topic = "/sp_hostile_jump/cabin/image_raw"
    node = _driver_monitor(context, "hostile_jump", topic, gallery, **{
        "attention.calibration_s": 0.8, "attention.yaw_limit_deg": 15.0,
        "attention.level_times_s": [1.0, 2.0, 4.0]})
    camera = Camera(context, node, topic)
    ahead = read_bgr(DATA / "faces" / "obama_2_congress_2009.jpg")[::2, ::2].copy()  # yaw +12 deg
    away = ahead[:, ::-1].copy()  # mirrored: yaw -13 deg, 25 deg off the learned neutral pose
    rng = np.random.default_rng(2)

    def send(image: np.ndarray, t: float) -> dict[str, str]:
        noisy = np.clip(image + rng.normal(0.0, 2.0, image.shape), 0, 255).astype(np.uint8)
        camera.send(image_msg(noisy, int(t), int(round((t - int(t)) * 10)) * 100_000_000, "cabin"))
        return status_values(published_status(node))

    try:
        t = 200.0
        for _ in range(6):  # 1 s at 5 Hz: calibrated on the driver looking ahead
            values = send(ahead, t)
            t += 0.2
        assert values["attention_calibrated"] == "true", values
        for _ in range(12):  # 2.4 s looking away: distracted, the alert raised
            values = send(away, t)
            t += 0.2
        assert values["attention_state"] == "distracted" and int(values["attention_level"]) >= 1, values
        raised = int(values["attention_level"])
        send(away, 2**31 - 1)  # one corrupt header
        for _ in range(2):
            values = send(away, t)
            t += 0.2
        assert int(values["attention_level"]) >= raised, values
        assert values["attention_calibrated"] == "true" and values["attention_state"] == "distracted", values
        values = send(away, 0.0)  # one frame stamped 0: not a restart, the alert stays
        assert int(values["attention_level"]) >= raised and values["attention_calibrated"] == "true", values
        send(away, 100.0)  # a real restart (a bag played again), once the next frame goes on
        values = send(away, 100.2)
        assert values["attention_calibrated"] == "false" and values["attention_level"] == "0", values
    finally:
        camera.close()
        node.stop()
        node.destroy_node()


def test_a_parameter_set_while_the_node_runs_is_refused_naming_the_fix(context):
    """`ros2 param set` on a configured node: parameters are read at configure, so the value was
    accepted ("Set parameter successful") and silently not used by the running node. It is
    refused now, saying when it can be set; the node goes on with its values, and once cleaned up
    the same set succeeds and the next configure uses it."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_hostile_param/front/image_raw"
    node = ObjectDetectorNode("hostile_param", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 60.0, "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    camera = Camera(context, node, topic)
    client = camera.pub_node.create_client(SetParameters, "/hostile_param/set_parameters")

    def param_set(name: str, value: Any) -> Any:  # what `ros2 param set` calls
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]))
        camera.executor.spin_until_future_complete(future, timeout_sec=10.0)
        assert future.done()
        return future.result().results[0]

    try:
        threshold = node.detector.min_score
        for state in ("active", "inactive"):
            result = param_set("detector.score_threshold", 0.9)
            assert not result.successful, f"accepted while {state}, and not used"
            assert "detector.score_threshold" in result.reason and "configure" in result.reason
            assert f"node is {state}" in result.reason and "cleanup" in result.reason, result.reason
            assert node.detector.min_score == threshold
            assert node.get_parameter("detector.score_threshold").value != 0.9
            if state == "active":
                camera.send(image_msg(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")
                                      [::4, ::4].copy(), 5, 0, "front"))  # frames go on
                assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert param_set("use_sim_time", True).successful  # rclpy's own: applies at once
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert param_set("detector.score_threshold", 0.9).successful
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.get_parameter("detector.score_threshold").value == 0.9
    finally:
        camera.close()
        node.stop()
        node.destroy_node()


def test_lifecycle_transitions_while_frames_flow_never_end_run(graph, ros_env, tmp_path):
    """`sense-perception run` spins both nodes on a multi-threaded executor. A deactivate (or
    cleanup) destroys subscriptions and publishers while another executor thread may be
    building its wait set; rclpy 7.1 then raises InvalidHandle out of spin (ros2/rclpy#1284), and
    the whole process ended with a traceback, both nodes gone. Transitions of both nodes, frames
    flowing and ~/reload_gallery called meanwhile, must leave run up and working."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    from ros_helpers import NodeProcess, wait_active, write_params

    cabin, front = "/sp_hostile_run/cabin/image_raw", "/sp_hostile_run/front/image_raw"
    cpu = {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}
    config = write_params(tmp_path / "perception.yaml", {
        "object_detector": {"camera_topics": [front], "no_input_warn_s": 60.0, "runtime": cpu},
        "driver_monitor": {"camera_topic": cabin, "no_input_warn_s": 60.0, "runtime": cpu,
                           "face": {"driver_region": WHOLE_IMAGE},
                           "gallery": {"path": str(tmp_path / "gallery" / "gallery.json")}}})
    proc = NodeProcess(["-m", "sense_perception.cli.main", "run", "--config", str(config)], ros_env,
                       tmp_path / "run.log")
    node = graph.node
    entities = []
    try:
        for name in ("/driver_monitor", "/object_detector"):
            wait_active(graph, proc, name)
        pubs = [node.create_publisher(Image, t, qos_profile_sensor_data) for t in (cabin, front)]
        frames = [image_msg(read_bgr(FACE)[::4, ::4].copy(), 1, 0, "cabin"),
                  image_msg(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::8, ::8]
                            .copy(), 1, 0, "front")]
        reload = node.create_client(Trigger, "/driver_monitor/reload_gallery")
        changes = {n: node.create_client(ChangeState, f"/{n}/change_state")
                   for n in ("driver_monitor", "object_detector")}
        entities += [*pubs, reload, *changes.values()]
        sent = [0]

        def busy() -> None:  # frames on both cameras and a reload, then one executor turn
            sent[0] += 1
            for pub, msg in zip(pubs, frames, strict=True):
                msg.header.stamp.sec = 10 + sent[0]
                pub.publish(msg)
            if reload.service_is_ready():
                reload.call_async(Trigger.Request())
            graph.executor.spin_once(timeout_sec=0.005)

        for _ in range(6):
            for name, client in changes.items():
                for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE):
                    for _ in range(20):
                        busy()
                    assert client.wait_for_service(timeout_sec=10.0), f"{name} is gone:\n{proc.output()}"
                    future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
                    end = time.monotonic() + 20.0
                    while not future.done():
                        assert proc.alive() and time.monotonic() < end, \
                            f"{name} transition {transition} not answered; run:\n{proc.output()}"
                        busy()
                    assert future.result().success, (name, transition)
        assert proc.alive(), proc.output()
        for name in ("/driver_monitor", "/object_detector"):
            wait_active(graph, proc, name, timeout=10.0)
    finally:
        for entity in entities:
            node.destroy_client(entity) if hasattr(entity, "call_async") else node.destroy_publisher(entity)
        code = proc.stop()
    output = proc.output()
    assert code == 0 and "Traceback" not in output, output


def test_a_frame_waiting_when_the_node_is_deactivated_is_counted(context):
    """Deactivated while one frame was in inference and the camera's next one waited: the
    waiting frame was received and then dropped with no count anywhere (received 2, processed 1,
    lost 0). It is counted now, under lost[deactivated]."""
    import threading

    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_hostile_deactivate/front/image_raw"
    node = ObjectDetectorNode("hostile_deactivate", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 60.0, "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    camera = Camera(context, node, topic)
    street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::4, ::4].copy()
    real_detect = node.detector.detect
    inferring = threading.Event()

    def slow_detect(images):  # a slow accelerator: the next frame arrives during inference
        inferring.set()
        time.sleep(1.0)
        return real_detect(images)

    node.detector.detect = slow_detect
    try:
        end = time.monotonic() + 20.0
        while not inferring.is_set():  # the first frame, until inference has it
            assert time.monotonic() < end, "frame not received"
            camera.pub.publish(image_msg(street, 5, 0, "front"))
            camera.executor.spin_once(timeout_sec=0.05)
        received = node.health.snapshot().received
        while node.health.snapshot().received == received:  # the next, during that inference
            assert time.monotonic() < end, "frame not received"
            camera.pub.publish(image_msg(street, 6, 0, "front"))
            camera.executor.spin_once(timeout_sec=0.05)
        assert node.health.snapshot().processed == 0  # the first is still in inference
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        snap = node.health.snapshot()
        values = status_values(published_status(node))
        assert snap.processed == 1 and values["lost[deactivated]"] == "1", values
        # every frame received is accounted for: processed, or lost under a kind (lost[transport]
        # counts frames published that never arrived, so they are not among those received)
        lost = int(values["lost_frames"]) - int(values.get("lost[transport]", "0"))
        assert snap.received == snap.processed + lost, values
        assert topic in values["last_error[deactivated]"], values
    finally:
        node.detector.detect = real_detect
        camera.close()
        node.stop()
        node.destroy_node()


def test_reload_gallery_hammered_frames_keep_being_processed_and_the_driver_identified(
        context, tmp_path):
    """~/reload_gallery called without pause (several calls in flight, hundreds a second) while
    the cabin camera runs at 20 Hz: each reload reset the identification, so the driver was never
    identified while it lasted, and /diagnostics said "gallery reloaded: waiting for the next
    frame" instead of the driver. Now a reload that finds the same drivers keeps the evidence:
    frames go on being processed and identified, every call is answered truthfully."""
    from std_srvs.srv import Trigger
    from vision_msgs.msg import Classification

    from sense_perception.face import ConsentRecord, FaceConfig, FaceEngine, GalleryStore

    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    engine = FaceEngine(FaceConfig(driver_region=WHOLE_IMAGE))
    templates = np.stack([engine.driver_embedding(read_bgr(DATA / "faces" / p))[2] for p in
                          ("obama_1_official_portrait_2012.jpg", "obama_2_congress_2009.jpg")])
    driver = GalleryStore(gallery).enroll("Barack Obama", templates,
                                          ConsentRecord.now("Barack Obama")).id
    topic = "/sp_hostile_hammer/cabin/image_raw"
    node = _driver_monitor(context, "hostile_hammer", topic, gallery)
    camera = Camera(context, node, topic)
    identities: list[Any] = []
    camera.pub_node.create_subscription(
        Classification, "/sp_hostile_hammer/cabin/driver_identity", identities.append, 100)
    client = camera.pub_node.create_client(Trigger, f"/{node.get_name()}/reload_gallery")
    face = read_bgr(FACE)[::2, ::2].copy()
    rng = np.random.default_rng(2)
    try:
        end = time.monotonic() + 20.0
        while not client.service_is_ready():
            assert time.monotonic() < end, "~/reload_gallery not available"
            camera.executor.spin_once(timeout_sec=0.05)
        in_flight: list[Any] = []
        answers: list[Any] = []
        stamp, next_frame = 100.0, 0.0
        start = node.health.snapshot().processed
        t0 = time.monotonic()
        processed = 0
        # Until 40 answers and 20 frames (4 s on a quiet machine): a count, not a rate, so a
        # loaded machine only takes longer; a stall would end at the deadline below.
        while len(answers) < 40 or processed < 20:
            assert time.monotonic() - t0 < 90.0, f"{len(answers)} answers, {processed} frames in 90 s"
            if time.monotonic() >= next_frame:  # a live camera at 20 Hz, with its noise
                stamp += 0.05
                noisy = np.clip(face + rng.normal(0.0, 2.0, face.shape), 0, 255).astype(np.uint8)
                camera.pub.publish(image_msg(noisy, int(stamp), int(stamp % 1 * 1e9), "cabin"))
                next_frame = time.monotonic() + 0.05
            answers += [f.result() for f in in_flight if f.done()]
            in_flight = [f for f in in_flight if not f.done()]
            while len(in_flight) < 4:
                in_flight.append(client.call_async(Trigger.Request()))
            camera.executor.spin_once(timeout_sec=0.005)
            processed = node.health.snapshot().processed - start
        assert all(a.success and "1 driver(s) enrolled" in a.message for a in answers), \
            {a.message for a in answers}
        ids = [c.results[0].class_id for c in identities if c.results]
        assert driver in ids[-10:], ids[-10:]  # identified while the reloads go on
        values = status_values(published_status(node))
        assert values["driver_state"] == "identified" and values["driver_id"] == driver, values
    finally:
        camera.pub_node.destroy_client(client)
        camera.close()
        node.stop()
        node.destroy_node()


def test_a_camera_stamping_every_frame_zero_is_tracked_on_the_arrival_clock(context):
    """A camera driver leaving every header stamp at 0: tracked on its stamps no time passed, so
    `tracking.max_age` never deleted a track (a car gone for seconds came back under its old id)
    and no velocity formed. The node times such a camera by the frames' arrival (SECURITY.md
    R31); its outputs keep the stamps 0."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from vision_msgs.msg import Detection2DArray

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_hostile_unstamped/front/image_raw"
    node = ObjectDetectorNode("hostile_unstamped", context=context, parameter_overrides=overrides(**{
        "camera_topics": [topic], "no_input_warn_s": 60.0, "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1, "tracking.max_age": 0.3}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    camera = Camera(context, node, topic)
    got: list[Any] = []
    camera.pub_node.create_subscription(Detection2DArray, "/sp_hostile_unstamped/front/detections",
                                        got.append, 100)
    street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::3, ::3].copy()
    empty = np.full_like(street, 90)
    try:
        for image in (street, street, street, empty):
            camera.send(image_msg(image, 0, 0, "front"))
        time.sleep(0.5)  # the cars gone for longer than max_age
        for image in (empty, street, street, street):
            camera.send(image_msg(image, 0, 0, "front"))
        end = time.monotonic() + 10.0
        while len(got) < 8 and time.monotonic() < end:
            camera.executor.spin_once(timeout_sec=0.05)
        assert len(got) == 8 and all(m.header.stamp.sec == 0 == m.header.stamp.nanosec for m in got)
        ids = [{d.id for d in m.detections if d.id} for m in got]
        before, after = set().union(*ids[:3]), set().union(*ids[5:])
        assert before and after and not before & after, (before, after)
        assert node.frame_clock.unstamped == {topic}
    finally:
        camera.close()
        node.stop()
        node.destroy_node()
