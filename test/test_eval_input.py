"""`sense-perception eval` on malformed, misleading and hostile input (issue 20, items 12-15).

Every case writes a real ground-truth file (project JSON, COCO json or a KITTI folder) around real
frames of ../shared/data and runs the real command: a malformed file must end with exit 2 and a
message naming the file, the entry and the field, never a traceback; ground truth that would score
nothing, or wrongly, must be refused or read right.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import PICODET_ONLY

from sense_perception.cli.main import main
from sense_perception.core.detection import detector_setup
from sense_perception.evaluation import run as eval_run
from sense_perception.evaluation.outputs import EVAL_MARKER

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "street_labelled" / \
    "pandaset_seq002_front"
FRAME = DEV / "00.jpg"  # 1920x1080
CAR = [1532.4, 562.5, 1920.0, 1080.0]  # a parked car at the right edge of 00.jpg
PERSON = [100.0, 100.0, 140.0, 200.0]
CPU = "object_detector:\n  ros__parameters:\n    runtime: {providers: [CPUExecutionProvider]}\n"


def project(boxes: object, **camera: object) -> dict:
    return {"cameras": {"front/00": {"image": str(FRAME), "boxes": boxes, **camera}}}


def coco(**parts: object) -> dict:
    doc = {"images": [{"id": 7, "file_name": FRAME.name, "width": 1920, "height": 1080}],
           "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1532, 562, 388, 518]}]}
    doc.update(parts)
    return doc


def ann(**fields: object) -> list[dict]:
    return [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1532, 562, 388, 518], **fields}]


def write_gt(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def kitti(tmp_path: Path, content: bytes) -> Path:
    labels = tmp_path / "training" / "label_2"
    labels.mkdir(parents=True)
    (tmp_path / "training" / "image_2").mkdir()
    shutil.copy(FRAME, tmp_path / "training" / "image_2" / "000001.jpg")
    (labels / "000001.txt").write_bytes(content)
    return labels


GOOD_KITTI = "Car 0.00 0 -1.56 1532.4 562.5 1919.0 1079.0 1.61 1.66 3.20 -0.69 1.69 25.01 -1.59\n"

# (ground truth, part of the message), each a file the hostile run crashed on or misread.
MALFORMED = [
    (project([{"label": "car", "bbox_xyxy": ["abc", 1, 2, 3]}]),
     "cameras.front/00.boxes[0].bbox_xyxy[0]: expected a finite number, got 'abc'"),
    (project([{"label": "car", "bbox_xyxy": [1, 2, None, 3]}]),
     "cameras.front/00.boxes[0].bbox_xyxy[2]: expected a finite number, got None"),
    (project(5), "cameras.front/00.boxes: expected a list of boxes, got 5"),
    ({"cameras": {"a": {"image": None, "boxes": []}}},
     "cameras.a.image: expected a non-empty string, got None"),
    (project([], width="wide"), "cameras.front/00.width: expected a whole number of pixels"),
    (project([{"label": "car", "bbox_xyxy": "1,2,3,4"}]),
     "cameras.front/00.boxes[0].bbox_xyxy: expected [x1, y1, x2, y2], got '1,2,3,4'"),
    (project([{"label": ["car"], "bbox_xyxy": CAR}]),
     "cameras.front/00.boxes[0].label: expected a class name"),
    (project([{"label": None, "bbox_xyxy": CAR}]),
     "cameras.front/00.boxes[0].label: expected a class name"),
    (project([{"label": "car", "bbox_xyxy": CAR, "difficult": "false"}]),
     "cameras.front/00.boxes[0].difficult: expected true or false, got 'false'"),
    (project([{"label": "*", "bbox_xyxy": CAR}]), "'*' is not a class name ('*' is reserved)"),
    (project([], ignore_regions=3), "cameras.front/00.ignore_regions: expected a list"),
    ('{"cameras": {"a": {"image": "00.jpg", "boxes": [{"label": "car", '
     '"bbox_xyxy": [NaN, 1, 2, 3]}]}}}', "bbox_xyxy[0]: expected a finite number, got nan"),
    ('{"cameras": ' + "[" * 100000 + "]" * 100000 + "}", "not readable JSON: nested too deeply"),
    ({"cameras": ["front"]}, 'expected {"cameras": {KEY: {"image": ..., "boxes": [...]}}} with'),
    (coco(annotations=[{"id": 1, "image_id": 7, "category_id": 99, "bbox": [1, 2, 3, 4]}]),
     "annotations[0]: category_id 99 is not the id of any entry of 'categories'"),
    (coco(annotations=ann(bbox=[1, 2, 3])), "annotations[0].bbox: expected a COCO bbox"),
    (coco(annotations=ann(bbox=[1, 2, "w", 4])), "annotations[0].bbox[2]: expected a finite number"),
    (coco(images={"7": FRAME.name}), "images: expected a list of images"),
    (coco(annotations="none"), "annotations: expected a list of annotations"),
    (coco(annotations=ann(iscrowd="yes")), "annotations[0].iscrowd: expected true or false"),
    (coco(images=[{"id": 7}]), "images[0]: needs 'file_name'"),
    (coco(categories=[{"id": 1, "name": 5}]), "categories[0].name: expected a class name"),
    (coco(images=[]), "'images' is empty: nothing to evaluate"),
    (coco(categories=[{"id": 3, "name": "car"}, {"id": 3, "name": "person"}]),
     "categories[1]: category id 3 is also"),
    (coco(images=[{"id": 7, "file_name": FRAME.name}, {"id": 7, "file_name": "01.jpg"}]),
     "images[1]: image id 7 is also"),
    (coco(annotations=[{"id": 1, "image_id": 8, "category_id": 3, "bbox": [1, 2, 3, 4]}]),
     "annotations[0]: image_id 8 is not the id of any entry of 'images'"),
    (project([{"label": "car", "bbox_xyxy": [2000, 100, 2100, 200]}]),
     "car box 0 [2000.0, 100.0, 2100.0, 200.0] lies wholly outside the 1920x1080 image"),
    (project([{"label": "car", "bbox_xyxy": CAR}], width=640, height=480),
     "the ground truth says 640x480 px, but"),
    ('{"cameras": {"a": {"image": "00.jpg", "boxes": []}, "a": {"image": "00.jpg", "boxes": []}}}',
     "the key 'a' appears twice in one object"),
    (project([{"label": "car\x1b[2J", "bbox_xyxy": CAR}]),
     "boxes[0].label: the class name 'car\\x1b[2J' has control characters"),
    ({"cameras": {"front\nfake": {"image": str(FRAME), "boxes": []}}},
     "cameras: the key 'front\\nfake' is empty or has control characters"),
]


@pytest.mark.parametrize("doc, message", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_ground_truth_is_exit_2_naming_the_field(tmp_path: Path, capsys, doc,
                                                           message: str) -> None:
    gt = write_gt(tmp_path, doc)
    if isinstance(doc, str):
        shutil.copy(FRAME, tmp_path / "00.jpg")
    code = main(["eval", str(gt), "--out", str(tmp_path / "out"), "--images", str(DEV)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and message in err and str(gt) in err, err


@pytest.mark.parametrize("content, message", [
    (GOOD_KITTI.replace("1532.4", "left").encode(),
     "000001.txt:1: field 5 (left) must be a number, got 'left'"),
    (GOOD_KITTI.replace("0.00", "x", 1).encode(),
     "000001.txt:1: field 2 (truncated) must be a number, got 'x'"),
    (GOOD_KITTI.replace("1532.4", "inf").encode(), "field 5 (left) must be a number, got 'inf'"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe binary", "not a UTF-8 text file"),
    (b"Car 0 0 0 1 2 3\n", "a KITTI label line has 15 fields, got 7"),
])
def test_malformed_kitti_labels_are_exit_2_naming_file_and_line(tmp_path: Path, capsys,
                                                                content: bytes,
                                                                message: str) -> None:
    labels = kitti(tmp_path, content)
    code = main(["eval", str(labels), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and message in err, err


def test_kitti_classes_of_other_sets_are_read_not_dropped(tmp_path: Path) -> None:
    from sense_perception.evaluation.ground_truth import load_ground_truth

    labels = kitti(tmp_path, (GOOD_KITTI + GOOD_KITTI.replace("Car", "Bus")
                              + GOOD_KITTI.replace("Car", "person")
                              + GOOD_KITTI.replace("Car", "Misc")).encode())
    (image,) = load_ground_truth(labels)
    assert image.labels == ["car", "bus", "pedestrian"]  # Misc is KITTI's "left out" class


def test_ground_truth_that_is_a_fifo_or_a_folder_is_refused(tmp_path: Path, capsys) -> None:
    import os

    fifo = tmp_path / "gt.json"
    os.mkfifo(fifo)
    assert main(["eval", str(fifo), "--out", str(tmp_path / "out")]) == 2  # not blocked
    assert "not a regular file" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--format", "coco", "--out", str(tmp_path / "o")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["eval", "/dev/zero", "--format", "coco", "--out", str(tmp_path / "o")]) == 2
    assert "a device, not a regular file" in capsys.readouterr().err  # never read without end


@pytest.mark.parametrize("kind", ["fifo", "directory", "broken link"])
def test_a_kitti_label_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, capsys,
                                                                  kind: str) -> None:
    """A *.txt in label_2 that was a FIFO, a directory or a broken link was passed over in
    silence: its image went unscored and eval exited 0 with figures for fewer images. It is
    refused (exit 2) naming it, and a FIFO is never waited on."""
    labels = kitti(tmp_path, GOOD_KITTI.encode())
    shutil.copy(FRAME, tmp_path / "training" / "image_2" / "000002.jpg")
    odd = labels / "000002.txt"
    {"fifo": lambda: os.mkfifo(odd), "directory": odd.mkdir,
     "broken link": lambda: odd.symlink_to(tmp_path / "gone.txt")}[kind]()
    code = main(["eval", str(labels), "--out", str(tmp_path / "out"), "--no-curve"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(odd) in err, err
    assert not (tmp_path / "out" / "eval.json").exists()


def test_ground_truth_too_large_to_hold_is_refused_before_it_is_read(tmp_path: Path, capsys) -> None:
    from sense_perception.evaluation.gt_fields import MAX_GROUND_TRUTH_BYTES

    huge = tmp_path / "gt.json"
    with open(huge, "wb") as f:  # sparse: no disk space is used
        f.truncate(MAX_GROUND_TRUTH_BYTES + 1)
    assert main(["eval", str(huge), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"more than the {MAX_GROUND_TRUTH_BYTES}" in err and "split" in err and "Traceback" not in err


def test_the_project_format_message_has_no_stray_braces(tmp_path: Path, capsys) -> None:
    gt = write_gt(tmp_path, {"cameras": {}})
    assert main(["eval", str(gt), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert '"boxes": [...]}}} with at least one camera' in err and "}}}}" not in err


# -- options and output, checked before any work ---------------------------------------------------

@pytest.fixture()
def no_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a detector is built: the refusal must come first."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a detector was built before the refusal")

    monkeypatch.setattr(detector_setup, "build_detector", refuse)


@pytest.mark.parametrize("iou", ["0", "-0.5", "1.5", "nan", "inf"])
def test_iou_out_of_range_is_refused_before_any_work(tmp_path: Path, capsys, monkeypatch,
                                                     no_detection, iou: str) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the ground truth was read before --iou was checked")

    monkeypatch.setattr(eval_run, "run_evaluation", never)
    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    code = main(["eval", str(gt), "--out", str(tmp_path / "out"), "--iou", iou])
    err = capsys.readouterr().err
    assert code == 2 and "--iou must be within (0, 1]" in err and str(float(iou)) in err, err
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_refused_before_detection(tmp_path: Path, capsys, no_detection) -> None:
    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where a folder is needed")
    for out, why in ((blocker / "eval", "is not writable: Not a directory"),
                     (blocker, "exists and is not a directory"),
                     (Path("/proc/sense_perception_eval"), "is not writable")):
        code = main(["eval", str(gt), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and f"--out {out} {why}" in err and "Traceback" not in err, err
    assert blocker.read_text() == "a file where a folder is needed"


# -- what is scored ------------------------------------------------------------------------------

def test_ground_truth_with_no_class_the_detector_reports_fails(tmp_path: Path, capsys) -> None:
    gt = write_gt(tmp_path, project([{"label": "zebra", "bbox_xyxy": CAR},
                                     {"label": "cyclist", "bbox_xyxy": PERSON}]))
    code = main(["eval", str(gt), "--out", str(tmp_path / "out"), "--config",
                 str(PICODET_ONLY)])
    err = capsys.readouterr().err
    assert code == 2 and "nothing would be scored" in err and "cyclist, zebra" in err, err
    assert not (tmp_path / "out" / "eval.json").exists()


def test_coco_names_and_case_are_scored_and_no_curve_means_no_ap(tmp_path: Path,
                                                                 capsys) -> None:
    gt = write_gt(tmp_path, project([
        {"label": "Car", "bbox_xyxy": CAR},
        {"label": "person", "bbox_xyxy": PERSON, "difficult": False},
        {"label": "Pedestrian", "bbox_xyxy": [300, 100, 340, 200], "difficult": True},
        {"label": "[/red] sign", "bbox_xyxy": [500, 100, 540, 200]}]))
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(FRAME, out / "precision_recall.png")  # stands for an earlier run's plot
    (out / EVAL_MARKER).write_text("")  # which an earlier eval marks as its own
    code = main(["eval", str(gt), "--out", str(out), "--config", str(PICODET_ONLY),
                 "--no-curve"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "eval.json").read_text())
    # 'Car' is car, 'person' and 'Pedestrian' are pedestrians (the difficult one not counted).
    assert doc["classes"]["car"]["gt"] == 1 and doc["classes"]["car"]["tp"] == 1
    assert doc["classes"]["pedestrian"]["gt"] == 1 and doc["not_scored"] == ["[/red]_sign"]
    assert "not scored (classes the detector does not have): [/red]_sign" in capsys.readouterr().out
    assert all(c["ap"] is None for c in doc["classes"].values())
    assert doc["curve"] is False and doc["skipped"] == []
    assert not (out / "precision_recall.png").exists()


def test_an_unreadable_and_a_1x1_image_are_skipped_counted_and_named(tmp_path: Path,
                                                                     capsys) -> None:
    (tmp_path / "broken.jpg").write_bytes(FRAME.read_bytes()[:2000])  # header, no scan end
    cv2.imwrite(str(tmp_path / "tiny.png"), np.full((1, 1, 3), 90, np.uint8))
    shutil.copy(FRAME, tmp_path / "frame.jpg")
    (tmp_path / "bomb.png").write_bytes(_claiming(tmp_path / "tiny.png", 20000, 20000))
    cameras = {"a": {"image": "frame.jpg", "boxes": [{"label": "car", "bbox_xyxy": CAR}]},
               "b": {"image": "broken.jpg", "boxes": [{"label": "car", "bbox_xyxy": CAR}]},
               "c": {"image": "tiny.png", "boxes": []},
               "d": {"image": "bomb.png", "boxes": []}}
    gt = write_gt(tmp_path, {"cameras": cameras})
    out = tmp_path / "out"
    code = main(["eval", str(gt), "--out", str(out), "--config", str(PICODET_ONLY)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    doc = json.loads((out / "eval.json").read_text())
    assert doc["images"] == 1 and doc["classes"]["car"]["gt"] == 1  # b's car is not a miss
    reasons = {s["image"]: s["reason"] for s in doc["skipped"]}
    assert set(reasons) == {"b", "c", "d"}
    assert "broken.jpg" in reasons["b"] and "not a decodable image" in reasons["b"]
    assert "cannot detect on" in reasons["c"] and "tiny.png (1x1 px)" in reasons["c"]
    assert "bomb.png: the header claims 20000x20000" in reasons["d"]
    for key in "bcd":
        assert f"skipped: {key}:" in captured.err
    assert "3 image(s) skipped" in captured.out
    assert math.isclose(doc["classes"]["car"]["recall"], 1.0)


def _claiming(source: Path, width: int, height: int) -> bytes:
    import struct
    import zlib

    data = bytearray(source.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_settings_image_files_cannot_use_are_named_not_dropped(tmp_path: Path, capsys) -> None:
    """eval, like detect, says which of the config's settings image files cannot use (tracking,
    Autoware, the node's camera topics) instead of ignoring them in silence."""
    (tmp_path / "streams.yaml").write_text(
        CPU + "    tracking: {velocity: {steady_sd: 0.5}}\n"
              "    autoware: {objects_topic: /objects}\n    camera_topics: [/cam/image_raw]\n")
    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    code = main(["eval", str(gt), "--out", str(tmp_path / "out"), "--config",
                 str(tmp_path / "streams.yaml"), "--no-curve"])
    err = capsys.readouterr().err
    assert code == 0, err
    named = err.split("not applied to image files", 1)[1]
    for name in ("autoware.objects_topic", "camera_topics", "tracking.velocity.steady_sd"):
        assert name in named
    assert "runtime.providers" not in named


