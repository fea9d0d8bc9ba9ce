"""Nested boxes re-detected on a crop: is the inner box a part of the outer object or an object?

What the duplicates step keeps nested (``detector.duplicates``: the two-object rule keeps a box
inside a larger box of its label when it stands higher and has an object's outline) is either a
car seen behind a nearer car or a part of the nearer car (its upper half, a strip across its
windows), which the box geometry and the scores cannot tell apart (docs/detection-quality.md,
"Which nested boxes are objects"). Seen at a higher resolution they can be: the outer box is cut
from the frame with a margin of :data:`MARGIN` of its size on every side and detected again by
the same model. A part of the car is then absorbed into one whole-car box, while a car behind it
comes out as a box of its own. The inner box goes when the crop shows the outer object (a box of
its label at IoU at least :data:`OUTER_IOU` with the outer box) and no box of its label on the
crop matches the inner box (IoU at least :data:`MATCH_IOU`, and more than it matches the outer).
A crop on which the model does not find the outer object again (a dark, noisy night frame) tells
nothing, and its nested boxes stay: on the night stand-in, deciding on such crops too lost 7 of
514 cars seen behind cars.

``detector.duplicates.nested_recheck_crops`` caps the crops per frame (best-scored outer boxes
first; 0 turns the check off). Each crop costs one more image through the model (batched with the
frame's other crops), at ``nested_recheck_input`` (the same weights at a smaller input: a crop is
one object and its margin): the 2-core CPU default affords one crop a frame at 256x256 (the
measurements and the cost are in the docs).
An outer box cut to a crop under the least frame a detector takes (``MIN_FRAME_PX`` a side) is not
checked: its nested boxes stay.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..imaging.frame_guard import MIN_FRAME_PX
from ..imaging.image_decode import ImageView
from ..types import Detections
from .duplicates import nested_matrix, pairwise_iou

#: share of the outer box's width and height added on each side of its crop
MARGIN = 0.2
#: IoU a crop's box needs with the inner box (and more than with the outer) to re-detect it
MATCH_IOU = 0.3
#: IoU a crop's box needs with the outer box for the crop to count (the outer object seen again)
OUTER_IOU = 0.5
#: share of a box's area inside the larger box that makes the pair nested (the duplicates step's
#: default ``nested_containment``)
NESTED = 0.8


def nested_pairs(boxes: np.ndarray, labels: np.ndarray, share: float = NESTED) -> np.ndarray:
    """(K, 2) index pairs (inner, outer): a box at least ``share`` inside a larger box (by the
    duplicates step's measure) of its label."""
    if len(boxes) < 2:
        return np.zeros((0, 2), np.int64)
    return np.argwhere(nested_matrix(boxes, labels, share))


def crop_rect(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel rectangle (x0, y0, x1, y1) of ``box`` grown by :data:`MARGIN` on each side,
    within a ``width`` x ``height`` image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = MARGIN * (x2 - x1), MARGIN * (y2 - y1)
    return (max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my))),
            min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my))))


def absorbed(inner: np.ndarray, outer: np.ndarray, found: Detections, label: int) -> bool:
    """True when ``found`` (the crop's detections, image pixels) holds the outer object again (a
    box of ``label`` at IoU >= :data:`OUTER_IOU` with ``outer``) but nothing of ``label`` for
    ``inner`` (IoU >= :data:`MATCH_IOU` with it and more than with ``outer``)."""
    boxes = found.boxes[found.labels == label]
    if not len(boxes):
        return False
    iou = pairwise_iou(np.vstack([inner[None], outer[None], boxes]).astype(np.float64))
    to_inner, to_outer = iou[0, 2:], iou[1, 2:]
    if not (to_outer >= OUTER_IOU).any():
        return False
    return not bool(((to_inner >= MATCH_IOU) & (to_inner > to_outer)).any())


def _crop(image: Any, rect: tuple[int, int, int, int]) -> Any:
    x0, y0, x1, y1 = rect
    if isinstance(image, ImageView):
        return ImageView(image.array[y0:y1, x0:x1], image.order)
    if isinstance(image, np.ndarray):
        return image[y0:y1, x0:x1]
    return image[y0:y1, x0:x1].cpu().numpy()  # a BGR HxWx3 device tensor (DeviceDetector)


def _size(image: Any) -> tuple[int, int, float, float]:
    """(width, height) of the pixels held and their scale to the image's full size."""
    pixels = image.array if isinstance(image, ImageView) else image
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    full = image.full_size if isinstance(image, ImageView) else None
    if full is None:
        return width, height, 1.0, 1.0
    return width, height, full[0] / width, full[1] / height


def recheck_nested(images: Sequence[Any], found: list[Detections], limit: int,
                   detect: Callable[[list[Any]], list[Detections]],
                   share: float = NESTED) -> list[Detections]:
    """``found`` without the nested boxes that a crop of their outer box absorbs into it.

    Args:
        images: the frames ``found`` was detected on (arrays, ImageViews, device tensors).
        found: their detections after the duplicates step, image pixels.
        limit: most outer boxes re-detected per frame (best score first); 0: none.
        detect: the model on a list of crops, boxes in crop pixels (no duplicates step).
        share: what makes a pair nested (``nested_containment``); 0: no pair is, nothing is done.
    """
    if limit <= 0 or share <= 0.0:
        return found
    crops: list[Any] = []
    jobs: list[tuple[int, int, tuple[int, int, int, int], float, float]] = []
    pairs_of: list[np.ndarray] = []
    for index, (image, dets) in enumerate(zip(images, found, strict=True)):
        pairs = nested_pairs(dets.boxes, dets.labels, share)
        pairs_of.append(pairs)
        if not len(pairs):
            continue
        width, height, sx, sy = _size(image)
        outers = np.unique(pairs[:, 1])
        outers = outers[np.argsort(-dets.scores[outers], kind="stable")][:limit]
        for outer in outers:
            box = dets.boxes[outer] / np.array([sx, sy, sx, sy], np.float32)
            rect = crop_rect(box, width, height)
            if min(rect[2] - rect[0], rect[3] - rect[1]) < MIN_FRAME_PX:
                continue
            crops.append(_crop(image, rect))
            jobs.append((index, int(outer), rect, sx, sy))
    if not crops:
        return found
    on_crops = detect(crops)
    drop = [np.zeros(len(d), bool) for d in found]
    for (index, outer, (x0, y0, _, _), sx, sy), crop_dets in zip(jobs, on_crops, strict=True):
        dets, pairs = found[index], pairs_of[index]
        crop_dets.boxes = (crop_dets.boxes + np.array([x0, y0, x0, y0], np.float32)) \
            * np.array([sx, sy, sx, sy], np.float32)
        for inner in pairs[pairs[:, 1] == outer, 0]:
            if absorbed(dets.boxes[inner], dets.boxes[outer], crop_dets, int(dets.labels[inner])):
                drop[index][inner] = True
    return [d.select(~gone) if gone.any() else d for d, gone in zip(found, drop, strict=True)]


__all__ = ["MARGIN", "MATCH_IOU", "OUTER_IOU", "absorbed", "crop_rect", "nested_pairs",
           "recheck_nested"]
