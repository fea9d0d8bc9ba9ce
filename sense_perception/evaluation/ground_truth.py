"""Ground truth for ``sense-perception eval``: the project's JSON, KITTI ``label_2`` folders, COCO json.

Every format becomes a list of :class:`GroundTruthImage` with boxes in image pixels (xyxy) and
labels in the driving label set of the detector (``pedestrian``, ``car``, ...) or a label the
detector does not have (``cyclist``), plus a ``difficult`` flag: a difficult box counts neither as
a miss nor, when a detection lies on it, as a false positive.

Project format (``{"cameras": {KEY: {"image": PATH relative to the file, "boxes": [{"label",
"bbox_xyxy": [x1, y1, x2, y2], "difficult": bool (optional)}]}}}``; ``width``/``height`` optional,
read from the image when absent; optional ``"ignore_regions": [{"bbox_xyxy": [...]}]`` per camera:
areas where no detection counts, such as dense far traffic that could not be labelled).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.detection.labels import driving_label, normalise_name
from ..errors import GroundTruthError

FORMATS = ("auto", "project", "kitti", "coco")

# KITTI object classes -> (label, always difficult). Vans and sitting persons are "neighbouring"
# classes in KITTI's own benchmark: a car or pedestrian detection on one is not penalised, and
# missing one is not a miss. Trams are not a driving class here; DontCare areas ignore everything.
KITTI_CLASSES: dict[str, tuple[str, bool]] = {
    "Car": ("car", False), "Van": ("car", True), "Truck": ("truck", False),
    "Pedestrian": ("pedestrian", False), "Person_sitting": ("pedestrian", True),
    "Cyclist": ("cyclist", False), "Tram": ("bus", True),
}
KITTI_DONT_CARE = "DontCare"
# KITTI's "hard" level: boxes below it (shorter, more occluded or truncated) are difficult.
KITTI_MIN_HEIGHT_PX, KITTI_MAX_OCCLUSION, KITTI_MAX_TRUNCATION = 25.0, 2, 0.5
IGNORE_ALL = "*"  # label of an area where no detection counts (KITTI DontCare)


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
    """

    key: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: list[str]
    difficult: np.ndarray

    @property
    def heights(self) -> np.ndarray:
        """(G,) box heights in pixels."""
        return self.boxes[:, 3] - self.boxes[:, 1]


def _image(key: str, path: Path, width: int, height: int, rows: list[tuple[str, list, bool]],
           where: str) -> GroundTruthImage:
    boxes = np.array([r[1] for r in rows], np.float64).reshape(-1, 4)
    if len(boxes) and not np.isfinite(boxes).all():
        raise GroundTruthError(f"{where}: a box has a non-finite coordinate")
    bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    if len(bad):
        raise GroundTruthError(f"{where}: box {int(bad[0])} {boxes[bad[0]].tolist()} is empty "
                               "(bbox_xyxy must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1)")
    return GroundTruthImage(key, path, int(width), int(height), boxes, [r[0] for r in rows],
                            np.array([r[2] for r in rows], bool))


