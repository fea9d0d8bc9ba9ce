"""Exception hierarchy of sense_perception.

Callers catch exactly what they can handle; every message names the offending value and, where one
exists, the fix.
"""
from __future__ import annotations


class SensePerceptionError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SensePerceptionError):
    """A configuration value is missing, of the wrong type or out of range."""


class ModelError(SensePerceptionError):
    """A model file is missing, altered, or its inputs/outputs match no supported format."""


class ImageDecodeError(SensePerceptionError):
    """A sensor_msgs/Image or CompressedImage cannot be decoded.

    Attributes:
        field: name of the message field at fault (``encoding``, ``step``, ``data``, ...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class GalleryError(SensePerceptionError):
    """The driver gallery file is unreadable, tampered, locked or has unsafe permissions."""


class PrivacyError(SensePerceptionError):
    """A request would break a privacy promise (e.g. face identity on an exterior camera)."""


class BagError(SensePerceptionError):
    """A rosbag2 file or directory cannot be read or written."""


class GroundTruthError(SensePerceptionError):
    """A ground-truth file for ``sense-perception eval`` is unreadable or malformed."""


class FleetError(SensePerceptionError):
    """A fleet replay cannot run: Ray missing, the cluster unreachable, or resources it lacks."""
