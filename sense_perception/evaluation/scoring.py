"""Score detections against ground truth with the COCO evaluator (pycocotools), at one IoU.

pycocotools does the matching (greedy by score, one detection per box) and the average precision
(COCO's 101-point interpolation); everything else here is read off its per-image results, so one
matcher decides every figure. Difficult boxes are given to it as ``iscrowd`` regions: a detection
lying on one (intersection over the detection's own area >= the IoU threshold) is neither a hit nor
a false positive, and the box is never a miss. Some ground-truth classes the detector does not have
stand in for classes it does (:data:`NEIGHBOUR_IGNORE`): a rider's box (``cyclist``; Cityscapes'
``rider`` is read as it) is an ignore
region for pedestrian, bicycle and motorcycle detections, since riders have no pedestrian box.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .ground_truth import IGNORE_ALL, GroundTruthImage
from .gt_fields import RIDER

# (a Cityscapes or BDD100K ``rider`` is read as ``cyclist``: gt_fields.RIDER_NAMES)
NEIGHBOUR_IGNORE: dict[str, tuple[str, ...]] = {RIDER: ("pedestrian", "bicycle", "motorcycle")}
# Recall by object height in pixels: [low, high) per bin.
HEIGHT_BINS: tuple[tuple[str, float, float], ...] = (
    ("<25", 0.0, 25.0), ("25-50", 25.0, 50.0), ("50-100", 50.0, 100.0), (">=100", 100.0, np.inf))


@dataclass
class ImageDetections:
    """What a detector reported for one image: boxes xyxy pixels, scores, label names."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]


@dataclass
class ClassScore:
    """Figures of one class at the operating point, plus its precision-recall curve.

    Attributes:
        gt: boxes that count (not difficult).
        tp, fp: detections matching a box / matching nothing (ignored ones left out).
        ap: COCO-style average precision at the IoU threshold (None without ground truth).
        recall_by_height: bin name -> (found, total).
        curve: (recall thresholds, interpolated precision) of the low-threshold run, for plots.
        heights_missed: heights of the boxes that were not found.
        missed: every box not found, as :meth:`GroundTruthImage.box_name` names it: its image,
            its place among the image's boxes and, where the file numbers its boxes, that number
            (a COCO annotation's ``annotation_id``, a KITTI box's ``line``).
    """

    label: str
    gt: int = 0
    tp: int = 0
    fp: int = 0
    ap: float | None = None
    recall_by_height: dict[str, tuple[int, int]] = field(default_factory=dict)
    curve: tuple[np.ndarray, np.ndarray] | None = None
    heights_missed: list[float] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.tp / self.gt if self.gt else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None


@dataclass
class Evaluation:
    """The scores of one evaluation run."""

    images: int
    iou: float
    classes: dict[str, ClassScore]
    not_scored: list[str]

    @property
    def fp(self) -> int:
        return sum(c.fp for c in self.classes.values())

    @property
    def fp_per_image(self) -> float:
        return self.fp / self.images if self.images else 0.0

    def class_fp_per_image(self, label: str) -> float:
        return self.classes[label].fp / self.images if self.images else 0.0


