"""driver_monitor (and `sense-perception run`) in a real ROS 2 graph.

One process started as `sense-perception run --config FILE` runs both nodes with a multi-threaded
executor. The driver is enrolled beforehand through the gallery API in a temporary gallery, from real
photos; another photo of the same person must be identified, a stranger called unknown. Attention
(head pose, eyes, state) is published for anyone in the seat, the stranger too, and takes the
intrinsics of a CameraInfo on the camera's camera_info topic.
"""
from __future__ import annotations

import pytest

from ros_helpers import (DATA, NodeProcess, cabin_stream, enrol_driver, half_size, header_key, image_msg,
                         publish_until, publish_until_status, read_bgr, status_values, wait_active, write_params)

pytestmark = pytest.mark.ros

CABIN = "/sp_test/cabin/image_raw/compressed"
FRONT = "/sp_test/run_cam/image_raw"
FACES = DATA / "faces"
WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]  # portraits: the face is anywhere, not at a driver's seat position


@pytest.fixture(scope="module")
def setup(ros_env, graph, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("driver_monitor")
    gallery = tmp / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    obama = enrol_driver(gallery, "Barack Obama", ["obama_1_official_portrait_2012.jpg", "obama_2_congress_2009.jpg"])
    config = write_params(tmp / "perception.yaml", {
        "object_detector": {"camera_topics": [FRONT], "no_input_warn_s": 60.0,
                            "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}},
        "driver_monitor": {"camera_topic": CABIN, "no_input_warn_s": 60.0,
                           "face": {"driver_region": WHOLE_IMAGE},
                           "gallery": {"path": str(gallery)},
                           "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}},
    })
    proc = NodeProcess(["-m", "sense_perception.cli.main", "run", "--config", str(config)], ros_env,
                       tmp / "run.log")
    try:
        for node in ("/driver_monitor", "/object_detector"):
            wait_active(graph, proc, node)
        yield {"proc": proc, "gallery": gallery, "obama": obama}
    finally:
        code = proc.stop()
        print(proc.output())
        print(f"exit code {code}, killed: {proc.killed}")


def _reliable():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _identity(probe):
    from sensor_msgs.msg import CompressedImage
    from vision_msgs.msg import Classification, Detection2DArray

    ids = probe.subscribe(Classification, "/sp_test/cabin/driver_identity")
    faces = probe.subscribe(Detection2DArray, "/sp_test/cabin/faces")
    pub = probe.publisher(CompressedImage, CABIN, _reliable())
    probe.wait_subscribed(pub)
    return pub, ids, faces


def test_enrolled_driver_is_identified(setup, probe):
    from foxglove_msgs.msg import ImageAnnotations

    annotations = probe.subscribe(ImageAnnotations, "/sp_test/cabin/annotations")
    pub, ids, faces = _identity(probe)
    photo = read_bgr(FACES / "obama_3_blue_room_2010.jpg")  # not one of the enrolment photos
    sent, result = publish_until(probe, pub, cabin_stream(photo, 1000), ids,
                                 accept=lambda r: r.results[0].class_id == setup["obama"], timeout=60.0)
    assert header_key(result) == header_key(sent)
    assert len(result.results) == 1 and result.results[0].score > 0.4
    assert probe.spin_until(lambda: [m for m in faces if header_key(m) == header_key(sent)], 5.0)
    face_msg = [m for m in faces if header_key(m) == header_key(sent)][0]
    labels = [d.results[0].hypothesis.class_id for d in face_msg.detections]
    assert labels.count("driver") == 1 and set(labels) <= {"driver", "face"}
    driver = face_msg.detections[labels.index("driver")]
    h, w = photo.shape[:2]
    x1 = driver.bbox.center.position.x - driver.bbox.size_x / 2
    y1 = driver.bbox.center.position.y - driver.bbox.size_y / 2
    assert 0 <= x1 and x1 + driver.bbox.size_x <= w and 0 <= y1 and y1 + driver.bbox.size_y <= h
    assert 40 < driver.bbox.size_x < w / 2  # a face, not the whole image
    # annotations of the same frame: the driver's face captioned with the pseudonymous id only
    stamp = (sent.header.stamp.sec, sent.header.stamp.nanosec)
    ann = probe.spin_until(lambda: next((a for a in annotations if a.points and (
        a.points[0].timestamp.sec, a.points[0].timestamp.nanosec) == stamp), None), 5.0)
    assert ann is not None and len(ann.points) == len(face_msg.detections)
    captions = [text.text for text in ann.texts]
    assert captions[labels.index("driver")].startswith(f"driver {setup['obama']} ")
    assert not any("Obama" in c or "Barack" in c for c in captions)


def test_stranger_is_unknown_and_empty_seat_is_no_face(setup, probe):
    pub, ids, _ = _identity(probe)
    stranger = read_bgr(FACES / "eileen_collins_nasa_astronaut.png")
    _, result = publish_until(probe, pub, cabin_stream(stranger, 2000), ids,
                              accept=lambda r: r.results[0].class_id == "unknown", timeout=60.0)
    assert result.results[0].class_id != setup["obama"]
    street = read_bgr(DATA / "street" / "comma2k19_highway280_rav4_preview.png")
    publish_until(probe, pub, cabin_stream(street, 3000), ids,
                  accept=lambda r: r.results[0].class_id == "no_face", timeout=30.0)


def test_driver_state_in_diagnostics(setup, probe):
    status = probe.wait_status("/driver_monitor", lambda s: "driver_state" in status_values(s), 10.0)
    values = status_values(status)
    assert values["state"] == "active"
    assert values["driver_state"] in ("no_face", "unknown", "identified", "uncertain")
    assert values["enrolled_drivers"] == "1"
    assert values["provider[yunet]"] == "CPUExecutionProvider"
    assert "Obama" not in str(values)  # names are never broadcast


def test_reload_gallery_service_after_enrolment(setup, probe):
    from std_srvs.srv import Trigger

    enrol_driver(setup["gallery"], "Joe Biden", ["biden_1_official_vp_portrait_2013.jpg"])
    response = probe.call(Trigger, "/driver_monitor/reload_gallery", Trigger.Request())
    assert response.success, response.message
    assert "2 driver(s)" in response.message


def test_run_also_serves_the_object_detector(setup, probe):
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    # 960x540: a full-HD raw frame over best-effort DDS is lost whole under load (half_size).
    street = half_size(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_40.jpg"))
    results = probe.subscribe(Detection2DArray, "/sp_test/run_cam/detections")
    pub = probe.publisher(Image, FRONT, _reliable())
    probe.wait_subscribed(pub)
    sent, msg = publish_until(probe, pub, lambda i: image_msg(street, 4000 + i, 0, "front"), results)
    assert header_key(msg) == header_key(sent)
    assert msg.detections, "no object found in a real street frame"
    assert setup["proc"].alive()


ATTENTION_STATES = {"attentive", "distracted", "eyes_closed", "drowsy", "no_face"}


def test_attention_and_head_pose_for_a_driver_nobody_enrolled(setup, probe):
    from geometry_msgs.msg import PoseStamped
    from vision_msgs.msg import Classification

    attention = probe.subscribe(Classification, "/sp_test/cabin/driver_attention")
    poses = probe.subscribe(PoseStamped, "/sp_test/cabin/head_pose")
    pub, ids, _ = _identity(probe)
    stranger = read_bgr(FACES / "eileen_collins_nasa_astronaut.png")
    # Frames until the stranger is called unknown: attention must be there for those frames too.
    sent, identity = publish_until(probe, pub, cabin_stream(stranger, 5000), ids,
                                   accept=lambda r: r.results[0].class_id == "unknown", timeout=60.0)
    key = header_key(sent)
    assert probe.spin_until(lambda: [m for m in attention if header_key(m) == key]
                            and [m for m in poses if header_key(m) == key], 10.0)
    [state] = [m for m in attention if header_key(m) == key]
    results = [(r.class_id, r.score) for r in state.results]
    assert results[0][0] == "attentive" and 0.0 <= results[0][1] <= 1.0
    assert results[1][0] == "level_0"
    assert [c for c, _ in results[2:]] == ["eye_openness_right", "eye_openness_left"]
    [pose] = [m for m in poses if header_key(m) == key]
    q = pose.pose.orientation
    assert abs(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 - 1.0) < 1e-6
    assert abs(q.x) > 0.9  # facing the camera: a half turn about the optical frame's x axis
    assert pose.pose.position.z > 0.1  # in front of the lens
    assert pose.header.frame_id == "cabin_optical"


def test_camera_info_sets_the_intrinsics(setup, probe):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=512, height=512, distortion_model="plumb_bob")
    info.header.frame_id = "cabin_optical"
    pub = probe.publisher(CameraInfo, "/sp_test/cabin/camera_info", _reliable())
    probe.wait_subscribed(pub)
    info.k = [0.0] * 9  # an uncalibrated camera: refused, named, the default kept
    status = publish_until_status(probe, pub, info, "/driver_monitor",
                                  lambda s: "not calibrated" in status_values(s).get("camera_info_error", ""), 15.0)
    assert "intrinsics" not in status_values(status) or \
        not status_values(status)["intrinsics"].startswith("camera_info")
    info.k = [600.0, 0.0, 255.5, 0.0, 600.0, 255.5, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    status = publish_until_status(
        probe, pub, info, "/driver_monitor", lambda s: status_values(s).get("intrinsics", "").startswith(
            "camera_info (512x512, fx 600.0"), 15.0)
    assert "camera_info_error" not in status_values(status)


def test_attention_in_diagnostics(setup, probe):
    pub, ids, _ = _identity(probe)
    photo = read_bgr(FACES / "obama_2_congress_2009.jpg")
    publish_until(probe, pub, cabin_stream(photo, 6000), ids)
    status = probe.wait_status("/driver_monitor",
                               lambda s: status_values(s).get("attention_state") in ATTENTION_STATES,
                               20.0)
    values = status_values(status)
    for key in ("attention_level", "head_yaw_deg", "head_pitch_deg", "head_roll_deg",
                "eye_aspect_ratio_right", "eye_aspect_ratio_left", "eye_openness_right",
                "perclos", "neutral_yaw_deg", "attention_calibrated", "intrinsics"):
        assert key in values, key
    assert values["provider[face_mesh]"] == "CPUExecutionProvider"
    assert values["provider[iris_landmark]"] == "CPUExecutionProvider"


def test_run_refuses_a_config_that_lists_the_cabin_camera_as_an_exterior_camera(ros_env, tmp_path):
    """The replay refuses to run the cabin camera (driver_monitor.camera_topic) through the object
    detector; `sense-perception run` started both nodes on such a config, so the object detector
    handled the driver's camera as an exterior one (its debug image and annotations publishing the
    driver's face). It exits 2 at once, naming the topic and the fix, before any node starts."""
    import subprocess
    import sys

    cabin = "/sp_cabin_twice/cabin/image_raw"
    config = write_params(tmp_path / "perception.yaml", {
        "object_detector": {"camera_topics": ["/sp_cabin_twice/front/image_raw", cabin]},
        "driver_monitor": {"camera_topic": cabin},
    })
    try:
        done = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "run", "--config",
                               str(config)], env=ros_env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("run started its nodes on the cabin camera as an exterior camera") from exc
    assert done.returncode == 2, done.stderr
    assert f"topic {cabin} is the cabin camera (driver_monitor.camera_topic in {config})" in done.stderr
    assert "remove it from camera_topics" in done.stderr and "Traceback" not in done.stderr
    # the same config without the cabin camera among the exterior ones is not refused for it
    from sense_perception.cli.run import check_cabin_not_exterior

    check_cabin_not_exterior(write_params(tmp_path / "ok.yaml", {
        "object_detector": {"camera_topics": ["/sp_cabin_twice/front/image_raw"]},
        "driver_monitor": {"camera_topic": cabin}}))


def _output_after_a_failed_configure(proc: NodeProcess, wait_s: float = 90.0) -> str:
    """The process's output once a node's configure failed (it stays up, unconfigured)."""
    import time

    end = time.monotonic() + wait_s
    while "configure failed" not in proc.output():
        assert proc.alive() and time.monotonic() < end, proc.output()
        time.sleep(0.2)
    time.sleep(0.5)  # the lines logged after the failure
    return proc.output()


def test_run_with_camera_topics_pointing_at_the_cabin_camera_refuses_it_at_configure(ros_env, tmp_path):
    """`run -- --ros-args -p camera_topics:=[...]` named the cabin camera (here its raw sub-topic
    beside driver_monitor's compressed one) past run's config check: object_detector subscribed
    to it, and its debug image and annotations would publish the driver's face. Its own
    configure refuses it now, naming the topic and the fix, and subscribes to nothing."""

    cabin = "/sp_cabin_param/cabin/image_raw"
    config = write_params(tmp_path / "params.yaml", {
        "object_detector": {"camera_topics": ["/sp_cabin_param/front/image_raw"]},
        "driver_monitor": {"camera_topic": cabin + "/compressed"}})
    proc = NodeProcess(["-m", "sense_perception.cli.main", "run", "--nodes", "object_detector",
                        "--config", str(config), "--", "--ros-args", "-p",
                        f"camera_topics:=[{cabin}]"], ros_env, tmp_path / "run.log")
    try:
        out = _output_after_a_failed_configure(proc)
        assert (f"topic {cabin} (the same camera as {cabin}/compressed) is the cabin camera "
                "(cabin_camera_topic)") in out, out
        assert "remove it from camera_topics" in out and "Traceback" not in out, out
        assert "configured: inputs" not in out, out
    finally:
        proc.stop()


def test_run_takes_the_cabin_camera_driver_monitor_was_given_on_the_command_line(ros_env, tmp_path):
    """`run -- --ros-args -p driver_monitor:camera_topic:=C` moved the cabin camera past the
    config file, but object_detector's cabin_camera_topic stayed the file's: C among its
    camera_topics was taken as an exterior camera (its debug image and annotations would publish
    the driver's face). With both nodes in one process, object_detector's cabin camera is now
    the camera_topic driver_monitor actually took, and its configure refuses C."""

    cabin = "/sp_cabin_moved/cabin/image_raw"
    config = write_params(tmp_path / "params.yaml", {
        "object_detector": {"camera_topics": ["/sp_cabin_moved/front/image_raw"],
                            "runtime": {"providers": ["CPUExecutionProvider"]}},
        "driver_monitor": {"camera_topic": "/sp_cabin_moved/old_cabin/image_raw",
                           "gallery": {"path": str(tmp_path / "none" / "gallery.json")},
                           "runtime": {"providers": ["CPUExecutionProvider"]}}})
    proc = NodeProcess(["-m", "sense_perception.cli.main", "run", "--config", str(config), "--",
                        "--ros-args", "-p", f"driver_monitor:camera_topic:={cabin}", "-p",
                        f"object_detector:camera_topics:=[/sp_cabin_moved/front/image_raw,{cabin}]"],
                       ros_env, tmp_path / "run.log")
    try:
        out = _output_after_a_failed_configure(proc)
        assert f"topic {cabin} is the cabin camera (cabin_camera_topic)" in out, out
        assert "remove it from camera_topics" in out and "Traceback" not in out, out
    finally:
        proc.stop()


@pytest.mark.parametrize("ros_args, fragment", [
    (["--params-file", "/nonexistent/params.yaml"], "Couldn't parse params file"),
    (["-p", "camera_topics:=["], "Couldn't parse parameter override rule"),
    (["--log-level", "nonsense"], "Couldn't parse log level"),
])
def test_malformed_ros_args_are_a_clear_error_not_a_traceback(ros_env, ros_args, fragment):
    """rclpy.init's RCLError reached the user as a traceback (exit 1) from `sense-perception run`
    and from the nodes' own entry points; now it is 'error: ...' naming the fix, exit 2."""
    import subprocess
    import sys

    for command in (["-m", "sense_perception.cli.main", "run", "--nodes", "driver_monitor"],
                    ["-m", "sense_perception.ros.object_detector_node"]):
        done = subprocess.run([sys.executable, *command, "--ros-args", *ros_args], env=ros_env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        assert fragment in done.stderr and "fix the arguments after --ros-args" in done.stderr


def test_a_fifo_as_params_file_is_refused_at_once(ros_env, tmp_path):
    """rcl opened a FIFO given as --params-file and waited for a writer for ever (`run` and the
    nodes' own commands hung before any node existed); refused at once, exit 2."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "params.yaml"
    os.mkfifo(fifo, 0o600)
    for command in (["-m", "sense_perception.cli.main", "run"],
                    ["-m", "sense_perception.ros.driver_monitor_node"]):
        try:
            done = subprocess.run([sys.executable, *command, "--ros-args", "--params-file", str(fifo)],
                                  env=ros_env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{command} waited on the FIFO") from exc
        assert done.returncode == 2, done.stderr
        assert f"--params-file {fifo} is a FIFO (named pipe), not a regular file" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_nodes_entry_points_set_no_core_dumps(ros_env, tmp_path):
    """A crash of driver_monitor (onnxruntime, Fast DDS) with core dumps allowed (systemd's
    defaults for a service) wrote its memory, the decrypted gallery included, to a core file.
    `run_nodes` (both console scripts, `run`) sets the soft core-file limit to 0 first."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard == 0:
        pytest.skip("this system's hard core-file limit is 0: no process here may dump core")
    script = ("import resource; from sense_perception.ros.run import run_nodes; "
              f"run_nodes([], ['driver_monitor', '--ros-args', '--params-file', "
              f"{str(tmp_path / 'missing.yaml')!r}]); "
              "print('core limit', resource.getrlimit(resource.RLIMIT_CORE)[0])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (hard, hard)),
                          env={**ros_env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert "core limit 0" in done.stdout, (done.stdout, done.stderr)
