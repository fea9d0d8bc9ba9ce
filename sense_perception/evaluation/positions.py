"""How far off the ground positions are: ``sense-perception eval`` against a 3-D ground truth.

A project ground truth may give per camera a ``calibration`` (the fields of ``--calibration``) and
per box ``position_base_link`` [x, y, z] and ``range_m``. For every detection matched to a box (the
same matcher and IoU as the 2-D scores), the estimate is compared with the box's position, per
label and range band (by the true range): the median and 90th percentile of the absolute relative
range error, its signed median (bias: < 0 is short), the median lateral error (across the line of
sight, metres) and the 1-sigma coverage: the share of true positions inside the estimate's 1-sigma
ellipse (39 % for a calibrated 2-D Gaussian). Recall by range band comes from the same matching.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.geometry.calibration import CalibrationError, CameraCalibration, from_dict
from ..core.geometry.ground import GroundPositions, estimate_positions
from ..core.geometry.priors import DEFAULT_NOISE, PositionNoise
from ..errors import GroundTruthError
from .ground_truth import GroundTruthImage
from .gt_fields import number, read_json
from .scoring import ImageDetections, _coco_eval, scored_labels

# The last band holds what lies beyond 80 m: a box there (not difficult) was in no band, so
# missing from recall by range and the error table without a word.
RANGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-20 m", 0.0, 20.0), ("20-40 m", 20.0, 40.0), ("40-80 m", 40.0, 80.0),
    ("80+ m", 80.0, math.inf))
DETECTIONS_FILE = "detections.json"
GAUSSIAN_1SIGMA_2D = 1.0 - np.exp(-0.5)  # 0.393: share inside a 2-D Gaussian's 1-sigma ellipse
# A true position is compared with an estimate along and across the line of sight, and the range
# error is relative to the true range: a range of 0 (or 1e-320) made it inf, and eval.json then
# held ``Infinity`` (not JSON); a coordinate of 1e300 overflowed the lateral error and the 1-sigma
# test. Objects a camera on the vehicle sees lie between 10 cm (base_link's origin is inside the
# car) and 1 km (the bands end at 80 m; PandaSet's farthest box is 238 m).
MIN_TRUE_RANGE_M, MAX_TRUE_M = 0.1, 1000.0
# range_m and hypot(x, y) of position_base_link must agree (the developer set: within 1 mm); a
# range from elsewhere put the box into another band and its error against the other number.
_RANGE_AGREEMENT = (0.05, 0.01)  # metres + share of the range


@dataclass
class CameraTruth3D:
    """The 3-D part of one ground-truth camera entry.

    Attributes:
        calibration: the camera's calibration, None when the entry has none.
        positions: (G, 3) ``position_base_link`` per box in the file's order, nan where absent.
        ranges: (G,) ``range_m`` per box, nan where absent.
    """

    calibration: CameraCalibration | None
    positions: np.ndarray
    ranges: np.ndarray


def load_truth_3d(path: Path) -> dict[str, CameraTruth3D]:
    """The calibrations and positions of a project ground truth, by camera key ({} for other
    formats and for files without them).

    Raises:
        GroundTruthError: a wrong calibration or position, naming the camera and box.
    """
    path = Path(path)
    if path.is_dir():
        return {}
    doc = read_json(path)
    cameras = doc.get("cameras") if isinstance(doc, dict) else None
    if not isinstance(cameras, dict) or "annotations" in doc:
        return {}
    out = {}
    for key, cam in cameras.items():
        if not isinstance(cam, dict) or not isinstance(cam.get("boxes"), list):
            continue  # the 2-D loader names that error
        where = f"{path}: cameras.{key}"
        calib = None
        if "calibration" in cam:
            try:
                calib = from_dict(cam["calibration"], f"{where}.calibration")
            except CalibrationError as exc:
                raise GroundTruthError(str(exc)) from None
        boxes = cam["boxes"]
        positions = np.full((len(boxes), 3), np.nan)
        ranges = np.full(len(boxes), np.nan)
        for i, box in enumerate(boxes):
            if not isinstance(box, dict):
                continue
            at = f"{where}.boxes[{i}]"
            positions[i], ranges[i] = _truth_position(box, at)
        if calib is not None or np.isfinite(ranges).any():
            out[key] = CameraTruth3D(calib, positions, ranges)
    return out


def _truth_position(box: dict, at: str) -> tuple[list[float], float]:
    """A box's ``position_base_link`` (nan where absent) and true range (``range_m``, else
    hypot(x, y); nan where neither), checked: finite, within :data:`MAX_TRUE_M`, a range of at
    least :data:`MIN_TRUE_RANGE_M`, and ``range_m`` agreeing with the position's.

    Raises:
        GroundTruthError: naming the box, the field and the fix.
    """
    position, true_range = [np.nan] * 3, np.nan
    if "position_base_link" in box:
        value = box["position_base_link"]
        if not isinstance(value, list) or len(value) != 3:
            raise GroundTruthError(f"{at}.position_base_link: expected [x, y, z] in metres, got "
                                   f"{str(value)[:60]}")
        position = [number(v, f"{at}.position_base_link[{k}]") for k, v in enumerate(value)]
        if max(map(abs, position)) > MAX_TRUE_M:
            raise GroundTruthError(f"{at}.position_base_link: {position} is more than "
                                   f"{MAX_TRUE_M:g} m from base_link; fix: it is in metres "
                                   "(not millimetres), in base_link")
        true_range = math.hypot(position[0], position[1])
        what = f"{position} is"
    if "range_m" in box:
        given = number(box["range_m"], f"{at}.range_m")
        if not np.isnan(true_range) and abs(given - true_range) > \
                _RANGE_AGREEMENT[0] + _RANGE_AGREEMENT[1] * true_range:
            raise GroundTruthError(f"{at}.range_m: {given:g} m, but its position_base_link is "
                                   f"{true_range:.3f} m away (hypot(x, y)); fix: range_m is the "
                                   "horizontal distance of position_base_link from base_link's "
                                   "origin")
        true_range, what = given, f"{given:g} m is"
    if not np.isnan(true_range) and not MIN_TRUE_RANGE_M <= true_range <= MAX_TRUE_M:
        field = "range_m" if "range_m" in box else "position_base_link"
        raise GroundTruthError(f"{at}.{field}: {what} not a range an object can be at (from "
                               f"{MIN_TRUE_RANGE_M:g} to {MAX_TRUE_M:g} m); fix: give the "
                               "object's horizontal distance from base_link in metres, or leave "
                               "the field out")
    return position, true_range


def positions_for(calib: CameraCalibration, dets: ImageDetections,
                  noise: PositionNoise = DEFAULT_NOISE) -> GroundPositions:
    """Ground positions of one image's detections (labels given by name)."""
    if not len(dets.labels):
        return GroundPositions.empty(0)
    names, index = np.unique(np.asarray(dets.labels, dtype=object).astype(str),
                             return_inverse=True)
    return estimate_positions(calib, dets.boxes, index, tuple(names.tolist()), noise)


