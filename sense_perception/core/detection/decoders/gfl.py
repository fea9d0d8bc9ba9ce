"""GFL-style heads (PP-PicoDet, NanoDet): class scores plus a discrete distribution per box side.

Two output layouts are recognised, strides and ``reg_max`` read from the shapes:

* split (PicoDet, NanoDet v0): per level a score map [B, HW, C] and a box map
  [B, HW, 4*(reg_max+1)]; a level's stride is the one whose ceil(H/s)*ceil(W/s) equals HW.
* single (NanoDet-Plus): one [B, N, C + 4*(reg_max+1)] output over strides 8, 16, 32, 64.

Box side distance = stride * sum_i i * softmax(bins)_i, measured from the anchor point
((x + cell_offset) * s, (y + cell_offset) * s). PaddleDetection's PicoHead uses cell_offset 0.5
(its configs set ``cell_offset: 0.5``); NanoDet-Plus puts anchors at x * s (offset 0).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import (IMAGENET_MEAN, IMAGENET_STD, Candidates, Decoder, OutputFormatError, OutputLayout,
                   anchor_grid, kept_per_image, trained_input, total_cells)

_STRIDE_CHOICES = (4, 8, 16, 32, 64, 128)
_SINGLE_STRIDES = ((8, 16, 32, 64), (8, 16, 32))


class GFLDecoder(Decoder):
    """Decoder for GFL distribution heads (PicoDet, NanoDet)."""

    family = "gfl"
    layout_doc = ("gfl: per level a score map [B, HW, C] and a box map [B, HW, 4*(reg_max+1)] "
                  "(PicoDet), or one [B, N, C+4*(reg_max+1)] output (NanoDet-Plus)")
    aliases = ("picodet", "nanodet")
    # PaddleDetection trains PicoDet with keep_ratio=False: stretch, RGB, ImageNet mean/std. It
    # evaluates with Resize interp=2 (cubic) but trains with BatchRandomResize(random_interp=True),
    # so bilinear is inside its training distribution too. On the 80 labelled PandaSet frames
    # bilinear found as many cars and pedestrians as cubic with fewer false positives
    # (docs/detection-quality.md), and it is cheaper: the default.
    input_defaults = trained_input(color="rgb", resize="stretch", pad_value=114.0,
                                   scale=1 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                   interpolation="linear")

    def __init__(self, layout: OutputLayout) -> None:
        super().__init__(layout)
        shapes = layout.shapes
        if any(len(s) != 3 for s in shapes):
            raise OutputFormatError("every output must be rank 3 [B, N, channels]")
        if len(shapes) == 1:
            self._init_single(shapes[0])
        elif len(shapes) % 2 == 0:
            self._init_split(shapes)
        else:
            raise OutputFormatError(f"needs one output or score/box pairs, got {len(shapes)} "
                                    "outputs")
        offset = layout.options.get("cell_offset")
        if offset is None or offset < 0:
            offset = 0.0 if self.single else 0.5
        self.cell_offset = float(offset)
        self._points, self._anchor_strides = anchor_grid(
            layout.input_width, layout.input_height, self.strides, self.cell_offset)
        self._bins = np.arange(self.reg_max + 1, dtype=np.float32)
        self._rows: dict[int, np.ndarray] = {}  # arange(n) per anchor count, made once

    def _init_single(self, shape: tuple[int, ...]) -> None:
        layout = self.layout
        w, h = layout.input_width, layout.input_height
        for strides in _SINGLE_STRIDES:
            if total_cells(w, h, strides) == shape[1]:
                break
        else:
            raise OutputFormatError(f"a single output needs N = anchors of strides 8..64 for a "
                                    f"{w}x{h} input ({total_cells(w, h, _SINGLE_STRIDES[0])}), "
                                    f"got N = {shape[1]}")
        box_channels = shape[2] - layout.num_classes
        if box_channels < 8 or box_channels % 4:
            raise OutputFormatError(f"{shape[2]} channels minus {layout.num_classes} classes leave "
                                    f"{box_channels}, not 4*(reg_max+1)")
        self.single = True
        self.strides = tuple(strides)
        self.reg_max = box_channels // 4 - 1
        self._order: list[tuple[int, int]] = []

    def _init_split(self, shapes: Sequence[tuple[int, ...]]) -> None:
        layout = self.layout
        w, h = layout.input_width, layout.input_height
        by_cells: dict[int, list[int]] = {}
        for index, shape in enumerate(shapes):
            by_cells.setdefault(shape[1], []).append(index)
        levels = []
        for cells, indices in by_cells.items():
            stride = next((s for s in _STRIDE_CHOICES if total_cells(w, h, (s,)) == cells), None)
            if stride is None or len(indices) != 2:
                raise OutputFormatError(f"{len(indices)} output(s) with {cells} cells, which is "
                                        "not one level (a stride s with ceil(H/s)*ceil(W/s) "
                                        "cells) with one score map and one box map")
            a, b = indices
            # The score map is the one whose width is the labels' class count; failing that,
            # exporters put scores first (PaddleDetection, NanoDet v0).
            if shapes[b][2] == layout.num_classes and shapes[a][2] != layout.num_classes:
                a, b = b, a
            levels.append((stride, a, b))
        levels.sort()
        box_channels = {shapes[b][2] for _, _, b in levels}
        class_counts = {shapes[a][2] for _, a, _ in levels}
        if len(box_channels) != 1 or len(class_counts) != 1:
            raise OutputFormatError("levels disagree on their score or box channel counts")
        (channels,) = box_channels
        if channels < 8 or channels % 4:
            raise OutputFormatError(f"box maps have {channels} channels, not 4*(reg_max+1)")
        self.single = False
        self.strides = tuple(s for s, _, _ in levels)
        self.reg_max = channels // 4 - 1
        self._order = [(a, b) for _, a, b in levels]
        self.check_classes(class_counts.pop())

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> list[Candidates]:
        c = self.layout.num_classes
        if self.single:
            levels = [(outputs[0][:, :, :c], outputs[0][:, :, c:])]
        else:
            levels = [(outputs[a], outputs[b]) for a, b in self._order]
        per_level = [scores.argmax(axis=2) for scores, _ in levels]
        cls = np.concatenate(per_level, axis=1)
        best = self.activate(np.concatenate([self._gather_best(scores, idx) for (scores, _), idx
                                             in zip(levels, per_level, strict=True)], axis=1))
        bounds = np.cumsum([0] + [scores.shape[1] for scores, _ in levels])

        def boxes(b: int, keep: np.ndarray) -> np.ndarray:
            # Box distributions only for the anchors that pass, level by level: no copy of the
            # whole box maps.
            cuts = np.searchsorted(keep, bounds)
            dists = np.concatenate([reg[b, keep[lo:hi] - start] for (_, reg), lo, hi, start
                                    in zip(levels, cuts[:-1], cuts[1:], bounds[:-1], strict=True)])
            return self._boxes(dists, keep)

        return kept_per_image(best, cls.astype(np.int32), score_threshold, boxes)

    def _gather_best(self, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``scores`` at ``idx`` along the class axis; cheaper than take_along_axis, and than a
        second max pass, which numpy runs slowly along a short last axis."""
        n = idx.size
        rows = self._rows.get(n)
        if rows is None:
            rows = self._rows[n] = np.arange(n)
        return scores.reshape(n, -1)[rows, idx.reshape(-1)].reshape(idx.shape)

    def _boxes(self, reg: np.ndarray, keep: np.ndarray) -> np.ndarray:
        logits = reg.reshape(-1, 4, self.reg_max + 1).astype(np.float32)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (e @ self._bins) / e.sum(axis=2)
        dist *= self._anchor_strides[keep, None]
        points = self._points[keep]
        boxes = np.concatenate([points - dist[:, :2], points + dist[:, 2:]], axis=1)
        return boxes.astype(np.float32)
