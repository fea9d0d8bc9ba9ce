"""Camera health and detection quality against hostile inputs and settings (SECURITY.md R36): a
camera that never stamps its frames, ignore-region masks that are FIFOs, vanish or come from
another camera, regions named by another transport of the camera, ground truth without ranges,
a hysteresis out of range."""
from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

from sense_perception.core.detection.ignore_regions import IgnoreRegions, IgnoreRegionSettings
from sense_perception.core.health.camera_health import CameraHealthBank
from sense_perception.core.health.camera_settings import (CabinCameraHealthSettings,
                                                           CameraHealthSettings)
from sense_perception.errors import ConfigError

from support import REPO

DATA = REPO.parent / "shared" / "data"
PANDASET = DATA / "street_labelled" / "pandaset_seq002_front"


def _noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """``frame`` with fresh sensor noise: a live camera's frames are never identical."""
    noise = np.random.default_rng(seed).integers(-3, 4, frame.shape)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def test_a_camera_that_never_stamps_its_frames_is_timed_by_their_arrival_not_frozen():
    # Many drivers leave header.stamp unset (0): tracks are timed by the arrivals for them
    # (FrameClock), but camera health read "a stamp that does not advance" and held the camera
    # `frozen` (ERROR) for as long as it ran; a cabin camera's attention was `camera_fault` for good.
    street = cv2.resize(cv2.imread(str(PANDASET / "00.jpg")), (480, 270))
    bank = CameraHealthBank(["/cam/image_raw"], CameraHealthSettings())
    bank.start(100.0)
    statuses = [bank.update("/cam/image_raw", _noisy(street, i), 0.0, "cam", 100.0 + i / 10)
                for i in range(30)]
    assert [s["message"] for s in statuses] == ["ok"] * 30
    values = {v["key"]: v["value"] for v in statuses[-1]["values"]}
    assert float(values["expected_hz"]) == pytest.approx(10.0)  # the period, from the arrivals
    bank.check(100.0 + 29 / 10 + 1.5)  # 15 periods without a frame: silent, as for any camera
    assert "silent" in bank.monitors["/cam/image_raw"].conditions
    # a frame that really repeats is still frozen, by its pixels
    repeated = [bank.update("/cam/image_raw", street, 0.0, "cam", 104.0 + i / 10)
                for i in range(8)]
    assert "frozen" in repeated[-1]["message"]
    summary = bank.summary()["/cam/image_raw"]
    assert all(e["t"] >= 100.0 for e in summary["events"])  # on the arrival clock, not 0


def test_a_cabin_camera_that_never_stamps_is_timed_by_arrival_and_stamps_that_stop_are_frozen():
    # R39: a cabin camera leaving every stamp at 0 was `frozen` (a camera fault) for as long as it
    # ran, while its driver attention, timed by the same stamps, timed nothing: it is timed by
    # the arrivals now, as its attention is (FrameClock) and as an exterior camera is.
    street = cv2.resize(cv2.imread(str(PANDASET / "00.jpg")), (480, 270))
    cabin = CameraHealthBank(["/cabin/image_raw"], CabinCameraHealthSettings())
    statuses = [cabin.update("/cabin/image_raw", _noisy(street, i), 0.0, "cabin", 100.0 + i / 10)
                for i in range(30)]
    assert [s["message"] for s in statuses] == ["ok"] * 30
    values = {v["key"]: v["value"] for v in statuses[-1]["values"]}
    assert float(values["expected_hz"]) == pytest.approx(10.0)  # the period, from the arrivals
    # stamps that advanced and then stand still (R19): a camera fault, attention held
    stamped = CameraHealthBank(["/cabin/image_raw"], CabinCameraHealthSettings())
    statuses = [stamped.update("/cabin/image_raw", _noisy(street, i), 5.0 + min(i, 3) / 10,
                               "cabin", 100.0 + i / 10) for i in range(12)]
    assert statuses[3]["message"] == "ok" and statuses[-1]["message"] == "frozen"


def _region_entry(topic: str, mask) -> IgnoreRegionSettings:
    return IgnoreRegionSettings(polygons=[f"{topic}: mask {mask}"])


def test_a_mask_that_is_a_fifo_is_refused_at_once_and_one_that_vanishes_later_changes_nothing(
        tmp_path):
    # A FIFO as the mask: cv2.imread waited for a writer, and the node's configure, `run` and
    # the replay hung without a word. Refused at once now, naming it.
    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            IgnoreRegions(_region_entry("/cam/image_raw", fifo))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():  # let the old code's open return before failing
        with open(fifo, "wb"):
            pass
        thread.join(timeout=5)
    assert outcome and isinstance(outcome[0], ConfigError), "the FIFO mask hung the load"
    assert "mask.png" in str(outcome[0]) and "not a regular file" in str(outcome[0])
    # Read once, at load: the node read it again at each new frame size, so a mask file deleted
    # (or replaced) after configure raised on every frame of the camera, and the node dropped
    # every frame batched with them.
    mask = np.zeros((48, 64), np.uint8)
    mask[24:] = 255
    path = tmp_path / "bonnet.png"
    cv2.imwrite(str(path), mask)
    regions = IgnoreRegions(_region_entry("/cam/image_raw", path))
    path.unlink()
    boxes = np.array([[0.0, 300.0, 100.0, 470.0], [0.0, 0.0, 100.0, 100.0]])
    assert regions.inside_share("/cam/image_raw", boxes, 640, 480).tolist() == [1.0, 0.0]
    # and a mask whose header claims more pixels than any frame the node takes is refused
    huge = tmp_path / "huge.png"
    cv2.imwrite(str(huge), np.zeros((16, 9000), np.uint8))
    with pytest.raises(ConfigError, match=r"polygons\[0\].*huge\.png.*input\.max_width"):
        IgnoreRegions(_region_entry("/cam/image_raw", huge))


