"""YOLOX heads exported without in-model decoding: one [B, N, 5 + C] output.

Rows are (x, y, w, h, objectness, C class scores) on the grids of strides 8, 16, 32 (N must equal
their anchor count for the input size): centre = (x + grid_x) * s, size = exp(w) * s,
score = objectness * class score. The official export already applies the sigmoid to objectness
and class scores; set ``detector.score_activation: sigmoid`` for an export that does not.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import (Candidates, Decoder, OutputFormatError, OutputLayout, anchor_grid, best_class,
                   kept_per_image, total_cells, trained_input, xywh_to_xyxy)

_STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))


class YOLOXDecoder(Decoder):
    """Decoder for raw YOLOX outputs."""

    family = "yolox"
    layout_doc = "yolox: one [B, N, 5+C] output, N = anchors of strides 8/16/32 (raw, not decoded)"
    # YOLOX: BGR 0..255, no normalisation, letterbox at the top-left padded with 114, bilinear.
    input_defaults = trained_input(color="bgr", resize="letterbox", pad_value=114.0, scale=1.0,
                                   mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                   interpolation="linear")

    def __init__(self, layout: OutputLayout) -> None:
        super().__init__(layout)
        if len(layout.shapes) != 1 or len(layout.shapes[0]) != 3:
            raise OutputFormatError("needs exactly one rank-3 output [B, N, 5+C]")
        _, n, channels = layout.shapes[0]
        w, h = layout.input_width, layout.input_height
        strides = next((s for s in _STRIDE_SETS if total_cells(w, h, s) == n), None)
        if strides is None:
            raise OutputFormatError(f"N = {n} is not the anchor count of strides 8/16/32 for a "
                                    f"{w}x{h} input ({total_cells(w, h, _STRIDE_SETS[0])})")
        if channels <= 5:
            raise OutputFormatError(f"{channels} channels per row, need 5 + classes")
        self.strides = strides
        self.check_classes(channels - 5)
        # Grid cell corners (offset 0): YOLOX adds the predicted offset to the cell index.
        self._grid, self._anchor_strides = anchor_grid(w, h, strides, 0.0)

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> list[Candidates]:
        out = outputs[0]
        cls, cls_best = best_class(out[:, :, 5:])
        # obj * max(cls) == max(obj * cls) since obj >= 0, without a (B, N, C) product.
        scores = self.activate(out[:, :, 4]) * self.activate(cls_best)

        def boxes(b: int, keep: np.ndarray) -> np.ndarray:
            raw = out[b, keep, :4].astype(np.float32)
            s = self._anchor_strides[keep, None]
            return xywh_to_xyxy(np.concatenate([raw[:, :2] * s + self._grid[keep],
                                                np.exp(raw[:, 2:]) * s], 1))

        return kept_per_image(scores, cls, score_threshold, boxes)
