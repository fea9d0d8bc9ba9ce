"""Rewrite a fixed-size detector graph to another input size, in memory (same weights).

A convolutional detector's weights do not depend on its input size; an export fixes the size only
in the graph's declared shapes and in constants computed from it. PicoDet's (paddle2onnx) graph
holds it in the Reshape targets of its channel shuffles, ``[1, 2, C/2, H/s, W/s]`` and back
``[1, C, H/s, W/s]`` for feature maps of stride ``s``; its heads flatten with ``-1``. Rewriting
those spatial entries (``ceil(H/s)``, ``ceil(W/s)``, the sizes the stride-2 convolutions give) and
the declared input shape lets the same weights run at, e.g., 256x256 for the crops of the
nested-box re-check (``detector.duplicates.nested_recheck_input``, docs/detection-quality.md).
The shipped file, whose sha256 the registry checks, is never touched, and no second model file
is shipped.

What cannot be rewritten this way (a Resize to fixed ``sizes``, a Reshape whose spatial entries
match no stride) is left as it is, and the first run at the new size fails with the model's own
shape error: :class:`~sense_perception.core.detection.detector.ObjectDetector` then keeps the
model's own size for the crops and says so in a warning naming the setting.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import ModelError

#: strides whose feature-map sizes are looked for in Reshape targets (2 .. 64)
STRIDES = tuple(2 ** k for k in range(1, 7))
#: input sides must be a multiple of this, so that every upsampled map meets its lateral map
MULTIPLE = 32


def input_hw(model: onnx.ModelProto) -> tuple[int, int]:
    """(height, width) of the graph's first input, as declared (0 where symbolic)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelError(f"the model input has {len(dims)} axes; resizing needs NCHW")
    return int(dims[2].dim_value), int(dims[3].dim_value)


def _spatial_map(old: tuple[int, int],
                 new: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int]]:
    """Feature-map (h, w) at the old input size -> (h, w) at the new one, per stride."""
    mapping: dict[tuple[int, int], tuple[int, int]] = {}
    for stride in STRIDES:
        before = (math.ceil(old[0] / stride), math.ceil(old[1] / stride))
        mapping.setdefault(before, (math.ceil(new[0] / stride), math.ceil(new[1] / stride)))
    return mapping


def resize_input(model: onnx.ModelProto, width: int, height: int) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` taking ``width`` x ``height`` images, and how many Reshape targets
    were rewritten.

    Raises:
        ModelError: the size is not a positive multiple of :data:`MULTIPLE`, or the model's input
            size is not fixed (nothing to rewrite from).
    """
    if width <= 0 or height <= 0 or width % MULTIPLE or height % MULTIPLE:
        raise ModelError(f"cannot resize the model input to {width}x{height}: the sides must be "
                         f"positive multiples of {MULTIPLE}")
    old = input_hw(model)
    if not all(old):
        raise ModelError("the model input size is not fixed; give the size to the detector "
                         "instead (detector.input_width, detector.input_height)")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if old == (height, width):
        return out, 0
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = height, width
    for value in graph.output:  # output lengths follow the input size: left to the run
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis and dim.dim_value:
                dim.dim_param = f"{value.name}_axis{axis}"
    del graph.value_info[:]  # intermediate shapes recorded at the old size
    mapping = _spatial_map(old, (height, width))
    constants = {init.name: init for init in graph.initializer}
    node_constants = {node.output[0]: node for node in graph.node
                      if node.op_type == "Constant" and node.attribute
                      and node.attribute[0].name == "value"}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in constants:
            target = numpy_helper.to_array(constants[name])
        elif name in node_constants:
            target = numpy_helper.to_array(node_constants[name].attribute[0].t)
        else:
            continue
        if target.ndim != 1 or target.size < 3:
            continue
        spatial = (int(target[-2]), int(target[-1]))
        if spatial not in mapping:
            continue
        fixed = np.array(target, copy=True)
        fixed[-2:] = mapping[spatial]
        fresh = f"{name}__{height}x{width}"
        if fresh not in constants:
            constants[fresh] = numpy_helper.from_array(fixed, fresh)
            graph.initializer.append(constants[fresh])
        node.input[1] = fresh
        rewritten += 1
    return out, rewritten


__all__ = ["MULTIPLE", "input_hw", "resize_input"]
