"""Message definitions the project carries (vision_msgs 4.x field layout, byte-for-byte compatible).

rosbags needs them to write vision_msgs into bags without a ROS install; the ROS test environment
builds real typesupport from the same files.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

VISION_MSGS_DIR = Path(str(files(__package__) / "vision_msgs" / "msg"))


def vision_msgs_definitions() -> dict[str, str]:
    """Return ``{"vision_msgs/msg/Name": msg_text}`` for every bundled definition."""
    return {f"vision_msgs/msg/{p.stem}": p.read_text() for p in sorted(VISION_MSGS_DIR.glob("*.msg"))}
