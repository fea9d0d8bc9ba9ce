"""Run the configured detector over the images of a ground truth and score it (``sense-perception eval``).

The detector is built from the same parameters as the nodes and the replay (:func:`build_detector`),
so the figures are those of what a car would run. Two passes: the configured thresholds give the
operating point (found, false positives, recall, precision); a second detector with every threshold
lowered to :data:`CURVE_FLOOR` traces the precision-recall curve and the average precision.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..core.imaging.image_decode import read_image_file
from ..errors import GroundTruthError
from .ground_truth import GroundTruthImage, load_ground_truth
from .scoring import Evaluation, ImageDetections, evaluate

CURVE_FLOOR = 0.05  # lowest score of the curve pass: below it detections are noise
CURVE_MAX_DETECTIONS = 300
BATCH = 4  # images per detect call (one inference where the model batches)


def curve_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every score threshold lowered to :data:`CURVE_FLOOR` for the curve pass
    (the general model's per-label thresholds then follow ``score_threshold``)."""
    from ..core.detection.detector import ClassThresholds

    lowered = dict(params)
    for label in (f.name for f in fields(ClassThresholds)):
        key = f"detector.class_thresholds.{label}"
        value = params.get(key, -1.0)
        lowered[key] = value if 0.0 <= value < CURVE_FLOOR else -1.0
    for key in ("detector.score_threshold", "detector.pedestrian_threshold"):
        lowered[key] = min(float(params.get(key, 1.0)), CURVE_FLOOR)
    lowered["detector.max_detections"] = max(int(params.get("detector.max_detections", 100)),
                                             CURVE_MAX_DETECTIONS)
    return lowered


def _as_image_detections(detector: Any, dets: Any) -> ImageDetections:
    return ImageDetections(dets.boxes, dets.scores, [detector.label_names[i] for i in dets.labels])


def run_evaluation(ground_truth: Path, params: dict[str, Any], source: str = "config",
                   iou: float = 0.5, fmt: str = "auto", image_dir: Path | None = None,
                   curve: bool = True,
                   progress: Callable[[int, int], None] | None = None
                   ) -> tuple[Evaluation, dict[str, Any], list[GroundTruthImage]]:
    """Detect on every image of ``ground_truth`` and score the result.

    Args:
        ground_truth: project JSON, KITTI ``label_2`` folder or COCO json.
        params: flattened object_detector parameters (``detector.*``, ``tiling.*``, ``runtime.*``).
        source: where ``params`` came from, for error messages.
        iou: IoU a detection needs to count as a hit.
        fmt: ground-truth format (``auto`` guesses).
        image_dir: where the images are, when not beside the labels.
        curve: also run the low-threshold pass for the precision-recall curve and AP.
        progress: called with (images done, images) as detection goes.

    Returns:
        (scores, facts about the run for eval.json, the ground truth read).

    Raises:
        GroundTruthError: bad ground truth or a missing image (checked before any detection).
        ConfigError, ModelError: from the detector's parameters.
    """
    from ..core.detection.detector_setup import build_detector

    images = load_ground_truth(ground_truth, fmt, image_dir)
    missing = [str(g.path) for g in images if not g.path.is_file()]
    if missing:
        raise GroundTruthError(f"{len(missing)} image(s) of {ground_truth} are missing, first "
                               f"{missing[0]}; fix: paths are relative to the ground-truth file, "
                               "or pass --images DIR")
    operating = build_detector(params, source)
    curve_detector = build_detector(curve_params(params), source) if curve else None
    op_results: list[ImageDetections] = []
    curve_results: list[ImageDetections] = []
    started = time.perf_counter()
    detect_seconds = 0.0
    for start in range(0, len(images), BATCH):
        chunk = images[start:start + BATCH]
        pixels = [read_image_file(g.path) for g in chunk]
        for g, image in zip(chunk, pixels, strict=True):
            g.height, g.width = image.shape[:2]
        t0 = time.perf_counter()
        op_results += [_as_image_detections(operating, d) for d in operating.detect(pixels)]
        detect_seconds += time.perf_counter() - t0
        if curve_detector is not None:
            curve_results += [_as_image_detections(curve_detector, d)
                              for d in curve_detector.detect(pixels)]
        if progress is not None:
            progress(min(start + BATCH, len(images)), len(images))
    result = evaluate(images, op_results, curve_results if curve else None,
                      operating.label_names, iou)
    thresholds = {label: operating.config.threshold(label) for label in result.classes}
    meta = {"ground_truth": str(ground_truth), "config": source, "model": operating.model_name,
            "providers": operating.providers,
            "thresholds": thresholds,
            "tiling": operating.tiling.mode if operating.tiling is not None else "off",
            "ms_per_image": round(1e3 * detect_seconds / max(1, len(images)), 1),
            "seconds": round(time.perf_counter() - started, 1)}
    return result, meta, images
