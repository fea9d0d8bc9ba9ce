"""`sense-perception eval` on plausible but hostile labels and detections (R37): every figure is
checked against a hand computation on a tiny case, without a model (stubbed detections, tiny
images), so these tests take well under a second each."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sense_perception.evaluation.ground_truth import (GroundTruthImage)
from sense_perception.evaluation.scoring import ImageDetections, evaluate

LABELS = ["pedestrian", "bicycle", "car", "motorcycle", "bus", "truck", "traffic_light",
          "stop_sign"]


def gt_image(key: str, boxes: list, labels: list[str], difficult: list[bool] | None = None
             ) -> GroundTruthImage:
    flags = np.array(difficult if difficult is not None else [False] * len(labels), bool)
    return GroundTruthImage(key, Path(f"{key}.png"), 1000, 1000,
                            np.array(boxes, np.float64).reshape(-1, 4), list(labels), flags)


def dets(boxes: list, scores: list[float], labels: list[str]) -> ImageDetections:
    return ImageDetections(np.array(boxes, np.float64).reshape(-1, 4), np.array(scores),
                           list(labels))


PERSON, ELSEWHERE = [0, 0, 100, 200], [500, 0, 600, 200]


def test_tied_scores_give_one_ap_whatever_the_order_of_images_or_detections() -> None:
    """A hit and a false positive of one score: no threshold takes one without the other, so the
    curve has one point after both. pycocotools stepped through them in the order they came:
    AP 1.0 or 0.5 for the same detections of one image, 0.505 or 0.252 for two images in either
    order in the ground truth."""
    one = gt_image("a", [PERSON], ["pedestrian"])
    for found in (dets([PERSON, ELSEWHERE], [0.5, 0.5], ["pedestrian"] * 2),
                  dets([ELSEWHERE, PERSON], [0.5, 0.5], ["pedestrian"] * 2)):
        ped = evaluate([one], [found], None, LABELS).classes["pedestrian"]
        # by hand: after the tie recall 1, precision 1/2: 1/2 at all 101 recall points
        assert ped.ap == pytest.approx(0.5, abs=1e-12) and (ped.tp, ped.fp) == (1, 1)
    hit = (gt_image("hit", [PERSON], ["pedestrian"]), dets([PERSON], [0.5], ["pedestrian"]))
    miss = (gt_image("miss", [PERSON], ["pedestrian"]), dets([ELSEWHERE], [0.5], ["pedestrian"]))
    for pair in ((hit, miss), (miss, hit)):
        ped = evaluate([g for g, _ in pair], [d for _, d in pair], None,
                       LABELS).classes["pedestrian"]
        # by hand: after the tie recall 1/2, precision 1/2: 1/2 at the 51 points 0..0.50, then 0
        assert ped.ap == pytest.approx(51 * 0.5 / 101, abs=1e-12)
        assert ped.curve is not None and ped.curve[1][50] == 0.5 and ped.curve[1][51] == 0.0
    # distinct scores still follow pycocotools (hand case of test_eval.py): hit, fp, hit
    two = gt_image("b", [PERSON, [300, 0, 400, 200]], ["pedestrian"] * 2)
    found = dets([PERSON, [600, 600, 700, 800], [300, 5, 402, 200]], [0.9, 0.8, 0.7],
                 ["pedestrian"] * 3)
    ap = evaluate([two], [found], None, LABELS).classes["pedestrian"].ap
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-9)
