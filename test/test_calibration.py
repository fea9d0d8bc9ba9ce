"""Score calibration: the shipped maps, the calibrated default thresholds, and calibrated scores on
every path (the core detector, ``detect``, ``replay``, ``eval``) with the raw operating point kept."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from replay_helpers import FRONT, SAMPLE_BAG, read_output
from support import assert_detections_close
from sense_perception.cli.main import main
from sense_perception.core.boxes import pairwise_iou
from sense_perception.core.detection.calibration import (PlattMap, apply_maps, calibration_for,
                                                         load_calibrations)
from sense_perception.core.detection.detector import (CALIBRATED_DEFAULTS, ClassThresholds,
                                                      DetectorConfig, ObjectDetector,
                                                      detector_models)
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.core.runtime.model_registry import MODELS
from sense_perception.core.tracking.tracker import TrackingConfig
from sense_perception.errors import ModelError
from sense_perception.evaluation.run import run_evaluation

ROOT = Path(__file__).resolve().parents[1]
STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
FRAMES = sorted(STREET.glob("pandaset_seq002_front_camera_*.jpg"))
HAND_LABELLED = ROOT / "test" / "data" / "hand_labelled" / "ground_truth.json"
CPU = {"runtime.providers": ["CPUExecutionProvider"]}
SHIPPED = load_calibrations()
OPERATING = json.loads((ROOT / "sense_perception" / "models" / "score_calibration.json")
                       .read_text())["operating_point"]
# The raw operating point the defaults were chosen at, with calibration off.
RAW = {"detector.calibrated_scores": False,
       **{f"detector.{key}": value["raw"] for key, value in OPERATING.items()}}


# -- the maps -----------------------------------------------------------------------------------


def test_maps_are_strictly_increasing_and_invertible() -> None:
    raw = np.linspace(0.0, 1.0, 10001)
    for calibration in SHIPPED.values():
        for label in ("", *calibration.labels):
            m = calibration.map_of(label)
            calibrated = m(raw)
            assert m.a > 0 and (np.diff(calibrated) >= 0).all(), (calibration.model, label)
            # Strictly increasing wherever float64 can tell the values apart from 0 and 1.
            inside = (calibrated > 1e-9) & (calibrated < 1 - 1e-9)
            assert inside.sum() > 1000 and (np.diff(calibrated[inside]) > 0).all()
            assert ((calibrated >= 0) & (calibrated <= 1)).all()
            for r in (0.03, 0.15, 0.3, 0.35, 0.9):
                assert m.inverse(float(m(r))) == pytest.approx(r, abs=1e-6)
    with pytest.raises(ValueError, match="a > 0"):
        PlattMap(0.0, 1.0)  # flat: would tie every score


def test_apply_maps_per_label_leaves_unmapped_scores() -> None:
    a, b = np.array([1.0, 2.0]), np.array([0.0, 1.0])
    scores = np.array([0.3, 0.3, 0.3], np.float32)
    out = apply_maps(scores, np.array([0, 1, -1]), a, b)
    assert out.dtype == np.float32
    assert out[0] == pytest.approx(0.3, abs=1e-6)  # identity map
    assert out[1] == pytest.approx(float(PlattMap(2.0, 1.0)(0.3)), abs=1e-6)
    assert out[2] == np.float32(0.3)


def test_shipped_parameters_belong_to_the_registry_models() -> None:
    # Every bundled detector has a calibration, fitted for the very weights the registry verifies.
    assert set(detector_models()) <= set(SHIPPED)
    for name, calibration in SHIPPED.items():
        assert calibration.sha256 == MODELS[name].sha256, name
        assert calibration_for(name, MODELS[name].sha256).default == calibration.default
    doc = json.loads((ROOT / "sense_perception" / "models" / "score_calibration.json").read_text())
    for name, entry in doc["models"].items():  # provenance shipped with the parameters
        assert entry["data"]["ground_truth"].endswith("pandaset_seq002_front/ground_truth.json")
        assert entry["fitted"] and "Platt" in entry["method"], name


def test_stale_or_broken_calibration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="refit it with tools/fit_score_calibration.py"):
        calibration_for("picodet_s_416", "0" * 64)
    bad = tmp_path / "calibration.json"
    bad.write_text(json.dumps({"models": {"picodet_s_416": {"default": {"a": -1, "b": 0}}}}))
    with pytest.raises(ModelError, match="models.picodet_s_416.default is not a Platt map"):
        calibration_for("picodet_s_416", MODELS["picodet_s_416"].sha256, bad)
    bad.write_text("{")
    with pytest.raises(ModelError, match="cannot be read"):
        load_calibrations(bad)


# -- the default thresholds ---------------------------------------------------------------------


def test_default_thresholds_are_the_calibrated_raw_operating_point() -> None:
    maps = {"score_threshold": ("picodet_s_416", ""),
            "class_thresholds.pedestrian": ("picodet_s_416", "pedestrian"),
            "class_thresholds.car": ("picodet_s_416", "car"),
            "class_thresholds.truck": ("picodet_s_416", "truck"),
            "pedestrian_threshold": ("person_detection_0203", "pedestrian")}
    assert set(OPERATING) == set(maps) == set(CALIBRATED_DEFAULTS)
    for key, (model, label) in maps.items():
        calibrated = float(SHIPPED[model].map_of(label)(OPERATING[key]["raw"]))
        assert CALIBRATED_DEFAULTS[key] == round(calibrated, 3) == OPERATING[key]["calibrated"]
    config = DetectorConfig()
    assert config.calibrated_scores
    assert config.score_threshold == CALIBRATED_DEFAULTS["score_threshold"]
    assert config.pedestrian_threshold == CALIBRATED_DEFAULTS["pedestrian_threshold"]
    for label in ("pedestrian", "car", "truck"):
        assert config.threshold(label) == CALIBRATED_DEFAULTS[f"class_thresholds.{label}"]
    # The tracker's score thresholds: PicoDet's calibrated car scores of raw 0.45, 0.1 and 0.5.
    car = SHIPPED["picodet_s_416"].map_of("car")
    tracking = TrackingConfig()
    assert (tracking.high_threshold, tracking.low_threshold, tracking.new_track_threshold) == \
        tuple(round(float(car(raw)), 3) for raw in (0.45, 0.1, 0.5))
    # The shipped config says the same as the settings' defaults.
    doc = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())
    detector = doc["object_detector"]["ros__parameters"]["detector"]
    assert detector["calibrated_scores"] is True
    assert detector["score_threshold"] == config.score_threshold
    assert detector["pedestrian_threshold"] == config.pedestrian_threshold
    for f in fields(ClassThresholds):
        assert detector["class_thresholds"][f.name] == getattr(config.class_thresholds, f.name)
    shipped = doc["object_detector"]["ros__parameters"]["tracking"]
    for key in ("high_threshold", "low_threshold", "new_track_threshold"):
        assert shipped[key] == getattr(tracking, key)


# -- real frames: same detections, calibrated scores, on every path ----------------------------------


def _twins(calibrated, raw, what: str) -> np.ndarray:
    """Index of each calibrated detection's raw twin (same label, same box): the order may differ,
    since labels and models now sort on calibrated scores."""
    iou = pairwise_iou(np.asarray(calibrated.boxes, np.float64), np.asarray(raw.boxes, np.float64))
    iou[np.asarray(calibrated.labels)[:, None] != np.asarray(raw.labels)[None, :]] = 0.0
    twin = iou.argmax(axis=1) if iou.size else np.zeros(0, int)
    assert (iou[np.arange(len(twin)), twin] > 0.99).all(), what
    assert len(set(twin.tolist())) == len(twin) == len(raw.scores), what
    return twin


def _assert_calibrated_twin(calibrated, raw, label_names, what: str, tol: float = 1e-4) -> None:
    """Same boxes and labels; each calibrated score is a shipped map of its raw twin (pedestrians
    come from either model); ``tol``: written files round the scores."""
    assert_detections_close(calibrated, raw, score=1.0, what=what)  # scores compared below
    twin = _twins(calibrated, raw, what)
    for lab, score, raw_score in zip(calibrated.labels, calibrated.scores, raw.scores[twin],
                                     strict=True):
        name = label_names[lab]
        candidates = [float(c.map_of(name)(raw_score)) for c in SHIPPED.values()
                      if c.model in ("picodet_s_416", "person_detection_0203")]
        assert min(abs(score - c) for c in candidates) < tol, (what, name, score, raw_score)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    assert len(FRAMES) >= 3
    return [cv2.imread(str(p)) for p in FRAMES]


@pytest.fixture(scope="module")
def default_detector():
    """The default detector on the CPU provider, built once for the module (its OpenVINO compile
    of the specialist takes seconds); detection keeps no state from frame to frame."""
    return build_detector(CPU)


def test_default_detector_keeps_the_raw_operating_point(frames: list[np.ndarray],
                                                        default_detector) -> None:
    calibrated, raw = default_detector, build_detector({**CPU, **RAW})
    total = 0
    for i, (a, b) in enumerate(zip(calibrated.detect(frames), raw.detect(frames), strict=True)):
        assert len(a) == len(b), f"frame {i}: {len(a)} detections, raw {len(b)}"
        _assert_calibrated_twin(a, b, calibrated.label_names, f"frame {i}")
        total += len(a)
    assert total >= 40
    # Each member calibrates right after its decoder: its own scores are its map of the raw ones.
    for member, twin in zip(calibrated.members, raw.members, strict=True):
        a, b = member.detect(frames[:1])[0], twin.detect(frames[:1])[0]
        assert len(a) == len(b) > 0
        b = b.select(_twins(a, b, member.model_name))
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        expected = [float(member.calibration.map_of(member.label_names[lab])(s))
                    for lab, s in zip(b.labels, b.scores, strict=True)]
        np.testing.assert_allclose(a.scores, expected, atol=1e-5)


def test_specialist_scores_now_read_as_precision(default_detector) -> None:
    # The specialist's true pedestrians score about 0.2-0.6 raw; calibrated they read like
    # PicoDet's confident cars (the pedestrian of frame 10 on the right pavement).
    specialist = default_detector.members[1]
    found = specialist.detect([cv2.imread(str(STREET / "pandaset_seq002_front_camera_10.jpg"))])[0]
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    near = np.hypot(centres[:, 0] - 1760, centres[:, 1] - 605) < 40
    assert near.any() and found.scores[near].max() > 0.8


def test_calibration_off_reports_raw_scores_and_custom_models_stay_raw() -> None:
    raw = ObjectDetector.from_params({**CPU, "detector.calibrated_scores": False,
                                      "detector.pedestrian_model": "none"})
    assert raw.calibration is None and not any("calibration" in n for n in raw.notes)
    custom = ObjectDetector.from_params({
        **CPU, "detector.model_path": str(MODELS["yolox_nano"].path()),
        "detector.labels_path": str(ROOT / "sense_perception" / "models" / "coco_labels.txt"),
        "detector.model_family": "yolox"})
    assert custom.calibration is None
    assert any("no shipped score calibration" in n for n in custom.notes)


def _config(tmp_path: Path, name: str, extra: dict) -> Path:
    params = {"runtime": {"providers": ["CPUExecutionProvider"]}, "detector": {}}
    for key, value in extra.items():
        section, _, rest = key.partition(".")
        node = params.setdefault(section, {})
        *parents, leaf = rest.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


def test_detect_command_reports_calibrated_scores(tmp_path: Path) -> None:
    image = STREET / "pandaset_seq002_front_camera_40.jpg"
    docs = []
    for name, extra in (("calibrated", {}), ("raw", RAW)):
        out = tmp_path / name
        assert main(["detect", str(image), "--out", str(out), "--no-annotate",
                     "--config", str(_config(tmp_path, name, extra))]) == 0
        docs.append(json.loads((out / "detections.json").read_text())["images"][0]["detections"])
    names = sorted({d["label"] for doc in docs for d in doc})
    as_dets = [_from_rows(doc, names) for doc in docs]
    assert len(as_dets[0]) >= 4
    _assert_calibrated_twin(*as_dets, names, "detect", tol=2e-3)  # 4 decimals in the file


def _from_rows(rows: list[dict], names: list[str]):
    from sense_perception.core.types import Detections

    return Detections(np.array([r["bbox_xyxy"] for r in rows], np.float32).reshape(-1, 4),
                      np.array([r["score"] for r in rows], np.float32),
                      np.array([names.index(r["label"]) for r in rows], np.int32))


def test_replay_reports_calibrated_scores(tmp_path: Path) -> None:
    runs = []
    # One label per vehicle compares car and truck scores, which calibration changes on purpose
    # (each label has its own map): off in both runs, which check the twin of every same box.
    same_boxes = {"detector.duplicates.vehicle_nms_iou": 0.0}
    for name, extra in (("calibrated", same_boxes), ("raw", {**RAW, **same_boxes})):
        out = tmp_path / name
        assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", FRONT,
                     "--config", str(_config(tmp_path, name, extra))]) == 0
        runs.append([m.ros_msg for m in read_output(out / "bag")
                     if m.channel.topic == "/camera/front/detections"])
    assert len(runs[0]) == len(runs[1]) == 4
    for i, (a, b) in enumerate(zip(*runs, strict=True)):
        names = sorted({d.results[0].hypothesis.class_id for m in (a, b) for d in m.detections})
        _assert_calibrated_twin(_from_msg(a, names), _from_msg(b, names), names, f"replay {i}")


def _from_msg(msg, names: list[str]):
    rows = []
    for d in msg.detections:
        c, w, h = d.bbox.center.position, d.bbox.size_x, d.bbox.size_y
        rows.append({"bbox_xyxy": [c.x - w / 2, c.y - h / 2, c.x + w / 2, c.y + h / 2],
                     "score": d.results[0].hypothesis.score,
                     "label": d.results[0].hypothesis.class_id})
    return _from_rows(rows, names)


def test_eval_operating_point_unchanged_and_thresholds_reported_calibrated() -> None:
    # The duplicates step's loose-outer rule compares a ratio of two scores, which a calibration
    # changes on purpose (it is set for calibrated scores): off in both runs.
    same = {"detector.duplicates.nested_outer_score_ratio": 0.0}
    calibrated, meta, _ = run_evaluation(HAND_LABELLED, {**CPU, **same}, iou=0.5, curve=False)
    raw, raw_meta, _ = run_evaluation(HAND_LABELLED, {**CPU, **RAW, **same}, iou=0.5, curve=False)
    assert calibrated.classes.keys() == raw.classes.keys()
    assert sum(c.tp for c in calibrated.classes.values()) >= 5
    for label, score in calibrated.classes.items():
        other = raw.classes[label]
        assert (score.gt, score.tp, score.fp) == (other.gt, other.tp, other.fp), label
    assert meta["thresholds"]["car"] == CALIBRATED_DEFAULTS["class_thresholds.car"]
    assert raw_meta["thresholds"]["car"] == OPERATING["class_thresholds.car"]["raw"]
