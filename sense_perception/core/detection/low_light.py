"""Low light: brighten the detector's input when a frame is dark.

A night frame is dark and, at the high gain a camera's auto-exposure sets, noisy: on the night
stand-in of the developer set (tools/make_night_proxy.py) the noise is what costs most, cars
missed and pedestrian false positives on the grain (docs/detection-quality.md, "Night"). When a
frame's mean luma is below ``dark_luma`` (0..255) it is smoothed (Gaussian, ``denoise_sigma``)
and its contrast equalised locally (``mode: clahe``, OpenCV's CLAHE on the luma of YCrCb)
before detection, and its colour (the Cr and Cb planes) smoothed much more (``chroma_sigma``):
at high gain every colour channel carries its own noise, which the detectors see as texture,
while the shapes they look for are in the luma. A camera's own image processing does the same
at night (chroma noise reduction). On the night stand-in the default finds 54 of 63
pedestrians instead of 46, at 0.44 pedestrian false positives per image instead of 0.45 (a
full-size blur of sigma 2: 48, 4: 53, 6: 55, 8: 52). A global gamma lift was measured too and
left out: it amplifies the noise.
Cameras differ in noise, so the luma's smoothing follows each dark frame's measured noise
(:func:`noise_sigma`): ``denoise_sigma`` applies up to ``noise_reference`` (the night stand-in's
7.6 grey levels) and grows with the noise above it (``denoise_noise_power`` 1); on a noisier stand-in
that halves the pedestrian false positives (0.70 to 0.36 per image) for 2 of 63 pedestrians and
finds 18 % more cars. Scaling the colour's smoothing too lost pedestrians (``chroma_noise_power``
0: fixed).
Boxes stay in the frame's pixels; frames at or above ``dark_luma`` pass untouched, so daylight
results do not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ...config import check_settings, setting
from ...errors import ConfigError
from ..imaging.image_decode import ImageView

MODES = ("off", "clahe")


@dataclass
class LowLightSettings:
    """``detector.low_light.*``: what is done to dark frames before detection."""

    mode: str = setting(
        "clahe", "contrast of dark frames: off or clahe (local contrast equalisation)",
        range=MODES)
    dark_luma: float = setting(
        60.0, "a frame whose mean luma (0..255) is below this is dark and brightened",
        range=(0.0, 255.0))
    clahe_clip: float = setting(2.0, "CLAHE contrast limit (OpenCV clipLimit)", range=(0.1, 40.0))
    denoise_sigma: float = setting(
        0.7, "Gaussian blur (sigma in pixels) of a dark frame before its tone curve, "
        "against the sensor noise of high gain; 0: none",
        range=(0.0, 5.0))
    chroma_sigma: float = setting(
        6.0, "Gaussian blur (sigma in pixels) of a dark frame's colour (Cr, Cb of "
        "YCrCb), against the colour noise of high gain; the luma keeps its detail; 0: none",
        range=(0.0, 20.0))
    noise_reference: float = setting(
        7.6, "luma noise (standard deviation in grey levels of 255, measured on each dark "
        "frame) up to which denoise_sigma and chroma_sigma apply as given; a dark frame's "
        "measured noise above it raises them (never lowered); 0: fixed",
        range=(0.0, 50.0))
    denoise_noise_power: float = setting(
        1.0, "how denoise_sigma follows the noise with noise_reference set: times "
        "(noise / noise_reference) to this power (1: in proportion, 0: fixed)",
        range=(0.0, 2.0))
    chroma_noise_power: float = setting(
        0.0, "how chroma_sigma follows the noise with noise_reference set: times "
        "(noise / noise_reference) to this power (1: in proportion, 0: fixed)",
        range=(0.0, 2.0))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"detector.low_light.mode must be one of {', '.join(MODES)}, got "
                              f"{self.mode!r}")
        check_settings(self)  # the declared ranges and NaN, in the loader's words


def mean_luma(image: np.ndarray) -> float:
    """Mean luma (0..255) of a BGR uint8 image, on a 1/8 subsample (cheap, and enough)."""
    return _luma(np.ascontiguousarray(image[::8, ::8]))


def brighten_input(image: Any, settings: LowLightSettings) -> Any:
    """A detector input (BGR array or :class:`ImageView`) through :func:`brighten`; a dark
    ImageView becomes a BGR one of the same size and source size. Other inputs (GPU tensors)
    pass unchanged."""
    if not _active(settings):
        return image
    if isinstance(image, ImageView):
        small = ImageView(image.array[::8, ::8], image.order).to_bgr()
        if _luma(small) >= settings.dark_luma:
            return image
        return ImageView(brighten(image.to_bgr(), settings, dark=True), "bgr", image.full_size)
    if isinstance(image, np.ndarray):
        return brighten(image, settings)
    return image


def _active(settings: LowLightSettings) -> bool:
    return settings.mode != "off" or settings.denoise_sigma > 0 or settings.chroma_sigma > 0


def _luma(bgr: np.ndarray) -> float:
    return float(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).mean())


def brighten(image: np.ndarray, settings: LowLightSettings, dark: bool = False) -> np.ndarray:
    """``image`` (BGR uint8) smoothed and equalised as ``settings`` say if it is dark (or
    ``dark`` says so), else itself."""
    if not _active(settings):
        return image
    if not dark and mean_luma(image) >= settings.dark_luma:
        return image
    out = image
    luma_sigma, chroma_sigma = smoothing(image, settings)
    if luma_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), luma_sigma)
    if settings.mode == "clahe" or settings.chroma_sigma > 0:
        # On the luma of YCrCb: 5-8x cheaper than Lab's L for the same local contrast.
        ycc = cv2.cvtColor(out, cv2.COLOR_BGR2YCrCb)
        if settings.mode == "clahe":
            clahe = cv2.createCLAHE(clipLimit=settings.clahe_clip, tileGridSize=(8, 8))
            ycc[:, :, 0] = clahe.apply(np.ascontiguousarray(ycc[:, :, 0]))
        if chroma_sigma > 0:
            ycc[:, :, 1:] = smooth_chroma(ycc[:, :, 1:], chroma_sigma)
        out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    return out


# Immerkaer's noise kernel: twice the difference of two Laplacian masks, blind to a frame's
# linear ramps; white noise of standard deviation s gives a response of standard deviation 6 s.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.int16)
# |N(0, 1)|'s median: the median absolute response is 0.6745 * 6 * s.
_MEDIAN_ABS = 0.6745


def noise_sigma(image: np.ndarray) -> float:
    """The luma noise of a BGR uint8 image (or a grey one): its standard deviation in grey levels
    (0..255), by Immerkaer's fast noise-variance kernel (1996) with the median of the absolute
    response on every 4th pixel in place of the mean, so that edges, lights and texture, a
    minority of the pixels, do not count as noise."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = grey.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    # The kernel's response at every 4th pixel only, from nine shifted strided views: a fifth of
    # a full-frame filter's cost, and as many samples as a median needs (130,000 at 1080p).
    response = np.zeros(((h - 2 + 3) // 4, (w - 2 + 3) // 4), np.int16)
    for (di, dj), weight in np.ndenumerate(_NOISE_KERNEL):
        response += int(weight) * grey[di:h - 2 + di:4, dj:w - 2 + dj:4].astype(np.int16)
    # The median of the integer |response|, interpolated within its bin (bin k holds k-0.5..k+0.5,
    # bin 0 holds 0..0.5): a plain median moves in steps of a quarter grey level of noise.
    counts = np.bincount(np.minimum(np.abs(response), 4095).ravel())
    half = response.size / 2.0
    cumulative = np.cumsum(counts)
    k = int(np.searchsorted(cumulative, half))
    low, width = (0.0, 0.5) if k == 0 else (k - 0.5, 1.0)
    median = low + width * (half - (cumulative[k] - counts[k])) / counts[k]
    return float(median) / (_MEDIAN_ABS * 6.0)


def smoothing(image: np.ndarray, settings: LowLightSettings) -> tuple[float, float]:
    """(luma sigma, colour sigma) for the dark frame ``image``: ``denoise_sigma`` and
    ``chroma_sigma``, raised with its measured noise above ``noise_reference`` when that is set
    (never lowered; each within its setting's range)."""
    luma, chroma = settings.denoise_sigma, settings.chroma_sigma
    if settings.noise_reference <= 0 or (luma <= 0 and chroma <= 0):
        return luma, chroma
    # Never below the values given: a camera whose own processing already smooths its noise (most
    # real ones) reads quiet here, and less smoothing than the measured default is untested.
    ratio = max(1.0, noise_sigma(image) / settings.noise_reference)
    return (min(5.0, luma * ratio ** settings.denoise_noise_power),
            min(20.0, chroma * ratio ** settings.chroma_noise_power))


def smooth_chroma(chroma: np.ndarray, sigma: float) -> np.ndarray:
    """The (H, W, 2) colour planes Gaussian-smoothed at ``sigma`` pixels. A wide blur is done at
    a lower resolution (shrunk by up to 8 so that sigma is about 1.5 there, then enlarged):
    within 1-2 grey levels of the full-size blur (mean 0.08 at sigma 6) at a fifth of its cost
    (3 ms instead of 18 for a 1080p frame here)."""
    factor = int(min(8, max(1, sigma // 1.5)))
    if factor == 1:
        return cv2.GaussianBlur(np.ascontiguousarray(chroma), (0, 0), sigma)
    h, w = chroma.shape[:2]
    small = cv2.resize(np.ascontiguousarray(chroma), (max(1, w // factor), max(1, h // factor)),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


__all__ = ["LowLightSettings", "MODES", "brighten", "brighten_input", "mean_luma", "noise_sigma",
           "smooth_chroma", "smoothing"]
