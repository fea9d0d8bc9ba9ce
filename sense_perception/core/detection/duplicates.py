"""One object, one box: nested same-label boxes and cross-class vehicle duplicates, after the merge.

Class-aware NMS (IoU > ``detector.nms_iou``) leaves two kinds of duplicates that the merged output
of the models still shows:

- **Cross-class vehicles.** An SUV scored both ``car`` and ``truck``: two labels never suppress
  each other in class-aware NMS. Among the vehicle labels (``vehicle_labels``: car, truck, bus) an
  NMS across labels at ``vehicle_nms_iou`` (an IoU at or above it; 0: off, 1: boxes that
  coincide, one box scored twice) keeps one box per vehicle, with the label of its
  best-scored box (all vehicle labels come from the one general model, so their scores are
  comparable even where a calibration changes what a score means between models).
- **Nested boxes.** On rows of parked cars the detector also emits a box on part of a car (its
  front half, its rear, its upper half), which lies almost wholly inside the car's own box but has
  too small an IoU with it for NMS. A box whose area lies at least ``nested_containment`` inside a
  larger, higher-scored box of the same label is dropped, unless the two are plausibly two
  objects: on a flat road a farther object stands higher in the image, so an inner box whose
  bottom edge lies at least ``nested_keep_bottom_gap`` of the outer box's height above the
  outer's bottom, whose aspect ratio is within ``nested_keep_aspect`` of the outer's and whose
  score is at least ``nested_keep_min_score`` is a second object seen behind the first. The
  other way round, a larger box that scores under ``nested_outer_score_ratio`` times a box it
  contains is a loose box around that object and its neighbour, and goes.

  Measured (docs/detection-quality.md, "Which nested boxes are objects"): the cars seen behind a
  nearer car whose boxes both match a labelled car (one parked pair over four frames of the
  developer set, its reduced-resolution JPEG decode, four pairs on the far stand-in) stand
  0.21-0.63 of the outer box's height higher, with aspect ratios within 1.75x of the outer's;
  parts share the outer's bottom (gap under 0.15) or are strips (the roof and windows: the
  outer's width, half its height, aspect 1.6-2.7x the outer's). Hence 0.2 and 1.8: every such
  car is kept in every view. Thresholds fitted to the full-resolution developer set alone (0.3,
  1.45) left 7.4 % of its detections nested instead of 10.2 % but lost 4 of its 573 cars found
  through the reduced JPEG decode of compressed camera topics (PicoDet alone), and 2 on the far
  stand-in.
  What the geometry cannot separate is the upper half of a car from a car behind it: a camera at
  roof height sees the tops of all cars near the horizon, so both share the outer's top edge and
  have the bottom gap and the size of a car at their image row; the scores overlap too (true
  cars behind 0.12-0.52 calibrated, parts 0.11-0.70). Most nested boxes lie on real cars the
  labels mark hidden; dropping every nested box (``nested_keep_bottom_gap: 2``,
  ``nested_outer_score_ratio: 1``) leaves none, at 6 of 601 cars lost; the curve between is in
  the docs. ``nested_outer_score_ratio`` compares calibrated scores (the default), so with
  ``calibrated_scores: false`` it acts on raw ones and may keep or drop other outer boxes.
  What the boxes cannot tell, the model can when it looks closer: ``nested_recheck_crops``
  (:mod:`.recheck`; by default one crop a frame, at 256x256, ``nested_recheck_input``) detects
  each box still holding a nested box again on a crop and drops the nested boxes the crop
  absorbs into the outer object.

Everything is vectorised over the boxes of an image (an N x N containment matrix; N is at most
``detector.max_detections``); no per-box Python loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...config import check_settings, setting
from ...errors import ConfigError
from ..types import Detections

VOTE_RULES = ("score", "vote")
# "A larger box": the inner box has under 0.8 of its area. Two boxes of nearly one size that
# overlap this much have an IoU above 0.64, which is the class-aware NMS's to judge (a set-prediction
# model such as DETR emits such pairs on purpose).
LARGER = 0.8


@dataclass
class DuplicateSettings:
    """``detector.duplicates.*``: what makes two boxes one object after the models' merge.

    Measured on the developer set (docs/detection-quality.md, section "One object, one box
    (duplicates)").
    """

    nested_containment: float = setting(
        0.8, "share of a box's area inside a larger, higher-scored box of the same label "
        "at and above which it is a duplicate and dropped; 0: keep nested boxes",
        range=(0.0, 1.0))
    nested_keep_bottom_gap: float = setting(
        0.2, "a nested box is kept as a second, farther object when its bottom edge lies "
        "at least this share of the larger box's height above the larger box's bottom; above 1: "
        "never kept",
        range=(0.0, 2.0))
    nested_keep_aspect: float = setting(
        1.8, "... and when the two boxes' aspect ratios (width / height) differ by at most "
        "this factor (the outline of a whole object, not a strip or slice of one)",
        range=(1.0, None))
    nested_keep_min_score: float = setting(
        0.0, "... and when the nested box scores at least this (calibrated); above 1: a "
        "nested box is never kept as a second object",
        range=(0.0, 2.0))
    nested_outer_score_ratio: float = setting(
        0.3, "a larger box scoring under this share of the score of a box of its label "
        "that it contains is a loose box around that object and dropped; 0: never, 1: always "
        "the lower-scored box of a nested pair",
        range=(0.0, 1.0))
    nested_recheck_crops: int = setting(
        1, "most boxes per frame that still hold a nested box of their label whose "
        "crop (with a 20 % margin) is detected again by the general model; a nested box is "
        "dropped where the crop shows the outer object again and nothing for the nested box "
        "(core/detection/recheck.py); 0: off. Each crop is one more image through the model",
        range=(0, 100))
    nested_recheck_input: int = setting(
        256, "side in pixels of the square model input the crops are detected at (the "
        "same weights, the graph rewritten in memory, core/runtime/model_resize.py; a model "
        "without a fixed input size runs at it as it is); 0: the "
        "model's own input (PicoDet 416). A crop is one object and its margin: 320 costs about "
        "0.6x a 416 crop (docs/detection-quality.md, \"Re-detection on a crop\")",
        range="0, or a multiple of 32 within 128..1024")
    vehicle_nms_iou: float = setting(
        0.5, "IoU at and above which boxes of different vehicle labels are one vehicle "
        "(one box, one label kept); 0: off, vehicle labels never suppress each other; 1: only "
        "boxes that coincide (one box scored with two labels)",
        range=(0.0, 1.0))
    vehicle_labels: list[str] = setting(
        ["car", "truck", "bus"], "labels that are all vehicles: one vehicle gets one of them",
        range="driving labels, e.g. [car, truck, bus]; [] = no cross-class suppression")
    vehicle_label: str = setting(
        "score", "label of a vehicle seen as several: score (the best-scored box's) or vote "
        "(the label with the most score summed over the overlapping boxes)",
        range=VOTE_RULES)

    def __post_init__(self) -> None:
        for key in ("nested_containment", "vehicle_nms_iou", "nested_outer_score_ratio"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"detector.duplicates.{key} must be within 0..1 (0: off), "
                                  f"got {value}")
        if not 0.0 <= self.nested_keep_bottom_gap <= 2.0:
            raise ConfigError(f"detector.duplicates.nested_keep_bottom_gap must be within 0..2, "
                              f"got {self.nested_keep_bottom_gap}")
        if not 0.0 <= self.nested_keep_min_score <= 2.0:
            raise ConfigError(f"detector.duplicates.nested_keep_min_score must be within 0..2 "
                              f"(above 1: never kept), got {self.nested_keep_min_score}")
        if self.nested_keep_aspect < 1.0:
            raise ConfigError(f"detector.duplicates.nested_keep_aspect must be >= 1 (a factor), "
                              f"got {self.nested_keep_aspect}")
        crops = self.nested_recheck_crops
        if isinstance(crops, bool) or not isinstance(crops, int) or not 0 <= crops <= 100:
            raise ConfigError(f"detector.duplicates.nested_recheck_crops must be a whole number "
                              f"within 0..100 (0: off), got {crops!r}")
        side = self.nested_recheck_input
        if isinstance(side, bool) or not isinstance(side, int) or not (
                side == 0 or (128 <= side <= 1024 and side % 32 == 0)):
            raise ConfigError(f"detector.duplicates.nested_recheck_input must be 0 (the model's "
                              f"own input) or a multiple of 32 within 128..1024, got {side!r}")
        if self.vehicle_label not in VOTE_RULES:
            raise ConfigError(f"detector.duplicates.vehicle_label must be one of "
                              f"{', '.join(VOTE_RULES)}, got {self.vehicle_label!r}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them


def check_vehicle_labels(settings: DuplicateSettings, label_names: list[str], model: str) -> None:
    """Refuse ``vehicle_labels`` the model does not report, where they were set: a typo
    ("trucks") or another model's name was silently no vehicle at all. The default list may name
    labels a custom model lacks.

    Raises:
        ConfigError: naming the unknown labels and the model's labels.
    """
    unknown = [n for n in settings.vehicle_labels if n not in label_names]
    if unknown and list(settings.vehicle_labels) != DuplicateSettings().vehicle_labels:
        raise ConfigError(f"detector.duplicates.vehicle_labels names {', '.join(map(repr, unknown))}, "
                          f"which {model} does not report; its labels: {', '.join(label_names)}; "
                          "fix: name labels of the model, or [] for no cross-class suppression")


def containment(boxes: np.ndarray) -> np.ndarray:
    """(N, N) share of box i's area that lies inside box j, for (N, 4) xyxy boxes."""
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area, 1e-9)[:, None]


