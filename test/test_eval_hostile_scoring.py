"""`sense-perception eval` on plausible but hostile labels and detections (R37): every figure is
checked against a hand computation on a tiny case, without a model (stubbed detections, tiny
images), so these tests take well under a second each."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sense_perception.core.imaging.frame_guard import InputLimits
from sense_perception.errors import GroundTruthError
from sense_perception.evaluation.ground_truth import (IGNORE_ALL, GroundTruthImage,
                                                      load_ground_truth)
from sense_perception.evaluation.run import check_images
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


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    return path


def test_an_image_listed_twice_is_refused_not_scored_twice(tmp_path: Path) -> None:
    """Two COCO images (or two cameras) naming one file: each entry's boxes were scored apart on
    the same pixels, the detections counted twice, each entry's objects false positives of the
    other (precision 1/2 where every object was found). Refused before any detection."""
    cv2.imwrite(str(tmp_path / "a.png"), np.full((100, 200, 3), 90, np.uint8))
    coco = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "./a.png"}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 80]},
                            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [100, 10, 20, 50]}]}
    gt = _write(tmp_path, coco)
    with pytest.raises(GroundTruthError, match=r"gt\.json: image 2 is the file of image 1 too "
                                               r"\(.*a\.png\); an image is scored once"):
        check_images(load_ground_truth(gt), gt, InputLimits(), [])
    project = {"cameras": {"front": {"image": "a.png", "boxes": []},
                           "copy": {"image": "sub/../a.png", "boxes": []}}}
    gt = _write(tmp_path, project)
    with pytest.raises(GroundTruthError, match=r"image copy is the file of image front too"):
        check_images(load_ground_truth(gt), gt, InputLimits(), [])


def test_kitti_class_names_in_other_formats_are_read_as_in_a_kitti_folder(tmp_path: Path) -> None:
    """A KITTI set converted to COCO or the project's JSON keeps Van, Person_sitting and
    DontCare: they were classes of their own (listed as not scored), so a car detection on a van
    and a pedestrian in a DontCare area were false positives that a KITTI folder ignores."""
    boxes = [{"label": "car", "bbox_xyxy": [10, 10, 50, 90]},
             {"label": "Van", "bbox_xyxy": [100, 10, 140, 90]},
             {"label": "Person_sitting", "bbox_xyxy": [300, 10, 330, 60]},
             {"label": "DontCare", "bbox_xyxy": [145, 5, 195, 95]},
             {"label": "pedestrian", "bbox_xyxy": [400, 10, 430, 90]}]
    project = load_ground_truth(_write(tmp_path, {"cameras": {"a": {"image": "a.png",
                                                                    "boxes": boxes}}}))
    names = {"car": 1, "Van": 2, "Person_sitting": 3, "DontCare": 4, "pedestrian": 5}
    coco = load_ground_truth(_write(tmp_path, {
        "images": [{"id": 1, "file_name": "a.png"}],
        "categories": [{"id": i, "name": n} for n, i in names.items()],
        "annotations": [{"id": k, "image_id": 1, "category_id": names[b["label"]],
                         "bbox": [b["bbox_xyxy"][0], b["bbox_xyxy"][1],
                                  b["bbox_xyxy"][2] - b["bbox_xyxy"][0],
                                  b["bbox_xyxy"][3] - b["bbox_xyxy"][1]]}
                        for k, b in enumerate(boxes, 1)]}))
    for images in (project, coco):
        (g,) = images
        assert g.labels == ["car", "car", "pedestrian", IGNORE_ALL, "pedestrian"]
        assert g.difficult.tolist() == [False, True, True, True, False]
        found = dets([[10, 10, 50, 90], [100, 10, 140, 90], [300, 10, 330, 60],
                      [150, 10, 190, 90], [400, 10, 430, 90]], [0.9] * 5,
                     ["car", "car", "pedestrian", "pedestrian", "pedestrian"])
        result = evaluate(images, [found], None, LABELS)
        assert {k: (c.gt, c.tp, c.fp) for k, c in result.classes.items()} == {
            "pedestrian": (1, 1, 0), "car": (1, 1, 0)}
        assert result.not_scored == []


def test_a_size_with_its_sides_swapped_is_refused_unless_exif_turns_the_image(
        tmp_path: Path) -> None:
    """A declared width and height swapped against the image (labels drawn on the image turned)
    were taken, the boxes scored on pixels turned against them; so was a declared size equal to
    the header's of a photo whose EXIF orientation turns it for the detector. The size as shown
    must match exactly."""
    cv2.imwrite(str(tmp_path / "plain.png"), np.full((100, 200, 3), 90, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees: 200x100 pixels shown as 100x200
    Image.new("RGB", (200, 100), (90, 90, 90)).save(tmp_path / "turned.jpg", exif=exif)
    assert cv2.imread(str(tmp_path / "turned.jpg")).shape[:2] == (200, 100)

    def check(image: str, width: int, height: int) -> list[GroundTruthImage]:
        gt = _write(tmp_path, {"cameras": {"a": {"image": image, "width": width,
                                                 "height": height, "boxes": []}}})
        return check_images(load_ground_truth(gt), gt, InputLimits(), [])

    assert len(check("plain.png", 200, 100)) == 1 and len(check("turned.jpg", 100, 200)) == 1
    with pytest.raises(GroundTruthError, match=r"says 100x200 px, but .*plain\.png is 200x100; "
                                               "the boxes are for another image, resolution "
                                               "or orientation"):
        check("plain.png", 100, 200)
    with pytest.raises(GroundTruthError, match=r"says 200x100 px, but .*turned\.jpg is 100x200 "
                                               r"as shown \(its EXIF orientation turns it\)"):
        check("turned.jpg", 200, 100)


def test_a_coco_category_without_a_box_is_scored_and_printed_as_eval_json_holds(
        tmp_path: Path) -> None:
    """A COCO file declaring `person` with no person in any image (a motorway set): pedestrian
    was not scored and its detections were never false positives, without a word. Scored now:
    ground truth 0, recall and AP none (not NaN), every detection a false positive, printed as
    eval.json holds it; a declared class the detector lacks (`dog`) is not listed."""
    from rich.console import Console

    from sense_perception.evaluation.report import render, to_dict

    gt = _write(tmp_path, {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"},
                       {"id": 18, "name": "dog"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 80]}]})
    images = load_ground_truth(gt)
    found = [dets([[10, 10, 50, 90], [100, 10, 120, 60]], [0.9, 0.8], ["car", "pedestrian"]),
             dets([[100, 10, 120, 60]], [0.7], ["pedestrian"])]
    result = evaluate(images, found, None, LABELS)
    ped, car = result.classes["pedestrian"], result.classes["car"]
    assert (ped.gt, ped.tp, ped.fp, ped.recall, ped.precision, ped.ap) == (0, 0, 2, None, 0.0, None)
    assert (car.gt, car.tp, car.fp) == (1, 1, 0) and result.not_scored == []
    doc = json.loads(json.dumps(to_dict(result), allow_nan=False))
    assert doc["fp"] == 2 and doc["fp_per_image"] == 1.0
    assert doc["classes"]["pedestrian"] | {"recall_by_height": None} == {
        "gt": 0, "tp": 0, "fp": 2, "recall": None, "precision": 0.0, "ap": None,
        "fp_per_image": 1.0, "recall_by_height": None, "missed": []}
    console = Console(record=True, width=120)
    render(result, console)
    printed = [" ".join(line.replace("│", " ").split()) for line in
               console.export_text().splitlines()]
    assert "pedestrian 0 0 2 1.00 - 0.0 % -" in printed and "car 1 1 0 0.00 100.0 % 100.0 % 1.000" \
        in printed
    assert "false positives per image: 1.00 (2 in 2 images)" in printed


def test_a_box_without_area_is_named_in_its_format_s_own_terms(tmp_path: Path) -> None:
    """A COCO bbox of width 0 was refused as `image 1: box 1 [10.0, 10.0, 10.0, 90.0] is empty
    (bbox_xyxy must be ...)`, a field COCO files do not have, and a KITTI box with right < left
    as `box 0` of a file where it was line 2 (Misc lines are not counted)."""
    coco = {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 3, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 80]},
                            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [10, 10, 0, 80]}]}
    with pytest.raises(GroundTruthError, match=r"gt\.json: annotations\[1\]\.bbox: \[10, 10, 0, "
                                               r"80\] has no area: a COCO bbox is \[x, y, width, "
                                               r"height\]"):
        load_ground_truth(_write(tmp_path, coco))
    labels = tmp_path / "label_2"
    labels.mkdir()
    (labels / "000001.txt").write_text("Misc 0 0 0 1 1 5 5 0 0 0 0 0 0 0\n"
                                       "Car 0.00 0 -1.56 50 10 40 90 1 1 1 0 0 0 0\n")
    with pytest.raises(GroundTruthError, match=r"000001\.txt:2: the box \(fields 5-8: left, top, "
                                               r"right, bottom\) 50 10 40 90 has no area"):
        load_ground_truth(labels, "kitti")


# -- the stand-in makers (tools/make_far_proxy.py, make_night_proxy.py) ----------------------------

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _proxy_tools(monkeypatch: pytest.MonkeyPatch):
    import importlib

    monkeypatch.syspath_prepend(str(TOOLS))
    return importlib.import_module("make_far_proxy"), importlib.import_module("make_night_proxy")


def test_stand_ins_keep_ignore_regions_frames_apart_and_boxes_on_their_pixels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The far stand-in dropped every camera's ignore_regions (their detections became false
    positives), both wrote the frames of keys `front/00` and `front_00` to one file (the first
    camera's boxes scored on the other's frame), and the far one scaled boxes by the factor
    while the frame got whole pixels (0.3 of 333 px is 100: the box ended at 216.9, the car at
    216)."""
    far, night = _proxy_tools(monkeypatch)
    labelled = tmp_path / "set"
    labelled.mkdir()
    cv2.imwrite(str(labelled / "a.png"), np.full((101, 333, 3), 200, np.uint8))
    cv2.imwrite(str(labelled / "b.png"), np.full((101, 333, 3), 20, np.uint8))
    gt = labelled / "ground_truth.json"
    gt.write_text(json.dumps({"cameras": {
        "front/00": {"image": "a.png", "boxes": [{"label": "car", "bbox_xyxy": [0, 0, 333, 101]}],
                     "ignore_regions": [{"bbox_xyxy": [0, 0, 111, 50.5]}]},
        "front_00": {"image": "b.png", "boxes": []}}}))
    assert far.shrink(gt, tmp_path / "far", 0.3) == 2
    doc = json.loads((tmp_path / "far" / "ground_truth.json").read_text())
    a, b = doc["cameras"]["front/00"], doc["cameras"]["front_00"]
    assert a["image"] != b["image"]
    frame = cv2.imread(str(tmp_path / "far" / a["image"]), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.nonzero(frame > 160)  # the shrunk bright frame on the grey (114) canvas
    assert a["boxes"][0]["bbox_xyxy"] == [116.0, 35.0, 216.0, 65.0]
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (116, 35, 216, 65)
    assert a["ignore_regions"] == [{"bbox_xyxy": [116.0, 35.0, 149.33333333333334, 50.0]}]
    assert cv2.imread(str(tmp_path / "far" / b["image"]))[50, 166].max() < 60  # its own frame
    assert night.make(gt, tmp_path / "night") == 2
    cameras = json.loads((tmp_path / "night" / "ground_truth.json").read_text())["cameras"]
    assert cameras["front/00"]["image"] != cameras["front_00"]["image"]


@pytest.mark.parametrize("tool, args, message", [
    ("make_far_proxy.py", ["--factor", "0"], "--factor 0.0 is not a shrink factor"),
    ("make_far_proxy.py", ["--factor", "2"], "--factor 2.0 is not a shrink factor"),
    ("make_night_proxy.py", ["--gamma", "0"], "--gamma 0.0 makes no night frame"),
    ("make_night_proxy.py", ["--full-well", "0"], "--full-well 0.0 makes no night frame"),
])
def test_stand_in_settings_that_make_no_frame_are_refused(tmp_path: Path, monkeypatch, tool,
                                                          args, message, capsys) -> None:
    """A factor of 0 or 2, a gamma of 0, an exposure below 0 ended in a traceback (OpenCV,
    numpy, ZeroDivisionError); a full well of 0 wrote frames of noise with exit 0."""
    far, night = _proxy_tools(monkeypatch)
    module = far if tool == "make_far_proxy.py" else night
    monkeypatch.setattr("sys.argv", [tool, str(tmp_path / "gt.json"), str(tmp_path / "out"),
                                     *args])
    with pytest.raises(SystemExit) as stop:
        module.main()
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- tools/fit_score_calibration.py on degenerate input ---------------------------------------------

@pytest.mark.parametrize("rows, counts", [
    (tuple((100 + i, 10, 140 + i, 90, 0.3 + 0.01 * i, "car") for i in range(20)), "0 hit(s) and 20"),
    ((), "0 hit(s) and 0"),
    (((10, 10, 50, 90, 0.6, "car"),), "1 hit(s) and 0"),
])
def test_score_calibration_is_never_fitted_on_too_few_hits(tmp_path: Path, monkeypatch, capsys,
                                                           rows: tuple, counts: str) -> None:
    """A labelled set on which the model makes no hit was fitted (a map sending every score to
    0: the calibrated detector reports nothing), one without detections got the identity claimed
    as a fit, one hit sent every score to 0.999: each written to --out (by default the bundled
    calibration), exit 0. Refused now, nothing written."""
    import sys

    from support import FakeDetector

    monkeypatch.syspath_prepend(str(TOOLS))
    import fit_score_calibration as fsc

    def fake(params: dict, source: str) -> FakeDetector:
        detector = FakeDetector(rows=rows, name="picodet_s_416")
        detector.input_size = (416, 416)  # type: ignore[attr-defined]
        return detector

    monkeypatch.setattr(fsc, "build_detector", fake)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((100, 200, 3), 90, np.uint8))
    gt = _write(tmp_path, {"cameras": {"a": {"image": "a.png", "boxes": [
        {"label": "car", "bbox_xyxy": [10, 10, 50, 90]}]}}})
    out = tmp_path / "calibration.json"
    for extra, message in (([], f"error: picodet_s_416: {counts} false positive(s) at raw >= "
                                "0.05 on 1 image(s); a map needs at least 15 of each"),
                           (["--min-hits", "0"], "error: --min-hits 0 is below 1"),
                           (["--iou", "0"], "error: --iou 0.0 is not within (0, 1]")):
        monkeypatch.setattr(sys, "argv", ["fit", str(gt), "--out", str(out),
                                          "--pedestrian-model", "none", *extra])
        with pytest.raises(SystemExit) as stop:
            fsc.main()
        assert stop.value.code == 2 and message in capsys.readouterr().err
        assert not out.exists()


