"""Settings of the driver pipeline (identity and attention), read from the ``driver_monitor`` node
parameters.

Each component owns a dataclass under a dotted prefix: ``face.*`` (:class:`FaceConfig`, here),
``identity.*`` (:class:`~.decision.IdentityConfig`), ``gallery.*`` (:class:`~.gallery.GalleryConfig`),
``attention.*`` (:class:`~.attention.state.AttentionConfig`) and ``runtime.*`` (:class:`~sense_perception.core.runtime.session.RuntimeConfig`). ``camera_role`` is a
top-level node parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..config import check_settings, section_from_params, setting
from ..core.runtime.session import RuntimeConfig, RuntimeOptions
from ..errors import ConfigError
from .attention.state import AttentionConfig
from .decision import IdentityConfig
from .driver_select import DRIVER_HALF, validate_region
from .gallery import GalleryConfig


@dataclass
class FaceConfig:
    """The ``face.*`` parameters.

    Attributes:
        score_threshold: YuNet score a face needs.
        nms_iou: overlap above which duplicate faces are suppressed.
        max_side: long side of the downscaled copy YuNet runs on (640 to 1280 suit cabin cameras;
            YuNet mislocalises faces that fill a full-resolution frame).
        top_k: most faces kept per image.
        driver_side: seat side of the driver in the vehicle, ``left`` (left-hand drive) or ``right``;
            picks the default driver region.
        driver_region: normalised [x0, y0, x1, y1] of the image where the driver's face centre may
            be; empty = the default for ``driver_side``. Use [0, 0, 1, 1] for a camera facing the
            driver head-on (steering column).
    """

    score_threshold: float = setting(0.7, range=(0.0, 1.0), constraint="above 0 and below 1")
    nms_iou: float = setting(0.3, range=(0.0, 1.0), constraint="above 0")
    max_side: int = setting(640, range=(64, 4096))
    top_k: int = setting(20, range=(1, 5000))
    driver_side: str = setting("left", range=("left", "right"))
    driver_region: list[float] = setting(
        [],
        range="[x0, y0, x1, y1], each 0..1, x0 < x1 and y0 < y1; [] = the region for driver_side")

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"face.score_threshold must be in (0, 1), got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"face.nms_iou must be in (0, 1], got {self.nms_iou}")
        if not 64 <= self.max_side <= 4096:
            raise ValueError(f"face.max_side must be in [64, 4096] pixels, got {self.max_side}")
        if self.top_k < 1:
            raise ValueError(f"face.top_k must be >= 1, got {self.top_k}")
        validate_region(self.driver_region, self.driver_side)
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @property
    def region(self) -> tuple[float, float, float, float]:
        """The effective normalised driver region."""
        return validate_region(self.driver_region, self.driver_side)

    @property
    def driver_half(self) -> str | None:
        """The image half (``right``/``left``) whose faces are preferred as the driver's with the
        default region; None with a ``driver_region`` of the user's (its largest face)."""
        return None if self.driver_region else DRIVER_HALF[self.driver_side]



@dataclass
class DriverMonitorSettings:
    """Everything the driver pipeline reads from the node parameters."""

    camera_role: str = setting(
        "cabin", "camera this node watches; must be cabin: face identity is refused on any other "
        "camera (people outside the car never consented)",
        range=("cabin",))
    face: FaceConfig = field(default_factory=FaceConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def attention_options(self) -> RuntimeOptions:
        """onnxruntime options of the attention networks: ``runtime.*`` with ``attention.intra_op_threads``."""
        options = self.runtime.options()
        if self.attention.intra_op_threads:
            options = replace(options, intra_op_threads=self.attention.intra_op_threads)
        return options

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "config") -> "DriverMonitorSettings":
        """Read flattened parameters (see :func:`sense_perception.config.load_params`).

        Raises:
            ConfigError: a key is unknown under a prefix, or a value has the wrong type or range.
        """
        role = params.get("camera_role", "cabin")
        if not isinstance(role, str):
            raise ConfigError(f"parameter 'camera_role' in {source} must be a string such as "
                              f"'cabin', got {role!r}")
        return cls(
            camera_role=role,
            face=section_from_params(FaceConfig, params, "face.", source),
            identity=section_from_params(IdentityConfig, params, "identity.", source),
            gallery=section_from_params(GalleryConfig, params, "gallery.", source),
            attention=section_from_params(AttentionConfig, params, "attention.", source),
            runtime=RuntimeConfig.from_params(params, source),
        )
