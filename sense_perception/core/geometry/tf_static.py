"""The camera's mount from ``/tf_static`` (tf2_msgs/TFMessage), read without tf2_ros.

A rigid camera mount needs only the static transforms: base_link -> ... -> the camera's optical
frame (the ``frame_id`` of its images and CameraInfo). :class:`StaticTransforms` collects the
transforms of every ``/tf_static`` message (latched: each publisher sends its set once) and
composes the chain between two frames in either direction.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from .calibration import CalibrationError

# tf2's QUATERNION_NORMALIZATION_TOLERANCE: |x^2 + y^2 + z^2 + w^2 - 1| below it is accepted.
_QUATERNION_TOLERANCE = 0.01

# Child frames kept (a robot has tens to hundreds): a publisher sending ever new child frames on
# /tf_static would otherwise grow the store (and every lookup's walk) without end. A transform of a
# frame already known is always taken (a re-published mount); one of a new frame beyond the cap is
# refused, counted, and the first few named (:attr:`StaticTransforms.over_cap`).
MAX_FRAMES = 4096
# Refused transforms (bad quaternion, ...) remembered to name in a lookup's error, and new frames
# named in the cap's note: the rest are only counted.
MAX_REFUSED = 64
_NAMED_OVER_CAP = 4


def _get(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _frame(name: Any) -> str:
    return str(name).lstrip("/")  # tf2 ignores a leading slash


def transform_matrix(translation: Any, rotation: Any) -> np.ndarray:
    """4x4 of a geometry_msgs/Transform (translation x, y, z; rotation quaternion x, y, z, w):
    maps points of the child frame into the parent frame."""
    t = np.array([float(_get(translation, k)) for k in "xyz"])
    x, y, z, w = (float(_get(rotation, k)) for k in "xyzw")
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    if not np.isfinite(norm) or norm < 1e-6 or not np.isfinite(t).all():
        raise CalibrationError(f"a /tf_static transform has a zero or non-finite rotation "
                               f"quaternion ({x}, {y}, {z}, {w}) or translation {t.tolist()}")
    if abs(norm * norm - 1.0) >= _QUATERNION_TOLERANCE:
        # tf2 ignores such a transform (TF_DENORMALIZED_QUATERNION), so Autoware's fusion has no
        # mount for the camera; normalising it here would place detections with a rotation no
        # other node uses, from a value that is likely a typo.
        raise CalibrationError(f"a /tf_static transform's rotation quaternion ({x}, {y}, {z}, {w}) "
                               f"has length {norm:.4g}, not 1 (tf2 ignores it too); fix: publish a "
                               "unit quaternion")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = t
    return T


class StaticTransforms:
    """The static transform tree, fed with tf2_msgs/TFMessage messages (objects or dicts)."""

    def __init__(self, max_frames: int = MAX_FRAMES) -> None:
        # child -> (parent, T_parent_child): as in tf2, a frame has one parent, and a later
        # transform of a child replaces its earlier one, whichever parent it names
        self._edges: dict[str, tuple[str, np.ndarray]] = {}
        self._refused: dict[tuple[str, str], str] = {}  # (parent, child) -> why it was refused
        self.max_frames = max_frames
        self.over_cap = 0  # transforms of new child frames refused because the store was full
        self.over_cap_names: list[str] = []  # the first few of them, "parent -> child"

    def add(self, message: Any) -> int:
        """Add every transform of a TFMessage; returns how many. A later transform of a child
        frame replaces the earlier one (a re-published mount), also when it names another parent
        (tf2 keeps one parent per frame). A transform of a new child frame once ``max_frames``
        are known is not kept: counted in :attr:`over_cap` (see :meth:`cap_note`), not an error
        (the frames already known, the cameras' mounts, are untouched).

        Raises:
            CalibrationError: naming the transforms refused (non-finite or zero quaternion or
                translation), after every valid transform of the message was added: one
                publisher sends all its static transforms in one message, and a bad one (a
                lidar's) must not take the cameras' mounts with it.
        """
        added = 0
        refused = []
        for stamped in _get(message, "transforms"):
            parent = _frame(_get(_get(stamped, "header"), "frame_id"))
            child = _frame(_get(stamped, "child_frame_id"))
            if child not in self._edges and len(self._edges) >= self.max_frames:
                self.over_cap += 1
                if len(self.over_cap_names) < _NAMED_OVER_CAP:
                    # a frame name may be of any length: the note shows its start
                    self.over_cap_names.append(f"{parent[:80]} -> {child[:80]}")
                continue
            transform = _get(stamped, "transform")
            try:
                T = transform_matrix(_get(transform, "translation"), _get(transform, "rotation"))
            except CalibrationError as exc:
                if (parent, child) in self._refused or len(self._refused) < MAX_REFUSED:
                    self._refused[(parent, child)] = str(exc)
                refused.append(f"{parent} -> {child}: {exc}")
                continue
            self._edges[child] = (parent, T)
            for edge in [e for e in self._refused if e[1] == child]:
                del self._refused[edge]
            added += 1
        if refused:
            more = f"; and {len(refused) - 4} more" if len(refused) > 4 else ""
            raise CalibrationError("; ".join(refused[:4]) + more)
        return added

    def cap_note(self) -> str:
        """Why some /tf_static transforms were not kept ("" when all were): how many, the first
        few, the cap and the fix."""
        if not self.over_cap:
            return ""
        return (f"/tf_static: {self.over_cap} transform(s) of new frames not kept, beyond the cap "
                f"of {self.max_frames} frames (first: {', '.join(self.over_cap_names)}); the "
                f"frames already known keep their transforms; fix: find the node publishing ever "
                "new child frames on /tf_static (a robot has tens to hundreds)")

    @property
    def refused(self) -> bool:
        """Whether a transform was refused (and not replaced by a valid one since)."""
        return bool(self._refused)

    @property
    def frames(self) -> list[str]:
        """Every frame named by a transform, sorted."""
        edges = list(self._edges.items())  # one step: the node's executor may add meanwhile
        return sorted({*(child for child, _ in edges), *(parent for _, (parent, _) in edges)})

    def lookup(self, target: str, source: str) -> np.ndarray:
        """``T_target_source`` (maps points of ``source`` into ``target``), composed along the
        tree in either direction.

        Raises:
            CalibrationError: no chain of static transforms joins the two frames.
        """
        target, source = _frame(target), _frame(source)
        if target == source:
            return np.eye(4)
        # Each frame has one parent (a forest): the chain joins both frames at their first
        # common ancestor. Walking up costs the tree's depth, not its size (all 4096 frames
        # were inverted for every lookup).
        up_target, up_source = self._ancestors(target), self._ancestors(source)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            known = ", ".join(self.frames[:12]) or "none"
            refused = "".join(f"; refused: {parent} -> {child} ({why})"
                              for (parent, child), why in list(self._refused.items())[:4])
            raise CalibrationError(
                f"/tf_static has no chain of transforms from {target} to {source} (frames known: "
                f"{known}{refused}); fix: publish the camera's static transform "
                "(robot_state_publisher or static_transform_publisher, parent base_link, child the "
                "images' frame_id), or set the mount as parameters")
        return np.linalg.inv(up_target[common]) @ up_source[common]

    def _ancestors(self, frame: str) -> dict[str, np.ndarray]:
        """``frame`` and each frame above it, in order, with ``T_ancestor_frame``; a loop of
        parents (a publisher's mistake) ends the walk where it closes."""
        out = {frame: np.eye(4)}
        while (edge := self._edges.get(frame)) is not None and edge[0] not in out:
            parent, T_parent_frame = edge
            out[parent] = T_parent_frame @ out[frame]
            frame = parent
        return out


def mount_from_tf(messages: Iterable[Any], camera_frame: str,
                  base_frame: str = "base_link") -> np.ndarray:
    """``T_base_link_camera`` from /tf_static messages and the images' optical ``frame_id``."""
    tree = StaticTransforms()
    for message in messages:
        tree.add(message)
    return tree.lookup(base_frame, camera_frame)
