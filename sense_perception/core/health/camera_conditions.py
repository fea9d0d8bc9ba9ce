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
  dusk sky is flat but blue. Being out of focus, dirt on the lens also has a soft border, while
  a dark plain surface in the scene (a truck's side in shade) has its outline in focus.
- **Lit surfaces**: dirt on the lens receives no light of its own, so it is never brighter than
  the scene it hides. A flat part clearly brighter than the view's sharp part (a snow field or
  an overcast sky metered down to mid-grey by auto-exposure, a white wall) is the scene, not
  the lens: neither blockage nor texture lost, as long as the rest of the view is sharp. Fog
  is flat and bright too, but it veils the whole view, so nothing of it stays sharp.
- **Low visibility**: the coarse view has structure (a uniform sky is no evidence of fog), but
  little of its textured part shows sharp detail, or the finest scale has lost its share of the structure
  (defocus and water blur the finest scale first; fog lowers the contrast of all of them).
- **Dark**: nothing in the view is exposed into the upper half of the range; night scenes with a
  street light, headlights or a lit sign reach it. **Bright**: a large share of clipped pixels.
- **Frozen**: no block changes between consecutive frames. A car standing still still sees
  sensor noise, other traffic and flickering lights change some block.
"""
from __future__ import annotations

import functools
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
        highlight: grey level the brightest 0.01 % of the view reaches (3 pixels of a 240 x 135
            copy: a street lamp or a headlight far off).
        clipped: share of pixels at or above the clipping level.
        sharp: share of the view with sharp detail.
        featureless: share of the view that is blue sky without texture: no detail there to lose.
        lit_surface: share of the view that is a flat, lit surface of the scene (snow, an
            overcast sky): no detail there to lose, and no blockage.
        flat_dark: share of the view that is flat and not brightly lit (candidate blockage).
        structure: mid-frequency contrast of the coarse view: mean absolute Laplacian of the
            means of cells two neighbourhoods wide, in grey levels (a smooth gradient has none).
        fine: mean absolute Laplacian of the small copy over that of a copy half its size: how
            much of the structure survives at the finest scale.
        change: largest mean absolute difference of a block against the previous frame, in grey
            levels; None for a first frame or a size change.
        contrast_lost: share of the view whose detail fell well below its recent level
            (:mod:`.contrast_drop`); None for a single image or without a recent level.
        flat_border_sharp: share of the border of the flat, dark part of the view that is a
            sharp edge (:func:`sharp_border_share`); None unless that part is large enough to
            be judged blocked.
    """

    mean: float
    highlight: float
    clipped: float
    sharp: float
    featureless: float
    flat_dark: float
    structure: float
    fine: float
    lit_surface: float = 0.0
    change: float | None = None
    contrast_lost: float | None = None
    flat_border_sharp: float | None = None

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


# The border profile, in pixels of a 240-px copy (scaled with ``width``): how far inside and
# outside the flat part's border it is taken, the square pieces of the view it is taken over,
# the steepest step that makes a piece's border sharp (a share of the brightness range the
# profile spans) and the least range worth judging (grey levels; a fainter border is noise).
_BORDER_INSIDE, _BORDER_OUTSIDE, _BORDER_PIECE = 6, 10, 32
_BORDER_STEEP, _BORDER_MIN_RANGE = 0.4, 10.0


