"""Camera health against hostile frames, stamps and settings (SECURITY.md R28): a frame whose
small copy is one pixel high, stamps far ahead or stuck at 0, settings at the edge of their
range. Real frames, the real replay and ``health`` commands."""
from __future__ import annotations

import json
import math
import warnings

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.core.health.camera_health import CameraHealthBank, CameraHealthMonitor
from sense_perception.core.health.camera_settings import CameraHealthSettings, health_settings_type
from sense_perception.errors import ConfigError
from sense_perception.evaluation import degrade

from support import REPO

DATA = REPO.parent / "shared" / "data"
PANDASET = DATA / "street_labelled" / "pandaset_seq002_front"


@pytest.fixture(scope="module")
def street() -> list[np.ndarray]:
    return [cv2.imread(str(PANDASET / f"{i:02d}.jpg")) for i in range(0, 40, 2)]


def _finite(values: dict) -> bool:
    return all(math.isfinite(v) for v in values.values() if isinstance(v, float))


def test_a_frame_whose_small_copy_is_one_pixel_high_is_judged(street):
    # a 32x8000 strip passes the decoder's 32x32 minimum; its 240-wide copy is one pixel high,
    # whose half-size copy OpenCV refused (cv2.error on every frame)
    for shape in [(32, 8000), (1, 64), (64, 1), (1, 1), (7, 2000)]:
        monitor = CameraHealthMonitor("/strip", CameraHealthSettings())
        for i, frame in enumerate(street[:3]):
            monitor.update(cv2.resize(frame, shape[::-1], interpolation=cv2.INTER_AREA), i * 0.1)
        assert monitor.frames == 3 and _finite(monitor.values()), (shape, monitor.values())


def test_health_image_judges_a_strip_and_a_one_pixel_row(tmp_path, capsys):
    frame = cv2.imread(str(PANDASET / "00.jpg"))
    strip, row = tmp_path / "strip.png", tmp_path / "row.png"
    cv2.imwrite(str(strip), cv2.resize(frame, (8000, 32), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(row), frame[:1, :64])
    out = tmp_path / "health.json"
    assert main(["health", str(strip), str(row), "--json", str(out)]) == 0
    images = json.loads(out.read_text())["images"]
    assert [(i["width"], i["height"]) for i in images] == [(8000, 32), (64, 1)]
    assert all(_finite(i["metrics"]) for i in images)


def _strip_bag(path, frames: int):
    """A rosbag2 MCAP of real street frames at 10 Hz, every other one a 8000x32 strip."""
    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Image = store.types["sensor_msgs/msg/Image"]
    street = cv2.imread(str(PANDASET / "00.jpg"))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/strip/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i in range(frames):
            ns = 1_700_000_000_000_000_000 + i * 100_000_000
            size = (8000, 32) if i % 2 else (320, 180)
            pixels = cv2.resize(street, size, interpolation=cv2.INTER_AREA)
            msg = Image(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                      frame_id="strip"), height=size[1], width=size[0],
                        encoding="bgr8", is_bigendian=0, step=size[0] * 3,
                        data=pixels.reshape(-1))
            writer.write(conn, ns, store.serialize_cdr(msg, msg.__msgtype__))
    return path


def test_a_replay_of_strip_frames_finishes_and_reports_their_health(tmp_path):
    bag = _strip_bag(tmp_path / "bag", 6)
    assert main(["replay", str(bag), "--out", str(tmp_path / "out")]) == 0  # was a traceback
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cameras"]["/strip/image_raw"]["frames"] == 6
    assert "/strip/image_raw" in summary["camera_health"]


def _dark_run(stamps: list[float]) -> dict[str, float]:
    """Seconds per condition of a black camera fed real-frame-sized frames at 30 Hz arrivals."""
    bank = CameraHealthBank(["/front"], CameraHealthSettings())
    black = degrade.black(cv2.imread(str(PANDASET / "00.jpg")), np.random.default_rng(0))
    for i, stamp in enumerate(stamps):
        bank.update("/front", black, stamp, "front", 100.0 + i / 30)
    return bank.summary()["/front"]["conditions_s"]


