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
from functools import partial
from pathlib import Path
from typing import Any

from ..core.imaging.frame_guard import InputLimits
from ..core.imaging.image_file import probe_image_header, read_image_file
from ..errors import ConfigError, GroundTruthError, ImageDecodeError, SensePerceptionError
from ..core.detection.labels import ANIMAL
from .ground_truth import (GroundTruthImage, animal_labels, check_inside, check_one_entry_per_image,
                           clip_to_image, load_ground_truth)
from .scoring import Evaluation, ImageDetections, evaluate, scored_labels

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


def _detect(detector: Any, pixels: list[Any]) -> list[Any]:
    """Detections per image, or the error of an image the detector cannot take (a 1x1 photo is
    too small to tile): the chunk in one call, each image alone only when that call fails."""
    try:
        return list(detector.detect(pixels))
    except SensePerceptionError:
        pass
    out: list[Any] = []
    for image in pixels:
        try:
            out.append(detector.detect([image])[0])
        except SensePerceptionError as exc:
            out.append(exc)
    return out


def check_images(images: list[GroundTruthImage], ground_truth: Path, limits: InputLimits,
                 skipped: list[dict[str, str]],
                 image_dir: Path | None = None) -> list[GroundTruthImage]:
    """The images whose header is readable within ``limits``, before any detection.

    A missing image is an error (the paths are wrong, not one image); an image that cannot be
    read is left out and recorded in ``skipped``. The header's size fills a width/height the
    ground truth left out, must agree with one it gives, and boxes wholly outside it are refused.

    Raises:
        GroundTruthError: an image named by two entries, a missing image, a size that
            disagrees, a box outside its image.
    """
    check_one_entry_per_image(images, str(ground_truth))
    missing = [str(g.path) for g in images if not g.path.exists()]
    if missing:
        fix = (f"are the images in --images {image_dir}?" if image_dir is not None else
               "paths are relative to the ground-truth file, or pass --images DIR")
        raise GroundTruthError(f"{len(missing)} image(s) of {ground_truth} are missing, first "
                               f"{missing[0]}; fix: {fix}")
    kept = []
    for g in images:
        try:
            # one open and read of the file for its size and EXIF turn, no pixel decoded (a PNG's
            # EXIF check decoded all of it, a second decode beside the detection pass's)
            header = probe_image_header(g.path, limits)
        except ImageDecodeError as exc:
            skipped.append(skip_record(g, exc))
            continue
        turned = header.turned
        # the detector sees the image as a viewer shows it, turned by its EXIF
        width, height = header.shown
        # Exactly the size as shown: a size with its sides swapped (labels drawn on the image
        # turned, or its EXIF orientation not applied) was taken, and the boxes scored on
        # pixels turned against them.
        if g.width and g.height and (g.width, g.height) != (width, height):
            shown_as = " as shown (its EXIF orientation turns it)" if turned else ""
            raise GroundTruthError(f"{ground_truth}: image {g.key}: the ground truth says "
                                   f"{g.width}x{g.height} px, but {g.path} is {width}x{height}"
                                   f"{shown_as}; the boxes are for another image, resolution "
                                   "or orientation")
        if not (g.width and g.height):
            g.width, g.height = width, height
        check_inside(g, f"{ground_truth}: image {g.key}")
        clip_to_image(g)
        kept.append(g)
    return kept


def skip_record(g: GroundTruthImage, reason: Exception | str) -> dict[str, str]:
    """What eval.json's ``skipped`` says of an image left out."""
    text = str(reason).removeprefix("file: ")
    return {"image": g.key, "path": str(g.path), "reason": text}


