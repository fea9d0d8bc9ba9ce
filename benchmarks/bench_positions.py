"""positions_50_ms: ground positions of one frame's 50 detections (core/geometry/ground.py).

A 1920x1080 camera with plumb_bob distortion (so the undistortion runs) 1.5 m up; 50 boxes of
road users and a few traffic lights, at random places. The time is the median over rounds of the
mean of ``calls`` calls of ``estimate_positions``, wall clock (process time beside it in detail).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from sense_perception.core.detection.labels import AD_LABELS
from sense_perception.core.geometry import estimate_positions, from_dict, mount_transform


def run(rounds: int, calls: int = 200, seed: int = 0) -> dict[str, Any]:
    """Median milliseconds per frame of 50 detections."""
    rng = np.random.default_rng(seed)
    calib = from_dict({"K": [[1400.0, 0, 960], [0, 1400, 540], [0, 0, 1]],
                       "D": [-0.3, 0.1, 0.0, 0.0, 0.0], "distortion_model": "plumb_bob",
                       "width": 1920, "height": 1080,
                       "T_base_link_camera": mount_transform(1.5, 0.02).tolist()}, "benchmark")
    x1, y1 = rng.uniform(0, 1800, 50), rng.uniform(300, 700, 50)
    boxes = np.stack([x1, y1, x1 + rng.uniform(10, 120, 50), y1 + rng.uniform(20, 300, 50)], 1)
    labels = rng.integers(0, len(AD_LABELS), 50)
    estimate_positions(calib, boxes, labels, AD_LABELS)  # warm-up (prior table, cv2)
    wall, cpu = [], []
    for _ in range(max(3, rounds)):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            estimate_positions(calib, boxes, labels, AD_LABELS)
        wall.append((time.perf_counter() - t0) / calls * 1e3)
        cpu.append((time.process_time() - c0) / calls * 1e3)
    return {"positions_50_ms": round(float(np.median(wall)), 4),
            "detail": {"process_time_ms": round(float(np.median(cpu)), 4), "calls": calls,
                       "rounds": len(wall)}}
