"""Several detectors, each owning some labels, as one: a general model plus specialists.

A general COCO model finds vehicles well but few of the small, far pedestrians of a wide street
frame; a pedestrian specialist (person-detection-0203) finds them. Each label is owned by one
member, so the members' outputs never duplicate each other and are merged, best score first. A
specialist that looks at the horizon band only (:mod:`.band`) owns its labels inside the band; the
general model keeps those labels where they reach beyond it (near pedestrians), joined by a
tile-aware merge. Every member batches the cameras of a call as it can; the result is one
:class:`~sense_perception.core.types.Detections` per image with labels indexing one shared
``label_names`` list (all members share the driving label order).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ModelError
from ..imaging.image_decode import source_size
from ..types import Detections
from .band import merge_band
from .duplicates import suppress_duplicates
from .interface import Detector

if TYPE_CHECKING:  # pragma: no cover
    from .detector import DetectorConfig


class MultiModelDetector:
    """Runs every member detector on the same images and merges their detections per image.

    Args:
        members: built detectors (:class:`~.interface.Detector`: an
            :class:`~sense_perception.core.detection.detector.ObjectDetector` or a
            ``DeviceDetector`` around one), the general model first, owning disjoint labels.
        band: (top, bottom) fractions of the height that the last member sees (its tiling cuts
            that band); None: every member sees the whole frame.
        band_labels: labels the band member owns inside the band and the general model beyond it.

    Raises:
        ModelError: members disagree on the label order or two of them own the same label.
    """

    def __init__(self, members: Sequence[Detector], band: Sequence[float] | None = None,
                 band_labels: Sequence[str] = ()) -> None:
        if not members:
            raise ModelError("a multi-model detector needs at least one model")
        self.members = list(members)
        general = self.members[0]
        self.label_names: list[str] = list(general.label_names)
        self.band = tuple(band) if band else None
        shared = set(band_labels) if self.band else set()
        owners: dict[str, str] = {}
        for member in self.members:
            names = list(member.label_names)
            if names[:len(self.label_names)] != self.label_names[:len(names)]:
                raise ModelError(f"{member.model_name} orders its labels differently from "
                                 f"{general.model_name}; their detections cannot be merged")
            for label in member.owned_labels:
                if label in owners and not (label in shared and member is self.members[-1]):
                    raise ModelError(f"label {label!r} is owned by both {owners[label]} and "
                                     f"{member.model_name}; each label needs one model")
                owners[label] = member.model_name
        self.owners = owners
        self._shared = np.array([i for i, n in enumerate(self.label_names) if n in shared],
                                np.int32)
        self.config: DetectorConfig = general.config
        self.timings: dict[str, float] = {}

    # -- what the nodes, the replay and the CLI read ----------------------------------------------

    @property
    def model_name(self) -> str:
        return " + ".join(m.model_name for m in self.members)

    @property
    def family(self) -> str:
        return " + ".join(m.family for m in self.members)

    @property
    def provider(self) -> str:
        """The general model's provider (the hardware id in diagnostics)."""
        return self.members[0].provider

    @property
    def providers(self) -> dict[str, str]:
        """Execution provider per member model."""
        return {m.model_name: m.provider for m in self.members}

    @property
    def fallback_reasons(self) -> list[str]:
        return [r for m in self.members for r in m.fallback_reasons]

    @property
    def notes(self) -> list[str]:
        return [n for m in self.members for n in m.notes]

    @property
    def batch_dynamic(self) -> bool:
        return self.members[0].batch_dynamic

    @property
    def preprocess_device(self) -> str:
        devices = list(dict.fromkeys(m.preprocess_device for m in self.members))
        return " + ".join(devices)

    @property
    def tiling(self) -> Any:
        """The general model's ``tiling.*`` settings (specialists see the full frame)."""
        return self.members[0].tiling

    @property
    def tiling_enabled(self) -> bool:
        return any(m.tiling_enabled for m in self.members)

    @property
    def owned_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.label_names if label in self.owners)

    @property
    def min_score(self) -> float:
        return min(m.min_score for m in self.members)

    @property
    def decode_floor(self) -> Callable[[int, int], tuple[int, int]] | None:
        """The largest decode size any member needs (None: full resolution for one of them)."""
        floors = [m.decode_floor for m in self.members]
        known = [f for f in floors if f is not None]
        if len(known) < len(floors):
            return None

        def floor(width: int, height: int) -> tuple[int, int]:
            sizes = [f(width, height) for f in known]
            return max(s[0] for s in sizes), max(s[1] for s in sizes)

        return floor

    # -- detection ---------------------------------------------------------------------------------

    def detect_one(self, image: Any) -> Detections:
        """Detect objects in one image."""
        return self.detect([image])[0]

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Detections of every member for each image, merged best score first, at most
        ``detector.max_detections`` per image.

        Raises:
            ImageDecodeError: an entry is not an image the members accept.
        """
        per_member = [m.detect(list(images)) for m in self.members]
        self.timings = {}
        for member in self.members:
            for stage, ms in member.timings.items():
                self.timings[stage] = self.timings.get(stage, 0.0) + ms
        limit = self.config.max_detections
        merged = []
        for image, member_dets in zip(images, zip(*per_member, strict=True), strict=True):
            parts = list(member_dets)
            if self._shared.size:
                parts = self._join_band(image, parts)
            boxes = np.concatenate([p.boxes for p in parts])
            scores = np.concatenate([p.scores for p in parts])
            order = np.argsort(-scores, kind="stable")
            if limit:
                order = order[:limit]
            joined = Detections(boxes[order], scores[order],
                                np.concatenate([p.labels for p in parts])[order],
                                np.concatenate([p.track_ids for p in parts])[order])
            # One object, one box across the members too (a pedestrian of each model).
            merged.append(suppress_duplicates(joined, self.label_names, self.config.duplicates))
        return merged

    def _join_band(self, image: Any, parts: list[Detections]) -> list[Detections]:
        """The general model's and the band member's detections of the shared labels as one
        part (:func:`~.band.merge_band`), the rest as they are."""
        assert self.band is not None  # labels are only shared with a band (__init__)
        general, banded = parts[0], parts[-1]
        mine = np.isin(general.labels, self._shared)
        width, height = source_size(image)
        joined = merge_band(general.select(mine), banded, width, height, self.band,
                            self.config.nms_iou)
        return [general.select(~mine), *parts[1:-1], joined]


__all__ = ["MultiModelDetector"]
