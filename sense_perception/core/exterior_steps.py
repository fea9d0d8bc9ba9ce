"""What follows detection on an exterior camera's frame, in one place.

The node, the replay and the evaluations all turn a frame's detections into the one
:class:`~sense_perception.core.output.frame_outputs.ExteriorFrame` every output row is built
from, through :meth:`ExteriorSteps.frame`: ignore regions, then tracking, then ground positions
and velocities. One path is what makes a frame give the same messages live and in a replay.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .autoware.rois import AutowareConfig
from .output.frame_outputs import ExteriorFrame
from .types import Detections, Header


@dataclass(frozen=True)
class ExteriorSteps:
    """The per-camera state after detection, shared by every frame of a run.

    Attributes:
        detector: the detector (its ``label_names`` and ``min_score`` label the outputs).
        trackers: the :class:`~.tracking.tracker.TrackerBank`; None with tracking off.
        positions: the cameras' :class:`~.geometry.positioner.CameraPositions`; None: no 3-D.
        ignore: the cameras' :class:`~.detection.ignore_regions.IgnoreRegions`; None: none.
        autoware: the ``autoware.*`` settings (Autoware's ROIs and objects); None: none.
    """

    detector: Any
    trackers: Any = None
    positions: Any = None
    ignore: Any = None
    autoware: AutowareConfig | None = None
    # Per camera, the calibration generation its velocity filters were fed with.
    _generations: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def frame(self, topic: str, header: Header, detections: Detections,
              size: tuple[int, int], health: dict[str, Any] | None = None,
              image: Any = None, t: float | None = None) -> ExteriorFrame:
        """The results of one frame of camera ``topic`` from its detector output.

        Args:
            topic: the camera's image topic (the key of its tracks, calibration and regions).
            header: the image's header; its stamp times the tracks and velocities unless ``t``
                is given.
            detections: the detector's boxes in the image's pixels.
            size: (width, height) of the image.
            health: the camera's health status after this frame (None without health).
            image: the decoded frame for the debug image (None: no debug image).
            t: the seconds to time the tracks and velocities with (a
                :class:`~.frame_clock.FrameClock`'s: the receive time of an unstamped camera);
                None: the header's stamp.
        """
        t = header.seconds if t is None else t
        width, height = size
        label_names = self.detector.label_names
        regions = self.ignore.outlines(topic, width, height) if self.ignore else []
        if self.ignore:  # dropped before tracking, so no track is fed from a region
            detections = self.ignore.apply(topic, detections, width, height)
        if self.trackers is not None:
            detections = self.trackers.update(topic, detections, t)
        placed = None if self.positions is None else self.positions.positions(
            topic, header.frame_id, width, height, detections.boxes, detections.labels,
            label_names, self._bottom_hidden(topic, detections, width, height))
        if placed is not None and self.trackers is not None:
            generation = self.positions.generation(topic)
            if self._generations.setdefault(topic, generation) != generation:
                # A new mount or K: the positions before it are in another estimate, and their
                # difference would be published as a velocity.
                self._generations[topic] = generation
                self.trackers.motion.reset(topic)
        motion = None if self.trackers is None or placed is None else \
            self.trackers.velocities(topic, detections, placed, t)
        return ExteriorFrame(header, detections, label_names, self.detector.min_score, size, image,
                             autoware=self.autoware, positions=placed, motion=motion,
                             health=health, ignore_regions=regions)

    def _bottom_hidden(self, topic: str, detections: Detections, width: int,
                       height: int) -> Any:
        """(N,) the boxes whose bottom edge lies on the camera's ignore region (the ego bonnet, a
        mirror): the strip below it, as deep as the edge's noise, mostly inside. Their ground
        contact is hidden as below the image border: the bottom row's ground ray placed a
        pedestrian whose feet the bonnet hides at the bonnet edge's range, further than they
        are (SECURITY.md R77). None without regions."""
        if not self.ignore or not len(detections):
            return None
        from .geometry.ground import border_margin_px
        from .geometry.priors import DEFAULT_NOISE

        boxes = detections.boxes.astype(np.float64)
        margin = border_margin_px(boxes, getattr(self.positions, "noise", DEFAULT_NOISE))
        strip = np.stack([boxes[:, 0], boxes[:, 3], boxes[:, 2], boxes[:, 3] + margin], 1)
        return self.ignore.inside_share(topic, strip, width, height) >= 0.5
