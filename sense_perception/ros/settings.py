"""The nodes' own (top-level) parameters and camera transport rules, ROS-free so config files can be
checked without ROS. Dotted parameters (``detector.*``, ``face.*``...) belong to core components."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Sequence

from ..config import did_you_mean
from ..core.output.topics import camera_info_topic, join_topic, output_namespace, output_namespaces
from ..errors import ConfigError

RELIABILITIES = ("best_effort", "reliable")
TRANSPORTS = ("auto", "image", "compressed")
#: Node parameters that were replaced: a config still giving one is refused with its replacement.
REPLACED_PARAMS = {
    "decode_max_pixels": "input.max_pixels (with input.max_width, input.max_height and "
                         "input.max_compressed_bytes, the limits the replay applies too)",
}


def param(default: Any, description: str) -> Any:
    """A settings field with the description shown by ``ros2 param describe``."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"description": description})
    return field(default=default, metadata={"description": description})


def _check_qos(prefix: str, reliability: str, depth: int) -> None:
    if reliability not in RELIABILITIES:
        raise ConfigError(f"parameter '{prefix}_reliability' is {reliability!r}; valid: "
                          f"{', '.join(RELIABILITIES)}")
    if depth < 1:
        raise ConfigError(f"parameter '{prefix}_depth' must be >= 1, got {depth}")


@dataclass
class InputSettings:
    """Node parameters both nodes have."""

    #: First parts of the dotted parameters the node's core components read (``input.max_pixels``).
    PREFIXES: ClassVar[tuple[str, ...]] = ("input",)

    autostart: bool = param(True, "configure and activate at start-up; false waits for lifecycle "
                                  "transitions (e.g. from a lifecycle manager)")
    input_reliability: str = param("best_effort", "camera subscription reliability: best_effort "
                                                  "(sensor data; receives from any camera) or reliable")
    input_depth: int = param(1, "camera subscription queue depth (frames are handled latest-first)")
    output_depth: int = param(10, "queue depth of the result publishers (always reliable)")
    diagnostics_period_s: float = param(1.0, "seconds between /diagnostics messages (read at start-up)")
    no_input_warn_s: float = param(3.0, "diagnostics warn when an active input was silent this long")
    publish_annotations: bool = param(True, "publish <ns>/annotations (foxglove_msgs/ImageAnnotations: "
                                            "the boxes Foxglove's Image panel draws over the camera "
                                            "image) while it has subscribers")

    def validate(self) -> None:
        """Raise ConfigError naming a bad node parameter."""
        _check_qos("input", self.input_reliability, self.input_depth)
        if self.output_depth < 1:
            raise ConfigError(f"parameter 'output_depth' must be >= 1, got {self.output_depth}")
        for name in ("diagnostics_period_s", "no_input_warn_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")


@dataclass
class ObjectDetectorSettings(InputSettings):
    """object_detector's own parameters; ``detector.*``, ``tiling.*``, ``runtime.*`` and
    ``tracking.*`` belong to the core components."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("input", "detector", "tiling", "tracking", "runtime",
                                           "autoware")

    camera_topics: list[str] = param(["/camera/image_raw"], "camera image topics; results go to each "
                                     "topic's namespace (<ns>/detections, <ns>/label_info)")
    camera_transports: list[str] = param(["auto"], "per topic: image | compressed | auto (compressed "
                                         "iff the topic ends in /compressed); one value applies to all")
    batch_wait_ms: float = param(5.0, "after the first frame, wait up to this long for the other "
                                      "cameras' frames so they share one inference")
    publish_debug_image: bool = param(True, "publish <ns>/detections_image (bgr8, boxes drawn) while "
                                            "it has subscribers")

    def validate(self) -> None:
        super().validate()
        if not self.camera_topics or any(not t for t in self.camera_topics):
            raise ConfigError("parameter 'camera_topics' must list at least one non-empty topic")
        if len(set(self.camera_topics)) != len(self.camera_topics):
            raise ConfigError(f"parameter 'camera_topics' lists a topic twice: {self.camera_topics}")
        if len(self.camera_transports) not in (1, len(self.camera_topics)):
            raise ConfigError(f"parameter 'camera_transports' needs 1 or {len(self.camera_topics)} "
                              f"entries (one per camera topic), got {len(self.camera_transports)}")
        for topic, transport in zip(self.camera_topics, self.transports()):
            transport_kind(topic, transport)
        if self.batch_wait_ms < 0:
            raise ConfigError(f"parameter 'batch_wait_ms' must be >= 0, got {self.batch_wait_ms}")

    def transports(self) -> list[str]:
        """One transport per camera topic."""
        if len(self.camera_transports) == 1:
            return self.camera_transports * len(self.camera_topics)
        return list(self.camera_transports)


@dataclass
class DriverMonitorNodeSettings(InputSettings):
    """driver_monitor's own parameters; ``face.*``, ``identity.*``, ``gallery.*``, ``attention.*``
    and ``runtime.*`` belong to the driver pipeline."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("input", "face", "identity", "gallery", "attention",
                                           "runtime")

    camera_topic: str = param("/cabin_camera/image_raw", "in-cabin camera image topic; results go to "
                              "its namespace (<ns>/faces, <ns>/driver_identity, <ns>/driver_attention, "
                              "<ns>/head_pose)")
    camera_info_topic: str = param("auto", "sensor_msgs/CameraInfo of the cabin camera for the head "
                                   "pose: auto = <ns>/camera_info, \"\" = none (default intrinsics "
                                   "fx = fy = image width, principal point at the centre), or a topic")
    camera_transport: str = param("auto", "image | compressed | auto (compressed iff the topic ends "
                                  "in /compressed)")
    camera_role: str = param("cabin", "must be 'cabin': identity is refused on any other camera "
                             "(people outside the car never consented)")

    def validate(self) -> None:
        super().validate()
        if not self.camera_topic:
            raise ConfigError("parameter 'camera_topic' must not be empty")
        transport_kind(self.camera_topic, self.camera_transport)

    def camera_info(self) -> str:
        """The CameraInfo topic to read, "" for none."""
        return camera_info_topic(self.camera_topic, self.camera_info_topic)


def check_param_names(params: dict[str, Any], settings_cls: type, source: str) -> None:
    """Refuse parameter names a node does not read: typos, misspelt prefixes, replaced names.

    Args:
        params: the node's flattened parameters.
        settings_cls: the node's own settings dataclass: its fields are the top-level names, its
            ``PREFIXES`` the first parts of the dotted names its core components read.
        source: where the parameters came from, for the message.

    Raises:
        ConfigError: naming each refused parameter, the replacement of a replaced one and what is valid.
    """
    names = {f.name for f in fields(settings_cls)}
    prefixes = settings_cls.PREFIXES
    replaced = [f"'{k}' was replaced by {REPLACED_PARAMS[k]}" for k in sorted(params) if k in REPLACED_PARAMS]
    unknown = sorted(k for k in params if "." not in k and k not in names and k not in REPLACED_PARAMS)
    # A misspelt prefix ("inputs.max_pixels") would otherwise be ignored without a word.
    unknown += sorted(k for k in params if "." in k and k.split(".", 1)[0] not in prefixes)
    if replaced or unknown:
        named = [f"{k} ({hint.strip()})" if (hint := _closest_param(k, names, prefixes)) else k
                 for k in unknown]
        problems = replaced + ([f"unknown parameter(s) {', '.join(named)}"] if unknown else [])
        raise ConfigError(f"{'; '.join(problems)} in {source}; valid: {', '.join(sorted(names))} and "
                          f"the dotted settings {', '.join(p + '.*' for p in prefixes)}")


def _closest_param(key: str, names: set[str], prefixes: Sequence[str]) -> str:
    """``"did you mean ...? "`` for an unknown node parameter (a misspelt prefix keeps its rest)."""
    if "." in key:
        head, rest = key.split(".", 1)
        hint = did_you_mean(head, prefixes)
        return hint.replace("? ", f".{rest}? ") if hint else ""
    return did_you_mean(key, names)


def transport_kind(topic: str, transport: str) -> str:
    """``image`` or ``compressed`` for a camera topic; ``auto`` = compressed iff it ends in /compressed.

    Raises:
        ConfigError: unknown transport name.
    """
    if transport not in TRANSPORTS:
        raise ConfigError(f"camera transport {transport!r} for '{topic}' is unknown; valid: "
                          f"{', '.join(TRANSPORTS)}")
    if transport == "auto":
        return "compressed" if topic.rstrip("/").endswith("/compressed") else "image"
    return transport


def ros_param_value(value: Any) -> Any:
    """A YAML value as ROS 2 parameters hold it: a list mixing ints and floats becomes all floats."""
    if isinstance(value, list) and value and any(isinstance(v, float) for v in value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return value
