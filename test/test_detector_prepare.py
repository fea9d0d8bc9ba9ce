"""In-memory model preparation: initializer cleanup and the verified dynamic-batch rewrite."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sense_perception.core.runtime.model_prepare import (drop_initializer_inputs, load_onnx,
                                                         make_batch_dynamic,
                                                         prepare_detector_model)
from sense_perception.core.runtime.model_registry import MODELS
from sense_perception.core.runtime.session import RuntimeOptions

CPU = RuntimeOptions(providers=("CPUExecutionProvider",))


def _reshape_model(path: Path, transpose_first: bool, batch: int = 1) -> Path:
    """X [batch, 2, 3] -> (optional Transpose 1,0,2) -> Reshape to [1, 6] -> Y.

    Without the transpose the leading 1 of the Reshape target is the batch axis and rewriting it
    to 0 is right. With the transpose it is not: the batch ends up in axis 1, and a batch-2 run
    of the rewritten model mixes the two images.
    """
    nodes, src = [], "X"
    if transpose_first:
        nodes.append(helper.make_node("Transpose", ["X"], ["T"], perm=[1, 0, 2]))
        src = "T"
    nodes.append(helper.make_node("Reshape", [src, "shape"], ["Y"]))
    graph = helper.make_graph(
        nodes, "reshape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, 2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, 6])],
        initializer=[numpy_helper.from_array(np.array([batch, 6], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_correct_reshape_rewrite_is_kept(tmp_path: Path) -> None:
    prepared = prepare_detector_model(_reshape_model(tmp_path / "ok.onnx", False), CPU)
    assert prepared.batch_dynamic, prepared.notes
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    (y,) = prepared.model.run({"X": x})
    np.testing.assert_array_equal(y, x.reshape(2, 6))


def test_wrong_reshape_rewrite_is_caught_and_dropped(tmp_path: Path) -> None:
    prepared = prepare_detector_model(_reshape_model(tmp_path / "mix.onnx", True), CPU)
    assert not prepared.batch_dynamic
    assert any("differs" in n for n in prepared.notes), prepared.notes
    assert prepared.model.inputs[0].shape == (1, 2, 3)


def test_fixed_batch_other_than_one_is_left_alone(tmp_path: Path) -> None:
    proto = load_onnx(_reshape_model(tmp_path / "b2.onnx", False, batch=2))
    dyn, reason = make_batch_dynamic(proto)
    assert dyn is None and "fixed batch of 2" in reason


def test_picodet_rewrite_drops_initializer_inputs_and_reshape_ones() -> None:
    proto = load_onnx(MODELS["picodet_s_416"].verified_path())
    assert len(proto.graph.input) == 280
    assert drop_initializer_inputs(proto) == 279
    assert [i.name for i in proto.graph.input] == ["image"]
    dyn, _ = make_batch_dynamic(proto)
    assert dyn is not None
    assert dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    inits = {i.name: numpy_helper.to_array(i) for i in dyn.graph.initializer}
    targets = [inits[n.input[1]] for n in dyn.graph.node if n.op_type == "Reshape"]
    assert len(targets) == 28 and all(t[0] == 0 for t in targets)


@pytest.mark.parametrize("allow_batch", [True, False])
def test_prepare_bundled_models(allow_batch: bool) -> None:
    for name in ("picodet_s_416", "yolox_nano"):
        prepared = prepare_detector_model(MODELS[name].verified_path(), CPU, name, allow_batch)
        assert prepared.batch_dynamic is allow_batch
        assert prepared.model.batch_dynamic is allow_batch
        if not allow_batch:
            assert "batching disabled by configuration" in prepared.notes


def test_batch_check_runs_on_cpu_then_final_session_uses_configured_providers() -> None:
    options = RuntimeOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    prepared = prepare_detector_model(MODELS["yolox_nano"].verified_path(), options, "yolox")
    assert prepared.batch_dynamic
    model = prepared.model
    assert model.options.providers == options.providers
    if model.provider == "CPUExecutionProvider":  # no CUDA here: the skip is recorded
        assert any("CUDAExecutionProvider skipped" in r for r in model.fallback_reasons)
