"""Small helpers shared by several test modules."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class RawImage:
    """A plain dataclass with the fields of sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


def load_eval_recall() -> ModuleType:
    """tools/eval_recall.py (a script, not a package module) loaded as a module."""
    if "eval_recall" in sys.modules:
        return sys.modules["eval_recall"]
    spec = importlib.util.spec_from_file_location("eval_recall", REPO / "tools" / "eval_recall.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_recall"] = module
    spec.loader.exec_module(module)
    return module


# -- comparing detections of two code paths -------------------------------------------------------
# OpenCV and onnxruntime choose kernels by instruction set at run time (SSE4/AVX2/AVX-512), and two
# code paths (a 4-channel vs a 3-channel resize, a batch of 5 vs a batch of 1, a rewritten graph vs
# the original, torch vs OpenCV) round differently. Bit-for-bit equality holds only where the same
# kernel runs on the same bytes; everywhere else detections agree within these tolerances:
#  * boxes within CROSS_PATH_BOX_PX source pixels. Measured: the 4-channel cubic resize puts 1-5
#    pixels of a 1920x1080 frame one grey level away from the 3-channel one (an AVX-512 Xeon and an
#    AVX-512 EPYC alike), which moved boxes by up to 0.0043 px (Xeon) and 0.0056 px (EPYC); flipping
#    3 to 30 random pixels by one grey level moved them by up to 0.03 px. 0.1 px covers that with
#    margin and is still far below anything that changes an IoU or a track;
#  * scores within CROSS_PATH_SCORE (measured: 2.3e-5 for the views, 2.6e-4 for 30 flipped pixels);
#  * a detection present on one side only is allowed when its score lies within the score
#    tolerance of the threshold it was cut at: rounding may put it on either side.
CROSS_PATH_BOX_PX = 0.1
CROSS_PATH_SCORE = 1e-3


def assert_detections_close(got: Any, want: Any, *, box_px: float = CROSS_PATH_BOX_PX,
                            score: float = CROSS_PATH_SCORE, threshold: float | None = None,
                            what: str = "") -> None:
    """Assert that two ``Detections`` of the same image from two code paths agree.

    Detections are paired one to one by label and box overlap (the order may differ where two
    scores nearly tie). Paired boxes must lie within ``box_px`` pixels and scores within ``score``.
    A detection without a partner fails the assertion unless ``threshold`` is given and its score
    is within ``score`` of it.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from sense_perception.core.boxes import pairwise_iou

    iou = pairwise_iou(np.asarray(got.boxes, np.float64), np.asarray(want.boxes, np.float64))
    iou[np.asarray(got.labels)[:, None] != np.asarray(want.labels)[None, :]] = 0.0
    rows, cols = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    paired = iou[rows, cols] > 0.5
    rows, cols = rows[paired], cols[paired]
    for side, dets, used in (("got", got, rows), ("want", want, cols)):
        alone = np.setdiff1d(np.arange(len(dets.scores)), used)
        near = threshold is not None and bool(
            (np.abs(np.asarray(dets.scores)[alone] - threshold) <= score).all())
        assert len(alone) == 0 or near, (
            f"{what}: {len(alone)} detection(s) of '{side}' have no partner on the other side "
            f"(scores {np.asarray(dets.scores)[alone].tolist()}, threshold {threshold})")
    box_gap = np.abs(np.asarray(got.boxes)[rows] - np.asarray(want.boxes)[cols])
    assert box_gap.size == 0 or box_gap.max() <= box_px, (
        f"{what}: boxes differ by up to {box_gap.max():.5f} px (tolerance {box_px} px)")
    score_gap = np.abs(np.asarray(got.scores)[rows] - np.asarray(want.scores)[cols])
    assert score_gap.size == 0 or score_gap.max() <= score, (
        f"{what}: scores differ by up to {score_gap.max():.2e} (tolerance {score})")
