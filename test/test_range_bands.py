"""Recall by range band, on the developer set's 3-D ground truth."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sense_perception.errors import GroundTruthError
from sense_perception.evaluation.ground_truth import load_ground_truth
from sense_perception.evaluation.range_bands import (NO_RANGE, band_of, box_ranges,
                                                     recall_by_range)
from sense_perception.evaluation.scoring import ImageDetections, evaluate

DEV_3D = (Path(__file__).resolve().parents[2] / "shared" / "data" / "street_labelled"
          / "pandaset_seq002_front" / "ground_truth_3d.json")
LABELS = ["pedestrian", "bicycle", "car", "motorcycle", "bus", "truck"]


def test_bands() -> None:
    assert [band_of(r) for r in (0.0, 19.9, 20.0, 39.9, 40.0, 79.9, 80.0, None)] == [
        "0-20", "0-20", "20-40", "20-40", "40-80", "40-80", ">=80", NO_RANGE]


def test_a_detector_that_sees_only_near_objects_has_full_recall_near_and_none_far() -> None:
    """Detections = the ground truth's own boxes of objects nearer than 40 m."""
    images = load_ground_truth(DEV_3D)
    ranges = box_ranges(DEV_3D)
    assert len(ranges) == sum(len(g.labels) for g in images)  # every box has its range
    detections = []
    for g in images:
        near = [i for i in range(len(g.labels)) if ranges[(g.key, i)] < 40.0]
        detections.append(ImageDetections(g.boxes[near].astype(np.float32),
                                          np.full(len(near), 0.9, np.float32),
                                          [g.labels[i] for i in near]))
    result = evaluate(images, detections, None, LABELS, iou=0.5, ap=False)
    bands = recall_by_range(result, images, ranges)
    for label in ("pedestrian", "car"):
        total = sum(t for _, t in bands[label].values())
        assert total == result.classes[label].gt  # every box that counts is in one band
        for band, (found, count) in bands[label].items():
            assert found == (count if band in ("0-20", "20-40") else 0), (label, band)
    assert list(bands["car"]) == ["0-20", "20-40", "40-80", ">=80"][:len(bands["car"])]


def test_a_bad_range_is_refused_naming_the_box(tmp_path: Path) -> None:
    doc = {"cameras": {"a": {"image": "a.jpg", "boxes": [
        {"label": "car", "bbox_xyxy": [0, 0, 10, 10], "range_m": 5.0},
        {"label": "car", "bbox_xyxy": [0, 0, 10, 10], "range_m": "far"}]}}}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GroundTruthError, match=r"camera a, box 1: range_m must be a distance"):
        box_ranges(path)
    doc["cameras"]["a"]["boxes"].pop()
    path.write_text(json.dumps(doc))
    assert box_ranges(path) == {("a", 0): 5.0}
