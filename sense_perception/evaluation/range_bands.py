"""Recall by distance: how many of the objects in each range band were found.

What a car must see depends on distance: near people first. Ground truth made from 3-D labels
(the project JSON of ``ground_truth_3d.json``) gives each box its range, ``range_m`` (metres from
the vehicle, along the road plane); this module counts, per class and range band, the boxes that
count (not difficult) and those found, from an :class:`~.scoring.Evaluation`'s misses, so the one
matcher of :mod:`.scoring` decides here too. Boxes without a range are counted under ``no range``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..errors import GroundTruthError
from .ground_truth import GroundTruthImage
from .gt_fields import read_json
from .scoring import Evaluation

#: Range bands in metres: (name, low, high), low inclusive, high exclusive.
RANGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-20", 0.0, 20.0), ("20-40", 20.0, 40.0), ("40-80", 40.0, 80.0), (">=80", 80.0, math.inf))
NO_RANGE = "no range"
RANGE_FIELD = "range_m"


def box_ranges(ground_truth: Path) -> dict[tuple[str, int], float]:
    """``{(image key, box index): range in metres}`` of a project-JSON ground truth's boxes that
    have a ``range_m``; {} for a file without any (or another format).

    Raises:
        GroundTruthError: a ``range_m`` that is not a finite number >= 0, naming the box.
    """
    doc = read_json(Path(ground_truth))
    cameras = doc.get("cameras") if isinstance(doc, dict) else None
    if not isinstance(cameras, dict):
        return {}
    ranges: dict[tuple[str, int], float] = {}
    for key, camera in cameras.items():
        for index, box in enumerate(camera.get("boxes", []) if isinstance(camera, dict) else []):
            if not isinstance(box, dict) or RANGE_FIELD not in box:
                continue
            value = box[RANGE_FIELD]
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise GroundTruthError(f"{ground_truth}: camera {key}, box {index}: {RANGE_FIELD} "
                                       f"must be a distance in metres >= 0, got {value!r}")
            ranges[(key, index)] = float(value)
    return ranges


def band_of(range_m: float | None) -> str:
    """The name of the band ``range_m`` falls in (:data:`NO_RANGE` for None)."""
    if range_m is None:
        return NO_RANGE
    return next(name for name, low, high in RANGE_BANDS if low <= range_m < high)


def recall_by_range(result: Evaluation, images: Sequence[GroundTruthImage],
                    ranges: dict[tuple[str, int], float]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per scored class, ``{band: (found, total)}`` over the boxes that count (not difficult),
    in :data:`RANGE_BANDS` order (bands without a box left out; :data:`NO_RANGE` last, only where
    boxes lack a range).

    Args:
        result: the evaluation of ``images`` (its ``missed`` names the boxes not found).
        images: the ground truth that was scored, in the order it was scored.
        ranges: from :func:`box_ranges`.
    """
    order = [name for name, _, _ in RANGE_BANDS] + [NO_RANGE]
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for label, score in result.classes.items():
        missed = set(score.missed)
        counts: dict[str, list[int]] = {}
        for image in images:
            for index, (name, difficult) in enumerate(zip(image.labels, image.difficult,
                                                          strict=True)):
                if name != label or difficult:
                    continue
                tally = counts.setdefault(band_of(ranges.get((image.key, index))), [0, 0])
                tally[0] += (image.key, index) not in missed
                tally[1] += 1
        out[label] = {band: (counts[band][0], counts[band][1]) for band in order if band in counts}
    return out


__all__ = ["NO_RANGE", "RANGE_BANDS", "band_of", "box_ranges", "recall_by_range"]
