"""HardSwish fusion: same outputs as the original graph, and only exact patterns are rewritten."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from sense_perception.core.runtime.graph_fusion import fuse_hard_swish
from sense_perception.core.runtime.model_prepare import drop_initializer_inputs, load_onnx
from sense_perception.core.runtime.model_registry import get_model

FRAME = (Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
         / "pandaset_seq002_front_camera_00.jpg")


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _picodet_blob() -> np.ndarray:
    image = cv2.resize(cv2.imread(str(FRAME)), (416, 416), interpolation=cv2.INTER_CUBIC)
    rgb = image[:, :, ::-1].astype(np.float32) / 255.0
    norm = (rgb - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225],
                                                                          np.float32)
    return np.ascontiguousarray(norm.transpose(2, 0, 1)[None])


def test_picodet_outputs_unchanged_after_fusion() -> None:
    original = load_onnx(get_model("picodet_s_416").verified_path())
    drop_initializer_inputs(original)
    fused = onnx.ModelProto()
    fused.CopyFrom(original)
    assert fuse_hard_swish(fused) == 87
    ops = Counter(n.op_type for n in fused.graph.node)
    assert ops["Div"] == 0 and ops["Clip"] == 0 and ops["HardSigmoid"] == 13 + 87
    onnx.checker.check_model(fused)
    blob = _picodet_blob()
    name = original.graph.input[0].name
    want = _session(original).run(None, {name: blob})
    got = _session(fused).run(None, {name: blob})
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    assert fuse_hard_swish(fused) == 0  # nothing left to fuse


def _graph(reuse_clip: bool, six: float = 6.0) -> onnx.ModelProto:
    consts = [numpy_helper.from_array(np.array(v, np.float32), n)
              for n, v in (("three", 3.0), ("zero", 0.0), ("six", 6.0), ("den", six))]
    nodes = [helper.make_node("Add", ["x", "three"], ["a"]),
             helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]),
             helper.make_node("Div", ["m", "den"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])]
    if reuse_clip:  # the clipped tensor is also a graph output: it must survive
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 5]))
    graph = helper.make_graph(nodes, "hs", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 5])], outputs, consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def test_small_graph_fused_and_exact() -> None:
    model = _graph(reuse_clip=False)
    x = np.linspace(-5, 5, 10, dtype=np.float32).reshape(2, 5)
    want = _session(model).run(None, {"x": x})[0]
    assert fuse_hard_swish(model) == 1
    np.testing.assert_allclose(_session(model).run(None, {"x": x})[0], want, atol=1e-6)
    np.testing.assert_allclose(want, x * np.clip(x + 3, 0, 6) / 6, atol=1e-6)


def test_patterns_that_differ_are_left_alone() -> None:
    assert fuse_hard_swish(_graph(reuse_clip=True)) == 0  # intermediate used elsewhere
    assert fuse_hard_swish(_graph(reuse_clip=False, six=5.0)) == 0  # not a HardSwish
