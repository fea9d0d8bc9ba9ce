"""What ``sense-perception eval`` reads: each image once per pass, the ground truth's every key.

Defects of an earlier round, each reproduced on the old code first: the header check opened every
image twice and decoded a PNG whole to look for its EXIF orientation; the project format's
``categories`` went unread; a Cityscapes ``rider`` was a class of its own, not a rider; a missed
COCO box was named by its place in its image, not by its annotation id.
"""
from __future__ import annotations

import builtins
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from sense_perception.core.imaging.frame_guard import InputLimits
from sense_perception.core.imaging.image_file import probe_image_header, read_image_file
from sense_perception.evaluation.ground_truth import GroundTruthImage, load_ground_truth
from sense_perception.evaluation.report import to_dict
from sense_perception.evaluation.run import check_images
from sense_perception.evaluation.scoring import ImageDetections, evaluate


def _png_with_late_exif(path: Path, orientation: int) -> None:
    """A 40x20 PNG whose ``eXIf`` chunk lies after its pixels (where Pillow looked only after
    decoding them; OpenCV applies it wherever it lies)."""
    ok, buf = cv2.imencode(".png", np.zeros((20, 40, 3), np.uint8))
    assert ok
    data = buf.tobytes()
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()[6:]  # without "Exif\0\0", as in a PNG
    chunk = (struct.pack(">I", len(payload)) + b"eXIf" + payload
             + struct.pack(">I", zlib.crc32(b"eXIf" + payload)))
    end = data.rfind(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])


def _entry(path: Path, width: int = 0, height: int = 0) -> GroundTruthImage:
    return GroundTruthImage(path.stem, path, width, height, np.array([[1.0, 1.0, 10.0, 10.0]]),
                            ["car"], np.zeros(1, bool))


def test_the_header_check_opens_each_image_once_and_decodes_no_pixel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.zeros((20, 40, 3), np.uint8))
    turned = tmp_path / "turned.png"
    _png_with_late_exif(turned, 6)
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    def py_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    def no_decode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the header check decoded an image's pixels")

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", py_open)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    skipped: list[dict[str, str]] = []
    kept = check_images([_entry(plain), _entry(turned)], tmp_path / "gt.json", InputLimits(),
                        skipped)
    monkeypatch.undo()
    assert not skipped and len(kept) == 2
    assert sorted(opened) == sorted([str(plain), str(turned)]), opened  # once each
    # the size as the detector sees it: the late eXIf turns the image, as OpenCV turns it
    assert (kept[0].width, kept[0].height) == (40, 20)
    assert (kept[1].width, kept[1].height) == (20, 40)
    assert read_image_file(turned).shape[:2] == (40, 20)
    assert probe_image_header(turned).turned and not probe_image_header(plain).turned


