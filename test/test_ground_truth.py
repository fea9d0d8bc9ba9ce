"""The default detector against labelled real street frames, scored by `sense-perception eval`'s code.

Two sets: three frames labelled by hand (test/data/hand_labelled, tight boxes, riders as
'cyclist', ignore regions for dense far traffic) and the developer set of 80 PandaSet frames with
boxes projected from 3-D cuboids (../shared/data/street_labelled, scored at IoU 0.3 as the issue
that set the targets does, since projected boxes are looser than drawn ones).
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from support import DEV_SET as DEV, HAND_LABELLED as HAND, detect_all
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.evaluation.ground_truth import IGNORE_ALL, load_ground_truth
from sense_perception.evaluation.scoring import evaluate

CPU = {"runtime.providers": ["CPUExecutionProvider"]}
MIN_CLEAR_HEIGHT = 60
KNOWN = {"pedestrian", "cyclist", "bicycle", "car", "motorcycle", "bus", "truck", IGNORE_ALL}


@pytest.fixture(scope="module")
def default_detector():
    return build_detector(CPU)


def test_hand_labels_describe_real_frames() -> None:
    frames = load_ground_truth(HAND)
    assert len(frames) == 3
    with_people = 0
    for gt in frames:
        image = cv2.imread(str(gt.path))
        assert image is not None, f"{gt.path} missing"
        assert image.shape[:2] == (gt.height, gt.width), gt.key
        assert set(gt.labels) <= KNOWN
        assert (~gt.difficult).sum() >= 10, gt.key
        real = np.array([lb != IGNORE_ALL for lb in gt.labels])
        assert (gt.boxes[real, 2:] - gt.boxes[real, :2] >= 8).all(), "boxes at least 8 px a side"
        with_people += any(lb == "pedestrian" and not d
                           for lb, d in zip(gt.labels, gt.difficult, strict=True))
    assert with_people >= 2


def _clear_only() -> list:
    """The hand-labelled frames with every box but the clearly visible cars and pedestrians
    (not difficult, not hidden at all, at least 60 px tall) turned into 'difficult'."""
    doc = json.loads(HAND.read_text())
    frames = load_ground_truth(HAND)
    for gt, cam in zip(frames, doc["cameras"].values(), strict=True):
        occluded = [int(b.get("occluded", 0)) for b in cam["boxes"]]
        occluded += [2] * (len(gt.labels) - len(occluded))  # ignore regions come last
        clear = [(lb in ("car", "pedestrian") and not d and o == 0 and h >= MIN_CLEAR_HEIGHT)
                 for lb, d, o, h in zip(gt.labels, gt.difficult, occluded, gt.heights, strict=True)]
        gt.difficult = ~np.array(clear)
    return frames


def test_clearly_visible_objects_are_found_tightly(default_detector) -> None:
    frames = _clear_only()
    found = detect_all(default_detector, frames)
    # IoU 0.6 with tight hand-drawn boxes: measured 0.79-0.95 for these objects.
    result = evaluate(frames, found, None, default_detector.label_names, iou=0.6)
    car, ped = result.classes["car"], result.classes["pedestrian"]
    assert car.gt == 9 and ped.gt == 1  # the Acuras, the cars at the right edge, the Honda...
    assert car.missed == [] and ped.missed == [], (car.missed, ped.missed)


@pytest.mark.slow
def test_default_config_meets_the_targets_on_the_developer_set(default_detector) -> None:
    frames = load_ground_truth(DEV)
    assert len(frames) == 80
    result = evaluate(frames, detect_all(default_detector, frames), None,
                      default_detector.label_names, iou=0.3)
    ped, car = result.classes["pedestrian"], result.classes["car"]
    # Targets (issue 13): >= 90 % of the 63 non-difficult pedestrians at <= 0.3 pedestrian false
    # positives per image, >= 95 % of the cars. Measured with the defaults: 58/63 at 0.20 (0.19
    # on OpenVINO's AVX2 kernels) and 574/601 (docs/detection-quality.md).
    assert (ped.gt, car.gt) == (63, 601)
    assert ped.recall >= 0.90 and result.class_fp_per_image("pedestrian") <= 0.3, ped
    assert car.recall >= 0.95, car
