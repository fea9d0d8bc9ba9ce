"""Durations in messages: one formatter for every wait, limit and stall a message names.

Waits were printed in whole seconds (``{waited:.0f} s``): a load given up after a 0.5 s
``warm_up_timeout_s`` said "has not returned after 1 s" (or "after 0 s"), and limits of minutes
read as "600 s". :func:`duration` says each as a reader would (R94).
"""
from __future__ import annotations

import math


def _figure(value: float) -> str:
    """``value`` to two significant figures below 10 (``0.5``, ``1.5``, ``0.05``), whole above."""
    return f"{value:.2g}" if value < 10 else f"{round(value):d}"


def duration(seconds: float) -> str:
    """``seconds`` in words for a message: ``"0.5 s"``, ``"2 s"``, ``"45 s"``, ``"1.5 min"``,
    ``"10 min"``, ``"2 h"`` (seconds below a minute, minutes below an hour, else hours; two
    significant figures below 10 of the unit, whole numbers above). Not a number or infinite:
    as Python writes it, in seconds."""
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return f"{seconds:g} s"
    if seconds < 60:
        return f"{_figure(seconds)} s"
    if seconds < 3600:
        return f"{_figure(seconds / 60)} min"
    return f"{_figure(seconds / 3600)} h"


__all__ = ["duration"]
