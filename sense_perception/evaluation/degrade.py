"""Seeded, documented degradations of real frames for measuring the camera-health conditions.

Each degradation takes a clean BGR frame and a :class:`numpy.random.Generator` and returns the
degraded copy; the same seed gives the same pixels. They model the physics of the fault, sized
by the frame so that 720p and 1080p frames get the same optical effect:

- ``soil_opaque`` (mud, a sticker, a hand): irregular blobs covering a drawn share of the view
  (10-60 %), far out of focus (soft edges), dark (they absorb light), with a little low-frequency
  shading. Expected condition: ``blocked``.
- ``soil_semi`` (drying mud, dust film): the same blobs, partly transparent: inside them the
  scene is strongly blurred (scatter) and mixed with the soiling's colour. Expected: ``blocked``.
- ``water_drops``: drops of 2-8 % of the width covering 50-85 % of the view, each showing the
  scene blurred. Expected: ``low_visibility``.
- ``defocus``: Gaussian blur with sigma 0.4-1.2 % of the width (8-23 px at 1080p; 2-7 px at a
  640-px detector input, where it costs recall). Expected: ``low_visibility``.
- ``fog``: the atmospheric model I = J t + A (1 - t), transmission t 0.15-0.4 (falling towards
  the horizon), airlight A a light grey. Expected: ``low_visibility``.
- ``under_exposed`` / ``over_exposed``: exposure x0.1 / x4 applied in linear light (sRGB decoded,
  scaled, clipped, re-encoded), as a wrong sensor gain or shutter would. Expected: ``dark`` /
  ``bright``.
- ``black`` / ``white``: a frame of all 0 / all 255 plus sensor noise. Expected: ``dark`` /
  ``bright``.

Frozen streams are made by repeating a frame (:func:`repeated`).

Scene proxies for the no-alarm cases (:func:`night`, :func:`night_open_sky`, :func:`tunnel`, :func:`crop`,
:func:`standing_still`, :func:`pulling_in`) are built from the same real frames; what
they cannot show is written in docs/camera-health.md.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

#: Degradation name -> the image condition it must raise.
EXPECTED = {"soil_opaque": "blocked", "soil_semi": "blocked", "water_drops": "low_visibility",
            "defocus": "low_visibility", "fog": "low_visibility", "under_exposed": "dark",
            "over_exposed": "bright", "black": "dark", "white": "bright"}

_SRGB_TO_LINEAR = (((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32)
_SRGB_TO_LINEAR[:11] = np.arange(11) / 255.0 / 12.92


_LINEAR_STEPS = 1 << 16
_LINEAR_TO_SRGB = np.round(255 * np.where(
    (lin := np.arange(_LINEAR_STEPS) / (_LINEAR_STEPS - 1)) <= 0.0031308, lin * 12.92,
    1.055 * lin ** (1 / 2.4) - 0.055)).astype(np.uint8)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    """8-bit sRGB of linear light in 0..1 (clipped), through a 16-bit lookup table."""
    index = np.clip(linear * (_LINEAR_STEPS - 1), 0, _LINEAR_STEPS - 1).astype(np.uint16)
    return _LINEAR_TO_SRGB[index]


def exposure(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` with its exposure scaled by ``factor`` in linear light, clipped at full scale."""
    return _to_srgb(_SRGB_TO_LINEAR[image] * factor)


def _blob_mask(shape: tuple[int, int], coverage: float, rng: np.random.Generator) -> np.ndarray:
    """A float mask in 0..1 of irregular blobs covering ``coverage`` of the view, soft-edged."""
    h, w = shape
    field = cv2.GaussianBlur(rng.standard_normal((24, 40)).astype(np.float32), (0, 0), 2.5)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    hard = (field > np.quantile(field, 1.0 - coverage)).astype(np.float32)
    return cv2.GaussianBlur(hard, (0, 0), 0.012 * w)


def _soil_colour(rng: np.random.Generator) -> np.ndarray:
    """A mud / dirt colour (BGR): brown to grey, grey level about 25-90."""
    level = rng.uniform(25, 90)
    tint = np.array([rng.uniform(0.6, 0.9), rng.uniform(0.8, 1.0), 1.0])  # browner: less blue
    return level * tint / tint.mean()


