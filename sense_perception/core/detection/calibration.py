"""Score calibration: each bundled detector's raw scores mapped to the precision they stand for.

Models score on scales of their own (the pedestrian specialist's true pedestrians score 0.15-0.3,
PicoDet's 0.3-0.9), yet Autoware gates on ``existence_probability`` per label and people read the
numbers. Each bundled model therefore ships a Platt map per label, fitted on the developer set by
``tools/fit_score_calibration.py``: ``p = sigmoid(a * logit(raw) + b)`` with ``a > 0``, so that a
score is close to the share of true detections at that score. The map is strictly monotone, so
within one label it keeps every order (NMS, tile merges), and a threshold ``t`` on calibrated
scores keeps exactly the detections a raw threshold ``inverse(t)`` kept. Labels with too few
examples on the developer set use the model's pooled fit (``default`` in the file).

The parameters live in ``sense_perception/models/score_calibration.json``, keyed by model name and
bound to the model file's sha256: a file refitted for other weights is refused, not applied.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import ModelError

CALIBRATION_RESOURCE = "models/score_calibration.json"
_EPS = 1e-12  # scores are clipped into (0, 1) before the logit (0 and 1 stay themselves)


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)) in float64, ``p`` clipped into (0, 1)."""
    p = np.clip(np.asarray(p, np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


@dataclass(frozen=True)
class PlattMap:
    """``p = sigmoid(a * logit(raw) + b)``, ``a > 0`` (strictly increasing)."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.a) and np.isfinite(self.b) and self.a > 0):
            raise ValueError(f"a Platt map needs a finite a > 0 and a finite b, got a={self.a}, "
                             f"b={self.b}")

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        return _sigmoid(self.a * logit(raw) + self.b)

    def inverse(self, calibrated: float) -> float:
        """The raw score that maps to ``calibrated`` (0 and 1 map to themselves)."""
        if calibrated <= 0.0 or calibrated >= 1.0:
            return float(calibrated)
        return float(_sigmoid((logit(calibrated) - self.b) / self.a))


@dataclass(frozen=True)
class ScoreCalibration:
    """One model's maps: per label, else the model's pooled ``default``."""

    model: str
    sha256: str
    default: PlattMap
    labels: dict[str, PlattMap]
    provenance: dict[str, Any]

    def map_of(self, label: str) -> PlattMap:
        """The map of ``label`` (the pooled one where the label has none of its own)."""
        return self.labels.get(label, self.default)

    def per_label(self, label_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) arrays indexed like ``label_names``."""
        maps = [self.map_of(n) for n in label_names]
        return (np.array([m.a for m in maps], np.float64),
                np.array([m.b for m in maps], np.float64))

    def raw_threshold(self, label: str, threshold: float) -> float:
        """The raw score whose calibrated value is ``threshold`` for ``label``."""
        return self.map_of(label).inverse(threshold)


def apply_maps(scores: np.ndarray, labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Calibrated float32 ``scores``; ``labels`` index ``a`` and ``b`` (negative: left as they are,
    for candidates the label map drops anyway)."""
    index = np.maximum(labels, 0)
    out = _sigmoid(a[index] * logit(scores) + b[index]).astype(np.float32)
    return np.where(labels >= 0, out, scores).astype(np.float32)


def _parse(doc: Any, source: str) -> dict[str, ScoreCalibration]:
    def platt(entry: Any, where: str) -> PlattMap:
        try:
            return PlattMap(float(entry["a"]), float(entry["b"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: {where} is not a Platt map {{'a': > 0, 'b': number}}: "
                             f"{exc}") from exc

    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise ModelError(f"{source} has no 'models' table; fix: refit it with "
                         "tools/fit_score_calibration.py")
    out = {}
    for name, entry in doc["models"].items():
        if not isinstance(entry, dict) or "default" not in entry:
            raise ModelError(f"{source}: models.{name} has no 'default' map")
        out[name] = ScoreCalibration(
            model=name, sha256=str(entry.get("sha256", "")),
            default=platt(entry["default"], f"models.{name}.default"),
            labels={lb: platt(m, f"models.{name}.labels.{lb}")
                    for lb, m in (entry.get("labels") or {}).items()},
            provenance={k: v for k, v in doc.items() if k != "models"})
    return out


def load_calibrations(path: Path | None = None) -> dict[str, ScoreCalibration]:
    """Every shipped calibration by model name (``path``: another file, for tests and refits).

    Raises:
        ModelError: the file is missing or malformed.
    """
    path = path or Path(str(resources.files("sense_perception") / CALIBRATION_RESOURCE))
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"score calibration {path} cannot be read: {exc}; fix: reinstall "
                         "sense_perception or refit it with tools/fit_score_calibration.py") from exc
    return _parse(doc, str(path))


def calibration_for(model: str, sha256: str, path: Path | None = None) -> ScoreCalibration | None:
    """The shipped calibration of bundled ``model`` whose weights have ``sha256``; None where the
    model has none.

    Raises:
        ModelError: the calibration was fitted on other weights (a stale file).
    """
    found = load_calibrations(path).get(model)
    if found is None:
        return None
    if found.sha256 != sha256:
        raise ModelError(f"the score calibration of {model} was fitted for weights with sha256 "
                         f"{found.sha256 or '(none)'}, but the model has {sha256}; fix: refit it "
                         "with tools/fit_score_calibration.py, or set "
                         "detector.calibrated_scores false (raw scores, raw thresholds)")
    return found


__all__ = ["CALIBRATION_RESOURCE", "PlattMap", "ScoreCalibration", "apply_maps",
           "calibration_for", "load_calibrations", "logit"]
