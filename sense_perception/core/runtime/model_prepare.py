"""Load a detector ONNX file, clean it up in memory, make its batch axis dynamic where that is safe.

Rewrites, all in memory (the shipped file, whose sha256 the registry checks, is never touched):

* Old exporters (paddle2onnx for PicoDet) list every initializer as a graph input too. onnxruntime
  then warns once per tensor and will not constant-fold them, because a caller could override them.
  Dropping them from the input list fixes both.
* HardSwish spelt as four element-wise ops is rewritten so onnxruntime fuses it into the
  convolutions (:mod:`.graph_fusion`; same function up to float rounding).
* Single-image exports hard-code batch 1. Marking the batch axis dynamic and turning a leading ``1``
  of constant Reshape targets into ``0`` ("copy this dimension from the input") lets several camera
  images share one inference. That is only correct if every such Reshape really carries the batch
  in its first axis, so the result is verified numerically (batch of two == two single runs) and
  dropped in favour of the batch-1 model when it differs or fails. The comparison is against the
  untouched model, so a rewrite that changed single-image results is caught too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import ModelError
from .graph_fusion import fuse_hard_swish
from .model_resize import resize_input
from .openvino_session import OpenVinoModel, openvino_available
from .progress import loading
from .session import OnnxModel, RuntimeOptions

LOG = logging.getLogger(__name__)

_BATCH_PARAM = "batch"
# Batched kernels may sum in another order; differences beyond this mean images were mixed.
_RTOL = 1e-3
_ATOL = 1e-4


@dataclass
class PreparedModel:
    """A ready session and how it was obtained.

    Attributes:
        model: the onnxruntime session wrapper.
        batch_dynamic: True when one call may carry several images.
        notes: what was rewritten or why batching was given up (for logs and diagnostics).
    """

    model: OnnxModel | OpenVinoModel
    batch_dynamic: bool
    notes: list[str] = field(default_factory=list)


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Parse an ONNX file, turning parser failures into :class:`ModelError`."""
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for bad files
        raise ModelError(f"{path} is not a readable ONNX model ({exc}); fix: point "
                         "'detector.model_path' at a valid .onnx file") from exc


def drop_initializer_inputs(model: onnx.ModelProto) -> int:
    """Remove graph inputs that are initializers (weights); returns how many were removed."""
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    keep = [inp for inp in graph.input if inp.name not in weights]
    removed = len(graph.input) - len(keep)
    if removed:
        del graph.input[:]
        graph.input.extend(keep)
    return removed


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def make_batch_dynamic(model: onnx.ModelProto) -> tuple[onnx.ModelProto | None, str]:
    """Return a copy of ``model`` whose batch axis is symbolic, or (None, reason) if not attempted.

    Constant Reshape targets whose first entry is 1 get 0 instead. Whether that is right is not
    knowable from the graph alone; callers must verify numerically (:func:`prepare_detector_model`).
    """
    graph = model.graph
    if not graph.input or not graph.input[0].type.tensor_type.shape.dim:
        return None, "the model input has no shape"
    first = graph.input[0].type.tensor_type.shape.dim[0]
    if first.dim_param or first.dim_value <= 0:
        return model, "batch axis already dynamic"
    if first.dim_value != 1:
        return None, f"the model input has a fixed batch of {first.dim_value}"
    dyn = onnx.ModelProto()
    dyn.CopyFrom(model)
    graph = dyn.graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_value == 1:
            dims[0].dim_param = _BATCH_PARAM
    # Intermediate shapes recorded by the exporter still say batch 1 and would contradict the run.
    del graph.value_info[:]
    constants = _constant_values(graph)
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            continue  # 0 would mean a literal zero-size axis there
        target = constants.get(node.input[1])
        if target is None or target.ndim != 1 or target.size < 2 or target[0] != 1:
            continue
        fixed = target.copy()
        fixed[0] = 0
        name = f"{node.input[1]}__batch_dynamic"
        graph.initializer.append(numpy_helper.from_array(fixed, name))
        node.input[1] = name
    return dyn, "batch axis made dynamic"


