"""rss_growth_mb: resident memory growth of the whole object pipeline over many frames.

Runs the same per-frame path as pipeline_over_raw (rgb8 Image message -> decode -> detect ->
tracker -> Detection2DArray dict), with the real model, on real frames downscaled to 640x360 so
decode and resize stay cheap (the model input is 416x416 whatever the frame size, so inference,
the dominant cost, is unchanged). RSS is sampled every ``every`` frames; growth is the last
sample minus the sample after the first ``every`` frames (allocator pools and onnxruntime arenas
have settled by then).
"""
from __future__ import annotations

import gc
import time
from typing import Any

import cv2

from .bench_pipeline import Pipeline, ros_messages
from .common import Inputs, rss_mb


def run(detector: Any, inputs: Inputs, frames: int, every: int = 1000) -> dict[str, Any]:
    """RSS growth in MiB over ``frames`` frames."""
    small = [cv2.resize(im, (640, 360), interpolation=cv2.INTER_AREA) for im in inputs.images]
    msgs = ros_messages(small)
    pipeline = Pipeline(detector)
    every = max(1, min(every, frames))
    gc.collect()
    samples = [(0, round(rss_mb(), 2))]
    start = time.perf_counter()
    for i in range(frames):
        pipeline(msgs[i % len(msgs)], i * (1 / 30))
        if (i + 1) % every == 0:
            gc.collect()
            samples.append((i + 1, round(rss_mb(), 2)))
    wall = time.perf_counter() - start
    baseline = samples[1][1] if len(samples) > 2 else samples[0][1]
    return {
        "rss_growth_mb": round(samples[-1][1] - baseline, 2),
        "detail": {
            "what": ("rgb8 Image 640x360 (real frames downscaled) -> decode -> detect -> tracker "
                     "-> Detection2DArray dict, frames cycled; growth = RSS after the last frame "
                     f"minus RSS after the first {every}"),
            "frames": frames,
            "rss_mb_samples": samples,
            "wall_s": round(wall, 1),
            "fps": round(frames / wall, 2) if wall > 0 else None,
        },
    }
