"""Rotated square crops for the landmark models, and the mapping of their outputs back to the image.

All coordinates here are continuous image coordinates (pixel ``i`` spans ``[i, i + 1)``), the
convention of YuNet's boxes and landmarks, so a crop and its inverse mapping agree to a fraction of
a pixel and a mirrored image gives mirrored points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropTransform:
    """A square crop of ``size`` pixels: crop point ``u`` (continuous) lies at ``A @ u + b`` in the image.

    Attributes:
        A: (2, 2) rotation times scale (image pixels per crop pixel).
        b: (2,) translation.
        size: side of the crop in pixels.
    """

    A: np.ndarray
    b: np.ndarray
    size: int

    @classmethod
    def around(cls, centre: np.ndarray, side: float, angle: float, size: int) -> "CropTransform":
        """The crop of side ``side`` image pixels centred on ``centre``, its x axis at ``angle``.

        Args:
            centre: (2,) image point at the crop's centre.
            side: side of the cropped square in image pixels.
            angle: direction (radians, image coordinates: y down) of the crop's x axis, e.g. the
                eye line, so that the line is horizontal in the crop.
            size: side of the crop in pixels (the network's input size).
        """
        c, s = math.cos(angle), math.sin(angle)
        a = (side / size) * np.array([[c, -s], [s, c]])
        b = np.asarray(centre, np.float64) - a @ np.array([size / 2.0, size / 2.0])
        return cls(a, b, int(size))

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) crop points to image points (float64)."""
        return np.asarray(points, np.float64) @ self.A.T + self.b

    def warp(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Cut the crop out of ``image`` (bilinear; outside the image is black) into ``out``."""
        # warpAffine addresses pixel centres: crop pixel j (centre j + 0.5) samples the image at
        # A (j + 0.5) + b, whose pixel index is that minus 0.5.
        offset = self.b - 0.5 + self.A @ np.array([0.5, 0.5])
        matrix = np.hstack([self.A, offset[:, None]])
        return cv2.warpAffine(image, matrix, (self.size, self.size), dst=out,
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def fill_rgb_blob(crop_bgr: np.ndarray, blob: np.ndarray, flip: bool = False) -> None:
    """Write a BGR uint8 crop into ``blob`` (3, H, W) float32 as RGB scaled to 0..1, optionally
    mirrored left-right, without allocating."""
    src = crop_bgr[:, ::-1] if flip else crop_bgr
    # One strided multiply per plane: BGR -> RGB is the reversed plane order.
    for plane in range(3):
        np.multiply(src[:, :, 2 - plane], np.float32(1.0 / 255.0), out=blob[plane],
                    casting="unsafe")