def range_band(ranges: np.ndarray) -> np.ndarray:
    """Index into RANGE_BANDS per range, -1 outside every band (or unknown)."""
    out = np.full(len(ranges), -1)
    for k, (_, low, high) in enumerate(RANGE_BANDS):
        out[(ranges >= low) & (ranges < high)] = k
    return out


def match_outcomes(ground_truth: Sequence[GroundTruthImage],
                   detections: Sequence[ImageDetections], detector_labels: Sequence[str],
                   iou: float) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, bool]]]:
    """What the matcher of :func:`~.scoring.evaluate` pairs, with indices.

    Returns:
        (matches: (image index, detection index, box index) of every detection that hit a box
        that counts; boxes: (image index, box index, found) of every box that counts).
    """
    labels, _ = scored_labels(ground_truth, detector_labels)
    if not labels:
        return [], []
    evaluator = _coco_eval(ground_truth, detections, labels, iou)
    gt_anns = {a["id"]: a for a in evaluator.cocoGt.dataset["annotations"]}
    where: dict[int, tuple[int, int]] = {}
    dt_id = 0  # _coco_eval numbers the detections of scored classes from 1, in this order
    for i, dets in enumerate(detections):
        for j, label in enumerate(dets.labels):
            if label in labels:
                dt_id += 1
                where[dt_id] = (i, j)
    matches, boxes = [], []
    for e in evaluator.evalImgs:
        if e is None:
            continue
        for dt, gt, ignored in zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0], strict=True):
            if gt > 0 and not ignored:
                ann = gt_anns[int(gt)]
                matches.append((*where[dt], ann["box_index"]))
        for gt, found, ignored in zip(e["gtIds"], e["gtMatches"][0], e["gtIgnore"], strict=True):
            if not ignored:
                ann = gt_anns[gt]
                boxes.append((ann["image_id"] - 1, ann["box_index"], bool(found > 0)))
    return matches, boxes


