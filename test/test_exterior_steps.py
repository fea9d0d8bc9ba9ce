"""What follows detection on an exterior camera (core/exterior_steps.py), the one path the node
and the replay share: ignore regions before tracking, the header and the health carried through.
The end-to-end sides (positions, velocities, live against replay) are in test_replay_positions.py
and test/ros/test_frame_outputs_live_replay.py."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from sense_perception.core.detection.ignore_regions import IgnoreRegions, IgnoreRegionSettings
from sense_perception.core.exterior_steps import ExteriorSteps
from sense_perception.core.tracking.tracker import TrackerBank, TrackingConfig
from sense_perception.core.types import Detections, Header

TOPIC = "/camera/front/image_raw"
NAMES = ["pedestrian", "car"]
# the detector's outputs the frame is labelled with; detection itself is not part of these steps
DETECTOR = SimpleNamespace(label_names=NAMES, min_score=0.3)
BONNET = f"{TOPIC}: 0,400 640,400 640,480 0,480"


def _detections() -> Detections:
    """A car on the road and a 'car' on the ego car's bonnet, inside the ignore region."""
    return Detections(np.array([[100, 100, 200, 180], [200, 410, 440, 478]], np.float32),
                      np.array([0.9, 0.8], np.float32), np.array([1, 1], np.int32))


def test_regions_drop_boxes_before_tracking_and_the_frame_carries_header_and_health() -> None:
    bank = TrackerBank(TrackingConfig(min_hits=1), NAMES)
    steps = ExteriorSteps(DETECTOR, bank, None, IgnoreRegions(IgnoreRegionSettings([BONNET], 0.5)))
    health = {"level": 0, "name": TOPIC}
    for k in range(5):
        header = Header(100, k * 100_000_000, "front_camera_optical")
        frame = steps.frame(TOPIC, header, _detections(), (640, 480), health)
    assert frame.header is header and frame.health is health
    assert frame.label_names == NAMES and frame.min_score == 0.3
    assert frame.detections.boxes.tolist() == [[100, 100, 200, 180]]
    assert (frame.detections.track_ids >= 0).all()
    # the bonnet box never reached the tracker: one track only, and the region is drawn
    assert len(bank.tracker(TOPIC).tracks()["ids"]) == 1
    assert [r.tolist() for r in frame.ignore_regions] == [[[0, 400], [640, 400], [640, 480], [0, 480]]]
    # no calibration object: no 3-D and so no velocity
    assert frame.positions is None and frame.motion is None


def test_without_regions_or_tracking_the_detections_pass_unchanged() -> None:
    dets = _detections()
    frame = ExteriorSteps(DETECTOR).frame(TOPIC, Header(1, 0, "cam"), dets, (640, 480),
                                          image="debug")
    assert frame.detections is dets and frame.image == "debug"
    assert list(frame.ignore_regions) == [] and frame.health is None and frame.autoware is None
