"""Hostile round R30: 3-D positions, velocities and their evaluation never publish or report a
wrong number silently, and never end a command (SECURITY.md, R30).

Core classes over subprocesses where the behaviour is the same: the ground truth's 3-D part
(:func:`load_truth_3d`), the error report (:func:`evaluate_positions`) and the velocity truth
(:mod:`sense_perception.evaluation.velocity`) are what ``eval`` and ``tools/eval_velocity.py`` run.
"""
from __future__ import annotations

import json
import math
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from sense_perception.errors import GroundTruthError
from sense_perception.evaluation.ground_truth import GroundTruthImage
from sense_perception.evaluation.positions import evaluate_positions, load_truth_3d
from sense_perception.evaluation.scoring import ImageDetections
from sense_perception.evaluation.velocity import load_sequence, truth_velocities
from test_geometry import make_calibration, project_box

CALIB = make_calibration()


def _camera(truth: list[tuple[str, tuple[float, float]]], **fields) -> dict:
    boxes = [{"label": label, "bbox_xyxy": project_box(CALIB, xy, label),
              "position_base_link": [xy[0], xy[1], 0.0], "range_m": float(np.hypot(*xy))}
             for label, xy in truth]
    return {"image": "x.png", "width": 1280, "height": 720, "calibration": CALIB, "boxes": boxes,
            **fields}


def _write(tmp_path: Path, cameras: dict) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": cameras}))
    return path


@pytest.mark.parametrize(("change", "message"), [
    # range 0 (or 1e-320) made the relative error inf: eval.json held Infinity, not JSON
    ({"range_m": 0.0, "position_base_link": [0.0, 0.0, 0.0]}, r"range_m: 0 m is not a range"),
    ({"range_m": 1e-320, "position_base_link": None}, r"range_m: 9\.9\d*e-321 m is not a range"),
    ({"position_base_link": [0.0, 0.0, 0.0], "range_m": None}, r"position_base_link: \[0.0, 0.0, "
     r"0.0\] is not a range an object can be at \(from 0.1 to 1000 m\)"),
    # a negative range dropped the box from every band: its recall and error were lost
    ({"range_m": -20.0, "position_base_link": None}, r"range_m: -20 m is not a range"),
    ({"range_m": 1e300, "position_base_link": None}, r"range_m: 1e\+300 m is not a range"),
    # a range disagreeing with the position put the box in another band, its error against it
    ({"range_m": 5.0}, r"range_m: 5 m, but its position_base_link is 20.000 m away"),
    # 1e300 m overflowed the lateral error and the 1-sigma test (lateral 0.0, inside: true)
    ({"position_base_link": [1e300, 1e300, 0.0], "range_m": None}, r"position_base_link: \[1e\+300, "
     r"1e\+300, 0.0\] is more than 1000 m from base_link; fix: it is in metres"),
    ({"position_base_link": [20.0, 0.0, 2e4]}, r"position_base_link: .* more than 1000 m"),
    ({"position_base_link": [20.0, 0.0, float("nan")]}, r"position_base_link\[2\]: expected a "
     r"finite number, got nan"),
    ({"range_m": float("inf")}, r"range_m: expected a finite number, got inf"),
])
def test_a_hostile_true_position_or_range_is_refused_by_name(tmp_path, change, message):
    cam = _camera([("car", (20.0, 0.0))])
    for key, value in change.items():
        if value is None:
            cam["boxes"][0].pop(key)
        else:
            cam["boxes"][0][key] = value
    with pytest.raises(GroundTruthError, match=r"cameras.c/0.boxes\[0\]\." + message):
        load_truth_3d(_write(tmp_path, {"c/0": cam}))


