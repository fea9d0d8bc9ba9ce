"""Long and flickering replays: what a replay keeps for summary.json is bounded, whatever the
bag's length (a 1 h bag of six 30 Hz cameras is 650 000 frames), and the results survive a stop
or a full disk at the end."""
from __future__ import annotations

import cv2
import pytest
import numpy as np

from sense_perception.core.health.camera_health import CameraHealthBank
from sense_perception.core.health.camera_settings import CameraHealthSettings, Hysteresis
from sense_perception.evaluation import degrade

from replay_helpers import SHARED
from support import PICODET_ONLY  # the replays here: what is kept and written, whatever the detector

TOPIC = "/camera/front/image_raw"


def _street(size: tuple[int, int] = (160, 90)) -> np.ndarray:
    image = cv2.imread(str(SHARED / "street_labelled" / "pandaset_seq002_front" / "00.jpg"))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def test_a_flickering_camera_keeps_the_first_and_last_health_events_and_counts_the_rest():
    # dark raised and cleared on every frame: a lens flickering between black and the street
    settings = CameraHealthSettings(dark=Hysteresis(1, 1))
    bank = CameraHealthBank([TOPIC], settings, keep_each_end=20)
    street = _street()
    black = degrade.black(street, np.random.default_rng(0))
    frames = 600
    for i in range(frames):
        bank.update(TOPIC, black if i % 2 else street, 100.0 + i / 30, "front", 100.0 + i / 30)
    health = bank.summary()[TOPIC]
    events = health["events"]
    assert len(events) == 40  # 20 of each end, not one per frame
    assert health["events_total"] == frames - 1  # raised on each black frame, cleared on the next
    assert health["events_left_out"] == frames - 1 - 40
    assert [(e["condition"], e["raised"]) for e in events[:2]] == [("dark", True), ("dark", False)]
    assert events[0]["t"] == round(100.0 + 1 / 30, 6)  # the first: raised on frame 1
    assert events[-1]["t"] == round(100.0 + (frames - 1) / 30, 6)  # the last: on the last frame
    assert health["conditions_s"]["dark"] > 0


def test_a_short_list_of_health_events_is_whole_and_says_nothing_was_left_out():
    bank = CameraHealthBank([TOPIC], CameraHealthSettings(dark=Hysteresis(1, 1)), keep_each_end=20)
    street = _street()
    black = degrade.black(street, np.random.default_rng(0))
    for i in range(6):
        bank.update(TOPIC, black if i % 2 else street, float(i), "front", float(i))
    health = bank.summary()[TOPIC]
    assert len(health["events"]) == 5 and "events_left_out" not in health


def test_a_flickering_driver_keeps_the_first_and_last_changes_and_counts_the_rest():
    from sense_perception.replay.summary import SummaryBuilder

    builder = SummaryBuilder(["/cabin"], keep_each_end=10)
    frames = 500
    for i in range(frames):  # the face found and lost on every other frame, an alert each rise
        state = "no_face" if i % 2 else "attentive"
        builder.add_identity(i / 30, "no_face" if i % 2 else "identified", None if i % 2 else "d1")
        builder.add_attention(i / 30, state, i % 2, bool(i % 2), "default")
    summary = builder.build(1.0, [])
    assert len(summary["identity"]) == 20 and summary["identity_left_out"] == frames - 20
    assert summary["identity"][0]["state"] == "identified"
    assert summary["identity"][-1]["t"] == round((frames - 1) / 30, 9)
    attention = summary["attention"]
    assert len(attention["timeline"]) == 20 and attention["timeline_left_out"] == frames - 20
    assert len(attention["alerts"]) == 20
    assert attention["alerts_total"] == frames // 2
    assert attention["alerts_left_out"] == frames // 2 - 20
    assert attention["max_level"] == 1


def test_latencies_are_a_bounded_sample_of_a_long_replay():
    from sense_perception.replay.summary import SummaryBuilder

    builder = SummaryBuilder([TOPIC], latency_samples=1000)
    values = np.random.default_rng(1).uniform(0.0, 100.0, 20_000)
    for value in values:
        builder.add_frame(TOPIC, [], float(value))
    assert builder._latency_ms.size == 1000  # memory: the sample, not one number per frame
    summary = builder.build(1.0, [])
    assert summary["frames"] == 20_000
    exact = np.percentile(values, [50, 95, 99])
    got = [summary["latency_ms"][k] for k in ("p50", "p95", "p99")]
    assert np.allclose(got, exact, atol=5.0), (got, exact)  # a uniform sample of them all