def load_project(path: Path) -> list[GroundTruthImage]:
    """Read the project's JSON format (see the module docstring)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"{path}: not readable JSON: {exc}") from exc
    cameras = doc.get("cameras") if isinstance(doc, dict) else None
    if not isinstance(cameras, dict) or not cameras:
        raise GroundTruthError(f"{path}: expected {{\"cameras\": {{KEY: {{\"image\": ..., "
                               "\"boxes\": [...]}}}}}} with at least one camera")
    images = []
    for key, cam in cameras.items():
        where = f"{path}: cameras.{key}"
        if not isinstance(cam, dict) or "image" not in cam or "boxes" not in cam:
            raise GroundTruthError(f"{where}: needs 'image' (path relative to the file) and "
                                   "'boxes'")
        rows = []
        for i, box in enumerate(cam["boxes"]):
            if not isinstance(box, dict) or "label" not in box or "bbox_xyxy" not in box:
                raise GroundTruthError(f"{where}.boxes[{i}]: needs 'label' and 'bbox_xyxy'")
            xyxy = box["bbox_xyxy"]
            if not isinstance(xyxy, (list, tuple)) or len(xyxy) != 4:
                raise GroundTruthError(f"{where}.boxes[{i}].bbox_xyxy: expected [x1, y1, x2, y2], "
                                       f"got {xyxy!r}")
            rows.append((str(box["label"]), [float(v) for v in xyxy],
                         bool(box.get("difficult", False))))
        for i, region in enumerate(cam.get("ignore_regions", [])):
            xyxy = region.get("bbox_xyxy") if isinstance(region, dict) else None
            if not isinstance(xyxy, (list, tuple)) or len(xyxy) != 4:
                raise GroundTruthError(f"{where}.ignore_regions[{i}]: needs 'bbox_xyxy': "
                                       "[x1, y1, x2, y2]")
            rows.append((IGNORE_ALL, [float(v) for v in xyxy], True))
        images.append(_image(str(key), (path.parent / cam["image"]).resolve(),
                             cam.get("width", 0), cam.get("height", 0), rows, where))
    return images


def load_kitti(label_dir: Path, image_dir: Path | None = None) -> list[GroundTruthImage]:
    """Read a KITTI object ``label_2`` folder; images in ``image_dir`` (default: ``image_2`` beside)."""
    files = sorted(label_dir.glob("*.txt"))
    if not files:
        raise GroundTruthError(f"{label_dir}: no KITTI label files (*.txt)")
    image_dir = image_dir or label_dir.parent / "image_2"
    images = []
    for file in files:
        rows = []
        for n, line in enumerate(file.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 15:
                raise GroundTruthError(f"{file}:{n}: a KITTI label line has 15 fields, got "
                                       f"{len(parts)}")
            cls, truncated, occluded = parts[0], float(parts[1]), int(float(parts[2]))
            xyxy = [float(v) for v in parts[4:8]]
            if cls == KITTI_DONT_CARE:
                rows.append((IGNORE_ALL, xyxy, True))
                continue
            if cls not in KITTI_CLASSES:
                continue  # Misc
            label, always = KITTI_CLASSES[cls]
            hard = (xyxy[3] - xyxy[1] < KITTI_MIN_HEIGHT_PX or occluded > KITTI_MAX_OCCLUSION
                    or truncated > KITTI_MAX_TRUNCATION)
            rows.append((label, xyxy, always or hard))
        image = _find_image(image_dir, file.stem)
        images.append(_image(file.stem, image, 0, 0, rows, str(file)))
    return images


def _find_image(folder: Path, stem: str) -> Path:
    for suffix in (".png", ".jpg", ".jpeg"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise GroundTruthError(f"no image {stem}.png/.jpg in {folder}; fix: pass --images DIR")


def load_coco(path: Path, image_dir: Path | None = None) -> list[GroundTruthImage]:
    """Read COCO instances json; category names map to the driving labels (person -> pedestrian)."""
    try:
        doc = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in doc["categories"]}
        anns: dict[Any, list] = {}
        for ann in doc["annotations"]:
            anns.setdefault(ann["image_id"], []).append(ann)
        entries = doc["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GroundTruthError(f"{path}: not a COCO instances file (images, annotations, "
                               f"categories): {exc}") from exc
    image_dir = image_dir or path.parent
    images = []
    for entry in entries:
        rows = []
        for ann in anns.get(entry["id"], []):
            name = names[ann["category_id"]]
            x, y, w, h = (float(v) for v in ann["bbox"])
            difficult = bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0))
            label = driving_label(name) or normalise_name(name)
            rows.append((label, [x, y, x + w, y + h], difficult))
        images.append(_image(str(entry["id"]), (image_dir / entry["file_name"]).resolve(),
                             entry.get("width", 0), entry.get("height", 0), rows,
                             f"{path}: image {entry['id']}"))
    return images


def detect_format(path: Path) -> str:
    """``kitti`` for a folder, ``coco`` for a json with ``annotations``, else ``project``."""
    if path.is_dir():
        return "kitti"
    if not path.is_file():
        raise GroundTruthError(f"ground truth {path} does not exist")
    try:
        head = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"{path}: not readable JSON: {exc}") from exc
    return "coco" if isinstance(head, dict) and "annotations" in head else "project"


def load_ground_truth(path: Path, fmt: str = "auto",
                      image_dir: Path | None = None) -> list[GroundTruthImage]:
    """Read ground truth in ``fmt`` (one of :data:`FORMATS`; ``auto`` guesses from the path).

    Raises:
        GroundTruthError: unreadable or malformed, naming the file and the entry at fault.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise GroundTruthError(f"unknown ground-truth format {fmt!r}; use one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "kitti":
        return load_kitti(path, image_dir)
    if fmt == "coco":
        return load_coco(path, image_dir)
    return load_project(path)
