"""ROS-free rosbag2 replay through the perception core (``sense-perception replay``).

Reads MCAP and sqlite3 bags with rosbags (tolerating missing metadata, truncated MCAP, unknown
types and corrupt frames), writes an output rosbag2 MCAP with the results, annotated videos and a
summary. Only :mod:`.publish` (``--publish``) imports rclpy, and only when used.

Names are loaded on first use so that importing one light module does not load the others.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ReplayOptions": "engine", "ReplayResult": "engine", "Replayer": "engine", "replay": "engine",
    "Bag": "reader", "BagMessage": "reader", "open_bag": "reader", "SkipLog": "skips",
    "SummaryBuilder": "summary", "OutputBag": "writer", "camera_namespace": "writer",
    "MessageConverter": "to_rosbags", "make_typestore": "typestore", "LivePublisher": "publish",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