def _write(tmp_path: Path, doc: dict, name: str = "gt.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


PERSON_BOX = [100.0, 100.0, 140.0, 200.0]
CAR_BOX = [300.0, 300.0, 400.0, 380.0]
WALKER_BOX = [500.0, 100.0, 540.0, 200.0]
DETECTOR = ("pedestrian", "bicycle", "car", "motorcycle", "bus", "truck")


def _dets(*rows: tuple[list[float], float, str]) -> ImageDetections:
    return ImageDetections(np.array([r[0] for r in rows], np.float64).reshape(-1, 4),
                           np.array([r[1] for r in rows], np.float64), [r[2] for r in rows])


@pytest.mark.parametrize("name", ["rider", "Rider", "bicyclist", "motorcyclist"])
def test_a_rider_of_another_label_set_is_read_as_kitti_s_cyclist(tmp_path: Path, name: str) -> None:
    """A Cityscapes (or BDD100K) ``rider`` was a class of its own: not scored, and the pedestrian
    detection on it a false positive; it is KITTI's cyclist now, an ignore region for pedestrian,
    bicycle and motorcycle detections, in the project format and in COCO alike."""
    boxes = [{"label": name, "bbox_xyxy": PERSON_BOX}, {"label": "car", "bbox_xyxy": CAR_BOX},
             {"label": "pedestrian", "bbox_xyxy": WALKER_BOX}]
    gt_project = load_ground_truth(_write(tmp_path, {"cameras": {"a": {
        "image": "a.jpg", "width": 640, "height": 480, "boxes": boxes}}}))
    gt_coco = load_ground_truth(_write(tmp_path, {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
        "categories": [{"id": 1, "name": name}, {"id": 2, "name": "car"},
                       {"id": 3, "name": "person"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [100, 100, 40, 100]},
                        {"id": 6, "image_id": 1, "category_id": 2, "bbox": [300, 300, 100, 80]},
                        {"id": 7, "image_id": 1, "category_id": 3, "bbox": [500, 100, 40, 100]}]},
        "coco.json"))
    on_rider = _dets((PERSON_BOX, 0.9, "pedestrian"), ([98, 150, 142, 202], 0.8, "bicycle"),
                     (CAR_BOX, 0.9, "car"), (WALKER_BOX, 0.9, "pedestrian"))
    for gt in (gt_project, gt_coco):
        assert gt[0].labels[0] == "cyclist"
        result = evaluate(gt, [on_rider], None, DETECTOR, 0.5)
        assert result.not_scored == ["cyclist"]
        # the pedestrian detection on the rider is neither a hit nor a false positive
        assert result.fp == 0 and result.classes["pedestrian"].tp == 1, to_dict(result)
        assert result.classes["car"].tp == 1


def test_a_missed_box_is_named_as_its_file_names_it(tmp_path: Path) -> None:
    """A missed COCO box was named by its place among its image's annotations (1 for the
    annotation with id 57 below), a KITTI box by its place among the label lines that are boxes
    (Misc lines skipped); eval.json gives the annotation id and the line now, beside the place."""
    coco = _write(tmp_path, {
        "images": [{"id": 3, "file_name": "a.jpg", "width": 640, "height": 480}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [{"id": 101, "image_id": 3, "category_id": 1, "bbox": [300, 300, 100, 80]},
                        {"id": 57, "image_id": 3, "category_id": 1, "bbox": [10, 10, 100, 80]}]},
        "coco.json")
    found_first = _dets((CAR_BOX, 0.9, "car"))
    result = evaluate(load_ground_truth(coco), [found_first], None, DETECTOR, 0.5)
    assert to_dict(result)["classes"]["car"]["missed"] == [
        {"image": "3", "box": 1, "annotation_id": 57}]

    labels = tmp_path / "training" / "label_2"
    labels.mkdir(parents=True)
    (tmp_path / "training" / "image_2").mkdir()
    cv2.imwrite(str(tmp_path / "training" / "image_2" / "000001.png"), np.zeros((480, 640, 3), np.uint8))
    (labels / "000001.txt").write_text(
        "Misc 0 0 0 5 5 50 50 0 0 0 0 0 0 0\n\n"
        "Car 0 0 0 300 300 400 380 0 0 0 0 0 0 0\n"
        "Car 0 0 0 10 10 110 90 0 0 0 0 0 0 0\n")
    result = evaluate(load_ground_truth(labels), [found_first], None, DETECTOR, 0.5)
    assert to_dict(result)["classes"]["car"]["missed"] == [
        {"image": "000001", "box": 1, "line": 4}]

    project = _write(tmp_path, {"cameras": {"a": {"image": "a.jpg", "width": 640, "height": 480,
                                                  "boxes": [{"label": "car", "bbox_xyxy": CAR_BOX},
                                                            {"label": "car", "bbox_xyxy": [10, 10, 110, 90]}]}}})
    result = evaluate(load_ground_truth(project), [found_first], None, DETECTOR, 0.5)
    assert to_dict(result)["classes"]["car"]["missed"] == [{"image": "a", "box": 1}]


@pytest.mark.parametrize("annotations,words", [
    ([{"image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5]}], r"annotations\[0\]: needs 'id'"),
    ([{"id": 4, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5]},
      {"id": 4, "image_id": 3, "category_id": 1, "bbox": [9, 9, 5, 5]}],
     r"annotations\[1\]: annotation id 4 is also .*annotations\[0\]; ids must be unique")])
def test_coco_annotations_need_unique_ids(tmp_path: Path, annotations: list, words: str) -> None:
    from sense_perception.errors import GroundTruthError

    coco = _write(tmp_path, {"images": [{"id": 3, "file_name": "a.jpg"}],
                             "categories": [{"id": 1, "name": "car"}], "annotations": annotations})
    with pytest.raises(GroundTruthError, match=words):
        load_ground_truth(coco)


def test_the_project_format_s_categories_are_scored_boxes_or_not(tmp_path: Path) -> None:
    """``categories`` was read by nobody: a class the file labels but no frame shows (no
    pedestrian on a motorway) went unscored, its detections no false positives. It means what a
    COCO file's categories mean now."""
    doc = {"categories": ["person", "car", "Van", "DontCare", "rider"],
           "cameras": {"a": {"image": "a.jpg", "width": 640, "height": 480,
                             "boxes": [{"label": "car", "bbox_xyxy": CAR_BOX}]}}}
    gt = load_ground_truth(_write(tmp_path, doc))
    assert gt[0].declared == ("car", "cyclist", "pedestrian")
    result = evaluate(gt, [_dets((CAR_BOX, 0.9, "car"), (PERSON_BOX, 0.8, "pedestrian"),
                                 ([0, 0, 50, 50], 0.7, "bus"))], None, DETECTOR, 0.5)
    assert list(result.classes) == ["pedestrian", "car"]  # the bus is no class the file labels
    assert (result.classes["pedestrian"].gt, result.classes["pedestrian"].fp) == (0, 1)
    assert result.not_scored == []  # cyclist: declared, but no box has it
    # without the key, only classes with a box are scored (as before)
    del doc["categories"]
    assert list(evaluate(load_ground_truth(_write(tmp_path, doc)), [_dets()], None, DETECTOR,
                         0.5).classes) == ["car"]


@pytest.mark.parametrize("categories,words", [
    ("car", r"categories: expected a list of class names"),
    ([{"id": 1, "name": "car"}], r"categories\[0\]: expected a class name"),
    (["pedestrian"], r"cameras\.a\.boxes\[0\]\.label: 'Car' \(car\) is not one of the file's "
                     r"'categories' \(pedestrian\); fix: add it"),
])
def test_project_categories_that_cannot_be_read_or_miss_a_label_are_refused(
        tmp_path: Path, categories: object, words: str) -> None:
    from sense_perception.errors import GroundTruthError

    doc = {"categories": categories,
           "cameras": {"a": {"image": "a.jpg", "boxes": [{"label": "Car", "bbox_xyxy": CAR_BOX}]}}}
    with pytest.raises(GroundTruthError, match=words):
        load_ground_truth(_write(tmp_path, doc))


@pytest.mark.parametrize("fault", ["jpeg_prefix", "bad_crc"])
def test_a_png_exif_chunk_that_opencv_refuses_turns_nothing_in_the_header_check(
        tmp_path: Path, fault: str) -> None:
    """R50: libpng (OpenCV's reader) refuses a PNG's eXIf chunk that keeps a JPEG's
    ``Exif\\0\\0`` prefix ("eXIf: invalid") or whose CRC is wrong ("eXIf: CRC error"), so the
    detector sees the image as stored; the header check (R46) read past the prefix and ignored
    the CRC, and said the image was turned: eval refused a ground truth of the right size
    ("... is 20x40 as shown") and sized a KITTI image with its sides swapped."""
    ok, buf = cv2.imencode(".png", np.zeros((20, 40, 3), np.uint8))
    assert ok
    data = buf.tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    payload = exif.tobytes()
    assert payload.startswith(b"Exif\0\0")
    if fault == "bad_crc":
        payload = payload[6:]  # a valid payload, as in a PNG
    crc = zlib.crc32(b"eXIf" + payload) ^ (fault == "bad_crc")
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", crc)
    path = tmp_path / f"{fault}.png"
    at = data.find(b"IDAT") - 4
    path.write_bytes(data[:at] + chunk + data[at:])
    height, width = read_image_file(path).shape[:2]
    assert (width, height) == (40, 20)  # OpenCV: as stored
    assert probe_image_header(path).shown == (40, 20)
    skipped: list[dict[str, str]] = []
    kept = check_images([_entry(path, 40, 20)], tmp_path / "gt.json", InputLimits(), skipped)
    assert len(kept) == 1 and not skipped


def _tiff_orientation_block(orientation: bytes, kind: int) -> bytes:
    """A big-endian EXIF block (TIFF header on) whose one IFD entry is an Orientation of type
    ``kind`` with the value field ``orientation`` (4 bytes)."""
    return (b"MM" + struct.pack(">HI", 42, 8) + struct.pack(">H", 1)
            + struct.pack(">HHI", 0x0112, kind, 1) + orientation + b"\0\0\0\0")


def _png_chunk(kind: bytes, payload: bytes, good_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + payload) ^ (not good_crc)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _with_exif(fmt: str, case: str) -> bytes:
    """A 40x20 image whose EXIF OpenCV and the header check once read apart (R54)."""
    ok, buf = cv2.imencode(f".{fmt}", np.zeros((20, 40, 3), np.uint8))
    assert ok
    data = buf.tobytes()
    six = _tiff_orientation_block(struct.pack(">HH", 6, 0), 3)
    # a LONG 6, big-endian: OpenCV reads the first 16-bit word of the field, 0
    block = _tiff_orientation_block(struct.pack(">I", 6), 4) if case == "long_6" else six
    if fmt == "jpg":
        segment = b"Exif\0\0" + block
        return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]
    chunks = {"bad_crc_then_good": _png_chunk(b"eXIf", six, good_crc=False) + _png_chunk(b"eXIf", six),
              "jpeg_prefix_then_good": _png_chunk(b"eXIf", b"Exif\0\0" + six) + _png_chunk(b"eXIf", six),
              "too_short_then_good": _png_chunk(b"eXIf", b"M") + _png_chunk(b"eXIf", six),
              "long_6": _png_chunk(b"eXIf", block)}[case]
    at = data.find(b"IDAT") - 4
    return data[:at] + chunks + data[at:]


@pytest.mark.parametrize("fmt, case", [
    ("png", "bad_crc_then_good"), ("png", "jpeg_prefix_then_good"),
    ("png", "too_short_then_good"), ("png", "long_6"), ("jpg", "long_6")])
def test_the_header_check_reads_the_exif_turn_opencv_applies(
        tmp_path: Path, fmt: str, case: str) -> None:
    """R54: libpng discards an ``eXIf`` chunk with a wrong CRC, under 2 bytes or without a byte
    order mark and takes the next one, which OpenCV applies; the chunk walk stopped at the first
    and said not turned. OpenCV reads an Orientation's value as the first 16-bit word of its
    field whatever type it declares (a big-endian LONG 6: 0, not turned), where Pillow read 6.
    Either way eval refused a ground truth of the size the detector sees ("... is 40x20 as
    shown") or sized a KITTI image with its sides swapped."""
    path = tmp_path / f"{case}.{fmt}"
    path.write_bytes(_with_exif(fmt, case))
    height, width = read_image_file(path).shape[:2]  # as OpenCV gives it to the detector
    assert (width, height) == ((20, 40) if case != "long_6" else (40, 20))
    assert probe_image_header(path).shown == (width, height)
    skipped: list[dict[str, str]] = []
    kept = check_images([_entry(path, width, height)], tmp_path / "gt.json", InputLimits(), skipped)
    assert len(kept) == 1 and not skipped