def run_evaluation(ground_truth: Path, params: dict[str, Any], source: str = "config",
                   iou: float = 0.5, fmt: str = "auto", image_dir: Path | None = None,
                   curve: bool = True,
                   progress: Callable[[int, int], None] | None = None,
                   before_detection: Callable[[list[Path]], None] | None = None,
                   detections_out: list[ImageDetections] | None = None,
                   ) -> tuple[Evaluation, dict[str, Any], list[GroundTruthImage]]:
    """Detect on every image of ``ground_truth`` and score the result.

    Args:
        ground_truth: project JSON, KITTI ``label_2`` folder or COCO json.
        params: flattened object_detector parameters (``detector.*``, ``tiling.*``, ``runtime.*``,
            ``input.*`` for the largest image accepted).
        source: where ``params`` came from, for error messages.
        iou: IoU a detection needs to count as a hit, in (0, 1].
        fmt: ground-truth format (``auto`` guesses).
        image_dir: where the images are, when not beside the labels.
        curve: also run the low-threshold pass for the precision-recall curve and AP; without
            it no AP and no curve are reported.
        progress: called with (images done, images) as detection goes.
        before_detection: called with the images' paths once the ground truth and the images'
            headers are checked and before the models load (the CLI checks there that its output is
            writable and apart from them).
        detections_out: when given, receives the operating point's detections of every scored
            image, in the order of the returned ground truth.

    Returns:
        (scores, facts about the run for eval.json, the ground truth scored). An image that
        cannot be read or detected on is left out of the scores and listed in the facts'
        ``skipped`` (image, path, reason).

    Raises:
        GroundTruthError: bad ground truth, a missing image, no class the detector reports,
            or no image readable (all checked before any detection, but the last).
        ConfigError, ModelError: from the detector's parameters.
    """
    from ..core.detection.detector_setup import build_detector
    from ..model_load import load_models

    if not 0.0 < iou <= 1.0:  # nan fails this too
        raise ConfigError(f"--iou must be within (0, 1], got {iou}")
    limits = InputLimits.from_params(params, source)
    skipped: list[dict[str, str]] = []
    images = check_images(load_ground_truth(ground_truth, fmt, image_dir), ground_truth, limits,
                          skipped, image_dir)
    if before_detection is not None:
        before_detection([g.path for g in images])
    # bounded as a node's load (R87): a session creation that never returns held eval for ever
    operating = load_models(partial(build_detector, params, source), "the detector's models",
                            params, source, "eval")
    if ANIMAL in operating.label_names:  # detector.animals: COCO's animal classes are one label
        images = [animal_labels(g) for g in images]
    labels, not_scored = scored_labels(images, operating.label_names)
    if images and not labels:
        raise GroundTruthError(
            f"{ground_truth}: no class of the ground truth is one the detector reports, so "
            f"nothing would be scored; its classes: {', '.join(not_scored) or 'none (no boxes)'}; "
            f"the detector's: {', '.join(operating.label_names)}; fix: name the classes as the "
            "detector does (pedestrian, car, ...)")
    curve_detector = load_models(partial(build_detector, curve_params(params), source),
                                 "the detector's models (the --curve copy)", params, source,
                                 "eval") if curve else None
    op_results: list[ImageDetections] = []
    curve_results: list[ImageDetections] = []
    scored: list[GroundTruthImage] = []
    started = time.perf_counter()
    detect_seconds = 0.0
    for start in range(0, len(images), BATCH):
        chunk, pixels = [], []
        for g in images[start:start + BATCH]:
            try:
                pixels.append(read_image_file(g.path, limits))
                chunk.append(g)
            except ImageDecodeError as exc:
                skipped.append(skip_record(g, exc))
        t0 = time.perf_counter()
        op = _detect(operating, pixels)
        detect_seconds += time.perf_counter() - t0
        low = _detect(curve_detector, pixels) if curve_detector is not None else op
        for g, image, a, b in zip(chunk, pixels, op, low, strict=True):
            failure = a if isinstance(a, Exception) else b if isinstance(b, Exception) else None
            if failure is not None:
                height, width = image.shape[:2]
                skipped.append(skip_record(g, f"cannot detect on {g.path} ({width}x{height} "
                                              f"px): {failure}"))
                continue
            height, width = image.shape[:2]
            if (width, height) != (g.width, g.height):  # the header's size, turned as checked
                skipped.append(skip_record(g, f"{g.path} decoded to {width}x{height} px, not "
                                              f"the {g.width}x{g.height} px of its boxes"))
                continue
            scored.append(g)
            op_results.append(_as_image_detections(operating, a))
            if curve_detector is not None:
                curve_results.append(_as_image_detections(curve_detector, b))
        if progress is not None:
            progress(min(start + BATCH, len(images)), len(images))
    if not scored:
        raise GroundTruthError(f"none of the {len(images) + len(skipped)} image(s) of "
                               f"{ground_truth} could be read or detected on; first: "
                               f"{skipped[0]['path']}: {skipped[0]['reason']}" if skipped else
                               f"{ground_truth} lists no image")
    if detections_out is not None:
        detections_out.extend(op_results)
    result = evaluate(scored, op_results, curve_results if curve else None,
                      operating.label_names, iou, ap=curve)
    thresholds = {label: operating.config.threshold(label) for label in result.classes}
    meta = {"ground_truth": str(ground_truth), "config": source, "model": operating.model_name,
            "providers": operating.providers,
            "thresholds": thresholds,
            "tiling": operating.tiling.mode if operating.tiling is not None else "off",
            "ms_per_image": round(1e3 * detect_seconds / max(1, len(scored)), 1),
            "seconds": round(time.perf_counter() - started, 1),
            "curve": curve, "skipped": skipped,
            "clipped_boxes": sum(g.clipped for g in scored)}
    return result, meta, scored
