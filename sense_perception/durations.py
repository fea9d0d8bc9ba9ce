"""Durations in messages: one formatter for every wait, limit and stall a message names.

Waits were printed in whole seconds (``{waited:.0f} s``): a load given up after a 0.5 s
``warm_up_timeout_s`` said "has not returned after 1 s" (or "after 0 s"), and limits of minutes
read as "600 s". :func:`duration` says each as a reader would (R94).
"""
from __future__ import annotations

import math
from decimal import Decimal


def _figure(value: float) -> str:
    """``value`` to two significant figures below 10 (``0.5``, ``1.5``, ``0.05``), whole above;
    never in exponent form (a limit of 10 microseconds said ``1e-05 s``)."""
    text = f"{value:.2g}" if value < 10 else f"{round(value):d}"
    return format(Decimal(text), "f") if "e" in text else text


def duration(seconds: float) -> str:
    """``seconds`` in words for a message: ``"0.5 s"``, ``"2 s"``, ``"45 s"``, ``"1.5 min"``,
    ``"10 min"``, ``"2 h"`` (seconds below a minute, minutes below an hour, else hours; two
    significant figures below 10 of the unit, whole numbers above). A value that rounds up to the
    next unit is said in it (59.7 s is ``1 min``, not ``60 s``; 3599 s ``1 h``, not ``60 min``);
    nought is ``0 s`` (never ``-0 s``). Not a number, infinite or negative: as Python writes it,
    in seconds."""
    seconds = float(seconds)
    if seconds == 0:
        return "0 s"
    if not math.isfinite(seconds) or seconds < 0:
        return f"{seconds:g} s"
    for unit, size, next_size in (("s", 1.0, 60.0), ("min", 60.0, 60.0)):
        text = _figure(seconds / size)
        if float(text) < next_size:
            return f"{text} {unit}"
        seconds = max(seconds, float(text) * size)  # what it rounded to, in the next unit
    return f"{_figure(seconds / 3600)} h"


__all__ = ["duration"]
