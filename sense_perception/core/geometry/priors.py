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
    """Size of a class of road users, metres.

    Attributes:
        height, height_sd: height (mean, spread).
        length, width: the body's footprint.
        contact_length, contact_width: where it touches the road (wheelbase x track; a
            pedestrian's stride). A tight box's bottom is the nearest ground contact, a wheel,
            not the bumper, which overhangs it in the air.
        ground_sd: height of the ground it stands on above base_link's road plane: road camber
            and unevenness for vehicles (about 5 cm), a kerb for pedestrians (10-15 cm).
    """

    height: float
    height_sd: float
    length: float
    width: float
    contact_length: float
    contact_width: float
    ground_sd: float


PRIORS: dict[str, ObjectPrior] = {
    "pedestrian": ObjectPrior(1.70, 0.10, 0.50, 0.50, 0.30, 0.30, 0.12),
    "cyclist": ObjectPrior(1.70, 0.12, 1.75, 0.60, 1.05, 0.10, 0.08),
    "bicycle": ObjectPrior(1.05, 0.15, 1.75, 0.60, 1.05, 0.10, 0.08),
    "motorcycle": ObjectPrior(1.15, 0.20, 2.10, 0.80, 1.45, 0.20, 0.05),
    "car": ObjectPrior(1.55, 0.15, 4.60, 1.85, 2.70, 1.60, 0.05),
    "truck": ObjectPrior(2.60, 0.70, 7.00, 2.30, 4.00, 1.90, 0.05),
    "bus": ObjectPrior(3.20, 0.30, 12.00, 2.55, 6.00, 2.10, 0.05),
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
    footprint_rel: float = 0.15
    heading_spread: float = 0.15
    border_px: float = 2.0
    min_slope: float = 0.005


DEFAULT_NOISE = PositionNoise()


@lru_cache(maxsize=32)
def prior_table(label_names: tuple[str, ...]) -> np.ndarray:
    """(len(label_names), 8) rows of (known, height, height_sd, length, width, contact_length,
    contact_width, ground_sd) per label index;
    labels without a prior (traffic lights) are unknown (0) with nan sizes. Cached: built once
    per detector's label set, then indexed per frame."""
    rows = [(1.0, p.height, p.height_sd, p.length, p.width, p.contact_length, p.contact_width,
             p.ground_sd) if (p := PRIORS.get(lb)) else (0.0,) + (np.nan,) * 7
            for lb in label_names]
    table = np.array(rows, np.float64).reshape(-1, 8)
    table.setflags(write=False)
    return table