def test_eval_figures_stay_finite_at_the_edges_and_for_thousands_of_objects(tmp_path):
    # Accepted edges: a range of 0.1 m given alone, an object behind the camera, a box with a
    # range and no position, one with neither; and 2000 objects of one image.
    truth = [("car", (10.0 + i % 65, (i % 7) - 3.0)) for i in range(2000)]
    cam = _camera(truth)
    cam["boxes"][0].pop("position_base_link")
    cam["boxes"][0]["range_m"] = 0.1
    cam["boxes"][1]["position_base_link"] = [-9.0, -2.0, 0.0]
    cam["boxes"][1]["range_m"] = math.hypot(9.0, 2.0)
    del cam["boxes"][2]["position_base_link"], cam["boxes"][2]["range_m"]
    path = _write(tmp_path, {"c/0": cam})
    truth_3d = load_truth_3d(path)
    boxes = np.array([b["bbox_xyxy"] for b in cam["boxes"]])
    g = GroundTruthImage("c/0", tmp_path / "x.png", 1280, 720, boxes, ["car"] * len(boxes),
                         np.zeros(len(boxes), bool))
    dets = ImageDetections(boxes.copy(), np.full(len(boxes), 0.9), ["car"] * len(boxes))
    result = evaluate_positions([g], [dets], ["car"], 0.5, truth_3d)
    json.dumps(result.report, allow_nan=False)  # eval.json's part: valid JSON
    json.dumps(result.detections, allow_nan=False)
    cars = result.report["errors"]["car"]
    assert sum(c["matched"] for c in cars.values()) == 1999  # all but the one with no range
    assert cars["0-20 m"]["median_abs_rel"] < 0.1 and cars["0-20 m"]["p90_abs_rel"] < 200.0
    assert result.report["recall_by_range"]["car"]["40-80 m"]["total"] > 600


