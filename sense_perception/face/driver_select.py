"""Choose the driver's face: the largest face whose centre lies in the driver-seat region, a face on
the driver's half of the image first (:func:`select_driver`); and tell whether a face box is the
previous frame's face, moved a little (:func:`same_face`)."""
from __future__ import annotations

import numpy as np


#: Default seat regions (normalised x0, y0, x1, y1). A cabin camera faces rearward into the car,
#: so the driver of a left-hand-drive car (seat on the vehicle's left) appears on the image's right.
DEFAULT_REGIONS = {
    "left": (0.35, 0.0, 1.0, 1.0),
    "right": (0.0, 0.0, 0.65, 1.0),
}
#: The image half the driver's seat is on, by ``face.driver_side`` (the default regions reach 0.15
#: into the other half, where a passenger's face may be).
DRIVER_HALF = {"left": "right", "right": "left"}
#: A face on the driver's half wins over a larger one in the region's overlap with the passenger's
#: half while it is at least this share of that face's width: a face of the front row. A rear-seat
#: face behind the driver is further from the camera, well under half as wide.
FRONT_ROW_WIDTH = 0.5


def validate_region(region: object, side: str = "left") -> tuple[float, float, float, float]:
    """The effective driver region: ``region`` if given, else the default for seat ``side``.

    Raises:
        ValueError: side is not left/right or region is not a normalised rectangle.
    """
    if side not in DEFAULT_REGIONS:
        raise ValueError(f"face.driver_side must be 'left' or 'right', got {side!r}")
    if not region:
        return DEFAULT_REGIONS[side]
    r = [float(v) for v in region]  # type: ignore[attr-defined]
    if len(r) != 4 or not (0.0 <= r[0] < r[2] <= 1.0 and 0.0 <= r[1] < r[3] <= 1.0):
        raise ValueError(f"face.driver_region must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1 and "
                         f"0 <= y0 < y1 <= 1, got {region}")
    return r[0], r[1], r[2], r[3]


def select_driver(boxes: np.ndarray, image_shape: tuple[int, ...],
                  region: tuple[float, float, float, float], driver_half: str | None = None) -> int:
    """Index of the driver's face among ``boxes`` (N, 4 x1 y1 x2 y2), or -1 when none qualifies.

    The driver is the largest face (by area) whose centre lies inside ``region`` (normalised to the
    image size): a passenger or a face on a rear seat is smaller or outside the region.

    Args:
        driver_half: ``right`` or ``left``, the image half the driver's seat is on (the default
            regions, :data:`DRIVER_HALF`); None (a ``face.driver_region`` of the user's) takes the
            largest face in the region. With it, the largest face on that half is the driver when
            the largest face in the region lies on the other half (a passenger leaning towards the
            middle, nearer the camera than the driver) and the first is at least
            :data:`FRONT_ROW_WIDTH` of its width: the passenger was embedded, identified and
            watched for attention as the driver, and the driver was not watched at all.
    """
    if boxes.shape[0] == 0:
        return -1
    h, w = image_shape[:2]
    cx = (boxes[:, 0] + boxes[:, 2]) * (0.5 / w)
    cy = (boxes[:, 1] + boxes[:, 3]) * (0.5 / h)
    inside = (cx >= region[0]) & (cx <= region[2]) & (cy >= region[1]) & (cy <= region[3])
    if not inside.any():
        return -1
    width = boxes[:, 2] - boxes[:, 0]
    area = np.where(inside, width * (boxes[:, 3] - boxes[:, 1]), -1.0)
    best = int(area.argmax())
    if driver_half is None:
        return best
    if driver_half not in ("left", "right"):
        raise ValueError(f"driver_half must be 'left', 'right' or None, got {driver_half!r}")
    on_half = inside & ((cx >= 0.5) if driver_half == "right" else (cx <= 0.5))
    if on_half[best]:
        return best
    front = on_half & (width >= FRONT_ROW_WIDTH * width[best])
    return int(np.where(front, area, -1.0).argmax()) if front.any() else best


#: A box shows the previous frame's face when its centre moved less than this share of the previous
#: box's size and its size changed less than this factor (a head moves little in 1/10 s).
TRACK_SHIFT = 0.15
TRACK_SCALE = 1.3


def same_face(previous: np.ndarray, box: np.ndarray) -> bool:
    """True when ``box`` (x1, y1, x2, y2) shows the face of ``previous`` from the frame before."""
    box, old = np.asarray(box, np.float64), np.asarray(previous, np.float64)
    size, old_size = float(max(box[2:] - box[:2])), float(max(old[2:] - old[:2]))
    shift = float(np.linalg.norm((box[:2] + box[2:] - old[:2] - old[2:]) / 2.0))
    return bool(old_size > 0 and shift < TRACK_SHIFT * old_size
                and 1.0 / TRACK_SCALE < size / old_size < TRACK_SCALE)
