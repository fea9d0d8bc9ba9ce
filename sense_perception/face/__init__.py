"""ROS-free driver identity: YuNet detection, SFace embedding, a private gallery, temporal decision.

Identity runs only for the enrolled, consenting driver on the in-cabin camera (see
:mod:`.privacy`); other cameras may use :class:`YuNetDetector` for detection only.

Names are loaded on first use so that importing a light submodule (the gallery, the consent text)
does not load onnxruntime and OpenCV.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConsentRecord": "gallery", "DriverRecord": "gallery", "GalleryConfig": "gallery",
    "GalleryStore": "gallery", "DriverState": "decision", "IdentityConfig": "decision",
    "IdentityDecider": "decision", "TemplateIndex": "identify", "DriverIdentifier": "pipeline",
    "DriverResult": "pipeline", "FaceEngine": "pipeline", "check_identity_allowed": "privacy",
    "DriverMonitorSettings": "settings", "FaceConfig": "settings", "Faces": "yunet",
    "YuNetDetector": "yunet",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
