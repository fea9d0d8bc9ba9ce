"""The nodes' own (top-level) parameters and camera transport rules, ROS-free so config files can be
checked without ROS. Dotted parameters (``detector.*``, ``face.*``...) belong to core components."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..config import Setting, check_names, check_ranges, setting
from ..core.autoware.rois import checked_camera_info_topics
from ..core.output.topics import camera_info_topic, check_topic_names, per_camera
from ..core.runtime.warm_up import WARM_UP_TIMEOUT_S
# Re-exported: the topic rules were first defined here and callers still import them from here.
from ..core.output.topics import join_topic, output_namespace, output_namespaces  # noqa: F401
from ..errors import ConfigError
from ..face.privacy import check_cabin_not_exterior, check_not_exterior

RELIABILITIES = ("best_effort", "reliable")
INT64 = (-(2**63), 2**63 - 1)
TRANSPORTS = ("auto", "image", "compressed")
#: driver_monitor's camera_topic by default, which object_detector never subscribes to.
CABIN_CAMERA_TOPIC = "/camera/cabin/image_raw/compressed"
#: Largest queue depth: a deeper one is a typo (rclpy cannot even build a QoS profile of 2**62).
MAX_DEPTH = 1000
#: /diagnostics period bounds, s: faster floods the topic and holds the executor; slower than an
#: hour (1e300) cannot be a timer at all and ended the node as it was built.
DIAGNOSTICS_PERIOD_S = (0.01, 3600.0)
#: Node parameters that were replaced: a config still giving one is refused with its replacement.
REPLACED_PARAMS = {
    "decode_max_pixels": "input.max_pixels (with input.max_width, input.max_height and "
                         "input.max_compressed_bytes, the limits the replay applies too)",
}


def param(default: Any, description: str, range: Any = None) -> Any:  # noqa: A002
    """A node settings field with what ``ros2 param describe`` shows (see :func:`..config.setting`)."""
    return setting(default, description, range)


def _check_qos(prefix: str, reliability: str, depth: int) -> None:
    if reliability not in RELIABILITIES:
        raise ConfigError(f"parameter '{prefix}_reliability' is {reliability!r}; valid: "
                          f"{', '.join(RELIABILITIES)}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ConfigError(f"parameter '{prefix}_depth' must be in [1, {MAX_DEPTH}], got {depth}")


@dataclass
class InputSettings:
    """Node parameters both nodes have."""

    #: The node these are the parameters of (see :func:`sense_perception.config.node_schema`).
    KIND: ClassVar[str] = ""
    #: The parameter naming the node's cameras (for messages).
    CAMERAS_PARAMETER: ClassVar[str] = "camera_topics"
    #: First parts of the dotted parameters the node's core components read (``input.max_pixels``).
    PREFIXES: ClassVar[tuple[str, ...]] = ("input",)

    autostart: bool = param(True, "configure and activate at start-up; false waits for lifecycle "
                                  "transitions (e.g. from a lifecycle manager); read only at "
                                  "start-up")
    input_reliability: str = param("best_effort", "camera subscription reliability: best_effort "
                                   "(sensor data; receives from any camera) or reliable",
                                   RELIABILITIES)
    input_depth: int = param(1, "camera subscription queue depth (frames are handled latest-first)",
                             (1, MAX_DEPTH))
    output_depth: int = param(10, "queue depth of the result publishers (always reliable)",
                              (1, MAX_DEPTH))
    diagnostics_period_s: float = param(1.0, "seconds between /diagnostics messages (read at "
                                        "start-up and at every configure)", DIAGNOSTICS_PERIOD_S)
    no_input_warn_s: float = param(3.0, "diagnostics warn when an active input was silent this long; "
                                   "> 0", (0.0, None))
    inference_stall_s: float = param(5.0, "diagnostics say ERROR while a batch's inference has "
                                     "not returned for this long (a hung GPU call or provider: "
                                     "frames wait, nothing is published); > 0, about 10x the "
                                     "slowest batch on the node's hardware", (0.0, None))
    warm_up_timeout_s: float = param(WARM_UP_TIMEOUT_S, "configure fails, naming the model, when one "
                                     "model's load (its session creation or compile) or one "
                                     "warm-up inference (each model's first run on blank input "
                                     "before the node reports ready) has not returned for this "
                                     "long (a hung model or provider); > 0, minutes: a TensorRT "
                                     "engine build without runtime.trt_cache_dir takes minutes "
                                     "per input shape", (0.0, None))
    publish_annotations: bool = param(True, "publish <ns>/annotations (foxglove_msgs/ImageAnnotations: "
                                            "the boxes Foxglove's Image panel draws over the camera "
                                            "image) while it has subscribers")

    def validate(self) -> None:
        """Raise ConfigError naming a bad node parameter."""
        _check_qos("input", self.input_reliability, self.input_depth)
        if not 1 <= self.output_depth <= MAX_DEPTH:
            raise ConfigError(f"parameter 'output_depth' must be in [1, {MAX_DEPTH}], got "
                              f"{self.output_depth}")
        if not DIAGNOSTICS_PERIOD_S[0] <= self.diagnostics_period_s <= DIAGNOSTICS_PERIOD_S[1]:
            raise ConfigError(f"parameter 'diagnostics_period_s' must be in "
                              f"[{DIAGNOSTICS_PERIOD_S[0]}, {DIAGNOSTICS_PERIOD_S[1]}] s, got "
                              f"{self.diagnostics_period_s}")
        for name in ("diagnostics_period_s", "no_input_warn_s", "inference_stall_s",
                     "warm_up_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")

    def check_declared_ranges(self) -> None:
        """Each number within the range its field declares, for those :meth:`validate` does not
        name in its own words (``mount_height`` -0.5 was taken by the replay; ROS enforces the
        ranges only on a node)."""
        check_ranges(type(self), {f.name: getattr(self, f.name) for f in fields(self)},
                     "the node's parameters")


@dataclass
class ObjectDetectorSettings(InputSettings):
    """object_detector's own parameters; ``detector.*``, ``tiling.*``, ``runtime.*`` and
    ``tracking.*`` belong to the core components."""

    KIND: ClassVar[str] = "object_detector"
    PREFIXES: ClassVar[tuple[str, ...]] = ("input", "detector", "tiling", "tracking", "runtime",
                                           "autoware", "camera_health")

    camera_topics: list[str] = param(["/camera/image_raw"], "camera image topics; results go to each "
                                     "topic's namespace (<ns>/detections, <ns>/label_info)",
                                     "one or more distinct, non-empty topic names")
    camera_transports: list[str] = param(["auto"], "per topic: image | compressed | auto (compressed "
                                         "iff the topic ends in /compressed); one value applies to all",
                                         "1 or len(camera_topics) of: " + ", ".join(TRANSPORTS))
    cabin_camera_topic: str = param(CABIN_CAMERA_TOPIC, "the cabin camera (driver_monitor's "
                                    "camera_topic): it shows the driver, so configure refuses it, "
                                    "or its image_transport sub-topics, among camera_topics; run, "
                                    "the launch files and the replay set it from driver_monitor's "
                                    "camera_topic")
    batch_wait_ms: float = param(5.0, "after the first frame, wait up to this long for the other "
                                      "cameras' frames so they share one inference", (0.0, 1000.0))
    publish_debug_image: bool = param(True, "publish <ns>/detections_image (bgr8, boxes drawn) while "
                                            "it has subscribers")
    camera_info_topics: list[str] = param(["auto"], "per camera topic: its sensor_msgs/CameraInfo, "
                                          "for 3-D positions (<ns>/detections_3d): auto = "
                                          "<ns>/camera_info, \"\" = none; one value applies to all",
                                          "1 or len(camera_topics) of: auto, \"\", a topic")
    mount_transform: list[float] = param([0.0], "T_base_link_camera for 3-D positions when "
                                         "/tf_static has no base_link -> camera chain: 16 numbers, "
                                         "row-major, camera optical frame -> base_link (p_base = "
                                         "T @ p_cam); [0.0] = not set", "[0.0] or 16 numbers")
    mount_height: float = param(0.0, "instead of mount_transform: the camera's optical centre "
                                     "above the road (m), with mount_pitch and mount_roll; 0 = "
                                     "not set", (0.0, 10.0))
    mount_pitch: float = param(0.0, "with mount_height: camera pitch (rad, positive looks down, "
                                    "REP-103)", (-1.5708, 1.5708))
    mount_roll: float = param(0.0, "with mount_height: camera roll (rad); ground positions need "
                              "a camera level within 5 degrees (0.087 rad)", (-3.1416, 3.1416))
    mount_pitch_sd: float = param(0.5, "uncertainty of the camera's pitch against the road ahead "
                                       "(deg, 1 sigma: the vehicle pitching, the road's slope "
                                       "changing); widens the 3-D positions' covariance",
                                  (0.0, 10.0))

    def validate(self) -> None:
        super().validate()
        if len(self.camera_info_topics) not in (1, len(self.camera_topics)):
            raise ConfigError(f"parameter 'camera_info_topics' needs 1 or {len(self.camera_topics)} "
                              f"entries (one per camera topic), got {len(self.camera_info_topics)}")
        if list(self.mount_transform) != [0.0] and len(self.mount_transform) != 16:
            raise ConfigError(f"parameter 'mount_transform' needs 16 numbers (4x4 row-major) or "
                              f"[0.0] (not set), got {len(self.mount_transform)}")
        if list(self.mount_transform) != [0.0] and self.mount_height > 0:
            raise ConfigError("parameters 'mount_transform' and 'mount_height' both give the "
                              "camera mount; fix: set one of them")
        if not self.camera_topics or any(not t for t in self.camera_topics):
            raise ConfigError("parameter 'camera_topics' must list at least one non-empty topic")
        if len(set(self.camera_topics)) != len(self.camera_topics):
            raise ConfigError(f"parameter 'camera_topics' lists a topic twice: {self.camera_topics}")
        check_topic_names(self.camera_topics, "parameter 'camera_topics'")
        # a name ROS would not take failed configure after the models loaded, as an "unexpected"
        # InvalidTopicNameException naming no parameter
        check_topic_names([t for t in self.camera_info_topics if t not in ("auto", "")],
                          "parameter 'camera_info_topics'")
        if len(self.camera_transports) not in (1, len(self.camera_topics)):
            raise ConfigError(f"parameter 'camera_transports' needs 1 or {len(self.camera_topics)} "
                              f"entries (one per camera topic), got {len(self.camera_transports)}")
        for topic, transport in zip(self.camera_topics, self.transports(), strict=True):
            transport_kind(topic, transport)
        if self.cabin_camera_topic:  # the debug image and annotations would publish the driver
            # configure resolves it through the remap rules (R40): a name ROS would not take
            # failed there as an "unexpected" RCLError naming neither the topic nor the parameter
            check_topic_names([self.cabin_camera_topic], "parameter 'cabin_camera_topic'")
            check_cabin_not_exterior(
                self.cabin_camera_topic, self.camera_topics, "cabin_camera_topic", "camera_topics",
                "remove it from camera_topics, or set cabin_camera_topic (and driver_monitor's "
                "camera_topic) to the real cabin camera")
        # A second is far longer than cameras triggered together lie apart; a wait beyond what a
        # thread can wait for (1e300 ms) stopped the inference thread for good.
        if not 0.0 <= self.batch_wait_ms <= 1000.0:
            raise ConfigError(f"parameter 'batch_wait_ms' must be in [0, 1000] ms, got "
                              f"{self.batch_wait_ms}")
        if not 0.0 <= self.mount_pitch_sd <= 10.0:
            raise ConfigError(f"parameter 'mount_pitch_sd' must be in [0, 10] degrees, got "
                              f"{self.mount_pitch_sd}")
        self.check_declared_ranges()
        self.mount()  # the mount parameters checked wherever the settings are (node and replay)
        from ..core.geometry.positioner import check_one_mount

        check_one_mount(self.camera_topics, self.mount_parameter())

    def mount_parameter(self) -> str:
        """The mount parameter given (``mount_transform`` or ``mount_height``), "" = none."""
        if list(self.mount_transform) != [0.0]:
            return "mount_transform"
        return "mount_height" if self.mount_height > 0 else ""

    def position_noise(self) -> Any:
        """The noise the 3-D positions assume, with ``mount_pitch_sd``
        (:class:`~sense_perception.core.geometry.priors.PositionNoise`)."""
        from dataclasses import replace

        from ..core.geometry.priors import DEFAULT_NOISE

        return replace(DEFAULT_NOISE, pitch_rad=math.radians(self.mount_pitch_sd))

    def info_topics(self) -> list[str]:
        """Per camera topic: its CameraInfo topic ("" = none)."""
        return [camera_info_topic(t, v)
                for t, v in zip(self.camera_topics, self.info_entries(), strict=True)]

    def info_entries(self) -> list[str]:
        """Per camera topic: its ``camera_info_topics`` entry as given (a topic, auto or "")."""
        return per_camera(self.camera_info_topics, len(self.camera_topics))

    def autoware_info_topics(self, setting: str) -> list[str]:
        """Per camera topic: the CameraInfo checked for Autoware's fusion
        (``autoware.camera_info_topic`` = ``setting``): ``auto`` = the camera's CameraInfo as
        ``camera_info_topics`` names it (``<ns>/camera_info`` where that is ``auto`` or ""),
        "" = none, else ``setting`` (one camera). ``auto`` read ``<ns>/camera_info`` whatever
        ``camera_info_topics`` said, so autoware.launch.py's ``camera_info<i>`` (Autoware's own
        CameraInfo topics, R65) reached the 3-D positions but not the check."""
        return checked_camera_info_topics(
            list(zip(self.camera_topics, self.info_topics(), strict=True)), setting)

    def mount(self) -> Any:
        """The mount given as parameters (4x4 numpy array), or None (from /tf_static).

        Raises:
            ConfigError: the transform is not a camera mount (naming the fix).
        """
        import numpy as np

        from ..core.geometry.calibration import check_mount, mount_transform

        if list(self.mount_transform) != [0.0]:
            T = np.asarray(self.mount_transform, np.float64).reshape(4, 4)
            check_mount(T, "parameter 'mount_transform'")
            return T
        if self.mount_height > 0:
            T = mount_transform(self.mount_height, self.mount_pitch, self.mount_roll)
            # Their ranges let through a camera looking up (pitch -1.5) or upside down (roll 3):
            # it was refused on every frame (a WARN), never at configure.
            if -math.sin(self.mount_pitch) > 0.5:
                raise ConfigError(
                    f"parameter 'mount_pitch' {self.mount_pitch:g} rad looks "
                    f"{math.degrees(-self.mount_pitch):.0f} degrees up; a camera placing objects "
                    "on the road looks at most 30 degrees up (-0.52 rad); fix: positive pitch "
                    "looks down (REP-103)")
            if math.cos(self.mount_roll) <= 0:
                raise ConfigError(
                    f"parameter 'mount_roll' {self.mount_roll:g} rad turns the camera "
                    f"{math.degrees(abs(self.mount_roll)):.0f} degrees about its axis, so the "
                    "image's y axis does not point down; fix: a level camera (roll within 5 degrees, "
                    "0.087 rad), or give the mount as mount_transform (camera optical frame -> "
                    "base_link)")
            check_mount(T, "parameters 'mount_height', 'mount_pitch', 'mount_roll'")
            return T
        return None

    def transports(self) -> list[str]:
        """One transport per camera topic."""
        if len(self.camera_transports) == 1:
            return self.camera_transports * len(self.camera_topics)
        return list(self.camera_transports)


@dataclass
class DriverMonitorNodeSettings(InputSettings):
    """driver_monitor's own parameters; ``camera_role``, ``face.*``, ``identity.*``, ``gallery.*``,
    ``attention.*`` and ``runtime.*`` belong to the driver pipeline
    (:class:`~sense_perception.face.settings.DriverMonitorSettings`)."""

    KIND: ClassVar[str] = "driver_monitor"
    CAMERAS_PARAMETER: ClassVar[str] = "camera_topic"
    PREFIXES: ClassVar[tuple[str, ...]] = ("input", "face", "identity", "gallery", "attention",
                                           "runtime", "camera_health")

    camera_topic: str = param(CABIN_CAMERA_TOPIC, "in-cabin camera image topic; "
                              "results go to its namespace (<ns>/faces, <ns>/driver_identity, "
                              "<ns>/driver_attention, <ns>/head_pose)")
    camera_info_topic: str = param("auto", "sensor_msgs/CameraInfo of the cabin camera for the head "
                                   "pose: auto = <ns>/camera_info, \"\" = none (default intrinsics "
                                   "fx = fy = image width, principal point at the centre), or a topic")
    camera_transport: str = param("auto", "image | compressed | auto (compressed iff the topic ends "
                                  "in /compressed)", TRANSPORTS)
    exterior_camera_topics: list[str] = param([], "the exterior cameras (object_detector's "
                                              "camera_topics): people seen there never consented "
                                              "to face recognition, so configure refuses "
                                              "camera_topic, or its image_transport sub-topics, "
                                              "among them; the config loader, run and the launch "
                                              "files set it from object_detector's camera_topics",
                                              "topic names")

    def validate(self) -> None:
        super().validate()
        if not self.camera_topic:
            raise ConfigError("parameter 'camera_topic' must not be empty")
        # names ROS would not take failed configure after the models loaded, as an "unexpected"
        # InvalidTopicNameException naming no parameter (the replay took them)
        check_topic_names([self.camera_topic], "parameter 'camera_topic'")
        if self.camera_info_topic not in ("auto", ""):
            check_topic_names([self.camera_info_topic], "parameter 'camera_info_topic'")
        transport_kind(self.camera_topic, self.camera_transport)
        # resolved through the remap rules at configure (R40): a name ROS would not take failed
        # there as an "unexpected" RCLError naming neither the topic nor the parameter
        check_topic_names(self.exterior_camera_topics, "parameter 'exterior_camera_topics' "
                          "(object_detector's camera_topics)")
        check_not_exterior(self.camera_topic, self.exterior_camera_topics, "camera_topic",
                           "exterior_camera_topics (object_detector's camera_topics)",
                           "set camera_topic to the in-cabin camera, or remove that camera from "
                           "object_detector's camera_topics if it is the cabin's")
        self.check_declared_ranges()

    def camera_info(self) -> str:
        """The CameraInfo topic to read, "" for none."""
        return camera_info_topic(self.camera_topic, self.camera_info_topic)


def position_noise(params: dict[str, Any], source: str) -> Any:
    """The 3-D positions' noise from object_detector's flattened parameters (``mount_pitch_sd``;
    for ``detect`` and ``eval``, which have no node).

    Raises:
        ConfigError: a wrong ``mount_pitch_sd``.
    """
    return _own_settings(params, ("mount_pitch_sd",), source).position_noise()


def warm_up_timeout(params: dict[str, Any], source: str) -> float:
    """``warm_up_timeout_s`` from a node's flattened parameters, checked as the node checks it:
    the bound of a command's model load (``detect``, ``replay``, ``eval``, the fleet's workers,
    which have no node; R87).

    Raises:
        ConfigError: a wrong ``warm_up_timeout_s``.
    """
    return float(_own_settings(params, ("warm_up_timeout_s",), source).warm_up_timeout_s)


def _own_settings(params: dict[str, Any], names: tuple[str, ...],
                  source: str) -> ObjectDetectorSettings:
    """object_detector's own settings with only ``names`` taken from ``params`` (defaults for the
    rest), checked as the node checks them."""
    from ..config import section_from_params

    settings = section_from_params(ObjectDetectorSettings,
                                   {k: v for k, v in params.items() if k in names}, "",
                                   source, strict=False)
    settings.validate()
    return settings


def check_param_names(params: dict[str, Any], settings_cls: type[InputSettings], source: str) -> None:
    """Refuse parameter names the node of ``settings_cls`` does not read (see
    :func:`sense_perception.config.check_names`): typos, misspelt prefixes, replaced names.

    Raises:
        ConfigError: naming each refused parameter, the replacement of a replaced one and what is valid.
    """
    check_names(params, settings_cls.KIND, source)


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


def descriptor_fields(item: Setting) -> dict[str, Any]:
    """What ``ros2 param describe`` shows of a core parameter, as ParameterDescriptor fields
    (ROS-free): ``description``, ``additional_constraints`` (the range or the choices, then the
    setting's ``constraint``: what an inclusive range cannot hold) and a numeric ``range`` (low,
    high), whose open ends are the type's limits."""
    out: dict[str, Any] = {"description": item.description, "additional_constraints": ""}
    bound = item.range
    if isinstance(bound, tuple) and len(bound) == 2 and item.numeric and all(
            b is None or isinstance(b, (int, float)) for b in bound):
        if item.hint is int:
            out["range"] = (INT64[0] if bound[0] is None else int(bound[0]),
                            INT64[1] if bound[1] is None else int(bound[1]))
        else:
            out["range"] = (-math.inf if bound[0] is None else float(bound[0]),
                            math.inf if bound[1] is None else float(bound[1]))
        low, high = ("" if b is None else f"{b:g}" for b in bound)
        out["additional_constraints"] = f"{low or '-inf'}..{high or 'inf'}"
    elif isinstance(bound, tuple):
        out["additional_constraints"] = "one of: " + ", ".join(repr(b) if b == "" else b for b in bound)
    elif bound:
        out["additional_constraints"] = str(bound)
    if item.constraint:  # what the range cannot say (R75: 0..100 for "0 or at least 1")
        out["additional_constraints"] = "; ".join(
            filter(None, (out["additional_constraints"], item.constraint)))
    return out


def ros_default(item: Setting) -> Any:
    """The default of a core parameter as a ROS parameter value; None (not set: the core's own
    default applies) where ROS cannot hold it, e.g. an empty list."""
    value = item.default
    if isinstance(value, tuple):
        value = list(value)
    if value is None or value == []:
        return None
    if item.hint is float:
        return float(value)
    return ros_param_value(value)