@functools.lru_cache(maxsize=8)
def _pieces(h: int, w: int, piece: int) -> tuple[int, np.ndarray]:
    """Number of ``piece``-pixel squares of an ``h`` x ``w`` view and each pixel's square."""
    columns = -(-w // piece)
    piece_of = ((np.arange(h, dtype=np.int32) // piece)[:, None] * columns
                + (np.arange(w, dtype=np.int32) // piece)[None, :])
    piece_of.setflags(write=False)
    return columns * -(-h // piece), piece_of


def sharp_border_share(grey: np.ndarray, flat: np.ndarray, cell: int, width: int = 240) -> float:
    """Share of the border of the ``flat`` part of the view that is a sharp edge.

    Dirt, a sticker or a hand on the lens is far out of focus, so the brightness goes from the
    blob's level to the scene's over many pixels (on a 1080p frame, tens of pixels); a plain
    surface in the scene, such as a truck's side, is in focus and its outline is a step. The
    border is cut into square pieces; in each, the mean brightness is taken at every distance
    from the border (inside and outside: the scene's texture averages out along it) and the
    border is sharp there when one pixel's step holds at least ``_BORDER_STEEP`` of the
    profile's range. The share is weighted by the length of border in each piece.

    Args:
        grey: the grey small copy, float32.
        flat: the flat, dark neighbourhoods (bool, one per half block, as :func:`_box2` gives).
        cell: side of a half block in small-copy pixels.
        width: width the small copy was made at (the profile's reach scales with it).

    Returns:
        The share in [0, 1]; 0 when no piece has a border worth judging.
    """
    h, w = grey.shape
    scale = width / 240.0
    inside, outside = max(2, round(_BORDER_INSIDE * scale)), max(3, round(_BORDER_OUTSIDE * scale))
    piece = max(8, round(_BORDER_PIECE * scale))
    # a neighbourhood of _box2 is centred on the corner between its cells: shift by half a cell
    half = cell // 2
    up = cv2.resize(flat.astype(np.uint8), (flat.shape[1] * cell, flat.shape[0] * cell),
                    interpolation=cv2.INTER_NEAREST)
    mask = cv2.copyMakeBorder(up, half, max(0, h - up.shape[0] - half), half,
                              max(0, w - up.shape[1] - half), cv2.BORDER_REPLICATE)[:h, :w]
    pieces, piece_of = _pieces(h, w, piece)
    # Only the flat part's surroundings are profiled: the rest of the view is cut before any
    # per-pixel work (half the cost of a compact blob). The distances stay exact: a pixel's
    # nearest border lies within the box spanned by the two, and an axis step of the 3x3
    # chamfer counts 0.955, so the margin holds every pixel the profile reaches.
    x, y, bw, bh = cv2.boundingRect(mask)
    if bw == 0:
        return 0.0
    margin = int((outside + 1.5) / 0.95) + 2
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(w, x + bw + margin), min(h, y + bh + margin)
    mask, grey, piece_of = mask[y0:y1, x0:x1], grey[y0:y1, x0:x1], piece_of[y0:y1, x0:x1]
    dist_in = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    dist_out = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3)
    # signed distance: -1, -2, ... inside; 0, 1, ... outside (+ inside: bins from 0)
    bins = inside + outside + 1
    signed = np.where(mask > 0, inside - dist_in, dist_out + (inside - 1))
    # the profile's reach, selected before any int cast: with no pixel on one side, OpenCV's
    # distance is ~1e38, whose cast is undefined
    near = np.flatnonzero((signed >= -0.5) & (signed < bins - 0.5))
    index = piece_of.ravel()[near] * bins + (signed.ravel()[near] + 0.5).astype(np.int32)
    total = np.bincount(index, grey.ravel()[near], pieces * bins).reshape(pieces, bins)
    count = np.bincount(index, None, pieces * bins).reshape(pieces, bins)
    # a piece is judged where the profile reaches a few pixels either side of the border (4 in,
    # 6 out on a 240-px copy; fewer where the reach is scaled down)
    judged = (count[:, inside - min(4, inside):inside + min(6, outside + 1)] >= 3).all(1)
    if not judged.any():
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(count[judged] >= 3, total[judged] / count[judged], np.nan)
    span = np.nanmax(profile, 1) - np.nanmin(profile, 1)
    steepest = np.nanmax(np.abs(np.diff(profile, axis=1)), 1)
    clear = span >= _BORDER_MIN_RANGE
    if not clear.any():
        return 0.0
    length = count[judged][clear][:, inside - 1:inside + 1].sum(1)
    sharp = steepest[clear] >= _BORDER_STEEP * span[clear]
    return float(length[sharp].sum() / max(length.sum(), 1.0))


def _lit_surface(flat: np.ndarray, sharp: np.ndarray, brightness: np.ndarray, sharp_share: float,
                 featureless_share: float, settings: CameraHealthSettings) -> np.ndarray | None:
    """The flat, non-blue neighbourhoods that are a lit surface of the scene (bool, as ``flat``),
    or None when there is none.

    A neighbourhood is one when it is at least ``lit_surface_ratio`` times as bright as the
    sharp neighbourhoods on average (dirt on the lens is lit only through the scene behind it)
    and at least ``lit_surface_bright_ratio`` of the brightness their brightest 5 % reach: a
    lit surface of the scene (snow's albedo is about 0.8) is among the brightest things in
    view, while a translucent film, a bag or a white sticker on the lens passes on a part of
    the scene's light, which can still be well above the mean of a view whose sharp part is
    mostly road and cars. Only while the rest of the view, neither lit surface nor featureless
    sky, is sharp over ``lit_surface_rest_sharp`` of it: a fog veil is flat and bright as well,
    but leaves nothing sharp beside it.
    """
    if settings.lit_surface_ratio <= 0 or not sharp_share:
        return None
    sharp_levels = brightness[sharp]
    lit_level = settings.lit_surface_ratio * float(sharp_levels.mean())
    if settings.lit_surface_bright_ratio > 0:
        lit_level = max(lit_level, settings.lit_surface_bright_ratio
                        * float(np.percentile(sharp_levels, 95)))
    lit = flat & (brightness >= lit_level)
    share = float(np.count_nonzero(lit) / lit.size)
    rest = 1.0 - featureless_share - share
    if not share or sharp_share < settings.lit_surface_rest_sharp * rest:
        return None
    return lit


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
    flat = detail < settings.flat_detail
    flat_dark = flat & (brightness <= settings.blocked_max_brightness)
    featureless = detail < settings.featureless_detail
    if small.ndim == 3:  # a clear or dusk sky is blue (Rayleigh scattering); mud, stickers, hands are not
        colour = _box2(_cell_means(small, cell).astype(np.float32))
        b, r = colour[:, :, 0], colour[:, :, 2]
        blue = (b - r) >= settings.sky_blue * (b + r + settings.noise_floor)
        flat_dark &= ~blue
        flat &= ~blue
        featureless &= blue
    else:  # no colour, no sky: every featureless part counts as texture lost
        featureless[:] = False
    sharp = detail >= settings.sharp_detail
    sharp_share = float(np.count_nonzero(sharp) / detail.size)
    featureless_share = float(np.count_nonzero(featureless) / detail.size)
    lit = _lit_surface(flat, sharp, brightness, sharp_share, featureless_share, settings)
    lit_share = 0.0
    flat_outline = flat_dark
    if lit is not None:
        # a lit surface is not counted as covered, but the border judged stays that of the whole
        # flat part: where soft mud meets a flat sky, the two are one flat expanse, and cutting
        # the sky out would put the outline on the sky's sharp edges (roofs, poles)
        flat_dark = flat_dark & ~lit
        lit_share = float(np.count_nonzero(lit) / lit.size)
    flat_dark_share = float(np.count_nonzero(flat_dark) / flat_dark.size)
    border_sharp = (sharp_border_share(grey, flat_outline, cell, settings.width)
                    if flat_dark_share >= settings.blocked_fraction else None)
    coarse = _cell_means(grey_cells, 4)
    # mid-frequency structure: a smooth gradient (sky, vignetting) has no Laplacian
    structure = float(np.abs(cv2.Laplacian(coarse, cv2.CV_32F, ksize=1)).mean()) \
        if min(coarse.shape) >= 3 else float(coarse.std())
    # a view one pixel high or wide (a 32x8000 strip's copy is 240x1) has no half-size copy:
    # OpenCV refuses an empty size; its finest scale is then compared with itself
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) \
        if min(grey.shape) >= 2 else grey
    fine = float(cv2.mean(laplacian)[0]) / (
        float(cv2.mean(np.abs(cv2.Laplacian(half, cv2.CV_32F, ksize=1)))[0]) + 1e-3)
    hist = cv2.calcHist([grey8], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist)
    # the brightest 0.01 %: a night scene's few small lamps clip there, and no fault's frame
    # does (the brightest 0.1 % missed lamps smaller than a tenth of a percent of the view)
    highlight = float(np.searchsorted(cdf, 0.9999 * cdf[-1]))
    change = None
    if previous is not None and previous.shape == small.shape:
        diff = cv2.absdiff(grey8, _grey(previous))
        change = float(_cell_means(diff.astype(np.float32), settings.block_px).max())
    return FrameMetrics(mean=float(cv2.mean(grey8)[0]), highlight=highlight,
                        clipped=float(hist[_CLIP_LEVEL:].sum() / cdf[-1]),
                        sharp=sharp_share, featureless=featureless_share,
                        flat_dark=flat_dark_share, structure=structure, fine=fine,
                        lit_surface=lit_share,
                        change=change, flat_border_sharp=border_sharp)


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
    # a night view's unlit sky is as flat and dark as a covered lens: one frame cannot tell them
    if (m.mean >= settings.blocked_min_mean and m.flat_dark >= settings.blocked_fraction
            and m.sharp >= settings.blocked_min_sharp_fraction
            and (m.flat_border_sharp or 0.0) <= settings.blocked_max_sharp_border):
        found.append("blocked")
    # sharp detail is counted against the part of the view that has texture to lose: a lamp post
    # against a clear sky is a sharp view of a featureless sky, not fog; nor has a plain surface
    # in the scene, whose border is a sharp edge (a truck's side filling most of the view)
    surface = m.flat_dark if (m.flat_border_sharp or 0.0) > settings.blocked_max_sharp_border \
        else 0.0
    textured = 1.0 - m.featureless - m.lit_surface - surface
    if m.structure >= settings.low_visibility_min_structure and (
            m.sharp < settings.low_visibility_sharp_fraction * textured
            or m.fine < settings.low_visibility_fine_ratio):
        found.append("low_visibility")
    return found


def frozen(m: FrameMetrics, settings: CameraHealthSettings) -> bool:
    """The frame repeats the previous one: no block changed by ``frozen_change`` grey levels."""
    return m.change is not None and m.change < settings.frozen_change
