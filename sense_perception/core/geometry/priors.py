"""Physical size priors of road users, and the noise the ground-position estimate assumes.

Heights and footprints are typical adult / European-US fleet values (not fitted to any test set):
pedestrians 1.70 m with a 0.10 m spread (adult stature, both sexes); a detector's ``bicycle`` and
``motorcycle`` box is the vehicle without its rider (COCO), a ground truth's ``cyclist`` includes
the rider; cars 1.45 m (saloon) to 1.75 m (SUV); trucks span pick-ups (1.9 m) to semis (4 m).
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectPrior:
    """Size of a class of road users, metres: height (mean, spread), footprint length x width."""

    height: float
    height_sd: float
    length: float
    width: float


PRIORS: dict[str, ObjectPrior] = {
    "pedestrian": ObjectPrior(1.70, 0.10, 0.50, 0.50),
    "cyclist": ObjectPrior(1.70, 0.12, 1.75, 0.60),
    "bicycle": ObjectPrior(1.05, 0.15, 1.75, 0.60),
    "motorcycle": ObjectPrior(1.15, 0.20, 2.10, 0.80),
    "car": ObjectPrior(1.55, 0.15, 4.60, 1.85),
    "truck": ObjectPrior(2.60, 0.70, 7.00, 2.30),
    "bus": ObjectPrior(3.20, 0.30, 12.00, 2.55),
}
ROAD_USERS: tuple[str, ...] = tuple(PRIORS)


@dataclass(frozen=True)
class PositionNoise:
    """What the estimate's variances are made of (physical magnitudes, not fitted).

    Attributes:
        edge_px: a box edge's localisation noise in pixels for any box (detector jitter).
        edge_rel: its part proportional to the box height (a looser or tighter box than the object).
        pitch_rad: camera pitch uncertainty against the road ahead: the vehicle pitching when it
            brakes or accelerates and the road's slope changing (about 0.5 degrees).
        road_height_m: height of the object's ground above base_link's plane (kerbs, camber).
        footprint_rel: spread of a class's footprint size around its prior.
        heading_spread: share of the length-width difference that an unknown heading moves the
            nearest edge by.
        border_px: a box edge this close to the image border is cut by it.
        min_slope: rays flatter than this (rad, about 0.3 degrees below the horizon) do not meet
            the ground usefully.
    """

    edge_px: float = 1.5
    edge_rel: float = 0.04
    pitch_rad: float = math.radians(0.5)
    road_height_m: float = 0.10
    footprint_rel: float = 0.15
    heading_spread: float = 0.15
    border_px: float = 2.0
    min_slope: float = 0.005


DEFAULT_NOISE = PositionNoise()


@lru_cache(maxsize=32)
def prior_table(label_names: tuple[str, ...]) -> np.ndarray:
    """(len(label_names), 5) rows of (known, height, height_sd, length, width) per label index;
    labels without a prior (traffic lights) are unknown (0) with nan sizes. Cached: built once
    per detector's label set, then indexed per frame."""
    rows = [(1.0, p.height, p.height_sd, p.length, p.width) if (p := PRIORS.get(lb))
            else (0.0, np.nan, np.nan, np.nan, np.nan) for lb in label_names]
    table = np.array(rows, np.float64).reshape(-1, 5)
    table.setflags(write=False)
    return table
