"""ObjectDetector with the real bundled weights (PP-PicoDet-S, YOLOX-Nano) on real street frames."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from support import assert_detections_close
from sense_perception.core.detection.detector import (CALIBRATED_DEFAULTS, ClassThresholds,
                                                      DetectorConfig, ObjectDetector)
from sense_perception.core.detection.labels import AD_LABELS
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.types import Detections
from sense_perception.errors import ConfigError, ImageDecodeError, ModelError

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
FRAMES = sorted(STREET.glob("*.jpg")) + sorted(STREET.glob("*.png"))
CPU = RuntimeOptions(providers=("CPUExecutionProvider",))
MODELS = ["picodet_s_416", "yolox_nano"]


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    assert len(FRAMES) == 5, f"expected the 5 street frames in {STREET}"
    return {p.name: cv2.imread(str(p)) for p in FRAMES}


@pytest.fixture(scope="module", params=MODELS)
def detector(request: pytest.FixtureRequest) -> ObjectDetector:
    return ObjectDetector(DetectorConfig(model=request.param), CPU)


@pytest.fixture(scope="module")
def results(detector: ObjectDetector, frames: dict[str, np.ndarray]) -> dict[str, Detections]:
    return dict(zip(frames, detector.detect(list(frames.values())), strict=True))


def _thresholds(detector: ObjectDetector) -> tuple[float, ...]:
    """Every label's threshold (a detection within tolerance of one may be kept by one path)."""
    return tuple({detector.config.threshold(n) for n in detector.owned_labels})


def _names(detector: ObjectDetector, dets: Detections) -> list[str]:
    return [detector.label_names[i] for i in dets.labels]


def test_models_load_batched_with_driving_labels(detector: ObjectDetector) -> None:
    assert detector.batch_dynamic, detector.notes
    assert detector.label_names == list(AD_LABELS)
    assert detector.provider == "CPUExecutionProvider"
    assert detector.input_size == (416, 416)


def test_cars_in_every_frame(detector: ObjectDetector, results: dict[str, Detections]) -> None:
    for name, dets in results.items():
        cars = _names(detector, dets).count("car")
        # Every frame shows several cars close to the camera (PandaSet SoMa street, comma2k19).
        assert cars >= 4, f"{detector.model_name} found {cars} cars in {name}"


def test_detections_well_formed(detector: ObjectDetector, frames: dict[str, np.ndarray],
                                results: dict[str, Detections]) -> None:
    for name, dets in results.items():
        height, width = frames[name].shape[:2]
        b = dets.boxes
        assert b.dtype == np.float32 and dets.scores.dtype == np.float32
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 2] <= width).all() and (b[:, 3] <= height).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        thresholds = np.array([detector.config.threshold(n) for n in _names(detector, dets)])
        assert (dets.scores >= thresholds).all() and (dets.scores <= 1).all()
        # The lowest threshold: the calibrated value of raw 0.3 for cars (class_thresholds.car).
        assert detector.min_score == CALIBRATED_DEFAULTS["class_thresholds.car"]
        assert (np.diff(dets.scores) <= 0).all()
        assert (dets.track_ids == -1).all()


def test_motorcyclist_ahead_in_pandaset_frames(frames: dict[str, np.ndarray]) -> None:
    # Frames 00 and 10 show a motorcyclist ahead in the left lane (about x 610-750, y 560-700).
    det = ObjectDetector(DetectorConfig(model="picodet_s_416", batching=False), CPU)
    for name in ("pandaset_seq002_front_camera_00.jpg", "pandaset_seq002_front_camera_10.jpg"):
        dets = det.detect_one(frames[name])
        moto = dets.boxes[np.array(_names(det, dets)) == "motorcycle"]
        centres = (moto[:, :2] + moto[:, 2:]) / 2
        near = (np.abs(centres[:, 0] - 680) < 120) & (np.abs(centres[:, 1] - 630) < 120)
        assert near.any(), f"no motorcycle near the motorcyclist in {name}: {moto.tolist()}"


def test_batch_equals_single_runs(detector: ObjectDetector, frames: dict[str, np.ndarray],
                                  results: dict[str, Detections]) -> None:
    for name, image in frames.items():
        # A batch of one and a batch of five may take other kernel blockings: tolerance, not bits.
        assert_detections_close(detector.detect_one(image), results[name],
                                threshold=_thresholds(detector),
                                what=name)


def test_plain_images_give_nothing(detector: ObjectDetector) -> None:
    black = np.zeros((480, 640, 3), np.uint8)
    assert [len(d) for d in detector.detect([black, black + 255])] == [0, 0]
    assert detector.detect([]) == []


def test_bad_images_raise_named_errors(detector: ObjectDetector) -> None:
    good = np.zeros((32, 32, 3), np.uint8)
    for bad in (np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32),
                np.zeros((0, 32, 3), np.uint8), "image.jpg"):
        with pytest.raises(ImageDecodeError) as err:
            detector.detect([good, bad])
        assert err.value.field == "images[1]"


def test_threshold_and_max_detections(frames: dict[str, np.ndarray]) -> None:
    image = frames["pandaset_seq002_front_camera_10.jpg"]
    # batching=False skips the load-time batch check: these only run single images.
    own = ClassThresholds.unset()  # every label follows score_threshold
    full = ObjectDetector(DetectorConfig(model="yolox_nano", score_threshold=0.3,
                                         class_thresholds=own, batching=False), CPU)
    top = ObjectDetector(DetectorConfig(model="yolox_nano", score_threshold=0.3,
                                        class_thresholds=own, max_detections=3, batching=False), CPU)
    strict = ObjectDetector(DetectorConfig(model="yolox_nano", score_threshold=0.6,
                                           class_thresholds=own, batching=False), CPU)
    all_dets, top_dets = full.detect_one(image), top.detect_one(image)
    assert len(all_dets) > 3 and len(top_dets) == 3
    np.testing.assert_allclose(top_dets.boxes, all_dets.boxes[:3], atol=1e-3)
    strict_dets = strict.detect_one(image)
    assert 0 < len(strict_dets) < len(all_dets) and (strict_dets.scores >= 0.6).all()
    # A label's own threshold wins over score_threshold: cars down to 0.3, the rest from 0.6.
    cars_low = ObjectDetector(DetectorConfig(model="yolox_nano", score_threshold=0.6,
                                             class_thresholds=ClassThresholds.unset(car=0.3),
                                             batching=False), CPU).detect_one(image)
    names = np.array(_names(strict, cars_low))
    assert (cars_low.scores[names == "car"] >= 0.3).all()
    assert (cars_low.scores[names != "car"] >= 0.6).all()
    assert (cars_low.scores[names == "car"] < 0.6).any()
    assert len(all_dets.select(np.array(_names(full, all_dets)) == "car")) == (names == "car").sum()


def test_keep_other_classes_extends_label_names() -> None:
    det = ObjectDetector(DetectorConfig(model="yolox_nano", keep_other_classes=True), CPU)
    assert det.label_names[:len(AD_LABELS)] == list(AD_LABELS)
    assert "potted_plant" in det.label_names and "traffic light" not in det.label_names
    assert len(det.label_names) == 80  # 8 driving labels + the 72 other COCO classes


def test_from_params_reads_detector_and_runtime_sections() -> None:
    det = ObjectDetector.from_params({
        "detector.model": "yolox_nano", "detector.score_threshold": 0.5,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1,
        "topic": "/camera/image_raw"}, source="test.yaml")
    assert det.family == "yolox" and det.config.score_threshold == 0.5
    assert det.provider == "CPUExecutionProvider"
    with pytest.raises(ConfigError, match="detector.scor_threshold"):
        ObjectDetector.from_params({"detector.scor_threshold": 0.5}, source="test.yaml")
    with pytest.raises(ConfigError, match="detector.nms_iou"):
        ObjectDetector.from_params({"detector.nms_iou": 1.5})


def test_model_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'yolo_huge'"):
        ObjectDetector(DetectorConfig(model="yolo_huge"), CPU)
    with pytest.raises(ConfigError, match="not an object detector"):
        ObjectDetector(DetectorConfig(model="sface"), CPU)
    with pytest.raises(ConfigError, match="labels_path"):
        DetectorConfig(model_path=str(tmp_path / "m.onnx"))
    labels = tmp_path / "labels.txt"
    labels.write_text("person\n")
    with pytest.raises(ModelError, match="does not exist"):
        ObjectDetector(DetectorConfig(model_path=str(tmp_path / "m.onnx"),
                                      labels_path=str(labels)), CPU)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        ObjectDetector(DetectorConfig(model_path=str(garbage), labels_path=str(labels)), CPU)


def test_custom_model_path_with_bundled_file_matches_bundled(frames: dict[str, np.ndarray]
                                                             ) -> None:
    from sense_perception.core.runtime.model_registry import MODELS as REGISTRY

    spec = REGISTRY["yolox_nano"]
    labels = Path(str(spec.path().parent / "coco_labels.txt"))
    # Raw scores on both: a custom model has no shipped calibration, the bundled one has.
    custom = ObjectDetector(DetectorConfig(model_path=str(spec.path()), labels_path=str(labels),
                                           model_family="yolox", calibrated_scores=False), CPU)
    bundled = ObjectDetector(DetectorConfig(model="yolox_nano", calibrated_scores=False), CPU)
    image = frames["comma2k19_highway280_rav4_preview.png"]
    a, b = custom.detect_one(image), bundled.detect_one(image)
    assert custom.preprocess_spec == bundled.preprocess_spec
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def test_custom_model_sha256_is_checked_before_loading(tmp_path: Path) -> None:
    import shutil

    from sense_perception.core.runtime.model_registry import MODELS as REGISTRY
    from sense_perception.core.runtime.model_registry import sha256_file

    spec = REGISTRY["yolox_nano"]
    labels = Path(str(spec.path().parent / "coco_labels.txt"))
    model = Path(shutil.copy(spec.path(), tmp_path / "custom.onnx"))
    good = sha256_file(model)
    assert good == spec.sha256
    cfg = dict(model_path=str(model), labels_path=str(labels), model_family="yolox")
    ObjectDetector(DetectorConfig(**cfg, model_sha256=good.upper()), CPU)  # sha256sum case-free
    with pytest.raises(ConfigError, match="64 hex digits"):
        DetectorConfig(**cfg, model_sha256="abc")
    with pytest.raises(ConfigError, match="model_path is empty"):
        DetectorConfig(model_sha256=good)
    # Flip one byte inside the weights: the file still parses as ONNX, but must be refused.
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"has sha256 [0-9a-f]{{64}}, but .*expects {good}"):
        ObjectDetector(DetectorConfig(**cfg, model_sha256=good), CPU)


def test_tiling_runs_band_tiles_and_merges_per_image(frames: dict[str, np.ndarray]) -> None:
    tiling = pytest.importorskip("sense_perception.core.detection.tiling")
    params = {"runtime.providers": ["CPUExecutionProvider"], "detector.batching": True}
    plain = ObjectDetector.from_params(params)
    tiled = ObjectDetector.from_params({**params, "tiling.mode": "horizon_bands"})
    names = ["pandaset_seq002_front_camera_00.jpg", "comma2k19_highway280_rav4_preview.png"]
    images = [frames[n] for n in names]
    both = tiled.detect(images)  # 5 + 4 crops: more than one inference batch of 8
    for image, dets in zip(images, both, strict=True):
        height, width = image.shape[:2]
        assert len(tiling.plan_tiles(width, height, tiled.tiling)) > 1
        assert_detections_close(tiled.detect_one(image), dets,
                                threshold=_thresholds(tiled),
                                what=f"tiled {image.shape}")
        assert (dets.boxes[:, 0] >= 0).all() and (dets.boxes[:, 2] <= width).all()
        assert (dets.boxes[:, 1] >= 0).all() and (dets.boxes[:, 3] <= height).all()
        assert (np.diff(dets.scores) <= 0).all()
        # The band tiles see small, far objects the squashed full frame misses.
        assert len(dets) > len(plain.detect_one(image))


def test_draw_detections_marks_boxes_without_touching_the_input() -> None:
    from sense_perception.core.output.annotate import draw_detections, label_colour

    image = np.zeros((120, 200, 3), np.uint8)
    dets = Detections(np.array([[20, 40, 80, 100], [150, 0, 199, 30]], np.float32),
                      np.array([0.9, 0.5], np.float32), np.array([0, 2], np.int32),
                      np.array([7, -1], np.int64))
    out = draw_detections(image, dets, list(AD_LABELS), thickness=1)
    assert not image.any() and out.shape == image.shape
    assert tuple(out[70, 20]) == label_colour("pedestrian")  # left edge of the first box
    assert tuple(out[100, 50]) == label_colour("pedestrian")  # bottom edge
    assert out[60:90, 30:70].sum() == 0  # inside stays untouched
    assert label_colour("potted_plant") == label_colour("potted_plant")
    drawn_in_place = draw_detections(image, dets, list(AD_LABELS), copy=False)
    assert drawn_in_place is image and image.any()