def test_velocity_truth_of_far_apart_frame_numbers_allocates_nothing_per_number():
    # Frames 0, 1, 2 and 10**15 of one camera: a table spanning the numbers wanted petabytes
    # (MemoryError: a traceback of tools/eval_velocity.py).
    numbers = [0, 1, 2, 10 ** 15]
    positions = [np.array([[float(n), 1.0, 0.0]]) for n in (0, 1, 2, 3)]
    tracemalloc.start()
    try:
        v = truth_velocities(numbers, [["a"]] * 4, positions, 0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    np.testing.assert_allclose(v[1], [[10.0, 0.0]])
    assert np.isnan(v[0]).all() and np.isnan(v[2]).all() and np.isnan(v[3]).all()


def test_a_velocity_sequence_with_an_id_twice_in_a_frame_or_a_huge_number_is_refused(tmp_path):
    # One uuid on two boxes of a frame: the last one's neighbours gave both their velocity.
    frames = {f"front/{n:02d}": _camera([("car", (20.0 + n, 0.0)), ("car", (30.0, 3.0))])
              for n in range(3)}
    for cam in frames.values():
        for i, box in enumerate(cam["boxes"]):
            box["uuid"] = f"id{i}"
    frames["front/01"]["boxes"][1]["uuid"] = "id0"
    with pytest.raises(GroundTruthError, match=r"cameras.front/01.boxes\[1\].uuid: 'id0' is also "
                       r"the uuid of boxes\[0\]; a uuid names one object"):
        load_sequence(_write(tmp_path, frames))
    frames["front/01"]["boxes"][1]["uuid"] = "id1"
    assert len(load_sequence(_write(tmp_path, frames))) == 3
    # A key ending in 5000 digits: int() raised ValueError (a traceback).
    frames["front/" + "7" * 5000] = frames.pop("front/02")
    with pytest.raises(GroundTruthError, match=r"ends in a number of 5000 digits; a frame number "
                       r"has at most 18"):
        load_sequence(_write(tmp_path, frames))


def test_a_re_published_mount_is_used_and_restarts_the_camera_s_velocities():
    """A /tf_static mount re-published with another value (a corrected pitch) was ignored once the
    camera had a first calibration: its positions stayed on the old mount for good. Now it is used
    from the next frame, and the camera's velocity filters restart there (the step between the
    two mounts was filtered into a steady, wrong velocity); re-publishing the same mount, or
    another frame's transform, changes nothing."""
    from types import SimpleNamespace

    from sense_perception.core.exterior_steps import ExteriorSteps
    from sense_perception.core.geometry import mount_transform
    from sense_perception.core.geometry.positioner import CameraPositions
    from sense_perception.core.tracking.tracker import TrackerBank, TrackingConfig
    from sense_perception.core.types import Detections, Header
    from test_geometry_hostile import _camera_info, _stamped, _tf

    info = _camera_info()
    frame, size = info.header.frame_id, (info.width, info.height)
    calib = {**CALIB, "K": np.reshape(info.k, (3, 3)).tolist(), "width": size[0],
             "height": size[1], "D": [], "distortion_model": "none"}
    box = np.array([project_box(calib, (15.0, 1.0), "car")], np.float32)
    positions = CameraPositions()
    positions.camera_info("cam", _camera_info(d=np.zeros(5)), "/cam/camera_info")
    positions.tf_static(_tf(_stamped("base_link", frame, mount_transform(1.5, 0.02))))
    names = ["pedestrian", "car"]
    steps = ExteriorSteps(SimpleNamespace(label_names=names, min_score=0.3),
                          TrackerBank(TrackingConfig(min_hits=1), names), positions)

    def run(k: int):
        dets = Detections(box.copy(), np.array([0.9], np.float32), np.array([1], np.int32))
        return steps.frame("cam", Header(100 + k // 10, (k % 10) * 10 ** 8, frame), dets, size)

    before = [run(k) for k in range(12)]
    assert before[-1].motion.steady[0]
    positions.tf_static(_tf(_stamped("base_link", "lidar", mount_transform(1.9, 0.0))))
    positions.tf_static(_tf(_stamped("base_link", frame, mount_transform(1.5, 0.02))))
    same = run(12)
    assert same.motion.steady[0] and same.positions.xyz[0, 0] == before[-1].positions.xyz[0, 0]
    positions.tf_static(_tf(_stamped("base_link", frame, mount_transform(1.5, 0.0205))))
    after = run(13)
    assert after.positions.xyz[0, 0] < before[-1].positions.xyz[0, 0] - 0.03  # pitched down more
    assert not after.motion.steady[0] and after.motion.updates[0] == 1
    assert [run(k).motion.steady[0] for k in range(14, 22)][-1]  # steady again on the new mount


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, '{"width": ' + "9" * 5000 + "}"])
def test_a_calibration_file_of_nested_brackets_or_a_huge_number_is_an_error_not_a_traceback(
        tmp_path, capsys, content):
    """``--calibration`` of 200 kB of nested brackets raised RecursionError: a traceback ended
    ``detect``, ``eval`` and ``replay``; a 5000-digit number gave Python's advice on
    ``sys.set_int_max_str_digits``. Both are refused (exit 2) before any model loads."""
    from sense_perception.cli.main import main
    from replay_helpers import SAMPLE_BAG
    from support import DEV_SET

    bad = tmp_path / "cal.json"
    bad.write_text(content)
    image = DEV_SET.parent / "00.jpg"
    for argv in (["detect", str(image), "--out", str(tmp_path / "d")],
                 ["eval", str(DEV_SET), "--out", str(tmp_path / "e")],
                 ["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "r")]):
        assert main([*argv, "--calibration", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"--calibration {bad}: not readable JSON: " in err and "Traceback" not in err
        assert "set_int_max_str_digits" not in err
        assert not (tmp_path / argv[3].rsplit("/", 1)[-1]).exists()  # nothing written


def test_an_object_beyond_80_m_is_in_a_band_of_its_own_not_lost(tmp_path):
    """A box beyond 80 m that is not difficult was in no range band: missing from recall by range
    and from the error table, without a word (the classes' totals did not add up)."""
    import io

    from rich.console import Console

    from sense_perception.evaluation.positions import render_positions

    truth = [("car", (90.0, 2.0)), ("car", (150.0, -4.0)), ("car", (30.0, 0.0))]
    cam = _camera(truth)
    truth_3d = load_truth_3d(_write(tmp_path, {"c/0": cam}))
    boxes = np.array([b["bbox_xyxy"] for b in cam["boxes"]])
    g = GroundTruthImage("c/0", tmp_path / "x.png", 1280, 720, boxes, ["car"] * 3,
                         np.zeros(3, bool))
    dets = ImageDetections(boxes[:2].copy(), np.full(2, 0.9), ["car"] * 2)
    report = evaluate_positions([g], [dets], ["car"], 0.5, truth_3d).report
    assert report["bands"][-1] == "80+ m"
    assert report["recall_by_range"]["car"] == {"20-40 m": {"found": 0, "total": 1, "recall": 0.0},
                                                "80+ m": {"found": 2, "total": 2, "recall": 1.0}}
    far = report["errors"]["car"]["80+ m"]
    assert far["matched"] == far["positioned"] == 2 and far["median_abs_rel"] < 0.2
    printed = io.StringIO()
    render_positions(report, Console(file=printed, width=200))
    assert "80+ m" in printed.getvalue() and "2/2 (100.0 %)" in printed.getvalue()


def test_detections_json_names_the_images_a_calibration_does_not_fit(tmp_path, capsys):
    """``detect --calibration`` on an image of another size: its detections carried no 3-D field,
    as in a run without a calibration, while the file named the calibration as the source; only
    the terminal said why. detections.json now lists it in ``positions_left_out`` (as eval)."""
    import cv2

    from sense_perception.cli.main import main
    from support import DEV_SET

    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(DEV_SET.parent / "00.jpg")), (480, 270)))
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(make_calibration(size=(1920, 1080))))
    assert main(["detect", str(small), "--out", str(tmp_path / "out"), "--no-annotate",
                 "--calibration", str(cal)]) == 1
    printed = capsys.readouterr()
    assert "no 3-D positions" in printed.err
    # detected, so no failure: the summary said "(1 images, 1 failed)"
    assert "(1 image, 1 without 3-D positions)" in " ".join(printed.out.split())
    found = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert found["positions_left_out"] == [{"path": str(small), "reason": (
        f"--calibration {cal}: the calibration is for 1920x1080 images but the image is 480x270; "
        "fix: calibrate at the resolution the camera publishes (or scale K with the image)")}]
    # eval's detections.json says the same of an image its camera's calibration does not fit
    cam = _camera([("car", (20.0, 0.0))])
    box = np.array([cam["boxes"][0]["bbox_xyxy"]])
    g = GroundTruthImage("c/0", tmp_path / "x.png", 1920, 1080, box, ["car"], np.zeros(1, bool))
    result = evaluate_positions([g], [ImageDetections(box, np.ones(1), ["car"])], ["car"], 0.5,
                                load_truth_3d(_write(tmp_path, {"c/0": cam})))
    assert [e["path"] for e in result.detections["positions_left_out"]] == [str(g.path)]
    assert "1280x720 images but the image is 1920x1080" in \
        result.detections["positions_left_out"][0]["reason"]


@pytest.mark.parametrize(("params", "named"), [
    ({"mount_height": 1.5, "mount_roll": 3.0}, r"parameter 'mount_roll' 3 rad turns the camera 172 "
     r"degrees about its axis, so the image's y axis does not point down"),
    ({"mount_height": 1.5, "mount_roll": -1.5708}, r"parameter 'mount_roll' -1.5708 rad"),
    ({"mount_height": 1.5, "mount_pitch": -1.2}, r"parameter 'mount_pitch' -1.2 rad looks 69 "
     r"degrees up; .* at most 30 degrees up"),
    ({"mount_transform": [1.0] + [0.0] * 15}, r"parameter 'mount_transform': T_base_link_camera"),
])
def test_mount_parameters_that_see_no_road_are_refused_with_the_settings(params, named):
    """``mount_roll`` 3 (upside down) or ``mount_pitch`` -1.2 (looking up) are within their
    declared ranges and passed configure: every frame was then refused (a WARN), and the replay
    took them without a word (below). Now the settings refuse them, naming the parameter."""
    from sense_perception.errors import ConfigError
    from sense_perception.ros.settings import ObjectDetectorSettings

    with pytest.raises(ConfigError, match=named):
        ObjectDetectorSettings(**params).validate()
    ObjectDetectorSettings(mount_height=1.5, mount_pitch=-0.5, mount_roll=0.08).validate()


def test_the_replay_places_with_the_mount_parameters_as_the_node_does(tmp_path):
    """``mount_height`` (or ``mount_transform``) in the replay's --config was checked and then
    left unused: the replay placed every camera with /tf_static, where the node takes the
    parameters. The sample bag's front camera is 2.11 m up in /tf_static; placed 3 m up by the
    parameters, the summary names them as the source."""
    from replay_helpers import FRONT, SAMPLE_BAG, read_output

    from sense_perception.core.detection.detector import ObjectDetector
    from sense_perception.replay.engine import ReplayOptions, Replayer

    config = tmp_path / "mount.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    mount_height: 3.0\n"
                      "    mount_pitch: 0.02\n")
    out = tmp_path / "out"
    Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[FRONT], config=config),
             detector=ObjectDetector.from_params({}, "test")).run()
    front = json.loads((out / "summary.json").read_text())["cameras"][FRONT]["positions"]
    assert front["placed"] > 0 and front["calibration"].endswith(
        "(CameraInfo and the mount parameters)"), front
    ranges = [math.hypot(d.bbox.center.position.x, d.bbox.center.position.y)
              for m in read_output(out / "bag") if m.channel.topic == "/camera/front/detections_3d"
              for d in m.ros_msg.detections]
    assert ranges and all(math.isfinite(r) and 0 < r < 300 for r in ranges)


