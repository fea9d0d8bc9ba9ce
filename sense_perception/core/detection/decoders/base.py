"""What every decoder shares: the output description it is built from, its result, its errors."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ....errors import ModelError

SCORE_ACTIVATIONS = ("none", "sigmoid")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def trained_input(**fields: Any) -> Mapping[str, Any]:
    """A family's pre-processing defaults, read-only (shared by every detector of the family)."""
    return MappingProxyType(fields)


class OutputFormatError(ModelError):
    """The model's outputs do not have the structure a decoder family expects."""


@dataclass(frozen=True)
class OutputLayout:
    """The model outputs a decoder is built for, read from a real run of the model.

    Attributes:
        shapes: concrete shape of every output, in model order.
        names: output names, in model order (used only to break ties, e.g. RT-DETR boxes/scores).
        input_width, input_height: network input size in pixels.
        num_classes: number of class names in the labels file.
        labels_source: where the class names came from, for error messages.
        model_name: model name or file, for error messages.
        score_activation: "none" (scores are probabilities) or "sigmoid" (raw logits).
        options: family-specific settings (e.g. ``cell_offset`` for GFL).
    """

    shapes: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    input_width: int
    input_height: int
    num_classes: int
    labels_source: str = "labels"
    model_name: str = "model"
    score_activation: str = "none"
    options: dict = field(default_factory=dict)

    def describe(self) -> str:
        """Human-readable list of the outputs, e.g. ``output [1, 3549, 85]``."""
        return ", ".join(f"{n} {list(s)}" for n, s in zip(self.names, self.shapes, strict=True))


@dataclass
class Candidates:
    """Detections of one image before NMS, in network-input pixels.

    Attributes:
        boxes: (K, 4) float32 x1, y1, x2, y2.
        scores: (K,) float32 confidence of the best class.
        class_ids: (K,) int32 model class index of the best class.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0,), np.int32))


class Decoder(ABC):
    """Turns raw model outputs into per-image :class:`Candidates`.

    Constructors check the layout and raise :class:`OutputFormatError` when the structure is not
    theirs, or a plain :class:`ModelError` when it is but the class count disagrees with the labels.
    """

    family: ClassVar[str]
    layout_doc: ClassVar[str]
    # False for set-prediction heads (DETR), which emit one box per object.
    needs_nms: ClassVar[bool] = True
    #: Other names of the family accepted in ``detector.model_family``.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: The pre-processing the family's models were trained with (:class:`PreprocessSpec` fields
    #: but the size): what a custom model of the family gets unless ``detector.*`` overrides it.
    #: Bundled models take theirs from the model registry; the two agree (test_detector_interface).
    input_defaults: ClassVar[Mapping[str, Any]]
    #: True for families whose models detect the driving classes (COCO detectors, offered as
    #: ``detector.model`` and ``detect --model``); False for single-class specialists.
    general_purpose: ClassVar[bool] = True

    def __init__(self, layout: OutputLayout) -> None:
        if layout.score_activation not in SCORE_ACTIVATIONS:
            raise ModelError(f"detector.score_activation must be one of "
                             f"{', '.join(SCORE_ACTIVATIONS)}, got {layout.score_activation!r}")
        self.layout = layout
        self._sigmoid = layout.score_activation == "sigmoid"

    @abstractmethod
    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> list[Candidates]:
        """Decode a batch of outputs; keeps candidates whose score is >= ``score_threshold``."""

    def activate(self, scores: np.ndarray) -> np.ndarray:
        """Scores as probabilities (sigmoid of logits when configured)."""
        if not self._sigmoid:
            return scores
        return (1.0 / (1.0 + np.exp(-scores.astype(np.float32)))).astype(np.float32)

    def check_classes(self, model_classes: int) -> None:
        """Raise :class:`ModelError` if the model's class count differs from the labels file."""
        layout = self.layout
        if model_classes != layout.num_classes:
            raise ModelError(
                f"{layout.model_name} outputs {model_classes} classes ({self.family} layout: "
                f"{layout.describe()}) but {layout.labels_source} names {layout.num_classes}; "
                "fix: use the labels file that belongs to this model")


def grid_cells(width: int, height: int, stride: int) -> tuple[int, int]:
    """Feature-map size (rows, cols) of a stride: convolutions with padding round up."""
    return math.ceil(height / stride), math.ceil(width / stride)


def anchor_grid(width: int, height: int, strides: Sequence[int],
                offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points of all levels, row-major per level, levels in order.

    Returns:
        (points, strides): (N, 2) float32 ``((x + offset) * s, (y + offset) * s)`` and (N,) float32.
    """
    points, per_anchor = [], []
    for s in strides:
        rows, cols = grid_cells(width, height, s)
        ys, xs = np.mgrid[0:rows, 0:cols]
        points.append(np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32) + offset)
        per_anchor.append(np.full(rows * cols, s, np.float32))
    strides_arr = np.concatenate(per_anchor)
    return np.concatenate(points) * strides_arr[:, None], strides_arr


def total_cells(width: int, height: int, strides: Sequence[int]) -> int:
    """Number of anchors over all ``strides``."""
    return sum(r * c for r, c in (grid_cells(width, height, s) for s in strides))


def best_class(scores: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Index and value of the best class along ``axis``."""
    idx = scores.argmax(axis=axis)
    best = np.take_along_axis(scores, np.expand_dims(idx, axis), axis=axis).squeeze(axis)
    return idx.astype(np.int32), best


def kept_per_image(scores: np.ndarray, class_ids: np.ndarray, score_threshold: float,
                   boxes: Callable[[int, np.ndarray], np.ndarray]) -> list[Candidates]:
    """The :class:`Candidates` of each image of a batch: the entries scoring at least
    ``score_threshold``.

    Args:
        scores: (B, N) probabilities of each entry's best class.
        class_ids: (B, N) that class.
        score_threshold: the lowest score kept.
        boxes: (image index, kept entry indices) -> their (K, 4) x1, y1, x2, y2 boxes in
            network-input pixels; called only for an image with an entry kept.
    """
    results = []
    for b in range(scores.shape[0]):
        keep = np.flatnonzero(scores[b] >= score_threshold)
        if keep.size == 0:
            results.append(Candidates.empty())
            continue
        results.append(Candidates(boxes(b, keep), scores[b, keep].astype(np.float32),
                                  class_ids[b, keep]))
    return results


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(K, 4) centre/size boxes to corner boxes, float32."""
    out = np.empty(xywh.shape, np.float32)
    half = xywh[:, 2:4] * 0.5
    out[:, 0:2] = xywh[:, 0:2] - half
    out[:, 2:4] = xywh[:, 0:2] + half
    return out
