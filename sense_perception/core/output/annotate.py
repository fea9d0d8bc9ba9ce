"""Draw detections on a BGR image (detect CLI output, replay videos, debug images)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..types import Detections

# Fixed colours for the driving labels so a class looks the same in every image and video (BGR).
_LABEL_COLOURS = {
    "pedestrian": (60, 20, 220),
    "bicycle": (0, 200, 255),
    "car": (255, 144, 30),
    "motorcycle": (0, 140, 255),
    "bus": (180, 105, 255),
    "truck": (50, 205, 50),
    "traffic_light": (0, 255, 255),
    "stop_sign": (0, 0, 180),
    "animal": (30, 105, 210),  # chocolate brown
    # The driver's face in the cabin: bright cyan stands out (WCAG contrast >= 3:1) on a dark and
    # on a mid-grey cabin alike, and from the skin tones inside the box.
    "driver": (255, 255, 0),
}


def label_colour(name: str) -> tuple[int, int, int]:
    """BGR colour of a label: fixed for the driving labels, hashed (but stable) for others."""
    if name in _LABEL_COLOURS:
        return _LABEL_COLOURS[name]
    h = sum((i + 1) * ord(c) for i, c in enumerate(name))
    return (64 + h * 37 % 192, 64 + h * 91 % 192, 64 + h * 53 % 192)


def text_colour_on(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """White on a dark background colour, black on a light one (BGR), so captions stay readable."""
    return (255, 255, 255) if sum(colour) < 400 else (0, 0, 0)


def caption(name: str, score: float, track: int) -> str:
    """The text shown with a box: ``"car 0.87 #12"`` (``#track`` only when tracked)."""
    return f"{name} {score:.2f}" + (f" #{track}" if track >= 0 else "")


def label_name(label: int, label_names: Sequence[str]) -> str:
    """Name of label index ``label``; the index itself when the names do not cover it."""
    return label_names[label] if 0 <= label < len(label_names) else str(label)


#: Colour of a camera's ignore regions (BGR): grey, a region is not an object.
IGNORE_COLOUR = (160, 160, 160)
IGNORE_CAPTION = "ignored"


def draw_detections(image: np.ndarray, detections: Detections, label_names: Sequence[str],
                    copy: bool = True, thickness: int = 0,
                    captions: Sequence[str] | None = None,
                    ignore_regions: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Draw boxes with "label score" captions (and "#track" when tracked).

    Args:
        image: BGR uint8 HxWx3.
        detections: boxes in this image's pixels.
        label_names: names indexed by ``detections.labels``.
        copy: draw on a copy (True) or in place.
        thickness: line thickness in pixels; 0 scales with the image size.
        captions: one text per detection instead of :func:`caption`'s (with the range, say).
        ignore_regions: (K, 2) polygons in this image's pixels where nothing is reported
            (:mod:`~sense_perception.core.detection.ignore_regions`): outlined in grey, captioned
            "ignored", under the boxes.

    Returns:
        The annotated image.
    """
    out = image.copy() if copy else image
    height, width = out.shape[:2]
    line = thickness or max(1, round(min(width, height) / 400))
    font_scale = max(0.4, min(width, height) / 1400)
    for polygon in ignore_regions:
        points = np.rint(polygon).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [points], True, IGNORE_COLOUR, line)
        x, y = points[:, 0, 0].min(), points[:, 0, 1].min()
        (_, th), _ = cv2.getTextSize(IGNORE_CAPTION, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        cv2.putText(out, IGNORE_CAPTION, (int(x) + line + 2, int(y) + th + line + 2),
                    cv2.FONT_HERSHEY_SIMPLEX, font_scale, IGNORE_COLOUR, 1, cv2.LINE_AA)
    corners = np.rint(detections.boxes).astype(np.int32)
    for k, ((x1, y1, x2, y2), score, label, track) in enumerate(zip(
            corners, detections.scores.tolist(), detections.labels.tolist(),
            detections.track_ids.tolist(), strict=True)):
        name = label_name(label, label_names)
        colour = label_colour(name)
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, line)
        text = caption(name, score, track) if captions is None else captions[k]
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        # Caption above the box, or inside it when the box touches the top edge.
        ty = int(y1) - base - 2 if y1 - th - base - 4 >= 0 else int(y1) + th + 2
        tx = int(min(max(x1, 0), max(width - tw - 2, 0)))
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty + base), colour, cv2.FILLED)
        cv2.putText(out, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    text_colour_on(colour), 1, cv2.LINE_AA)
    return out
