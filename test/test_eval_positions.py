"""Ground positions in ``eval`` and ``detect``: error tables, detections.json, calibration errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.core.geometry import mount_transform
from sense_perception.errors import GroundTruthError
from sense_perception.evaluation.ground_truth import GroundTruthImage
from sense_perception.evaluation.positions import evaluate_positions, load_truth_3d
from sense_perception.evaluation.scoring import ImageDetections
from support import DEV_SET
from test_geometry import make_calibration, project_box

DEV_3D = DEV_SET.parent / "ground_truth_3d.json"
needs_dev_set = pytest.mark.skipif(not DEV_3D.is_file(), reason=f"no developer set at {DEV_3D}")


def _truth_file(tmp_path: Path, calib: dict, truth: list[tuple[str, tuple[float, float]]]) -> Path:
    boxes = [{"label": label, "bbox_xyxy": project_box(calib, xy, label),
              "position_base_link": [xy[0], xy[1], 0.0], "range_m": float(np.hypot(*xy))}
             for label, xy in truth]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": {"cam/0": {"image": "x.png", "width": calib["width"],
                                                      "height": calib["height"],
                                                      "calibration": calib, "boxes": boxes}}}))
    return path


def test_errors_coverage_and_recall_by_range_on_a_constructed_scene(tmp_path):
    calib = make_calibration()
    truth = [("pedestrian", (8.0, 1.0)), ("pedestrian", (15.0, -2.0)), ("car", (25.0, 3.0)),
             ("car", (50.0, -4.0)), ("car", (30.0, 6.0))]
    path = _truth_file(tmp_path, calib, truth)
    truth_3d = load_truth_3d(path)
    boxes = np.array([b["bbox_xyxy"] for b in json.loads(path.read_text())["cameras"]["cam/0"]
                      ["boxes"]])
    g = GroundTruthImage("cam/0", tmp_path / "x.png", 1280, 720, boxes,
                         [label for label, _ in truth], np.zeros(len(truth), bool))
    # The detector finds all but the last car; the near pedestrian's feet 6 px higher (hidden):
    # further away.
    found = boxes[:4].copy()
    found[0, 3] -= 6
    dets = ImageDetections(found, np.full(4, 0.9), [label for label, _ in truth[:4]])
    result = evaluate_positions([g], [dets], ["pedestrian", "car"], 0.5, truth_3d)
    assert "per-camera calibration (1 of 1" in result.source
    errors = result.report["errors"]
    near = errors["pedestrian"]["0-20 m"]
    assert near["matched"] == near["positioned"] == 2
    assert 0 < near["median_rel"] < 0.1  # the lowered feet put the near one further
    assert errors["car"]["20-40 m"]["matched"] == 1 and errors["car"]["40-80 m"]["matched"] == 1
    assert errors["car"]["40-80 m"]["median_abs_rel"] < 0.05
    for cell in (near, errors["car"]["20-40 m"]):
        assert 0.0 <= cell["coverage_1sigma"] <= 1.0 and cell["median_lateral_m"] < 0.5
    recall = result.report["recall_by_range"]
    assert recall["car"]["20-40 m"] == {"found": 1, "total": 2, "recall": 0.5}
    assert recall["pedestrian"]["0-20 m"]["recall"] == 1.0
    entry = result.detections["images"][0]["detections"][0]
    assert len(entry["position_base_link"]) == 3 and entry["range_m"] > 7
    assert np.array(entry["position_covariance"]).shape == (2, 2)


def test_ground_truth_calibration_errors_name_the_camera(tmp_path):
    calib = make_calibration()
    path = _truth_file(tmp_path, {**calib, "T_base_link_camera": np.eye(4).tolist()},
                       [("car", (20.0, 0.0))])
    with pytest.raises(GroundTruthError, match=r"cameras.cam/0.calibration: T_base_link_camera"):
        load_truth_3d(path)
    doc = json.loads(_truth_file(tmp_path, calib, [("car", (20.0, 0.0))]).read_text())
    doc["cameras"]["cam/0"]["boxes"][0]["position_base_link"] = [1, 2]
    path.write_text(json.dumps(doc))
    with pytest.raises(GroundTruthError, match=r"boxes\[0\].position_base_link: expected \[x, y, z\]"):
        load_truth_3d(path)


def test_calibration_for_another_image_size_leaves_positions_out(tmp_path):
    calib = make_calibration()
    path = _truth_file(tmp_path, calib, [("car", (20.0, 0.0))])
    box = np.array([project_box(calib, (20.0, 0.0), "car")])
    g = GroundTruthImage("cam/0", tmp_path / "x.png", 1920, 1080, box, ["car"], np.zeros(1, bool))
    result = evaluate_positions([g], [ImageDetections(box, np.ones(1), ["car"])], ["car"], 0.5,
                                load_truth_3d(path))
    assert result.source is None and "1280x720 images but the image is 1920x1080" in \
        result.unplaced[0][1]
    assert "position_base_link" not in result.detections["images"][0]["detections"][0]
    assert result.report["errors"]["car"]["20-40 m"] == {"matched": 1, "positioned": 0}


def _subset(tmp_path: Path, source: Path, frames: tuple[int, ...], **change) -> Path:
    doc = json.loads(source.read_text())
    keys = [f"front_camera/{i:02d}" for i in frames]
    cams = {k: {**doc["cameras"][k], "image": str(source.parent / doc["cameras"][k]["image"]),
                **change} for k in keys}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": cams}))
    return path


@needs_dev_set
def test_eval_cli_reports_positions_and_writes_detections(tmp_path, capsys):
    gt = _subset(tmp_path, DEV_3D, (0, 40))
    out = tmp_path / "out"
    assert main(["eval", str(gt), "--out", str(out), "--no-curve"]) == 0
    printed = capsys.readouterr().out
    assert "ground positions of matched detections" in printed and "recall by true range" in printed
    report = json.loads((out / "eval.json").read_text())["positions"]
    cars = report["errors"]["car"]["0-20 m"]
    assert cars["positioned"] == cars["matched"] > 3 and cars["median_abs_rel"] < 0.15
    detections = json.loads((out / "detections.json").read_text())
    assert "per-camera calibration (2 of 2" in detections["positions"]["calibration"]
    placed = [d for im in detections["images"] for d in im["detections"]
              if d["position_base_link"] is not None]
    assert len(placed) > 10 and all(d["range_m"] > 0 for d in placed)
    # --calibration for another resolution: scored, but no positions (exit 1, named)
    wrong = tmp_path / "cal.json"
    wrong.write_text(json.dumps(make_calibration()))
    assert main(["eval", str(gt), "--out", str(out), "--no-curve", "--calibration",
                 str(wrong)]) == 1
    captured = capsys.readouterr()
    assert "1280x720 images but the image is 1920x1080" in captured.err
    assert "3-D positions: none" in captured.out
    # R66: eval.json's list named each image by `image` (the ground truth's key) alone, and
    # detections.json's by `path`: both now name the file by `path` (eval.json keeps `image`, as
    # in its `skipped`)
    left_out = json.loads((out / "eval.json").read_text())["positions_left_out"]
    listed = json.loads((out / "detections.json").read_text())["positions_left_out"]
    assert [e["path"] for e in left_out] == [e["path"] for e in listed]
    assert [Path(e["path"]).name for e in left_out] == ["00.jpg", "40.jpg"]
    assert [e["image"] for e in left_out] == ["front_camera/00", "front_camera/40"]


@needs_dev_set
def test_eval_without_calibration_says_why_and_bad_calibration_stops_early(tmp_path, capsys):
    gt = _subset(tmp_path, DEV_SET, (0,))
    out = tmp_path / "out"
    assert main(["eval", str(gt), "--out", str(out), "--no-curve"]) == 0
    assert "3-D positions: none (neither the ground truth's cameras nor --calibration FILE" in \
        capsys.readouterr().out
    detections = json.loads((out / "detections.json").read_text())
    assert detections["positions"]["calibration"] is None
    assert all("position_base_link" not in d for im in detections["images"]
               for d in im["detections"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**make_calibration(), "distortion_model": "fisheye"}))
    assert main(["eval", str(gt), "--out", str(tmp_path / "o2"), "--calibration", str(bad)]) == 2
    assert "'fisheye' is not supported" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # refused before any detection


@needs_dev_set
def test_detect_with_calibration_adds_positions(tmp_path, capsys, monkeypatch):
    doc = json.loads(DEV_3D.read_text())["cameras"]["front_camera/00"]
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({k: v for k, v in doc["calibration"].items()
                               if k not in ("frame", "ground_plane_fit")}))
    image = DEV_3D.parent / doc["image"]
    out = tmp_path / "out"
    assert main(["detect", str(image), "--out", str(out), "--no-annotate", "--calibration",
                 str(cal)]) == 0
    found = json.loads((out / "detections.json").read_text())
    cars = [d for d in found["images"][0]["detections"] if d["label"] == "car"]
    assert cars and all(d["range_m"] is not None and d["position_base_link"][2] == 0 for d in cars)
    lights = [d for d in found["images"][0]["detections"] if d["label"] == "traffic_light"]
    assert all(d["position_base_link"] is None for d in lights)
    assert found["positions"] == {"calibration": f"--calibration {cal}"}
    from sense_perception.core.output import annotate

    drawn: list = []
    real = annotate.draw_detections

    def recording(*args, captions=None, **kwargs):
        drawn.append(captions)
        return real(*args, captions=captions, **kwargs)

    monkeypatch.setattr(annotate, "draw_detections", recording)
    assert main(["detect", str(image), "--out", str(out), "--calibration", str(cal)]) == 0
    car = cars[0]
    assert f"car {car['score']:.2f} · {car['range_m']:.0f} m" in drawn[0]  # the annotated copy
    monkeypatch.setattr(annotate, "draw_detections", real)
    assert main(["detect", str(image), "--out", str(out), "--no-annotate"]) == 0
    assert "3-D positions: none (no camera calibration: give --calibration FILE" in \
        capsys.readouterr().out
    cal.write_text(json.dumps({**json.loads(cal.read_text()),
                               "T_base_link_camera": mount_transform(-1.0).tolist()}))
    assert main(["detect", str(image), "--out", str(out), "--calibration", str(cal)]) == 2
    assert "from the road (z must be > 0" in capsys.readouterr().err