def soil_opaque(image: np.ndarray, rng: np.random.Generator,
                coverage: float | None = None) -> np.ndarray:
    """Opaque soiling blobs covering ``coverage`` (drawn in 0.1..0.6 when None) of the view."""
    h, w = image.shape[:2]
    coverage = rng.uniform(0.1, 0.6) if coverage is None else coverage
    mask = _blob_mask((h, w), coverage, rng)[..., None]
    shade = cv2.resize(rng.uniform(0.85, 1.15, (3, 5)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)[..., None]
    mud = _soil_colour(rng)[None, None, :] * shade
    return np.clip(image * (1 - mask) + mud * mask, 0, 255).astype(np.uint8)


def soil_semi(image: np.ndarray, rng: np.random.Generator,
              coverage: float | None = None) -> np.ndarray:
    """Semi-transparent soiling: blobs where the scene is blurred and mixed with dirt (alpha 0.6-0.85)."""
    h, w = image.shape[:2]
    coverage = rng.uniform(0.1, 0.6) if coverage is None else coverage
    mask = _blob_mask((h, w), coverage, rng)[..., None] * rng.uniform(0.6, 0.85)
    scattered = cv2.GaussianBlur(image, (0, 0), 0.02 * w).astype(np.float32)
    mud = _soil_colour(rng)[None, None, :]
    return np.clip(image * (1 - mask) + (0.5 * scattered + 0.5 * mud) * mask, 0, 255).astype(np.uint8)


def water_drops(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Water drops on the lens: round lenses of 2-8 % of the width covering 50-85 % of the view."""
    h, w = image.shape[:2]
    target = rng.uniform(0.5, 0.85)
    mask = np.zeros((h, w), np.float32)
    while mask.mean() < target:
        r = int(rng.uniform(0.02, 0.08) * w)
        cv2.circle(mask, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), r, 1.0, -1)
    soft = cv2.GaussianBlur(mask, (0, 0), 0.004 * w)[..., None]
    blurred = cv2.GaussianBlur(image, (0, 0), 0.015 * w)
    return np.clip(image * (1 - soft) + blurred * soft, 0, 255).astype(np.uint8)


def defocus(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian defocus, sigma 0.4-1.2 % of the width."""
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.004, 0.012) * image.shape[1])


