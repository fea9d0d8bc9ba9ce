"""The bundled detector against hand-labelled boxes of real street frames (test/data).

The labels were drawn by hand on zoomed crops of PandaSet and comma2k19 frames; each file states
its rules. "Clearly visible" below means: not difficult, not hidden by another object (occluded 0),
at least 60 px tall, and not a rider (riders and their bikes merge into one shape).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from support import load_eval_recall
from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
from sense_perception.core.detection.labels import AD_LABELS
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.detection.tiling import TilingConfig

REPO = Path(__file__).resolve().parents[1]
STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
GT_FILES = sorted((REPO / "test" / "data").glob("ground_truth_*.json"))
CPU = RuntimeOptions(providers=("CPUExecutionProvider",))
MIN_CLEAR_HEIGHT = 60


ev = load_eval_recall()


@pytest.fixture(scope="module")
def frames() -> list:
    return ev.load_all()


def test_label_files_describe_real_frames(frames: list) -> None:
    assert len(GT_FILES) >= 3
    with_people = 0
    for gt in frames:
        image = cv2.imread(str(STREET / gt.image))
        assert image is not None, f"{gt.image} missing from {STREET}"
        assert image.shape[:2] == (gt.height, gt.width), gt.image
        assert set(gt.labels) <= set(AD_LABELS)
        visible = ~gt.difficult
        assert visible.sum() >= 10, gt.image
        assert ((gt.occluded == 2) == gt.difficult).all(), "mostly hidden objects are difficult"
        assert (gt.boxes[:, 2:] - gt.boxes[:, :2] >= 8).all(), "boxes at least 8 px a side"
        with_people += any(lb == "pedestrian" for lb, v in zip(gt.labels, visible) if v)
    assert with_people >= 2


def test_loader_rejects_bad_labels(tmp_path: Path) -> None:
    doc = json.loads(GT_FILES[0].read_text())
    doc["objects"][0]["label"] = "person"
    bad = tmp_path / "ground_truth_bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="unknown labels"):
        ev.load_ground_truth(bad)
    doc["objects"][0].update(label="car", bbox_xyxy=[10, 10, 5, 20])
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="empty or outside"):
        ev.load_ground_truth(bad)


def test_scoring_counts_hits_duplicates_and_false_positives(frames: list) -> None:
    gt = frames[0]
    boxes = gt.boxes.copy()
    labels = list(gt.labels)
    scores = np.linspace(0.9, 0.5, len(labels))
    # Perfect boxes: every visible object is a hit with the right class, nothing else counts.
    perfect = ev.score_image(gt, boxes, scores, labels, 0.5).counts()
    assert perfect["fp"] == 0
    assert perfect["vehicle_hit"] == perfect["vehicle_total"] == perfect["vehicle_class_ok"]
    # A second box on a found car is a duplicate; a car in the empty sky is a false positive.
    sky = np.array([[10, 10, 60, 40]], np.float32)
    extra = ev.score_image(gt, np.concatenate([boxes, boxes[:1] + 2, sky]),
                           np.concatenate([scores, [0.3, 0.3]]), labels + [labels[0], "car"], 0.5)
    assert (extra.counts()["dup"], extra.counts()["fp"]) == (1, 2)
    # Shifted by half a box: no longer a hit at IoU 0.5.
    shifted = boxes + np.c_[(boxes[:, 2] - boxes[:, 0]) * 0.6, np.zeros(len(boxes)),
                            (boxes[:, 2] - boxes[:, 0]) * 0.6, np.zeros(len(boxes))]
    assert ev.score_image(gt, shifted, scores, labels, 0.5).counts()["vehicle_hit"] == 0


def _clear(gt) -> np.ndarray:
    height = gt.boxes[:, 3] - gt.boxes[:, 1]
    return ~gt.difficult & (gt.occluded == 0) & (height >= MIN_CLEAR_HEIGHT) & ~gt.riders


@pytest.fixture(scope="module", params=["picodet_s_416", "yolox_nano"])
def default_scores(request: pytest.FixtureRequest, frames: list) -> tuple[str, list]:
    """Each bundled model with the default detector and tiling settings, scored at IoU 0.5."""
    detector = ObjectDetector(DetectorConfig(model=request.param), CPU, TilingConfig())
    results = ev.detect_frames(detector, frames)
    return request.param, [ev.score_image(f, *r, iou_threshold=0.5)
                           for f, r in zip(frames, results)]


def test_clearly_visible_objects_are_found_with_their_class(default_scores: tuple) -> None:
    model, scored = default_scores
    checked = []
    for s in scored:
        for i in np.nonzero(_clear(s.gt))[0]:
            if model == "yolox_nano" and s.gt.labels[i] == "pedestrian":
                continue  # YOLOX-Nano misses the one clear pedestrian at the default threshold
            d = s.gt_match[i]
            what = (f"{model}: {s.gt.image} {s.gt.labels[i]} {s.gt.boxes[i].tolist()} "
                    f"({s.gt.notes[i]})")
            assert d >= 0, f"missed {what}"
            assert s.det_labels[d] in (s.gt.labels[i],) + s.gt.also_ok[i], what
            # Measured IoU of these objects: 0.79-0.95 (PicoDet), 0.85-0.96 (YOLOX).
            assert s.gt_iou[i] >= 0.6, f"{what}: IoU {s.gt_iou[i]:.2f}"
            checked.append(s.gt.labels[i])
    # The two Acuras, the two cars at the right edge, the Honda twice, three comma2k19 cars, and
    # (PicoDet) the pedestrian of frame 10.
    assert checked.count("car") == 9
    assert checked.count("pedestrian") == (model == "picodet_s_416")


# Measured, no tiling, IoU 0.5: PicoDet 28/33 vehicles and 19 false positives on the 3 frames,
# YOLOX-Nano 22/33 and 4. Bounds leave 3 vehicles and ~25 % more false positives of margin.
DEFAULT_BOUNDS = {"picodet_s_416": (25, 24), "yolox_nano": (19, 8)}


def test_recall_and_false_positives_of_the_default_config(default_scores: tuple) -> None:
    model, scored = default_scores
    min_vehicles, max_fp = DEFAULT_BOUNDS[model]
    total: dict[str, int] = {}
    for s in scored:
        for k, v in s.counts().items():
            total[k] = total.get(k, 0) + v
    assert total["vehicle_hit"] >= min_vehicles, total
    assert total["fp"] <= max_fp, total
    # Whatever is found carries the right class.
    assert total["vehicle_class_ok"] >= total["vehicle_hit"] - 1, total