def _stats(rel: np.ndarray, lateral: np.ndarray, inside: np.ndarray, matched: int
           ) -> dict[str, Any]:
    def r(value: float, digits: int = 4) -> float:
        return round(float(value), digits)

    if not len(rel):
        return {"matched": matched, "positioned": 0}
    return {"matched": matched, "positioned": int(len(rel)),
            "median_abs_rel": r(np.median(np.abs(rel))),
            "p90_abs_rel": r(np.percentile(np.abs(rel), 90)),
            "median_rel": r(np.median(rel)),
            "median_lateral_m": r(np.median(np.abs(lateral)), 3),
            "coverage_1sigma": r(np.mean(inside))}


def position_report(ground_truth: Sequence[GroundTruthImage],
                    detections: Sequence[ImageDetections],
                    positions: Sequence[GroundPositions | None],
                    truth: dict[str, CameraTruth3D], detector_labels: Sequence[str],
                    iou: float) -> dict[str, Any]:
    """Range and lateral errors, 1-sigma coverage and recall, per label and range band.

    Args:
        ground_truth, detections: the scored images and their detections, in the same order.
        positions: per image the detections' ground positions (None: not calibrated).
        truth: :func:`load_truth_3d` of the ground truth.
    """
    matches, boxes = match_outcomes(ground_truth, detections, detector_labels, iou)
    by_key: dict[tuple[str, int], list[tuple[float, float, bool]]] = {}
    matched: dict[tuple[str, int], int] = {}
    for i, j, b in matches:
        t = truth.get(ground_truth[i].key)
        if t is None or not np.isfinite(t.ranges[b]):
            continue
        label = detections[i].labels[j]
        band = int(range_band(t.ranges[b:b + 1])[0])
        if band < 0:
            continue
        matched[(label, band)] = matched.get((label, band), 0) + 1
        p = positions[i]
        if p is None or not p.valid[j] or not np.isfinite(t.positions[b]).all():
            continue
        true_xy, est_xy = t.positions[b, :2], p.xyz[j, :2]
        rel = (p.range_m[j] - t.ranges[b]) / t.ranges[b]
        sight = true_xy / max(np.hypot(*true_xy), 1e-9)
        d = est_xy - true_xy
        lateral = float(sight[0] * d[1] - sight[1] * d[0])
        inside = float(d @ np.linalg.solve(p.covariance[j], d)) <= 1.0
        by_key.setdefault((label, band), []).append((rel, lateral, inside))
    labels = sorted({k[0] for k in matched}, key=list(detector_labels).index)
    table: dict[str, dict[str, Any]] = {}
    for label in labels:
        table[label] = {}
        for band, (name, _, _) in enumerate(RANGE_BANDS):
            rows = np.array(by_key.get((label, band), []), np.float64).reshape(-1, 3)
            table[label][name] = _stats(rows[:, 0], rows[:, 1], rows[:, 2] > 0,
                                        matched.get((label, band), 0))
    recall: dict[str, dict[str, dict[str, Any]]] = {}
    # Boxes that count but have no range (neither range_m nor position_base_link, or a camera
    # without any): in no band. They were left out of recall by range without a word, so its
    # totals fell short of the class's with nothing saying why.
    without: dict[str, int] = {}
    for i, b, found in boxes:
        g, t = ground_truth[i], truth.get(ground_truth[i].key)
        band = -1 if t is None or b >= len(t.ranges) else int(range_band(t.ranges[b:b + 1])[0])
        if band < 0:
            without[g.labels[b]] = without.get(g.labels[b], 0) + 1
            continue
        cell = recall.setdefault(g.labels[b], {}).setdefault(RANGE_BANDS[band][0],
                                                              {"found": 0, "total": 0})
        cell["found"] += int(found)
        cell["total"] += 1
    for cells in recall.values():
        for cell in cells.values():
            cell["recall"] = round(cell["found"] / cell["total"], 4)
    return {"iou": iou, "bands": [name for name, _, _ in RANGE_BANDS],
            "expected_coverage_1sigma": round(GAUSSIAN_1SIGMA_2D, 3),
            "errors": table, "recall_by_range": recall,
            "without_range": {k: without[k] for k in sorted(without)}}