def nested_matrix(boxes: np.ndarray, labels: np.ndarray, share: float) -> np.ndarray:
    """(N, N) bool, [i, j]: box i is at least ``share`` inside box j, j is the larger (i under
    :data:`LARGER` of its area) and of i's label: the nested pairs this step and the crop
    re-check (:mod:`.recheck`) judge."""
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return ((containment(boxes) >= share) & (labels[:, None] == labels[None, :])
            & (area[:, None] < LARGER * area[None, :]))


def nested_duplicates(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                      settings: DuplicateSettings) -> np.ndarray:
    """(N,) True where a box is a nested duplicate: a part inside a higher-scored box of its label,
    or a loose outer box around a much higher-scored one (see the module docstring)."""
    n = len(boxes)
    if n < 2 or settings.nested_containment <= 0.0:
        return np.zeros(n, bool)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-9)
    # [i, j]: box i inside box j, j larger, same label.
    nested = nested_matrix(boxes, labels, settings.nested_containment)
    # A farther object stands higher: its ground line (bottom edge) is above the nearer one's ...
    farther = (boxes[None, :, 3] - boxes[:, None, 3]) >= settings.nested_keep_bottom_gap * \
        height[None, :]
    # ... and has an object's outline, not a strip or slice of the nearer one ...
    aspect = np.log((boxes[:, 2] - boxes[:, 0]) / height)
    farther &= np.abs(aspect[:, None] - aspect[None, :]) <= np.log(settings.nested_keep_aspect)
    # ... and, where asked, the score of one.
    farther &= (scores >= settings.nested_keep_min_score)[:, None]
    inner = (nested & ~farther & (scores[:, None] < scores[None, :])).any(axis=1)
    # A loose outer box: it scores far below a box it contains (that is not itself dropped).
    loose = (nested & ~farther & ~inner[:, None]
             & (scores[None, :] < settings.nested_outer_score_ratio * scores[:, None])).any(axis=0)
    return inner | loose


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """(N, N) IoU of (N, 4) xyxy boxes."""
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)


