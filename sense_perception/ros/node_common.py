"""What both perception nodes share: parameters, lifecycle plumbing, camera inputs, the latest-first
worker thread and periodic diagnostics.

A subclass supplies its settings dataclass (the node's own top-level parameters), loads its core
objects in :meth:`PerceptionNode.load`, creates its publishers in :meth:`PerceptionNode.make_outputs`
and handles a batch of frames in :meth:`PerceptionNode.process`. Perception itself stays in the core.
"""
from __future__ import annotations

import array
import dataclasses
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                 SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from ..durations import duration
from ..config import (Setting, check_names, check_value, is_ros_param, node_schema,
                      section_from_params)
from ..core.frame_clock import FrameClock
from ..core.message_types import COMPRESSED_IMAGE, IMAGE
from ..core.output import messages
from ..core.output.annotations import IMAGE_ANNOTATIONS
from ..core.output.frame_outputs import (DIAGNOSTICS_TOPIC, Output, enabled_outputs, frame_messages,
                                         output_topic)
from ..core.output.topics import join_topic
from ..core.imaging.frame_guard import MIN_FRAME_PX, InputLimits, safe_decode
from ..core.imaging.mono16_depth import Mono16DepthWatch
from ..core.health.camera_health import CameraHealthBank
from ..core.health.camera_settings import health_settings_type
from ..core.health.inference_guard import InferenceWatch, waiting_camera
from ..core.health.publication_gaps import PublicationGaps
from ..core.health.stats import HealthStats
from ..core.output.status import name_camera_faults
from ..core.runtime.warm_up import WarmUpJob, load_bounded, run_bounded
from ..core.types import Header
from ..errors import ConfigError, SensePerceptionError
from ..face.domain_text import home_paths, redact_paths, redact_status
from . import qos
from .convert import msg_class, to_msg
from .domain_log import DomainLogger
from .frame_slots import Frame, LatestFrames
from .latched_inputs import LatchedInputs
from .settings import (DIAGNOSTICS_PERIOD_S, InputSettings, descriptor_fields, ros_default,
                       transport_kind)

T = TypeVar("T")

# How long a stop waits for the inference threads (all nodes together): the frame in flight
# finishes first, as one onnxruntime run cannot be interrupted (0.5 s for a batch of four 1080p
# frames on a CPU here). Only a run far slower than any frame (a TensorRT engine still being
# built) is left behind, named in an error line.
JOIN_TIMEOUT_S = 10.0

#: How often a worker waiting for a lock a hung inference holds looks whether the node has let
#: it go (:meth:`PerceptionNode.worker_lock`).
LOCK_POLL_S = 0.1

IMAGE_TYPE, COMPRESSED_TYPE = IMAGE, COMPRESSED_IMAGE


class BatchRetired(Exception):
    """Raised by :meth:`PerceptionNode.drop_if_retired` in a worker whose batch returned after the
    node let the worker go; the worker loop counts the batch as lost and ends (R72)."""

#: Node parameters read once, when the node starts, and never again: a ``ros2 param set`` of
#: another value was accepted and changed nothing. By name: what to do instead.
READ_AT_START = {
    "autostart": "it configured and activated the node (or left it waiting) when the node started "
                 "and changes nothing now; fix: use `ros2 lifecycle set {node} configure` (then "
                 "`activate`), or give autostart when the node starts (-p autostart:=..., the "
                 "parameter file)",
}


def node_params(node: Any) -> dict[str, Any]:
    """The node's set parameters as a flat dict, without the ones rclpy declares itself (a
    parameter left unset keeps the core's default; a ROS array becomes a list)."""
    return {name: list(p.value) if isinstance(p.value, array.array) else p.value
            for name, p in node.get_parameters_by_prefix("").items()
            if p.value is not None and not is_ros_param(name)}


def parameter_descriptor(item: Setting) -> ParameterDescriptor:
    """The ParameterDescriptor of a core parameter: description, constraints and numeric range.

    Typing stays dynamic, as when parameters were declared from a YAML file: ``1`` for a float
    parameter still works, and the core checks types with a message naming the parameter.
    """
    fields = descriptor_fields(item)
    descriptor = ParameterDescriptor(description=fields["description"], dynamic_typing=True,
                                     additional_constraints=fields["additional_constraints"])
    if "range" in fields:
        low, high = fields["range"]
        if item.hint is int:
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high,
                                                                  step=0.0)]
    return descriptor


def is_not_set_override(override: Any) -> bool:
    """Whether ``override`` (an rclpy Parameter of the command line or a params file) is of type
    NOT_SET: what rcl makes of ``[]`` (``NAME: []`` in a params file, ``-p NAME:=[]``)."""
    return override is not None and getattr(override, "type_", None) == Parameter.Type.NOT_SET


def is_empty_list_override(item: Setting, override: Any) -> bool:
    """Whether ``override`` (an rclpy Parameter of the command line or a params file) is ``[]``
    given to the list parameter ``item``: rcl reads ``[]`` as a parameter of type NOT_SET."""
    return isinstance(item.default, (list, tuple)) and is_not_set_override(override)


def declare_settings(node: Any, kind: str) -> dict[str, Any]:
    """Declare every parameter of node ``kind`` with its descriptor (values from the parameter
    overrides, else the defaults), so that ``ros2 param list/describe/set`` know them all.

    Returns:
        The overrides ROS refused at declaration (out of the parameter's range), by name: they
        are reported when the node is configured, where the core names the problem.
    """
    refused: dict[str, Any] = {}
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps them there
    for item in node_schema(kind).values():
        if node.has_parameter(item.name):
            continue
        descriptor = parameter_descriptor(item)
        if is_empty_list_override(item, overrides.get(item.name)):
            # `[]` in a params file (the launch files' too) or `-p NAME:=[]` reaches rclpy as
            # "not set": the parameter kept its default, so `pedestrian_band: []` (the whole
            # frame) gave the horizon band. An empty list is what was written.
            node.declare_parameter(item.name, [], descriptor, ignore_override=True)
            continue
        if is_not_set_override(overrides.get(item.name)):
            # `[]` given to a parameter that is no list (`detector.score_threshold: []`,
            # `tracking.enabled: []`): rclpy left it unset and the node ran on its default
            # without a word; configure hands `[]` to the core, which names it (R53)
            refused[item.name] = []
            node.declare_parameter(item.name, ros_default(item), descriptor, ignore_override=True)
            continue
        try:
            node.declare_parameter(item.name, ros_default(item), descriptor)
        except (InvalidParameterValueException, InvalidParameterTypeException):
            refused[item.name] = node._parameter_overrides[item.name].value
            node.declare_parameter(item.name, ros_default(item), descriptor, ignore_override=True)
    return refused


