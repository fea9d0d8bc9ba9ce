"""The in-memory rewrite of a fixed-size detector graph to another input size (model_resize), and
the crop model of ``detector.duplicates.nested_recheck_input`` built from it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper

from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
from sense_perception.core.detection.duplicates import DuplicateSettings
from sense_perception.core.detection.labels import AD_LABELS
from sense_perception.core.runtime import model_prepare
from sense_perception.core.runtime.model_prepare import load_onnx, prepare_detector_model
from sense_perception.core.runtime.model_registry import MODELS
from sense_perception.core.runtime.model_resize import resize_input
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.errors import ModelError

CPU = RuntimeOptions(providers=("CPUExecutionProvider",))
DEV = (Path(__file__).resolve().parents[2] / "shared" / "data" / "street_labelled"
       / "pandaset_seq002_front")
CAR = AD_LABELS.index("car")


@pytest.mark.parametrize("side", [320, 256])
def test_picodet_runs_at_a_smaller_input_with_one_output_row_per_cell(side: int) -> None:
    """Every channel-shuffle Reshape (20 of the 28) follows the size; the heads' flattening ones
    (``[1, 80, -1]``) need nothing. A batch of two runs: the batch rewrite is verified after."""
    proto = load_onnx(MODELS["picodet_s_416"].verified_path())
    _, rewritten = resize_input(proto, side, side)
    assert rewritten == 20
    prepared = prepare_detector_model(MODELS["picodet_s_416"].verified_path(), CPU, "picodet",
                                      input_size=(side, side))
    assert prepared.batch_dynamic, prepared.notes
    assert any(f"input rewritten to {side}x{side}" in note for note in prepared.notes)
    outputs = prepared.model.run({"image": np.zeros((2, 3, side, side), np.float32)})
    cells = [(-(-side // stride)) ** 2 for stride in (8, 16, 32, 64)]
    assert [o.shape for o in outputs] == [(2, n, 80) for n in cells] + [(2, n, 32) for n in cells]


@pytest.mark.parametrize("size", [(300, 320), (320, 0), (-32, 320)])
def test_a_side_not_a_positive_multiple_of_32_is_refused(size: tuple[int, int]) -> None:
    proto = load_onnx(MODELS["picodet_s_416"].verified_path())
    with pytest.raises(ModelError, match="positive multiples of 32"):
        resize_input(proto, *size)


def test_a_model_without_a_fixed_input_size_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "dynamic",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3, "h", "w"])])
    with pytest.raises(ModelError, match="input size is not fixed"):
        resize_input(helper.make_model(graph), 320, 320)


def test_the_same_weights_find_the_same_car_on_a_crop_at_320() -> None:
    """The rewritten graph is the same network: on the crop of a developer-set car (frame 15,
    the nearest car's box with the re-check's 20 % margin) the 320x320 model finds that car where
    the 416x416 one does (a channel shuffle reshaped wrongly mixes channels: no such box)."""
    config = DetectorConfig(model="picodet_s_416", pedestrian_model="none")
    full = ObjectDetector(config, CPU)
    small = ObjectDetector(config, CPU, input_resize=(320, 320))
    assert small.input_size == (320, 320) and full.input_size == (416, 416)
    frame = cv2.imread(str(DEV / "15.jpg"))
    cars = full.detect_one(frame)
    car = cars.boxes[cars.labels == CAR][0]
    x0, y0 = (car[:2] - 0.2 * (car[2:] - car[:2])).clip(0).astype(int)
    x1, y1 = (car[2:] + 0.2 * (car[2:] - car[:2])).astype(int)
    crop = frame[y0:y1, x0:x1]
    for detector in (full, small):
        found = detector.detect_crops([crop])[0]
        boxes = found.boxes[found.labels == CAR] + np.array([x0, y0, x0, y0], np.float32)
        lo, hi = np.maximum(boxes[:, :2], car[:2]), np.minimum(boxes[:, 2:], car[2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(car[2:] - car[:2])
        assert (inter / (area - inter)).max() > 0.8, detector.input_size


def test_the_crop_model_is_built_only_where_the_check_runs_at_another_size() -> None:
    base = DetectorConfig(model="picodet_s_416", pedestrian_model="none")
    cases = {(0, 320): None, (8, 0): None, (8, 416): None, (8, 320): (320, 320)}
    for (crops, side), expected in cases.items():
        settings = DuplicateSettings(nested_recheck_crops=crops, nested_recheck_input=side)
        detector = ObjectDetector(DetectorConfig(model=base.model, pedestrian_model="none",
                                                 duplicates=settings), CPU)
        crop_model = detector._crop_model
        assert (crop_model.input_size if crop_model is not None else None) == expected
        if crop_model is not None:
            assert crop_model.owned_labels == detector.owned_labels
            assert crop_model.config.duplicates.nested_recheck_crops == 0


def test_a_model_that_cannot_run_at_the_crop_size_keeps_its_own_and_says_so(monkeypatch,
                                                                           caplog) -> None:
    """A graph whose size sits where the rewrite does not reach fails at its first run; the
    detector then detects its crops at its own size, and a warning and its notes name the
    setting, the model and what to set (the default's 256 meets every general model)."""
    def broken(proto, width, height):
        resized, count = resize_input(proto, width, height)
        suffix = f"__{height}x{width}"
        for node in resized.graph.node:  # the channel shuffles' targets at the old size again
            if node.op_type == "Reshape" and node.input[1].endswith(suffix):
                node.input[1] = node.input[1][:-len(suffix)]
        return resized, count

    monkeypatch.setattr(model_prepare, "resize_input", broken)
    settings = DuplicateSettings(nested_recheck_crops=8, nested_recheck_input=320)
    with caplog.at_level("WARNING"):
        detector = ObjectDetector(DetectorConfig(model="picodet_s_416", pedestrian_model="none",
                                                 duplicates=settings), CPU)
    assert detector._crop_model is None
    said = [n for n in detector.notes if "nested_recheck_input 320 is not applied" in n]
    assert said and "picodet_s_416 cannot run at 320x320" in said[0] and "416x416" in said[0]
    assert said[0] in caplog.text
    frame = cv2.imread(str(DEV / "15.jpg"))
    assert len(detector.detect_one(frame))  # the crops at 416: the check still runs


def test_the_specialist_leaves_the_re_check_to_the_general_model() -> None:
    from sense_perception.core.detection.detector_setup import specialist_config

    config = DetectorConfig(duplicates=DuplicateSettings(nested_recheck_crops=8))
    assert specialist_config(config, "person_detection_0203").duplicates == DuplicateSettings(
        nested_recheck_crops=0)


def test_a_model_without_a_fixed_input_size_detects_its_crops_at_the_crop_size(tmp_path) -> None:
    """A custom model whose input size is not fixed (the size given in detector.input_width
    and input_height) has no graph to rewrite: the crop model was refused ('the model input size
    is not fixed; give the size to the detector instead (detector.input_width, ...)', the settings
    already given) and its crops ran at the frame size, for every such model with the default
    re-check on. It takes the crop size as it is now."""
    import onnx
    from test_decoders import CLASSES, _yolov8_output, build_model

    from sense_perception.core.detection.detector import ClassThresholds

    model = build_model(tmp_path / "dynamic.onnx", {"output0": _yolov8_output()})
    proto = onnx.load(str(model))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(proto, str(model))
    (tmp_path / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    config = DetectorConfig(model_path=str(model), labels_path=str(tmp_path / "labels.txt"),
                            model_family="yolov8", input_width=64, input_height=64,
                            class_thresholds=ClassThresholds.unset(car=0.3),
                            duplicates=DuplicateSettings(nested_recheck_crops=1,
                                                         nested_recheck_input=128))
    detector = ObjectDetector(config, CPU)
    assert detector.input_size == (64, 64)
    assert detector._crop_model is not None and detector._crop_model.input_size == (128, 128)
    assert "nested-box crops detected at 128x128" in detector.notes
    assert not [n for n in detector.notes if "is not applied" in n], detector.notes
    found = detector.detect_crops([np.zeros((100, 100, 3), np.uint8)])[0]
    assert len(found)  # the fixed outputs, through the 128x128 model