def vehicle_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, vehicle: np.ndarray,
                iou: float, rule: str = "score") -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS across the labels of the boxes flagged ``vehicle``: a vehicle box goes when a
    kept, higher-scored vehicle box of *another* label overlaps it at an IoU of ``iou`` or more
    (``iou`` 0: off; 1: only boxes that coincide). Boxes of one label are left to the
    class-aware NMS (a set-prediction model's two overlapping cars stay).

    Returns:
        (kept mask, labels): the boxes kept (every non-vehicle box is) and their labels: the
        kept box's own (``score``), or the label with the highest summed score among the
        vehicle boxes overlapping it at ``iou`` or more (``vote``; ties to the kept box's label).
    """
    keep = np.ones(len(boxes), bool)
    labels = labels.copy()
    index = np.flatnonzero(vehicle)
    if index.size < 2 or iou <= 0.0:
        return keep, labels
    vb, vs, vl = boxes[index].astype(np.float64), scores[index], labels[index]
    # at or above, as nested_containment: 1 is one box scored with two labels (IoU exactly 1),
    # not a second "off" (IoU above 1 never happens) beside 0
    overlap = pairwise_iou(vb) >= iou
    # [i, j]: j would suppress i (higher-scored, ties to the earlier box, another label).
    rank = np.argsort(np.argsort(-vs, kind="stable"), kind="stable")
    beats = overlap & (vl[:, None] != vl[None, :]) & (rank[None, :] < rank[:, None])
    kept = np.ones(index.size, bool)
    for _ in range(index.size):  # greedy as a fixed point: a suppressed box suppresses nothing
        new = ~(beats & kept[None, :]).any(axis=1)
        if np.array_equal(new, kept):
            break
        kept = new
    keep[index] = kept
    if rule == "vote":
        mine = overlap[kept]  # (kept, all vehicle boxes)
        classes = np.unique(vl)
        votes = np.stack([(mine * (vs * (vl == c))[None, :]).sum(1) for c in classes], axis=1)
        own = np.searchsorted(classes, vl[kept])
        votes[np.arange(own.size), own] += 1e-6  # a tie keeps the kept box's own label
        labels[index[kept]] = classes[np.argmax(votes, axis=1)]
    return keep, labels


def suppress_duplicates(dets: Detections, label_names: list[str],
                        settings: DuplicateSettings) -> Detections:
    """``dets`` without cross-class vehicle duplicates and nested same-label boxes, best score
    first as it came."""
    if len(dets) < 2:
        return dets
    vehicle = np.isin(dets.labels, [i for i, n in enumerate(label_names)
                                    if n in settings.vehicle_labels])
    keep, labels = vehicle_nms(dets.boxes, dets.scores, dets.labels, vehicle,
                               settings.vehicle_nms_iou, settings.vehicle_label)
    dets = Detections(dets.boxes[keep], dets.scores[keep], labels[keep], dets.track_ids[keep])
    nested = nested_duplicates(dets.boxes, dets.scores, dets.labels, settings)
    return dets.select(~nested) if nested.any() else dets


__all__ = ["DuplicateSettings", "check_vehicle_labels", "containment", "nested_duplicates", "nested_matrix", "pairwise_iou",
           "suppress_duplicates", "vehicle_nms"]