def undeclared_overrides(node: Any) -> dict[str, Any]:
    """Overrides (params file, ``-p``) of names the node does not declare: typos to refuse."""
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps them there
    return {name: p.value for name, p in overrides.items() if not node.has_parameter(name)}


def resolve_transport(topic: str, transport: str) -> type:
    """Message class of a camera topic (see :func:`.settings.transport_kind`)."""
    return CompressedImage if transport_kind(topic, transport) == "compressed" else Image


class PerceptionNode(LifecycleNode):
    """Lifecycle plumbing shared by the perception nodes.

    Subclasses set ``SETTINGS`` and implement :meth:`inputs`, :meth:`load`, :meth:`make_outputs`,
    :meth:`process`; optionally :meth:`on_outputs_active`, :meth:`release`, :meth:`diagnostic_extra`.
    """

    SETTINGS: type[InputSettings] = InputSettings
    #: What a camera that stamps its frames 0 has timed by their arrival (its warning says so).
    TIMED_BY_ARRIVAL = "tracks and velocities"
    GATHER_S = 0.0  # how long the worker waits for the other cameras' frames after the first

    def __init__(self, node_name: str, config_defaults: Sequence[Any] = (), **kwargs: Any) -> None:
        """``config_defaults``: parameters from a config file (``run --config``), taken where the
        command line (``-p``, ``--params-file``) and ``parameter_overrides`` set nothing: as
        ``parameter_overrides`` they won over ``-p``, which was then silently unused."""
        super().__init__(node_name, **kwargs)
        if config_defaults:
            # rclpy keeps the command line's values there (and parameter_overrides')
            given: dict[str, Any] = dict(self._parameter_overrides)  # type: ignore[has-type]
            self._parameter_overrides = {**{p.name: p for p in config_defaults}, **given}
            self._say_command_line_wins(config_defaults, given)
            # rclpy declared use_sim_time before this: the config's value is set now
            sim_time = next((p for p in config_defaults if p.name == "use_sim_time"), None)
            if sim_time is not None and "use_sim_time" not in given:
                self.set_parameters([sim_time])
        self._refused_overrides = declare_settings(self, self.SETTINGS.KIND)
        # rclpy calls the last callback added first: a bad value is named as such whatever the
        # node's state, and only a good one is refused for being set while configured.
        self.add_on_set_parameters_callback(self._refuse_while_configured)
        # ``ros2 param set`` of a value the settings refuse (a string for a number, NaN) is refused
        # at once, the old value kept; it was taken and only failed the next configure.
        self.add_on_set_parameters_callback(self._check_set)
        # A refused override is reported until the parameter is set anew (``ros2 param set``).
        self.add_post_set_parameters_callback(self._forget_refused)
        self.settings: Any = None
        self.lifecycle_state = "unconfigured"
        self.config_error = ""
        # why the last activate failed, until an activate succeeds: /diagnostics said OK
        # "inactive: waiting for lifecycle transitions" after a failed activate
        self.activate_error = ""
        self.limits = InputLimits()
        # a 10/12-bit camera read as 16-bit (nearly black frames): warned once per camera
        self.mono16_watch = Mono16DepthWatch()
        self.health = HealthStats()
        self.camera_health: CameraHealthBank | None = None  # camera_health.enabled
        # transient-local twins of the CameraInfo inputs (latch_inputs): their lookup errors are
        # shown here, for both nodes, and they are closed at release
        self._latched: LatchedInputs | None = None
        # a camera stamping its frames 0: timed by its arrival, warned once
        self.frame_clock = FrameClock(self._warn_unstamped)
        self._slots: LatestFrames | None = None
        self._worker: threading.Thread | None = None
        self._worker_error = ""  # why the inference thread ended while active
        # set in each worker thread: a worker the node has let go drops its late batch (R72)
        self._local = threading.local()
        # how long the worker's batch has run: a hung inference is named in /diagnostics (R69)
        self._watch = InferenceWatch()
        # (topic, types) of publishers of another message type already logged (/diagnostics
        # names them for as long as they last)
        self._told_foreign: set[tuple[str, tuple[str, ...]]] = set()
        self._subscriptions_in: list[Any] = []
        self._inputs: list[tuple[str, type]] = []
        self.annotations_state = ""  # for /diagnostics: on, off, or why they are unavailable
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        period = self.get_parameter("diagnostics_period_s").value
        low, high = DIAGNOSTICS_PERIOD_S  # outside them: 1 s, and configure names the parameter
        period = float(period) if isinstance(period, (int, float)) and low <= period <= high else 1.0
        # On the steady clock, not the node's: with use_sim_time a ROS-time timer stood still
        # while /clock did (a paused simulation, a simulator loading a map or not started yet),
        # and the watchdog that says "no input" or "not configured" published nothing at all.
        # The statuses are still stamped with the node's (simulation) time.
        self._diag_timer = self.create_timer(period, self.publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _say_command_line_wins(self, config_defaults: Sequence[Any], given: dict[str, Any]) -> None:
        """Log each parameter the command line (``-p``, ``--params-file``) sets to another value
        than the config file (``run --config``) does: the command line wins, and was not said."""
        def plain(value: Any) -> Any:
            return list(value) if isinstance(value, (array.array, tuple)) else value

        differ = [(p.name, plain(p.value), plain(given[p.name].value)) for p in config_defaults
                  if p.name in given and plain(given[p.name].value) != plain(p.value)]
        if differ:
            self.get_logger().info(
                "the command line wins over the config file for: " + "; ".join(
                    f"{name} = {cli!r} (the config file: {config!r})" for name, config, cli in differ))

    def _check_set(self, parameters: list[Any]) -> SetParametersResult:
        for parameter in parameters:
            if is_ros_param(parameter.name):
                continue
            if parameter.value is None:  # `ros2 param delete`
                return self._refuse_delete(parameter.name)
            value = parameter.value
            if parameter.name in READ_AT_START and value != self.get_parameter(parameter.name).value:
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{parameter.name}' is read only when the node starts: "
                    + READ_AT_START[parameter.name].format(node=self.get_fully_qualified_name())
                    + f"; the value stays {self.get_parameter(parameter.name).value!r}"))
            try:
                check_value(self.SETTINGS.KIND, parameter.name,
                            list(value) if isinstance(value, array.array) else value,
                            f"the request to set {self.get_fully_qualified_name()}")
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=f"{exc}; the value stays "
                                           f"{self.get_parameter(parameter.name).value!r}")
        return SetParametersResult(successful=True)

    def _refuse_delete(self, name: str) -> SetParametersResult:
        """Refuse ``ros2 param delete`` of one of the node's parameters: rclpy undeclared it, so
        ``ros2 param set`` of it was refused (``Invalid access to undeclared parameter(s)``) for
        as long as the node ran, ``ros2 param list`` and ``describe`` no longer knew it, and the
        next configure quietly took the default (``camera_topics`` deleted: /camera/image_raw)."""
        item = node_schema(self.SETTINGS.KIND).get(name)
        default = f"; its default is {item.default!r}" if item is not None else ""
        return SetParametersResult(successful=False, reason=(
            f"parameter '{name}' cannot be deleted: every parameter of the node stays declared "
            f"(deleted, it could not be set again while the node runs); fix: `ros2 param set "
            f"{self.get_fully_qualified_name()} {name} VALUE`{default}"))

    def _forget_refused(self, parameters: list[Any]) -> None:
        for parameter in parameters:
            self._refused_overrides.pop(parameter.name, None)

    def _refuse_while_configured(self, parameters: list[Any]) -> SetParametersResult:
        """Refuse to set the node's own parameters while it is configured: they are read at
        configure, so a value accepted then would be silently unused by the running node; and
        once it is shut down (``finalized``), when no configure can come any more."""
        state = self.lifecycle_state
        names = [p.name for p in parameters if not is_ros_param(p.name)]
        if state == "finalized" and names:
            return SetParametersResult(successful=False, reason=(
                f"{', '.join(names)}: the node was shut down (finalized) and reads no parameter "
                "again; restart the node with the value (-p NAME:=VALUE, the parameter file)"))
        if state not in ("inactive", "active") or not names:
            return SetParametersResult(successful=True)
        steps = "deactivate and cleanup" if state == "active" else "cleanup"
        return SetParametersResult(successful=False, reason=(
            f"{', '.join(names)}: parameters are read at configure and the node is {state}, "
            f"running with the values it was configured with; {steps} the node, set the "
            "parameter, then configure and activate it"))

    # -- hooks for subclasses ---------------------------------------------------------------------

    def inputs(self, settings: Any) -> list[tuple[str, type]]:
        """(topic, message class) of each camera input."""
        raise NotImplementedError

    def load(self, params: dict[str, Any], source: str) -> None:
        """Build the core objects (models load here). Raise SensePerceptionError on bad config."""
        raise NotImplementedError

    def make_outputs(self) -> None:
        """Create the lifecycle publishers."""
        raise NotImplementedError

    def process(self, frames: list[Frame]) -> None:
        """Handle the frames taken from the slots (worker thread)."""
        raise NotImplementedError

    def on_outputs_active(self) -> None:
        """Called once the publishers are active (e.g. to publish latched messages)."""

    def warm_up_job(self) -> WarmUpJob | None:
        """The warm-up to run at configure, after :meth:`load`: each model once on blank input
        (see :mod:`~sense_perception.core.runtime.warm_up`), a callable taking a
        :class:`~sense_perception.core.runtime.warm_up.WarmUpProgress` and returning the
        seconds it took, with the objects it warms bound to it (it runs in a thread of its own,
        which a hung model may leave behind); None when there is nothing to warm. It raises
        SensePerceptionError (naming the model and the fix) to fail configure."""
        return None

    #: Set by ``run`` (``cabin_first``), which hands each node's cameras to the other as this
    #: node resolves them, under whatever name it runs: its private cameras are then handed right.
    cameras_handed_resolved = False
    #: Set by ``run`` (``cabin_first``): hands this node the other node's cameras as they are
    #: now, at the start of each configure. Handed once, when the nodes were built, a camera
    #: set with ``ros2 param set`` later was never seen by the other node (R92).
    take_peer_cameras: Callable[[], None] | None = None

    def check_private_handover(self, names: Sequence[str], parameter: str, other: str,
                               other_parameter: str, risk: str) -> None:
        """Refuse a private camera (``~/X``) of a node that does not run under its own name.

        The config loader and the launch files hand a node's private camera to the other node
        as ``<node>/X`` (``private_as_relative``, R81), with ``<node>`` the name they give it
        (``driver_monitor``, ``object_detector``). Renamed (``-r __node:=NEW``, a launch file's
        or autoware.launch.py's ``yolox_node_name``), rclpy resolves ``~/X`` to
        ``<ns>/NEW/X``, which the other node's exclusion never sees: driver_monitor's cabin
        camera could be taken by object_detector (exterior detection on the driver's face), an
        exterior camera identified on by driver_monitor. Only this node knows the name it runs
        under, so it refuses (R87); ``run`` hands the resolved topics and is not refused.

        Args:
            names: this node's camera names, as given.
            parameter: the parameter that names them (``camera_topic``).
            other: the node they are handed to; other_parameter: its parameter that takes them.
            risk: what the other node could do, not knowing the camera for this node's.

        Raises:
            PrivacyError: naming the camera, where it resolves, the name it is handed as, the
                risk and the fix.
        """
        own = self.SETTINGS.KIND
        if self.cameras_handed_resolved or self.get_name() == own:
            return
        from ..core.output.topics import private_as_relative
        from ..errors import PrivacyError

        for name in names:
            name = str(name)
            if name != "~" and not name.startswith("~/"):
                continue
            try:
                resolved = self.resolve_topic_name(name)
            except Exception:  # noqa: BLE001  an invalid name: the settings' checks name it
                continue
            raise PrivacyError(
                f"{parameter} {name} is private: rclpy resolves it under this node's name "
                f"{self.get_name()} (renamed from {own}: -r __node:=, a launch file's name) to "
                f"{resolved}, but the config loader and the launch files hand it to {other} "
                f"({other_parameter}) as {private_as_relative(name, own)}, under the name they "
                f"give this node, so {other} would not know it for this node's camera and "
                f"{risk}; fix: name the camera by its absolute topic ({parameter}: {resolved}, "
                f"handed as it is), run the node under its name {own}, or start both nodes "
                "with sense-perception run (which hands the topics as the nodes resolve them)")

    def _stopping(self) -> bool:
        """Whether Ctrl-C or SIGTERM shut the context down: a bounded load or warm-up, and a
        wait for the gallery lock, end then."""
        return not self.context.ok()

    def warm_up(self, timeout_s: float) -> float | None:
        """Run :meth:`warm_up_job` bounded (:func:`~sense_perception.core.runtime.warm_up.run_bounded`):
        a warm-up inference that never returned held ``configure``, and with it the node's
        executor (no ``/diagnostics``, no ``shutdown``), for ever (R81). The seconds it took,
        None when there is nothing to warm.

        Raises:
            ModelError: it raised, ran past ``timeout_s`` (``warm_up_timeout_s``) or the node
                is stopping.
        """
        job = self.warm_up_job()
        if job is None:
            return None
        return run_bounded(job, timeout_s, stopping=self._stopping,
                           name=f"{self.get_name()}-warm-up")

    def load_bounded(self, job: Callable[[], T], models: str, timeout_s: float) -> T:
        """Run a model load (``job``, building ``models``; the loaders report each model's
        session creation, compile and first run at load to its thread's
        :class:`~sense_perception.core.runtime.progress.WarmUpProgress`) in a thread of its own,
        as the warm-up (:func:`~sense_perception.core.runtime.warm_up.run_bounded`): a load that
        never returned (a provider's engine build or a GPU driver hung in the session creation,
        an OpenVINO compile) held ``configure``, and with it the node's executor (no
        ``/diagnostics``, no ``shutdown``), for ever (R85). ``job`` returns what it built and
        never touches the node: one that returns after the configure gave up on it changes
        nothing.

        Raises:
            ModelError: it raised (its own error), a step ran past ``timeout_s``
                (``warm_up_timeout_s``) or the node is stopping.
        """
        return load_bounded(job, models, timeout_s, stopping=self._stopping,
                            name=f"{self.get_name()}-load")

    def release(self) -> None:
        """Drop the core objects and publishers (cleanup, failed configure, shutdown)."""

    def diagnostic_extra(self) -> dict[str, Any]:
        """Node-specific key/values placed first in the diagnostic status."""
        return {}

    def diagnostic_warnings(self) -> list[str]:
        """Node-specific problems that make the diagnostic level at least WARN."""
        return []

    def latch_inputs(self, msg_type: type, readers: Mapping[str, Callable[[Any], None]]) -> None:
        """Subscribe transient-local, too, to the topics of ``readers`` whose publishers latch (a
        CameraInfo latched before the node started reaches no volatile subscription): one
        :class:`LatchedInputs` per node, shown in :meth:`status_values` and
        :meth:`status_warnings` and closed at release, for both nodes alike."""
        self._close_latched()
        self._latched = LatchedInputs(self, msg_type, readers)
        self._latched.start()

    def _close_latched(self) -> None:
        if self._latched is not None:
            self._latched.close()
            self._latched = None

    def status_values(self) -> dict[str, Any]:
        """The node's own key/values (:meth:`diagnostic_extra`), then those of its latched
        inputs (a CameraInfo topic whose publishers cannot be looked at)."""
        values = self.diagnostic_extra()
        if self._latched is not None:
            values.update(self._latched.diagnostic_values())
        return values

    def status_warnings(self) -> list[str]:
        """The node's own warnings (:meth:`diagnostic_warnings`), then its latched inputs'."""
        warnings = self.diagnostic_warnings()
        return warnings + (self._latched.warnings() if self._latched is not None else [])

    def hardware_id(self) -> str:
        return ""

    # -- what the DDS domain reads (R93) ----------------------------------------------------------

    def private_paths(self) -> list[tuple[str, str]]:
        """Paths, each with its label, that the node's texts on the DDS domain never name: the
        home folder (``~``: usually named after its user); driver_monitor adds the gallery's and
        its key file's."""
        return home_paths()

    def for_domain(self, text: str) -> str:
        """``text`` as ``/rosout``, ``/diagnostics`` and the node's service answers carry it: every
        participant of the domain reads them (:mod:`sense_perception.face.domain_text`)."""
        return redact_paths(text, self.private_paths())

    def get_logger(self) -> DomainLogger:
        """The node's logger, whose lines reach ``/rosout`` through :meth:`for_domain` (the full
        line, when it differs, to the local log only: :class:`~.domain_log.DomainLogger`)."""
        logger = self.__dict__.get("_domain_logger")
        if logger is None:
            logger = self._domain_logger = DomainLogger(super().get_logger().name, self.for_domain)
        return logger

    def _status_for_domain(self, status: dict[str, Any]) -> dict[str, Any]:
        """A status (:func:`~..core.output.messages.diagnostic_status`) whose message and
        values went through :meth:`for_domain`."""
        return redact_status(status, self.private_paths())

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def source(self) -> str:
        return f"parameters of node {self.get_fully_qualified_name()}"

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.take_peer_cameras is not None:
            try:
                self.take_peer_cameras()
            except Exception as exc:  # noqa: BLE001  never configure without the other's cameras
                return self._configure_failed(f"the other node's cameras could not be taken: {exc!r}")
        # Refused overrides take part so that the core names what is wrong with them.
        params = {**node_params(self), **self._refused_overrides}
        try:
            check_names([*params, *undeclared_overrides(self)], self.SETTINGS.KIND, self.source)
            own_names = {f.name for f in dataclasses.fields(self.SETTINGS)}
            own = {k: v for k, v in params.items() if k in own_names}
            settings = section_from_params(self.SETTINGS, own, "", self.source, strict=False)
            settings.validate()
            self._apply_diagnostics_period(settings.diagnostics_period_s)
            self.limits = InputLimits.from_params(params, self.source)
            self._inputs = self.inputs(settings)
            self.settings = settings
            self.health = HealthStats([t for t, _ in self._inputs])
            self.frame_clock = FrameClock(self._warn_unstamped)
            health = health_settings_type(self.SETTINGS.KIND).from_params(params, self.source)
            # a rate given to a topic that is none of the node's cameras would never apply
            health.camera_rates().check_topics([t for t, _ in self._inputs], self.source,
                                               self.SETTINGS.CAMERAS_PARAMETER)
            # a node keeps the cameras' current state only, not every condition change for ever
            self.camera_health = CameraHealthBank([t for t, _ in self._inputs], health,
                                                  keep_events=False) if health.enabled else None
            self.load(params, self.source)
            if self._refused_overrides:  # the core accepted them, but they are outside ROS's range
                raise ConfigError("; ".join(
                    f"parameter '{k}' = {v!r} in {self.source} is outside its range "
                    f"{descriptor_fields(node_schema(self.SETTINGS.KIND)[k])['additional_constraints']}"
                    for k, v in self._refused_overrides.items()))
            # Each model's first run (a TensorRT engine build, an OpenVINO or CUDA compile) here,
            # before the node reports ready: on the first frame the stall watch took it for a
            # hung inference, ERROR with nothing wrong (R72). A failure fails configure, and so
            # does one that has not returned after warm_up_timeout_s (R81).
            warm_s = self.warm_up(settings.warm_up_timeout_s)
            self.make_outputs()
        except SensePerceptionError as exc:
            if not self.context.ok():  # given up for Ctrl-C or SIGTERM (a lock wait): no fault
                self._safe_release()
                return TransitionCallbackReturn.FAILURE
            return self._configure_failed(str(exc))
        except Exception as exc:  # noqa: BLE001  a bug must not kill the node: report and stay unconfigured
            if not self.context.ok():  # Ctrl-C or SIGTERM while configuring: stopping, not a fault
                self._safe_release()
                return TransitionCallbackReturn.FAILURE
            self.get_logger().error(f"configure failed unexpectedly: {exc!r}")
            return self._configure_failed(f"{type(exc).__name__}: {exc}")
        self.config_error = ""
        self.lifecycle_state = "inactive"
        self.get_logger().info("configured: inputs " + ", ".join(
            f"{t} ({c.__name__}, {qos.describe(self.input_qos())})" for t, c in self._inputs)
            + ("" if warm_s is None else f"; warm-up inference on blank frames took {warm_s:.2f} s"))
        return TransitionCallbackReturn.SUCCESS

    def _apply_diagnostics_period(self, period_s: float) -> None:
        """Publish /diagnostics every ``period_s`` (a validated ``diagnostics_period_s``): it was
        read only when the node was built, so a value set with ``ros2 param set`` before a
        configure (the steps the refusal of a set while configured names) was never used."""
        period_ns = int(round(period_s * 1e9))
        if period_ns != self._diag_timer.timer_period_ns:
            self._diag_timer.timer_period_ns = period_ns
            self._diag_timer.reset()  # the next status one new period from now
            self.get_logger().info(f"/diagnostics every {period_s:g} s")

    def _configure_failed(self, error: str) -> TransitionCallbackReturn:
        self.config_error = error
        self.get_logger().error(f"configure failed, node stays unconfigured: {error}")
        self._safe_release()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.FAILURE

    def _safe_release(self) -> None:
        try:
            self._close_latched()
            self.release()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"release failed: {exc!r}")

    def input_qos(self) -> Any:
        return qos.profile(self.settings.input_reliability, self.settings.input_depth, what="input")

    def output_qos(self) -> Any:
        return qos.profile("reliable", self.settings.output_depth, what="output")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            ret = super().on_activate(state)
            if ret != TransitionCallbackReturn.SUCCESS:
                self.activate_error = "its lifecycle publishers could not be activated"
                return ret
            self.health.restart_silence_clock()
            if self.camera_health is not None:
                self.camera_health.start(time.monotonic())
            slots = LatestFrames(len(self._inputs), on_stale=lambda _i: self.health.frames_dropped_stale())
            self._slots = slots
            profile = self.input_qos()
            gaps = PublicationGaps(self.count_publishers)  # a fresh baseline per activation
            for index, (topic, cls) in enumerate(self._inputs):
                self._subscriptions_in.append(self.create_subscription(
                    cls, topic, self._make_callback(slots, index, topic, gaps), profile,
                    event_callbacks=qos.subscription_events(topic, self.on_qos_event)))
            self._worker_error = ""
            # a fresh watch per worker: one left hung by an earlier activation is not this one
            self._watch = watch = InferenceWatch()
            self._worker = threading.Thread(target=self._work, args=(slots, watch),
                                            name=f"{self.get_name()}-worker", daemon=True)
            self._worker.start()
            self.on_outputs_active()
        except Exception as exc:  # noqa: BLE001
            self.activate_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"activate failed, node stays inactive: {exc!r}")
            self._stop_inputs()
            super().on_deactivate(state)  # the publishers were already activated
            return TransitionCallbackReturn.FAILURE
        self.activate_error = ""
        self.lifecycle_state = "active"
        self.get_logger().info("active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self.lifecycle_state = "inactive"
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._safe_release()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._safe_release()
        self.lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._safe_release()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop the worker and the inputs (before destroying the node)."""
        self._stop_inputs()

    # -- inputs and the worker ----------------------------------------------------------------------

    def _make_callback(self, slots: LatestFrames, index: int, topic: str,
                       gaps: PublicationGaps) -> Callable[[Any, Any], None]:
        health, cameras = self.health, self.camera_health

        # Two parameters: rclpy then passes the message info, whose publication sequence number
        # shows the frames DDS dropped before this callback (counted as lost[transport]).
        def on_image(msg: Any, info: Any) -> None:
            arrival = time.monotonic()
            health.frame_received(topic)
            if isinstance(info, dict):
                missed = gaps.observe(topic, info.get("publication_sequence_number"))
                if missed:
                    health.frames_lost_in_transport(topic, missed)
            if cameras is not None:  # waiting behind an inference is not silence (before put)
                # and the stream timing measures what the camera sent, judged or not (R69)
                h = msg.header
                cameras.received(topic, arrival, h.stamp.sec + h.stamp.nanosec * 1e-9,
                                 str(h.frame_id))
            slots.put(index, msg, arrival)
        return on_image

    def _stop_inputs(self) -> None:
        self._close_inputs()
        self._join_worker(time.monotonic() + JOIN_TIMEOUT_S)

    def _close_inputs(self) -> None:
        """Destroy the image subscriptions and close the frame slots: the worker ends after the
        frame in flight (never waited for here; :meth:`_join_worker` does)."""
        # Two threads may stop the inputs at once (a transition, and the end of spin on a
        # signal): each works on what it read, never on an attribute the other has just cleared.
        subscriptions, self._subscriptions_in = self._subscriptions_in, []
        for sub in subscriptions:
            self.destroy_subscription(sub)
        if self._slots is not None:
            self._slots.close()

    def _join_worker(self, deadline: float) -> None:
        """Wait (until ``deadline``, monotonic) for the worker to end its frame in flight, then
        count the frames left in the slots as lost."""
        slots, worker = self._slots, self._worker
        if worker is not None and worker is not threading.current_thread():
            # The wait is the inference in flight: one onnxruntime run cannot be interrupted.
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                self.get_logger().error(f"worker thread did not stop within {duration(JOIN_TIMEOUT_S)} "
                                        "(an inference still running); the node goes down without it")
        if slots is not None:  # received but never to be processed: counted, as every lost frame
            for source in slots.drop_all():
                self.health.frame_dropped_inactive(self.input_topic(source))
        self._worker = None
        self._slots = None

    def _work(self, slots: LatestFrames, watch: InferenceWatch | None = None) -> None:
        try:
            self._work_loop(slots, watch if watch is not None else InferenceWatch())
        except Exception as exc:  # noqa: BLE001  never end unseen: /diagnostics says so
            self._worker_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"inference thread stopped, no frame is processed any more: "
                                    f"{exc!r}; fix the cause, then deactivate and activate the node")

    def drop_if_retired(self, frames: Sequence[Frame]) -> None:
        """Raise :class:`BatchRetired` when called from a worker thread the node has let go: a
        deactivate (or cleanup, shutdown, a stop) waited :data:`JOIN_TIMEOUT_S` for its batch
        and left it behind, hung in inference. Its frames are of an activation that has ended;
        published on return, they went out on the publishers active by then (the node activated
        again: frames seconds old, after newer ones) and ran through the trackers after newer
        frames. A subclass calls this once its inference has returned, before its frames go
        further. Called from any other thread (a test calling :meth:`process`): nothing.
        """
        if not frames or threading.current_thread() is self._worker:
            return
        if getattr(self._local, "worker", False):  # a worker thread, no longer the node's
            raise BatchRetired()

    @contextmanager
    def worker_lock(self, lock: Any, frames: Sequence[Frame]) -> Iterator[None]:
        """Hold ``lock`` (a threading.Lock a hung inference may hold) for the worker's batch.
        A worker the node has let go, or is stopping (its inputs closed: a deactivate waits
        for it), gives up waiting for it (:class:`BatchRetired`): behind an inference hung in
        an earlier activation, the next activation's worker waited for the lock for ever,
        holding its frames, and so did the worker of every deactivate and activate after it,
        one more thread left behind each time, each deactivate waiting its whole
        :data:`JOIN_TIMEOUT_S` for it (R72)."""
        while not lock.acquire(timeout=LOCK_POLL_S):
            self.drop_if_retired(frames)
            slots = getattr(self._local, "slots", None)
            if slots is not None and slots.closed:  # not yet in inference: nothing to finish
                raise BatchRetired()
        try:
            yield
        finally:
            lock.release()

    def _work_loop(self, slots: LatestFrames, watch: InferenceWatch) -> None:
        self._local.worker = True  # this thread is a worker (drop_if_retired)
        self._local.slots = slots  # closed when the node stops it (worker_lock)
        while not slots.closed:
            frames = slots.take(timeout=0.2, gather_s=self.GATHER_S)
            if not frames:
                continue
            health = self.health  # a configure after a cleanup makes a new one
            watch.begin([self.input_topic(f.source) for f in frames], self.health.received_by_source())
            try:
                self.process(frames)
            except BatchRetired:
                self._retired_batch(frames, health, watch.running_s())
                return
            except Exception as exc:  # noqa: BLE001  a failed frame must never stop the node
                if slots.closed or not self.context.ok():
                    # Stopped while these frames were in flight (a signal invalidates the
                    # publishers' context before the inputs close): lost to the stop, not an
                    # inference error.
                    for frame in frames:
                        self.health.frame_dropped_inactive(self.input_topic(frame.source))
                    continue
                self.health.inference_error(f"{type(exc).__name__}: {exc}", len(frames))
                self.get_logger().error(f"dropped {len(frames)} frame(s): {exc!r}",
                                        throttle_duration_sec=5.0)
            finally:
                took = watch.end()
                if took is not None:  # /diagnostics said it had stalled: say it is over
                    self.get_logger().warning(f"inference returned after {duration(took)}; frames "
                                              "are processed again")

    def _retired_batch(self, frames: Sequence[Frame], health: HealthStats,
                       running_s: float | None) -> None:
        """Count and log the frames of a batch that returned after the node let its worker go."""
        if health is self.health:  # still the stats they were received in: lost to the deactivate
            topics = [self.input_topic(f.source) for f in frames]
            for topic in topics:
                health.frame_dropped_inactive(topic)
            of = ", ".join(sorted(set(topics)))
        else:  # a configure since: its cameras may be others
            of = "of the configuration before the last cleanup"
        self.get_logger().warning(
            f"a batch of {len(frames)} frame(s) ({of}) was dropped after {running_s or 0.0:.1f} "
            "s: the node let its worker go (deactivated, cleaned up or stopped) while it was in "
            "inference or waited for a hung one; nothing of it is published or tracked")

    def _stalled(self) -> str | None:
        """While active: the text naming a batch whose inference has not returned for
        ``inference_stall_s`` (logged once per batch), else None.

        A hung inference (a GPU call, a deadlocked execution provider) raises nothing: the frames
        kept arriving (``frames_received`` grew, ``frames_processed`` stood still), every camera's
        health stayed at its last frame judged, and the status said ``ok`` (R69)."""
        if self.lifecycle_state != "active" or self.settings is None:
            return None
        stall = self._watch.stalled(self.settings.inference_stall_s,
                                    self.health.received_by_source())
        if stall is None:
            return None
        text, first = stall
        if first:
            self.get_logger().error(text)
        return text

    def judge_camera(self, frame: Frame, image: Any) -> dict[str, Any] | None:
        """The camera's health after this decoded frame (arrival: when the callback got it, on
        the monotonic clock the silence check uses); None with ``camera_health.enabled`` false.

        A judgement that raises costs the frame nothing: its status says STALE, naming the error
        (:meth:`CameraHealthBank.judge`), the error is logged (throttled) and the frame goes on
        to detection (it was dropped whole). Raises the error again once the node's context is
        shut down (the frame is lost to the stop)."""
        if self.camera_health is None:
            return None
        h = frame.msg.header
        topic = self.input_topic(frame.source)
        status, error = self.camera_health.judge(topic, image, h.stamp.sec + h.stamp.nanosec * 1e-9,
                                                 str(h.frame_id), frame.received)
        if error is not None:
            if not self.context.ok():
                raise error
            self.get_logger().error(f"camera health could not judge a frame of {topic}; its "
                                    f"camera_health says STALE, its detections go on: {error!r}",
                                    throttle_duration_sec=5.0)
        return status

    def frame_seconds(self, frame: Frame, header: Header) -> float:
        """The seconds to time a frame's tracks and velocities (an exterior camera) or its driver
        attention and identity (the cabin camera) with: its stamp, or, for a camera that has
        never stamped a frame (stamps 0), its arrival on the monotonic clock, as its camera
        health is (warned once: timed by a zero stamp no time passed, ``tracking.max_age`` never
        applied and attention never timed an eyes-off-road)."""
        return self.frame_clock.seconds(self.input_topic(frame.source), header, frame.received)

    def _warn_unstamped(self, topic: str) -> None:
        self.get_logger().warning(
            f"{topic}: its header stamps are 0 (the driver does not stamp its frames); its "
            f"{self.TIMED_BY_ARRIVAL} and camera health are timed by the frames' arrival, its "
            "outputs keep the stamps as they came")

    def input_topic(self, index: int) -> str:
        return self._inputs[index][0]

    def decode(self, frame: Frame, zero_copy: bool = False, size_floor: Any = None) -> Any:
        """Decode a frame to BGR within the ``input.*`` limits; None (counted, logged) when the
        message is malformed or too large. ``zero_copy``: the frame comes back as an
        :class:`~sense_perception.core.imaging.image_decode.ImageView` (raw Images read where they lie);
        ``size_floor``: a JPEG may be decoded at reduced scale down to it (the detector's
        ``decode_floor``)."""
        image, error = safe_decode(frame.msg, self.limits, zero_copy=zero_copy,
                                   size_floor=size_floor, min_px=MIN_FRAME_PX)
        if error is not None:
            # HealthStats is the node's one count of lost frames: it also sets the diagnostic level.
            topic = self.input_topic(frame.source)
            self.health.decode_error(topic, error)
            if self.camera_health is not None:  # taken, never judged: no proof of a live camera
                self.camera_health.settle(topic, frame.received)
            self.get_logger().warning(f"cannot decode image on {topic}: {error}", throttle_duration_sec=5.0)
            return image
        note = self.mono16_watch.check(self.input_topic(frame.source), frame.msg, self.limits.mono16_bits)
        if note is not None:
            self.get_logger().warning(note)
        return image

    def _foreign_publishers(self, no_input_s: float) -> list[str]:
        """For each silent camera input: the publishers on its topic of another message type.

        A camera publishing CompressedImage on a topic the node reads as Image (or the other way
        round: a driver's JPEG stream on a topic not ending in ``/compressed``) is never matched
        by DDS (Fast DDS reports no incompatible-type event), and the node said only "no input
        for N s" while the graph showed the camera publishing there. Each one is named with the
        fix, in /diagnostics and once in the log; a graph query that fails says so.
        """
        found = []
        silent = set(self.health.silent_sources(no_input_s))
        for topic, cls in self._inputs:
            if topic not in silent:
                continue
            want = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
            try:
                infos = self.get_publishers_info_by_topic(self.resolve_topic_name(topic))
            except Exception as exc:  # noqa: BLE001 - a diagnostic must not end the node
                found.append(f"{topic}: its publishers could not be listed ({exc!r})")
                continue
            others = sorted({str(info.topic_type) for info in infos} - {want})
            if not others:
                continue
            param = ("camera_transports" if hasattr(self.settings, "camera_transports")
                     else "camera_transport")
            swap = {IMAGE_TYPE: ("compressed", COMPRESSED_TYPE),
                    COMPRESSED_TYPE: ("image", IMAGE_TYPE)}.get(want)
            fix = (f"set {param} to {swap[0]} for it (the camera publishes {swap[1]})"
                   if swap is not None and swap[1] in others else
                   "publish the camera's images there, or point the node at the camera's topic")
            text = (f"{topic} has publishers of {', '.join(others)}, but this node reads it as "
                    f"{want} and receives nothing from them; fix: {fix}")
            found.append(text)
            if (topic, tuple(others)) not in self._told_foreign:
                self._told_foreign.add((topic, tuple(others)))
                self.get_logger().warning(text)
        return found

    def on_qos_event(self, description: str) -> None:
        self.health.qos_event(description)
        self.get_logger().warning(f"incompatible QoS: {description}. Fix: make the camera and "
                                  "'input_reliability' agree (best_effort receives from both)",
                                  throttle_duration_sec=5.0)

    # -- annotations ------------------------------------------------------------------------------

    def make_annotations_publisher(self, ns: str) -> Any:
        """Lifecycle publisher of ``<ns>/annotations`` (foxglove_msgs/ImageAnnotations), or None
        when ``publish_annotations`` is off or foxglove_msgs is not installed (logged, shown in
        /diagnostics: the node's real outputs do not depend on a visualisation package)."""
        if not self.settings.publish_annotations:
            self.annotations_state = "off (publish_annotations: false)"
            return None
        try:
            cls = msg_class(IMAGE_ANNOTATIONS)
        except SensePerceptionError as exc:
            self.annotations_state = f"unavailable: {exc}"
            self.get_logger().warning(
                f"no <ns>/annotations: {exc}. Install foxglove_msgs (apt install "
                "ros-$ROS_DISTRO-foxglove-msgs) or set publish_annotations: false")
            return None
        self.annotations_state = "on (while subscribed)"
        return self.create_lifecycle_publisher(cls, join_topic(ns, "annotations"), self.output_qos())

    # -- the output table ---------------------------------------------------------------------------

    def make_publishers(self, table: Sequence[Output], ns: str,
                        switches: dict[str, Any]) -> dict[str, Any]:
        """A lifecycle publisher for each row of ``table`` that is on, in camera namespace ``ns``.

        Returns:
            {row name: publisher}. ImageAnnotations go through :meth:`make_annotations_publisher`
            (absent when off or foxglove_msgs is missing); latched rows are transient-local.
        """
        pubs: dict[str, Any] = {}
        try:
            self._add_publishers(pubs, table, ns, switches)
        except BaseException:
            # A row that cannot be made (its message package not installed: Autoware's ROIs
            # without tier4_perception_msgs) failed configure after the rows before it were made:
            # they were never destroyed, five more publishers on the camera's topics at every
            # configure tried again. Those made are destroyed before the failure goes on.
            self.destroy_publishers(pubs)
            raise
        return pubs

    def _add_publishers(self, pubs: dict[str, Any], table: Sequence[Output], ns: str,
                        switches: dict[str, Any]) -> None:
        """:meth:`make_publishers`' loop: each publisher made goes into ``pubs`` at once."""
        for row in table:
            if row.msgtype == IMAGE_ANNOTATIONS:
                pub = self.make_annotations_publisher(ns)
            elif row in enabled_outputs([row], switches):
                topic = output_topic(row, ns, switches)
                profile = (qos.label_info_profile() if row.latched
                           else qos.profile("reliable", 1, what="output") if row.keep_last_one
                           else self.output_qos())
                pub = self.create_lifecycle_publisher(
                    msg_class(row.msgtype), topic, profile,
                    event_callbacks=qos.publisher_events(topic, self.on_qos_event))
            else:
                pub = None
            if pub is not None:
                pubs[row.name] = pub

    def destroy_publishers(self, pubs: dict[str, Any]) -> None:
        """Destroy the publishers of :meth:`make_publishers`."""
        for pub in pubs.values():
            self.destroy_lifecycle_publisher(pub)

    @staticmethod
    def publish_frame(pubs: dict[str, Any], table: Sequence[Output], ns: str, frame: Any,
                      switches: dict[str, Any] | None = None) -> None:
        """Publish a frame's messages (:func:`~sense_perception.core.output.frame_outputs.frame_messages`)
        on ``pubs``: latched rows are published on activation, not per frame, and on-demand rows
        only while someone subscribes (nothing is built for nobody). ``switches``: those the
        publishers were made with (:meth:`make_publishers`)."""
        def wanted(row: Output) -> bool:
            pub = pubs.get(row.name)
            return pub is not None and not row.latched and (
                not row.on_demand or pub.get_subscription_count() > 0)

        for message in frame_messages(table, ns, frame, wanted, switches):
            pub = pubs[message.output.name]
            pub.publish(to_msg(pub.msg_type, message.message))

    # -- diagnostics ------------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        """Publish one DiagnosticArray with this node's status (timer callback)."""
        settings = self.settings
        no_input = settings.no_input_warn_s if settings is not None else 3.0
        extra = {"state": self.lifecycle_state}
        if self.lifecycle_state == "active" and settings is not None:
            extra["input_qos"] = qos.describe(self.input_qos())
        try:
            extra.update(self.status_values())
        except Exception as exc:  # noqa: BLE001
            extra["diagnostic_extra_error"] = repr(exc)
        if self.annotations_state and self.lifecycle_state != "unconfigured":
            extra["annotations"] = self.annotations_state
        cameras = self.camera_health if self.lifecycle_state == "active" else None
        # one moment of the cameras' health, checked for silence first: the node's status and
        # the cameras' beside it disagreed (faults named before the check, statuses after it)
        faults, camera_statuses = cameras.report(time.monotonic()) if cameras is not None \
            else ("", [])
        if cameras is not None:
            extra["camera_faults"] = faults or "none"
        stall = self._stalled()
        if stall is not None:
            extra["inference_running_s"] = f"{self._watch.running_s() or 0.0:.1f}"
        status = self.health.report(
            self.get_fully_qualified_name(), self.hardware_id(), extra, no_input,
            expect_input=self.lifecycle_state == "active")
        try:
            warnings = self.status_warnings()
        except Exception as exc:  # noqa: BLE001
            warnings = [f"diagnostic_warnings failed: {exc!r}"]
        if self.lifecycle_state == "active" and settings is not None:
            warnings += self._foreign_publishers(no_input)
        if warnings:
            status["message"] = "; ".join(([] if status["level"] == messages.OK else [status["message"]])
                                          + warnings)
            status["level"] = max(status["level"], messages.WARN)
        status = name_camera_faults(status, faults)
        statuses = [status]
        node = self.get_fully_qualified_name()  # one status per camera, hardware_id = its topic
        statuses += [{**c, "name": f"{node} {c['name']}"} for c in camera_statuses]
        if stall is not None:  # the cameras' statuses are those of their last frame judged
            status["message"] = "; ".join([stall] + ([] if status["level"] == messages.OK
                                                     else [status["message"]]))
            status["level"] = messages.ERROR
            # each camera waits on it: each still said its last verdict (OK) beside the ERROR
            running = self._watch.running_s() or 0.0
            statuses[1:] = [waiting_camera(c, running, self.settings.inference_stall_s)
                            for c in statuses[1:]]
        worker, slots = self._worker, self._slots
        # (slots closed: the thread was stopped on purpose, by a transition under way)
        if self.lifecycle_state == "active" and worker is not None and not worker.is_alive() \
                and slots is not None and not slots.closed:
            status["level"] = messages.ERROR
            status["message"] = (f"inference thread stopped ({self._worker_error or 'no reason'}): "
                                 "no frame is processed; deactivate and activate the node")
        if self.config_error and self.lifecycle_state == "unconfigured":
            status["level"] = messages.ERROR
            status["message"] = f"not configured: {self.config_error}"
        elif self.activate_error and self.lifecycle_state in ("unconfigured", "inactive"):
            status["level"] = messages.ERROR
            status["message"] = (f"{self.lifecycle_state}: activate failed ({self.activate_error}), "
                                 "no frame is processed; fix the cause, then activate the node "
                                 "again (ros2 lifecycle set NODE activate)")
        elif self.lifecycle_state in ("unconfigured", "inactive") and status["level"] == messages.OK:
            status["message"] = f"{self.lifecycle_state}: waiting for lifecycle transitions"
        elif self.lifecycle_state == "finalized":  # shut down for good: it will process nothing
            status["level"] = max(status["level"], messages.WARN)
            status["message"] = "finalized: shut down, no frame is processed; restart the node"
        now = self.get_clock().now().seconds_nanoseconds()
        # /diagnostics goes to every participant of the domain: no path that names a person
        statuses = [self._status_for_domain(s) for s in statuses]
        array_ = messages.diagnostic_array(Header(int(now[0]), int(now[1]), ""), statuses)
        self._diag_pub.publish(to_msg(DiagnosticArray, array_))


def autostart(node: PerceptionNode) -> bool:
    """Configure and activate ``node`` when its ``autostart`` parameter is true; False if that failed."""
    if not node.get_parameter("autostart").value:
        node.get_logger().info("autostart is false: waiting for lifecycle transitions")
        return True
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def spin(nodes: Sequence[PerceptionNode], executor: Any) -> None:
    """Spin until Ctrl-C / shutdown, then stop workers and destroy the nodes."""
    from rclpy.executors import ExternalShutdownException

    for node in nodes:
        executor.add_node(node)
    try:
        _spin_through_destroyed_handles(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal shutting the context down while the executor builds its wait set makes rclpy
        # raise RCLError ("the given context is not valid"): that is the stop asked for, not a crash.
        if executor.context.ok():
            raise
    finally:
        stop_nodes(nodes)
        executor.shutdown(timeout_sec=1.0)


def stop_nodes(nodes: Sequence[PerceptionNode]) -> None:
    """Stop every node's inputs first, then wait for their inference threads together (the
    longest frame in flight, not the sum), then destroy the nodes."""
    for node in nodes:
        node._close_inputs()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for node in nodes:
        node._join_worker(deadline)
        node.destroy_node()


def _spin_through_destroyed_handles(executor: Any, limit: int = 100) -> None:
    """``executor.spin()``, spun again when rclpy raises InvalidHandle out of it.

    A lifecycle transition destroys subscriptions and publishers (and their event handlers) in
    a callback; on a multi-threaded executor another thread may be building its wait set with
    them just then, and rclpy 7.1 raises InvalidHandle out of spin (ros2/rclpy#1284) instead of
    leaving them out: ``run`` ended with a traceback, its nodes gone. The next wait set no longer
    holds them. ``limit`` such errors within a second mean something else is wrong: raised.
    """
    from rclpy.exceptions import InvalidHandle

    recent: list[float] = []
    while True:
        try:
            executor.spin()
            return
        except InvalidHandle:
            if not executor.context.ok():
                raise
            now = time.monotonic()
            recent = [t for t in recent if now - t < 1.0] + [now]
            if len(recent) >= limit:
                raise
