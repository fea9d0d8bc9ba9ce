"""detector.animals: COCO's animal classes as one label, animal, reaching Autoware as ANIMAL 8
(SECURITY.md R45), and every consumer of the label list handling it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sense_perception.core.autoware.rois import ANIMAL, detected_objects_with_feature, label_lookup
from sense_perception.core.geometry.priors import prior_table
from sense_perception.core.detection.labels import AD_LABELS, build_label_map, output_labels
from sense_perception.core.output import messages
from sense_perception.core.output.annotate import label_colour
from sense_perception.core.types import Detections, Header
from sense_perception.evaluation.ground_truth import GroundTruthImage, animal_labels

COCO = (Path(__file__).resolve().parents[1] / "sense_perception" / "models" /
        "coco_labels.txt").read_text().splitlines()
ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")
HEADER = Header(5, 0, "camera0/camera_optical_link")


def test_cocos_animal_classes_become_one_label_after_the_driving_labels_when_asked():
    on = build_label_map(COCO, animals=True)
    assert on.names == (*AD_LABELS, "animal") == output_labels(True)
    assert {COCO[i] for i in np.flatnonzero(on.lookup == 8)} == set(ANIMALS)
    off = build_label_map(COCO)  # the default: as before, animals dropped, indices unchanged
    assert off.names == AD_LABELS and all(off.lookup[COCO.index(a)] == -1 for a in ANIMALS)
    # with keep_other_classes the animals are no longer their own labels; the rest keep theirs
    both = build_label_map(COCO, keep_other_classes=True, animals=True)
    assert both.names[:9] == (*AD_LABELS, "animal") and "dog" not in both.names
    assert "umbrella" in both.names and both.lookup[COCO.index("dog")] == 8


def test_an_animal_reaches_autoware_as_animal_8():
    """AUTOWARE_LABELS had no animal: with animals reported, each one was dropped from the ROIs
    (or sent as UNKNOWN 0, an obstacle cluster, with other_labels: unknown)."""
    names = list(output_labels(True))
    assert label_lookup(names)[names.index("animal")] == ANIMAL == 8
    dets = Detections(np.array([[10, 20, 110, 90]], np.float32), np.array([0.8], np.float32),
                      np.array([names.index("animal")], np.int32), np.array([-1], np.int64))
    msg = detected_objects_with_feature(HEADER, dets, names, (640, 480))
    assert [o["object"]["classification"] for o in msg["feature_objects"]] == [
        [{"label": 8, "probability": 1.0}]]
    # no size prior: never placed in 3-D (no guessed position); the ROIs carry no kinematics
    assert prior_table(("animal",))[0, 0] == 0.0
    assert set(msg["feature_objects"][0]["object"]) == {"existence_probability", "classification"}


def test_label_info_colours_and_eval_handle_the_animal_label():
    names = list(output_labels(True))
    info = messages.label_info(HEADER, names, 0.3)
    assert "animal" in str(info)
    assert label_colour("animal") == (30, 105, 210)  # fixed, as every driving label's
    gt = GroundTruthImage("a", Path("a.jpg"), 10, 10, np.zeros((3, 4)), ["dog", "car", "giraffe"],
                          np.zeros(3, bool), declared=("dog", "cat", "car"))
    mapped = animal_labels(gt)
    assert mapped.labels == ["animal", "car", "animal"] and mapped.declared == ("animal", "car")


def test_the_setting_reaches_the_detector_through_the_config():
    from sense_perception.config import load_params, resolve_config
    from sense_perception.core.detection.detector_setup import build_detector

    params = load_params(resolve_config("perception"), "object_detector")
    assert params["detector.animals"] is False and params["detector.class_thresholds.animal"] == -1.0
    detector = build_detector({**params, "detector.animals": True, "detector.pedestrian_model": "none",
                               "detector.class_thresholds.animal": 0.5,
                               "runtime.providers": ["CPUExecutionProvider"]}, "test")
    assert detector.label_names[:9] == [*AD_LABELS, "animal"]
    assert detector.config.threshold("animal") == 0.5


def test_an_animal_threshold_without_animals_is_refused_not_left_unused():
    from sense_perception.core.detection.detector import ClassThresholds, DetectorConfig
    from sense_perception.errors import ConfigError

    with pytest.raises(ConfigError, match=r"class_thresholds.animal is set \(0.4\) but "
                                          r"detector.animals is false.*fix: set detector.animals"):
        DetectorConfig(class_thresholds=ClassThresholds.unset(animal=0.4))
    DetectorConfig(class_thresholds=ClassThresholds.unset(animal=0.4), animals=True)
    # a custom model's own class named animal, kept under its name, takes it
    DetectorConfig(class_thresholds=ClassThresholds.unset(animal=0.4), keep_other_classes=True,
                   model_path="mine.onnx", labels_path="mine.txt")


def test_an_animal_threshold_with_the_bundled_models_other_classes_is_refused():
    """keep_other_classes reports the bundled (COCO) models' animals as dog, horse...: no label
    `animal` comes out, and the threshold was taken and never used (R53)."""
    from sense_perception.core.detection.detector import ClassThresholds, DetectorConfig
    from sense_perception.errors import ConfigError

    with pytest.raises(ConfigError, match=r"class_thresholds.animal is set \(0.4\).*own names"):
        DetectorConfig(class_thresholds=ClassThresholds.unset(animal=0.4), keep_other_classes=True)
