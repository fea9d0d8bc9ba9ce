"""Deterministic photometric and geometric variants of a face photo, for threshold calibration.

They stand in for the same person seen under other conditions (mirror pose, framing, exposure,
resolution, blur, compression, head roll). They are easier than truly different photos, so results
on them are reported apart from results on real pairs.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def _rotate(deg: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        return cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h),
                              borderMode=cv2.BORDER_REPLICATE)
    return apply


def _jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(img: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise RuntimeError(f"JPEG round trip at quality {quality} failed")
        return decoded
    return apply


def _crop(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[int(h * 0.05):int(h * 0.90), int(w * 0.08):int(w * 0.95)])


def _scale(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return apply


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


#: name -> transform; applied to the whole photo before detection.
AUGMENTATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "flip": lambda img: np.ascontiguousarray(img[:, ::-1]),
    "crop": _crop,
    "bright": lambda img: cv2.convertScaleAbs(img, alpha=1.0, beta=50),
    "dark": lambda img: cv2.convertScaleAbs(img, alpha=0.5, beta=0),
    "scale50": _scale(0.5),
    "scale25": _scale(0.25),
    "blur": lambda img: cv2.GaussianBlur(img, (0, 0), 3),
    "jpeg20": _jpeg(20),
    "rot15": _rotate(15),
    "grey": _grey,
}


def augment(image: np.ndarray) -> dict[str, np.ndarray]:
    """All variants of ``image`` by name."""
    return {name: fn(image) for name, fn in AUGMENTATIONS.items()}