def test_a_region_applies_to_its_camera_in_every_transport():
    # A region named by the node's raw topic was "not applied" (a warning) to the replay of a bag
    # that recorded the camera compressed, and the other way round: the ego bonnet came back as
    # a car. A camera is its topic with every image_transport sub-topic (as the cabin guard has it).
    from types import SimpleNamespace

    from sense_perception.core.exterior_steps import ExteriorSteps
    from sense_perception.core.types import Detections, Header

    bonnet = "0,400 640,400 640,480 0,480"
    dets = Detections(np.array([[100, 100, 200, 180], [200, 410, 440, 478]], np.float32),
                      np.array([0.9, 0.8], np.float32), np.array([1, 1], np.int32))
    for named, recorded in [("/cam/image_raw", "/cam/image_raw/compressed"),
                            ("/cam/image_raw/compressed", "/cam/image_raw")]:
        regions = IgnoreRegions(IgnoreRegionSettings([f"{named}: {bonnet}"]))
        steps = ExteriorSteps(SimpleNamespace(label_names=["pedestrian", "car"], min_score=0.3),
                              ignore=regions)
        frame = steps.frame(recorded, Header(1, 0, "cam"), dets, (640, 480))
        assert frame.detections.boxes.tolist() == [[100, 100, 200, 180]], (named, recorded)
        assert len(frame.ignore_regions) == 1
        regions.check_topics([recorded])  # the node's check
        assert regions.unmatched([recorded, "/other/image_raw"]) == []  # the replay's
    # another camera is still refused by name
    regions = IgnoreRegions(IgnoreRegionSettings([f"/cam/image_raw: {bonnet}"]))
    assert regions.unmatched(["/cam2/image_raw/compressed"]) == ["/cam/image_raw"]
    with pytest.raises(ConfigError, match="names /cam/image_raw, which is not a camera topic"):
        regions.check_topics(["/cam/image_rawx"])


def test_boxes_without_a_range_are_counted_not_left_out_of_recall_by_range(tmp_path, capsys):
    # Recall by range took the boxes that had a range and left the others out without a word:
    # its totals fell short of the class's, nothing saying why. They are counted now.
    import json

    from rich.console import Console

    from sense_perception.evaluation.ground_truth import GroundTruthImage
    from sense_perception.evaluation.positions import (evaluate_positions, load_truth_3d,
                                                       render_positions)
    from sense_perception.evaluation.scoring import ImageDetections
    from test_geometry import make_calibration, project_box

    calib = make_calibration()
    truth = [("car", (25.0, 3.0)), ("car", (50.0, -4.0)), ("car", (30.0, 6.0)),
             ("pedestrian", (15.0, -2.0))]
    boxes = [{"label": label, "bbox_xyxy": project_box(calib, xy, label)} for label, xy in truth]
    boxes[0]["range_m"] = float(np.hypot(*truth[0][1]))  # the others: no range given
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": {"cam/0": {"image": "x.png", "width": calib["width"],
                                                      "height": calib["height"], "boxes": boxes}}}))
    xyxy = np.array([b["bbox_xyxy"] for b in boxes])
    g = GroundTruthImage("cam/0", tmp_path / "x.png", 1280, 720, xyxy,
                         [label for label, _ in truth], np.zeros(len(truth), bool))
    dets = ImageDetections(xyxy[:2].copy(), np.full(2, 0.9), ["car", "car"])
    report = evaluate_positions([g], [dets], ["pedestrian", "car"], 0.5,
                                load_truth_3d(path)).report
    assert report["recall_by_range"] == {"car": {"20-40 m": {"found": 1, "total": 1,
                                                             "recall": 1.0}}}
    assert report["without_range"] == {"car": 2, "pedestrian": 1}
    console = Console(width=200)
    render_positions(report, console, placed=False)
    assert "not in recall by true range (no range_m or position_base_link): 2 car, 1 " \
           "pedestrian" in capsys.readouterr().out


@pytest.mark.parametrize("group", ["blocked", "low_visibility", "dark", "bright", "frozen",
                                   "stream"])
