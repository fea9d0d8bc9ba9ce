"""Ignore regions per camera: image areas where nothing is reported (the ego car's bonnet, the
roof edge, a mirror).

A camera that sees part of its own car reports it: the sample bag's windshield camera sees the
ego bonnet as ``car 0.78``. ``detector.ignore_regions.polygons`` gives, per camera topic, polygons
in that camera's image pixels (full resolution, origin at the top-left corner), or a mask image
whose non-zero pixels are the region::

    detector:
      ignore_regions:
        polygons: ["/camera/windshield/image_raw: 0,345 640,345 640,480 0,480",
                   "/camera/rear/image_raw: mask /etc/sense/rear_mask.png"]

A detection is dropped when at least ``min_overlap`` of its box's area lies in the camera's
region. The node and the replay apply it per frame after detection and before tracking, and draw
the regions in the debug image and the Foxglove annotations. The share of each box inside is read
from a summed-area table of the region's mask (built once per camera and frame size): four
look-ups per box, no per-box Python loop. A box whose bottom edge lies on the region has its
ground contact hidden there (:meth:`~sense_perception.core.exterior_steps.ExteriorSteps.frame`
hands that to the ground positions, as a bottom cut by the image border).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...config import check_settings, setting
from ...errors import ConfigError, ImageDecodeError
from ..imaging.frame_guard import InputLimits
from ..imaging.image_file import read_image_file
from ..per_camera import PerCamera
from ..output.topics import image_base_topic
from ..types import Detections

LOG = logging.getLogger(__name__)

MASK = "mask "
#: Outlines, and their points, drawn per camera at most (debug image, Foxglove annotations): a
#: speckled or dithered mask gave tens of thousands of polygons, megabytes in every frame's
#: annotations. The largest outlines are drawn; the whole region is applied all the same.
MAX_OUTLINES, MAX_OUTLINE_POINTS = 64, 2048
#: Frame sizes whose mask, summed-area table and outlines are kept (all cameras together): a camera
#: whose size changes every frame would otherwise keep ~19 MB per 1080p size for ever.
MAX_SIZES = 8
#: How far from the image origin (px) a polygon point may lie: far beyond any camera, well within
#: the 32-bit integers OpenCV draws in.
MAX_COORDINATE = 1_000_000
#: How far (a share) a mask's aspect ratio may differ from its camera's frames before the
#: stretch is said: rounding a scaled-down mask's sides moves it well under this.
ASPECT_TOLERANCE = 0.02


@dataclass
class IgnoreRegionSettings:
    """``detector.ignore_regions.*``: where each camera reports nothing."""

    polygons: list[str] = setting(
        [], "per camera topic, an image area where nothing is reported: \"TOPIC: x,y x,y "
        "x,y ...\" (a polygon in the camera's full-resolution pixels) or \"TOPIC: mask PATH\" (an "
        "image whose non-zero pixels are the area); several entries per topic add up",
        range="\"TOPIC: x,y x,y x,y [...]\" (3 points or more) or \"TOPIC: mask PATH\"")
    min_overlap: float = setting(
        0.5, "share of a box's area inside its camera's ignore region at and above which "
        "the detection is dropped",
        range=(0.0, 1.0), constraint="above 0")

    def __post_init__(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise ConfigError(f"detector.ignore_regions.min_overlap must be within (0, 1], got "
                              f"{self.min_overlap}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them


@dataclass(frozen=True)
class Mask:
    """A mask image of ``detector.ignore_regions.polygons``, read once when the settings are.

    Attributes:
        path: the file it was read from (for messages).
        pixels: its grey values (H, W) uint8; non-zero is the region.
    """

    path: Path
    pixels: np.ndarray


def _read_mask(path: Path, where: str, limits: InputLimits) -> Mask:
    """Mask image ``path``, read once: a FIFO, device or directory is refused at once, and the
    file and its size are bounded by the ``input.*`` limits (a mask is one camera frame).

    Raises:
        ConfigError: it cannot be read, naming it, why, and the fix.
    """
    try:
        # O_NONBLOCK and S_ISREG on the descriptor: a FIFO given as the mask made cv2.imread wait
        # for a writer, and the node's configure, `run` and the replay hung without a word
        pixels = read_image_file(path, limits, grey=True)
    except ImageDecodeError as exc:
        raise ConfigError(f"{where}: mask image: {str(exc).removeprefix('file: ')}; fix: give "
                          "a PNG or JPEG whose non-zero pixels are the area (an absolute path, or "
                          "one relative to the working directory)") from None
    return Mask(path, pixels)


#: An entry of ``detector.ignore_regions.polygons``, for messages.
FORM = "\"TOPIC: x,y x,y x,y ...\" or \"TOPIC: mask PATH\""


def _parse(spec: str, where: str, limits: InputLimits) -> np.ndarray | Mask:
    """The polygon or mask of one entry, ``spec`` its text after ``TOPIC:``
    (:class:`~..per_camera.PerCamera` splits the entry)."""
    if spec.startswith(MASK):
        return _read_mask(Path(spec[len(MASK):].strip()).expanduser(), where, limits)
    try:
        points = np.array([[float(v) for v in p.split(",")] for p in spec.split()], np.float64)
    except ValueError:
        points = np.zeros((0, 0))
    if points.ndim != 2 or points.shape[1:] != (2,) or len(points) < 3 or not np.isfinite(points).all():
        raise ConfigError(f"{where}: a polygon needs 3 or more points written x,y separated by "
                          "spaces, in image pixels")
    if np.abs(points).max() > MAX_COORDINATE:
        # OpenCV draws polygons in 32-bit integers: a point at 1e10 (meaning "far beyond the
        # frame") wrapped around and the region silently covered nothing.
        raise ConfigError(f"{where}: a point lies {np.abs(points).max():g} px from the image "
                          f"origin; fix: keep every point within {MAX_COORDINATE:,} px of it (a "
                          "point beyond the frame's edge already reaches past it)")
    return points


def _scaled_mask(mask: Mask, width: int, height: int) -> np.ndarray:
    """``mask`` at ``width`` x ``height`` (a mask for another resolution is scaled). Read when
    the settings were: a mask file deleted or replaced later (the node re-read it at every new
    frame size) raised on every frame of the camera, and the node dropped every camera's frames
    batched with it."""
    image = mask.pixels
    if image.shape != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    return image


class IgnoreRegions:
    """The ignore regions of every camera, from :class:`IgnoreRegionSettings`.

    Args:
        settings: the ``detector.ignore_regions.*`` settings.
        limits: the ``input.*`` limits a mask image is read within (a mask is a camera frame).

    Raises:
        ConfigError: an entry that is no polygon or mask, naming it and the form expected, or a
            mask image that cannot be read.
    """

    def __init__(self, settings: IgnoreRegionSettings | None = None,
                 limits: InputLimits | None = None) -> None:
        self.settings = settings or IgnoreRegionSettings()
        # By camera: an image topic and its image_transport sub-topics (`<base>/compressed`) are
        # one camera's frames. A region named by the node's raw topic was "not applied" to the
        # replay of a bag that recorded the camera compressed (the ego bonnet detected as a car).
        self._shapes: PerCamera[np.ndarray | Mask] = PerCamera(
            "detector.ignore_regions.polygons", self.settings.polygons, FORM,
            lambda spec, where: _parse(spec, where, limits or InputLimits()))
        self._masks: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._stretched: set[tuple[Path, int, int]] = set()  # masks warned about, per frame size
        self._outlines: dict[tuple[str, int, int], list[np.ndarray]] = {}

    @classmethod
    def from_params(cls, params: dict, source: str = "config") -> IgnoreRegions:
        """The regions of flattened node parameters (``detector.ignore_regions.*``)."""
        from ...config import section_from_params

        return cls(section_from_params(IgnoreRegionSettings, params, "detector.ignore_regions.",
                                       source), InputLimits.from_params(params, source))

    def unmatched(self, topics: list[str]) -> list[str]:
        """The topics the regions name that are no camera of ``topics`` (in any transport:
        ``/cam/image_raw`` and ``/cam/image_raw/compressed`` are one camera)."""
        return self._shapes.unmatched(topics)

    def check_topics(self, topics: list[str], source: str = "config") -> None:
        """Refuse regions for topics that are not among the camera ``topics``: a region that
        would never apply.

        Raises:
            ConfigError: naming the topic and the camera topics.
        """
        self._shapes.check_topics(topics, source)

    @property
    def topics(self) -> list[str]:
        """The camera topics that have a region (as the entries name them)."""
        return self._shapes.topics

    def __bool__(self) -> bool:
        return bool(self._shapes)

    def _mask(self, topic: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(mask uint8 0/1, its summed-area table) of camera ``topic`` at ``width`` x ``height``."""
        topic = image_base_topic(topic)
        key = (topic, width, height)
        if key not in self._masks:
            mask = np.zeros((height, width), np.uint8)
            for shape in self._shapes.get(topic):
                if isinstance(shape, Mask):
                    self._check_aspect(topic, shape, width, height)
                    mask |= np.asarray(_scaled_mask(shape, width, height) > 0, np.uint8)
                else:
                    cv2.fillPoly(mask, [np.rint(shape).astype(np.int32)], 1)
            _remember(self._masks, key, (mask, cv2.integral(mask, sdepth=cv2.CV_64F)))
        return self._masks[key]

    def _check_aspect(self, topic: str, mask: Mask, width: int, height: int) -> None:
        """Warn, once per mask and frame size (for :data:`MAX_SIZES` sizes a mask at most), when
        ``mask`` has another shape than the frames of ``topic``: it is stretched to them, which a
        mask of another resolution of the same camera never needs (a mask made for another
        camera, or cropped): it was stretched in silence, covering another part of the view than
        drawn in the mask. A camera whose size changes every frame logged a warning per frame
        and grew the sizes remembered without bound."""
        mask_h, mask_w = mask.pixels.shape[:2]
        key = (mask.path, width, height)
        if key in self._stretched or \
                abs(np.log((mask_w / mask_h) / (width / height))) <= np.log(1 + ASPECT_TOLERANCE):
            return
        if sum(said[0] == mask.path for said in self._stretched) >= MAX_SIZES:
            return  # said for as many sizes as are kept: said enough
        self._stretched.add(key)
        LOG.warning("detector.ignore_regions: the mask %s is %dx%d, the frames of %s are %dx%d, "
                    "another shape: it is stretched to them (its left and right, top and bottom "
                    "edges on the frame's); fix: give a mask of the camera's own shape, made on "
                    "one of its frames", mask.path, mask_w, mask_h, topic, width, height)

    def outlines(self, topic: str, width: int, height: int) -> list[np.ndarray]:
        """The region of ``topic`` as (K, 2) polygons in image pixels, to draw ([] without one)."""
        topic = image_base_topic(topic)
        key = (topic, width, height)
        if key in self._outlines:
            return self._outlines[key]
        out: list[np.ndarray] = []
        for shape in self._shapes.get(topic):
            if not isinstance(shape, Mask):
                out.append(shape)
                continue
            # The outline of the mask as it is applied (scaled to the frame as _mask scales it):
            # contours of the mask's own pixels, scaled, ran through pixel centres and left a
            # mask pixel out at the right and bottom (a 1x1 mask ignoring the whole frame was
            # drawn as a dot at its corner)
            image = _scaled_mask(shape, width, height)
            contours, _ = cv2.findContours(np.asarray(image > 0, np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            # within a pixel of the mask's edge: a curved edge needs no point per pixel
            out += [cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2).astype(np.float64)
                    for c in contours]
        out = _largest(out, topic)
        _remember(self._outlines, key, out)  # read once per camera and frame size, not per frame
        return out

    def inside_share(self, topic: str, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N,) share of each xyxy box's area inside the region of ``topic`` (0 without one)."""
        if topic not in self._shapes or not len(boxes):
            return np.zeros(len(boxes))
        _, table = self._mask(topic, width, height)
        x = np.clip(np.rint(boxes[:, 0::2]), 0, width).astype(np.int64)
        y = np.clip(np.rint(boxes[:, 1::2]), 0, height).astype(np.int64)
        inside = (table[y[:, 1], x[:, 1]] - table[y[:, 0], x[:, 1]] - table[y[:, 1], x[:, 0]]
                  + table[y[:, 0], x[:, 0]])
        area = (x[:, 1] - x[:, 0]) * (y[:, 1] - y[:, 0])
        return np.where(area > 0, inside / np.maximum(area, 1), 0.0)

    def apply(self, topic: str, dets: Detections, width: int, height: int) -> Detections:
        """``dets`` of a ``width`` x ``height`` frame of ``topic`` without those lying in its
        region (at least ``min_overlap`` of the box)."""
        if topic not in self._shapes or not len(dets):
            return dets
        share = self.inside_share(topic, dets.boxes, width, height)
        drop = share >= self.settings.min_overlap
        return dets.select(~drop) if drop.any() else dets


def _largest(outlines: list[np.ndarray], topic: str) -> list[np.ndarray]:
    """``outlines`` (in their order) within :data:`MAX_OUTLINES` and :data:`MAX_OUTLINE_POINTS`
    points, the largest first; the outlines left out are logged."""
    if len(outlines) <= MAX_OUTLINES and sum(len(o) for o in outlines) <= MAX_OUTLINE_POINTS:
        return outlines
    areas = [abs(cv2.contourArea(o.astype(np.float32))) for o in outlines]
    kept: list[int] = []
    points = 0
    for i in sorted(range(len(outlines)), key=lambda i: -areas[i]):
        if len(kept) == MAX_OUTLINES:
            break
        if points + len(outlines[i]) <= MAX_OUTLINE_POINTS:
            kept.append(i)
            points += len(outlines[i])
    LOG.warning("detector.ignore_regions of %s: %d of its %d outlines drawn (the largest; %d "
                "outlines and %d points at most); the whole region is applied", topic, len(kept),
                len(outlines), MAX_OUTLINES, MAX_OUTLINE_POINTS)
    return [outlines[i] for i in sorted(kept)]


def _remember(cache: dict, key: tuple[str, int, int], value: object) -> None:
    """Keep ``value`` under ``key``, forgetting the oldest entry beyond :data:`MAX_SIZES`."""
    cache[key] = value
    while len(cache) > MAX_SIZES:
        del cache[next(iter(cache))]


__all__ = ["IgnoreRegionSettings", "IgnoreRegions", "Mask", "MAX_OUTLINES", "MAX_OUTLINE_POINTS", "MAX_SIZES"]
