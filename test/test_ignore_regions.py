"""Ignore regions per camera: nothing reported where a camera sees its own car."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from replay_helpers import FRONT, SAMPLE_BAG, SHARED, WINDSHIELD, read_output
from sense_perception.config import load_params
from sense_perception.core.detection.detector import DetectorConfig
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.core.detection.ignore_regions import IgnoreRegions, IgnoreRegionSettings
from sense_perception.core.output.annotate import IGNORE_COLOUR, draw_detections
from sense_perception.core.output.annotations import image_annotations
from sense_perception.core.types import Detections, Header
from sense_perception.errors import ConfigError
from sense_perception.replay.engine import ReplayOptions, Replayer

SAMPLE_CONFIG = SAMPLE_BAG / "sample.yaml"
TOPIC = "/camera/x/image_raw"
SQUARE = f"{TOPIC}: 100,100 200,100 200,200 100,200"


def regions(*polygons: str, overlap: float = 0.5) -> IgnoreRegions:
    return IgnoreRegions(IgnoreRegionSettings(list(polygons), overlap))


def boxes(*rows) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


# -- the regions, on constructed boxes -----------------------------------------------------------------

def test_share_of_each_box_inside_the_region() -> None:
    r = regions(SQUARE)
    share = r.inside_share(TOPIC, boxes([100, 100, 200, 200], [150, 100, 250, 200], [0, 0, 50, 50],
                                        [100, 150, 200, 300]), 640, 480)
    np.testing.assert_allclose(share, [1.0, 0.5, 0.0, 1 / 3], atol=0.02)
    assert not r.inside_share("/other", boxes([100, 100, 200, 200]), 640, 480).any()


def test_apply_drops_boxes_mostly_inside_for_that_camera_only() -> None:
    r = regions(SQUARE)
    dets = Detections(boxes([100, 100, 200, 200], [150, 100, 250, 200], [300, 300, 400, 400]),
                      np.array([0.9, 0.8, 0.7], np.float32), np.array([2, 2, 0], np.int32))
    assert r.apply(TOPIC, dets, 640, 480).scores.tolist() == pytest.approx([0.7])  # 100 %, 50 % go
    kept = regions(SQUARE, overlap=0.6).apply(TOPIC, dets, 640, 480)
    assert kept.scores.tolist() == pytest.approx([0.8, 0.7])
    assert r.apply("/other", dets, 640, 480) is dets


def test_a_mask_image_gives_the_same_region(tmp_path: Path) -> None:
    mask = np.zeros((480, 640), np.uint8)
    mask[100:200, 100:200] = 255
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    test = boxes([100, 100, 200, 200], [150, 100, 250, 200], [0, 0, 50, 50])
    np.testing.assert_allclose(regions(f"{TOPIC}: mask {path}").inside_share(TOPIC, test, 640, 480),
                               regions(SQUARE).inside_share(TOPIC, test, 640, 480), atol=0.02)
    # A mask for another resolution is scaled to the frame's.
    half = regions(f"{TOPIC}: mask {path}").inside_share(TOPIC, test / 2, 320, 240)
    np.testing.assert_allclose(half, [1.0, 0.5, 0.0], atol=0.03)
    outline = regions(f"{TOPIC}: mask {path}").outlines(TOPIC, 640, 480)
    assert len(outline) == 1 and outline[0].min(0).tolist() == [100, 100]


@pytest.mark.parametrize("entry,words", [
    ("no topic here", "expected"), (f"{TOPIC}: 1,2 3,4", "3 or more points"),
    (f"{TOPIC}: 1,2 3,4 5", "3 or more points"), (f"{TOPIC}: a,b c,d e,f", "3 or more points"),
    (f"{TOPIC}: mask /nonexistent/mask.png", "cannot read .*no such file")])
def test_bad_entries_are_refused_naming_them(entry, words) -> None:
    with pytest.raises(ConfigError, match=rf"polygons\[1\].*{words}"):
        regions(SQUARE, entry)


def test_settings_from_the_config_and_their_checks(tmp_path: Path) -> None:
    params = load_params(SAMPLE_CONFIG, "object_detector")
    config = DetectorConfig.from_params(params, str(SAMPLE_CONFIG))
    assert config.ignore_regions.polygons[0].startswith(f"{WINDSHIELD}: ")
    assert IgnoreRegions.from_params(params).topics == [WINDSHIELD]
    with pytest.raises(ConfigError, match=r"min_overlap must be within \(0, 1\]"):
        IgnoreRegionSettings([], 0.0)
    with pytest.raises(ConfigError, match=rf"names {TOPIC}, which is not a camera topic"):
        regions(SQUARE).check_topics(["/camera/front/image_raw"])
    regions(SQUARE).check_topics([TOPIC])


def test_the_sample_config_is_a_valid_node_config_for_the_sample_bag() -> None:
    # `make demo` uses it and docs/configuration.md offers it: its region's camera must be among
    # its own camera_topics, or a node given the file stays unconfigured, and those must be the
    # bag's exterior cameras, or the demo prints a note that the config's cameras are not followed.
    params = load_params(SAMPLE_CONFIG, "object_detector")
    assert sorted(params["camera_topics"]) == sorted([FRONT, WINDSHIELD])
    IgnoreRegions.from_params(params).check_topics(params["camera_topics"], str(SAMPLE_CONFIG))


def test_regions_are_drawn_in_the_debug_image_and_the_annotations() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    outline = regions(SQUARE).outlines(TOPIC, 640, 480)
    drawn = draw_detections(image, Detections(), ["car"], ignore_regions=outline)
    assert (drawn[100, 120:180] == IGNORE_COLOUR).all()  # the top edge, in grey
    assert not drawn[300:, :].any()
    dets = Detections(boxes([300, 300, 400, 400]), np.array([0.9], np.float32), np.array([0], np.int32))
    msg = image_annotations(Header(1, 2, "cam"), dets, ["car"], (640, 480), ignore_regions=outline)
    assert len(msg["points"]) == 2 and len(msg["texts"]) == 1  # the box, then the region
    region = msg["points"][1]
    assert {(p["x"], p["y"]) for p in region["points"]} == {(100, 100), (200, 100), (200, 200),
                                                           (100, 200)}
    assert region["fill_color"]["a"] == pytest.approx(0.25)
    assert image_annotations(Header(), Detections(), ["car"], ignore_regions=outline)["points"]


def test_a_speckled_mask_draws_a_bounded_outline_and_still_applies_whole(tmp_path: Path, caplog) -> None:
    """A mask whose area is speckled (here the edges of a real street frame, as a mask painted
    over a photo or dithered on export is): every speck was its own polygon, 3040 of them in
    every frame's annotations and debug image (megabytes a frame). The largest outlines are
    drawn now, within MAX_OUTLINES and MAX_OUTLINE_POINTS, said once in the log; the region that
    drops detections is the whole mask as before."""
    from sense_perception.core.detection.ignore_regions import MAX_OUTLINE_POINTS, MAX_OUTLINES

    frame = cv2.imread(str(SHARED / "street" / "pandaset_seq002_front_camera_00.jpg"))
    h, w = frame.shape[:2]
    mask = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), 50, 150)
    mask[h - 100:, :] = 255  # and the bonnet, the one large area
    path = tmp_path / "speckled.png"
    cv2.imwrite(str(path), mask)
    speckled = regions(f"{TOPIC}: mask {path}")
    with caplog.at_level("WARNING"):
        outline = speckled.outlines(TOPIC, w, h)
        assert speckled.outlines(TOPIC, w, h) is outline  # once per size: logged once
    found = len(cv2.findContours(np.asarray(mask > 0, np.uint8), cv2.RETR_EXTERNAL,
                                 cv2.CHAIN_APPROX_SIMPLE)[0])
    assert found > 1000, found
    assert len(outline) <= MAX_OUTLINES and sum(len(o) for o in outline) <= MAX_OUTLINE_POINTS
    # the bonnet is among them, whole
    assert any(o[:, 1].max() >= h - 2 and o[:, 0].max() - o[:, 0].min() >= w - 2 for o in outline)
    told = [r.getMessage() for r in caplog.records if "outlines drawn" in r.getMessage()]
    assert len(told) == 1 and f"of its {found} outlines drawn" in told[0], told
    msg = image_annotations(Header(1, 2, "cam"), Detections(), ["car"], (w, h), ignore_regions=outline)
    assert len(msg["points"]) <= MAX_OUTLINES + 1
    # what is applied is the mask itself, speck for speck
    test = boxes([0, h - 100, w, h], [0, 0, w, h - 100], [100, 100, 300, 300])
    expected = [1.0, float((mask[:h - 100] > 0).mean()), float((mask[100:300, 100:300] > 0).mean())]
    np.testing.assert_allclose(speckled.inside_share(TOPIC, test, w, h), expected, atol=1e-6)


# -- the bundled sample ----------------------------------------------------------------------------------

def _boxes_by_topic(out: Path) -> dict[str, list[list[tuple]]]:
    found: dict[str, list[list[tuple]]] = {}
    for m in read_output(out / "bag"):
        if m.channel.topic.endswith("/detections"):
            found.setdefault(m.channel.topic, []).append(sorted(
                (d.results[0].hypothesis.class_id, round(d.results[0].hypothesis.score, 4),
                 round(d.bbox.center.position.x, 1), round(d.bbox.center.position.y, 1),
                 round(d.bbox.size_x, 1), round(d.bbox.size_y, 1)) for d in m.ros_msg.detections))
    return found


def test_sample_windshield_bonnet_is_gone_and_nothing_else_changes(tmp_path: Path) -> None:
    detector = build_detector({"runtime.providers": ["CPUExecutionProvider"]})
    runs = {}
    for name, config in (("plain", None), ("sample", SAMPLE_CONFIG)):
        out = tmp_path / name
        Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[FRONT, WINDSHIELD], config=config),
                 detector=detector).run()
        runs[name] = out
    plain, sample = _boxes_by_topic(runs["plain"]), _boxes_by_topic(runs["sample"])
    assert sample["/camera/front/detections"] == plain["/camera/front/detections"]
    (before,), (after,) = plain["/camera/windshield/detections"], sample["/camera/windshield/detections"]
    gone = [b for b in before if b not in after]
    assert after == [b for b in before if b in after] and len(after) == len(before) - 1
    # The bonnet: a `car` box across the whole width of the 640x480 frame, at its bottom.
    (label, score, cx, cy, w, h), = gone
    assert label == "car" and score >= 0.7 and w > 600 and cy + h / 2 > 470 and cy - h / 2 > 330
    assert sum(1 for b in after if b[0] == "car") >= 3  # the cars on the road stay
    annotations = [m.ros_msg for m in read_output(runs["sample"] / "bag")
                   if m.channel.topic == "/camera/windshield/annotations"]
    assert len(annotations[0].points) == len(after) + 1  # the boxes and the region