def _sample_inputs(model: OnnxModel, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        shape = [batch if i == 0 else (d or 1) for i, d in enumerate(spec.shape)]
        feeds[spec.name] = rng.uniform(-1.0, 1.0, shape).astype(spec.dtype)
    return feeds


def batch_consistent(reference: OnnxModel, batched: OnnxModel) -> tuple[bool, str]:
    """Check that ``batched`` on a batch of two equals two single-image runs of ``reference``.

    Comparing with the untouched model (not the rewritten one at batch 1) also catches a rewrite
    that changed the single-image result.
    """
    a = _sample_inputs(reference, 1, 1)
    b = _sample_inputs(reference, 1, 2)
    pair = {name: np.concatenate([a[name], b[name]]) for name in a}
    out_a, out_b = reference.run(a), reference.run(b)
    try:
        out_pair = batched.run(pair)
    except Exception as exc:  # onnxruntime raises its own types for shape errors
        return False, f"batch-2 run failed: {str(exc).splitlines()[0][:300]}"
    for index, (x, y, both) in enumerate(zip(out_a, out_b, out_pair, strict=True)):
        if both.shape[:1] != (2,):
            return False, f"output {index} has batch {both.shape[:1]} for an input batch of 2"
        for single, sliced in ((x, both[:1]), (y, both[1:])):
            if single.shape != sliced.shape:
                return False, (f"output {index}: batch-2 slice shape {sliced.shape} differs from "
                               f"the single-image shape {single.shape}")
            scale = max(1.0, float(np.abs(single).max(initial=0.0)))
            if not np.allclose(single, sliced, rtol=_RTOL, atol=_ATOL * scale):
                diff = float(np.abs(single - sliced).max())
                return False, f"output {index}: batch-2 result differs by up to {diff:.3g}"
    return True, "batch of 2 equals two single runs of the original model"


def prepare_detector_model(path: str | Path, options: RuntimeOptions | None = None,
                           name: str = "detector", allow_batch: bool = True,
                           openvino_model: str | Path | None = None,
                           openvino_input: tuple[int, int] | None = None,
                           input_size: tuple[int, int] | None = None) -> PreparedModel:
    """Load ``path`` into an onnxruntime session, batch-dynamic if that is verified correct.

    The check runs on the CPU provider whatever the configured providers are: it tests the graph
    rewrite, and FP32 CPU results are exact enough to compare (TensorRT FP16 would not be), while
    a GPU provider then builds its engine only once, for the model finally used.

    Args:
        path: ONNX file (already checksum-verified for bundled models).
        options: providers, threads and device.
        name: model name for messages.
        allow_batch: False keeps the model's own batch size (images then run one at a time).
        openvino_model: an OpenVINO form of the same weights (IR): used instead of ``path`` on
            OpenVINO's CPU plugin (``runtime.openvino`` permitting, when installed) where
            onnxruntime would run the model on its CPU provider.
        openvino_input: (width, height) the OpenVINO model is reshaped to (None: its own size).
        input_size: (width, height) the ONNX graph is rewritten to take
            (:func:`~.model_resize.resize_input`; None: its own size).

    Raises:
        ModelError: the file is unreadable or no provider can run it.
    """
    options = options or RuntimeOptions()
    # The OpenVINO form to use on a CPU, or None when there is none or it is not wanted.
    ov_model = (openvino_model if openvino_model is not None and options.openvino == "auto"
                and openvino_available() else None)
    if ov_model is not None and not options.gpu_provider_available():
        return _done(name, PreparedModel(
            OpenVinoModel(ov_model, options, name, input_size=openvino_input), False,
            ["on OpenVINO's CPU plugin (no GPU provider in this onnxruntime build)"]))
    prepared = _prepare_onnx(path, options, name, allow_batch, input_size)
    if ov_model is not None and prepared.model.provider == "CPUExecutionProvider":
        # A GPU provider was built in but could not start (no GPU, missing CUDA libraries).
        return _done(name, PreparedModel(
            OpenVinoModel(ov_model, options, name, prepared.model.fallback_reasons,
                          openvino_input), False,
            ["on OpenVINO's CPU plugin (the GPU providers could not start)"]))
    return prepared


def _prepare_onnx(path: str | Path, options: RuntimeOptions, name: str,
                  allow_batch: bool, input_size: tuple[int, int] | None = None) -> PreparedModel:
    proto = load_onnx(path)
    notes: list[str] = []
    removed = drop_initializer_inputs(proto)
    if removed:
        notes.append(f"dropped {removed} initializers listed as graph inputs")
    if input_size is not None:
        proto, rewritten = resize_input(proto, *input_size)
        notes.append(f"input rewritten to {input_size[0]}x{input_size[1]} ({rewritten} Reshape "
                     "targets)")
    fused = fuse_hard_swish(proto)  # same function, ~1/3 less CPU time on PicoDet (graph_fusion)
    if fused:
        notes.append(f"fused {fused} HardSwish patterns into HardSigmoid*x")
    static_bytes = proto.SerializeToString()
    dyn, reason = make_batch_dynamic(proto) if allow_batch else (None, "")
    if dyn is None:
        notes.append(f"batching disabled, images run one at a time: {reason}" if allow_batch
                     else "batching disabled by configuration")
        return _done(name, PreparedModel(OnnxModel(static_bytes, options, name), False, notes))
    cpu_only = tuple(options.providers) == ("CPUExecutionProvider",)
    check_options = options if cpu_only else replace(options, providers=("CPUExecutionProvider",))
    static = OnnxModel(static_bytes, check_options, name)
    dyn_bytes = static_bytes if dyn is proto else dyn.SerializeToString()
    try:
        batched = static if dyn is proto else OnnxModel(dyn_bytes, check_options, name)
    except ModelError as exc:
        ok, why = False, f"dynamic-batch model failed to load: {exc}"
    else:
        loading(name, "the check of its batch axis: runs at batch 1 and 2 on CPUExecutionProvider")
        ok, why = batch_consistent(static, batched)
    if ok:
        notes.append(f"{reason}; verified: {why}")
        model = batched if cpu_only else OnnxModel(dyn_bytes, options, name)
        return _done(name, PreparedModel(model, True, notes))
    notes.append(f"batching disabled, images run one at a time: {why}")
    model = static if cpu_only else OnnxModel(static_bytes, options, name)
    return _done(name, PreparedModel(model, False, notes))


def _done(name: str, prepared: PreparedModel) -> PreparedModel:
    for note in prepared.notes:
        LOG.info("%s: %s", name, note)
    return prepared