def test_a_vehicle_filling_a_corner_gets_no_velocity_and_a_repeated_stamp_drops_no_frame():
    """A vehicle filling the image's bottom corner is placed from the border alone: where the
    bottom row meets the road, whatever it does. Its filter took that as a still object (a steady
    0 m/s, published as the twist, for a car that may be pulling away), and its frame-to-frame
    noise, 0 along the ray, made the filter's S singular on a frame stamped as the one before:
    LinAlgError, the frame and its 2-D detections dropped. Now such a position measures no motion;
    and a rank-one noise from any cue is floored."""
    from sense_perception.core.geometry.calibration import from_dict
    from sense_perception.core.geometry.ground import BORDER, GROUND, estimate_positions
    from sense_perception.core.tracking.ground_motion import GroundMotion

    calib = from_dict(CALIB, "test")
    corner = estimate_positions(calib, np.array([[900.0, 500.0, 1280.0, 720.0]]), np.array([0]),
                                ("car",))
    assert corner.method.tolist() == [BORDER] and np.linalg.matrix_rank(corner.jitter[0]) == 1
    motion = GroundMotion(max_age=1.0)
    for t in (0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        v = motion.update(np.array([1]), corner, t)
        assert not v.steady[0] and v.updates[0] == 0 and np.isnan(v.velocity[0]).all()
    # The same rank-one noise on a ground-ray position, twice at one stamp: finite, no error.
    ground = estimate_positions(calib, np.array([[600.0, 400.0, 700.0, 480.0]]), np.array([0]),
                                ("car",))
    assert ground.method.tolist() == [GROUND | 2]
    ground.jitter = corner.jitter.copy()
    motion = GroundMotion(max_age=1.0)
    for t in (0.0, 0.0, 0.0, 0.1):
        v = motion.update(np.array([1]), ground, t)
        assert np.isfinite(v.velocity[0]).all() and np.isfinite(v.covariance[0]).all()


@pytest.mark.parametrize("fps", [math.inf, 1e308, math.nan, 1e-300, -10.0])
def test_a_frame_rate_that_makes_no_time_step_is_refused(tmp_path, fps):
    """``tools/eval_velocity.py --fps inf`` stamped every frame 0 and made every true velocity
    inf (a difference over 0 s, with a numpy RuntimeWarning); 1e308 overflowed the same way."""
    frames = {f"front/{n:02d}": _camera([("car", (20.0, 0.0))]) for n in range(3)}
    with pytest.raises(GroundTruthError, match=r"--fps must be > 0: from 0.01 to 1000 frames per "
                       r"second"):
        load_sequence(_write(tmp_path, frames), fps=fps)


def test_a_box_under_a_pixel_tall_or_wide_places_nothing_absurd():
    """A degenerate box (a custom model's, 1e-6 px tall) above the horizon: its size cue put a car
    1.5 million km away with a 3-million-km sigma, into detections_3d and Autoware's objects. The
    size and width cues now need a box at least a pixel tall / wide; the rest of the box's cues
    still place it."""
    from sense_perception.core.geometry.calibration import from_dict
    from sense_perception.core.geometry.ground import SIZE, WIDTH, estimate_positions

    boxes = np.array([[600, 300, 640, 300.000001], [600, 300, 600.5, 300.5],
                      [600, 300, 680, 301]])
    p = estimate_positions(from_dict(CALIB, "test"), boxes, np.ones(3, int), ("pedestrian", "car"))
    assert p.valid.tolist() == [True, False, True]
    assert p.method[0] == WIDTH and 20 < p.range_m[0] < 100  # 40 px wide: the width cue
    assert p.method[2] == SIZE and p.range_m[2] < 2000  # one pixel: the size cue, honestly far
    assert np.isfinite(p.covariance[p.valid]).all()


def test_images_of_another_frame_id_are_placed_with_that_frame_s_mount():
    """Once a camera had a calibration, its images' frame_id was no longer read: images of
    another frame (a driver reconfigured, two cameras publishing on one topic) were placed with
    the first frame's mount, and a frame /tf_static does not know was placed too. Now each frame
    is placed with its own mount, as tf2 looks it up, and an unknown one gets no position."""
    from sense_perception.core.geometry import mount_transform
    from sense_perception.core.geometry.positioner import CameraPositions
    from test_geometry_hostile import _camera_info, _stamped, _tf

    info = _camera_info()
    positions = CameraPositions()
    positions.camera_info("cam", info, "/cam/camera_info")
    positions.tf_static(_tf(_stamped("base_link", "cam_a", mount_transform(1.5, 0.02)),
                            _stamped("base_link", "cam_b", mount_transform(2.5, 0.02))))
    box = np.array([[400.0, 250.0, 480.0, 330.0]])

    def place(frame: str):
        return positions.positions("cam", frame, info.width, info.height, box, np.array([0]),
                                   ["car"])

    a, b, again = place("cam_a"), place("cam_b"), place("cam_a")
    assert b.xyz[0, 0] > a.xyz[0, 0] + 5  # a metre higher: the same pixel is further away
    assert again.xyz[0, 0] == a.xyz[0, 0] and positions.generation("cam") == 2
    assert place("nope") is None
    assert "no chain of transforms from base_link to nope" in positions.reason("cam")


def test_the_mount_parameters_serve_one_camera_only(tmp_path):
    """``mount_height`` or ``mount_transform`` give one mount, and every camera of the node (and
    of a replay) was placed with it: with Autoware's six cameras, the rear camera's road users
    were published in front of the car (detections_3d, DetectedObjects, the ROIs' kinematics).
    Several cameras with the mount parameters are refused now, by the settings and by the replay
    before any model loads (R57); topics of one camera (raw, rectified, compressed) are one."""
    from replay_helpers import FRONT, SAMPLE_BAG, WINDSHIELD

    from sense_perception.errors import ConfigError
    from sense_perception.replay.engine import ReplayOptions, Replayer
    from sense_perception.ros.settings import ObjectDetectorSettings

    from sense_perception.core.geometry import mount_transform

    cameras = [f"/sensing/camera/camera{i}/image_rect_color" for i in range(2)]
    for params in ({"mount_height": 1.5}, {"mount_transform": mount_transform(1.5).ravel().tolist()}):
        with pytest.raises(ConfigError, match=re.escape(
                f"parameter '{next(iter(params))}' gives one camera mount, but the cameras "
                "/sensing/camera/camera0, /sensing/camera/camera1 would all be placed with it")):
            ObjectDetectorSettings(camera_topics=cameras, **params).validate()
    ObjectDetectorSettings(camera_topics=cameras).validate()  # each camera's mount from /tf_static
    ObjectDetectorSettings(camera_topics=["/c/image_raw", "/c/image_rect_color/compressed"],
                           mount_height=1.5).validate()  # one camera
    config = tmp_path / "mount.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    mount_height: 3.0\n")
    with pytest.raises(ConfigError, match="fix: publish each camera's mount in /tf_static"):
        Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT, WINDSHIELD],
                               config=config)).run()
    assert not any((tmp_path / "out").iterdir())  # nothing written