def fog(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fog or haze: I = J t + A (1 - t), t 0.15-0.4 at the bottom, lower towards the top."""
    h = image.shape[0]
    t_bottom = rng.uniform(0.15, 0.4)
    t = np.linspace(0.6 * t_bottom, t_bottom, h, dtype=np.float32)[:, None, None]
    airlight = rng.uniform(190, 235)
    return np.clip(image * t + airlight * (1 - t), 0, 255).astype(np.uint8)


def under_exposed(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure x0.1 in linear light."""
    return exposure(image, 0.1)


def over_exposed(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure x4 in linear light, clipped."""
    return exposure(image, 4.0)


def _noise(image: np.ndarray, rng: np.random.Generator, level: float) -> np.ndarray:
    noisy = level + rng.normal(0, 2.0, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def black(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A black frame (lens cap, dead sensor) with sensor noise."""
    return _noise(image, rng, 2.0)


def white(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A white frame (saturated sensor) with sensor noise."""
    return _noise(image, rng, 253.0)


DEGRADATIONS: dict[str, Degradation] = {
    "soil_opaque": soil_opaque, "soil_semi": soil_semi, "water_drops": water_drops,
    "defocus": defocus, "fog": fog, "under_exposed": under_exposed, "over_exposed": over_exposed,
    "black": black, "white": white}


def repeated(image: np.ndarray, count: int) -> list[np.ndarray]:
    """A frozen stream: ``count`` copies of the same frame."""
    return [image] * count


# -- scene proxies for the cases that must not raise a condition -------------------------------

def _smooth(mask: np.ndarray, sigma: float) -> np.ndarray:
    """``mask`` blurred with a Gaussian of ``sigma`` times its width (computed at an eighth of the
    size: the result is smooth, and a full-size blur of that width costs a second)."""
    h, w = mask.shape
    small = cv2.resize(mask, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma * w / 8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def night(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Night with street lights: exposure x0.04 in linear light, a few clipped lamps with glow
    in the upper half and headlight pools on the road, plus sensor noise."""
    h, w = image.shape[:2]
    lin = _SRGB_TO_LINEAR[image] * 0.04
    lights = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(4, 9))):
        cv2.circle(lights, (int(rng.uniform(0, w)), int(rng.uniform(0.05, 0.5) * h)),
                   int(rng.uniform(0.004, 0.01) * w), 1.0, -1)
    glow = _smooth(lights, 0.02) * 3.0
    pool = np.zeros((h, w), np.float32)
    cv2.ellipse(pool, (w // 2, int(0.85 * h)), (int(0.25 * w), int(0.12 * h)), 0, 0, 360, 1.0, -1)
    pool = _smooth(pool, 0.05)
    # lamps light the scene they shine on: multiply, not only add
    lit = lin * (1 + 6 * glow[..., None] + 8 * pool[..., None]) + (lights + 0.3 * glow)[..., None]
    noise = rng.normal(0, 1.5, image.shape).astype(np.float32)
    return np.clip(_to_srgb(lit) + noise, 0, 255).astype(np.uint8)


def night_open_sky(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Night under an open, unlit sky, as a camera's own processing delivers it: the scene's
    bright sky (grey above 160 in the upper 60 %) becomes the dim glow of light pollution, the
    frame is :func:`night`'s with its grain smoothed as a camera's noise reduction at high gain
    does (edge-preserving), compressed as a JPEG of quality 60-80 (a CompressedImage stream, a
    photo), and the view is pitched up (its upper 70 %), so that a fifth of it or more is flat,
    dark, grey sky, as a covered lens would look in one frame."""
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bright = np.zeros((h, w), np.float32)
    bright[: 3 * h // 5] = grey[: 3 * h // 5] > 160
    sky = cv2.GaussianBlur(bright, (0, 0), 2.0)[..., None]
    glow = rng.uniform(20.0, 60.0)  # day-grey whose night copy is grey 2-12: light pollution
    dimmed = np.clip(image * (1 - sky) + glow * sky, 0, 255).astype(np.uint8)
    denoised = cv2.bilateralFilter(night(dimmed, rng), 9, 30, 5)
    quality = int(rng.integers(60, 81))  # a compressed stream or photo: JPEG flattens a dark sky
    _, data = cv2.imencode(".jpg", denoised, [cv2.IMWRITE_JPEG_QUALITY, quality])
    delivered = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert delivered is not None  # OpenCV's own JPEG of a valid frame
    return cv2.resize(delivered[: int(0.7 * h)], (w, h), interpolation=cv2.INTER_LINEAR)


def tunnel(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tunnel: exposure x0.15 with a row of clipped ceiling lamps converging to the vanishing point."""
    h, w = image.shape[:2]
    lin = _SRGB_TO_LINEAR[image] * 0.15
    lamps = np.zeros((h, w), np.float32)
    for i in range(8):
        s = 0.8 ** i
        cv2.ellipse(lamps, (w // 2, int(h * (0.45 - 0.4 * s))), (int(0.08 * w * s) + 2, int(0.01 * h * s) + 1),
                    0, 0, 360, 1.0, -1)
    lit = lin * (1 + 2 * _smooth(lamps, 0.03)[..., None]) + lamps[..., None]
    return _to_srgb(lit)


def crop(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The region ``box`` (x0, y0, x1, y1 in pixels) at the camera's own resolution: the view of
    a narrower lens that the region fills (scaling it up would blur it, which a lens does not)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)].copy()


def pulling_in(frames: list[np.ndarray], grey: float, rng: np.random.Generator, over: int = 10,
               cover: tuple[float, float] = (0.45, 0.75)) -> list[np.ndarray]:
    """A plain surface (a truck's or bus's side) of grey level ``grey`` sliding in from the right
    over ``over`` frames until it covers ``cover`` (a share of the width, the lower share of the
    height; by default a third of the view), then standing there, over the moving ``frames``;
    sensor noise (sigma 1.5) on every frame. A whole view covered fast is a side camera passed
    by a truck, or a front camera behind one."""
    h, w = frames[0].shape[:2]
    sw, sh = int(cover[0] * w), int(cover[1] * h)
    surface = np.linspace(0.9, 1.1, sw, dtype=np.float32)[None, :, None] * grey
    out = []
    for k, frame in enumerate(frames):
        moved = frame.astype(np.float32)
        x = w - int(sw * min(1.0, (k + 1) / over))
        moved[h - sh:, x:] = surface[:, :w - x]
        moved += rng.normal(0, 1.5, moved.shape).astype(np.float32)
        out.append(np.clip(moved, 0, 255).astype(np.uint8))
    return out


def standing_still(image: np.ndarray, rng: np.random.Generator, count: int,
                   noise: float = 1.5) -> list[np.ndarray]:
    """A car standing still: ``count`` frames of the same scene, each with its own sensor noise
    (sigma ``noise`` grey levels) and a small moving object (a patch of the frame drifting 4 px
    per frame across 5 % of the view)."""
    h, w = image.shape[:2]
    ph, pw = h // 6, w // 8
    patch = image[h // 2:h // 2 + ph, w // 3:w // 3 + pw].copy()
    frames = []
    for i in range(count):
        frame = image.astype(np.float32)
        x = (w // 3 + 4 * i) % (w - pw)
        frame[h // 2 - ph // 2:h // 2 + ph - ph // 2, x:x + pw] = patch
        frame += rng.normal(0, noise, image.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames
