"""The exterior detector against every frame the decoder lets through and every setting inside
its range (SECURITY.md R29): strips (8000x32, 32x8000), tiny and odd frames, grey, BGRA, RGB and
16-bit encodings, with tiling on, a thin pedestrian band and ignore regions; normalisation and
tiling settings at the ends of their ranges. Real frames, the real detectors and replay."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.core.detection.band import band_rect
from sense_perception.core.detection.detector import DetectorConfig
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.core.detection.ignore_regions import IgnoreRegions, IgnoreRegionSettings
from sense_perception.core.detection.preprocess import PreprocessSpec
from sense_perception.core.detection.tiling import TilingConfig, plan_tiles
from sense_perception.errors import ConfigError

from support import REPO

STREET = REPO.parent / "shared" / "data" / "street_labelled" / "pandaset_seq002_front" / "00.jpg"
ON = TilingConfig(mode="horizon_bands")
THIN_BAND = [0.5, 0.501]  # inside the declared range 0 <= top < bottom <= 1


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    return cv2.imread(str(STREET))


def _shrink(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def test_a_frame_smaller_than_a_tile_is_detected_whole_not_refused():
    # tiling.mode horizon_bands on a 8000x32 strip planned 18x13 px tiles and raised ConfigError
    # on every such frame (the replay lost each one as an inference failure, `detect` refused it)
    for width, height in [(8000, 32), (32, 8000), (33, 33), (8191, 35)]:
        assert plan_tiles(width, height, ON) == [(0, 0, width, height)]
    # a band thinner than a tile grows to one (about its centre), within the frame
    assert band_rect(1920, 1080, THIN_BAND) == (0, 533, 1920, 549)
    assert band_rect(8000, 32, THIN_BAND) == (0, 8, 8000, 24)
    assert band_rect(40, 10, THIN_BAND) == (0, 0, 40, 10)
    # a frame that holds tiles is tiled as before, and too many columns are still refused by name
    assert len(plan_tiles(1920, 1080, ON)) == 5
    with pytest.raises(ConfigError, match="tiling.min_tile_px"):
        plan_tiles(1920, 1080, TilingConfig(mode="horizon_bands", columns=60))


@pytest.mark.parametrize("aspect", [1e-9, 1e-3, 1e9, math.inf])
def test_a_tile_aspect_at_the_ends_of_its_range_plans_a_bounded_set_of_tiles(aspect):
    # tile_aspect 1e-9 (range (0, None)) asked for 6e9 columns: a MemoryError on every frame,
    # and 1e-3 with min_tile_px 1 for thousands of one-pixel tiles, each a network run
    for min_tile in (64, 1):
        cfg = TilingConfig(mode="horizon_bands", tile_aspect=aspect, min_tile_px=min_tile)
        for width, height in [(1920, 1080), (8192, 8192), (8000, 100)]:
            tiles = plan_tiles(width, height, cfg)
            assert 2 <= len(tiles) <= 64 + 1  # tiling.MAX_AUTO_COLUMNS and the full frame
            assert min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in tiles) >= min_tile


@pytest.fixture(scope="module")
def tiled_detector():
    """PicoDet with tiling on and the pedestrian specialist on a band 0.001 of the height."""
    return build_detector({"tiling.mode": "horizon_bands",
                           "detector.pedestrian_band": THIN_BAND}, "test")


def test_strips_and_odd_frames_through_tiling_and_a_thin_band_give_finite_boxes(street,
                                                                                 tiled_detector):
    # the thin band refused every frame of any size ("tiling gives 1920x1 px tiles"), naming
    # tiling.* settings nobody had set
    frames = [_shrink(street, w, h) for w, h in [(8000, 32), (32, 8000), (33, 33), (640, 360)]]
    frames.append((_shrink(street, 8000, 33) * 0.1).astype(np.uint8))  # dark: low-light path
    found = tiled_detector.detect(frames)
    for frame, dets in zip(frames, found, strict=True):
        height, width = frame.shape[:2]
        assert np.isfinite(dets.boxes).all() and np.isfinite(dets.scores).all()
        assert (dets.boxes[:, [0, 1]] >= 0).all() and (dets.boxes[:, 2] <= width).all() \
            and (dets.boxes[:, 3] <= height).all()
    assert len(found[3]) > 0  # a real street frame still finds its objects


def _shape_bag(path, street: np.ndarray):
    """A rosbag2 MCAP of the street frame as strips and odd sizes in several encodings."""
    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    Image = store.types["sensor_msgs/msg/Image"]
    cases = [((8000, 32), "bgr8"), ((8000, 32), "mono8"), ((33, 33), "bgra8"),
             ((32, 8000), "rgb8"), ((8000, 33), "mono16"), ((320, 180), "bgr8")]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/front/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i, (size, encoding) in enumerate(cases):
            pixels = _shrink(street, *size)
            pixels = {"bgr8": pixels, "rgb8": pixels[..., ::-1],
                      "mono8": cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY),
                      "bgra8": cv2.cvtColor(pixels, cv2.COLOR_BGR2BGRA),
                      "mono16": cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY).astype("<u2") * 257,
                      }[encoding]
            data = np.frombuffer(np.ascontiguousarray(pixels).tobytes(), np.uint8)
            ns = 1_700_000_000_000_000_000 + i * 100_000_000
            msg = Image(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                      frame_id="front"), height=size[1], width=size[0],
                        encoding=encoding, is_bigendian=0, step=len(data) // size[1], data=data)
            writer.write(conn, ns, store.serialize_cdr(msg, msg.__msgtype__))
    return path, len(cases)


def test_a_replay_of_strips_in_every_encoding_with_tiling_on_loses_no_frame(tmp_path, street):
    # the 8000-px-wide strips (bgr8, mono8, mono16) were each "inference failed: ConfigError"
    bag, frames = _shape_bag(tmp_path / "bag", street)
    config = tmp_path / "tiling.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n"
                      "    tiling: {mode: horizon_bands}\n"
                      "    detector:\n"
                      "      pedestrian_band: [0.5, 0.501]\n"
                      "      ignore_regions:\n"
                      "        polygons: ['/front/image_raw: -1000000,-10 1000000,-10 1000000,2']\n")
    assert main(["replay", str(bag), "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cameras"]["/front/image_raw"]["frames"] == frames
    assert not summary["skipped"]


def test_an_ignore_region_point_beyond_what_opencv_draws_is_refused_by_name():
    # a point at 1e10 ("far beyond the frame") wrapped around OpenCV's 32-bit integers: the
    # region silently covered nothing and every detection in it was reported
    boxes = np.array([[1.0, 1.0, 20.0, 20.0], [5.0, 5.0, 30.0, 30.0]])
    far = "/t: -10,-10 1e10,-10 1e10,1e10 -10,1e10"
    with pytest.raises(ConfigError, match=r"polygons\[0\].*1e\+10 px.*1,000,000"):
        IgnoreRegions(IgnoreRegionSettings(polygons=[far]))
    whole = IgnoreRegions(IgnoreRegionSettings(
        polygons=["/t: -1e6,-1e6 1e6,-1e6 1e6,1e6 -1e6,1e6"]))
    for width, height in [(33, 33), (8000, 32), (32, 8000)]:
        assert whole.inside_share("/t", boxes, width, height).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("override", [{"scale": 1e300}, {"scale": 1e30},
                                      {"std": (1e-300,) * 3}, {"mean": (1e300, 0.0, 0.0)}])
def test_a_normalisation_that_overflows_the_network_input_is_refused_by_name(override):
    # pixel_scale, mean and std have no numeric range; 1e300 overflowed float32 to inf, the
    # network answered NaN and the general model found nothing, with a numpy warning only
    spec = {"width": 416, "height": 416, "scale": 1 / 255, "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225), **override}
    with pytest.raises(ConfigError, match="detector.pixel_scale .*detector.std"):
        PreprocessSpec(**spec)
    PreprocessSpec(**{**spec, **{k: v for k, v in {"scale": 1.0, "std": (58.0, 57.0, 57.5),
                                                   "mean": (123.0, 116.0, 103.0)}.items()
                                 if k in override}})


def test_a_cell_offset_beyond_one_cell_is_refused_by_name():
    # 1e300 overflowed the anchor points: every box of the general model NaN and dropped
    with pytest.raises(ConfigError, match="detector.cell_offset must be within 0..1"):
        DetectorConfig(cell_offset=1e300)
    assert DetectorConfig(cell_offset=1.0).cell_offset == 1.0


def test_a_mask_of_another_size_is_drawn_where_it_applies(tmp_path):
    # the outline came from the mask's own pixel centres, scaled: a 1x1 mask that ignores the
    # whole frame was drawn as a dot at its corner, a 2x2 one a quarter of its area short
    whole, corner = tmp_path / "whole.png", tmp_path / "corner.png"
    cv2.imwrite(str(whole), np.full((1, 1), 255, np.uint8))
    quarter = np.zeros((2, 2), np.uint8)
    quarter[0, 0] = 255
    cv2.imwrite(str(corner), quarter)
    regions = IgnoreRegions(IgnoreRegionSettings(polygons=[f"/a: mask {whole}",
                                                           f"/b: mask {corner}"]))
    for width, height in [(34, 34), (8000, 32), (32, 8000)]:  # even: the corner is half
        for topic, (right, bottom) in (("/a", (width, height)), ("/b", (width // 2, height // 2))):
            [outline] = regions.outlines(topic, width, height)
            box = np.array([[0.0, 0.0, right, bottom]])
            assert regions.inside_share(topic, box, width, height).tolist() == [1.0]
            # drawn through the centres of the region's edge pixels, as a same-size mask is
            assert outline.min(0).tolist() == [0.0, 0.0]
            assert outline.max(0).tolist() == [right - 1, bottom - 1], (topic, width, height)


def test_a_cabin_camera_changing_its_frame_size_holds_a_bounded_set_of_anchor_grids():
    # YuNet kept an anchor grid per padded input size for ever: with face.max_side 4096 (inside
    # its range) a camera whose size changes could make it hold 16384 of them, some 17 GB
    from sense_perception.face.yunet import YuNetDetector

    most = 8  # yunet.MAX_GRIDS: the most recent sizes

    face = cv2.imread(str(REPO.parent / "shared" / "data" / "faces" /
                          "obama_1_official_portrait_2012.jpg"))
    detector = YuNetDetector(max_side=4096)
    sizes = [(96 + 32 * i, 128 + 32 * i) for i in range(most + 4)]
    for width, height in sizes:
        faces = detector.detect(_shrink(face, width, height))
        assert len(faces) == 1 and np.isfinite(faces.boxes).all(), (width, height)
    assert len(detector._grids) == most
    faces = detector.detect(_shrink(face, *sizes[0]))  # an older size is made again
    assert len(faces) == 1 and len(detector._grids) == most


def test_a_vehicle_label_the_model_does_not_report_is_refused_by_name():
    # a typo ("trucks") or another model's label was silently no vehicle at all: its boxes were
    # never merged with the cars they overlap
    from sense_perception.core.detection.detector import ObjectDetector
    from sense_perception.core.detection.duplicates import DuplicateSettings

    def config(labels: list[str]) -> DetectorConfig:
        return DetectorConfig(pedestrian_model="none",
                              duplicates=DuplicateSettings(vehicle_labels=labels))

    with pytest.raises(ConfigError, match=r"vehicle_labels names 'trucks', which picodet_s_416 "
                                          r"does not report; its labels: .*truck"):
        ObjectDetector(config(["car", "trucks"]))
    assert ObjectDetector(config(["car", "truck"])).label_names  # the model's own: taken


def test_a_band_input_the_runtime_cannot_apply_is_said_not_ignored(caplog):
    # only OpenVINO reshapes the specialist to detector.pedestrian_band_input; on onnxruntime
    # (a GPU, or runtime.openvino off) a band input that was set did nothing, and nothing said so
    with caplog.at_level("WARNING", logger="sense_perception.core.detection.detector_setup"):
        build_detector({"runtime.openvino": "off", "detector.pedestrian_band_input": [640, 192]},
                       "test")
    [said] = [r.getMessage() for r in caplog.records if "pedestrian_band_input" in r.getMessage()]
    assert "[640, 192] is not applied: person_detection_0203 runs on CPUExecutionProvider" in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="sense_perception.core.detection.detector_setup"):
        build_detector({"runtime.openvino": "off"}, "test")  # the default: nothing to say
    assert not [r for r in caplog.records if "pedestrian_band_input" in r.getMessage()]