def test_a_box_reaching_past_the_image_edge_is_scored_on_its_part_inside(tmp_path: Path) -> None:
    """A box projected from a 3-D cuboid reaches past the edge (a car half out of the view). It
    was scored whole against the detector's boxes, which are cut to the image: a car found exactly
    on its visible half had an IoU of 0.5 and was missed at ``--iou 0.6``, its height band that
    of a size nobody sees. It is cut to the image, as the detections are, and counted."""
    cv2.imwrite(str(tmp_path / "a.png"), np.full((100, 200, 3), 90, np.uint8))
    gt = _write(tmp_path, {"cameras": {"a": {"image": "a.png", "boxes": [
        {"label": "car", "bbox_xyxy": [-40, 20, 40, 60]},      # half out on the left
        {"label": "car", "bbox_xyxy": [150, 50, 260, 140]},    # out right and below
        {"label": "car", "bbox_xyxy": [80, 10, 120, 40]}],  # inside: unchanged
        # an ignore region is cut too, but it is no ground-truth box: clipped_boxes counted it
        "ignore_regions": [{"bbox_xyxy": [-10, 0, 30, 15]}]}}})
    (image,) = check_images(load_ground_truth(gt), gt, InputLimits(), [])
    np.testing.assert_array_equal(image.boxes, [[0, 20, 40, 60], [150, 50, 200, 100],
                                                [80, 10, 120, 40], [0, 0, 30, 15]])
    assert image.clipped == 2
    visible = dets([[0, 20, 40, 60], [150, 50, 200, 100], [80, 10, 120, 40]], [0.9, 0.8, 0.7],
                   ["car"] * 3)
    car = evaluate([image], [visible], None, LABELS, iou=0.6).classes["car"]
    assert (car.tp, car.fp) == (3, 0)


def test_result_tables_piped_to_a_file_keep_every_name_whole(monkeypatch, capsys) -> None:
    """Piped (a log, CI) rich laid the tables out in 80 columns: eval printed ``pedestr…``,
    ``positiv…`` and ``precisi…``, and "1 images"."""
    from sense_perception.evaluation.report import render
    from sense_perception.result_console import result_console

    monkeypatch.delenv("COLUMNS", raising=False)
    one = gt_image("a", [PERSON, [300, 0, 400, 200]], ["pedestrian", "traffic_light"])
    found = dets([PERSON, [300, 0, 400, 200], ELSEWHERE], [0.9, 0.8, 0.5],
                 ["pedestrian", "traffic_light", "motorcycle"])
    render(evaluate([one], [found], None, LABELS), result_console())  # capsys: not a terminal
    printed = capsys.readouterr().out
    for word in ("pedestrian", "traffic_light", "false positives", "precision", "(IoU 0.5, 1 image)",
                 "(0 in 1 image)"):
        assert word in printed, printed
    assert "…" not in printed, printed