def test_conditions_s_follows_the_arrivals_whatever_the_stamps_say():
    n, base = 301, 1.7e9  # 10 s of arrivals
    stamps = [base + i / 30 for i in range(n)]
    assert _dark_run(stamps)["dark"] == pytest.approx(10.0 - 2 / 30, abs=1e-3)  # raised on frame 3
    ahead = list(stamps)
    ahead[100] += 5 * 3600  # one corrupt stamp: it added 5 h of `dark` and stopped the count
    assert _dark_run(ahead)["dark"] == pytest.approx(10.0 - 2 / 30, abs=1e-3)
    # stamps stuck at 0 (a driver that never sets them) or running back counted nothing
    stuck = _dark_run([0.0] * n)
    assert stuck["dark"] == pytest.approx(10.0 - 2 / 30, abs=1e-3) and stuck["frozen"] > 9.0
    assert _dark_run([base - i / 30 for i in range(n)])["dark"] == pytest.approx(
        10.0 - 2 / 30, abs=1e-3)


@pytest.fixture(scope="module")
def film_drive(street) -> list[np.ndarray]:
    """Clean frames, then the same scene behind a semi-transparent film (made once: the film is
    the costly part), at half size like test_camera_health_film's drive."""
    half = [cv2.resize(f, (960, 540), interpolation=cv2.INTER_AREA) for f in street]
    return half[:10] + [degrade.soil_semi(f, np.random.default_rng(7)) for f in half[10:]]


def _film_run(settings: CameraHealthSettings, frames: list[np.ndarray]) -> CameraHealthMonitor:
    """``frames`` at 10 Hz, every value checked finite after each."""
    monitor = CameraHealthMonitor("/front", settings)
    for i, frame in enumerate(frames):
        monitor.update(frame, i * 0.1)
        assert _finite(monitor.values()), monitor.values()
    return monitor


@pytest.mark.parametrize("edge", [{"film_floor": 0.0}, {"film_fraction": 0.0},
                                  {"film_arrival_s": 0.0}, {"film_arrival_s": 10.0},
                                  {"film_reference_s": 0.05}, {"film_reference_s": 60.0}])
def test_film_settings_at_the_edge_of_their_range_judge_every_frame(film_drive, edge):
    # film_floor 0 raised ValueError (log of 0) on every frame after the first; film_fraction 0
    # held an empty film whose contrast was a NaN mean of nothing, with a numpy warning each frame
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor = _film_run(CameraHealthSettings(**edge), film_drive)
    assert monitor.frames == len(film_drive)


def test_a_noise_floor_of_zero_is_refused_by_name():
    # 0 divided a black block's detail by zero: NaN detail, never flat, so never blocked
    with pytest.raises(ConfigError, match=r"camera_health\.noise_floor' in config must be within \[1\.0"):
        CameraHealthSettings.from_params({"camera_health.noise_floor": 0.0})
    CameraHealthSettings.from_params({"camera_health.noise_floor": 1.0})


