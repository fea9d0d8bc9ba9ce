"""``sense-perception replay BAG --config autoware`` on a bag in Autoware's camera layout (no ROS).

The bag is written here from the sample bag's real front-camera frames: camera0 as
CompressedImage (the JPEGs as recorded) on ``/sensing/camera/camera0/image_rect_color/compressed``,
camera1 as raw bgr8 Image on ``/sensing/camera/camera1/image_rect_color``, each with its CameraInfo.
The output bag's ROI topics are read through an independent reader built from Autoware's
published layout (test/autoware_layout.py), not from the project's definitions.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from autoware_layout import ROIS, published_typestore, roi_rows
from replay_helpers import FRONT, SAMPLE_BAG, read_output, sample_front_frames
from rosbags.rosbag2 import StoragePlugin, Writer

from sense_perception.cli.main import main
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore

CAM0 = "/sensing/camera/camera0/image_rect_color/compressed"
CAM1 = "/sensing/camera/camera1/image_rect_color"
ROIS_TOPIC = "/perception/object_recognition/detection/rois"
CAR = 1


def write_autoware_bag(path: Path, bad_info_camera1: bool = False) -> dict[str, list[tuple[int, int, str]]]:
    """The sample bag's front frames in Autoware's camera layout; returns each camera's headers."""
    store = make_typestore()
    convert = MessageConverter(store)
    frames = sample_front_frames(store)
    headers: dict[str, list[tuple[int, int, str]]] = {CAM0: [], CAM1: []}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in (
            (CAM0, "sensor_msgs/msg/CompressedImage"), (CAM1, "sensor_msgs/msg/Image"),
            ("/sensing/camera/camera0/camera_info", "sensor_msgs/msg/CameraInfo"),
            ("/sensing/camera/camera1/camera_info", "sensor_msgs/msg/CameraInfo"))}
        for ts, msg in frames:
            bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
            h, w = bgr.shape[:2]
            for i, topic in enumerate((CAM0, CAM1)):
                # camera1 fires 10 ms after camera0, as Autoware's cameras do in turn
                t_ns = ts + i * 10_000_000
                sec, nanosec = divmod(t_ns, 1_000_000_000)
                frame = f"camera{i}/camera_optical_link"
                header = {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame}
                info = {"header": header, "height": h, "width": w, "distortion_model": "plumb_bob",
                        "d": [0.0] * 5, "k": [w, 0, w / 2, 0, w, h / 2, 0, 0, 1],
                        "p": [w, 0, w / 2, 0, 0, w, h / 2, 0, 0, 0, 1, 0]}
                if i == 1 and bad_info_camera1:
                    info["distortion_model"] = "equidistant"
                info_topic = f"/sensing/camera/camera{i}/camera_info"
                writer.write(conns[info_topic], t_ns, store.serialize_cdr(
                    convert("sensor_msgs/msg/CameraInfo", info), "sensor_msgs/msg/CameraInfo"))
                if topic == CAM0:
                    image = convert("sensor_msgs/msg/CompressedImage", {
                        "header": header, "format": "jpeg", "data": np.frombuffer(bytes(msg.data), np.uint8)})
                    msgtype = "sensor_msgs/msg/CompressedImage"
                else:
                    image = convert("sensor_msgs/msg/Image", {
                        "header": header, "height": h, "width": w, "encoding": "bgr8", "is_bigendian": 0,
                        "step": w * 3, "data": np.ascontiguousarray(bgr).reshape(-1)})
                    msgtype = "sensor_msgs/msg/Image"
                writer.write(conns[topic], t_ns, store.serialize_cdr(image, msgtype))
                headers[topic].append((sec, nanosec, frame))
    return headers


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autoware_replay")
    headers = write_autoware_bag(tmp / "drive", bad_info_camera1=True)
    out = tmp / "out"
    assert main(["replay", str(tmp / "drive"), "--out", str(out), "--config", "autoware"]) == 0
    return headers, read_output(out / "bag"), out


