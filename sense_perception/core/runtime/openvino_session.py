"""OpenVINO on the CPU behind the same interface as :class:`~.session.OnnxModel`.

Intel's Open Model Zoo models ship as OpenVINO IR, which reshapes to any input size (their ONNX
conversions are fixed to one size): person-detection-0203 runs on the horizon band of a wide
frame at a resolution of its own this way (docs/detection-quality.md). The GPU path stays
onnxruntime's (CUDA, TensorRT) with the ONNX copy: OpenVINO is used only where a model would
otherwise run on onnxruntime's CPU provider.

Precision is pinned to f32: on CPUs with AVX-512 BF16 or AMX, OpenVINO would otherwise infer in
bfloat16 by default, so results (and the thresholds tuned on them) would depend on the CPU.

No model cache (``CACHE_DIR``, ``export_model``/``import_model``): with OpenVINO 2026.4 the
specialist's 8-bit form imported from its cached blob runs another graph than a fresh compile
(extra u8/f32 conversions around its normalisations) and loses pedestrians a fresh compile finds
at scores up to 0.998 on every developer-set frame tried, and a blob with flipped bytes is
imported unchecked (docs/performance.md#start-up-openvinos-model-cache; tools/openvino_cache_check.py).
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import numpy as np

from ...errors import ModelError
from .progress import loading
from .session import RuntimeOptions, TensorSpec

LOG = logging.getLogger(__name__)

PROVIDER = "OpenVINO (CPU)"
_OV_TYPES: dict[str, type[np.generic]] = {"f32": np.float32, "f16": np.float16, "u8": np.uint8,
                                         "i64": np.int64, "i32": np.int32}
_CORE = None


# OpenVINO's model-conversion tools, which ``import openvino`` imports in a try: importing them
# starts Intel's telemetry (openvino_telemetry), which, unless the user opted out, writes a
# client id under ~/intel and sends a Google Analytics event from a thread of its own on every
# import. Nothing of a car's start-up may leave the vehicle, and that thread (not a daemon) held
# every node's stop for 2 s. The runtime needs none of it: models are read with Core.read_model.
_CONVERSION_TOOLS = "openvino.tools.ovc"


def import_openvino() -> ModuleType:
    """``import openvino`` without its conversion tools, so without its telemetry.

    Raises:
        ImportError: openvino is not installed.
    """
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = _CONVERSION_TOOLS not in sys.modules
    if blocked:
        # None: the import fails with ImportError, which openvino's __init__ catches
        sys.modules[_CONVERSION_TOOLS] = None  # type: ignore[assignment]
    try:
        import openvino
    finally:
        if blocked and sys.modules.get(_CONVERSION_TOOLS, 0) is None:
            del sys.modules[_CONVERSION_TOOLS]  # a later explicit import is its importer's choice
    return openvino


def openvino_available() -> bool:
    """True when the ``openvino`` package can be imported."""
    try:
        import_openvino()
    except ImportError:
        return False
    return True


def _core():  # -> openvino.Core, one per process (it owns the plugin and its thread pools)
    global _CORE
    if _CORE is None:
        _CORE = import_openvino().Core()
    return _CORE


def _spec(port) -> TensorSpec:  # an openvino port -> TensorSpec
    shape = tuple(int(d.get_length()) if d.is_static else None for d in port.get_partial_shape())
    # A port may have several names ("labels" and a numeric id): the one a person wrote wins.
    name = min(port.get_names(), key=lambda n: (not any(c.isalpha() for c in n), len(n)),
               default=port.get_any_name())
    return TensorSpec(name, shape,
                      _OV_TYPES.get(port.get_element_type().get_type_name(), np.float32))


class OpenVinoModel:
    """One compiled OpenVINO model on the CPU with the :class:`OnnxModel` interface
    (``inputs``, ``outputs``, ``output_names``, ``provider``, ``fallback_reasons``, ``run``).

    Args:
        path: the model file (IR .xml beside its .bin, or ONNX), already verified.
        options: ``intra_op_threads`` sets OpenVINO's inference threads (0: its own choice).
        name: model name for messages.
        fallback_reasons: why the model is not on a GPU provider (kept for diagnostics).
        input_size: (width, height) to reshape the image input to (None: the model's own).
    """

    def __init__(self, path: str | Path, options: RuntimeOptions | None = None,
                 name: str = "model", fallback_reasons: list[str] | None = None,
                 input_size: tuple[int, int] | None = None) -> None:
        self.name = name
        self.options = options or RuntimeOptions()
        self.fallback_reasons = list(fallback_reasons or [])
        self.provider = PROVIDER
        config: dict[str, str | int] = {"PERFORMANCE_HINT": "LATENCY",
                                        "INFERENCE_PRECISION_HINT": "f32"}
        if self.options.intra_op_threads:
            config["INFERENCE_NUM_THREADS"] = int(self.options.intra_op_threads)
        # a node's load is bounded (warm_up_timeout_s): a compile that hangs is named (R85)
        loading(name, "OpenVINO's read and compile_model on the CPU")
        try:
            core = _core()
            model = core.read_model(str(path))
            if input_size is not None:
                port = model.inputs[0]
                batch, channels = port.get_partial_shape()[0], port.get_partial_shape()[1]
                model.reshape({port.get_any_name(): [batch, channels, int(input_size[1]),
                                                     int(input_size[0])]})
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # openvino raises RuntimeError subclasses for bad graphs
            raise ModelError(f"OpenVINO cannot load {name} from {path}"
                             f"{f' at {input_size[0]}x{input_size[1]}' if input_size else ''}: "
                             f"{exc}") from exc
        self._request = self._compiled.create_infer_request()
        self.inputs = [_spec(p) for p in self._compiled.inputs]
        self.outputs = [_spec(p) for p in self._compiled.outputs]
        self.output_names = [o.name for o in self.outputs]
        self._ports = list(self._compiled.outputs)

    @property
    def batch_dynamic(self) -> bool:
        return False

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns outputs in model order (copies: the request reuses its memory)."""
        results = self._request.infer(feeds)
        return [np.array(results[port]) for port in self._ports]
