"""RT-DETR exports: boxes [B, Q, 4] plus scores [B, Q, C], or one [B, Q, 4 + C] output.

Boxes are (cx, cy, w, h) normalised to 0..1 of the network input, as in the Ultralytics export and
the "deploy" exports that stop before post-processing. Scores are taken as probabilities (those
exports end in a sigmoid); set ``detector.score_activation: sigmoid`` for raw logits. Each query
keeps its best class; DETR heads emit one box per object, so NMS is skipped and only the score
threshold, label mapping and top-k apply.
Exports that take ``orig_target_sizes`` and return labels/boxes/scores in pixels are not supported.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import (Candidates, Decoder, OutputFormatError, OutputLayout, best_class, kept_per_image,
                   trained_input, xywh_to_xyxy)


class RTDETRDecoder(Decoder):
    """Decoder for RT-DETR query outputs."""

    family = "rtdetr"
    needs_nms = False
    layout_doc = ("rtdetr: boxes [B, Q, 4] (cx, cy, w, h normalised 0..1) + scores [B, Q, C], "
                  "or one [B, Q, 4+C] output")
    aliases = ("rt-detr",)
    # RT-DETR (Ultralytics and PaddleDetection): RGB 0..1, plain resize.
    input_defaults = trained_input(color="rgb", resize="stretch", scale=1 / 255.0,
                                   interpolation="linear")

    def __init__(self, layout: OutputLayout) -> None:
        super().__init__(layout)
        shapes = layout.shapes
        if any(len(s) != 3 for s in shapes):
            raise OutputFormatError("every output must be rank 3 [B, Q, channels]")
        if len(shapes) == 1:
            if shapes[0][2] <= 4:
                raise OutputFormatError(f"a single output needs 4 + C channels, got {shapes[0][2]}")
            self._split: tuple[int, int] | None = None  # (boxes, scores) output indices
            self.check_classes(shapes[0][2] - 4)
        elif len(shapes) == 2:
            if shapes[0][:2] != shapes[1][:2]:
                raise OutputFormatError("boxes and scores must have the same [B, Q]")
            self._split = self._pick(layout)
            self.check_classes(shapes[self._split[1]][2])
        else:
            raise OutputFormatError(f"needs one or two outputs, got {len(shapes)}")
        self._size = np.array([layout.input_width, layout.input_height] * 2, np.float32)

    @staticmethod
    def _pick(layout: OutputLayout) -> tuple[int, int]:
        fours = [i for i, s in enumerate(layout.shapes) if s[2] == 4]
        if not fours:
            raise OutputFormatError("neither output has 4 box channels")
        if len(fours) == 2:  # C == 4: let the names decide, else boxes first
            named = [i for i, n in enumerate(layout.names) if "box" in n.lower()]
            fours = named or fours
        boxes = fours[0]
        return boxes, 1 - boxes

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> list[Candidates]:
        if self._split is None:
            boxes, scores = outputs[0][:, :, :4], outputs[0][:, :, 4:]
        else:
            boxes, scores = outputs[self._split[0]], outputs[self._split[1]]
        cls, best = best_class(scores)
        return kept_per_image(self.activate(best), cls, score_threshold, lambda b, keep:
                              xywh_to_xyxy(boxes[b, keep].astype(np.float32)) * self._size)