def test_a_hysteresis_out_of_range_names_its_group(tmp_path, group, capsys):
    # "invalid settings in c.yaml: raise_frames must be within 1..1000, got 0" named none of
    # the six groups that have a raise_frames
    from sense_perception.cli.main import main

    config = tmp_path / "c.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_health:\n"
                      f"      {group}: {{clear_frames: 5000}}\n")
    assert main(["health", str(PANDASET / "00.jpg"), "--config", str(config)]) == 2
    assert f"camera_health.{group}.clear_frames' in {config} must be within [1, 1000], got " \
           "5000" in capsys.readouterr().err


@pytest.mark.parametrize("stamps", ["counter", "burst"])
def test_stamps_closer_than_any_camera_s_period_do_not_set_it(stamps):
    # The period was the median of the first ten stamp steps: a driver stamping a frame counter
    # into nanosec (steps of 1 ns), or a burst of frames stamped as they were sent, set it to
    # nanoseconds for good: every frame `late`, `rate` wrong, `silent` (ERROR) raised at each
    # check between two frames and cleared by the next.
    street = cv2.resize(cv2.imread(str(PANDASET / "00.jpg")), (480, 270))
    bank = CameraHealthBank(["/cam/image_raw"], CameraHealthSettings())
    bank.start(100.0)
    times = [(5.0 + i * 1e-9, 100.0 + i / 10) for i in range(40)] if stamps == "counter" else \
        [(5.0 + i * 2e-4, 100.0 + i * 2e-4) for i in range(12)] + \
        [(6.0 + i / 10, 101.0 + i / 10) for i in range(40)]
    for i, (stamp, arrival) in enumerate(times):
        status = bank.update("/cam/image_raw", _noisy(street, i), stamp, "cam", arrival)
        bank.check(arrival + 0.05)
    values = {v["key"]: v["value"] for v in status["values"]}
    assert float(values["expected_hz"]) == pytest.approx(10.0), values
    summary = bank.summary()["/cam/image_raw"]
    assert not {"late", "rate", "silent"} & set(summary["conditions_s"]), summary
    bank.check(times[-1][1] + 1.5)  # and a camera that stops is silent all the same
    assert "silent" in bank.monitors["/cam/image_raw"].conditions


def _full_mask_regions(tmp_path, width: int, height: int) -> IgnoreRegions:
    """The region of ``/cam/image_raw``: a ``width`` x ``height`` mask covering all of it."""
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), np.full((height, width), 255, np.uint8))
    return IgnoreRegions(_region_entry("/cam/image_raw", path))


def test_a_mask_of_another_shape_than_its_camera_is_said_once_not_stretched_in_silence(
        tmp_path, caplog):
    # A 640x480 mask given to a 1920x1080 camera (made for another camera) was stretched to the
    # frame without a word, covering another part of the view than the mask shows.
    regions = _full_mask_regions(tmp_path, 640, 480)
    box = np.array([[0.0, 0.0, 100.0, 100.0]])
    with caplog.at_level("WARNING", logger="sense_perception.core.detection.ignore_regions"):
        for _ in range(3):
            regions.inside_share("/cam/image_raw", box, 1920, 1080)
        regions.inside_share("/cam/image_raw", box, 1280, 960)  # the mask's own shape, scaled
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "640x480" in warned[0] and "1920x1080" in warned[0], warned


def test_a_mask_stretched_to_a_size_changing_every_frame_is_said_a_bounded_number_of_times(
        tmp_path, caplog):
    # The stretch warning remembered every frame size it was said for: a camera changing its
    # size with every frame (another shape than the mask's) logged a warning per frame and grew
    # that set without bound, while the masks themselves are kept for MAX_SIZES sizes.
    from sense_perception.core.detection.ignore_regions import MAX_SIZES

    regions = _full_mask_regions(tmp_path, 64, 48)
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    with caplog.at_level("WARNING", logger="sense_perception.core.detection.ignore_regions"):
        for k in range(3 * MAX_SIZES):
            assert regions.inside_share("/cam/image_raw", box, 200 + k, 100).tolist() == [1.0]
    assert len(caplog.records) == MAX_SIZES
    assert len(regions._stretched) <= MAX_SIZES


def test_a_silence_is_an_event_on_the_clock_of_the_camera_s_other_events():
    # A simulation's bag: header stamps in sim time (12 s), receive times on the wall clock.
    # The silence was put at the receive time (1.7e9 s) among events at the stamps, its clearing
    # 1.7e9 s before its raising.
    street = cv2.resize(cv2.imread(str(PANDASET / "00.jpg")), (480, 270))
    bank = CameraHealthBank(["/sim/image_raw"], CameraHealthSettings(expected_rate_hz=10.0))
    wall = 1.7e9
    bank.start(wall)
    for i in range(10):
        bank.update("/sim/image_raw", _noisy(street, i), 12.0 + i / 10, "sim", wall + i / 10)
    bank.check(wall + 0.9 + 1.5)  # 1.5 s without a frame
    bank.update("/sim/image_raw", _noisy(street, 10), 14.4, "sim", wall + 2.4)
    events = [e for e in bank.summary()["/sim/image_raw"]["events"] if e["condition"] == "silent"]
    assert [e["raised"] for e in events] == [True, False]
    assert events[0]["t"] == pytest.approx(12.9 + 1.5) and events[1]["t"] == pytest.approx(14.4)
