"""What every object detector offers the nodes, the replay, ``detect``, ``eval`` and the fleet.

:func:`~sense_perception.core.detection.detector_setup.build_detector` returns a :class:`Detector`:
an :class:`~sense_perception.core.detection.detector.ObjectDetector` (one model), a
:class:`~sense_perception.core.detection.gpu_preprocess.DeviceDetector` (one model, pre-processing
in torch) or a :class:`~sense_perception.core.detection.multi_model.MultiModelDetector` (a general
model and specialists). Code that only runs a detector takes this Protocol, so a test can hand it
any small object with these members (``isinstance`` works: the Protocol is runtime-checkable).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from ..imaging.image_decode import SizeFloor
    from ..types import Detections
    from .detector import DetectorConfig


@runtime_checkable
class Detector(Protocol):
    """An object detector: images in, one :class:`~sense_perception.core.types.Detections` each out.

    ``Detections.labels`` index :attr:`label_names`; boxes are in the source image's pixels.
    """

    @property
    def label_names(self) -> list[str]:
        """Output label names (the driving labels first, in one shared order)."""

    @property
    def owned_labels(self) -> tuple[str, ...]:
        """The labels this detector reports."""

    @property
    def model_name(self) -> str:
        """Model name(s), ``a + b`` for several models."""

    @property
    def family(self) -> str:
        """Decoder family (``gfl``, ``yolox``...), ``a + b`` for several models."""

    @property
    def config(self) -> DetectorConfig:
        """The ``detector.*`` settings (the general model's for several models)."""

    @property
    def tiling(self) -> Any:
        """The ``tiling.*`` settings (:class:`~.tiling.TilingConfig`), or None."""

    @property
    def tiling_enabled(self) -> bool:
        """True when images are cut into tiles."""

    @property
    def provider(self) -> str:
        """Execution provider of the (general) model: the hardware id in diagnostics."""

    @property
    def providers(self) -> dict[str, str]:
        """Execution provider per model name."""

    @property
    def fallback_reasons(self) -> list[str]:
        """Providers skipped at load, and why."""

    @property
    def notes(self) -> list[str]:
        """What model preparation did (graph rewrites, batching verification)."""

    @property
    def batch_dynamic(self) -> bool:
        """True when several images share one inference call."""

    @property
    def preprocess_device(self) -> str:
        """Where frames are pre-processed (``cpu``, ``torch cuda:0``...)."""

    @property
    def min_score(self) -> float:
        """The lowest score any reported label keeps (LabelInfo.threshold)."""

    @property
    def decode_floor(self) -> SizeFloor | None:
        """The smallest size a JPEG frame may be decoded to for this detector; None: full size."""

    @property
    def timings(self) -> dict[str, float]:
        """Milliseconds per stage of the last :meth:`detect` call."""

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Detections of each image (BGR uint8 HxWx3 arrays or ImageViews), best score first.

        Raises:
            ImageDecodeError: an entry is not an image the detector accepts.
        """

    def detect_one(self, image: Any) -> Detections:
        """Detections of one image."""


__all__ = ["Detector"]