def render_positions(report: dict[str, Any], console: Any, placed: bool = True) -> None:
    """Print the position error table (when ``placed``: there were positions) and recall by
    range."""
    from rich.markup import escape
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    table = Table(title=f"ground positions of matched detections (IoU {report['iou']:g})",
                  caption="median / p90: absolute range error relative to the true range; bias: "
                          "signed median (< 0 short); lateral: median across the line of sight; "
                          "in 1σ: true positions inside the 1-sigma ellipse "
                          f"({100 * report['expected_coverage_1sigma']:.0f} % when calibrated)")
    for column in ("class", "range", "matched", "placed", "median", "p90", "bias", "lateral",
                   "in 1σ"):
        table.add_column(column, justify="left" if column in ("class", "range") else "right",
                         no_wrap=True)
    for label, bands in report["errors"].items():
        for band, s in bands.items():
            if not s["matched"]:
                continue
            placed_here = s["positioned"]
            table.add_row(escape(label), band, str(s["matched"]), str(s["positioned"]),
                          pct(s.get("median_abs_rel")), pct(s.get("p90_abs_rel")),
                          f"{100 * s['median_rel']:+.1f} %" if placed_here else "-",
                          f"{s['median_lateral_m']:.2f} m" if placed_here else "-",
                          pct(s.get("coverage_1sigma")))
    if placed:
        console.print(table)
    if report["recall_by_range"]:
        recall = Table(title="recall by true range")
        recall.add_column("class")
        for band in report["bands"]:
            recall.add_column(band, justify="right")
        for label, cells in report["recall_by_range"].items():
            row = [f"{c['found']}/{c['total']} ({pct(c['recall'])})" if (c := cells.get(b))
                   else "-" for b in report["bands"]]
            recall.add_row(escape(label), *row)
        console.print(recall)
    if report.get("without_range"):
        console.print("not in recall by true range (no range_m or position_base_link): "
                      + ", ".join(f"{n} {escape(label)}" for label, n in
                                  report["without_range"].items()), highlight=False,
                      soft_wrap=True)


@dataclass
class EvalPositions:
    """What ``eval`` adds for 3-D: detections.json's content, the error report, and why not.

    Attributes:
        detections: detections.json (detect's format), with positions where calibrated.
        report: :func:`position_report` (None when the ground truth has no positions or ranges).
        source: where the calibration came from (None: no 3-D).
        unplaced: (image key, reason) of images whose calibration does not fit them.
        left_out: eval.json's ``positions_left_out``: ``{"image": key, "path": file, "reason"}``
            per unplaced image, as eval.json's ``skipped`` entries; detections.json's list names
            the same images by the same ``path`` (eval.json had ``image`` alone, the ground
            truth's key, where detections.json had ``path``: one list, two shapes).
    """

    detections: dict[str, Any]
    report: dict[str, Any] | None
    source: str | None
    unplaced: list[tuple[str, str]]
    left_out: list[dict[str, str]]


def evaluate_positions(ground_truth: Sequence[GroundTruthImage],
                       detections: Sequence[ImageDetections], labels: Sequence[str],
                       iou: float, truth: dict[str, CameraTruth3D],
                       calibration: CameraCalibration | None = None,
                       noise: PositionNoise = DEFAULT_NOISE) -> EvalPositions:
    """Ground positions of every scored image's detections and their errors.

    Args:
        ground_truth, detections: the scored images and their operating-point detections.
        labels: the scored classes, in the detector's order.
        truth: :func:`load_truth_3d` of the ground truth ({} when it has no 3-D).
        calibration: ``--calibration FILE`` for every image; else each camera's own.
        noise: the noise the estimates assume (object_detector's ``mount_pitch_sd``).
    """
    from ..core.output.detection_records import detection_record, positions_note

    positions: list[GroundPositions | None] = []
    unplaced: list[tuple[str, str]] = []
    records = []
    for g, dets in zip(ground_truth, detections, strict=True):
        calib = calibration or (truth[g.key].calibration if g.key in truth else None)
        p = None
        if calib is not None:
            try:
                p = positions_for(calib.for_image(g.width, g.height, calib.source), dets, noise)
            except CalibrationError as exc:
                unplaced.append((g.key, str(exc)))
        positions.append(p)
        records.append(detection_record(str(g.path), g.width, g.height, dets.labels, dets.boxes,
                                        dets.scores, p))
    paths = {g.key: g.path for g in ground_truth}
    placed = sum(p is not None for p in positions)
    if not placed:
        source: str | None = None
    elif calibration is not None:
        source = calibration.source if placed == len(positions) else \
            f"{calibration.source} ({placed} of {len(positions)} images)"
    else:
        source = f"the ground truth's per-camera calibration ({placed} of {len(positions)} images)"
    reason = ("neither the ground truth's cameras nor --calibration FILE give a calibration (K, "
              "D, distortion_model, width, height, T_base_link_camera)" if not unplaced else
              "no calibration fits the images' size")
    left_out = [{"image": key, "path": str(paths[key]), "reason": why} for key, why in unplaced]
    doc = {"images": records, "positions": positions_note(source, reason),
           "positions_left_out": [{"path": e["path"], "reason": e["reason"]} for e in left_out]}
    has_truth = any(np.isfinite(t.ranges).any() for t in truth.values())
    report = position_report(ground_truth, detections, positions, truth, labels, iou) \
        if has_truth else None
    return EvalPositions(doc, report, source, unplaced, left_out)
