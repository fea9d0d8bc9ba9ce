"""Per-frame camera conditions from the pixels: blocked, low visibility, dark, bright, frozen.

Everything is computed on one small copy of the frame (:func:`small_copy`, about 240 pixels
wide), divided into square blocks; the statistics are vectorised over the blocks, so a 1080p frame
costs well under a millisecond on one core (``make bench``).

The physics each test rests on:

- **Detail** of a block is its mean absolute Laplacian divided by its mean brightness plus a
  noise floor: a Weber contrast of the finest structure. It does not change with exposure or
  illumination (night, tunnel), but falls with defocus and water on the lens (the fine structure
  is blurred away) and with fog or haze (the veil adds light and removes contrast).
- **Blocked**: mud, a sticker or a hand on the lens is far out of focus and takes light away, so
  the part it covers has no detail and is darker than a lit surface, while the rest of the view
  stays sharp. A uniform sky, a lit wall or a white truck side is flat but bright; a clear or
  dusk sky is flat but blue.
- **Low visibility**: the coarse view has structure (a uniform sky is no evidence of fog), but
  little of its textured part shows sharp detail, or the finest scale has lost its share of the structure
  (defocus and water blur the finest scale first; fog lowers the contrast of all of them).
- **Dark**: nothing in the view is exposed into the upper half of the range; night scenes with a
  street light, headlights or a lit sign reach it. **Bright**: a large share of clipped pixels.
- **Frozen**: no block changes between consecutive frames. A car standing still still sees
  sensor noise, other traffic and flickering lights change some block.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .camera_settings import CameraHealthSettings

_CLIP_LEVEL = 250  # grey level counted as clipped (JPEG ringing keeps saturated areas from 255)


def small_copy(image: np.ndarray, width: int = 240) -> np.ndarray:
    """The small copy (uint8, ``width`` wide, aspect kept, BGR or grey as given) every metric is
    computed on.

    A nearest-neighbour step to twice the size, then an area average, costs a fifth of a full
    area resize of a 1080p frame and still averages 16 samples per output pixel, which removes
    sensor noise and aliasing as well.

    Args:
        image: BGR (H, W, 3), BGRA or grey (H, W) uint8 frame.
        width: width of the copy; a smaller frame is used as it is.
    """
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    h, w = image.shape[:2]
    if w > width:
        height = max(1, round(h * width / w))
        if w >= 4 * width and h >= 4 * height:
            image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_NEAREST)
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class FrameMetrics:
    """The measurements of one frame that the conditions are judged from.

    Attributes:
        mean: mean grey level, 0..255.
        highlight: grey level the brightest 0.1 % of the view reaches.
        clipped: share of pixels at or above the clipping level.
        sharp: share of the view with sharp detail.
        featureless: share of the view that is blue sky without texture: no detail there to lose.
        flat_dark: share of the view that is flat and not brightly lit (candidate blockage).
        structure: mid-frequency contrast of the coarse view: mean absolute Laplacian of the
            means of cells two neighbourhoods wide, in grey levels (a smooth gradient has none).
        fine: mean absolute Laplacian of the small copy over that of a copy half its size: how
            much of the structure survives at the finest scale.
        change: largest mean absolute difference of a block against the previous frame, in grey
            levels; None for a first frame or a size change.
        contrast_lost: share of the view whose detail fell well below its recent level
            (:mod:`.contrast_drop`); None for a single image or without a recent level.
    """

    mean: float
    highlight: float
    clipped: float
    sharp: float
    featureless: float
    flat_dark: float
    structure: float
    fine: float
    change: float | None = None
    contrast_lost: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """The metrics rounded for a report."""
        return {k: (None if v is None else round(float(v), 4)) for k, v in asdict(self).items()}


def _cell_means(values: np.ndarray, size: int) -> np.ndarray:
    """Means over ``size`` x ``size`` cells (an exact area average; the edge rows and columns that
    do not fill a cell are left out)."""
    h, w = values.shape[:2]
    rows, cols = max(1, h // size), max(1, w // size)
    return cv2.resize(values[:rows * size, :cols * size], (cols, rows), interpolation=cv2.INTER_AREA)


def _box2(cells: np.ndarray) -> np.ndarray:
    """Means over 2x2 neighbouring cells (a block-sized window, every half block)."""
    return cv2.blur(cells, (2, 2)) if min(cells.shape[:2]) >= 2 else cells


def _grey(small: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small


@dataclass(frozen=True)
class DetailCells:
    """The grey small copy and its per-cell means that every metric is computed from.

    Attributes:
        grey: the grey small copy (uint8).
        grey_f: the same as float32, which the Laplacian, the cells and the half-size copy take.
        laplacian: absolute Laplacian of the grey copy (float32).
        brightness: mean grey level of each cell of half a block (float32).
        texture: mean absolute Laplacian of each such cell (float32).
    """

    grey: np.ndarray
    grey_f: np.ndarray
    laplacian: np.ndarray
    brightness: np.ndarray
    texture: np.ndarray


def detail_cells(small: np.ndarray, settings: CameraHealthSettings) -> DetailCells:
    """The cells of one small frame (from :func:`small_copy`)."""
    grey8 = _grey(small)
    grey = grey8.astype(np.float32)
    laplacian = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=1))
    cell = max(1, settings.block_px // 2)
    return DetailCells(grey8, grey, laplacian, _cell_means(grey, cell),
                       _cell_means(laplacian, cell))


def frame_metrics(small: np.ndarray, previous: np.ndarray | None,
                  settings: CameraHealthSettings, cells: DetailCells | None = None) -> FrameMetrics:
    """Measure one small frame (from :func:`small_copy`) against the previous one; ``cells``
    are its :func:`detail_cells` when the caller has them already."""
    cells = cells or detail_cells(small, settings)
    grey8, grey, laplacian, grey_cells = cells.grey, cells.grey_f, cells.laplacian, cells.brightness
    # brightness, detail (and colour) over a block-sized neighbourhood, every half block: the
    # cells of half a block, then a 2x2 box over them. A blob is measured by its area, not by
    # the fixed blocks it happens to fill.
    cell = max(1, settings.block_px // 2)
    brightness, texture = _box2(grey_cells), _box2(cells.texture)
    detail = texture / (brightness + settings.noise_floor)
    flat_dark = (detail < settings.flat_detail) & (brightness <= settings.blocked_max_brightness)
    featureless = detail < settings.featureless_detail
    if small.ndim == 3:  # a clear or dusk sky is blue (Rayleigh scattering); mud, stickers, hands are not
        colour = _box2(_cell_means(small, cell).astype(np.float32))
        b, r = colour[:, :, 0], colour[:, :, 2]
        blue = (b - r) >= settings.sky_blue * (b + r + settings.noise_floor)
        flat_dark &= ~blue
        featureless &= blue
    else:  # no colour, no sky: every featureless part counts as texture lost
        featureless[:] = False
    coarse = _cell_means(grey_cells, 4)
    # mid-frequency structure: a smooth gradient (sky, vignetting) has no Laplacian
    structure = float(np.abs(cv2.Laplacian(coarse, cv2.CV_32F, ksize=1)).mean()) \
        if min(coarse.shape) >= 3 else float(coarse.std())
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    fine = float(cv2.mean(laplacian)[0]) / (
        float(cv2.mean(np.abs(cv2.Laplacian(half, cv2.CV_32F, ksize=1)))[0]) + 1e-3)
    hist = cv2.calcHist([grey8], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist)
    highlight = float(np.searchsorted(cdf, 0.999 * cdf[-1]))
    change = None
    if previous is not None and previous.shape == small.shape:
        diff = cv2.absdiff(grey8, _grey(previous))
        change = float(_cell_means(diff.astype(np.float32), settings.block_px).max())
    return FrameMetrics(mean=float(cv2.mean(grey8)[0]), highlight=highlight,
                        clipped=float(hist[_CLIP_LEVEL:].sum() / cdf[-1]),
                        sharp=float(np.count_nonzero(detail >= settings.sharp_detail) / detail.size),
                        featureless=float(np.count_nonzero(featureless) / detail.size),
                        flat_dark=float(np.count_nonzero(flat_dark) / flat_dark.size),
                        structure=structure, fine=fine, change=change)


def image_conditions(m: FrameMetrics, settings: CameraHealthSettings) -> list[str]:
    """The conditions one frame shows by its pixels alone, in :data:`IMAGE_CONDITIONS` order.

    A dark or bright frame is judged on exposure only: its texture cannot be measured.
    """
    found = []
    if m.highlight < settings.dark_highlight and m.mean < settings.dark_mean:
        found.append("dark")
    if m.clipped >= settings.bright_clipped_fraction:
        found.append("bright")
    if found:
        return found
    # both can hold: a lens 60 % covered by mud also sees little, water drops also hide a part
    if m.flat_dark >= settings.blocked_fraction and m.sharp >= settings.blocked_min_sharp_fraction:
        found.append("blocked")
    # sharp detail is counted against the part of the view that has texture to lose: a lamp post
    # against a clear sky is a sharp view of a featureless sky, not fog
    textured = 1.0 - m.featureless
    if m.structure >= settings.low_visibility_min_structure and (
            m.sharp < settings.low_visibility_sharp_fraction * textured
            or m.fine < settings.low_visibility_fine_ratio):
        found.append("low_visibility")
    return found


def frozen(m: FrameMetrics, settings: CameraHealthSettings) -> bool:
    """The frame repeats the previous one: no block changed by ``frozen_change`` grey levels."""
    return m.change is not None and m.change < settings.frozen_change
