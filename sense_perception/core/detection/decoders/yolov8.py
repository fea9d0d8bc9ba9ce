"""YOLOv8 / YOLO11 (Ultralytics) exports: one [B, 4 + C, N] output.

Per anchor column: cx, cy, w, h in network-input pixels (decoded in the model), then C class scores
that the export has already passed through a sigmoid. No objectness.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import (Candidates, Decoder, OutputFormatError, OutputLayout, best_class, kept_per_image,
                   trained_input, xywh_to_xyxy)


class YOLOv8Decoder(Decoder):
    """Decoder for Ultralytics YOLOv8/YOLO11 detection exports."""

    family = "yolov8"
    layout_doc = ("yolov8: one [B, 4+C, N] output (cx, cy, w, h in input pixels, class scores), "
                  "N > 4+C")
    aliases = ("yolo11",)
    # Ultralytics: RGB 0..1, centred letterbox padded with 114.
    input_defaults = trained_input(color="rgb", resize="letterbox_center", scale=1 / 255.0,
                                   pad_value=114.0, interpolation="linear")

    def __init__(self, layout: OutputLayout) -> None:
        super().__init__(layout)
        if len(layout.shapes) != 1 or len(layout.shapes[0]) != 3:
            raise OutputFormatError("needs exactly one rank-3 output [B, 4+C, N]")
        _, channels, n = layout.shapes[0]
        # Channels first: the anchor axis is the long one (8400 at 640 vs 84 channels).
        if channels <= 4 or n <= channels:
            raise OutputFormatError(f"expects channels (4+C) first and more anchors than channels, "
                                    f"got {channels} x {n}")
        self.check_classes(channels - 4)

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> list[Candidates]:
        out = outputs[0]
        cls, best = best_class(out[:, 4:, :], axis=1)
        # out[b, :4, keep]: the fancy index last gives (K, 4)
        return kept_per_image(self.activate(best), cls, score_threshold, lambda b, keep:
                              xywh_to_xyxy(out[b, :4, keep].astype(np.float32)))