def scored_labels(ground_truth: Sequence[GroundTruthImage], detector_labels: Sequence[str],
                  declared: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(classes scored, ground-truth classes left out): those both sides know, in detector order.

    False positives are only counted for classes the ground truth covers: a detector class the
    labels never mention (traffic lights in a pedestrian set) says nothing about its quality.
    A class it declares (``declared``, a COCO or project file's categories) is covered without a
    box; one the detector lacks is listed as not scored only where a box has it.
    """
    listed = set(declared) | {lb for g in ground_truth for lb in g.declared}
    present = ({lb for g in ground_truth for lb in g.labels}
               | listed.intersection(detector_labels)) - {IGNORE_ALL}
    scored = [lb for lb in detector_labels if lb in present]
    return scored, sorted(present - set(scored))


def _coco_ground_truth(ground_truth: Sequence[GroundTruthImage], labels: list[str]) -> dict:
    category = {lb: i + 1 for i, lb in enumerate(labels)}
    annotations: list[dict] = []

    def add(image_id: int, index: int, box: np.ndarray, label: str, crowd: bool) -> None:
        x1, y1, x2, y2 = (float(v) for v in box)
        annotations.append({"id": len(annotations) + 1, "image_id": image_id,  # ids from 1
                            "category_id": category[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd),
                            "box_index": index})

    for image_id, g in enumerate(ground_truth, 1):
        for index, (box, label, difficult) in enumerate(zip(g.boxes, g.labels, g.difficult, strict=True)):
            if label in category:
                add(image_id, index, box, label, bool(difficult))
            targets = labels if label == IGNORE_ALL else NEIGHBOUR_IGNORE.get(label, ())
            for other in targets:
                if other in category:
                    add(image_id, index, box, other, True)
    return {"images": [{"id": i} for i in range(1, len(ground_truth) + 1)],
            "categories": [{"id": i, "name": lb} for lb, i in category.items()],
            "annotations": annotations}


def _coco_eval(ground_truth: Sequence[GroundTruthImage], detections: Sequence[ImageDetections],
               labels: list[str], iou: float):  # -> pycocotools COCOeval
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    category = {lb: i + 1 for i, lb in enumerate(labels)}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = _coco_ground_truth(ground_truth, labels)
        gt.createIndex()
        dt = COCO()
        dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"],
                      "annotations": []}
        for image_id, dets in enumerate(detections, 1):
            for box, score, label in zip(dets.boxes, dets.scores, dets.labels, strict=True):
                if label in category:
                    x1, y1, x2, y2 = (float(v) for v in box)
                    dt.dataset["annotations"].append({
                        "id": len(dt.dataset["annotations"]) + 1, "image_id": image_id,
                        "category_id": category[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1), "score": float(score), "iscrowd": 0})
        dt.createIndex()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.params.iouThrs = np.array([iou])
        evaluator.params.areaRng = [[0.0, 1e12]]
        evaluator.params.areaRngLbl = ["all"]
        evaluator.params.maxDets = [100000]
        evaluator.evaluate()
    return evaluator


def precision_at_recall(evaluator: Any, k: int) -> np.ndarray | None:
    """COCO's interpolated precision at its 101 recall thresholds for the ``k``-th category of
    ``evaluator`` (after ``evaluate()``), or None where it has no box that counts.

    As pycocotools' ``accumulate`` (best precision at any recall >= r), with one difference:
    detections of equal score are taken together, as any threshold takes them. pycocotools
    steps through them one by one in the order of the images and of the detector's output, so
    the same detections gave AP 1.0 or 0.5 (a hit and a false positive of one score) as the
    two came.
    """
    images = len(evaluator.params.imgIds)
    found = [e for e in evaluator.evalImgs[k * images:(k + 1) * images] if e is not None]
    counted = sum(int((~np.asarray(e["gtIgnore"], bool)).sum()) for e in found)
    if not counted:
        return None
    recall_points = evaluator.params.recThrs
    scores = np.concatenate([np.asarray(e["dtScores"], np.float64) for e in found])
    precision = np.zeros(len(recall_points))
    if not len(scores):
        return precision
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([np.asarray(e["dtMatches"][0]) for e in found])[order] > 0
    ignored = np.concatenate([np.asarray(e["dtIgnore"][0], bool) for e in found])[order]
    tp = np.cumsum(matched & ~ignored, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, dtype=np.float64)
    ranked = scores[order]
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the end of each run of equal scores
    tp, fp = tp[last], fp[last]
    recall = tp / counted
    precise = tp / np.maximum(tp + fp, np.spacing(1))
    precise = np.maximum.accumulate(precise[::-1])[::-1]  # best precision at any recall >= r
    at = np.searchsorted(recall, recall_points, side="left")
    inside = at < len(precise)
    precision[inside] = precise[at[inside]]
    return precision


def evaluate(ground_truth: Sequence[GroundTruthImage], operating: Sequence[ImageDetections],
             curve: Sequence[ImageDetections] | None, detector_labels: Sequence[str],
             iou: float = 0.5, declared: Sequence[str] = (), ap: bool = True) -> Evaluation:
    """Score detections of every image of ``ground_truth``.

    Args:
        ground_truth: the labelled images.
        operating: the detector's output at its configured thresholds (counts, recall, FP).
        curve: its output at a low threshold for the precision-recall curve and AP (None: use
            ``operating``, which cuts the curve at the operating point).
        detector_labels: every label the detector can report.
        iou: IoU a detection needs with a box to be a hit.
        declared: classes the ground truth says it covers even where no box has them.
        ap: compute the average precision and the curve (False: both stay None, as with
            ``eval --no-curve``).
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"--iou must be within (0, 1], got {iou}")
    labels, not_scored = scored_labels(ground_truth, detector_labels, declared)
    result = Evaluation(len(ground_truth), iou, {lb: ClassScore(lb) for lb in labels}, not_scored)
    if not labels:
        return result
    op_eval = _coco_eval(ground_truth, operating, labels, iou)
    anns = {a["id"]: a for a in op_eval.cocoGt.dataset["annotations"]}
    for bin_name, _, _ in HEIGHT_BINS:
        for score in result.classes.values():
            score.recall_by_height[bin_name] = (0, 0)
    for e in op_eval.evalImgs:
        if e is None:
            continue
        score = result.classes[labels[e["category_id"] - 1]]
        counted = ~np.asarray(e["gtIgnore"], bool)
        found = np.asarray(e["gtMatches"][0]) > 0
        score.gt += int(counted.sum())
        score.tp += int((found & counted).sum())
        kept = ~np.asarray(e["dtIgnore"][0], bool)
        score.fp += int(((np.asarray(e["dtMatches"][0]) == 0) & kept).sum())
        for gt_id, ok, hit in zip(e["gtIds"], counted, found, strict=True):
            if not ok:
                continue
            h = anns[gt_id]["bbox"][3]
            if not hit:
                score.heights_missed.append(h)
                score.missed.append(ground_truth[anns[gt_id]["image_id"] - 1].box_name(
                    anns[gt_id]["box_index"]))
            for bin_name, low, high in HEIGHT_BINS:
                if low <= h < high:
                    f, t = score.recall_by_height[bin_name]
                    score.recall_by_height[bin_name] = (f + int(hit), t + 1)
    if not ap:
        return result
    curve_eval = op_eval if curve is None else _coco_eval(ground_truth, curve, labels, iou)
    for k, label in enumerate(labels):
        p = precision_at_recall(curve_eval, k)
        if p is not None:
            result.classes[label].ap = float(np.mean(p))
            result.classes[label].curve = (curve_eval.params.recThrs.copy(), p)
    return result


def match_detections(ground_truth: Sequence[GroundTruthImage], detections: Sequence[ImageDetections],
                     detector_labels: Sequence[str], iou: float,
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image, what the matcher of :func:`evaluate` made of each detection: (hit, ignored)
    boolean arrays in the detections' order. Ignored: lying on a difficult box or an ignore
    region, or of a class the ground truth does not cover (not scored); for score calibration.
    """
    labels, _ = scored_labels(ground_truth, detector_labels)
    out = [(np.zeros(len(d.labels), bool), np.ones(len(d.labels), bool)) for d in detections]
    if not labels:
        return out
    evaluator = _coco_eval(ground_truth, detections, labels, iou)
    verdict: dict[int, tuple[bool, bool]] = {}
    for e in evaluator.evalImgs:
        if e is not None:
            for dt_id, match, ignore in zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0],
                                            strict=True):
                verdict[dt_id] = (bool(match > 0) and not ignore, bool(ignore))
    dt_id = 0  # _coco_eval numbers the detections of scored classes from 1, in this order
    for dets, (hit, ignored) in zip(detections, out, strict=True):
        for j, label in enumerate(dets.labels):
            if label in labels:
                dt_id += 1
                hit[j], ignored[j] = verdict[dt_id]
    return out

