"""Draw the attention of a cabin frame on the annotated video (``replay --video-cabin`` only)."""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

NOSE_TIP = 1  # mesh index
#: BGR colour per escalation level: green, yellow, orange, red.
LEVEL_COLOURS = ((80, 200, 80), (0, 220, 255), (0, 140, 255), (0, 0, 255))


def attention_caption(attention: Any) -> str:
    """One line: state, level, head angles and eye openness."""
    status, pose, openness = attention.status, attention.pose, attention.eye_openness()
    text = f"attention: {status.state.value} level {status.level}"
    if pose is not None:
        text += f" | yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f} roll {pose.roll:+.0f} deg"
    if openness is not None:
        text += f" | eyes R {openness['right']:.2f} L {openness['left']:.2f}"
    return text


def draw_attention(image: np.ndarray, attention: Any) -> np.ndarray:
    """Draw the nose direction, the eye contours and :func:`attention_caption` (in place)."""
    height, width = image.shape[:2]
    colour = LEVEL_COLOURS[min(attention.status.level, 3)]
    mesh, pose, eyes = attention.measurement.mesh, attention.pose, attention.eyes
    if mesh is not None and pose is not None:
        # The head's axes at the nose tip, seen along the optical axis (x, y of each column of the
        # rotation): x to the person's left red, up green, the face's forward direction in the
        # level's colour (a dot when the driver looks straight into the camera).
        nose = mesh.points[NOSE_TIP, :2]
        span = 0.5 * float(np.ptp(mesh.points[:, 0]))
        thickness = max(2, width // 400)
        for axis, axis_colour in ((0, (60, 60, 255)), (1, (60, 255, 60)), (2, colour)):
            tip = nose + span * pose.rotation[:2, axis]
            cv2.arrowedLine(image, _pt(nose), _pt(tip), axis_colour, thickness, cv2.LINE_AA,
                            tipLength=0.2)
    if eyes is not None:
        for contour in eyes.contours.values():
            cv2.polylines(image, [np.round(contour[[*range(9), *range(15, 8, -1)]] - 0.5)
                                  .astype(np.int32)], True, colour, 1, cv2.LINE_AA)
    text = attention_caption(attention)
    scale = max(0.5, min(width, height) / 900)
    (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = th + base + 8
    image[height - band:] = (image[height - band:] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (6, height - base - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1,
                cv2.LINE_AA)
    return image


def _pt(p: np.ndarray) -> tuple[int, int]:
    # continuous image coordinates -> the pixel index cv2 draws at
    return int(math.floor(p[0])), int(math.floor(p[1]))