@pytest.mark.parametrize("frames_of_b", [3, 0])
def test_a_camera_that_stops_or_never_starts_is_silent_and_its_silence_is_counted(tmp_path,
                                                                                    frames_of_b):
    # With expected_rate_hz set, a camera that stops was raised `silent` but its seconds were
    # never counted (they were added only on a frame), and one with no frame in the bag was
    # never silent at all (the replay never started its silence clock; a node does on activation)
    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Image = store.types["sensor_msgs/msg/Image"]
    street = cv2.resize(cv2.imread(str(PANDASET / "00.jpg")), (160, 90))
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        a = writer.add_connection("/a/image_raw", "sensor_msgs/msg/Image", typestore=store)
        b = writer.add_connection("/b/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i in range(40):  # 4 s at 10 Hz
            ns = 1_700_000_000_000_000_000 + i * 100_000_000
            for conn in [a, b] if i < frames_of_b else [a]:
                msg = Image(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                          frame_id="cam"), height=90, width=160,
                            encoding="bgr8", is_bigendian=0, step=160 * 3,
                            data=street.reshape(-1))
                writer.write(conn, ns, store.serialize_cdr(msg, msg.__msgtype__))
    config = tmp_path / "rate.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_health:\n"
                      "      expected_rate_hz: 10.0\n")
    assert main(["replay", str(tmp_path / "bag"), "--out", str(tmp_path / "out"),
                 "--config", str(config)]) == 0
    health = json.loads((tmp_path / "out" / "summary.json").read_text())["camera_health"]
    b = health["/b/image_raw"]
    # silent 10 periods (1 s) after its last frame (or the bag's first message), raised at the
    # next once-a-second check, held to the bag's last check at 3.9 s
    assert [(e["condition"], e["raised"]) for e in b["events"]] == [("silent", True)]
    assert b["conditions_s"]["silent"] == pytest.approx(1.9, abs=0.01)
    assert "silent" not in health["/a/image_raw"]["conditions_s"]


def test_a_node_status_that_was_ok_names_the_camera_fault_without_saying_ok():
    from sense_perception.core.health.stats import HealthStats
    from sense_perception.core.output.status import name_camera_faults

    bank = CameraHealthBank(["/front"], CameraHealthSettings())
    black = degrade.black(cv2.imread(str(PANDASET / "00.jpg")), np.random.default_rng(0))
    for i in range(5):
        bank.update("/front", black, i * 0.1, "front", i * 0.1)
    ok = HealthStats(["/front"]).report("object_detector", expect_input=False)
    assert ok["level"] == 0 and ok["message"] == "ok"
    status = name_camera_faults(ok, bank)  # was "ok; camera fault: ..." at level WARN
    assert status["level"] == 1 and status["message"] == "camera fault: /front (dark)"
    warned = name_camera_faults({"level": 1, "message": "no input"}, bank)
    assert warned["message"] == "no input; camera fault: /front (dark)"


@pytest.mark.parametrize("width", [240, 480, 1024])
def test_an_rgb_camera_is_judged_at_the_configured_width_like_a_bgr_one(street, width):
    # an rgb8 frame (a zero-copy ImageView in RGB order) was cut to a 240-wide copy before the
    # monitor saw it: camera_health.width was silently ignored for RGB cameras
    from sense_perception.core.imaging.image_decode import ImageView

    settings = CameraHealthSettings(width=width)
    bgr, rgb = CameraHealthBank(["/c"], settings), CameraHealthBank(["/c"], settings)
    for i, frame in enumerate(street[:3]):
        view = ImageView(np.ascontiguousarray(frame[:, :, ::-1]), "rgb")
        assert bgr.update("/c", frame, i * 0.1, "c", i * 0.1) == \
            rgb.update("/c", view, i * 0.1, "c", i * 0.1)


@pytest.mark.parametrize("node", ["object_detector", "driver_monitor"])
def test_a_lit_surface_ratio_below_one_is_refused_by_name(node):
    # R68: the range 0..100 took 0.5, which called a flat part half as bright as the view's
    # sharp part a lit surface of the scene: mud on the lens, never blocked (opaque soiling of
    # the street frames was blocked in 15 % of them instead of 65 %)
    kind = health_settings_type(node)
    for ratio in (0.5, 0.99):
        with pytest.raises(ConfigError, match=r"camera_health\.lit_surface_ratio \(0\.\d+\) must "
                                              r"be 0 \(off\) or at least 1"):
            kind.from_params({"camera_health.lit_surface_ratio": ratio})
    for ratio in (0.0, 1.0, 1.15, 100.0):
        assert kind.from_params({"camera_health.lit_surface_ratio": ratio}).lit_surface_ratio \
            == ratio