def test_mount_height_is_refused_with_autowares_outputs(tmp_path):
    """mount_height places base_link's origin on the road below the camera; Autoware's base_link
    is the rear axle's centre, so with config/autoware.yaml every DetectedObject (and the ROIs'
    kinematics) was off by the camera's offset along the car, without a word (R57). Refused now
    by the node's configure check and by the replay before any model loads; mount_transform (the
    camera's position in base_link) and /tf_static are taken."""
    from replay_helpers import FRONT, SAMPLE_BAG

    from sense_perception.core.geometry.positioner import check_mount_for_autoware
    from sense_perception.errors import ConfigError
    from sense_perception.replay.engine import ReplayOptions, Replayer

    rois = "/perception/object_recognition/detection/rois{index}"
    with pytest.raises(ConfigError, match="Autoware's base_link is the centre of the rear axle"):
        check_mount_for_autoware("mount_height", [rois, ""])
    for mount, topics in (("mount_transform", [rois, ""]), ("", [rois, ""]), ("mount_height", ["", ""])):
        check_mount_for_autoware(mount, topics)
    config = tmp_path / "aw.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    mount_height: 1.4\n"
                      "    autoware.objects_topic: /perception/objects_front\n")
    with pytest.raises(ConfigError, match="give mount_transform with the camera's position"):
        Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT], config=config)).run()
    assert not any((tmp_path / "out").iterdir())