def test_rois_decode_with_autowares_layout_one_per_frame_with_its_header(replayed):
    headers, messages, _ = replayed
    published = published_typestore()
    for i, camera in enumerate((CAM0, CAM1)):
        rois = [m for m in messages if m.channel.topic == f"{ROIS_TOPIC}{i}"]
        assert rois and all(m.schema.name == ROIS for m in rois)
        decoded = [published.deserialize_cdr(bytes(m.message.data), ROIS) for m in rois]
        assert [(d.header.stamp.sec, d.header.stamp.nanosec, d.header.frame_id) for d in decoded] == headers[camera]
        # The ROIs are the camera's detections with an Autoware class, in the image's pixels.
        detections = [m.ros_msg for m in messages
                      if m.channel.topic == f"/sensing/camera/camera{i}/detections"]
        assert len(detections) == len(decoded)
        for det, roi in zip(detections, decoded, strict=True):
            expected = sorted(_roi_of(d) for d in det.detections if d.results[0].hypothesis.class_id
                              in ("car", "truck", "bus", "pedestrian", "bicycle", "motorcycle"))
            got = sorted((r[0], r[2], *r[3:7]) for r in roi_rows(roi))
            assert [g[0] for g in got] == [e[0] for e in expected]
            # scores as float32; corners within the 1 px a half-pixel tie may round either way
            assert np.allclose([g[1] for g in got], [e[1] for e in expected], atol=1e-6)
            assert np.allclose([g[2:] for g in got], [e[2:] for e in expected], atol=1.0)
            assert all(r[1] == 1.0 and r[7] is False for r in roi_rows(roi))
    cars = sum(r[0] == CAR for m in messages if m.channel.topic == f"{ROIS_TOPIC}0"
               for r in roi_rows(published.deserialize_cdr(bytes(m.message.data), ROIS)))
    assert cars >= 6  # the sample's street frames show many cars


def _roi_of(d) -> tuple:
    classes = {"car": 1, "truck": 2, "bus": 3, "motorcycle": 5, "bicycle": 6, "pedestrian": 7}
    cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
    x1, y1 = round(cx - d.bbox.size_x / 2), round(cy - d.bbox.size_y / 2)
    x2, y2 = round(cx + d.bbox.size_x / 2), round(cy + d.bbox.size_y / 2)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, 960), min(y2, 540)
    return (classes[d.results[0].hypothesis.class_id], d.results[0].hypothesis.score, x1, y1, x2 - x1, y2 - y1)


def test_camera_info_autoware_would_ignore_is_reported_in_diagnostics(replayed):
    _, messages, _ = replayed
    statuses = [s for m in messages if m.channel.topic == "/diagnostics" for s in m.ros_msg.status
                if s.name.endswith("object_detector")]
    assert statuses
    last = statuses[-1]
    values = {kv.key: kv.value for kv in last.values}
    assert values[f"camera_info[{CAM0}]"] == "ok"
    assert "distortion_model is 'equidistant'" in values[f"camera_info[{CAM1}]"]
    assert last.level == 1 and "equidistant" in last.message  # WARN, with the reason


def test_cameras_without_an_index_are_refused_before_any_model_loads(tmp_path, capsys):
    # The sample bag's cameras (/camera/front/..., /camera/windshield/...) are not in Autoware's layout.
    assert main(["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--config", "autoware",
                 "--topics", FRONT]) == 2
    err = capsys.readouterr().err
    assert "'/camera/front/image_raw/compressed' has none" in err and "/sensing/camera/camera<i>" in err


def test_publish_reserves_the_autoware_topics_the_replay_publishes_on(tmp_path, monkeypatch):
    """R50: replay --publish reserved only each camera's <ns>/<name> result topics (R48); with
    --config autoware its ROIs and DetectedObjects go to Autoware's topics, which a recording of
    an Autoware vehicle holds too: the recorded ROIs were played beside the replay's own (two
    per frame), and a recorded topic of another type there sent the replay's ROIs as that
    type. The Autoware topics that are on are reserved now (no ROS 2 needed: the publisher is a
    stand-in, the run stopped before any model loads)."""
    from sense_perception.config import resolve_config
    from sense_perception.core.autoware.rois import AutowareConfig
    from sense_perception.replay import publish
    from sense_perception.replay.engine import ReplayOptions, Replayer, _result_topics

    class Stop(Exception):
        pass

    reserved: set[str] = set()

    class StandIn:
        def __init__(self, **_kwargs):
            pass

        def reserve(self, topics):
            reserved.update(topics)

        def advertise(self, _topics):
            raise Stop

    monkeypatch.setattr(publish, "LivePublisher", StandIn)
    bag = tmp_path / "autoware_bag"
    write_autoware_bag(bag)
    with pytest.raises(Stop):
        Replayer(ReplayOptions(bag, tmp_path / "out", config=resolve_config("autoware"),
                               publish=True)).run()
    assert {f"{ROIS_TOPIC}0", f"{ROIS_TOPIC}1",
            "/sensing/camera/camera1/detections"} <= reserved, sorted(reserved)
    # off: nothing reserved for it; a template the namespace cannot fill is the check's to refuse
    cameras = ["/front/image_raw"]
    assert _result_topics(cameras, None, AutowareConfig(rois_topic="/r{index}")) \
        == _result_topics(cameras, None, AutowareConfig()) == _result_topics(cameras, None)
