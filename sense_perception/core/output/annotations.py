"""Detections as foxglove_msgs/ImageAnnotations: boxes that Foxglove's Image panel draws over the
camera frame (ROS-free, message-shaped dicts like :mod:`.messages`).

Foxglove draws neither vision_msgs boxes nor anything without a timestamp matching the image, so
each detection becomes one closed polyline (``LINE_LOOP`` through its 4 corners, in source-image
pixels, origin at the top-left corner of the top-left pixel as in Detection2DArray) in its label's
colour, plus a caption (``"car 0.87 #12"``) at its top-left corner. A camera's ignore regions
(:mod:`~sense_perception.core.detection.ignore_regions`) follow the boxes as grey, lightly filled
closed polylines without a caption. Every timestamp is the image header's stamp, so the annotations
line up with their frame in a bag and live.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..types import Detections, Header
from .annotate import IGNORE_COLOUR, caption, label_colour, label_name, text_colour_on

IMAGE_ANNOTATIONS = "foxglove_msgs/msg/ImageAnnotations"
# foxglove_msgs/PointsAnnotation.type constants (sense_perception/interfaces/foxglove_msgs/msg)
POINTS, LINE_LOOP, LINE_STRIP, LINE_LIST = 1, 2, 3, 4

_TRANSPARENT = {"r": 0.0, "g": 0.0, "b": 0.0, "a": 0.0}
# Without the image size: what suits a 720p frame.
_DEFAULT_THICKNESS, _DEFAULT_FONT_PX = 2.0, 14.0


def rgba(bgr: tuple[int, int, int], alpha: float = 1.0) -> dict[str, float]:
    """foxglove_msgs/Color (0..1 floats) of an 8-bit BGR colour."""
    b, g, r = bgr
    return {"r": r / 255.0, "g": g / 255.0, "b": b / 255.0, "a": float(alpha)}


def label_rgba(name: str) -> dict[str, float]:
    """foxglove_msgs/Color of a label: the same colour as in the replay videos and debug images."""
    return rgba(label_colour(name))


def _sizes(image_size: tuple[int, int] | None) -> tuple[float, float]:
    """Line thickness and font size in pixels, scaled with the image like the drawn captions."""
    if not image_size:
        return _DEFAULT_THICKNESS, _DEFAULT_FONT_PX
    short = min(image_size)
    return float(max(1, round(short / 400))), float(max(12, round(short / 50)))


def image_annotations(header: Header, detections: Detections, label_names: Sequence[str],
                      image_size: tuple[int, int] | None = None,
                      captions: Sequence[str] | None = None,
                      ignore_regions: Sequence[np.ndarray] = ()) -> dict[str, Any]:
    """foxglove_msgs/ImageAnnotations of one frame's detections.

    Args:
        header: the image's header; its stamp is every annotation's timestamp.
        detections: boxes in the image's pixels.
        label_names: names indexed by ``detections.labels`` (colour and caption).
        image_size: (width, height) of the image, to scale line and font; None: 720p sizes.
        captions: one text per detection instead of ``"label score #track"`` (the cabin camera
            shows the published driver identity this way).
        ignore_regions: (K, 2) polygons in the image's pixels where nothing is reported.

    Returns:
        The message as a dict: ``points`` one LINE_LOOP per detection, then one per ignore
        region; ``texts`` one caption per detection (same order); ``circles`` empty. Without
        detections, ``points`` starts with one :func:`stamp_carrier` so the message still carries
        the image's stamp.

    Raises:
        ValueError: ``captions`` does not have one entry per detection.
    """
    n = len(detections)
    if captions is not None and len(captions) != n:
        raise ValueError(f"captions: {len(captions)} given for {n} detections")
    stamp = {"sec": header.sec, "nanosec": header.nanosec}
    thickness, font_px = _sizes(image_size)
    regions = [{
        "timestamp": stamp,
        "type": LINE_LOOP,
        "points": [{"x": float(x), "y": float(y)} for x, y in np.asarray(polygon, np.float64)],
        "outline_color": rgba(IGNORE_COLOUR),
        "outline_colors": [],
        "fill_color": rgba(IGNORE_COLOUR, 0.25),
        "thickness": thickness,
    } for polygon in ignore_regions]
    if n == 0:
        # Foxglove's "Sync annotations" matches annotations to images by this stamp: an empty
        # message would carry none and hide the image or keep the previous frame's boxes.
        return {"circles": [], "points": [stamp_carrier(header), *regions], "texts": []}
    boxes = detections.boxes.astype(np.float64)
    x1, y1, x2, y2 = boxes.T
    # (N, 4, 2) corners clockwise from the top-left; LINE_LOOP closes the last edge itself.
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                        np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1).tolist()
    # The text's origin is its bottom-left: above the box, or inside it at the image's top edge.
    text_y = np.where(y1 - thickness >= font_px, y1 - thickness, y1 + font_px).tolist()
    text_x = np.maximum(x1, 0.0).tolist()
    names = [label_name(i, label_names) for i in detections.labels.tolist()]
    if captions is None:
        captions = [caption(name, score, track) for name, score, track in
                    zip(names, detections.scores.tolist(), detections.track_ids.tolist(), strict=True)]
    # per label: (outline and text background, text colour)
    palette = {name: (rgba(label_colour(name)), rgba(text_colour_on(label_colour(name))))
               for name in set(names)}
    return {
        "circles": [],
        "points": [{
            "timestamp": stamp,
            "type": LINE_LOOP,
            "points": [{"x": x, "y": y} for x, y in corners[i]],
            "outline_color": palette[names[i]][0],
            "outline_colors": [],
            "fill_color": _TRANSPARENT,
            "thickness": thickness,
        } for i in range(n)] + regions,
        "texts": [{
            "timestamp": stamp,
            "position": {"x": text_x[i], "y": text_y[i]},
            "text": str(captions[i]),
            "font_size": font_px,
            "text_color": palette[names[i]][1],
            "background_color": palette[names[i]][0],
        } for i in range(n)],
    }


def stamp_carrier(header: Header) -> dict[str, Any]:
    """A PointsAnnotation with no points, drawn as nothing, that carries the image's stamp: what
    a frame without detections publishes, so its annotations still line up with its image."""
    return {"timestamp": {"sec": header.sec, "nanosec": header.nanosec}, "type": POINTS,
            "points": [], "outline_color": _TRANSPARENT, "outline_colors": [],
            "fill_color": _TRANSPARENT, "thickness": 0.0}


def image_size_of(image: Any) -> tuple[int, int]:
    """(width, height) in which detections of ``image`` are reported: a decoded frame (HxWxC
    array) or an ImageView (its ``source_size``, the full size even after a reduced decode)."""
    size = getattr(image, "source_size", None)
    if size is not None:
        return int(size[0]), int(size[1])
    return int(image.shape[1]), int(image.shape[0])


__all__ = ["IMAGE_ANNOTATIONS", "LINE_LIST", "LINE_LOOP", "LINE_STRIP", "POINTS", "image_annotations",
           "image_size_of", "label_rgba", "rgba", "stamp_carrier"]
