"""Build the object detector the nodes, the replay and ``detect`` use, with its pre-processing.

With ``detector.pedestrian_model`` set (the default), the detector is a
:class:`~sense_perception.core.detection.multi_model.MultiModelDetector`: the general model
(``detector.model``, with tiling) owns every label but ``pedestrian``, the specialist owns
``pedestrian``.

``detector.preprocess`` chooses where frames are resized and normalised: the numpy/OpenCV path of
:class:`~sense_perception.core.detection.detector.ObjectDetector`, or the torch path of
:class:`~sense_perception.core.detection.gpu_preprocess.DeviceDetector`, which hands the network input to
onnxruntime on the GPU through IO binding. ``auto`` takes the GPU only where it can work, and
checks the cheap conditions first so that a CPU-only machine never imports torch.
"""
from __future__ import annotations

import logging

from ...errors import ConfigError
from ..runtime.session import RuntimeConfig
from ..runtime.session import RuntimeOptions
from .band import band_tiling
from .duplicates import DuplicateSettings
from .detector import (NO_MODEL, ClassThresholds, DetectorConfig, ObjectDetector,
                       _tiling_from_params)
from .interface import Detector
from .multi_model import MultiModelDetector

PEDESTRIAN = "pedestrian"
# The settings a specialist shares with the general model; the rest (model, thresholds, custom-model
# pre-processing overrides, tiling) belong to the general model alone.
_SHARED = ("nms_iou", "max_detections", "batching", "max_batch", "reduced_jpeg_decode",
           "preprocess", "calibrated_scores", "low_light")

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


def with_preprocess(detector: ObjectDetector) -> Detector:
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
    device = f"cuda:{detector.device_id}"
    LOG.info("pre-processing on %s with IO binding", device)
    return DeviceDetector(detector, device)


def specialist_config(config: DetectorConfig, model: str) -> DetectorConfig:
    """The settings of the pedestrian specialist ``model`` next to the general model's
    ``config``: its own threshold (``detector.pedestrian_threshold``, for every label: the
    general model's ``class_thresholds`` are not its), the shared rest. The nested-box re-check
    on crops (``detector.duplicates.nested_recheck_crops``) is the general model's: the
    specialist's own duplicates step keeps its defaults without it."""
    return DetectorConfig(model=model, pedestrian_model=NO_MODEL,
                          score_threshold=config.pedestrian_threshold,
                          class_thresholds=ClassThresholds.unset(),
                          duplicates=DuplicateSettings(nested_recheck_crops=0),
                          **{name: getattr(config, name) for name in _SHARED})


def build_detector(params: dict, source: str = "config") -> Detector:
    """The detector for flattened node parameters (``detector.*``, ``runtime.*``, ``tiling.*``),
    with the pre-processing ``detector.preprocess`` asks for: the general model alone, or with
    the pedestrian specialist (``detector.pedestrian_model``)."""
    config = DetectorConfig.from_params(params, source)
    runtime = RuntimeConfig.from_params(params, source).options()
    tiling = _tiling_from_params(params, source)
    if config.pedestrian_model == NO_MODEL:
        return with_preprocess(ObjectDetector(config, runtime, tiling))
    own = specialist_config(config, config.pedestrian_model)
    if not config.pedestrian_band:  # the specialist on the whole frame, at its own input size
        return MultiModelDetector([
            with_preprocess(ObjectDetector(config, runtime, tiling, excluded_labels=[PEDESTRIAN])),
            with_preprocess(ObjectDetector(own, runtime, owned_labels=[PEDESTRIAN]))])
    # The specialist on the horizon band; the general model keeps the pedestrians reaching beyond
    # it (near ones), so it reports pedestrians too.
    return MultiModelDetector([with_preprocess(ObjectDetector(config, runtime, tiling)),
                               band_specialist(own, config, runtime)],
                              band=config.pedestrian_band, band_labels=[PEDESTRIAN])


def band_specialist(own: DetectorConfig, config: DetectorConfig,
                    runtime: RuntimeOptions) -> ObjectDetector:
    """The pedestrian specialist on the horizon band: one tile of the band at
    ``detector.pedestrian_band_input`` where OpenVINO reshapes it, else tiles of its fixed size.

    Built once either way: whether OpenVINO takes the model is known only once it is loaded, and
    the tiling is read only when images are detected, so the onnxruntime case just re-tiles it.
    """
    band = ObjectDetector(own, runtime, band_tiling(config.pedestrian_band, None),
                          owned_labels=[PEDESTRIAN],
                          openvino_input=(config.pedestrian_band_input[0],
                                          config.pedestrian_band_input[1]))
    if not band.reshaped:
        width, height = band.input_size  # onnxruntime: tiles of the network's own shape
        band.tiling = band_tiling(config.pedestrian_band, width / height)
        if list(config.pedestrian_band_input) != list(DetectorConfig().pedestrian_band_input):
            # set, yet only OpenVINO can reshape the network: said, not ignored in silence
            LOG.warning("detector.pedestrian_band_input %s is not applied: %s runs on %s, whose "
                        "copy of the model is fixed to %dx%d; the band is cut into tiles of that "
                        "shape (OpenVINO reshapes it: runtime.openvino auto, on a CPU)",
                        list(config.pedestrian_band_input), band.model_name, band.provider,
                        width, height)
    return band


__all__ = ["build_detector", "gpu_unavailable_reason", "with_preprocess"]
