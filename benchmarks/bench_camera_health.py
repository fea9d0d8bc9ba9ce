"""camera_health_ms_1080p: per-frame cost of a camera's health update on one core.

What a node adds to every camera frame: :meth:`CameraHealthMonitor.update`, i.e. the small copy
(:func:`small_copy`), the metrics against the previous frame's copy, the per-frame verdict, the
film watch against the view's recent past, the stream timing and the hysteresis. Measured on the 1920x1080 input frames with
OpenCV held to one thread (the nodes' callback runs on one core); the median over calls. The
verdict on each clean input is kept as a cross-check: it must be empty.

``detail.flat_view_ms`` times the same update on the same frames with a plain dark surface (a
truck's side in shade, :func:`degrade.pulling_in`) over a third of the view: the frames on which
the border of a flat, dark part is judged as well, the dearest case.
"""
from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from sense_perception.core.health.camera_conditions import (frame_metrics, image_conditions,
                                                             small_copy)
from sense_perception.core.health.camera_health import CameraHealthMonitor
from sense_perception.core.health.camera_settings import CameraHealthSettings
from sense_perception.evaluation import degrade


def _update_ms(frames: list[np.ndarray], calls: int, settings: CameraHealthSettings) -> list[float]:
    """Milliseconds of each monitor update over ``calls`` rounds of ``frames`` (10 Hz stamps)."""
    ms = []
    monitor = CameraHealthMonitor("/bench", settings)
    for i in range(max(calls, 1) * len(frames) + 2):
        frame = frames[i % len(frames)]
        start = time.perf_counter()
        monitor.update(frame, 0.1 * i)
        elapsed = (time.perf_counter() - start) * 1e3
        if i > 1:  # the first calls pay one-off allocations and start the recent past
            ms.append(elapsed)
    return ms


def run(inputs: Any, calls: int) -> dict[str, Any]:
    """Median milliseconds per 1080p frame, and the conditions each clean input shows."""
    settings = CameraHealthSettings()
    frames = [im for im in inputs.images if im.shape[:2] == (1080, 1920)]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    # the surface in full, as on the last of the ten frames it slides in over (``over=1``: that
    # frame alone; making all ten, with their noise, took 13 s of the quick run for the 4 used)
    rng = np.random.default_rng(0)
    flat = [degrade.pulling_in([im], 90.0, rng, over=1)[0] for im in frames]
    try:
        ms = _update_ms(frames, calls, settings)
        flat_ms = _update_ms(flat, calls, settings)
    finally:
        cv2.setNumThreads(threads)
    verdicts = {p.name: image_conditions(frame_metrics(small_copy(im, settings.width), None,
                                                       settings), settings)
                for p, im in zip(inputs.paths, inputs.images, strict=True)}
    return {"camera_health_ms_1080p": round(float(np.median(ms)), 4),
            "detail": {"frames": len(ms), "p90_ms": round(float(np.percentile(ms, 90)), 4),
                       "flat_view_ms": round(float(np.median(flat_ms)), 4),
                       "width": settings.width, "clean_input_conditions": verdicts}}
