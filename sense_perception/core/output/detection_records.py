"""The entries of ``detections.json`` that ``detect`` and ``eval`` write (one format for both).

``{"images": [{"path", "width", "height", "detections": [{"label", "score", "bbox_xyxy"}]}],
"positions": {"calibration": SOURCE or null, "reason": why none}}``. With a calibration, every
detection also has ``position_base_link`` [x, y, z] (metres, base_link, z = 0 on the road),
``range_m`` and ``position_covariance`` [[xx, xy], [yx, yy]] (m^2), all null for a label that has
no size prior (traffic lights, stop signs) or a box that gives no cue.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..geometry.ground import GroundPositions

NO_CALIBRATION = ("no camera calibration: give --calibration FILE (JSON with K, D, "
                  "distortion_model, width, height, T_base_link_camera) for 3-D positions")


def detection_record(path: str, width: int, height: int, names: Sequence[str], boxes: np.ndarray,
                     scores: np.ndarray, positions: GroundPositions | None = None
                     ) -> dict[str, Any]:
    """One image's entry of detections.json; ``positions`` adds the 3-D fields."""
    detections = [{"label": name, "score": round(float(score), 4),
                   "bbox_xyxy": [round(float(v), 2) for v in box]}
                  for name, score, box in zip(names, np.asarray(scores).tolist(),
                                              np.asarray(boxes).tolist(), strict=True)]
    if positions is not None:
        xyz = np.round(positions.xyz, 3).tolist()
        ranges = np.round(positions.range_m, 2).tolist()
        cov = np.round(positions.covariance, 4).tolist()
        for entry, ok, p, r, c in zip(detections, positions.valid.tolist(), xyz, ranges, cov,
                                      strict=True):
            entry["position_base_link"] = p if ok else None
            entry["range_m"] = r if ok else None
            entry["position_covariance"] = c if ok else None
    return {"path": path, "width": int(width), "height": int(height), "detections": detections}


def positions_note(source: str | None, reason: str = NO_CALIBRATION) -> dict[str, Any]:
    """detections.json's ``positions``: the calibration used, or why there are none."""
    return {"calibration": source} if source else {"calibration": None, "reason": reason}
