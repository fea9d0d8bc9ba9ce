"""`sense-perception eval`: ground-truth formats, scoring rules checked by hand, outputs."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.errors import GroundTruthError
from sense_perception.evaluation.ground_truth import IGNORE_ALL, GroundTruthImage, load_ground_truth
from sense_perception.evaluation.run import CURVE_FLOOR, curve_params
from sense_perception.evaluation.scoring import ImageDetections, evaluate

LABELS = ["pedestrian", "bicycle", "car", "motorcycle", "bus", "truck", "traffic_light",
          "stop_sign"]
DEV_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street_labelled" / \
    "pandaset_seq002_front"


def gt_image(boxes, labels, difficult=None) -> GroundTruthImage:
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    flags = np.array(difficult if difficult is not None else [False] * len(labels), bool)
    return GroundTruthImage("k", Path("x.png"), 1000, 1000, boxes, list(labels), flags)


def dets(boxes, scores, labels) -> ImageDetections:
    return ImageDetections(np.array(boxes, np.float64).reshape(-1, 4), np.array(scores),
                           list(labels))


def test_average_precision_matches_a_hand_computed_case() -> None:
    # Two pedestrians; detections by score: hit, false positive, hit.
    # Precision/recall after each: (1, 1/2), (1/2, 1/2), (2/3, 1). COCO interpolates precision as
    # the best precision at any recall >= r over 101 recall points: 1.0 for r in 0..0.50 (51
    # points), 2/3 for r in 0.51..1.00 (50 points). AP = (51 + 50 * 2/3) / 101 = 0.834983...
    gt = gt_image([[0, 0, 100, 200], [300, 0, 400, 200]], ["pedestrian"] * 2)
    found = dets([[2, 2, 100, 200], [600, 600, 700, 800], [300, 5, 402, 200]], [0.9, 0.8, 0.7],
                 ["pedestrian"] * 3)
    result = evaluate([gt], [found], None, LABELS, iou=0.5)
    ped = result.classes["pedestrian"]
    assert ped.ap == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-9)
    assert (ped.gt, ped.tp, ped.fp) == (2, 2, 1)
    assert ped.recall == 1.0 and ped.precision == pytest.approx(2 / 3)
    assert result.fp_per_image == 1.0 and list(result.classes) == ["pedestrian"]


def test_iou_threshold_decides_a_hit() -> None:
    gt = gt_image([[0, 0, 100, 100]], ["car"])
    shifted = dets([[40, 0, 140, 100]], [0.9], ["car"])  # IoU 60/140 = 0.43
    assert evaluate([gt], [shifted], None, LABELS, iou=0.3).classes["car"].tp == 1
    loose = evaluate([gt], [shifted], None, LABELS, iou=0.5).classes["car"]
    assert (loose.tp, loose.fp) == (0, 1)
    with pytest.raises(ValueError, match="within"):
        evaluate([gt], [shifted], None, LABELS, iou=0.0)


def test_difficult_boxes_are_neither_misses_nor_false_positives() -> None:
    gt = gt_image([[0, 0, 100, 200], [500, 500, 560, 540], [800, 0, 900, 200]],
                  ["pedestrian", "pedestrian", "pedestrian"], [False, True, True])
    found = dets([[0, 0, 100, 200], [505, 500, 560, 540]], [0.9, 0.6], ["pedestrian"] * 2)
    ped = evaluate([gt], [found], None, LABELS, iou=0.5).classes["pedestrian"]
    # The hit on the difficult box is ignored, the missed difficult box is not a miss.
    assert (ped.gt, ped.tp, ped.fp) == (1, 1, 0)


def test_riders_and_dont_care_areas_are_ignore_regions() -> None:
    gt = gt_image([[0, 0, 100, 200], [300, 300, 500, 500]], ["cyclist", IGNORE_ALL], [False, True])
    found = dets([[10, 0, 90, 120], [320, 320, 400, 400], [600, 0, 700, 50]], [0.9, 0.8, 0.7],
                 ["pedestrian", "car", "car"])
    result = evaluate([gt], [found], None, LABELS, iou=0.5, declared=["pedestrian", "car"])
    # A rider detected as a pedestrian and a car in a DontCare area count for nothing; the car in
    # the open is a false positive. Cyclists are not a detector class: not scored.
    assert result.classes["pedestrian"].fp == 0 and result.classes["car"].fp == 1
    assert result.not_scored == ["cyclist"]


def test_only_classes_the_ground_truth_covers_are_scored() -> None:
    gt = gt_image([[0, 0, 100, 200]], ["pedestrian"])
    found = dets([[0, 0, 100, 200], [500, 0, 520, 40]], [0.9, 0.9], ["pedestrian", "traffic_light"])
    result = evaluate([gt], [found], None, LABELS, iou=0.5)
    assert list(result.classes) == ["pedestrian"] and result.fp == 0


def test_recall_by_height_bins() -> None:
    heights = [20, 30, 60, 150, 160]
    gt = gt_image([[i * 100, 0, i * 100 + 40, h] for i, h in enumerate(heights)], ["car"] * 5)
    found = dets([[i * 100, 0, i * 100 + 40, h] for i, h in enumerate(heights) if h != 30],
                 [0.9] * 4, ["car"] * 4)
    car = evaluate([gt], [found], None, LABELS, iou=0.5).classes["car"]
    assert car.recall_by_height == {"<25": (1, 1), "25-50": (0, 1), "50-100": (1, 1),
                                    ">=100": (2, 2)}
    assert car.heights_missed == [30.0]


def test_the_curve_pass_gives_ap_beyond_the_operating_point() -> None:
    gt = gt_image([[0, 0, 100, 200], [300, 0, 400, 200]], ["pedestrian"] * 2)
    operating = dets([[0, 0, 100, 200]], [0.9], ["pedestrian"])
    curve = dets([[0, 0, 100, 200], [300, 0, 400, 200]], [0.9, 0.1], ["pedestrian"] * 2)
    ped = evaluate([gt], [operating], [curve], LABELS, iou=0.5).classes["pedestrian"]
    assert ped.recall == 0.5 and ped.ap == pytest.approx(1.0)
    assert ped.curve is not None and ped.curve[1][-1] == pytest.approx(1.0)


def test_curve_params_lower_every_threshold() -> None:
    params = {"detector.score_threshold": 0.35, "detector.class_thresholds.bus": 0.01,
              "detector.max_detections": 50}
    low = curve_params(params)
    assert low["detector.score_threshold"] == low["detector.pedestrian_threshold"] == CURVE_FLOOR
    # Per-label thresholds follow the lowered score_threshold (the car default included),
    # unless already lower.
    assert low["detector.class_thresholds.car"] == -1.0
    assert low["detector.class_thresholds.bus"] == 0.01
    assert low["detector.max_detections"] >= 300 and params["detector.score_threshold"] == 0.35


# -- formats ------------------------------------------------------------------------------------

def _write_image(path: Path, width: int = 64, height: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((height, width, 3), np.uint8))


def test_project_format(tmp_path: Path) -> None:
    _write_image(tmp_path / "imgs" / "a.png")
    doc = {"cameras": {"front/00": {"image": "imgs/a.png", "boxes": [
        {"label": "pedestrian", "bbox_xyxy": [1, 2, 10, 30]},
        {"label": "car", "bbox_xyxy": [5, 5, 40, 20], "difficult": True}]}}}
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    (image,) = load_ground_truth(tmp_path / "gt.json")
    assert image.key == "front/00" and image.path == (tmp_path / "imgs" / "a.png").resolve()
    assert image.labels == ["pedestrian", "car"] and image.difficult.tolist() == [False, True]
    np.testing.assert_array_equal(image.boxes[0], [1, 2, 10, 30])


def test_kitti_label_folder(tmp_path: Path) -> None:
    labels = tmp_path / "training" / "label_2"
    labels.mkdir(parents=True)
    _write_image(tmp_path / "training" / "image_2" / "000007.png")
    (labels / "000007.txt").write_text(
        "Car 0.00 0 -1.56 564.62 174.59 616.43 224.74 1.61 1.66 3.20 -0.69 1.69 25.01 -1.59\n"
        "Van 0.00 0 1.57 100.0 150.0 200.0 230.0 2.0 1.8 4.5 1 1.7 20 1.6\n"
        "Pedestrian 0.00 1 0.2 700.0 160.0 720.0 181.0 1.7 0.6 0.8 4 1.6 40 0.3\n"
        "Cyclist 0.80 0 0.2 900.0 150.0 950.0 230.0 1.7 0.6 1.8 6 1.6 20 0.3\n"
        "DontCare -1 -1 -10 800.0 160.0 830.0 175.0 -1 -1 -1 -1000 -1000 -1000 -10\n"
        "Misc 0.00 0 0 10 10 20 20 1 1 1 1 1 1 1\n")
    (image,) = load_ground_truth(labels)
    assert image.labels == ["car", "car", "pedestrian", "cyclist", IGNORE_ALL]
    # Van: a neighbouring class; the 21 px pedestrian and the 80 % truncated rider fall below
    # KITTI's hard level; DontCare is an ignore area.
    assert image.difficult.tolist() == [False, True, True, True, True]
    with pytest.raises(GroundTruthError, match="15 fields"):
        (labels / "000007.txt").write_text("Car 0 0 0 1 2 3\n")
        load_ground_truth(labels)


def test_coco_json(tmp_path: Path) -> None:
    _write_image(tmp_path / "val" / "b.jpg")
    doc = {"images": [{"id": 3, "file_name": "b.jpg", "width": 64, "height": 48}],
           "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"},
                          {"id": 10, "name": "traffic light"}],
           "annotations": [
               {"id": 1, "image_id": 3, "category_id": 1, "bbox": [1, 2, 9, 28], "iscrowd": 0},
               {"id": 2, "image_id": 3, "category_id": 3, "bbox": [5, 5, 35, 15], "iscrowd": 1},
               {"id": 3, "image_id": 3, "category_id": 10, "bbox": [0, 0, 4, 8]}]}
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    (image,) = load_ground_truth(tmp_path / "instances.json", image_dir=tmp_path / "val")
    assert image.labels == ["pedestrian", "car", "traffic_light"]
    assert image.difficult.tolist() == [False, True, False]
    np.testing.assert_array_equal(image.boxes[0], [1, 2, 10, 30])


@pytest.mark.parametrize("content, message", [
    ("not json", "not readable JSON"),
    ('{"cameras": {}}', "at least one camera"),
    ('{"cameras": {"a": {"image": "x.png"}}}', "cameras.a: needs 'image'"),
    ('{"cameras": {"a": {"image": "x.png", "boxes": [{"label": "car", "bbox_xyxy": [5, 5, 1, 9]}]}}}',
     r"cameras.a: box 0 \[5.0, 5.0, 1.0, 9.0\] is empty"),
    ('{"cameras": {"a": {"image": "x.png", "boxes": [{"label": "car", "bbox_xyxy": [1, 2]}]}}}',
     r"cameras.a.boxes\[0\].bbox_xyxy: expected \[x1, y1, x2, y2\]"),
])
def test_malformed_ground_truth_names_the_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(content)
    with pytest.raises(GroundTruthError, match=message):
        load_ground_truth(path)


# -- the command ----------------------------------------------------------------------------------

def _subset(tmp_path: Path, keys: list[str]) -> Path:
    doc = json.loads((DEV_SET / "ground_truth.json").read_text())
    doc["cameras"] = {k: {**v, "image": str(DEV_SET / v["image"])}
                      for k, v in doc["cameras"].items() if k in keys}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    return path


def test_missing_images_are_refused_before_any_detection(tmp_path: Path, capsys) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"cameras": {"a": {"image": "nowhere.png", "boxes": []}}}))
    assert main(["eval", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "1 image(s)" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_command_on_real_labelled_frames(tmp_path: Path) -> None:
    gt = _subset(tmp_path, ["front_camera/00", "front_camera/20", "front_camera/40",
                            "front_camera/60"])
    out = tmp_path / "out"
    assert main(["eval", str(gt), "--out", str(out), "--iou", "0.3"]) == 0
    doc = json.loads((out / "eval.json").read_text())
    assert doc["images"] == 4 and doc["iou"] == 0.3
    # what the labels cover: the file's categories, bus among them with no bus in view
    assert set(doc["classes"]) == {"pedestrian", "car", "bus", "truck"}
    assert doc["classes"]["bus"]["gt"] == 0
    assert doc["not_scored"] == ["cyclist"]
    car = doc["classes"]["car"]
    assert {"gt", "tp", "fp", "recall", "precision", "ap", "recall_by_height"} <= set(car)
    assert car["gt"] > 20 and car["recall"] > 0.8 and 0 < car["ap"] <= 1
    assert sum(b["total"] for b in car["recall_by_height"].values()) == car["gt"]
    assert doc["fp_per_image"] == pytest.approx(
        sum(c["fp"] for c in doc["classes"].values()) / 4, abs=1e-3)
    assert doc["model"].startswith("picodet_s_416") and doc["thresholds"]["car"] > 0
    plot = cv2.imread(str(out / "precision_recall.png"))
    assert plot is not None and plot.shape[0] > 300


def test_a_second_eval_into_one_out_is_refused_before_it_writes(
        tmp_path: Path, capsys) -> None:
    """Two evals into one --out each replaced eval.json, detections.json and the plot at their
    end: the first to end had printed figures its eval.json no longer held, and the renames of
    two runs ending together could leave one run's eval.json beside the other's detections. A
    run holds its --out (an flock on the folder, let go when the process ends; here taken as a
    running eval takes it): a second is refused (exit 2) before any detection or write."""
    import fcntl
    import os

    _write_image(tmp_path / "imgs" / "a.png")
    (tmp_path / "gt.json").write_text(json.dumps({"cameras": {"front/00": {
        "image": "imgs/a.png", "boxes": [{"label": "car", "bbox_xyxy": [5, 5, 40, 20]}]}}}))
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["eval", str(tmp_path / "gt.json"), "--out", str(out), "--no-curve"])
        err = capsys.readouterr().err
        assert code == 2 and f"another eval is writing into --out {out}" in err, err
        assert [p.name for p in out.iterdir() if p.name != ".sense-perception-eval"] == []
    finally:
        os.close(fd)
