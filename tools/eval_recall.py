#!/usr/bin/env python3
"""Recall and false positives of the real detector against the hand-labelled street frames.

Ground truth: ``test/data/ground_truth_*.json`` (boxes drawn by hand on frames of
``../shared/data/street``; the labelling rules are in each file's ``rules`` field). Scoring is
PASCAL-VOC style:

* objects marked ``difficult`` count neither as hits nor as misses; a detection matching one
  (IoU >= the threshold), or lying mostly (>= 50 % of its area) inside difficult objects of its
  group or ``ignore_regions`` (COCO-crowd style), counts neither as a hit nor as a false positive;
* a detection matches the unmatched labelled object of the same *group* (pedestrian, or vehicle =
  car/truck/bus/motorcycle/bicycle) with the highest IoU >= the threshold, best scores first;
  ``class ok`` additionally needs the exact label (or one of the object's ``also_ok`` labels);
* any other pedestrian/vehicle detection is a false positive (traffic lights, stop signs and
  other classes are not scored).

Run from the repository root::

    python tools/eval_recall.py                      # table for PicoDet and YOLOX, tiling off/on
    python tools/eval_recall.py --sweep              # also a few tiling variants (for tuning)
    python tools/eval_recall.py --write /work/notes/tiling-results.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
GT_DIR = REPO / "test" / "data"
STREET_DIR = REPO.parent / "shared" / "data" / "street"

PEDESTRIAN = "pedestrian"
VEHICLES = ("bicycle", "car", "motorcycle", "bus", "truck")
SCORED = (PEDESTRIAN,) + VEHICLES
GROUPS = ("pedestrian", "vehicle")


def group_of(label: str) -> str | None:
    """Scoring group of a label: "pedestrian", "vehicle" or None (not scored)."""
    if label == PEDESTRIAN:
        return "pedestrian"
    if label in VEHICLES:
        return "vehicle"
    return None


@dataclass
class GroundTruth:
    """Hand labels of one frame."""

    image: str
    width: int
    height: int
    boxes: np.ndarray  # (G, 4) float32 xyxy
    labels: list[str]
    difficult: np.ndarray  # (G,) bool
    also_ok: list[tuple[str, ...]]
    notes: list[str]
    ignore: np.ndarray  # (R, 4) float32 xyxy
    riders: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (G,) rider of a bike
    occluded: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # (G,) 0, 1, 2
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (G,) image border
    path: Path = field(default=Path())

    @property
    def image_path(self) -> Path:
        return STREET_DIR / self.image


def load_ground_truth(path: Path) -> GroundTruth:
    """Read one ``ground_truth_*.json`` file, checking labels and box geometry."""
    doc = json.loads(Path(path).read_text())
    objects = doc["objects"]
    boxes = np.array([o["bbox_xyxy"] for o in objects], np.float32).reshape(-1, 4)
    labels = [o["label"] for o in objects]
    bad = [lb for lb in labels if lb not in SCORED]
    if bad:
        raise ValueError(f"{path}: unknown labels {bad}; use one of {SCORED}")
    w, h = doc["width"], doc["height"]
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]) | (boxes[:, :2] < 0).any(1)
            | (boxes[:, 2] > w) | (boxes[:, 3] > h)).any():
        raise ValueError(f"{path}: a box is empty or outside the {w}x{h} image")
    ignore = np.array([r["bbox_xyxy"] for r in doc.get("ignore_regions", [])],
                      np.float32).reshape(-1, 4)
    return GroundTruth(doc["image"], w, h, boxes, labels,
                       np.array([bool(o.get("difficult", False)) for o in objects], bool),
                       [tuple(o.get("also_ok", ())) for o in objects],
                       [o.get("note", "") for o in objects], ignore,
                       np.array([bool(o.get("rider", False)) for o in objects], bool),
                       np.array([int(o.get("occluded", 0)) for o in objects], np.int8),
                       np.array([bool(o.get("truncated", False)) for o in objects], bool),
                       Path(path))


def load_all(gt_dir: Path = GT_DIR) -> list[GroundTruth]:
    """All ground-truth files, sorted by name."""
    return [load_ground_truth(p) for p in sorted(gt_dir.glob("ground_truth_*.json"))]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes."""
    inter = _intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _ignored_fraction(gt: GroundTruth, boxes: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Fraction of each detection's area inside ignore regions or difficult objects of its group.

    Like COCO's crowd regions: a box on a heavily occluded car covers its hidden part too, so it
    rarely reaches IoU 0.5 with the visible-extent label, yet it is no false positive. Masks make
    the union of overlapping regions count once.
    """
    out = np.zeros(len(labels), np.float64)
    if not len(labels):
        return out
    for grp in GROUPS:
        mask = np.zeros((gt.height, gt.width), np.uint8)
        regions = list(gt.ignore) + [b for b, lb, d in zip(gt.boxes, gt.labels, gt.difficult)
                                     if d and group_of(lb) == grp]
        for x0, y0, x1, y1 in np.round(np.asarray(regions, np.float64).reshape(-1, 4)).astype(int):
            mask[y0:y1, x0:x1] = 1
        integral = cv2.integral(mask)
        sel = np.array([group_of(lb) == grp for lb in labels], bool)
        b = np.clip(np.round(boxes[sel]).astype(int), 0, [gt.width, gt.height] * 2)
        inside = (integral[b[:, 3], b[:, 2]] - integral[b[:, 1], b[:, 2]]
                  - integral[b[:, 3], b[:, 0]] + integral[b[:, 1], b[:, 0]])
        area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1)
        out[sel] = inside / area
    return out


@dataclass
class ImageScore:
    """Matching result of one frame at one IoU threshold.

    Attributes:
        gt_match: (G,) index of the matched detection per labelled object, -1 if none.
        gt_iou: (G,) IoU with that detection (0 if none).
        det_status: per detection "tp", "dup" (a false positive on an object another detection
            already matched, usually the same object under another vehicle class), "fp" (any other
            false positive), "ignored" or "unscored" (class not evaluated).
    """

    gt: GroundTruth
    det_labels: list[str]
    det_boxes: np.ndarray
    det_scores: np.ndarray
    gt_match: np.ndarray
    gt_iou: np.ndarray
    det_status: list[str]

    def counts(self) -> dict[str, int]:
        """Hits, labelled objects, correct-class hits and false positives per group."""
        out: dict[str, int] = {}
        for grp in GROUPS:
            sel = np.array([group_of(lb) == grp for lb in self.gt.labels], bool)
            sel &= ~self.gt.difficult
            hit = sel & (self.gt_match >= 0)
            class_ok = [i for i in np.nonzero(hit)[0]
                        if self.det_labels[self.gt_match[i]] in (self.gt.labels[i],)
                        + self.gt.also_ok[i]]
            out[f"{grp}_total"] = int(sel.sum())
            out[f"{grp}_hit"] = int(hit.sum())
            out[f"{grp}_class_ok"] = len(class_ok)
            out[f"{grp}_fp"] = sum(1 for s, lb in zip(self.det_status, self.det_labels)
                                   if s in ("fp", "dup") and group_of(lb) == grp)
        out["dup"] = sum(1 for s in self.det_status if s == "dup")
        out["fp"] = sum(1 for s in self.det_status if s in ("fp", "dup"))
        return out


def score_image(gt: GroundTruth, boxes: np.ndarray, scores: np.ndarray, labels: Sequence[str],
                iou_threshold: float) -> ImageScore:
    """Match one frame's detections (source pixels, label names) to its ground truth."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    g = len(gt.labels)
    gt_match = np.full(g, -1, np.int64)
    gt_iou = np.zeros(g, np.float32)
    status = ["unscored"] * len(labels)
    iou = iou_matrix(boxes, gt.boxes) if g else np.zeros((len(labels), 0), np.float32)
    gt_groups = np.array([group_of(lb) for lb in gt.labels], object)
    in_ignore = _ignored_fraction(gt, boxes, labels) >= 0.5
    for d in order:
        grp = group_of(labels[d])
        if grp is None:
            continue
        same = (gt_groups == grp) & (iou[d] >= iou_threshold)
        free = same & (gt_match < 0) & ~gt.difficult
        if free.any():
            best = int(np.argmax(np.where(free, iou[d], -1.0)))
            gt_match[best] = d
            gt_iou[best] = iou[d, best]
            status[d] = "tp"
        elif (same & gt.difficult).any() or in_ignore[d]:
            status[d] = "ignored"
        elif same.any():
            status[d] = "dup"  # a second box on an object already found (often another class)
        else:
            status[d] = "fp"
    return ImageScore(gt, list(labels), boxes, np.asarray(scores, np.float32), gt_match, gt_iou,
                      status)


def detect_frames(detector: Any, frames: Sequence[GroundTruth]) -> list[tuple[np.ndarray, ...]]:
    """Run the detector on each frame; returns (boxes, scores, label names) per frame."""
    out = []
    for gt in frames:
        image = cv2.imread(str(gt.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {gt.image_path}")
        det = detector.detect([image])[0]
        names = np.array([detector.label_names[i] for i in det.labels], object)
        out.append((det.boxes, det.scores, names))
    return out


def make_detector(model: str, tiling: Any = None, score_threshold: float | None = None,
                  threads: int = 0) -> Any:
    """The package's real ObjectDetector on CPU with the given tiling settings."""
    from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
    from sense_perception.core.runtime.session import RuntimeOptions

    cfg = DetectorConfig(model=model)
    if score_threshold is not None:
        cfg = replace(cfg, score_threshold=score_threshold)
    runtime = RuntimeOptions(providers=("CPUExecutionProvider",), intra_op_threads=threads)
    return ObjectDetector(cfg, runtime, tiling)


def summarise(scores: Sequence[ImageScore]) -> dict[str, float]:
    """Totals over frames plus false positives per image."""
    total: dict[str, float] = {}
    for s in scores:
        for k, v in s.counts().items():
            total[k] = total.get(k, 0) + v
    total["fp_per_image"] = total.get("fp", 0) / max(len(scores), 1)
    total["dup_per_image"] = total.get("dup", 0) / max(len(scores), 1)
    return total


def _fmt(t: dict[str, float], grp: str) -> str:
    return f"{int(t[grp + '_hit'])}/{int(t[grp + '_total'])}"


def run_table(models: Sequence[str], variants: dict[str, Any], frames: Sequence[GroundTruth],
              thresholds: Sequence[float] = (0.5, 0.3), verbose: bool = False,
              threads: int = 0) -> list[dict[str, Any]]:
    """Detect every frame with every model x tiling variant and score it at each IoU threshold."""
    rows = []
    for model in models:
        for name, tiling in variants.items():
            detector = make_detector(model, tiling, threads=threads)
            if name == NAIVE:
                from sense_perception.core.detection import tiling as tiling_mod

                real = tiling_mod.merge_tile_detections
                tiling_mod.merge_tile_detections = naive_merge
            try:
                # Second pass timed: the first one pays onnxruntime's lazy initialisation.
                detect_frames(detector, frames)
                t0 = time.perf_counter()
                results = detect_frames(detector, frames)
                ms = (time.perf_counter() - t0) * 1e3 / max(len(frames), 1)
            finally:
                if name == NAIVE:
                    tiling_mod.merge_tile_detections = real
            row: dict[str, Any] = {"model": model, "variant": name, "ms": ms,
                                   "runs": _runs_per_frame(tiling, frames)}
            for thr in thresholds:
                scored = [score_image(gt, *r, iou_threshold=thr) for gt, r in zip(frames, results)]
                row[thr] = summarise(scored)
                if verbose and thr == thresholds[-1]:
                    _print_details(model, name, scored)
            rows.append(row)
            print(_row_line(row, thresholds), flush=True)
    return rows


def _runs_per_frame(tiling: Any, frames: Sequence[GroundTruth]) -> float:
    """Network runs (full frame + tiles) per frame, averaged over the frames."""
    if tiling is None:
        return 1.0
    from sense_perception.core.detection.tiling import plan_tiles

    return float(np.mean([len(plan_tiles(f.width, f.height, tiling)) for f in frames]))


def _print_details(model: str, variant: str, scored: Sequence[ImageScore]) -> None:
    for s in scored:
        print(f"  [{model} / {variant}] {s.gt.image}")
        for i, lb in enumerate(s.gt.labels):
            if s.gt.difficult[i]:
                continue
            d = s.gt_match[i]
            got = (f"{s.det_labels[d]} {s.det_scores[d]:.2f} iou {s.gt_iou[i]:.2f}" if d >= 0
                   else "MISSED")
            print(f"    gt {lb:10s} {s.gt.boxes[i].astype(int).tolist()} -> {got}")
        for d, st in enumerate(s.det_status):
            if st in ("fp", "dup"):
                print(f"    {st.upper():3s} {s.det_labels[d]} {s.det_scores[d]:.2f} "
                      f"{s.det_boxes[d].round().astype(int).tolist()}")


def _row_line(row: dict[str, Any], thresholds: Sequence[float]) -> str:
    parts = [f"{row['model']:14s} {row['variant']:28s}"]
    for thr in thresholds:
        t = row[thr]
        parts.append(f"IoU{thr}: ped {_fmt(t, 'pedestrian')} veh {_fmt(t, 'vehicle')} "
                     f"cls-ok {int(t['pedestrian_class_ok'] + t['vehicle_class_ok'])} "
                     f"FP/img {t['fp_per_image']:.1f} (dup {t['dup_per_image']:.1f})")
    parts.append(f"{row['ms']:.0f} ms/frame")
    return " | ".join(parts)


def markdown(rows: Sequence[dict[str, Any]], frames: Sequence[GroundTruth],
             thresholds: Sequence[float] = (0.5, 0.3)) -> str:
    """Results as a Markdown table."""
    head = ["model", "tiling"]
    for thr in thresholds:
        head += [f"pedestrians @{thr}", f"vehicles @{thr}",
                 f"FP/image @{thr} (of which duplicates)"]
    head += ["class ok @0.5", "network runs/frame"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], r["variant"]]
        for thr in thresholds:
            t = r[thr]
            cells += [_fmt(t, "pedestrian"), _fmt(t, "vehicle"),
                      f"{t['fp_per_image']:.1f} ({t['dup_per_image']:.1f})"]
        t = r[thresholds[0]]
        cells += [f"{int(t['pedestrian_class_ok'] + t['vehicle_class_ok'])}/"
                  f"{int(t['pedestrian_hit'] + t['vehicle_hit'])}", f"{r['runs']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    names = ", ".join(f.image for f in frames)
    n_ped = sum(int((np.array([lb == PEDESTRIAN for lb in f.labels]) & ~f.difficult).sum())
                for f in frames)
    n_veh = sum(int((np.array([lb in VEHICLES for lb in f.labels]) & ~f.difficult).sum())
                for f in frames)
    lines += ["", f"Frames: {names} ({n_ped} pedestrians incl. riders, {n_veh} vehicles, not "
                  f"counting objects marked difficult); score threshold and NMS as the detector's "
                  f"defaults; CPUExecutionProvider, {time.strftime('%Y-%m-%d')}."]
    return "\n".join(lines)


NAIVE = "same tiles, plain NMS merge"


def naive_merge(per_tile: Sequence[Any], tiles: Sequence[Any], image_shape: Any, cfg: Any,
                nms_iou: float) -> Any:
    """Baseline for comparison only: concatenate all tiles' boxes and run class-aware NMS."""
    from sense_perception.core.detection.postprocess import nms_class_aware
    from sense_perception.core.types import Detections

    boxes = np.concatenate([d.boxes for d in per_tile]).astype(np.float32)
    scores = np.concatenate([d.scores for d in per_tile]).astype(np.float32)
    labels = np.concatenate([d.labels for d in per_tile]).astype(np.int32)
    keep = nms_class_aware(boxes, scores, labels, nms_iou)
    return Detections(boxes[keep], scores[keep], labels[keep])


def default_variants(sweep: bool) -> dict[str, Any]:
    """Tiling settings to compare: off, the package default, and (with ``sweep``) variants."""
    from sense_perception.core.detection.tiling import TilingConfig

    on = TilingConfig(mode="horizon_bands")
    variants: dict[str, Any] = {"off": None, "horizon_bands (default)": on}
    if sweep:
        variants.update({
            "3 columns": replace(on, columns=3),
            "5 columns": replace(on, columns=5),
            "tile aspect 1.0": replace(on, tile_aspect=1.0),
            "tile aspect 1.78": replace(on, tile_aspect=16 / 9),
            "band 0.3": replace(on, band_height=0.3),
            "band 0.5": replace(on, band_height=0.5),
            "overlap 0.15": replace(on, overlap=0.15),
            "overlap 0.35": replace(on, overlap=0.35),
            "horizon 0.45": replace(on, horizon_y=0.45),
            "cover 0.5": replace(on, cover_threshold=0.5),
            "drop uncovered fragments": replace(on, drop_uncovered_fragments=True),
            "no cross-class step": replace(on, cross_class_iou=1.0),
            "no full frame": replace(on, include_full_frame=False),
            NAIVE: on,
        })
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["picodet_s_416", "yolox_nano"])
    parser.add_argument("--sweep", action="store_true", help="also compare tiling variants")
    parser.add_argument("--verbose", action="store_true", help="list misses and false positives")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    parser.add_argument("--write", type=Path, help="write the Markdown table to this file")
    args = parser.parse_args(argv)
    frames = load_all()
    if not frames:
        print(f"no ground truth in {GT_DIR}", file=sys.stderr)
        return 1
    rows = run_table(args.models, default_variants(args.sweep), frames, verbose=args.verbose,
                     threads=args.threads)
    table = markdown(rows, frames)
    print()
    print(table)
    if args.write:
        args.write.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
