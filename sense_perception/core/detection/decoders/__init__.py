"""The model families: one decoder class per family, chosen by name or by the model's output shapes.

Each family lives in one module of this package: its decoder, the names it answers to
(``aliases``), the pre-processing its models were trained with (``input_defaults``) and whether its
models are general detectors (``general_purpose``). :data:`FAMILIES` is the one registry of them;
the detector, ``detector.model_family``, the bundled-model checks and ``detect --model`` all read
it. Adding a family is one module and one line here.

``make_decoder("", layout)`` tries every family in :data:`FAMILIES` order and takes the first
whose structure matches; a named family must match or the error says what it expected.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....errors import ConfigError, ModelError
from ...runtime.model_registry import MODELS
from .base import Candidates, Decoder, OutputFormatError, OutputLayout
from .detection_output import DetectionOutputDecoder
from .gfl import GFLDecoder
from .rtdetr import RTDETRDecoder
from .yolov8 import YOLOv8Decoder
from .yolox import YOLOXDecoder

FAMILIES: dict[str, type[Decoder]] = {cls.family: cls for cls in (
    GFLDecoder, YOLOXDecoder, YOLOv8Decoder, RTDETRDecoder, DetectionOutputDecoder)}
ALIASES = {alias: cls.family for cls in FAMILIES.values() for alias in cls.aliases}

__all__ = ["ALIASES", "Candidates", "Decoder", "FAMILIES", "OutputFormatError",
           "OutputLayout", "canonical_family", "detector_models", "family_input_defaults",
           "make_decoder", "supported_formats"]


def detector_models(general_only: bool = False) -> list[str]:
    """Names of the bundled models that are object detectors (a family of :data:`FAMILIES`);
    with ``general_only``, only those of general-purpose families (no single-class specialists)."""
    return [name for name, spec in MODELS.items()
            if spec.input is not None and spec.family in FAMILIES
            and (FAMILIES[spec.family].general_purpose or not general_only)]


def family_input_defaults(family: str) -> dict[str, Any]:
    """The :class:`~sense_perception.core.detection.preprocess.PreprocessSpec` fields (all but the
    size) that models of ``family`` were trained with; a fresh dict the caller may change."""
    defaults: Mapping[str, Any] = FAMILIES[canonical_family(family)].input_defaults
    return dict(defaults)


def supported_formats() -> str:
    """One line per family describing the output layout it decodes."""
    return "; ".join(cls.layout_doc for cls in FAMILIES.values())


def canonical_family(family: str) -> str:
    """Resolve aliases (picodet -> gfl, yolo11 -> yolov8); "" and "auto" give ""."""
    name = family.strip().lower()
    if name in ("", "auto"):
        return ""
    name = ALIASES.get(name, name)
    if name not in FAMILIES:
        raise ConfigError(f"detector.model_family {family!r} is not supported; use one of "
                          f"{', '.join(FAMILIES)} (or '' to detect it from the output shapes)")
    return name


def make_decoder(family: str, layout: OutputLayout) -> Decoder:
    """Build the decoder for ``layout``.

    Args:
        family: decoder family name or alias; "" or "auto" picks the first family that matches.
        layout: the model's outputs as seen in a real run.

    Raises:
        ConfigError: unknown family name.
        ModelError: the outputs match no supported format (the message lists the shapes seen and
            the supported formats), or the class count disagrees with the labels file.
    """
    name = canonical_family(family)
    candidates = [name] if name else list(FAMILIES)
    reasons = []
    for candidate in candidates:
        try:
            return FAMILIES[candidate](layout)
        except OutputFormatError as exc:
            reasons.append(f"{candidate}: {exc}")
    raise ModelError(
        f"the outputs of {layout.model_name} ({layout.describe()}, input "
        f"{layout.input_width}x{layout.input_height}, {layout.num_classes} classes in "
        f"{layout.labels_source}) match no supported format ({'; '.join(reasons)}). "
        f"Supported formats: {supported_formats()}")
