"""Decoders: YOLOv8 and RT-DETR through small ONNX graphs that emit known tensors, GFL/YOLOX on
synthetic outputs with hand-computed boxes, format auto-detection and its errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sense_perception.core.detection.decoders import OutputLayout, make_decoder, supported_formats
from sense_perception.core.detection.decoders.gfl import GFLDecoder
from sense_perception.core.detection.decoders.yolox import YOLOXDecoder
from sense_perception.core.detection.detector import ClassThresholds, DetectorConfig, ObjectDetector
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.errors import ConfigError, ModelError

CPU = RuntimeOptions(providers=("CPUExecutionProvider",))
CLASSES = ["person", "car", "dog"]


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def build_model(path: Path, outputs: dict[str, np.ndarray], size: int = 64,
                batch_follows_input: bool = True) -> Path:
    """ONNX model with input ``images`` [1, 3, size, size] whose outputs are fixed tensors.

    With ``batch_follows_input`` each output is ``tensor + 0 * max(images)`` so it carries the
    input's batch axis (a real batch-capable graph); otherwise it is a bare Constant (batch 1 only).
    """
    nodes = []
    if batch_follows_input:
        nodes += [
            helper.make_node("ReduceMax", ["images"], ["m3"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(
                np.zeros((), np.float32))),
            helper.make_node("Mul", ["m3", "zero"], ["z"]),
            helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(
                np.array([1, 2], np.int64))),
            helper.make_node("Unsqueeze", ["z", "axes"], ["z3"]),
        ]
    graph_outputs = []
    for name, tensor in outputs.items():
        const = f"{name}_value" if batch_follows_input else name
        nodes.append(helper.make_node("Constant", [], [const],
                                      value=numpy_helper.from_array(tensor.astype(np.float32))))
        if batch_follows_input:
            nodes.append(helper.make_node("Add", [const, "z3"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                           ["batch", *tensor.shape[1:]]))
    graph = helper.make_graph(
        nodes, "known_outputs",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(CLASSES) + "\n")
    return path


def _detector(model: Path, labels: Path, family: str, **kw) -> ObjectDetector:
    # A custom model's scores stay raw: the raw operating point (cars 0.3, the rest 0.35), not
    # the defaults, which are calibrated values of it for the bundled models.
    kw = {"score_threshold": 0.35, "class_thresholds": ClassThresholds.unset(car=0.3), **kw}
    config = DetectorConfig(model_path=str(model), labels_path=str(labels), model_family=family,
                            **kw)
    return ObjectDetector(config, CPU)


def _yolov8_output() -> np.ndarray:
    out = np.zeros((1, 4 + len(CLASSES), 8), np.float32)
    # columns: cx, cy, w, h (network pixels), then person, car, dog
    out[0, :, 0] = [32, 32, 20, 10, 0.0, 0.9, 0.0]   # car
    out[0, :, 1] = [33, 32, 20, 10, 0.0, 0.6, 0.0]   # duplicate car, NMS removes it
    out[0, :, 2] = [10, 40, 8, 16, 0.8, 0.0, 0.0]    # person
    out[0, :, 3] = [50, 50, 6, 6, 0.0, 0.2, 0.0]     # below threshold
    out[0, :, 4] = [20, 20, 10, 10, 0.0, 0.0, 0.95]  # dog: not a driving label
    return out


def test_yolov8_boxes_in_source_pixels(tmp_path: Path, labels: Path) -> None:
    model = build_model(tmp_path / "y8.onnx", {"output0": _yolov8_output()})
    det = _detector(model, labels, "yolov8")
    assert det.family == "yolov8" and det.batch_dynamic
    # 128x64 image, centred letterbox into 64x64: scale 0.5, 16 px band above and below.
    image = np.zeros((64, 128, 3), np.uint8)
    dets = det.detect_one(image)
    names = [det.label_names[i] for i in dets.labels]
    assert names == ["car", "pedestrian"]
    np.testing.assert_allclose(dets.scores, [0.9, 0.8], atol=1e-6)
    # car: net (22, 27, 42, 37) -> x / 0.5, (y - 16) / 0.5
    np.testing.assert_allclose(dets.boxes[0], [44, 22, 84, 42], atol=1e-3)
    # person: net (6, 32, 14, 48)
    np.testing.assert_allclose(dets.boxes[1], [12, 32, 28, 64], atol=1e-3)


def test_yolov8_keep_other_classes_and_batch(tmp_path: Path, labels: Path) -> None:
    model = build_model(tmp_path / "y8.onnx", {"output0": _yolov8_output()})
    det = _detector(model, labels, "yolo11", keep_other_classes=True)
    images = [np.zeros((64, 128, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)]
    wide, square = det.detect(images)
    assert "dog" in det.label_names
    assert [det.label_names[i] for i in wide.labels] == ["dog", "car", "pedestrian"]
    # Square image: no letterbox band, scale 1.
    np.testing.assert_allclose(square.boxes[1], [22, 27, 42, 37], atol=1e-3)


def test_constant_only_graph_falls_back_to_single_images(tmp_path: Path, labels: Path) -> None:
    model = build_model(tmp_path / "y8c.onnx", {"output0": _yolov8_output()},
                        batch_follows_input=False)
    det = _detector(model, labels, "yolov8")
    assert not det.batch_dynamic
    assert any("batching disabled" in n for n in det.notes)
    results = det.detect([np.zeros((64, 128, 3), np.uint8)] * 3)
    for dets in results:
        np.testing.assert_allclose(dets.boxes[0], [44, 22, 84, 42], atol=1e-3)


def _rtdetr_outputs(logits: bool = False) -> dict[str, np.ndarray]:
    boxes = np.zeros((1, 4, 4), np.float32)
    scores = np.zeros((1, 4, len(CLASSES)), np.float32)
    boxes[0, 0] = [0.5, 0.5, 0.2, 0.4]
    scores[0, 0] = [0.0, 0.9, 0.0]
    boxes[0, 1] = [0.51, 0.5, 0.2, 0.4]  # overlapping second car: DETR keeps it (no NMS)
    scores[0, 1] = [0.0, 0.7, 0.0]
    boxes[0, 2] = [0.1, 0.1, 0.1, 0.1]
    scores[0, 2] = [0.3, 0.0, 0.0]  # below threshold
    if logits:
        scores = np.where(scores > 0, np.vectorize(_logit)(np.clip(scores, 1e-6, 1 - 1e-6)),
                          -20.0).astype(np.float32)
    return {"pred_boxes": boxes, "pred_scores": scores}


@pytest.mark.parametrize("logits", [False, True])
def test_rtdetr_boxes_and_scores(tmp_path: Path, labels: Path, logits: bool) -> None:
    model = build_model(tmp_path / "detr.onnx", _rtdetr_outputs(logits))
    det = _detector(model, labels, "rtdetr", score_activation="sigmoid" if logits else "none")
    assert det.family == "rtdetr"
    dets = det.detect_one(np.zeros((100, 200, 3), np.uint8))  # stretch: sx 0.32, sy 0.64
    assert [det.label_names[i] for i in dets.labels] == ["car", "car"]
    np.testing.assert_allclose(dets.scores, [0.9, 0.7], atol=1e-5)
    # (0.5, 0.5, 0.2, 0.4) * 64 -> net (25.6, 19.2, 38.4, 44.8) -> source
    np.testing.assert_allclose(dets.boxes[0], [80, 30, 120, 70], atol=1e-3)


def test_rtdetr_single_output_and_autodetect(tmp_path: Path, labels: Path) -> None:
    parts = _rtdetr_outputs()
    joined = np.concatenate([parts["pred_boxes"], parts["pred_scores"]], axis=2)
    model = build_model(tmp_path / "detr1.onnx", {"output": joined})
    det = _detector(model, labels, "rtdetr")
    dets = det.detect_one(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(dets.boxes[0], [80, 30, 120, 70], atol=1e-3)
    auto = _detector(build_model(tmp_path / "detr2.onnx", parts), labels, "")
    assert auto.family == "rtdetr"


def test_unknown_output_format_names_shapes(tmp_path: Path, labels: Path) -> None:
    model = build_model(tmp_path / "odd.onnx", {"weird": np.zeros((1, 5), np.float32)},
                        batch_follows_input=False)
    for family in ("", "yolov8"):
        with pytest.raises(ModelError) as err:
            _detector(model, labels, family)
        message = str(err.value)
        assert "weird [1, 5]" in message and "Supported formats" in message
        assert "yolov8: one [B, 4+C, N]" in message and "rtdetr" in message


def test_class_count_mismatch_names_both_numbers(tmp_path: Path, labels: Path) -> None:
    out = np.zeros((1, 4 + 5, 16), np.float32)  # 5 classes, labels file has 3
    model = build_model(tmp_path / "y8_5.onnx", {"output0": out})
    with pytest.raises(ModelError) as err:
        _detector(model, labels, "yolov8")
    message = str(err.value)
    assert "5 classes" in message and "names 3" in message and str(labels) in message


def test_unknown_family_is_config_error(tmp_path: Path, labels: Path) -> None:
    with pytest.raises(ConfigError, match="ssd"):
        DetectorConfig(model_path="x.onnx", labels_path=str(labels), model_family="ssd")


def _layout(shapes, width, height, classes=3, names=None, **options) -> OutputLayout:
    return OutputLayout(shapes=tuple(tuple(s) for s in shapes),
                        names=tuple(names or [f"out{i}" for i in range(len(shapes))]),
                        input_width=width, input_height=height, num_classes=classes,
                        options=options)


def test_gfl_split_layout_infers_strides_and_reg_max() -> None:
    # 64x32 input, strides 8 and 16, reg_max 3; scores first as PaddleDetection exports them.
    shapes = [(1, 32, 3), (1, 8, 3), (1, 32, 16), (1, 8, 16)]
    dec = make_decoder("", _layout(shapes, 64, 32))
    assert isinstance(dec, GFLDecoder)
    assert dec.strides == (8, 16) and dec.reg_max == 3 and dec.cell_offset == 0.5
    outputs = [np.zeros(s, np.float32) for s in shapes]
    outputs[1][0, 5, 1] = 0.8  # stride 16, row 1, col 1 -> anchor (24, 24); class 1
    reg = np.full((4, 4), -50.0, np.float32)
    reg[0, 2] = reg[1, 1] = reg[2, 1] = reg[3, 3] = 50.0  # distances 2, 1, 1, 3 bins
    outputs[3][0, 5] = reg.ravel()
    (cand,) = dec.decode(outputs, 0.5)
    assert cand.class_ids.tolist() == [1]
    np.testing.assert_allclose(cand.boxes[0], [24 - 32, 24 - 16, 24 + 16, 24 + 48], atol=1e-3)


def test_gfl_single_output_nanodet_plus() -> None:
    # 64x64: strides 8..64 give 64 + 16 + 4 + 1 = 85 anchors; 3 classes + 4 * 8 bins.
    shape = (1, 85, 3 + 32)
    dec = make_decoder("gfl", _layout([shape], 64, 64))
    assert dec.single and dec.reg_max == 7 and dec.cell_offset == 0.0
    out = np.full(shape, -50.0, np.float32)
    out[..., :3] = 0.0
    out[0, 64 + 5, 2] = 0.9  # stride 16, row 1, col 1 -> anchor (16, 16) with offset 0
    out[0, 64 + 5, 3:] = -50.0
    for side, b in enumerate([1, 1, 2, 2]):
        out[0, 64 + 5, 3 + side * 8 + b] = 50.0
    (cand,) = dec.decode([out], 0.5)
    np.testing.assert_allclose(cand.boxes[0], [0, 0, 48, 48], atol=1e-3)


def test_yolox_decode_and_auto_detection() -> None:
    # 64x64: strides 8/16/32 give 64 + 16 + 4 = 84 anchors.
    shape = (2, 84, 5 + 3)
    dec = make_decoder("", _layout([shape], 64, 64))
    assert isinstance(dec, YOLOXDecoder)
    out = np.zeros(shape, np.float32)
    out[1, 64 + 6] = [0.5, 0.25, math.log(2.0), 0.0, 0.9, 0.1, 0.8, 0.0]  # stride 16, gx 2, gy 1
    empty, cand = dec.decode([out], 0.5)
    assert len(empty.scores) == 0
    np.testing.assert_allclose(cand.scores, [0.72], atol=1e-6)
    # centre ((0.5 + 2) * 16, (0.25 + 1) * 16) = (40, 20); size (32, 16)
    np.testing.assert_allclose(cand.boxes[0], [24, 12, 56, 28], atol=1e-4)


def test_auto_detection_yolov8_at_640() -> None:
    dec = make_decoder("auto", _layout([(1, 84, 8400)], 640, 640, classes=80))
    assert dec.family == "yolov8"


def test_named_family_mismatch_lists_formats() -> None:
    with pytest.raises(ModelError) as err:
        make_decoder("gfl", _layout([(1, 84, 8400)], 640, 640, classes=80))
    assert "[1, 84, 8400]" in str(err.value) and supported_formats() in str(err.value)
