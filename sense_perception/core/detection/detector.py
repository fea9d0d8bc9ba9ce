"""Object and pedestrian detector: bundled or custom ONNX model -> :class:`Detections` per image.

Pipeline: preprocess (resize + normalise into a reused blob) -> one onnxruntime call per batch ->
family decoder -> label mapping, source-pixel boxes, class-aware NMS, top-k. Optionally each image
is cut into tiles (``tiling.*``), detected tile by tile in the same batch and merged.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from ...config import check_settings, section_from_params, setting
from ...errors import ConfigError, ImageDecodeError, ModelError
from .calibration import ScoreCalibration, apply_maps, calibration_for
from .decoders import (FAMILIES, Candidates, Decoder, OutputLayout, canonical_family,
                       detector_models, family_input_defaults, make_decoder)
from .duplicates import DuplicateSettings, check_vehicle_labels, suppress_duplicates
from .ignore_regions import IgnoreRegionSettings
from .low_light import LowLightSettings, brighten_input
from ..imaging.frame_guard import MIN_FRAME_PX
from ..imaging.image_decode import VIEW_ORDERS, ImageView, SizeFloor, source_size
from .labels import LabelMap, build_label_map, output_labels
from ..runtime.model_prepare import prepare_detector_model
from ..runtime.openvino_session import PROVIDER as OPENVINO_PROVIDER
from ..runtime.model_registry import MODELS, InputSpec, get_model, read_labels, sha256_file
from .postprocess import finalize
from .recheck import recheck_nested
from .preprocess import Preprocessor, PreprocessSpec
from ..runtime.progress import loading
from ..runtime.session import OnnxModel, RuntimeConfig, RuntimeOptions, TensorSpec
from ..types import Detections

LOG = logging.getLogger(__name__)


def _input_fields(spec: InputSpec) -> dict[str, Any]:
    """The :class:`PreprocessSpec` fields a registry :class:`InputSpec` sets."""
    return dict(color=spec.color, resize=spec.resize, pad_value=spec.pad_value, scale=spec.scale,
                mean=tuple(spec.mean), std=tuple(spec.std))


NO_MODEL = "none"
#: Most detections per image (detector.max_detections): bounds the per-frame work, whose duplicate
#: step compares every pair of boxes, and the size of every output message.
MAX_DETECTIONS = 1000

# The default thresholds: the raw operating point chosen with ``sense-perception eval`` (PicoDet's
# labels 0.35, its cars 0.3, the pedestrian specialist 0.15; docs/detection-quality.md) mapped
# through the shipped score calibration, rounded to 3 decimals (test_calibration.py checks them).
CALIBRATED_DEFAULTS: dict[str, float] = {
    "score_threshold": 0.267,  # raw 0.35, PicoDet's pooled map (bicycle, bus, traffic light, ...)
    "class_thresholds.pedestrian": 0.339,  # raw 0.35
    "class_thresholds.car": 0.114,  # raw 0.3
    "class_thresholds.truck": 0.222,  # raw 0.35
    "pedestrian_threshold": 0.034,  # raw 0.15 of the specialist
}


@dataclass
class ClassThresholds:
    """``detector.class_thresholds.<label>``: the lowest score kept per driving label.

    Negative means ``detector.score_threshold``. They apply to the general model; the pedestrian
    specialist has a threshold of its own (``detector.pedestrian_threshold``). The defaults were
    chosen with ``sense-perception eval`` (docs/detection-quality.md) as raw scores (PicoDet's
    pedestrians 0.35, cars 0.3) and are given here as their calibrated values
    (``detector.calibrated_scores``), which keep the same detections.
    """

    pedestrian: float = setting(
        CALIBRATED_DEFAULTS["class_thresholds.pedestrian"], "lowest score of pedestrian kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    bicycle: float = setting(
        -1.0, "lowest score of bicycle kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    car: float = setting(
        CALIBRATED_DEFAULTS["class_thresholds.car"], "lowest score of car kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    motorcycle: float = setting(
        -1.0, "lowest score of motorcycle kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    bus: float = setting(
        -1.0, "lowest score of bus kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    truck: float = setting(
        CALIBRATED_DEFAULTS["class_thresholds.truck"], "lowest score of truck kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    traffic_light: float = setting(
        -1.0, "lowest score of traffic_light kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    stop_sign: float = setting(
        -1.0, "lowest score of stop_sign kept by the general model, 0..1; negative: "
        "detector.score_threshold",
        range=(-1.0, 1.0))
    animal: float = setting(
        -1.0, "lowest score of animal (detector.animals) kept by the general model, "
        "0..1; negative: detector.score_threshold",
        range=(-1.0, 1.0))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value > 1.0:
                raise ConfigError(f"detector.class_thresholds.{f.name} must be within 0..1 "
                                  f"(negative: detector.score_threshold), got {value}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @classmethod
    def unset(cls, **own: float) -> ClassThresholds:
        """Every label at ``detector.score_threshold`` but those given in ``own``."""
        return cls(**{**{f.name: -1.0 for f in fields(cls)}, **own})

    def of(self, label: str, default: float) -> float:
        """Threshold of ``label`` (``default`` for labels without one of their own)."""
        value = getattr(self, label, -1.0) if label in output_labels(animals=True) else -1.0
        return default if value < 0 else value


PREPROCESS_CHOICES = ("auto", "cpu", "gpu", "torch_cpu")


#: The bundled general model ``detector.model`` runs unless set otherwise.
DEFAULT_GENERAL_MODEL = "picodet_s_416"

#: The settings of a model of your own (``detector.model_path``), which a bundled model does not
#: read: :func:`use_bundled_model` drops them all.
CUSTOM_MODEL_SETTINGS = ("model_path", "model_sha256", "model_family", "labels_path")


def use_bundled_model(params: dict[str, Any], name: str) -> None:
    """Run bundled model ``name`` (``detect`` and ``eval``'s ``--model``): set ``detector.model``
    in the flattened ``params`` and drop the config's model of your own with every setting of it
    (:data:`CUSTOM_MODEL_SETTINGS`). Only ``model_path`` was dropped: its ``model_sha256`` then
    refused the run ("model_sha256 is set but model_path is empty", a key the user had not
    touched), its ``labels_path`` and ``model_family`` were left over for the bundled model."""
    params["detector.model"] = name
    for key in CUSTOM_MODEL_SETTINGS:
        params.pop(f"detector.{key}", None)


@dataclass
class DetectorConfig:
    """Settings of :class:`ObjectDetector`; parameters ``detector.*`` of the object_detector node.

    Attributes:
        model: bundled general model name (``picodet_s_416``, ``yolox_nano``); with model_path
            set, only the default is accepted (model_path replaces it).
        pedestrian_model: bundled pedestrian specialist (``person_detection_0203``) that owns the
            ``pedestrian`` label: the general model's pedestrians are then dropped, the two
            models' outputs merged into one result per image. ``none``: the general model alone.
        pedestrian_threshold: lowest score kept of the specialist's pedestrians (a threshold of
            its own, since it is another model: with calibrated scores a value means the same
            precision as for the general model).
        pedestrian_band: [top, bottom] rows, as fractions of the image height, that the
            specialist sees at high resolution (where far pedestrians stand); [] = it sees the
            whole frame at its own input size instead
            (:mod:`~sense_perception.core.detection.band`).
        pedestrian_band_input: [width, height] of the specialist's network on the band, where
            it runs on OpenVINO (onnxruntime cuts the band into tiles of its fixed 864x480).
        model_path: your own ONNX file; needs labels_path (and preferably model_family).
        model_sha256: hex sha256 that model_path must have, checked before loading ("" = not
            checked; bundled models are always checked against the registry).
        model_family: decoder family ``gfl`` | ``yolox`` | ``yolov8`` | ``rtdetr`` (aliases picodet,
            nanodet, yolo11); "" detects it from the output shapes.
        labels_path: class names of a custom model, one per line, in output order.
        score_threshold: minimum confidence kept (inclusive), 0..1, for every label without a
            threshold of its own in ``class_thresholds``.
        class_thresholds: per-label minimum confidence (``detector.class_thresholds.<label>``).
        duplicates: nested and cross-class vehicle duplicates dropped after the models' merge
            (``detector.duplicates.*``, :mod:`~sense_perception.core.detection.duplicates`).
        ignore_regions: per camera topic, image areas where nothing is reported
            (``detector.ignore_regions.*``, applied by the node and the replay per camera:
            :mod:`~sense_perception.core.detection.ignore_regions`).
        low_light: dark frames smoothed and contrast-equalised before detection
            (``detector.low_light.*``, :mod:`~sense_perception.core.detection.low_light`).
        nms_iou: IoU above which a lower-scored box of the same label is suppressed, 0..1.
        max_detections: most detections per image after NMS, 1 to :data:`MAX_DETECTIONS`; every
            output of a frame (detections, ROIs, annotations...) holds at most this many.
        keep_other_classes: report classes outside the driving label set (under their own
            snake_case names) instead of dropping them.
        animals: report COCO's animal classes (dog, horse, sheep, cow, cat, bird, bear,
            elephant, zebra, giraffe) as one label, ``animal`` (after the driving labels; sent to
            Autoware as ANIMAL 8). Off by default (docs/detection-quality.md#animals).
        batching: try to run several images in one inference (verified at load, else one by one).
        max_batch: most images per inference call.
        input_width, input_height: network input size for models whose input size is dynamic
            (0 = read it from the model).
        resize: override the resize mode: ``stretch`` | ``letterbox`` | ``letterbox_center``
            ("" = model/family default).
        color_order: override the channel order the network wants: ``rgb`` | ``bgr``.
        pixel_scale: override the factor applied to 0..255 pixels before mean/std (0 = default).
        mean, std: override per-channel normalisation in the network's channel order ([] = default).
        pad_value: override the letterbox padding value, 0..255 (negative = default).
        interpolation: override the resize filter: ``linear`` | ``cubic`` | ``area`` | ``nearest``.
        score_activation: ``none`` if the model outputs probabilities, ``sigmoid`` for logits.
        calibrated_scores: report each bundled model's scores mapped through its shipped
            calibration (:mod:`~sense_perception.core.detection.calibration`), so that a score is
            close to the precision of detections at that score whichever model found them; every
            threshold is then on that calibrated scale. False: the models' raw scores, and the
            thresholds compare raw scores (the raw defaults were score_threshold 0.35,
            class_thresholds.car 0.3, pedestrian_threshold 0.15). Custom models (model_path)
            have no calibration: their scores stay raw either way.
        cell_offset: GFL anchor-point offset in cells (negative = layout default: 0.5 for
            split outputs as PicoDet, 0.0 for NanoDet-Plus single output).
        reduced_jpeg_decode: let nodes and replay decode a JPEG CompressedImage at 1/2, 1/4 or
            1/8 scale (libjpeg's DCT scaling, 2-3x faster) when that is still at least the
            network's resized input; boxes stay in full-image pixels. Off (or with tiling on):
            always full resolution. The detections are close to, not bit-identical with, those
            of a full decode.
        preprocess: where nodes, replay and ``detect`` pre-process frames
            (:func:`~sense_perception.core.detection.detector_setup.build_detector`): ``auto`` (the GPU
            when torch sees CUDA and the model runs on the CUDA or TensorRT provider, without
            tiling; else the CPU), ``cpu`` (numpy/OpenCV), ``gpu`` (torch on the GPU with IO
            binding; refused where it cannot run) or ``torch_cpu`` (the torch path on the CPU, to
            check its results on a machine without a GPU; slower).
    """

    model: str = DEFAULT_GENERAL_MODEL
    pedestrian_model: str = "person_detection_0203"
    pedestrian_threshold: float = setting(
        CALIBRATED_DEFAULTS["pedestrian_threshold"],
        range=(0.0, 1.0))
    pedestrian_band: list[float] = setting(
        [0.25, 0.75],
        range="[top, bottom] with 0 <= top < bottom <= 1, or [] (the whole frame)")
    pedestrian_band_input: list[int] = setting(
        [1280, 384],
        range="[width, height] in pixels, each 32..4096")
    model_path: str = ""
    model_sha256: str = ""
    model_family: str = setting(
        "",
        range=("", "gfl", "yolox", "yolov8", "rtdetr", "picodet", "nanodet", "yolo11"))
    labels_path: str = ""
    score_threshold: float = setting(CALIBRATED_DEFAULTS["score_threshold"], range=(0.0, 1.0))
    nms_iou: float = setting(0.5, range=(0.0, 1.0))
    max_detections: int = setting(
        100, "most detections per image after NMS, 1..1000 (the duplicate step compares "
        "every pair: unbounded, a frame's candidates took seconds and gigabytes)",
        range=(1, MAX_DETECTIONS))
    keep_other_classes: bool = False
    animals: bool = False
    batching: bool = True
    max_batch: int = setting(8, range=(1, 64))
    input_width: int = setting(
        0, "network input width for models with a dynamic input size (0: read it from the "
        "model)",
        range=(0, 8192))
    input_height: int = setting(
        0, "network input height for models with a dynamic input size (0: read it from the "
        "model)",
        range=(0, 8192))
    resize: str = setting("", range=("", "stretch", "letterbox", "letterbox_center"))
    color_order: str = setting("", range=("", "rgb", "bgr"))
    pixel_scale: float = setting(
        0.0,
        range="a factor; 0 or negative: the model's or family's default")
    mean: list[float] = setting(
        [], "per-channel mean subtracted before dividing by std (custom models); [] = the "
        "model's default",
        range="one value per channel, in the network's channel order; [] = the model's")
    std: list[float] = setting(
        [], "per-channel standard deviation the input is divided by (custom models); [] = the"
        " model's default",
        range="one value per channel, in the network's channel order; [] = the model's")
    pad_value: float = setting(-1.0, range="0..255; negative: the model's or family's default")
    interpolation: str = setting("", range=("", "linear", "cubic", "area", "nearest"))
    score_activation: str = setting("none", range=("none", "sigmoid"))
    cell_offset: float = setting(-1.0, range="0..1 cells; negative: the layout's default")
    reduced_jpeg_decode: bool = True
    preprocess: str = setting("auto", range=("auto", "cpu", "gpu", "torch_cpu"))
    calibrated_scores: bool = True
    class_thresholds: ClassThresholds = field(default_factory=ClassThresholds)
    duplicates: DuplicateSettings = field(default_factory=DuplicateSettings)
    ignore_regions: IgnoreRegionSettings = field(default_factory=IgnoreRegionSettings)
    low_light: LowLightSettings = field(default_factory=LowLightSettings)

    def __post_init__(self) -> None:
        for key in ("score_threshold", "nms_iou", "pedestrian_threshold"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"detector.{key} must be within 0..1, got {value}")
        if not 1 <= self.max_detections <= MAX_DETECTIONS:
            raise ConfigError(f"detector.max_detections must be within 1..{MAX_DETECTIONS}, got "
                              f"{self.max_detections} (0 no longer means no limit)")
        if self.cell_offset > 1.0:  # 1e300 overflowed the anchor points: every box NaN, dropped
            raise ConfigError(f"detector.cell_offset must be within 0..1 cells (negative: the "
                              f"layout's default), got {self.cell_offset}")
        for key in ("input_width", "input_height"):
            if getattr(self, key) < 0:
                raise ConfigError(f"detector.{key} must be >= 0, got {getattr(self, key)}")
        if self.max_batch < 1:
            raise ConfigError(f"detector.max_batch must be >= 1, got {self.max_batch}")
        if self.model_sha256:
            if not self.model_path:
                raise ConfigError("detector.model_sha256 is set but detector.model_path is empty; "
                                  "bundled models are checked against their own hashes: clear it")
            if not re.fullmatch(r"[0-9a-fA-F]{64}", self.model_sha256):
                raise ConfigError(f"detector.model_sha256 must be 64 hex digits (sha256sum's "
                                  f"output), got {self.model_sha256!r}")
        if self.class_thresholds.animal >= 0 and not (
                self.animals or (self.keep_other_classes and self.model_path)):
            # no animal label can come out: the threshold would be taken and never used. Only a
            # model of your own may have a class called `animal` (kept_other_classes keeps it);
            # the bundled models' animals are COCO's dog, horse...: kept under those names (R53)
            raise ConfigError(
                f"detector.class_thresholds.animal is set ({self.class_thresholds.animal}) but "
                "detector.animals is false, so no animal is reported and the threshold is never "
                "used (keep_other_classes reports the bundled models' animals under their own "
                "names, dog, horse...); fix: set detector.animals: true, or "
                "class_thresholds.animal: -1")
        for key, what in (("labels_path", "labels"), ("model_family", "decoder family")):
            if getattr(self, key) and not self.model_path:
                # read only for a model of your own: the bundled model ran with its own, the
                # setting taken without a word (R75)
                raise ConfigError(
                    f"detector.{key} is set ({getattr(self, key)!r}) but detector.model_path is "
                    f"empty, so the bundled model detector.model ({self.model}) runs with its own "
                    f"{what} and this one would be ignored; fix: clear detector.{key}, or set "
                    "detector.model_path to the model it belongs to")
        if self.model_path and self.model != DEFAULT_GENERAL_MODEL:
            # model_path replaces the bundled model: a bundled name chosen beside it ran nowhere,
            # taken without a word
            raise ConfigError(
                f"detector.model is set ({self.model!r}) but detector.model_path "
                f"({self.model_path}) replaces the bundled model, so {self.model} would never run; "
                f"fix: leave detector.model at {DEFAULT_GENERAL_MODEL} with model_path, or clear "
                "detector.model_path to run the bundled model")
        if self.model_path and not self.labels_path:
            raise ConfigError("detector.model_path is set but detector.labels_path is empty; fix: "
                              "give the labels file of that model (one class name per line)")
        if self.preprocess not in PREPROCESS_CHOICES:
            raise ConfigError(f"detector.preprocess must be one of {', '.join(PREPROCESS_CHOICES)}, "
                              f"got {self.preprocess!r}")
        canonical_family(self.model_family)  # reject unknown names early
        band = self.pedestrian_band
        if band and (len(band) != 2 or not 0.0 <= band[0] < band[1] <= 1.0):
            raise ConfigError(f"detector.pedestrian_band must be [top, bottom] with "
                              f"0 <= top < bottom <= 1 (fractions of the image height) or [], "
                              f"got {list(band)}")
        size = self.pedestrian_band_input
        if len(size) != 2 or min(size) < 32 or max(size) > 4096:
            raise ConfigError(f"detector.pedestrian_band_input must be [width, height] in pixels, "
                              f"each 32..4096, got {list(size)}")
        specialists = detector_models()
        if self.pedestrian_model != NO_MODEL and self.pedestrian_model not in specialists:
            raise ConfigError(f"detector.pedestrian_model {self.pedestrian_model!r} is not a "
                              f"bundled detector; use one of {', '.join(specialists)} or "
                              f"{NO_MODEL!r} (the general model finds pedestrians itself)")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @classmethod
    def from_params(cls, params: dict, source: str = "config") -> DetectorConfig:
        """Read the ``detector.*`` keys of flattened node parameters (and
        ``detector.class_thresholds.*``)."""
        config = section_from_params(cls, params, "detector.", source)
        config.class_thresholds = section_from_params(ClassThresholds, params,
                                                      "detector.class_thresholds.", source)
        config.duplicates = section_from_params(DuplicateSettings, params,
                                                "detector.duplicates.", source)
        config.ignore_regions = section_from_params(IgnoreRegionSettings, params,
                                                    "detector.ignore_regions.", source)
        config.low_light = section_from_params(LowLightSettings, params, "detector.low_light.",
                                               source)
        return config

    def threshold(self, label: str) -> float:
        """Lowest score kept for ``label``."""
        return self.class_thresholds.of(label, self.score_threshold)


def _tiling_from_params(params: dict, source: str) -> Any:
    try:
        from . import tiling
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.tiling":
            raise
        if any(k.startswith("tiling.") for k in params):
            raise ConfigError(f"tiling.* parameters in {source}, but this build has no tiling "
                              "module") from exc
        return None
    return section_from_params(tiling.TilingConfig, params, "tiling.", source)


class ResolvedModel(NamedTuple):
    """Where a detector's model comes from and what the registry knows of it."""

    path: Path
    name: str
    labels: Path
    input: InputSpec | None  # None for a custom model
    family: str  # "" for a custom model without detector.model_family
    batchable: bool  # False where the outputs have no batch axis
    openvino: Path | None  # the OpenVINO IR of the same weights (verified), if the model has one
    openvino_int8: bool = False  # ``openvino`` is the IR's 8-bit (quantised) form


def _resolve_model(cfg: DetectorConfig, int8: bool = True) -> ResolvedModel:
    """The weights, labels and registry facts of the model the config names; ``int8``: the 8-bit
    form of its OpenVINO IR where the registry has one (``runtime.openvino_int8``)."""
    if cfg.model_path:
        path, labels = Path(cfg.model_path), Path(cfg.labels_path)
        if not path.is_file():
            raise ModelError(f"detector.model_path {path} does not exist; fix: point it at an "
                             "ONNX file or clear it to use a bundled model")
        if not labels.is_file():
            raise ModelError(f"detector.labels_path {labels} does not exist; fix: give the "
                             "model's class names, one per line")
        if cfg.model_sha256:
            digest = sha256_file(path)
            if digest != cfg.model_sha256.lower():
                raise ModelError(f"detector.model_path {path} has sha256 {digest}, but "
                                 f"detector.model_sha256 expects {cfg.model_sha256.lower()}: the "
                                 "file was altered or swapped; fix: restore the intended model, or "
                                 "set model_sha256 to the new file's sha256sum if the change is "
                                 "intended")
        return ResolvedModel(path, path.name, labels, None, canonical_family(cfg.model_family),
                             True, None)
    spec = get_model(cfg.model)
    if spec.input is None or spec.family not in FAMILIES:
        raise ConfigError(f"detector.model '{cfg.model}' is a {spec.family} model, not an "
                          f"object detector; use one of {', '.join(detector_models())}")
    labels = Path(str(resources.files("sense_perception") / (spec.labels_resource or "")))
    openvino = None
    form = "openvino_int8" if int8 and "openvino_int8_xml" in spec.variants else "openvino"
    if f"{form}_xml" in spec.variants:
        spec.verified_variant(f"{form}_bin")  # read by OpenVINO beside the .xml
        openvino = spec.verified_variant(f"{form}_xml")
    return ResolvedModel(spec.verified_path(), spec.name, labels, spec.input, spec.family,
                         bool(spec.extra.get("batch", True)), openvino, form == "openvino_int8")


class ObjectDetector:
    """Detects driving-relevant objects (pedestrians, vehicles, traffic lights, stop signs).

    Not thread-safe by design of its reused buffers; :meth:`detect` holds a lock.

    Args:
        config: the ``detector.*`` settings.
        runtime: providers, threads, device.
        tiling: ``tiling.*`` settings (None or mode off: the full frame only).
        owned_labels: the labels this detector reports (others are dropped); None: every label.
        excluded_labels: labels it never reports (owned by another model). Detectors owning
            disjoint labels make up a
            :class:`~sense_perception.core.detection.multi_model.MultiModelDetector`.
        openvino_input: (width, height) to reshape the network to where the model runs on
            OpenVINO from its IR (other runtimes keep the model's own input size).
        input_resize: (width, height) the network's ONNX graph is rewritten to take, same
            weights (:func:`~sense_perception.core.runtime.model_resize.resize_input`; None: its
            own size). Used for the crops of ``detector.duplicates.nested_recheck_input``.

    Attributes:
        label_names: output label names; ``Detections.labels`` index into it.
        provider: execution provider actually running the model.
        fallback_reasons: providers skipped and why.
        batch_dynamic: True when several images go through one inference call.
        notes: what model preparation did (initializer cleanup, batching verification).
        timings: milliseconds of the last :meth:`detect` call per stage.
    """

    def __init__(self, config: DetectorConfig | None = None, runtime: RuntimeOptions | None = None,
                 tiling: Any = None, owned_labels: Sequence[str] | None = None,
                 excluded_labels: Sequence[str] = (),
                 openvino_input: tuple[int, int] | None = None,
                 input_resize: tuple[int, int] | None = None) -> None:
        self.config = config or DetectorConfig()
        self.tiling = tiling
        self._lock = threading.Lock()
        cfg = self.config
        resolved = _resolve_model(cfg, (runtime or RuntimeOptions()).openvino_int8)
        self.model_name, labels_path, registry_input = resolved.name, resolved.labels, resolved.input
        classes = read_labels(labels_path)
        if not classes:
            raise ModelError(f"labels file {labels_path} names no class")
        self.labels_source = str(labels_path)
        prepared = prepare_detector_model(resolved.path, runtime, self.model_name,
                                          cfg.batching and resolved.batchable, resolved.openvino,
                                          openvino_input if input_resize is None else input_resize,
                                          input_resize)
        self._model = prepared.model
        # True when OpenVINO reshaped the network to ``openvino_input``, or its graph was
        # rewritten to ``input_resize``.
        self.reshaped = input_resize is not None or (
            openvino_input is not None and self._model.provider == OPENVINO_PROVIDER)
        # True when OpenVINO runs the network's 8-bit form (runtime.openvino_int8).
        self.int8 = resolved.openvino_int8 and self._model.provider == OPENVINO_PROVIDER
        self.batch_dynamic = prepared.batch_dynamic
        self.notes = prepared.notes
        if self.int8:
            self.notes = [*self.notes, f"{self.model_name} runs its 8-bit form on OpenVINO "
                                       "(runtime.openvino_int8; false: the original weights)"]
        width, height, self._input = self._input_geometry(registry_input)
        self._decoder = self._build_decoder(resolved.family, width, height, len(classes))
        self.family = self._decoder.family
        self.preprocess_spec = self._preprocess_spec(registry_input, width, height)
        self._label_map: LabelMap = build_label_map(classes, cfg.keep_other_classes,
                                                    self.labels_source, cfg.animals)
        self.label_names: list[str] = list(self._label_map.names)
        check_vehicle_labels(cfg.duplicates, self.label_names, self.model_name)
        if owned_labels is not None or excluded_labels:
            keep = [n for n in (owned_labels if owned_labels is not None else self.label_names)
                    if n not in set(excluded_labels)]
            self._label_map = self._label_map.restricted(keep, self.model_name)
        self.owned_labels = tuple(self._label_map.reported())
        self.calibration = self._calibration(resolved)
        self._calibration_ab = (None if self.calibration is None
                                else self.calibration.per_label(self.label_names))
        # Per output label, the lowest (calibrated) score kept; the decoder pre-filters the raw
        # scores at the lowest raw score any of them maps back to.
        self._min_scores = np.array([cfg.threshold(n) for n in self.label_names], np.float32)
        self._min_score = float(min(cfg.threshold(n) for n in self.owned_labels))
        self._decode_threshold = float(min(self.raw_threshold(n) for n in self.owned_labels))
        self._max_batch = cfg.max_batch if self.batch_dynamic else 1
        self._pre = Preprocessor(self.preprocess_spec, self._max_batch)
        self.timings: dict[str, float] = {}
        # The model at ``nested_recheck_input`` for the nested-box re-check's crops (None: this
        # model at its own size detects them).
        self._crop_model = self._crop_detector(runtime, width, height)
        LOG.info("%s (%s) on %s, input %dx%d, batching %s", self.model_name, self.family,
                 self.provider, width, height, "on" if self.batch_dynamic else "off")

    def _crop_detector(self, runtime: RuntimeOptions | None, width: int,
                       height: int) -> ObjectDetector | None:
        """The same model at ``detector.duplicates.nested_recheck_input`` for the re-check's
        crops (a model whose input size is not fixed: at that size as it is, no graph rewrite),
        or None where the check is off, the side is the model's own, or the model cannot
        run at that size (said in a warning and in :attr:`notes`: its crops are then detected at
        its own input size, as with ``nested_recheck_input: 0``)."""
        dup = self.config.duplicates
        side = dup.nested_recheck_input
        if not dup.nested_recheck_crops or not side or (side, side) == (width, height):
            return None
        # A model whose input size is not fixed (its size given in detector.input_width and
        # input_height) takes the crops' size as it is: there is no graph to rewrite, and
        # the rewrite refused it, the warning naming the settings already given as the fix.
        dynamic = not all(self._input.shape[2:4])
        config = replace(self.config, input_width=side if dynamic else 0,
                         input_height=side if dynamic else 0,
                         duplicates=replace(dup, nested_recheck_crops=0, nested_recheck_input=0))
        try:
            crop = ObjectDetector(config, runtime, owned_labels=self.owned_labels,
                                  input_resize=None if dynamic else (side, side))
        except Exception as exc:  # ModelError, or onnxruntime's own error from the first run
            why = (f"detector.duplicates.nested_recheck_input {side} is not applied: "
                   f"{self.model_name} cannot run at {side}x{side} "
                   f"({str(exc).splitlines()[0][:300]}); its nested-box crops are detected at its "
                   f"own {width}x{height}; set nested_recheck_input to 0 to say so")
            LOG.warning("%s", why)
            self.notes = [*self.notes, why]
            return None
        self.notes = [*self.notes, f"nested-box crops detected at {side}x{side}"]
        return crop

    def _calibration(self, resolved: ResolvedModel) -> ScoreCalibration | None:
        """The shipped calibration this detector applies (None: raw scores, and why in notes)."""
        if not self.config.calibrated_scores:
            return None
        spec = MODELS.get(self.model_name) if resolved.input is not None else None
        found = calibration_for(spec.name, spec.sha256) if spec is not None else None
        if found is None:
            self.notes = [*self.notes, f"{self.model_name} has no shipped score calibration: its "
                                       "scores and thresholds are raw"]
            LOG.warning("%s has no shipped score calibration: its scores and thresholds are raw",
                        self.model_name)
        return found

    def raw_threshold(self, label: str) -> float:
        """The raw model score ``label``'s threshold stands for (the threshold itself without
        calibration)."""
        threshold = self.config.threshold(label)
        if self.calibration is None:
            return threshold
        return self.calibration.raw_threshold(label, threshold)

    def calibrate(self, candidates: Candidates) -> Candidates:
        """``candidates`` with their raw scores mapped through the model's calibration (the
        same candidates where there is none)."""
        if self._calibration_ab is None or not len(candidates.scores):
            return candidates
        labels = self._label_map.lookup[candidates.class_ids]
        return Candidates(candidates.boxes,
                          apply_maps(candidates.scores, labels, *self._calibration_ab),
                          candidates.class_ids)

    @classmethod
    def from_params(cls, params: dict, source: str = "config") -> ObjectDetector:
        """Build from flattened node parameters (``detector.*``, ``runtime.*``, ``tiling.*``)."""
        config = DetectorConfig.from_params(params, source)
        runtime = RuntimeConfig.from_params(params, source).options()
        return cls(config, runtime, _tiling_from_params(params, source))

    @property
    def provider(self) -> str:
        """Execution provider running the model (``CPUExecutionProvider``, ``OpenVINO (CPU)``...)."""
        return self._model.provider

    @property
    def providers(self) -> dict[str, str]:
        """Execution provider per model: this detector's one model."""
        return {self.model_name: self.provider}

    @property
    def session(self) -> Any:
        """The onnxruntime ``InferenceSession`` running the network; None where it runs on
        OpenVINO (read by :class:`~.gpu_preprocess.DeviceDetector` to bind its input)."""
        return self._model.session if isinstance(self._model, OnnxModel) else None

    @property
    def output_names(self) -> list[str]:
        """The network's output names, in the order :meth:`postprocess` takes the outputs."""
        return list(self._model.output_names)

    @property
    def input_tensor(self) -> TensorSpec:
        """The network's one input (name, shape, dtype)."""
        return self._input

    @property
    def max_batch(self) -> int:
        """Most images per inference call (1 where the model has no batch axis)."""
        return self._max_batch

    @property
    def device_id(self) -> int:
        """GPU index the CUDA and TensorRT providers run on (``runtime.device_id``)."""
        return int(self._model.options.device_id)

    @property
    def min_score(self) -> float:
        """The lowest score any reported label keeps (LabelInfo.threshold)."""
        return self._min_score

    @property
    def fallback_reasons(self) -> list[str]:
        return self._model.fallback_reasons

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input (width, height)."""
        return self.preprocess_spec.width, self.preprocess_spec.height

    @property
    def crop_detector(self) -> ObjectDetector | None:
        """The same model at ``detector.duplicates.nested_recheck_input`` that the nested-box
        re-check's crops go through (None: this model at its own size, or no re-check)."""
        return self._crop_model

    def run_blank(self, batch: int) -> None:
        """The network once on ``batch`` blank inputs at its input size: a node's warm-up of an
        input shape on a GPU provider, where the first run at each shape builds (R81)."""
        width, height = self.input_size
        with self._lock:
            self._model.run({self._input.name: np.zeros((int(batch), 3, height, width),
                                                        self._input.dtype)})

    @property
    def tiling_enabled(self) -> bool:
        """True when images are cut into tiles (``tiling.mode`` other than ``off``)."""
        return self.tiling is not None and getattr(self.tiling, "mode", "off") != "off"

    @property
    def preprocess_device(self) -> str:
        """Where frames are pre-processed: ``cpu`` here (see ``DeviceDetector`` for torch)."""
        return "cpu"

    @property
    def decode_floor(self) -> SizeFloor | None:
        """What a JPEG frame may be decoded down to for this detector (the ``size_floor`` of
        :func:`~sense_perception.core.imaging.frame_guard.safe_decode`): the resized network input, or
        None (full resolution) when ``reduced_jpeg_decode`` is off or tiling is on (tiles need
        the camera's full resolution)."""
        if not self.config.reduced_jpeg_decode or self.tiling_enabled:
            return None
        return self._resized_size

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        nw, nh, _ = self._pre.geometry(width, height)
        return nw, nh

    def _input_geometry(self, registry_input: InputSpec | None) -> tuple[int, int, TensorSpec]:
        inputs = self._model.inputs
        if len(inputs) != 1:
            raise ModelError(f"{self.model_name} has {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}); only single-image-input "
                             "detectors are supported (export without in-model post-processing)")
        spec = inputs[0]
        if len(spec.shape) != 4 or spec.shape[1] not in (3, None) or spec.shape[0] not in (1, None):
            raise ModelError(f"{self.model_name} input '{spec.name}' has shape {list(spec.shape)}; "
                             "expected NCHW [1 or dynamic batch, 3, height, width]")
        height = spec.shape[2] or self.config.input_height
        width = spec.shape[3] or self.config.input_width
        if not width or not height:
            raise ConfigError(f"{self.model_name} has a dynamic input size; set "
                              "detector.input_width and detector.input_height")
        for name, got, want in (("width", width, self.config.input_width),
                                ("height", height, self.config.input_height)):
            if want and want != got:
                raise ConfigError(f"detector.input_{name} {want} disagrees with the model's fixed "
                                  f"input {name} {got}; fix: set it to 0")
        # When OpenVINO reshaped the network on purpose, the registry's size no longer applies.
        if registry_input is not None and not self.reshaped \
                and (registry_input.width, registry_input.height) != (width, height):
            raise ModelError(f"{self.model_name}: registry says {registry_input.width}x"
                             f"{registry_input.height} input, model has {width}x{height}")
        return int(width), int(height), spec

    def _build_decoder(self, family: str, width: int, height: int, num_classes: int) -> Decoder:
        # Shapes come from a real run: exporters often leave output axes symbolic.
        zeros = np.zeros((1, 3, height, width), self._input.dtype)
        # a node's load is bounded (warm_up_timeout_s): a first run that hangs is named (R85)
        loading(self.model_name, f"its first run at load, on a blank {width}x{height} input on "
                                 f"{self.provider} (reads its output shapes)")
        outputs = self._model.run({self._input.name: zeros})
        layout = OutputLayout(
            shapes=tuple(tuple(int(d) for d in o.shape) for o in outputs),
            names=tuple(self._model.output_names), input_width=width, input_height=height,
            num_classes=num_classes, labels_source=self.labels_source,
            model_name=self.model_name, score_activation=self.config.score_activation,
            options={"cell_offset": self.config.cell_offset})
        return make_decoder(family, layout)

    def _preprocess_spec(self, registry_input: InputSpec | None, width: int,
                         height: int) -> PreprocessSpec:
        cfg = self.config
        base = family_input_defaults(self.family)
        if registry_input is not None:
            base.update(_input_fields(registry_input))
        overrides = {"resize": cfg.resize, "color": cfg.color_order,
                     "interpolation": cfg.interpolation, "scale": cfg.pixel_scale or None,
                     "mean": tuple(cfg.mean) or None, "std": tuple(cfg.std) or None,
                     "pad_value": cfg.pad_value if cfg.pad_value >= 0 else None}
        base.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return PreprocessSpec(width=width, height=height, **base)

    def detect_one(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR uint8 image."""
        return self.detect([image])[0]

    def detect(self, images: Sequence[np.ndarray | ImageView]) -> list[Detections]:
        """Detect objects in BGR uint8 HxWx3 images of any sizes.

        An entry may also be an :class:`~sense_perception.core.imaging.image_decode.ImageView` (from
        :func:`~sense_perception.core.imaging.image_decode.decode_view`): pixels in another channel order,
        read where they lie without a full-frame conversion; the detections are those of the same
        image in BGR (identical for 3-channel views; for 4-channel ones within a few thousandths
        of a pixel, since OpenCV's 4-channel resize kernel may round a pixel differently).

        Images share inference calls (up to ``max_batch``) when the model allows a batch. With
        tiling on, each image is cut into tiles that are detected together and merged.

        Returns:
            One :class:`Detections` per image, boxes in that image's pixels, best score first.

        Raises:
            ImageDecodeError: an entry is not a non-empty BGR uint8 HxWx3 array or a valid
                ImageView.
        """
        for index, image in enumerate(images):
            check_image(index, image)
        images = [brighten_input(image, self.config.low_light) for image in images]
        with self._lock:
            self.timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
            if not self.tiling_enabled:
                found = self._detect_images(list(images))
            else:
                found = self._detect_tiled(list(images))
            settings = self.config.duplicates
            found = [suppress_duplicates(d, self.label_names, settings) for d in found]
            return recheck_nested(images, found, settings.nested_recheck_crops, self._on_crops,
                                  settings.nested_containment)

    def detect_crops(self, crops: list[np.ndarray | ImageView]) -> list[Detections]:
        """The model alone on image crops, boxes in crop pixels: no low-light, duplicates or
        re-detection step (``detector.duplicates.nested_recheck_crops`` of the GPU path), at
        ``nested_recheck_input`` where that is set."""
        with self._lock:
            self.timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
            return self._on_crops(list(crops))

    def _on_crops(self, crops: list[np.ndarray | ImageView]) -> list[Detections]:
        """The re-check's crops through the model at its crop size (lock held by the caller);
        their time counts in :attr:`timings`."""
        if self._crop_model is None:
            return self._detect_images(crops)
        found = self._crop_model.detect_crops(crops)
        for stage, ms in self._crop_model.timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + ms
        return found

    def _detect_tiled(self, images: list[np.ndarray | ImageView]) -> list[Detections]:
        from . import tiling as tiling_mod

        crops: list[np.ndarray | ImageView] = []
        plans = []
        for image in images:
            height, width = _pixels(image).shape[:2]  # a reduced decode is tiled as it is
            tiles = tiling_mod.plan_tiles(width, height, self.tiling)
            plans.append(tiles)
            if isinstance(image, ImageView):
                crops.extend(ImageView(image.array[y0:y1, x0:x1], image.order)
                             for x0, y0, x1, y1 in tiles)
            else:
                crops.extend(image[y0:y1, x0:x1] for x0, y0, x1, y1 in tiles)
        per_crop = self._detect_images(crops)
        start = time.perf_counter()
        results, cursor = [], 0
        for image, tiles in zip(images, plans, strict=True):
            per_tile = per_crop[cursor:cursor + len(tiles)]
            cursor += len(tiles)
            for dets, (x0, y0, _, _) in zip(per_tile, tiles, strict=True):
                dets.boxes += np.array([x0, y0, x0, y0], np.float32)  # tile -> image pixels
            merged = tiling_mod.merge_tile_detections(per_tile, tiles, _pixels(image).shape,
                                                      self.tiling,
                                                      self.config.nms_iou)
            if self.config.max_detections and len(merged) > self.config.max_detections:
                merged = merged.select(np.argsort(-merged.scores, kind="stable")
                                       [:self.config.max_detections])
            if isinstance(image, ImageView) and image.full_size is not None:
                width, height = image.full_size
                merged.boxes *= np.array([width / image.shape[1], height / image.shape[0]] * 2,
                                         np.float32)
            results.append(merged)
        self.timings["postprocess"] += (time.perf_counter() - start) * 1e3
        return results

    def postprocess(self, outputs: Sequence[np.ndarray], images: Sequence[Any],
                    transforms: np.ndarray) -> list[Detections]:
        """Model outputs of a batch of ``images`` -> one :class:`Detections` per image: decoding,
        score calibration, label mapping, per-label thresholds, source-pixel boxes, NMS, top-k."""
        cfg = self.config
        candidates = [self.calibrate(c) for c in self._decoder.decode(outputs,
                                                                      self._decode_threshold)]
        return [finalize(cand, transform, *source_size(image), self._label_map, cfg.nms_iou,
                         cfg.max_detections, self._decoder.needs_nms, self._min_scores)
                for image, cand, transform in zip(images, candidates, transforms, strict=True)]

    def _detect_images(self, images: list[np.ndarray | ImageView]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), self._max_batch):
            chunk = images[start:start + self._max_batch]
            t0 = time.perf_counter()
            blob, transforms = self._pre(chunk)
            if blob.dtype != self._input.dtype:
                blob = blob.astype(self._input.dtype)
            t1 = time.perf_counter()
            outputs = self._model.run({self._input.name: blob})
            t2 = time.perf_counter()
            results.extend(self.postprocess(outputs, chunk, transforms))
            t3 = time.perf_counter()
            self.timings["preprocess"] += (t1 - t0) * 1e3
            self.timings["inference"] += (t2 - t1) * 1e3
            self.timings["postprocess"] += (t3 - t2) * 1e3
        return results


def _pixels(image: np.ndarray | ImageView) -> np.ndarray:
    return image.array if isinstance(image, ImageView) else image


def check_image(index: int, image: Any) -> None:
    """Raise :class:`ImageDecodeError` naming ``images[index]`` unless ``image`` is a BGR uint8
    HxWx3 array or a valid :class:`ImageView` of at least :data:`MIN_FRAME_PX` pixels a side."""
    _check_type(index, image)
    size = source_size(image)
    # the decoder's least frame, which every camera frame passes (replay, nodes): an image file
    # smaller than that (`detect`, `eval`) is named, not detected on as a speck
    if min(size) < MIN_FRAME_PX:
        raise ImageDecodeError(f"images[{index}]", f"a {size[0]}x{size[1]} px image is smaller "
                                                   f"than the {MIN_FRAME_PX}x{MIN_FRAME_PX} px a "
                                                   "detector takes")


def _check_type(index: int, image: Any) -> None:
    if isinstance(image, ImageView):
        array, order, full_size = image
        if full_size is not None and (not isinstance(full_size, tuple) or len(full_size) != 2 or
                                      not all(isinstance(v, int) and v > 0 for v in full_size)):
            raise ImageDecodeError(f"images[{index}].full_size", f"expected (width, height) "
                                   f"positive integers or None, got {full_size!r}")
        if order not in VIEW_ORDERS:
            raise ImageDecodeError(f"images[{index}].order", f"{order!r} is not one of "
                                                            f"{', '.join(VIEW_ORDERS)}")
        if (not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3
                or array.shape[2] != len(order) or 0 in array.shape):
            shape = getattr(array, "shape", None)
            raise ImageDecodeError(f"images[{index}].array", f"expected a uint8 HxWx{len(order)} "
                                   f"array for order {order!r}, got {type(array).__name__} "
                                   f"of shape {shape}")
        return
    if not isinstance(image, np.ndarray):
        raise ImageDecodeError(f"images[{index}]", f"expected a numpy array, got "
                                                  f"{type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ImageDecodeError(f"images[{index}]", f"expected a BGR uint8 HxWx3 image, got "
                                                  f"{image.dtype} array of shape {image.shape}")
