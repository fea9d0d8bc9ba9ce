"""Ground truth for ``sense-perception eval``: the project's JSON, KITTI ``label_2`` folders, COCO json.

Every format becomes a list of :class:`GroundTruthImage` with boxes in image pixels (xyxy) and
labels in the driving label set of the detector (``pedestrian``, ``car``, ...) or a label the
detector does not have (``cyclist``), plus a ``difficult`` flag: a difficult box counts neither as
a miss nor, when a detection lies on it, as a false positive.

Project format (``{"cameras": {KEY: {"image": PATH relative to the file, "boxes": [{"label",
"bbox_xyxy": [x1, y1, x2, y2], "difficult": bool (optional)}]}}}``; ``width``/``height`` optional,
read from the image when absent; optional ``"ignore_regions": [{"bbox_xyxy": [...]}]`` per camera:
areas where no detection counts, such as dense far traffic that could not be labelled; optional
top-level ``"categories": [NAME, ...]``: the classes the file labels, scored boxes or not, as a
COCO file's categories). Class names are read as COCO's are: ``person`` -> ``pedestrian``,
``Car`` -> ``car``.

Every value is checked (:mod:`.gt_fields`): a wrong type, a repeated or unknown id, a box wholly
outside its image is a :class:`~sense_perception.errors.GroundTruthError` naming the file, the entry
and the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.detection.labels import normalise_name
from ..errors import GroundTruthError
from .gt_fields import (IGNORE_ALL, count, flag, entry_key, identifier, label, mapping, read_json,
                        read_text, sequence, text, xywh, xyxy)

FORMATS = ("auto", "project", "kitti", "coco")

# KITTI object classes -> (label, always difficult). Vans and sitting persons are "neighbouring"
# classes in KITTI's own benchmark: a car or pedestrian detection on one is not penalised, and
# missing one is not a miss. Trams are not a driving class here; DontCare areas ignore everything.
KITTI_CLASSES: dict[str, tuple[str, bool]] = {
    "Car": ("car", False), "Van": ("car", True), "Truck": ("truck", False),
    "Pedestrian": ("pedestrian", False), "Person_sitting": ("pedestrian", True),
    "Cyclist": ("cyclist", False), "Tram": ("bus", True),
}
KITTI_DONT_CARE, KITTI_MISC = "DontCare", "Misc"
# KITTI's names read in another format (a KITTI set converted to COCO or the project's JSON keeps
# Van, Person_sitting, Tram and DontCare): read as in a KITTI folder, never as classes of their
# own, which made a car detection on a van and any detection in a DontCare area a false positive.
KITTI_NAMES_ELSEWHERE: dict[str, tuple[str, bool]] = {
    **{normalise_name(cls): (name, True) for cls, (name, always) in KITTI_CLASSES.items()
       if always},
    "dontcare": (IGNORE_ALL, True), "dont_care": (IGNORE_ALL, True)}
# KITTI's "hard" level: boxes below it (shorter, more occluded or truncated) are difficult.
KITTI_MIN_HEIGHT_PX, KITTI_MAX_OCCLUSION, KITTI_MAX_TRUNCATION = 25.0, 2, 0.5


@dataclass
class GroundTruthImage:
    """The labelled boxes of one image.

    Attributes:
        key: the image's name in the ground truth (camera key, file stem).
        path: the image file.
        width, height: image size in pixels (0 when the file does not say; read from the image).
        boxes: (G, 4) float64 xyxy pixels.
        labels: G labels.
        difficult: (G,) bool.
        declared: classes its ground truth says it labels, boxes or not (a COCO file's
            categories): their detections are scored where no box has that class too.
        clipped: boxes that reached past the image's edge, cut to it by :func:`clip_to_image`
            (ignore regions are cut too, not counted).
        ids: per box, the name its file gives it, where the format has one (a COCO
            annotation's id, a KITTI box's line in its label file); empty for the project format,
            whose boxes are named by their place in the camera's ``boxes``.
        id_name: what ``ids`` are, the key naming a missed box in eval.json (``annotation_id``,
            ``line``); empty without ids.
    """

    key: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: list[str]
    difficult: np.ndarray
    declared: tuple[str, ...] = ()
    clipped: int = 0
    ids: tuple[Any, ...] = ()
    id_name: str = ""

    def box_name(self, index: int) -> dict[str, Any]:
        """How eval.json names box ``index`` of this image: its place (``box``) and, where the
        file numbers its boxes, that number (``annotation_id`` of a COCO box, ``line`` of a KITTI
        one), by which a user finds it in the file."""
        name: dict[str, Any] = {"image": self.key, "box": index}
        if self.id_name:
            name[self.id_name] = self.ids[index]
        return name

    @property
    def heights(self) -> np.ndarray:
        """(G,) box heights in pixels."""
        return self.boxes[:, 3] - self.boxes[:, 1]


def _image(key: str, path: Path, width: int, height: int, rows: list[tuple[str, list, bool]],
           where: str, declared: tuple[str, ...] = (), ids: tuple[Any, ...] = (),
           id_name: str = "") -> GroundTruthImage:
    boxes = np.array([r[1] for r in rows], np.float64).reshape(-1, 4)
    bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    if len(bad):
        raise GroundTruthError(f"{where}: box {int(bad[0])} {boxes[bad[0]].tolist()} is empty "
                               "(bbox_xyxy must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1)")
    return GroundTruthImage(key, path, int(width), int(height), boxes, [r[0] for r in rows],
                            np.array([r[2] for r in rows], bool), declared, ids=ids,
                            id_name=id_name)


def animal_labels(image: GroundTruthImage) -> GroundTruthImage:
    """``image`` with COCO's animal classes (dog, horse, ...) named ``animal``, as a detector
    with ``detector.animals`` reports them (its one label for all ten)."""
    from ..core.detection.labels import ANIMAL, ANIMAL_CLASSES

    def name(label: str) -> str:
        return ANIMAL if label in ANIMAL_CLASSES else label

    return replace(image, labels=[name(lb) for lb in image.labels],
                   declared=tuple(dict.fromkeys(name(lb) for lb in image.declared)))


def check_inside(image: GroundTruthImage, where: str = "") -> None:
    """Refuse a box that lies wholly outside its image (it could never be found, and would count
    as a miss): the labels belong to another image or another resolution.

    Raises:
        GroundTruthError: naming the image and the box.
    """
    if not (image.width and image.height) or not len(image.boxes):
        return
    b = image.boxes
    outside = np.flatnonzero((b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= image.width)
                             | (b[:, 1] >= image.height))
    if len(outside):
        i = int(outside[0])
        kind = "ignore region" if image.labels[i] == IGNORE_ALL else f"{image.labels[i]} box"
        raise GroundTruthError(
            f"{where or image.key}: {kind} {i} {b[i].tolist()} lies wholly outside the "
            f"{image.width}x{image.height} image {image.path}"
            + (f" (and {len(outside) - 1} more)" if len(outside) > 1 else "")
            + "; fix: the boxes must be in that image's pixels")


def clip_to_image(image: GroundTruthImage) -> None:
    """Cut every box to its image, as the detector's boxes are, and count those cut (ignore
    regions are cut, not counted).

    Boxes projected from 3-D cuboids (a car half out of the view) reach past the edge; scored
    whole, a car found exactly on its visible part had an IoU of its visible share (a half-out
    car: 0.5, missed at ``--iou 0.5``) and a height band of a size nobody sees. Call after
    :func:`check_inside` (a box wholly outside is an error, not clipped to nothing).
    """
    if not (image.width and image.height) or not len(image.boxes):
        return
    b = image.boxes
    limit = np.array([image.width, image.height, image.width, image.height], np.float64)
    cut = np.clip(b, 0.0, limit)
    # ignore regions are cut too, but they are no ground-truth box: eval's clipped_boxes and its
    # line "N ground-truth box(es) reached past the image's edge" counted them
    boxes = np.array([name != IGNORE_ALL for name in image.labels], bool)
    image.clipped = int(np.count_nonzero((cut != b).any(axis=1) & boxes))
    image.boxes = cut


def load_project(path: Path, doc: Any = None,
                 image_dir: Path | None = None) -> list[GroundTruthImage]:
    """Read the project's JSON format (see the module docstring); ``doc``: the parsed file;
    ``image_dir``: the folder the image paths are relative to (default: the file's folder)."""
    doc = read_json(path) if doc is None else doc
    cameras = doc.get("cameras") if isinstance(doc, dict) else None
    if not isinstance(cameras, dict) or not cameras:
        raise GroundTruthError(f"{path}: expected {{\"cameras\": {{KEY: {{\"image\": ..., "
                               "\"boxes\": [...]}}} with at least one camera")
    declared = _project_categories(path, doc)
    images = []
    for name, cam in cameras.items():
        where = f"{path}: cameras.{entry_key(name, f'{path}: cameras')}"
        if not isinstance(cam, dict) or "image" not in cam or "boxes" not in cam:
            raise GroundTruthError(f"{where}: needs 'image' (path relative to the file) and "
                                   "'boxes'")
        image = text(cam["image"], f"{where}.image")
        rows = []
        for i, box in enumerate(sequence(cam["boxes"], f"{where}.boxes", "boxes")):
            at = f"{where}.boxes[{i}]"
            if not isinstance(box, dict) or "label" not in box or "bbox_xyxy" not in box:
                raise GroundTruthError(f"{at}: needs 'label' and 'bbox_xyxy'")
            cls, difficult = _read_as_kitti(label(box["label"], f"{at}.label"),
                                            flag(box.get("difficult", False), f"{at}.difficult"))
            if declared is not None and cls != IGNORE_ALL and cls not in declared:
                raise GroundTruthError(
                    f"{at}.label: {box['label']!r} ({cls}) is not one of the file's 'categories' "
                    f"({', '.join(declared) or 'none'}); fix: add it to 'categories' or correct "
                    "the label")
            rows.append((cls, xyxy(box["bbox_xyxy"], f"{at}.bbox_xyxy"), difficult))
        regions = sequence(cam.get("ignore_regions", []), f"{where}.ignore_regions", "regions")
        for i, region in enumerate(regions):
            if not isinstance(region, dict) or "bbox_xyxy" not in region:
                raise GroundTruthError(f"{where}.ignore_regions[{i}]: needs 'bbox_xyxy': "
                                       "[x1, y1, x2, y2]")
            rows.append((IGNORE_ALL, xyxy(region["bbox_xyxy"],
                                          f"{where}.ignore_regions[{i}].bbox_xyxy"), True))
        width, height = (count(cam.get(side), f"{where}.{side}") for side in ("width", "height"))
        try:
            resolved = ((image_dir or path.parent) / image).resolve()
        except (OSError, ValueError) as exc:
            raise GroundTruthError(f"{where}.image: {_show_path(image)} is not a usable path: "
                                   f"{exc}") from None
        images.append(_image(name, resolved, width, height, rows, where, declared or ()))
    return images


def _project_categories(path: Path, doc: dict) -> tuple[str, ...] | None:
    """The project file's optional ``"categories": [NAME, ...]``: the classes it labels, boxes or
    not, read as its box labels are (``person`` -> ``pedestrian``, ``rider`` -> ``cyclist``,
    ``dontcare`` none); None where the file has none.

    As a COCO file's categories: a listed class with no box in any image is scored all the same
    (its detections false positives). The key was read by nobody, so a pedestrian set's
    pedestrian detections went unscored where no frame had a pedestrian.

    Raises:
        GroundTruthError: not a list of class names.
    """
    if "categories" not in doc:
        return None
    where = f"{path}: categories"
    names = sequence(doc["categories"], where, "class names such as [\"pedestrian\", \"car\"]")
    read = {_read_as_kitti(label(name, f"{where}[{i}]"), False)[0] for i, name in enumerate(names)}
    return tuple(sorted(read - {IGNORE_ALL}))


def _read_as_kitti(name: str, difficult: bool) -> tuple[str, bool]:
    """(label, difficult) of a class name outside a KITTI folder: KITTI's neighbouring classes
    (``van``, ``person_sitting``, ``tram``) are difficult cars, pedestrians and buses and
    ``dontcare`` an ignore region, as in a KITTI folder (:data:`KITTI_NAMES_ELSEWHERE`)."""
    mapped = KITTI_NAMES_ELSEWHERE.get(name)
    return (mapped[0], True) if mapped else (name, difficult)


def check_one_entry_per_image(images: list[GroundTruthImage], where: str) -> None:
    """Refuse two entries (cameras, COCO images) naming one image file: their boxes were scored
    apart on the same pixels, the detections counted twice and each entry's objects false
    positives of the other.

    Raises:
        GroundTruthError: naming both entries and the file.
    """
    seen: dict[Path, str] = {}
    for g in images:
        if g.path in seen:
            raise GroundTruthError(f"{where}: image {g.key} is the file of image {seen[g.path]} "
                                   f"too ({g.path}); an image is scored once: put all its boxes "
                                   "in one entry")
        seen[g.path] = g.key


def _show_path(value: str) -> str:
    return repr(value) if len(value) <= 60 else repr(value[:57] + "...")


def _kitti_row(file: Path, n: int, parts: list[str]) -> tuple[str, list[float], bool] | None:
    """One KITTI label line as (label, xyxy, difficult); None for a class left out (Misc)."""
    where = f"{file}:{n}"
    if len(parts) < 15:
        raise GroundTruthError(f"{where}: a KITTI label line has 15 fields, got {len(parts)}")

    def field(index: int, name: str) -> float:
        try:
            value = float(parts[index])
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise GroundTruthError(f"{where}: field {index + 1} ({name}) must be a number, got "
                                   f"{parts[index][:40]!r}")
        return value

    cls = parts[0]
    truncated, occluded = field(1, "truncated"), field(2, "occluded")
    box = [field(4 + i, name) for i, name in enumerate(("left", "top", "right", "bottom"))]
    if not (box[2] > box[0] and box[3] > box[1]):  # named by its line, not its place in a list
        raise GroundTruthError(f"{where}: the box (fields 5-8: left, top, right, bottom) "
                               f"{' '.join(parts[4:8])} has no area: right must exceed left and "
                               "bottom top")
    if cls == KITTI_DONT_CARE:
        return IGNORE_ALL, box, True
    if cls == KITTI_MISC:
        return None
    # Another set's class ('Bus', 'person') is read as a project label is, so that it is scored
    # or listed as not scored, never dropped unseen.
    name, always = KITTI_CLASSES.get(cls) or (label(cls, f"{where}: field 1 (class)"), False)
    hard = (box[3] - box[1] < KITTI_MIN_HEIGHT_PX or occluded > KITTI_MAX_OCCLUSION
            or truncated > KITTI_MAX_TRUNCATION)
    return name, box, always or hard


def load_kitti(label_dir: Path, image_dir: Path | None = None) -> list[GroundTruthImage]:
    """Read a KITTI object ``label_2`` folder; images in ``image_dir`` (default: ``image_2`` beside)."""
    # Every *.txt is a label file: one that is not a regular file (a FIFO, a directory, a broken
    # link) is refused by read_text, never passed over: its image would go unscored unnoticed.
    files = sorted(label_dir.glob("*.txt"))
    if not files:
        raise GroundTruthError(f"{label_dir}: no KITTI label files (*.txt)")
    image_dir = image_dir or label_dir.parent / "image_2"
    images = []
    for file in files:
        rows, lines = [], []
        for n, line in enumerate(read_text(file).splitlines(), 1):
            parts = line.split()
            row = _kitti_row(file, n, parts) if parts else None
            if row is not None:
                rows.append(row)
                lines.append(n)  # a box's place among the rows skips Misc and blank lines
        image = _find_image(image_dir, file.stem)
        images.append(_image(file.stem, image, 0, 0, rows, str(file), ids=tuple(lines),
                             id_name="line"))
    return images


def _find_image(folder: Path, stem: str) -> Path:
    for suffix in (".png", ".jpg", ".jpeg"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise GroundTruthError(f"no image {stem}.png/.jpg in {folder}; fix: pass --images DIR")


def _unique(entries: list, key: str, where: str, what: str,
            shape: str = "") -> dict[Any, int]:
    """Position of every ``entries[i][key]``; a repeated id is an error (it would relabel or
    double boxes, or name two boxes alike); ``shape``: what an entry holds, for the error."""
    seen: dict[Any, int] = {}
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        mapping(entry, at, shape or f"with '{key}'")
        if key not in entry:
            raise GroundTruthError(f"{at}: needs '{key}'")
        value = identifier(entry[key], f"{at}.{key}")
        if value in seen:
            raise GroundTruthError(f"{at}: {what} id {value!r} is also {where}[{seen[value]}]; "
                                   "ids must be unique")
        seen[value] = i
    return seen


def load_coco(path: Path, image_dir: Path | None = None, doc: Any = None) -> list[GroundTruthImage]:
    """Read COCO instances json; category names map to the driving labels (person -> pedestrian).

    Ids are checked: categories, images and annotations must have unique ids (a missed box is
    named by its annotation id), and every annotation must name an image and a category that
    exist.
    """
    doc = read_json(path) if doc is None else doc
    mapping(doc, str(path), "with images, annotations and categories (COCO instances)")
    for part in ("images", "annotations", "categories"):
        if part not in doc:
            raise GroundTruthError(f"{path}: not a COCO instances file: no '{part}' (a COCO "
                                   "instances json has images, annotations and categories)")
        sequence(doc[part], f"{path}: {part}", part)
    if not doc["images"]:
        raise GroundTruthError(f"{path}: 'images' is empty: nothing to evaluate")
    categories = doc["categories"]
    by_category = _unique(categories, "id", f"{path}: categories", "category")
    names = {}
    for cid, i in by_category.items():
        if "name" not in categories[i]:
            raise GroundTruthError(f"{path}: categories[{i}]: needs 'name'")
        names[cid] = label(categories[i]["name"], f"{path}: categories[{i}].name")
    entries = doc["images"]
    by_image = _unique(entries, "id", f"{path}: images", "image")
    rows: dict[Any, list] = {image_id: [] for image_id in by_image}
    ids: dict[Any, list] = {image_id: [] for image_id in by_image}
    # eval.json names a missed COCO box by its annotation id: every annotation has one, unique
    _unique(doc["annotations"], "id", f"{path}: annotations", "annotation",
            "with id, image_id, category_id and bbox")
    for i, ann in enumerate(doc["annotations"]):
        at = f"{path}: annotations[{i}]"
        for key in ("image_id", "category_id", "bbox"):
            if key not in ann:
                raise GroundTruthError(f"{at}: needs '{key}'")
        image_id = identifier(ann["image_id"], f"{at}.image_id")
        if image_id not in rows:
            raise GroundTruthError(f"{at}: image_id {image_id!r} is not the id of any entry of "
                                   "'images'; its boxes would be lost")
        category = identifier(ann["category_id"], f"{at}.category_id")
        if category not in names:
            raise GroundTruthError(f"{at}: category_id {category!r} is not the id of any entry "
                                   f"of 'categories' (ids: {sorted(map(str, names))[:10]})")
        box = xywh(ann["bbox"], f"{at}.bbox")
        difficult = (flag(ann.get("iscrowd", 0), f"{at}.iscrowd")
                     or flag(ann.get("ignore", 0), f"{at}.ignore"))
        name, difficult = _read_as_kitti(names[category], difficult)
        rows[image_id].append((name, box, difficult))
        ids[image_id].append(ann["id"])
    # The categories say what the file labels: a category without a single box (no pedestrian
    # in a motorway set) was not scored, its detections never false positives, without a word.
    declared = tuple(sorted({_read_as_kitti(n, False)[0] for n in names.values()} - {IGNORE_ALL}))
    image_dir = image_dir or path.parent
    images = []
    for image_id, i in by_image.items():
        entry, at = entries[i], f"{path}: images[{i}]"
        if "file_name" not in entry:
            raise GroundTruthError(f"{at}: needs 'file_name'")
        file_name = text(entry["file_name"], f"{at}.file_name")
        width, height = (count(entry.get(side), f"{at}.{side}") for side in ("width", "height"))
        images.append(_image(str(image_id), (image_dir / file_name).resolve(), width, height,
                             rows[image_id], f"{path}: image {image_id}", declared,
                             tuple(ids[image_id]), "annotation_id"))
    return images


def detect_format(path: Path) -> str:
    """``kitti`` for a folder, ``coco`` for a json with ``annotations``, else ``project``."""
    if path.is_dir():
        return "kitti"
    head = read_json(path)
    return "coco" if isinstance(head, dict) and "annotations" in head else "project"


def load_ground_truth(path: Path, fmt: str = "auto",
                      image_dir: Path | None = None) -> list[GroundTruthImage]:
    """Read ground truth in ``fmt`` (one of :data:`FORMATS`; ``auto`` guesses from the path).

    Raises:
        GroundTruthError: unreadable or malformed, naming the file, the entry and the field.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise GroundTruthError(f"unknown ground-truth format {fmt!r}; use one of {', '.join(FORMATS)}")
    if image_dir is not None and not Path(image_dir).is_dir():
        what = "is not a directory" if Path(image_dir).exists() else "does not exist"
        raise GroundTruthError(f"--images {image_dir} {what}; give the folder of the images")
    if fmt == "kitti" or (fmt == "auto" and path.is_dir()):
        if not path.is_dir():
            raise GroundTruthError(f"{path}: --format kitti needs a label_2 folder")
        images = load_kitti(path, image_dir)
    else:
        doc = read_json(path)
        if fmt == "coco" or (fmt == "auto" and isinstance(doc, dict) and "annotations" in doc):
            images = load_coco(path, image_dir, doc)
        else:
            images = load_project(path, doc, image_dir)
    return images