# -- eval's --out: only its own results, replaced as one set (hostile run 4) ----------------------

def test_eval_replaces_only_its_own_results(tmp_path: Path, capsys) -> None:
    """`detect IMG --out res` then `eval GT --out res` silently replaced detect's detections.json
    (its annotated copies and list stayed, describing other detections), and `eval --no-curve`
    deleted any precision_recall.png in --out as 'an earlier run's curve', a user's own included.
    eval now refuses (exit 2, before the model loads) an --out holding one of its result names
    that it did not write, and replaces its own results on a re-run. (PicoDet alone: which
    detector made the results is beside the point, and the default's specialist cost each of the
    three model loads an OpenVINO compile.)"""
    cpu = ["--config", str(PICODET_ONLY)]
    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    res = tmp_path / "res"
    assert main(["detect", str(FRAME), "--out", str(res), "--no-annotate", *cpu]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precision_recall.png").write_bytes(b"my own plot, not eval's")
    capsys.readouterr()
    for out, name in ((res, "detections.json"), (mine, "precision_recall.png")):
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        code = main(["eval", str(gt), "--out", str(out), "--no-curve", *cpu])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert f"--out {out} holds {name} that sense-perception eval did not write" in err, err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    out = tmp_path / "out"
    assert main(["eval", str(gt), "--out", str(out), *cpu]) == 0
    assert (out / "precision_recall.png").is_file() and (out / EVAL_MARKER).is_file()
    stamp = (out / "eval.json").stat().st_mtime_ns
    assert main(["eval", str(gt), "--out", str(out), "--no-curve", *cpu]) == 0  # its own: replaced
    assert (out / "eval.json").stat().st_mtime_ns != stamp
    assert not (out / "precision_recall.png").exists()
    assert json.loads((out / "eval.json").read_text())["curve"] is False


def test_detect_refuses_an_out_holding_evals_results(tmp_path: Path, capsys) -> None:
    """`eval GT --out res` then `detect IMG --out res` silently replaced eval's detections.json:
    eval.json then scored detections that were no longer there. detect now refuses (exit 2,
    before the model loads, naming the fix) a folder marked by eval, the way eval refuses
    detect's folder, and leaves every byte."""
    cpu = ["--config", str(PICODET_ONLY)]
    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    res = tmp_path / "res"
    assert main(["eval", str(gt), "--out", str(res), *cpu]) == 0
    before = {p.name: p.read_bytes() for p in res.iterdir()}
    assert {"detections.json", "eval.json", EVAL_MARKER} <= set(before)
    capsys.readouterr()
    for annotate in ([], ["--no-annotate"]):
        code = main(["detect", str(FRAME), "--out", str(res), *annotate, *cpu])
        captured = capsys.readouterr()
        err = " ".join(captured.err.split())
        assert code == 2 and "Traceback" not in err
        assert f"--out {res} holds the results of sense-perception eval ({EVAL_MARKER} there)" \
            in err and "choose another --out" in err, err
        assert "on CPUExecutionProvider" not in captured.out  # refused before the model loads
        assert {p.name: p.read_bytes() for p in res.iterdir()} == before
    # Another --out is detect's as before.
    assert main(["detect", str(FRAME), "--out", str(tmp_path / "mine"), "--no-annotate", *cpu]) == 0


_EVAL_ON_A_FULL_DISK = """
import contextlib, hashlib, io, json, os, sys
from pathlib import Path
from sense_perception.cli.main import main
disk, gt1, gt2, cpu = Path(sys.argv[1]), *sys.argv[2:5]
out = disk / "out"
first = main(["eval", gt1, "--out", str(out), "--no-curve", "--config", cpu])
names = sorted(p.name for p in out.iterdir())
before = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}
free = os.statvfs(disk).f_bavail
with open(disk / "fill", "wb") as f:  # room for the two JSON files, not for the plot
    f.write(bytes((free - 3) * os.statvfs(disk).f_frsize))
err = io.StringIO()
with contextlib.redirect_stderr(err):
    second = main(["eval", gt2, "--out", str(out), "--config", cpu])
after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
print(json.dumps({"first": first, "second": second, "before": before, "after": after,
                  "err": err.getvalue()}))
"""


def test_eval_on_a_full_disk_keeps_the_earlier_results_as_one_set(tmp_path: Path) -> None:
    """On a full disk (a real tmpfs) eval replaced detections.json and eval.json one after the
    other and then failed on the plot: the folder held this run's numbers for another ground
    truth beside no plot, and the earlier run's results were gone. The three are now written
    in full before any is replaced: the error (exit 2) keeps the earlier set whole."""
    from support import run_on_tmpfs

    gt1 = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    gt2 = tmp_path / "gt2.json"
    gt2.write_text(json.dumps({"cameras": {"front/01": {
        "image": str(DEV / "01.jpg"), "boxes": [{"label": "car", "bbox_xyxy": CAR}]}}}))
    got = run_on_tmpfs(tmp_path, _EVAL_ON_A_FULL_DISK,
                       [gt1, gt2, PICODET_ONLY], options="size=256k")
    assert got["first"] == 0 and got["second"] == 2, got
    assert "cannot write the results to --out" in got["err"] and "No space left" in got["err"]
    assert "the earlier results there are unchanged" in got["err"] and "Traceback" not in got["err"]
    assert set(got["before"]) == {"eval.json", "detections.json", EVAL_MARKER}
    assert got["after"] == got["before"], got  # no new file beside an old one, no temp left


@pytest.fixture()
def sigterm_guard():
    """SIGTERM raises here unless the command installs its own handler: without one the default
    action would end the test process (pytest with it), not fail the test."""
    import signal

    class Unhandled(BaseException):
        pass

    def unhandled(signum: int, frame: object) -> None:
        raise Unhandled("SIGTERM reached no handler of the command: the process would end here")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield Unhandled
    signal.signal(signal.SIGTERM, previous)


def test_a_stop_while_eval_replaces_its_results_keeps_one_set(tmp_path: Path, capsys, monkeypatch,
                                                              sigterm_guard) -> None:
    """eval installed no stop handling: Ctrl-C between the renames of its results left this run's
    detections.json beside the earlier run's eval.json (exit 130), and SIGTERM ended the process
    there, the same mix plus the temp files of the others. A stop while the three are replaced
    now waits for them (the new set whole, `wrote ...`), then exits 130 / 143; a stop before
    that replaces nothing, says so and lets the folder's lock go (R73)."""
    import signal

    from sense_perception.out_lock import FolderLock

    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    out = tmp_path / "out"
    out.mkdir()
    earlier = {EVAL_MARKER: b"marker\n", "eval.json": b'{"earlier": 1}\n',
               "detections.json": b'{"images": []}\n', "precision_recall.png": b"earlier plot"}
    for name, data in earlier.items():
        (out / name).write_bytes(data)
    argv = ["eval", str(gt), "--out", str(out), "--config", str(PICODET_ONLY)]

    # A stop while the images are detected: nothing replaced, the lock let go.
    for signum, expected in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        def stopped(*args: object, signum: int = signum, **kwargs: object) -> None:
            kwargs["before_detection"]([FRAME])  # the run's checks and lock, as before detection
            os.kill(os.getpid(), signum)
            raise AssertionError("the stop did not end the detection pass")

        with monkeypatch.context() as m:
            m.setattr(eval_run, "run_evaluation", stopped)
            assert main(argv) == expected
        err = capsys.readouterr().err
        assert "before its results were written: nothing in --out" in err, err
        assert "Traceback" not in err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
        lock = FolderLock("test", "", RuntimeError)
        lock.acquire(out)  # free again (a second eval is refused while one holds it)
        lock.release()

    # A stop between two of the results' renames.
    real = os.replace

    def replace(src: object, dst: object) -> None:
        real(src, dst)
        if Path(str(dst)).name == "detections.json":
            os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        assert main(argv) == 143
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and f"wrote {out / 'eval.json'}" in captured.out
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(earlier)  # no temp file left
    assert all(after[n] != earlier[n] for n in ("eval.json", "detections.json",
                                                "precision_recall.png")), after
    assert json.loads(after["eval.json"])["curve"] is True


def test_detect_judges_its_out_again_once_it_holds_it(tmp_path: Path, capsys, monkeypatch) -> None:
    """detect judged --out (eval's marker, a detections.json of another command) before its model
    loaded and took the folder's lock only after: an eval holding --out meanwhile, and done by
    then, had its detections.json replaced by detect's (eval.json then scored detections no longer
    there), exit 0. The folder is judged again under the lock: refused, eval's files kept (R73)."""
    out = tmp_path / "res"
    out.mkdir()
    evals = {EVAL_MARKER: b"eval's marker\n", "eval.json": b'{"classes": {}}\n',
             "detections.json": b'{"images": [], "positions": {}}\n'}
    real = detector_setup.build_detector

    def meanwhile(*args: object, **kwargs: object) -> object:
        for name, data in evals.items():  # an eval that held --out ends while the model loads
            (out / name).write_bytes(data)
        return real(*args, **kwargs)

    monkeypatch.setattr(detector_setup, "build_detector", meanwhile)
    code = main(["detect", str(FRAME), "--out", str(out), "--no-annotate",
                 "--config", str(PICODET_ONLY)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and f"--out {out} holds the results of sense-perception eval" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == evals


_KILLED_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from sense_perception.evaluation.outputs import write_results
out = Path(sys.argv[1])
write_results(out, {"run": "A"}, {"run": "A"}, b"plot A")
real = os.replace
def replace(src, dst):
    real(src, dst)
    if Path(str(dst)).name == "detections.json":
        os._exit(9)  # as kill -9: no clean-up, no finally
os.replace = replace
write_results(out, {"run": "B"}, {"run": "B"}, b"plot B")
"""


def test_a_kill_between_the_renames_of_evals_results_is_marked_and_named(tmp_path: Path,
                                                                          capsys, monkeypatch) -> None:
    """R80: a `kill -9` or a power cut between two of the renames that replace eval's three
    results left one run's detections.json beside the other's eval.json and plot, and nothing
    told that set from a whole one (R73's stop handling covers Ctrl-C and SIGTERM only).
    EVAL_INCOMPLETE.txt is on disk before the first rename and removed after the last: the mixed
    set says so, the next eval into the folder names it before any model runs, replaces the set
    whole, removes the marker and the killed run's temp files."""
    import subprocess
    import sys

    from sense_perception.evaluation.outputs import (EVAL_INCOMPLETE, incomplete_note,
                                                     write_results)
    from sense_perception.errors import SensePerceptionError

    out = tmp_path / "out"
    out.mkdir()
    root = Path(__file__).resolve().parents[1]
    child = subprocess.run([sys.executable, "-c", _KILLED_BETWEEN_RENAMES, str(out)],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(root)})
    assert child.returncode == 9, child.stderr
    assert json.loads((out / "detections.json").read_text()) == {"run": "B"}  # a mixed set
    assert json.loads((out / "eval.json").read_text()) == {"run": "A"}
    assert "may come from two runs" in (out / EVAL_INCOMPLETE).read_text()
    assert [p.name for p in out.glob(".*.tmp")]  # the killed run's temp files
    note = incomplete_note(out)
    assert note and EVAL_INCOMPLETE in note and "this run replaces them as one set" in note

    class Refused(SensePerceptionError):
        pass

    def checks_only(*args: object, **kwargs: object) -> None:
        kwargs["before_detection"]([FRAME])  # the run's checks before any model loads
        raise Refused("stopped here by the test")

    gt = write_gt(tmp_path, project([{"label": "car", "bbox_xyxy": CAR}]))
    monkeypatch.setattr(eval_run, "run_evaluation", checks_only)
    assert main(["eval", str(gt), "--out", str(out)]) == 2
    assert note in " ".join(capsys.readouterr().err.split())  # named to the user
    write_results(out, {"run": "C"}, {"run": "C"}, b"plot C")
    assert sorted(p.name for p in out.iterdir()) == [
        EVAL_MARKER, "detections.json", "eval.json", "precision_recall.png"]
    assert (out / "precision_recall.png").read_bytes() == b"plot C"
    assert incomplete_note(out) is None
