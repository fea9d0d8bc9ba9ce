"""Low light: brighten the detector's input when a frame is dark.

A night frame is dark and, at the high gain a camera's auto-exposure sets, noisy: on the night
stand-in of the developer set (tools/make_night_proxy.py) the noise is what costs most, cars
missed and pedestrian false positives on the grain (docs/detection-quality.md, "Night"). When a
frame's mean luma is below ``dark_luma`` (0..255) it is smoothed (Gaussian, ``denoise_sigma``)
and its contrast equalised locally (``mode: clahe``, OpenCV's CLAHE on the luma of YCrCb)
before detection. A global gamma lift was measured too and left out: it amplifies the noise.
Boxes stay in the frame's pixels; frames at or above ``dark_luma`` pass untouched, so daylight
results do not change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ...errors import ConfigError
from ..imaging.image_decode import ImageView

MODES = ("off", "clahe")


@dataclass
class LowLightSettings:
    """``detector.low_light.*``: what is done to dark frames before detection."""

    mode: str = field(default="clahe", metadata={
        "description": "contrast of dark frames: off or clahe (local contrast equalisation)",
        "range": MODES})
    dark_luma: float = field(default=60.0, metadata={
        "description": "a frame whose mean luma (0..255) is below this is dark and brightened",
        "range": (0.0, 255.0)})
    clahe_clip: float = field(default=2.0, metadata={
        "description": "CLAHE contrast limit (OpenCV clipLimit)", "range": (0.1, 40.0)})
    denoise_sigma: float = field(default=0.7, metadata={
        "description": "Gaussian blur (sigma in pixels) of a dark frame before its tone curve, "
            "against the sensor noise of high gain; 0: none",
        "range": (0.0, 5.0)})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"detector.low_light.mode must be one of {', '.join(MODES)}, got "
                              f"{self.mode!r}")
        for key, low, high in (("dark_luma", 0.0, 255.0), ("clahe_clip", 0.1, 40.0),
                               ("denoise_sigma", 0.0, 5.0)):
            value = getattr(self, key)
            if not low <= value <= high:
                raise ConfigError(f"detector.low_light.{key} must be within {low:g}..{high:g}, "
                                  f"got {value}")


def mean_luma(image: np.ndarray) -> float:
    """Mean luma (0..255) of a BGR uint8 image, on a 1/8 subsample (cheap, and enough)."""
    return _luma(np.ascontiguousarray(image[::8, ::8]))


def brighten_input(image: Any, settings: LowLightSettings) -> Any:
    """A detector input (BGR array or :class:`ImageView`) through :func:`brighten`; a dark
    ImageView becomes a BGR one of the same size and source size. Other inputs (GPU tensors)
    pass unchanged."""
    if settings.mode == "off" and not settings.denoise_sigma:
        return image
    if isinstance(image, ImageView):
        small = ImageView(image.array[::8, ::8], image.order).to_bgr()
        if _luma(small) >= settings.dark_luma:
            return image
        return ImageView(brighten(image.to_bgr(), settings, dark=True), "bgr", image.full_size)
    if isinstance(image, np.ndarray):
        return brighten(image, settings)
    return image


def _luma(bgr: np.ndarray) -> float:
    return float(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean())


def brighten(image: np.ndarray, settings: LowLightSettings, dark: bool = False) -> np.ndarray:
    """``image`` (BGR uint8) smoothed and equalised as ``settings`` say if it is dark (or
    ``dark`` says so), else itself."""
    if settings.mode == "off" and not settings.denoise_sigma:
        return image
    if not dark and mean_luma(image) >= settings.dark_luma:
        return image
    out = image
    if settings.denoise_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), settings.denoise_sigma)
    if settings.mode == "clahe":
        # On the luma of YCrCb: 5-8x cheaper than Lab's L for the same local contrast.
        ycc = cv2.cvtColor(out, cv2.COLOR_BGR2YCrCb)
        clahe = cv2.createCLAHE(clipLimit=settings.clahe_clip, tileGridSize=(8, 8))
        ycc[:, :, 0] = clahe.apply(np.ascontiguousarray(ycc[:, :, 0]))
        out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    return out


__all__ = ["LowLightSettings", "MODES", "brighten", "brighten_input", "mean_luma"]