def _raw_bag(path, frames: int, broken=None, frame_id=None, stamp=None):
    """A rosbag2 MCAP of ``frames`` 64x48 bgr8 Images of a street on TOPIC at 30 Hz; ``broken(i)``
    gives frame i's data length (None: whole), ``frame_id(i)`` and ``stamp(i)`` (ns) its header."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Image = store.types["sensor_msgs/msg/Image"]
    pixels = _street((64, 48)).reshape(-1)
    base = 1_700_000_000_000_000_000
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(TOPIC, "sensor_msgs/msg/Image", typestore=store)
        for i in range(frames):
            ns = base + i * 33_333_333
            at = stamp(i) if stamp else ns
            size = broken(i) if broken else None
            msg = Image(header=Header(stamp=Time(sec=at // 10**9, nanosec=at % 10**9),
                                      frame_id=frame_id(i) if frame_id else "front"),
                        height=48, width=64, encoding="bgr8", is_bigendian=0, step=64 * 3,
                        data=pixels if size is None else pixels[:size])
            writer.write(conn, ns, store.serialize_cdr(msg, msg.__msgtype__))
    return path


def test_a_frame_broken_differently_every_time_is_counted_not_listed_per_frame(tmp_path):
    import json

    from sense_perception.cli.main import main
    from sense_perception.replay.skips import MAX_REASONS_PER_TOPIC

    frames = MAX_REASONS_PER_TOPIC * 3
    bag = _raw_bag(tmp_path / "broken", frames, broken=lambda i: 100 + i)  # each its own length
    assert main(["replay", str(bag), "--out", str(tmp_path / "out"), "--config",
                 str(PICODET_ONLY)]) == 1
    skipped = json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"]
    assert len(skipped) == MAX_REASONS_PER_TOPIC + 1  # not one entry per frame
    assert sum(item["count"] for item in skipped) == frames  # every frame still counted
    listed, other = skipped[:-1], skipped[-1]
    assert [item["count"] for item in listed] == [1] * MAX_REASONS_PER_TOPIC
    assert "has 100 bytes" in listed[0]["reason"]  # the first reasons, in order
    assert other["topic"] == TOPIC and other["count"] == frames - MAX_REASONS_PER_TOPIC
    assert other["reason"].startswith("other reasons, not listed one by one")
    assert f"has {100 + frames - 1} bytes" in other["reason"]  # the last one is named


def test_a_frame_id_changing_every_frame_gives_a_bounded_list_of_notes(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from sense_perception.config import resolve_config
    from sense_perception.core.autoware.camera_info import MAX_TOLD
    from sense_perception.replay.engine import MAX_NOTES, ReplayOptions, replay

    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Image, Info = store.types["sensor_msgs/msg/Image"], store.types["sensor_msgs/msg/CameraInfo"]
    Roi = store.types["sensor_msgs/msg/RegionOfInterest"]
    pixels = _street((64, 48)).reshape(-1)
    # Each camera tells at most MAX_TOLD CameraInfo problems (and a line saying so): five cameras
    # whose frame_id changes with every frame bring more notes than the replay keeps.
    per_camera, cams = MAX_TOLD + 4, 5
    cameras = [f"/sensing/camera/camera{k}/image_rect_color" for k in range(cams)]  # Autoware's
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for k, camera in enumerate(cameras):
            image = writer.add_connection(camera, "sensor_msgs/msg/Image", typestore=store)
            info = writer.add_connection(f"/sensing/camera/camera{k}/camera_info",
                                         "sensor_msgs/msg/CameraInfo", typestore=store)
            for i in range(per_camera):
                ns = 1_700_000_000_000_000_000 + i * 33_333_333 + k * 1000
                stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
                calibration = Info(header=Header(stamp=stamp, frame_id=f"cam{k}_optical"),
                                   height=48, width=64, distortion_model="plumb_bob", d=np.zeros(5),
                                   k=np.array([64.0, 0, 32, 0, 64, 24, 0, 0, 1]),
                                   r=np.eye(3).reshape(-1),
                                   p=np.array([64.0, 0, 32, 0, 0, 64, 24, 0, 0, 0, 1, 0]),
                                   binning_x=0,
                                   binning_y=0, roi=Roi(x_offset=0, y_offset=0, height=0, width=0,
                                                        do_rectify=False))
                writer.write(info, ns, store.serialize_cdr(calibration, calibration.__msgtype__))
                # a driver whose images name a new frame every time: a new CameraInfo mismatch each
                msg = Image(header=Header(stamp=stamp, frame_id=f"cam{k}_{i}"), height=48, width=64,
                            encoding="bgr8", is_bigendian=0, step=64 * 3, data=pixels)
                writer.write(image, ns, store.serialize_cdr(msg, msg.__msgtype__))
    result = replay(ReplayOptions(bag=tmp_path / "bag", out=tmp_path / "out",
                                  config=resolve_config("autoware"), topics=cameras))
    mismatches = [n for n in result.notes if "differs from the images'" in n]
    told = cams * (MAX_TOLD + 1)  # what the cameras tell, before the replay's own bound
    assert told > MAX_NOTES
    assert len(result.notes) == MAX_NOTES + 1  # the first ones, not one per frame, and a count
    assert mismatches and "cam0_0'" in mismatches[0]
    assert result.notes[-1].startswith(f"{told - MAX_NOTES} more note(s) not shown")
    assert result.summary["frames"] == cams * per_camera


_FULL_AT_THE_END = r'''
import json, sys
from pathlib import Path

from sense_perception.errors import BagError
from sense_perception.replay.engine import ReplayOptions, replay

disk, bag, video, config = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "video", \
    Path(sys.argv[4])
out = disk / "out"


def fill(done, expected):
    if done == expected:  # the last frame read: the disk fills up before the outputs are closed
        try:
            with open(disk / "filler", "ab") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass


try:
    replay(ReplayOptions(bag=bag, out=out, video=video, config=config), progress=fill)
    error = None
except BagError as exc:
    error = str(exc)
files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
marker = out / "REPLAY_INCOMPLETE.txt"
print(json.dumps({"error": error, "files": files,
                  "marker": marker.read_text() if marker.exists() else None}))
'''


@pytest.mark.parametrize("video", ["video", "no-video"])
def test_a_disk_full_at_the_end_of_a_replay_is_a_clear_error_never_a_half_summary(tmp_path, video):
    from support import run_on_tmpfs

    bag = _raw_bag(tmp_path / "bag", 12)
    report = run_on_tmpfs(tmp_path, _FULL_AT_THE_END, [bag, video, PICODET_ONLY],
                          options="size=4m")
    assert report["error"] is not None, report  # not a success
    assert "No space left on device" in report["error"] and "incomplete" in report["error"]
    assert "summary.json" not in report["files"] and ".summary.json.tmp" not in report["files"]
    assert "REPLAY_INCOMPLETE.txt" in report["files"] and "incomplete" in report["marker"]


_VIDEO_ON_A_FULL_DISK = r'''
import json, sys
from pathlib import Path

import numpy as np

from sense_perception.replay.video import CameraVideo
from sense_perception.replay.writer import OutputWriteError

disk = Path(sys.argv[1])
video = CameraVideo(disk / "front.mp4", 30)
noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
error = None
try:
    for i in range(120):  # about 2 MB of MPEG-4 noise: more than the disk holds
        video.write(noise, i / 30)
    video.close()
except OutputWriteError as exc:
    error = str(exc)
print(json.dumps({"error": error, "size": (disk / "front.mp4").stat().st_size}))
'''


def test_a_video_cut_short_by_a_full_disk_is_an_error_not_a_finished_video(tmp_path):
    from support import run_on_tmpfs

    report = run_on_tmpfs(tmp_path, _VIDEO_ON_A_FULL_DISK, [], options="size=256k")
    assert report["size"] > 0  # OpenCV wrote what fitted and said nothing
    assert report["error"] is not None, report
    assert "front.mp4" in report["error"] and "the output disk is full" in report["error"]


_STOPPED_WHILE_THE_SUMMARY_IS_WRITTEN = r'''
import os, signal, sys

import sense_perception.replay.engine as engine
from sense_perception.cli.main import main

real = engine.write_summary


def write_summary(path, summary, **options):
    os.kill(os.getpid(), getattr(signal, sys.argv[3]))  # the stop arrives as the summary is written
    real(path, summary, **options)


engine.write_summary = write_summary
sys.exit(main(["replay", sys.argv[1], "--out", sys.argv[2], "--config", sys.argv[4]]))
'''


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_while_the_summary_is_written_waits_for_it_then_exits(tmp_path, signame, code):
    import json
    import os
    import subprocess
    import sys

    from support import REPO

    frames = 6
    bag = _raw_bag(tmp_path / "bag", frames)
    script = tmp_path / "stop.py"
    script.write_text(_STOPPED_WHILE_THE_SUMMARY_IS_WRITTEN)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), str(bag), str(out), signame,
                           str(PICODET_ONLY)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == code, proc.stderr  # the stop is obeyed, and said so ...
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads((out / "summary.json").read_text())  # ... once the results are whole
    assert summary["frames"] == frames and summary["skipped"] == []
    assert not (out / "REPLAY_INCOMPLETE.txt").exists()
    assert not (out / ".summary.json.tmp").exists()
