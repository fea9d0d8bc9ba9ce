"""batched6_over_single6: six camera frames in one ``detect`` call vs six separate calls."""
from __future__ import annotations

from typing import Any

from .common import Inputs, side_by_side

CAMERAS = 6


def run(detector: Any, inputs: Inputs, rounds: int, calls: int) -> dict[str, Any]:
    """Time of one batched call on six frames over six single-frame calls (< 1: faster)."""
    six = [inputs.images[i % len(inputs.images)] for i in range(CAMERAS)]
    result = side_by_side({"batched": lambda _: detector.detect(six),
                           "single": lambda _: [detector.detect([im]) for im in six]},
                          rounds, calls)
    return {
        "batched6_over_single6": round(result.ratio("batched", "single"), 4),
        "detail": {
            "what": ("time of ObjectDetector.detect(six frames) over six detect([frame]) calls; "
                     "frames: the input set cycled to six; interleaved, median of per-round "
                     "ratios"),
            "batch_dynamic": bool(detector.batch_dynamic),
            "max_batch": int(detector.config.max_batch),
            "ratio_iqr": [round(x, 4) for x in result.ratio_spread("batched", "single")],
            "batched_ms": round(result.median_ms("batched"), 3),
            "single6_ms": round(result.median_ms("single"), 3),
            "timing": result.summary(),
        },
    }
