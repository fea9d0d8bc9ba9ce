"""One decoder per model family, chosen by name or by checking the model's output shapes.

``make_decoder("", layout)`` tries every family in :data:`DECODERS` order and takes the first
whose structure matches; a named family must match or the error says what it expected.
"""
from __future__ import annotations

from ....errors import ConfigError, ModelError
from .base import Candidates, Decoder, OutputFormatError, OutputLayout
from .detection_output import DetectionOutputDecoder
from .gfl import GFLDecoder
from .rtdetr import RTDETRDecoder
from .yolov8 import YOLOv8Decoder
from .yolox import YOLOXDecoder

DECODERS: dict[str, type[Decoder]] = {
    "gfl": GFLDecoder,
    "yolox": YOLOXDecoder,
    "yolov8": YOLOv8Decoder,
    "rtdetr": RTDETRDecoder,
    "detection_output": DetectionOutputDecoder,
}
ALIASES = {"picodet": "gfl", "nanodet": "gfl", "yolo11": "yolov8", "rt-detr": "rtdetr"}

__all__ = ["ALIASES", "Candidates", "DECODERS", "Decoder", "OutputFormatError", "OutputLayout",
           "canonical_family", "make_decoder", "supported_formats"]


def supported_formats() -> str:
    """One line per family describing the output layout it decodes."""
    return "; ".join(cls.layout_doc for cls in DECODERS.values())


def canonical_family(family: str) -> str:
    """Resolve aliases (picodet -> gfl, yolo11 -> yolov8); "" and "auto" give ""."""
    name = family.strip().lower()
    if name in ("", "auto"):
        return ""
    name = ALIASES.get(name, name)
    if name not in DECODERS:
        raise ConfigError(f"detector.model_family {family!r} is not supported; use one of "
                          f"{', '.join(DECODERS)} (or '' to detect it from the output shapes)")
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
    candidates = [name] if name else list(DECODERS)
    reasons = []
    for candidate in candidates:
        try:
            return DECODERS[candidate](layout)
        except OutputFormatError as exc:
            reasons.append(f"{candidate}: {exc}")
    raise ModelError(
        f"the outputs of {layout.model_name} ({layout.describe()}, input "
        f"{layout.input_width}x{layout.input_height}, {layout.num_classes} classes in "
        f"{layout.labels_source}) match no supported format ({'; '.join(reasons)}). "
        f"Supported formats: {supported_formats()}")
