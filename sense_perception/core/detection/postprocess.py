"""Candidates -> detections: label mapping, source-pixel boxes, clipping, class-aware NMS, top-k.

Order matters for correctness: boxes are mapped to source pixels and clipped before NMS, so the
IoU is measured on what is reported (clipping can shrink a box that hangs off the image or into
letterbox padding). Boxes left with no area after clipping are dropped.
"""
from __future__ import annotations

import cv2
import numpy as np

from .decoders import Candidates
from .labels import LabelMap
from .preprocess import boxes_to_source
from ..types import Detections


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip (N, 4) xyxy boxes to the image, in place; returns them."""
    np.clip(boxes[:, 0::2], 0.0, float(width), out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0.0, float(height), out=boxes[:, 1::2])
    return boxes


def nms_class_aware(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                    iou_threshold: float, top_k: int = 0) -> np.ndarray:
    """Greedy NMS within each label; boxes of different labels never suppress each other.

    OpenCV's batched NMS offsets each label's boxes by ``label * (max coordinate + 1)`` so that
    one C++ pass handles all labels. A box is suppressed when its IoU with a kept, higher-scored
    box of the same label is > ``iou_threshold``; equal scores keep input order.

    Args:
        boxes: (N, 4) xyxy, non-negative coordinates.
        scores: (N,) confidences.
        labels: (N,) integer labels.
        iou_threshold: IoU above which the lower-scored box goes.
        top_k: keep at most this many (0 = all).

    Returns:
        Indices of the kept boxes, highest score first.
    """
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    xywh = np.empty((len(boxes), 4), np.float64)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    # OpenCV's own top_k cuts the candidates *before* suppression; cut the survivors instead.
    # cv2's stub wants Sequence[...] for these three; the binding takes numpy arrays directly.
    scores32, labels32 = scores.astype(np.float32), labels.astype(np.int32)
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores32, labels32,  # type: ignore[arg-type]
                                   -1.0, float(iou_threshold))
    keep = np.asarray(kept, np.int64).reshape(-1)
    return keep[:top_k] if top_k > 0 else keep


def finalize(candidates: Candidates, transform: np.ndarray, width: int, height: int,
             label_map: LabelMap, nms_iou: float, max_detections: int,
             apply_nms: bool = True, min_scores: np.ndarray | None = None) -> Detections:
    """Turn one image's decoder candidates into :class:`Detections` in source pixels.

    Args:
        candidates: decoder output for the image (network-input pixels, model class ids).
        transform: ``[sx, sy, dx, dy]`` from the preprocessor.
        width, height: source image size.
        label_map: model classes -> output labels (unmapped classes are dropped).
        nms_iou: class-aware NMS IoU threshold.
        max_detections: keep the best this many (0 = all).
        apply_nms: False for set-prediction models (DETR) that emit no duplicates.
        min_scores: (num_labels,) lowest score kept per output label (None: the decoder's
            threshold alone).
    """
    labels, mapped = label_map.apply(candidates.class_ids)
    if min_scores is not None:
        mapped &= candidates.scores >= min_scores[np.where(mapped, labels, 0)]
    boxes = candidates.boxes[mapped].astype(np.float32)
    scores = candidates.scores[mapped].astype(np.float32)
    labels = labels[mapped].astype(np.int32)
    clip_boxes(boxes_to_source(boxes, transform), width, height)
    area_ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, labels = boxes[area_ok], scores[area_ok], labels[area_ok]
    if apply_nms:
        order = nms_class_aware(boxes, scores, labels, nms_iou, max_detections)
    else:
        order = np.argsort(-scores, kind="stable")
        if max_detections > 0:
            order = order[:max_detections]
    return Detections(boxes[order], scores[order], labels[order])
