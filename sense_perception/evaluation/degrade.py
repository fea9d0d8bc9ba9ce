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

Scene proxies for the no-alarm cases (:func:`night`, :func:`night_open_sky`, :func:`tunnel`,
:func:`snow`, :func:`wet_road`, :func:`dusk`, :func:`crop`, :func:`standing_still`,
:func:`pulling_in`) are built from the same real frames; what
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


def _sky(image: np.ndarray) -> np.ndarray:
    """A soft float mask (H, W) of the bright sky: grey above 160 in the upper 60 % of the view."""
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bright = np.zeros((h, w), np.float32)
    bright[: 3 * h // 5] = grey[: 3 * h // 5] > 160
    return cv2.GaussianBlur(bright, (0, 0), 2.0)


def _road(shape: tuple[int, int], horizon: float, half_width: float) -> np.ndarray:
    """A float mask of the driven road: a trapezoid from the bottom (``half_width`` of the view's
    width either side of the centre) narrowing to the vanishing point at row ``horizon`` (a share
    of the height)."""
    h, w = shape
    road = np.zeros((h, w), np.float32)
    top = int(horizon * h)
    corners = np.array([[w // 2 - w // 60, top], [w // 2 + w // 60, top],
                        [int(w * (0.5 + half_width)), h - 1], [int(w * (0.5 - half_width)), h - 1]],
                       np.int32)
    cv2.fillConvexPoly(road, corners, 1.0)
    return road


def snow(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A snow-covered scene under an overcast sky, as a camera's auto-exposure delivers it.

    - Overcast light is diffuse: no hard shadows, so the scene's contrast around its mean is
      lowered (x0.6-0.8 in linear light), and the sky is a flat white-grey (not blue) with a
      slight gradient, brighter towards the horizon.
    - Snow lies on what faces up: below the horizon (row 45-55 % of the height; the cover
      thickens over 8 % of the height below it), everything outside the driven road (a trapezoid 30-40 % of the width either side at the bottom) is
      covered (snow's albedo about 0.8, a faint low-frequency shading of +-4 %, and grain of
      sigma 1.5 grey levels); the road is slush, mixed 20-45 % with the snow's grey, with
      softened edges: white-grey road edges. Above the horizon a dusting (10-30 %) lies on
      roofs and branches, in irregular patches.
    - Auto-exposure meters the bright view down: the frame is scaled in linear light so that
      its mean grey is 120-170 (a camera that meters snow to mid-grey, or one that lets it
      stay bright), which leaves the snow white-grey, not white.
    - Half the seeds add falling snow: 300-1200 small bright specks per 1080p frame (1-3 px,
      slightly blurred: in focus far off) and a few large, soft flakes near the lens.

    What it cannot show: real snow has its own fine texture (crystals, tracks, wind ridges)
    that this flat cover lacks, so it is the harder case for the texture rules; a road's
    geometry is assumed (a straight road ahead, the horizon mid-frame), so snow may cover
    parked cars and kerbs that a real scene would show; snow does not lie on vertical walls
    here, nor does a real camera's exposure follow a fixed target; a blizzard's veil (falling
    snow dense enough to hide the view) is fog, not this; snow on the lens itself is soiling.
    """
    h, w = image.shape[:2]
    lin = _SRGB_TO_LINEAR[image]
    mean = lin.mean(axis=(0, 1), keepdims=True)
    lin = mean + (lin - mean) * rng.uniform(0.6, 0.8)  # diffuse light: shadows filled
    sky = _sky(image)[..., None]
    # overcast: white-grey, a little brighter towards the horizon; neutral (snow light is grey)
    rows = np.linspace(0.75, 1.0, h, dtype=np.float32)[:, None, None]
    overcast = rng.uniform(0.55, 0.8) * rows * np.ones(3, np.float32)
    lin = lin * (1 - sky) + overcast * sky
    horizon = rng.uniform(0.45, 0.55)
    # the cover thickens over 8 % of the height below the horizon (the far ground is seen at a
    # grazing angle, between the buildings and cars that stand on it)
    ramp = np.clip((np.arange(h, dtype=np.float32) / h - horizon) / 0.08, 0.0, 1.0)
    ground = np.repeat(ramp[:, None], w, axis=1)
    road = _smooth(_road((h, w), horizon, rng.uniform(0.3, 0.4)), 0.01)
    shade = cv2.resize(rng.uniform(0.96, 1.04, (4, 6)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    albedo = rng.uniform(0.75, 0.85) * shade
    dust = _smooth((rng.random((h // 8, w // 8)) < 0.5).astype(np.float32), 0.01)
    dust = cv2.resize(dust, (w, h), interpolation=cv2.INTER_LINEAR) * rng.uniform(0.1, 0.3)
    cover = ground * (1 - road) + ground * road * rng.uniform(0.2, 0.45) + (1 - ground) * dust
    cover = _smooth(cover, 0.004) * (1 - sky[..., 0])
    lin = lin * (1 - cover[..., None]) + (albedo * cover)[..., None] * np.ones(3, np.float32)
    # auto-exposure: the mean grey of the delivered frame to a drawn target
    target = rng.uniform(120, 170)
    grey = cv2.cvtColor(_to_srgb(lin), cv2.COLOR_BGR2GRAY).mean()
    lin = lin * float(_SRGB_TO_LINEAR[int(round(target))] / max(_SRGB_TO_LINEAR[int(round(grey))],
                                                                 1e-4))
    out = _to_srgb(lin).astype(np.float32) + rng.normal(0, 1.5, image.shape).astype(np.float32)
    if rng.random() < 0.5:  # falling snow
        specks = np.zeros((h, w), np.float32)
        scale = w / 1920
        for _ in range(int(rng.integers(300, 1201))):
            cv2.circle(specks, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                       max(1, int(rng.uniform(1, 3) * scale)), 1.0, -1)
        for _ in range(int(rng.integers(2, 7))):  # near the lens: large and out of focus
            cv2.circle(specks, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                       int(rng.uniform(0.005, 0.012) * w), 0.6, -1)
        flakes = cv2.GaussianBlur(specks, (0, 0), max(0.8, 1.2 * scale))[..., None]
        out = out * (1 - flakes) + rng.uniform(225, 250) * flakes
    return np.clip(out, 0, 255).astype(np.uint8)


def _lamps(shape: tuple[int, int], rng: np.random.Generator, count: int,
           rows: tuple[float, float]) -> list[tuple[int, int, int]]:
    """``count`` lamps (x, y, radius in pixels) drawn in the rows ``rows`` (shares of the height)."""
    h, w = shape
    return [(int(rng.uniform(0.05, 0.95) * w), int(rng.uniform(*rows) * h),
             max(2, int(rng.uniform(0.004, 0.01) * w))) for _ in range(count)]


def wet_road(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A wet road at night (exposure x0.04) or at dusk (x0.15-0.25), drawn half and half.

    Street lamps (4-8 in the upper half) and headlights and tail lights of other cars (2-6
    pairs near the horizon, 45-60 % of the height) are clipped discs with glow, as in
    :func:`night`. A wet road is a rough mirror: each light's image on it is stretched
    vertically into a streak (Fresnel reflection at grazing angles off rippled water): centred
    where a flat mirror would show the light (as far below the horizon as it stands above it),
    stretched 1-2 times that distance towards the camera and a quarter of it away, as wide as
    half to the whole lamp, clipped in its core (peak 1-2.5 times full scale). The
    wet asphalt itself is darker (x0.6: water fills its pores).

    What it cannot show: a real wet road's reflections shimmer, break up on ripples and spread
    with the road's roughness, and they follow each light's own geometry (a lamp far to the side
    reflects towards the camera only where the road's slope allows); the streaks here are
    straight and vertical, centred under each light. Spray thrown up by the cars ahead, rain on
    the lens and the windscreen's smear are the degradations' business (fog, water drops), not
    this scene's.
    """
    h, w = image.shape[:2]
    night_time = rng.random() < 0.5
    lin = _SRGB_TO_LINEAR[image] * (0.04 if night_time else rng.uniform(0.15, 0.25))
    horizon = rng.uniform(0.45, 0.55)
    road = _smooth(_road((h, w), horizon, rng.uniform(0.3, 0.45)), 0.01)[..., None]
    lin = lin * (1 - 0.4 * road)  # wet asphalt is darker
    lamps = _lamps((h, w), rng, int(rng.integers(4, 9)), (0.05, 0.45))
    for _ in range(int(rng.integers(2, 7))):  # pairs of headlights / tail lights
        x, y, r = _lamps((h, w), rng, 1, (horizon - 0.03, horizon + 0.08))[0]
        gap = int(rng.uniform(3, 8) * r)
        lamps += [(x - gap, y, r), (min(w - 1, x + gap), y, r)]
    lights = np.zeros((h, w), np.float32)
    streaks = np.zeros((h, w), np.float32)
    rows = np.arange(h, dtype=np.float32)
    for x, y, r in lamps:
        cv2.circle(lights, (x, y), r, 1.0, -1)
        # a flat mirror shows the light as far below the horizon as it stands above it; the
        # ripples stretch that image along the line of sight, mostly towards the camera
        mirror = max(horizon * h + 2 * r, 2 * horizon * h - y)
        if mirror >= h:
            continue
        length = (horizon * h - y + 8 * r) * rng.uniform(1.0, 2.0)
        along = (rows - mirror) / np.where(rows >= mirror, length, 0.25 * length)
        strength = rng.uniform(1.0, 2.5) * np.exp(-along ** 2)  # clipped where above 1
        strength[rows < horizon * h] = 0.0
        half = max(1, int(r * rng.uniform(0.5, 1.0)))
        x0, x1 = max(0, x - half), min(w, x + half + 1)
        band = streaks[:, x0:x1]
        np.maximum(band, strength[:, None], out=band)
    reflections = cv2.GaussianBlur(streaks, (0, 0), max(1.0, 0.002 * w))
    glow = _smooth(lights, 0.02) * 3.0
    lit = lin * (1 + 6 * glow[..., None]) + (lights + 0.3 * glow + reflections)[..., None]
    noise = rng.normal(0, 1.5 if night_time else 1.0, image.shape).astype(np.float32)
    return np.clip(_to_srgb(lit) + noise, 0, 255).astype(np.uint8)


def dusk(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dusk: exposure x0.2-0.3 in linear light, the bright sky replaced by a twilight gradient
    (a deep blue at the top to a warm orange at the horizon, as a camera's auto-exposure at
    dusk delivers it: grey about 60-190), sensor noise of sigma 1.5, and, for half the seeds,
    the first street lamps and headlights lit (3-6 clipped discs with glow).

    What it cannot show: a real dusk sky's gradient follows the sun's azimuth and has clouds lit
    from below, and its brightness against the ground depends on how far the sun has set (a
    deeper dusk is the night proxy); the ground here is the day frame dimmed, with its daylight
    shadows and colours, where a real dusk scene has no hard shadows and a bluer cast.
    """
    h, w = image.shape[:2]
    lin = _SRGB_TO_LINEAR[image] * rng.uniform(0.2, 0.3)
    sky = _sky(image)[..., None]
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None] / 0.6  # 0 top, 1 at 60 %
    t = np.clip(t, 0.0, 1.0)
    top = np.array([rng.uniform(0.10, 0.20), rng.uniform(0.04, 0.08), rng.uniform(0.02, 0.04)],
                   np.float32)  # BGR linear: deep blue
    bottom = np.array([rng.uniform(0.10, 0.25), rng.uniform(0.25, 0.4), rng.uniform(0.45, 0.7)],
                      np.float32)  # BGR linear: warm orange
    gradient = top * (1 - t) + bottom * t
    lin = lin * (1 - sky) + gradient * sky
    if rng.random() < 0.5:
        lights = np.zeros((h, w), np.float32)
        for x, y, r in _lamps((h, w), rng, int(rng.integers(3, 7)), (0.1, 0.55)):
            cv2.circle(lights, (x, y), r, 1.0, -1)
        glow = _smooth(lights, 0.02) * 2.0
        lin = lin * (1 + 3 * glow[..., None]) + (lights + 0.2 * glow)[..., None]
    noise = rng.normal(0, 1.5, image.shape).astype(np.float32)
    return np.clip(_to_srgb(lin) + noise, 0, 255).astype(np.uint8)
