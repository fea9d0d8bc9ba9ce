"""The horizon band: where the pedestrian specialist looks, and how its results meet the general model's.

Far pedestrians are 15-40 px tall in a wide camera frame and stand near the horizon; squashed whole
into a 864x480 network input they shrink to 7-20 px and most are lost. The pedestrian specialist
therefore runs on the band of rows around the horizon (``detector.pedestrian_band``, the middle half
of the frame by default) at a network input of the band's own shape: on OpenVINO the model's IR is
reshaped to ``detector.pedestrian_band_input`` (1280x384 by default: 0.67x of a 1920 px wide frame,
where the whole frame would get 0.45x); on onnxruntime (GPU providers), whose ONNX copy is fixed
to 864x480, the band is cut into tiles of that shape.

Near pedestrians reach beyond the band. The general model, which sees the whole frame anyway,
reports them: its pedestrians that reach above or below the band join the specialist's, and the
tile-aware merge of :mod:`.tiling` drops the band's cut-off pieces of them. Its pedestrians inside
the band are dropped, since the band sees those sharper. So every pedestrian comes from one model:
the specialist inside the band, the general model beyond it.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..types import Detections
from .tiling import TilingConfig, merge_tile_detections, plan_tiles

# The merge of the general model's whole-frame pedestrians with the band's (tile-aware: band
# pieces of a person the whole frame sees entire are dropped). No large-object rule: a tall
# person inside the band is the band's to report.
BAND_MERGE = TilingConfig(mode="horizon_bands", large_object_fraction=1.0)


def band_tiling(band: Sequence[float], tile_aspect: float | None) -> TilingConfig:
    """The ``tiling.*`` settings that cut ``band`` (top, bottom fractions of the height) into one
    tile across the frame (``tile_aspect`` None: the network was shaped for the band) or into tiles
    of ``tile_aspect`` (width / height, for a fixed-size network)."""
    top, bottom = float(band[0]), float(band[1])
    return TilingConfig(mode="horizon_bands", horizon_y=(top + bottom) / 2, band_height=bottom - top,
                        columns=1 if tile_aspect is None else 0,
                        tile_aspect=tile_aspect or 1.0, rows=1, overlap=0.1,
                        include_full_frame=False, min_image_width=0, min_tile_px=16)


def band_rect(width: int, height: int, band: Sequence[float]) -> tuple[int, int, int, int]:
    """The band of a ``width`` x ``height`` frame as an ``(x0, y0, x1, y1)`` pixel rectangle."""
    return plan_tiles(width, height, band_tiling(band, None))[0]


def merge_band(whole: Detections, banded: Detections, width: int, height: int,
               band: Sequence[float], nms_iou: float,
               merge: TilingConfig = BAND_MERGE) -> Detections:
    """One label set's detections of a frame: the band's, plus the whole frame's that reach
    beyond the band (cut-off band pieces of those dropped by the tile-aware merge).

    Args:
        whole: the general model's detections of these labels on the whole frame.
        banded: the specialist's detections on the band, in frame pixels.
        width, height: frame size.
        band: the band as (top, bottom) fractions of the height.
        nms_iou: IoU at which two boxes of one label are one object.
    """
    rect = band_rect(width, height, band)
    margin = merge.edge_margin_px
    beyond = (whole.boxes[:, 1] < rect[1] - margin) | (whole.boxes[:, 3] > rect[3] + margin)
    if not beyond.any():
        return banded
    return merge_tile_detections([whole.select(beyond), banded], [(0, 0, width, height), rect],
                                 (height, width), merge, nms_iou)


__all__ = ["BAND_MERGE", "band_rect", "band_tiling", "merge_band"]
