"""Build the object detector the nodes, the replay and ``detect`` use, with its pre-processing.

``detector.preprocess`` chooses where frames are resized and normalised: the numpy/OpenCV path of
:class:`~sense_perception.core.detection.detector.ObjectDetector`, or the torch path of
:class:`~sense_perception.core.detection.gpu_preprocess.DeviceDetector`, which hands the network input to
onnxruntime on the GPU through IO binding. ``auto`` takes the GPU only where it can work, and
checks the cheap conditions first so that a CPU-only machine never imports torch.
"""
from __future__ import annotations

import logging
from typing import Any

from ...errors import ConfigError
from .detector import ObjectDetector

LOG = logging.getLogger(__name__)


def gpu_unavailable_reason(detector: ObjectDetector) -> str | None:
    """Why the GPU pre-processing path cannot run for ``detector``; None when it can."""
    from .gpu_preprocess import _TORCH_MODES, GPU_PROVIDERS, cuda_available, torch_available

    if detector.tiling_enabled:
        return "tiling is on (the GPU path does not tile)"
    if detector.provider not in GPU_PROVIDERS:
        return f"the model runs on {detector.provider}, not on the CUDA or TensorRT provider"
    if detector.preprocess_spec.interpolation not in _TORCH_MODES:
        return (f"detector.interpolation {detector.preprocess_spec.interpolation!r} has no exact "
                "torch equivalent")
    if not torch_available():
        return "torch is not installed (pip install 'sense_perception[gpu]')"
    if not cuda_available():
        return "torch sees no CUDA device (a CPU-only torch build, or no GPU)"
    return None


def with_preprocess(detector: ObjectDetector) -> Any:
    """``detector`` itself, or a ``DeviceDetector`` around it, as ``detector.preprocess`` says.

    Raises:
        ConfigError: ``gpu`` where the GPU path cannot run, or ``gpu``/``torch_cpu`` with tiling;
            the message says why and how to fix it.
    """
    choice = detector.config.preprocess
    if choice == "cpu":
        return detector
    reason = gpu_unavailable_reason(detector)
    if choice == "auto" and reason is not None:
        LOG.info("pre-processing on the CPU: %s", reason)
        return detector
    from .gpu_preprocess import DeviceDetector

    if choice == "torch_cpu":
        if detector.tiling_enabled:
            raise ConfigError(f"detector.preprocess is torch_cpu but {reason}; fix: set "
                              "tiling.mode off or detector.preprocess cpu")
        return DeviceDetector(detector, "cpu")
    if reason is not None:  # choice == "gpu"
        raise ConfigError(f"detector.preprocess is gpu but {reason}; fix: install the 'gpu' extra "
                          "on a machine with an NVIDIA GPU, or set detector.preprocess to auto "
                          "or cpu")
    device = f"cuda:{detector._model.options.device_id}"
    LOG.info("pre-processing on %s with IO binding", device)
    return DeviceDetector(detector, device)


def build_detector(params: dict, source: str = "config") -> Any:
    """The detector for flattened node parameters (``detector.*``, ``runtime.*``, ``tiling.*``),
    with the pre-processing ``detector.preprocess`` asks for."""
    return with_preprocess(ObjectDetector.from_params(params, source))


__all__ = ["build_detector", "gpu_unavailable_reason", "with_preprocess"]
