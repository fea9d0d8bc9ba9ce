"""Model classes -> the label set a driving stack uses.

The output set starts with :data:`AD_LABELS` (always in this order, so label indices are stable
across models), then :data:`ANIMAL` when ``detector.animals`` is set (COCO's animal classes as one
label: an animal on the road); other model classes are dropped, or appended after them with
snake_case names when ``detector.keep_other_classes`` is set.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ModelError

AD_LABELS: tuple[str, ...] = (
    "pedestrian", "bicycle", "car", "motorcycle", "bus", "truck", "traffic_light", "stop_sign",
)

#: The label of COCO's animal classes with ``detector.animals`` on (Autoware's ANIMAL 8).
ANIMAL = "animal"
#: Model class names (normalised) reported as :data:`ANIMAL`: COCO's ten animal classes.
ANIMAL_CLASSES: frozenset[str] = frozenset({
    "animal", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"})

# Model class name (normalised: lower case, spaces/dashes as underscores) -> AD label.
_TO_AD: dict[str, str] = {
    "person": "pedestrian",
    "pedestrian": "pedestrian",
    "bicycle": "bicycle",
    "car": "car",
    "motorcycle": "motorcycle",
    "motorbike": "motorcycle",
    "bus": "bus",
    "truck": "truck",
    "traffic_light": "traffic_light",
    "stop_sign": "stop_sign",
}


def normalise_name(name: str) -> str:
    """``"traffic light"`` -> ``"traffic_light"``."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def driving_label(name: str) -> str | None:
    """The driving label of a class name (``"person"`` -> ``"pedestrian"``), or None."""
    return _TO_AD.get(normalise_name(name))


@dataclass(frozen=True)
class LabelMap:
    """How model class indices become output label indices.

    Attributes:
        names: output label names; a detection's label is an index into this list.
        lookup: (num_model_classes,) int32, output label index per model class, -1 = dropped.
    """

    names: tuple[str, ...]
    lookup: np.ndarray

    def apply(self, class_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map model class ids; returns (labels, keep mask) with labels valid where kept."""
        labels = self.lookup[class_ids]
        return labels, labels >= 0

    def reported(self) -> list[str]:
        """The output labels some model class maps to, in label order."""
        used = set(self.lookup[self.lookup >= 0].tolist())
        return [name for i, name in enumerate(self.names) if i in used]

    def restricted(self, labels: Sequence[str], model: str = "model") -> LabelMap:
        """The same map reporting only ``labels`` (the model classes of other labels are dropped).

        Raises:
            ModelError: none of the model's classes maps to ``labels``.
        """
        keep = np.array([i for i, name in enumerate(self.names) if name in set(labels)], np.int32)
        lookup = np.where(np.isin(self.lookup, keep), self.lookup, -1).astype(np.int32)
        if not (lookup >= 0).any():
            raise ModelError(f"{model} has no class among the labels it should report "
                             f"({', '.join(labels)}); its labels: {', '.join(self.reported())}")
        return LabelMap(self.names, lookup)


def output_labels(animals: bool = False) -> tuple[str, ...]:
    """The driving labels a detector starts its label list with: :data:`AD_LABELS`, then
    :data:`ANIMAL` with ``detector.animals`` on."""
    return (*AD_LABELS, ANIMAL) if animals else AD_LABELS


def build_label_map(model_classes: list[str], keep_other_classes: bool = False,
                    source: str = "labels", animals: bool = False) -> LabelMap:
    """Build the map for a model whose class names are ``model_classes``.

    ``animals``: COCO's animal classes (:data:`ANIMAL_CLASSES`) become the label :data:`ANIMAL`
    (else they are other classes: dropped, or kept under their own names).

    Raises:
        ModelError: no class maps to the AD label set and other classes are dropped, so the
            detector could never report anything.
    """
    names = list(output_labels(animals))
    lookup = np.full(len(model_classes), -1, np.int32)
    for index, raw in enumerate(model_classes):
        key = normalise_name(raw)
        if key in _TO_AD:
            lookup[index] = AD_LABELS.index(_TO_AD[key])
        elif animals and key in ANIMAL_CLASSES:
            lookup[index] = names.index(ANIMAL)
        elif keep_other_classes:
            if key not in names:
                names.append(key)
            lookup[index] = names.index(key)
    if not (lookup >= 0).any():
        raise ModelError(f"no class in {source} maps to the driving label set "
                         f"({', '.join(names)}); fix: check that it is this model's labels "
                         "file, or set detector.keep_other_classes: true to report its own classes")
    return LabelMap(tuple(names), lookup)
