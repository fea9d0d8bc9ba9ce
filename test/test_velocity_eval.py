"""Track velocities measured on a labelled sequence (evaluation/velocity.py, tools/eval_velocity.py).

The real-data test runs the developer set's 80 PandaSet frames through the replay's exterior stage
(detector, tracker, positioner, ground-velocity filter) and holds the measured figures to bounds a
little outside what was measured (docs/positions-3d.md, Velocity).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sense_perception.core.geometry import from_dict
from sense_perception.core.tracking.ground_motion import GroundVelocities
from sense_perception.errors import GroundTruthError
from sense_perception.evaluation.ground_truth import GroundTruthImage
from sense_perception.evaluation.scoring import ImageDetections
from sense_perception.evaluation.velocity import (FrameResult, SequenceFrame, load_sequence,
                                                  truth_velocities, velocity_report)
from support import DEV_SET, REPO
from test_geometry import make_calibration

DEV_3D = DEV_SET.parent / "ground_truth_3d.json"
TOOL = REPO / "tools" / "eval_velocity.py"
# The tool imports this checkout's package, whatever the environment has installed.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_truth_velocity_is_a_central_difference_of_the_same_object():
    # Object "a" at x = 2 t^2 (frames 0..3, dt 0.5) and "b" missing from frame 2; "" has no id.
    dt = 0.5
    numbers = [0, 1, 2, 3]
    uuids = [["a", "b"], ["b", "a", ""], ["a"], ["a", "b"]]
    x = {n: 2.0 * (n * dt) ** 2 for n in numbers}
    positions = [np.array([[x[0], 1.0, 0.0], [5.0, 0.0, 0.0]]),
                 np.array([[6.0, 0.0, 0.0], [x[1], 1.0, 0.0], [9.0, 9.0, 0.0]]),
                 np.array([[x[2], 1.0, 0.0]]),
                 np.array([[x[3], 1.0, 0.0], [8.0, 0.0, 0.0]])]
    v = truth_velocities(numbers, uuids, positions, dt)
    assert [a.shape for a in v] == [(2, 2), (3, 2), (1, 2), (2, 2)]
    # First and last frames have no neighbour on one side.
    assert np.isnan(v[0]).all() and np.isnan(v[3]).all()
    # Central difference of a parabola is exact: dx/dt = 4 t.
    np.testing.assert_allclose(v[1][1], [4.0 * 1 * dt, 0.0])
    np.testing.assert_allclose(v[2][0], [4.0 * 2 * dt, 0.0])
    # "b" is not in frame 2, the unnamed box has no id.
    assert np.isnan(v[1][0]).all() and np.isnan(v[1][2]).all()


def test_truth_velocity_needs_frame_numbers_not_list_positions():
    # A frame missing from the sequence (2) leaves 1 and 3 without a neighbour on that side.
    v = truth_velocities([0, 1, 3, 4], [["a"]] * 4,
                         [np.array([[float(n), 0.0, 0.0]]) for n in (0, 1, 3, 4)], 0.1)
    assert all(np.isnan(a).all() for a in v)


def _frame(number: int, boxes: list, labels: list, difficult: list, truth_v: list, motion: list,
           xy: list) -> SequenceFrame:
    g = GroundTruthImage(f"cam/{number}", Path("x.png"), 1280, 720, np.array(boxes, float),
                         labels, np.array(difficult, bool))
    positions = np.array([[x, y, 0.0] for x, y in xy])
    return SequenceFrame(number, number / 10, g, from_dict(make_calibration(), "test"), positions,
                         [f"u{k}" for k in range(len(boxes))], motion, np.array(truth_v, float))


def _result(boxes: list, labels: list, track_ids: list, v: list, steady: list, updates: list,
            sd: float = 0.5) -> FrameResult:
    n = len(boxes)
    cov = np.broadcast_to(np.eye(2) * sd ** 2, (n, 2, 2)).copy()
    return FrameResult(ImageDetections(np.array(boxes, float), np.full(n, 0.9), labels),
                       np.array(track_ids), GroundVelocities(np.array(v, float), cov,
                                                             np.array(steady), np.array(updates)))


def test_report_counts_only_matched_tracked_detections_by_true_range_and_parked():
    a, b, c, d = [0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100], [600, 0, 700, 100]
    frame = _frame(5, [a, b, c, d], ["car", "car", "car", "pedestrian"],
                   [False, False, True, False],
                   [[-2.0, 0.0], [1.0, 1.0], [0.0, 0.0], [np.nan, np.nan]],
                   ["Parked", "Moving", "Parked", ""], [(10, 0), (25, -3), (12, 0), (50, 5)])
    result = _result(
        # a: steady, 0.3 m/s off in x (inside 1 sigma); b: steady, 2 m/s off (outside); c lies on
        # a difficult box (neither way); d: steady but no true velocity; the false positive e and
        # the untracked twin of nothing are not matched.
        [a, b, c, d, [900, 0, 1000, 100]], ["car", "car", "car", "pedestrian", "car"],
        [1, 2, 3, 4, 5],
        [[-1.7, 0.0], [3.0, 1.0], [0.0, 0.0], [0.1, 0.0], [0.0, 0.0]],
        [True, True, True, True, True], [9, 9, 9, 9, 9])
    report = velocity_report([frame], [result], ["pedestrian", "car"], 0.5)
    near, mid = report["all"]["car"]["0-20 m"], report["all"]["car"]["20-40 m"]
    assert near == {"tracked": 1, "steady": 1, "no_truth_velocity": 0, "count": 1,
                    "median_error": 0.3, "p90_error": 0.3, "bias_x": 0.3, "coverage_1sigma": 1.0}
    assert mid["count"] == 1 and mid["median_error"] == 2.0 and mid["coverage_1sigma"] == 0.0
    assert report["all"]["car"]["40-80 m"] == {"tracked": 0, "steady": 0, "no_truth_velocity": 0,
                                               "count": 0}
    ped = report["all"]["pedestrian"]["40-80 m"]
    assert ped["steady"] == 1 and ped["no_truth_velocity"] == 1 and ped["count"] == 0
    # Only the parked car a is in the parked table.
    assert list(report["parked"]) == ["car"]
    assert report["parked"]["car"]["0-20 m"]["count"] == 1
    assert report["parked"]["car"]["20-40 m"]["tracked"] == 0


def test_report_keeps_unsteady_and_untracked_apart():
    a = [0, 0, 100, 100]
    frame = _frame(1, [a], ["car"], [False], [[1.0, 0.0]], ["Moving"], [(15, 0)])
    unsteady = _result([a], ["car"], [7], [[1.0, 0.0]], [False], [3])
    untracked = _result([a], ["car"], [-1], [[np.nan, np.nan]], [False], [0])
    report = velocity_report([frame, frame], [unsteady, untracked], ["car"], 0.5)
    assert report["all"]["car"]["0-20 m"] == {"tracked": 1, "steady": 0, "no_truth_velocity": 0,
                                              "count": 0}
    # A frame left out of the run (None) and a frame outside the selection are not reported.
    report = velocity_report([frame, frame], [None, unsteady], ["car"], 0.5,
                             select=lambda f: False)
    assert report["frames"] == 0 and report["all"] == {}


def test_load_sequence_refuses_what_is_not_one_camera_sequence(tmp_path):
    calib = make_calibration()

    def write(keys: list[str]) -> Path:
        path = tmp_path / "gt.json"
        path.write_text(json.dumps({"cameras": {k: {"image": "x.png", "width": 1280,
                                                    "height": 720, "calibration": calib,
                                                    "boxes": []} for k in keys}}))
        return path

    with pytest.raises(GroundTruthError, match="has no frame number"):
        load_sequence(write(["cam/a"]))
    with pytest.raises(GroundTruthError, match="several cameras.*--camera"):
        load_sequence(write(["left/01", "right/01"]))
    frames = load_sequence(write(["left/02", "left/01", "right/01"]), camera="left/", fps=20)
    assert [f.number for f in frames] == [1, 2] and frames[1].t == pytest.approx(0.1)
    with pytest.raises(GroundTruthError, match="no frame of camera 'front/'"):
        load_sequence(write(["left/01"]), camera="front/")
    with pytest.raises(GroundTruthError, match="fps must be > 0"):
        load_sequence(write(["left/01"]), fps=0)


def test_tool_says_what_is_wrong_and_exits_2(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": {"cam/x": {"image": "x.png", "boxes": []}}}))
    run = subprocess.run([sys.executable, str(TOOL), str(path)], capture_output=True, text=True,
                         cwd=REPO, env=ENV, timeout=120)
    assert run.returncode == 2
    assert "has no frame number" in run.stderr and "Traceback" not in run.stderr
    helped = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True,
                            cwd=REPO, env=ENV, timeout=60)
    assert helped.returncode == 0 and "--json-out" in helped.stdout and "--report-frames" in helped.stdout
    # --json-out never over an input (the project's rule for result files), refused before any work
    refused = subprocess.run([sys.executable, str(TOOL), str(path), "--json-out", str(path)],
                             capture_output=True, text=True, cwd=REPO, env=ENV, timeout=60)
    assert refused.returncode == 2 and "--json-out" in refused.stderr
    assert "Traceback" not in refused.stderr and json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.skipif(not DEV_3D.is_file(), reason=f"no developer set at {DEV_3D}")
def test_velocities_on_the_developer_sequence(tmp_path):
    """80 real frames, default config: measured 5 December 2026 (docs/positions-3d.md)."""
    out = tmp_path / "velocity.json"
    run = subprocess.run([sys.executable, str(TOOL), str(DEV_3D), "--json-out", str(out)],
                         capture_output=True, text=True, cwd=REPO, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["frames"] == 80 and report["skipped"] == []
    assert "median" in run.stdout and "parked" in run.stdout
    near, mid = report["all"]["car"]["0-20 m"], report["all"]["car"]["20-40 m"]
    # Measured: 140 steady of 187 tracked, median 0.47 m/s, p90 1.43, bias +0.13, in 1 sigma 61 %.
    assert near["count"] >= 120 and near["steady"] >= 0.65 * near["tracked"]
    assert near["median_error"] < 0.6 and near["p90_error"] < 1.7
    assert abs(near["bias_x"]) < 0.3
    assert 0.45 <= near["coverage_1sigma"] <= 0.75
    # Measured: 59 compared, median 0.72 m/s, p90 1.59, in 1 sigma 59 %.
    assert mid["count"] >= 45 and mid["median_error"] < 0.9 and mid["p90_error"] < 2.0
    assert 0.4 <= mid["coverage_1sigma"] <= 0.75
    # Far cars are never steady with the defaults (their velocity sd stays above steady_sd).
    assert report["all"]["car"]["40-80 m"]["tracked"] > 100
    assert report["all"]["car"]["40-80 m"]["steady"] == 0
    # Parked cars (the ego car's motion, reversed). Measured: 86, median 0.38 m/s, bias +0.14.
    parked = report["parked"]["car"]["0-20 m"]
    assert parked["count"] >= 70 and parked["median_error"] < 0.5 and abs(parked["bias_x"]) < 0.3


def test_tool_names_a_missing_image_before_any_model_loads(tmp_path):
    path = tmp_path / "gt.json"
    calib = make_calibration()
    path.write_text(json.dumps({"cameras": {f"cam/{n}": {
        "image": f"{n}.png", "width": 1280, "height": 720, "calibration": calib, "boxes": []}
        for n in (0, 1)}}))
    run = subprocess.run([sys.executable, str(TOOL), str(path)], capture_output=True, text=True,
                         cwd=REPO, env=ENV, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "2 image(s)" in run.stderr and "are missing" in run.stderr


def test_a_report_window_holding_no_frame_is_refused_before_any_model_loads(tmp_path):
    """--report-frames 50:10 (reversed) and a window outside the sequence ran every frame through
    the models and then reported nothing; both are now refused by name (exit 2)."""
    path = tmp_path / "gt.json"
    calib = make_calibration()
    path.write_text(json.dumps({"cameras": {f"cam/{n}": {
        "image": f"{n}.png", "width": 1280, "height": 720, "calibration": calib, "boxes": []}
        for n in (0, 1)}}))
    for window, said in (("50:10", "'50:10' holds no frame: B is excluded and must be above A"),
                         ("7:7", "'7:7' holds no frame"),
                         ("500:", "--report-frames 500: holds none of the sequence's frames "
                                  "(0 to 1)")):
        run = subprocess.run([sys.executable, str(TOOL), str(path), "--report-frames", window],
                             capture_output=True, text=True, cwd=REPO, env=ENV, timeout=120)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert said in run.stderr, run.stderr
        assert "are missing" not in run.stderr  # refused before the images are looked for


def test_an_unreadable_frame_is_left_out_and_named_the_rest_goes_on(tmp_path):
    """Three frames of a real image, the middle one a broken file: two are run and reported."""
    from sense_perception.evaluation.velocity import run_sequence

    image = DEV_SET.parent / "00.jpg"
    if not image.is_file():
        pytest.skip(f"no developer set at {DEV_SET.parent}")
    (tmp_path / "0.jpg").write_bytes(image.read_bytes())
    (tmp_path / "1.jpg").write_bytes(image.read_bytes()[:2000])  # a cut-off JPEG
    (tmp_path / "2.jpg").write_bytes(image.read_bytes())
    calib = make_calibration(size=(1920, 1080))
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": {f"front/{n}": {
        "image": f"{n}.jpg", "width": 1920, "height": 1080, "calibration": calib,
        "boxes": [{"label": "car", "bbox_xyxy": [714.3, 517.4, 1149.4, 915.3], "uuid": "a",
                   "position_base_link": [12.9 - 0.1 * n, 0.15, 0.0]}]} for n in range(3)}}))
    frames = load_sequence(path)
    results, skipped, labels = run_sequence(frames, None, path)
    assert [r is None for r in results] == [False, True, False]
    assert [s["image"] for s in skipped] == ["front/1"] and skipped[0]["reason"]
    assert "car" in labels and len(results[0].detections.labels) > 0
    # The tracker predicts over the gap: the car's track carries on in the third frame.
    assert (results[2].track_ids >= 0).any()


def test_json_out_is_written_through_a_temp_file_and_a_full_disk_keeps_the_earlier_result(tmp_path):
    """A file-size limit below the new report (as a full disk) fails the write: the earlier result
    stays whole (it was truncated in place before) and the tool says so, exit 2."""
    import resource
    import signal

    image = DEV_SET.parent / "00.jpg"
    if not image.is_file():
        pytest.skip(f"no developer set at {DEV_SET.parent}")
    for n in range(2):
        (tmp_path / f"{n}.jpg").write_bytes(image.read_bytes())
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": {f"front/{n}": {
        "image": f"{n}.jpg", "width": 1920, "height": 1080,
        "calibration": make_calibration(size=(1920, 1080)),
        "boxes": [{"label": "car", "bbox_xyxy": [714.3, 517.4, 1149.4, 915.3], "uuid": "a",
                   "position_base_link": [12.9 - 0.1 * n, 0.15, 0.0]}]} for n in range(2)}}))
    out = tmp_path / "velocity.json"
    # an earlier report of the tool (R80: any other JSON file is refused, not replaced)
    earlier = json.dumps({"iou": 0.5, "bands": [], "frames": 0, "all": {}, "parked": {},
                          "ground_truth": "x" * 300}) + "\n"
    out.write_text(earlier)

    def full_disk() -> None:  # no write may grow a file past 600 bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))

    run = subprocess.run([sys.executable, str(TOOL), str(path), "--json-out", str(out)],
                         capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300,
                         preexec_fn=full_disk)
    assert run.returncode == 2 and f"cannot write --json-out {out}" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "2 frames" in run.stdout
    assert out.read_text() == earlier and sorted(p.name for p in tmp_path.iterdir()) == [
        "0.jpg", "1.jpg", "gt.json", "velocity.json"]  # no temp file left beside it
    # Without the limit the report replaces it whole.
    run = subprocess.run([sys.executable, str(TOOL), str(path), "--json-out", str(out)],
                         capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["frames"] == 2 and out.stat().st_size > 600
