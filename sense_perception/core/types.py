"""Plain data types shared by the core, the nodes and the replay CLI."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class _StampLike(Protocol):
    @property
    def sec(self) -> int: ...
    @property
    def nanosec(self) -> int: ...


class HeaderLike(Protocol):
    """Any std_msgs/Header-shaped object: rclpy's, rosbags' or a plain one with those fields."""

    @property
    def stamp(self) -> _StampLike: ...
    @property
    def frame_id(self) -> str: ...


@dataclass
class Header:
    """The parts of std_msgs/Header the pipeline carries from input to output unchanged."""

    sec: int = 0
    nanosec: int = 0
    frame_id: str = ""

    @classmethod
    def from_msg(cls, header: HeaderLike) -> "Header":
        """Copy a std_msgs/Header-like object (rclpy, rosbags or any object with those fields)."""
        stamp = header.stamp
        return cls(int(stamp.sec), int(stamp.nanosec), str(header.frame_id))

    @property
    def seconds(self) -> float:
        return self.sec + self.nanosec * 1e-9


@dataclass
class Detections:
    """Detections of one image, boxes in source-image pixels.

    Attributes:
        boxes: (N, 4) float32, x1, y1, x2, y2 in source pixels.
        scores: (N,) float32 confidences in [0, 1].
        labels: (N,) int32 indices into the detector's ``label_names``.
        track_ids: (N,) int64 track ids, -1 where no track is assigned.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __post_init__(self) -> None:
        if self.track_ids.shape[0] != self.boxes.shape[0]:
            self.track_ids = np.full((self.boxes.shape[0],), -1, np.int64)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, mask_or_index: np.ndarray) -> "Detections":
        """Return the subset given by a boolean mask or an index array."""
        return Detections(
            self.boxes[mask_or_index],
            self.scores[mask_or_index],
            self.labels[mask_or_index],
            self.track_ids[mask_or_index],
        )
