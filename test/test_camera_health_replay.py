"""Camera health in a replay: a camera going black mid-bag is raised, cleared, named in the
/diagnostics and the summary, its detections keep flowing, and its video shows the condition."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.evaluation import degrade

from replay_helpers import SHARED, read_output

TOPIC = "/camera/front/image_raw/compressed"
PERIOD_NS = 100_000_000
BASE_NS = 1_700_000_000_000_000_000
# 5 clean frames, 6 with a lens cap (black), 6 clean: 1.7 s at 10 Hz
PLAN = ["clean"] * 5 + ["black"] * 6 + ["clean"] * 6


def write_bag(path: Path) -> None:
    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Compressed = store.types["sensor_msgs/msg/CompressedImage"]
    folder = SHARED / "street_labelled" / "pandaset_seq002_front"
    rng = np.random.default_rng(0)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(TOPIC, "sensor_msgs/msg/CompressedImage", typestore=store)
        for i, kind in enumerate(PLAN):
            image = cv2.resize(cv2.imread(str(folder / f"{2 * i:02d}.jpg")), (960, 540),
                               interpolation=cv2.INTER_AREA)
            if kind == "black":
                image = degrade.black(image, rng)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            ns = BASE_NS + i * PERIOD_NS
            msg = Compressed(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                           frame_id="front_camera"),
                             format="bgr8; jpeg compressed bgr8", data=buf.reshape(-1))
            writer.write(conn, ns + 5_000_000, store.serialize_cdr(msg, msg.__msgtype__))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[Path, dict]:
    import json

    root = tmp_path_factory.mktemp("health_replay")
    write_bag(root / "lens_cap")
    out = root / "out"
    assert main(["replay", str(root / "lens_cap"), "--out", str(out), "--video"]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_summary_has_the_conditions_and_events(replayed):
    _, summary = replayed
    health = summary["camera_health"][TOPIC]
    raise_frames = 3  # camera_health.dark.raise_frames
    clear_frames = 5  # camera_health.dark.clear_frames
    t0 = BASE_NS / 1e9
    raised = t0 + (5 + raise_frames - 1) * 0.1
    cleared = t0 + (11 + clear_frames - 1) * 0.1
    assert [(e["condition"], e["raised"]) for e in health["events"]] == [("dark", True),
                                                                          ("dark", False)]
    assert [e["t"] for e in health["events"]] == pytest.approx([raised, cleared], abs=1e-6)
    assert health["conditions_s"] == {"dark": pytest.approx(cleared - raised, abs=1e-6)}


def test_detections_keep_flowing_and_diagnostics_name_the_camera(replayed):
    out, _ = replayed
    messages = read_output(out / "bag")
    detections = [m for m in messages if m.channel.topic == "/camera/front/detections"]
    assert len(detections) == len(PLAN)  # a camera in ERROR still publishes every frame
    health = [m.ros_msg for m in messages if m.channel.topic == "/camera/front/camera_health"]
    assert len(health) == len(PLAN) and all(h.hardware_id == TOPIC for h in health)
    assert [h.level for h in health] == [0] * 7 + [2] * 8 + [0] * 2
    assert health[8].message == "dark" and {"mean", "highlight"} <= {v.key for v in health[8].values}
    arrays = [m.ros_msg for m in messages if m.channel.topic == "/diagnostics"]
    during = arrays[1]  # written at 1.0 s of bag time: the camera is dark
    node, camera = during.status
    assert camera.hardware_id == TOPIC and camera.level == 2 and camera.message == "dark"
    assert node.level >= 1 and f"camera fault: {TOPIC} (dark)" in node.message
    assert {v.key: v.value for v in node.values}["camera_faults"] == f"{TOPIC} (dark)"


def test_the_video_shows_the_condition(replayed):
    out, _ = replayed
    (video,) = (out / "video").glob("*.mp4")
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) >= len(PLAN)
    # the caption is drawn while the condition is raised (frames 7-14): on a black frame its
    # letters are the only bright pixels
    bright = [int((f.max(axis=2) > 128).sum()) for f in frames]
    assert bright[6] == 0  # black, not yet raised: no caption
    assert all(b > 100 for b in bright[7:11]), bright


def test_the_replay_judges_each_camera_at_its_config_rate_and_notes_a_rate_for_no_camera(
        tmp_path, caplog):
    """The replay reads ``camera_health.expected_rates_hz`` as the node does: a 3 Hz camera
    listed beside ``expected_rate_hz: 30`` (the others') is no ``rate``; an entry naming a topic
    that is none of the replayed cameras is noted in the log, not applied."""
    import json
    import logging

    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Compressed = store.types["sensor_msgs/msg/CompressedImage"]
    with Writer(tmp_path / "slow", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(TOPIC, "sensor_msgs/msg/CompressedImage", typestore=store)
        for i in range(24):  # 3 Hz, 8 s
            image = np.random.default_rng(i).integers(0, 255, (90, 160, 3), dtype=np.uint8)
            ok, buf = cv2.imencode(".jpg", image)
            ns = BASE_NS + i * 333_333_333
            msg = Compressed(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                           frame_id="front_camera"),
                             format="jpeg", data=buf.reshape(-1))
            writer.write(conn, ns + 5_000_000, store.serialize_cdr(msg, msg.__msgtype__))
    config = tmp_path / "rates.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_health:\n"
                      "      expected_rate_hz: 30.0\n"
                      "      expected_rates_hz: ['/camera/front/image_raw: 3', "
                      "'/camera/rear/image_raw: 10']\n")
    with caplog.at_level(logging.WARNING):
        assert main(["replay", str(tmp_path / "slow"), "--out", str(tmp_path / "out"),
                     "--config", str(config)]) == 0
    health = json.loads((tmp_path / "out" / "summary.json").read_text())["camera_health"][TOPIC]
    assert health["conditions_s"] == {}, health
    assert any("expected_rates_hz" in r.getMessage() and "/camera/rear/image_raw" in r.getMessage()
               and "not applied" in r.getMessage() for r in caplog.records), caplog.text
