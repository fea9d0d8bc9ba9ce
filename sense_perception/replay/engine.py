"""Replay a rosbag2 recording through the perception core: the engine behind ``sense-perception replay``.

Per exterior camera frame: decode -> ObjectDetector (frames of several cameras close in bag time
share one ``detect`` call) -> per-camera tracker. The configured cabin camera
(``driver_monitor.camera_topic``) shows the driver: it is never an exterior camera (no detector,
no ``--video``), only ``cabin``. Per cabin frame (``cabin`` topic only, never an
exterior camera): DriverIdentifier (identity, attention, head pose); a sensor_msgs/CameraInfo on
the cabin camera's ``camera_info`` topic (``driver_monitor.camera_info_topic``) gives the head pose
its intrinsics. Each frame's results become the messages of the output table the nodes publish
(:mod:`sense_perception.core.output.frame_outputs`: topics, types, builders and switches such as
``publish_annotations`` from the config), so a replayed bag carries what a live graph would.
Outputs keep the input's header and bag timestamp, so they line up with the input in Foxglove or
``ros2 bag play``. The output MCAP is named after the input bag.

The parts, one job each: :mod:`.reader` reads the bag, :mod:`.pipelines` runs the perception,
:mod:`.sink` writes (and with ``--publish`` publishes) the messages, :mod:`.diagnostics` keeps the
``/diagnostics`` statuses, :mod:`.summary` the summary and :mod:`.video` the videos; the
:class:`Replayer` here wires them and owns the loop and the output directory.
"""
from __future__ import annotations

import errno
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import load_params
from ..core.autoware.camera_info import CameraInfoWatch
from ..core.autoware.rois import (AutowareConfig, check_camera_info_topic,
                                  checked_camera_info_topics, rois_topics)
from ..core.frame_clock import FrameClock
from ..core.geometry.positioner import CameraPositions
from ..core.health.camera_health import CameraHealthBank
from ..core.imaging.frame_guard import MIN_FRAME_PX, safe_decode
from ..core.imaging.image_decode import ImageView
from ..core.imaging.mono16_depth import Mono16DepthWatch
from ..core.message_types import CAMERA_INFO, TF_MESSAGE, TF_STATIC
from ..core.output.annotations import image_size_of
from ..core.output.frame_outputs import (AUTOWARE_OBJECTS_SWITCH, AUTOWARE_SWITCH, CABIN_OUTPUTS,
                                         EXTERIOR_OUTPUTS, CabinFrame, ExteriorFrame, Message,
                                         output_topic, switches, taken_topics)
from ..core.output.status import (
    detector_hardware_id,
    detector_values,
    driver_hardware_id,
    driver_last,
    driver_values,
    driver_warnings,
)
from ..core.output.topics import (camera_info_topic, camera_of, cameras_it_may_be,
                                  image_base_topic, join_topic, may_be_camera, output_namespaces,
                                  rectified_topic, same_camera)
from ..core.types import Detections, Header
from ..errors import BagError, ConfigError, ImageDecodeError, PrivacyError
from ..face.privacy import check_cabin_not_exterior, check_identity_topic
from ..fileio import atomic_write, fsync_dir
from ..face.results import FACE_LABELS, state_name
from ..outpaths import REPLAY_MARK, check_apart, check_writable_dir
from ..out_lock import FolderLock
from ..stops import StoppedAfterFailure, signal_of, stopped_by
from .diagnostics import ArrivalClock, PipelineHealth, ReplayDiagnostics
from .pipelines import (
    CABIN,
    EXTERIOR,
    NODES,
    camera_info_entries,
    CabinStage,
    DecodedFrame,
    ExteriorStage,
    autoware_settings,
    build_core,
)
from .reader import Bag, BagMessage, open_bag
from .sink import ResultSink
from .skips import ALL_TOPICS, SkipLog
from .summary import SummaryBuilder, write_summary
from .writer import OutputBag, OutputWriteError

LOG = logging.getLogger(__name__)


# What --out receives; --force replaces exactly these, nothing else in the directory.
BAG_DIR, VIDEO_DIR, SUMMARY_FILE = "bag", "video", "summary.json"
# Written before the first output byte and removed only once summary.json is complete, so outputs
# cut short (disk full, crash, kill) are always recognisable as incomplete.
INCOMPLETE_FILE = "REPLAY_INCOMPLETE.txt"
# Notes the replay itself adds (bag.notes, from opening the bag, are per file and topic): a camera
# whose frame_id changes on every frame made a new CameraInfo note per frame, printed at the end
# one line each. The first ones are kept, the rest counted in one last note.
MAX_NOTES = 32
# Written into every --out a replay prepares: --force replaces outputs only where it finds it, so a
# user's own bag/ or summary.json in a folder given as --out is never deleted.
REPLAY_MARKER = REPLAY_MARK


@dataclass
class ReplayOptions:
    """What to replay and where to; mirrors the command-line options."""

    bag: Path
    out: Path
    topics: list[str] | None = None
    cabin: str | None = None
    config: Path | None = None
    copy_input: bool = False
    video: bool = False
    # The cabin video shows the driver's face: written only on this explicit, separate request.
    video_cabin: bool = False
    publish: bool = False
    # With publish: also publish the replay's own results (False: only the bag and /clock, for
    # live nodes under test that publish those topics themselves).
    publish_results: bool = True
    # With publish: also play the cabin camera's images (the driver's face) into the graph; held
    # back without it (R80), as the cabin video is written only on request.
    publish_cabin: bool = False
    rate: float = 1.0
    force: bool = False
    batch_window_s: float = 0.05  # frames of different cameras this close in bag time share a batch
    # Fleet replay: bags of a fleet differ (not every car has a cabin camera); a bag without the
    # ``cabin`` topic replays its exterior cameras with a note instead of failing.
    cabin_if_present: bool = False
    # Camera calibration (JSON, see core/geometry/calibration.py) of calibration_camera, or of
    # the one exterior camera replayed ("": refused with several); None: each camera's
    # CameraInfo in the bag plus /tf_static.
    calibration: Path | None = None
    calibration_camera: str = ""


@dataclass
class ReplayResult:
    """Where the outputs are and what happened."""

    summary: dict[str, Any]
    out_bag: Path
    summary_path: Path
    videos: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The stop (Ctrl-C, SIGTERM, SIGHUP) that ended the reading early, if one did: the command
    #: exits with its status (130 / 143 / 129), as every other command does (R99).
    stopped: KeyboardInterrupt | None = None

    @property
    def complete(self) -> bool:
        """True when every selected frame was read, decoded and processed."""
        return not self.summary["skipped"]


def out_lock() -> FolderLock:
    """One replay at a time per ``--out``: two replays into one folder (the second with
    ``--force``, or both into an empty one) cleared and wrote each other's outputs, and the
    first to end reported an output bag the other had deleted (or printed the other's), exit 0.
    Held from before the folder is checked until the replay ends (R40)."""
    return FolderLock("replay", "its --force (or this one's) would delete the other's outputs "
                      "while they are written", BagError)


def prepare_out(out: Path, force: bool, lock: FolderLock | None = None) -> None:
    """Create ``out``; refuse a non-empty one unless ``force`` (then replace only replay outputs).
    With ``lock``, ``out`` is locked once it exists, before its contents are judged.

    Nothing is deleted here: :func:`clear_out` replaces the earlier outputs once the replay has
    checked its topics and built its models, so a replay refused for a wrong ``--topics``, config
    or model keeps the earlier replay's good outputs.

    Raises:
        BagError: ``out`` is a file, holds files and ``force`` is false, or holds files that no
            replay wrote (no :data:`REPLAY_MARKER`), whatever ``force``.
    """
    if out.exists() and not out.is_dir():
        raise BagError(f"--out {out} is a file; give a directory")
    check_writable_dir(out, error=BagError)  # an unwritable --out fails before any model loads
    if lock is not None:
        lock.acquire(out)
    if any(out.iterdir()):
        if not force:
            raise BagError(f"--out {out} is not empty; pass --force to replace its replay outputs "
                           f"({BAG_DIR}/, {VIDEO_DIR}/, {SUMMARY_FILE}, {INCOMPLETE_FILE}) or "
                           "choose another directory")
        marked = (out / REPLAY_MARKER).is_file() and not (out / REPLAY_MARKER).is_symlink()
        theirs = [n for n in (BAG_DIR, VIDEO_DIR, SUMMARY_FILE, INCOMPLETE_FILE)
                  if (out / n).exists() or (out / n).is_symlink()]
        if theirs and not marked:  # same names, but no replay wrote them: the user's own files
            raise BagError(f"--out {out} holds {', '.join(theirs)} that sense-perception replay did "
                           f"not write (no {REPLAY_MARKER} there), and --force replaces only a "
                           "replay's own outputs; move them away or choose another directory")
        odd = [n for n in (BAG_DIR, VIDEO_DIR)
               if (out / n).exists() and not (out / n).is_symlink() and not (out / n).is_dir()]
        if odd:  # no replay writes them so: rmtree ended the run in a traceback, outputs marked
            what = "is not a folder" if len(odd) == 1 else "are not folders"
            raise BagError(f"--out {out} holds {', '.join(odd)} that {what} (a replay writes "
                           "folders of those names); move them away or choose another directory")


def clear_out(out: Path) -> None:
    """Delete an earlier replay's outputs in ``out`` (checked by :func:`prepare_out`) but its
    :data:`INCOMPLETE_FILE`, which this replay has written over them first."""
    for name in (BAG_DIR, VIDEO_DIR):
        if (out / name).is_symlink():
            (out / name).unlink()  # the link only, never what it points to
        elif (out / name).exists():
            shutil.rmtree(out / name)
    for name in (SUMMARY_FILE, f".{SUMMARY_FILE}.tmp"):
        (out / name).unlink(missing_ok=True)


def configured_cabin_topic(config: Path | None) -> str:
    """The cabin camera of ``config`` (``driver_monitor.camera_topic``, else the node's default)."""
    from ..ros.settings import DriverMonitorNodeSettings

    default = DriverMonitorNodeSettings.__dataclass_fields__["camera_topic"].default
    return str(load_params(config, "driver_monitor").get("camera_topic", default))


def select_topics(bag: Bag, topics: list[str] | None, cabin: str | None,
                  skipped: SkipLog, private: str | None = None) -> list[str]:
    """Camera topics to replay: ``topics`` (checked; ``[]``: no exterior camera) or, for None, every
    image topic, plus ``cabin``.

    Topics whose type is unknown are recorded as skipped: in auto mode they might carry images.
    ``private`` (the bag's topic of the configured cabin camera when it is not ``cabin``) is never
    an exterior camera: left out of the automatic choice, refused in ``topics`` (``cabin`` in
    ``topics`` is refused by :class:`Replayer` before the bag is opened). A camera is its image
    topic with every image_transport sub-topic (``<base>``, ``<base>/compressed``) and every
    other image of its namespace (``<ns>/image_rect_color``, :func:`camera_of`): any of them of
    the cabin camera shows the driver, so none is taken as an exterior camera (a bag recording
    the cabin's ``image_raw`` and ``image_rect_color`` replayed the rectified one as an exterior
    camera: detector, annotations and a ``--video`` of the driver's face, R70).

    Raises:
        BagError: a named topic is missing or not an image topic, or no image topic is left.
        PrivacyError: ``topics`` names ``private``.
    """
    if private:
        check_cabin_not_exterior(private, topics or [], "driver_monitor.camera_topic", "--topics",
                                 f"pass --cabin {private} to replay it through the driver pipeline, "
                                 "or a --config whose camera_topic names the real cabin camera")
    inside = {camera_of(t) for t in (private, cabin) if t}  # the driver's camera
    auto = [t for t in bag.image_topics() if camera_of(t) not in inside]
    available = ", ".join(t for t in bag.image_topics()
                          if not private or not same_camera(t, private)) or "none"
    wanted = list(dict.fromkeys([*(auto if topics is None else topics),
                                 *([cabin] if cabin else [])]))
    selected = []
    for topic in wanted:
        meta = bag.topics.get(topic)
        if meta is None:
            raise BagError(f"topic {topic} is not in bag {bag.path}; image topics: {available}")
        if not meta.known:
            skipped.add(topic, f"unknown message type {meta.msgtype}: no definition in the bag or "
                               "the typestore", max(meta.count, 1))
        elif not meta.is_image:
            raise BagError(f"topic {topic} carries {meta.msgtype}, not sensor_msgs/msg/Image or "
                           f"CompressedImage; image topics: {available}")
        else:
            selected.append(topic)
    if topics is None:
        for topic in bag.unknown_topics():
            if topic not in wanted:
                skipped.add(topic, f"unknown message type {bag.topics[topic].msgtype}: no definition "
                                   "in the bag or the typestore, so it cannot be checked for images",
                            max(bag.topics[topic].count, 1))
    if not selected:
        held = (f"; the cabin camera {private} is replayed only with --cabin {private}"
                if private in bag.topics else "")
        raise BagError(f"bag {bag.path} has no readable image topic to replay (image topics: "
                       f"{available}{held}); check --topics or the bag")
    return selected


def unused_camera_topics(config: Path | None, replayed: list[str]) -> str:
    """A note when ``config`` names ``object_detector.camera_topics`` other than the exterior
    cameras replayed: without ``--topics`` the replay takes every image topic of the bag (a
    recording's topics seldom match a vehicle's config), so that setting is not followed, and
    says so rather than being silently ignored. "" when it matches or is not set."""
    named = load_params(config, "object_detector").get("camera_topics") if config else None
    # one camera, whichever transport: a config's `/cam/image_raw` is the bag's
    # `/cam/image_raw/compressed` (Autoware's layout records the compressed one)
    if not named or ({image_base_topic(str(t)) for t in named}
                     == {image_base_topic(t) for t in replayed}):
        return ""
    def some(items: list[str]) -> str:  # a config or a bag may name thousands
        more = f" and {len(items) - 5} more" if len(items) > 5 else ""
        return ", ".join(items[:5]) + more if items else "none"

    return (f"object_detector.camera_topics of {config} ({some(list(map(str, named)))}) is not "
            f"followed without --topics: the replay takes every image topic of the bag "
            f"({some(replayed)}); pass --topics to choose")


def describe_topics(bag: Bag) -> str:
    """Every topic of ``bag`` with its type and message count, for error messages."""
    return ", ".join(f"{t} ({m.msgtype}, {m.count} message{'' if m.count == 1 else 's'})"
                     for t, m in sorted(bag.topics.items())) or "no topic at all"


def check_has_frames(bag: Bag, topics: list[str]) -> None:
    """Refuse a replay whose camera ``topics`` hold no message: it would end with exit 0 and
    empty outputs, as if it had succeeded.

    The storage index's counts decide; only when they say 0 for every topic is the bag scanned
    for one message (an index can be missing or stale), so a normal bag costs nothing here.

    Raises:
        BagError: naming the empty topics and what the bag does hold.
    """
    if any(bag.topics[t].count for t in topics):
        return
    scan = bag.messages(topics)
    try:
        if next(scan, None) is not None:
            return
    finally:
        scan.close()
    raise BagError(f"bag {bag.path} holds no message on the camera topic(s) to replay: "
                   f"{', '.join(topics)}; nothing to replay. The bag holds: {describe_topics(bag)}. "
                   "Choose --topics (or --cabin) among the topics with messages, or check the "
                   "recording")


def _namespaces(topics: list[str]) -> dict[str, str]:
    # The nodes' rule: two topics of one camera (raw and compressed) keep their full topic names.
    return dict(zip(topics, output_namespaces(topics), strict=True))


def _result_topics(topics: list[str], cabin: str | None,
                   autoware: AutowareConfig | None = None) -> set[str]:
    """The topics the replay publishes its results on (``--publish``): each camera's
    ``<ns>/<name>`` rows of the output table (the cabin camera's: driver_monitor's) and, with
    ``autoware`` (the config's ``autoware.*``), each exterior camera's Autoware ROI and
    DetectedObjects topics that are on. Those were left out (R50): a recording of an Autoware
    vehicle replayed with ``--config autoware`` had its recorded ROIs on ``.../rois0`` played
    beside the replay's own, two per frame, and a recorded topic of another type there sent the
    replay's ROIs as that type. A template the camera's namespace cannot fill (no index) is left
    to the replay's own check, which refuses it naming the fix."""
    out = set()
    on = {AUTOWARE_SWITCH: autoware.rois_topic if autoware is not None else "",
          AUTOWARE_OBJECTS_SWITCH: autoware.objects_topic if autoware is not None else ""}
    for topic, ns in _namespaces(topics).items():
        rows = CABIN_OUTPUTS if topic == cabin else EXTERIOR_OUTPUTS
        out |= {join_topic(ns, row.name) for row in rows if row.topic is None}
        if topic == cabin:
            continue
        for row in rows:
            if row.topic is not None and row.switch is not None and on.get(row.switch):
                try:
                    out.add(output_topic(row, ns, on))
                except ConfigError:  # no index: _build_core's rois_topics refuses it
                    pass
    return out


class Replayer:
    """One replay run. Build it, then call :meth:`run`.

    The replay reads the bag (:mod:`.reader`), decodes each camera frame, runs it through the
    perception stages (:mod:`.pipelines`), writes the messages of the output table
    (:mod:`sense_perception.core.output.frame_outputs`) through a :class:`~.sink.ResultSink`, and
    keeps the summary (:mod:`.summary`), the ``/diagnostics`` (:mod:`.diagnostics`) and the videos.

    Args:
        options: what to do.
        progress: called with (messages read so far, messages expected or None) as reading goes.
        detector, identifier: prebuilt core objects (tests share them between runs); default
            built from the config file like the nodes do.
        stops: the command's :class:`~sense_perception.stops.Stops` (SIGINT and SIGTERM): a stop
            ends the reading (what was left is counted as skipped), and one arriving while the
            outputs are closed and summary.json is written waits until they are complete.
    """

    def __init__(self, options: ReplayOptions,
                 progress: Callable[[int, int | None], None] | None = None,
                 detector: Any = None, identifier: Any = None, stops: Any = None) -> None:
        self.options = options
        self._stops = stops
        self._stopped: KeyboardInterrupt | None = None  # the stop that ended the reading
        self.progress = progress
        self._detector = detector
        self._identifier = identifier
        if options.rate <= 0:
            raise BagError(f"--rate must be > 0, got {options.rate}")
        if options.cabin:  # a usage error: refused before the bag is opened or --out created
            check_cabin_not_exterior(options.cabin, options.topics or [], "--cabin", "--topics",
                                     "remove it from --topics, which names the exterior cameras "
                                     "(--topics with no topic after it replays the cabin camera "
                                     "alone)")
            # ... and so is identity on a camera the config names as an exterior one
            check_identity_topic(options.cabin, options.config, "--cabin",
                                 "give --cabin the in-cabin camera's topic (driver_monitor."
                                 "camera_topic), or remove it from camera_topics if it is one")
        from ..core.geometry import load_calibration

        # Read (and refused) before anything is opened or cleared.
        self._calibration = load_calibration(options.calibration) if options.calibration else None

    # -- setup ------------------------------------------------------------------------------------

    def _build_core(self, exterior: list[str], cabin: str | None) -> None:
        # Autoware's ROIs (autoware.*): a clash of ROI topics is refused before any model loads.
        self._autoware = autoware_settings(self.options.config)
        # Each camera's CameraInfo as the config's camera_info_topics names it, as the node reads
        # it (R67: the replay read <ns>/camera_info whatever it said).
        entries = camera_info_entries(self.options.config, exterior)
        self._info_topics = {camera: camera_info_topic(camera, entry)
                             for camera, (_, entry) in zip(exterior, entries, strict=True)}
        # ... and so is a ROI or objects topic an input or another output of the replay has.
        inputs = {**{topic: camera for camera, topic in self._info_topics.items() if topic},
                  **{topic: camera for camera, topic in zip(exterior, self._checked_infos(exterior),
                                                            strict=True) if topic}}
        taken = taken_topics(exterior, output_namespaces(exterior), {
            topic: f"the CameraInfo input of camera '{camera}'" for topic, camera in inputs.items()},
            cabin or "")
        rois = rois_topics(exterior, self._autoware.rois_topic, taken=taken)
        if self._autoware.enabled:  # the CameraInfo check runs only with the ROIs on
            check_camera_info_topic(exterior, self._autoware.camera_info_topic, entries)
        rois_topics(exterior, self._autoware.objects_topic, "autoware.objects_topic", {
            **taken, **{t: f"the ROI output of camera '{c}'"
                        for c, t in zip(exterior, rois, strict=True) if t}})
        core = build_core(self.options.config, bool(exterior), bool(cabin), self._detector,
                          self._identifier, exterior_topics=exterior, autoware=self._autoware)
        self._limits, self._settings = core.limits, core.settings
        self._mono16_watch = Mono16DepthWatch()  # a 10/12-bit camera read as 16-bit: warned once
        self._health_settings = core.health
        self._detector, self._identifier, self._trackers = core.detector, core.identifier, core.trackers
        self._ignore = core.ignore
        # a region of a camera this replay does not detect on (in any transport)
        for topic in core.ignore.unmatched(exterior) if core.ignore else []:
            LOG.warning("detector.ignore_regions.polygons in %s names %s, which is not an "
                        "exterior camera of this replay (%s): not applied",
                        self.options.config or "the default parameters", topic,
                        ", ".join(exterior))
        # a rate of a camera this replay does not judge (in any transport), per role
        for role, topics in ((EXTERIOR, exterior), (CABIN, [cabin] if cabin else [])):
            health = self._health_settings[role]
            for topic in health.camera_rates().unmatched(topics) if health.enabled else []:
                LOG.warning("camera_health.expected_rates_hz of %s in %s names %s, which is not "
                            "a camera this replay judges for it (%s): not applied", NODES[role],
                            self.options.config or "the default parameters", topic,
                            ", ".join(topics) or "none")

    # -- run --------------------------------------------------------------------------------------

    def run(self) -> ReplayResult:
        """Replay the bag; returns the summary (also written to ``out/summary.json``).

        Raises:
            BagError: the bag cannot be opened at all, a topic option is wrong, or an output
                cannot be written. ConfigError / ModelError / PrivacyError from the core.
        """
        opts = self.options
        out = Path(opts.out)
        # Before anything is opened or deleted: --force must never clear the input itself.
        check_apart(out, [Path(opts.bag)], error=BagError)
        check_writable_dir(out, create=False, error=BagError)  # before even the bag is read
        bag = open_bag(opts.bag)  # an unreadable input clears nothing in --out
        lock = out_lock()
        try:
            prepare_out(out, opts.force, lock)
            return self._run(bag, out)
        finally:
            lock.release()
            bag.close()

    def _run(self, bag: Bag, out: Path) -> ReplayResult:
        opts = self.options
        skipped = bag.skipped
        self._skipped = skipped
        cabin, topics = self._choose_cameras(bag)
        check_has_frames(bag, topics)  # before anything in --out is replaced
        self._cabin = cabin if cabin in topics else None
        self._exterior = [t for t in topics if t != self._cabin]
        if self._calibration is not None:
            check_calibration_camera(opts.calibration, opts.calibration_camera, self._exterior)
        self._publisher = None
        self._held_back: set[str] = set()  # bag topics --publish does not play
        if opts.publish:  # first: without rclpy this fails before models load or outputs exist
            from .publish import LivePublisher

            # the bag's own recorded results are not played beside them (read before the
            # publisher is made: a config error leaves no ROS 2 context behind)
            reserved = _result_topics(topics, cabin if cabin in topics else None,
                                      autoware_settings(opts.config)) \
                if opts.publish_results else set()
            self._held_back = self._cabin_held_back(bag)
            self._publisher = LivePublisher(rate=opts.rate, skipped=skipped)
            self._publisher.reserve(reserved)
            # Before the models load: subscribers discover the publishers meanwhile, so the
            # first frames are not lost to discovery.
            self._publisher.advertise([(t, m.msgtype, m.qos) for t, m in bag.topics.items()
                                       if m.known and t not in self._held_back])
        try:
            self._setup(bag, out, topics)
        except BaseException:
            if self._publisher is not None:
                self._publisher.close()
            raise
        wall0 = time.perf_counter()
        failure: BaseException | None = None
        try:
            self._loop(bag, topics, skipped)
        except BaseException as exc:
            failure = exc
        # From the loop's end until summary.json is whole and the marker gone, a stop (Ctrl-C,
        # SIGTERM) waits for the block to end: it takes milliseconds, and a stop there lost the
        # summary of a replay whose every frame was done. Should the block fail (a full disk),
        # the stop is raised all the same, naming the failure (its exit status 2 lost the stop).
        try:
            if self._stops is None:
                return self._conclude(bag, out, topics, skipped, wall0, failure)
            with self._stops.obeyed(), self._stops.deferred():
                return self._conclude(bag, out, topics, skipped, wall0, failure)
        except Exception as exc:
            if self._stopped is not None:  # the stop's 130 / 143 / 129, naming the failure (R99)
                raise StoppedAfterFailure(signal_of(self._stopped), exc) from exc
            raise

    def _conclude(self, bag: Bag, out: Path, topics: list[str], skipped: SkipLog, wall0: float,
                  failure: BaseException | None) -> ReplayResult:
        """Close the outputs, then (without a ``failure``, which is raised) write summary.json and
        remove the incomplete marker."""
        try:
            # Whatever happened, leave readable outputs: a closed MCAP and finished videos.
            wall, videos = self._finish(wall0, failure)
            if failure is not None:
                raise failure
            if self._last_attention is not None:
                self._summary.set_attention_time(self._identifier.attention.monitor.time_in_state)
            summary = self._summary.build(wall, skipped.entries())
            for camera in self._exterior:  # how many detections got a position, or why none
                summary["cameras"].setdefault(camera, {})["positions"] = \
                    self._positions.summary(camera)
            for problem in self._positions.new_problems(self._exterior):  # a refused calibration
                self._note(f"{problem}; those frames have 2-D detections only")
            if tf_note := self._positions.tf.cap_note():  # the count at the end, said once
                self._note(tf_note)
            empty = [t for t in topics if not self._received.get(t) and not bag.topics[t].count]
            if empty:  # some cameras replayed, these had nothing: say so, it is not a success
                warnings = [f"{t}: no message in the bag ({bag.topics[t].msgtype}); nothing "
                            "replayed for this camera" for t in empty]
                summary["warnings"] = warnings
                self._notes.extend(warnings)  # one per camera topic, never left out
            if self._cameras:  # per camera topic: seconds in each condition, raise/clear events
                summary["camera_health"] = {t: v for bank in self._cameras.values()
                                            for t, v in bank.summary().items()}
            try:
                # a cabin replay's summary names the driver (pseudonymous id) and their
                # attention over time: private, as its bag is (R80)
                write_summary(out / SUMMARY_FILE, summary, private=self._cabin is not None)
            except OSError as exc:
                raise OutputWriteError(out / SUMMARY_FILE, exc) from exc
            # The marker's removal flushed too (summary.json is on disk by now): unflushed, a
            # power cut after a run reported complete could bring it back beside the summary
            # (fleet's resume then replays the bag again; a user reads the outputs as cut short).
            (out / INCOMPLETE_FILE).unlink(missing_ok=True)
            try:
                fsync_dir(out)
            except OSError as exc:
                raise OutputWriteError(out, exc) from exc
        except OutputWriteError as exc:
            raise _incomplete(out, exc) from exc
        return ReplayResult(summary, out / BAG_DIR, out / SUMMARY_FILE, videos,
                            list(bag.notes) + self._all_notes(), stopped=self._stopped)

    def _choose_cameras(self, bag: Bag) -> tuple[str | None, list[str]]:
        """The cabin camera (None: none) and every camera topic to replay, checked; notes what
        was left out. Nothing is built or written yet.

        A fleet bag (``cabin_if_present``) without the ``--cabin`` topic but with that camera in
        another transport (``<base>`` for ``<base>/compressed``, or the other way round) replays
        that topic as the cabin camera: it was taken for an exterior camera, its frames through
        the detector and into ``--video``, whenever ``--cabin`` was not the configured cabin
        camera.

        Raises:
            BagError, PrivacyError: as :func:`select_topics`.
        """
        opts = self.options
        cabin = opts.cabin
        if cabin and opts.cabin_if_present and cabin not in bag.topics:
            # the same image in another transport first, then another image of that camera
            wanted = image_base_topic(cabin)
            other = sorted((t for t in bag.image_topics() if same_camera(t, cabin)),
                           key=lambda t: (image_base_topic(t) != wanted, t))
            if other:
                bag.notes.append(f"cabin topic {cabin} is not in this bag; {other[0]}, the same "
                                 "camera in another transport or image, is replayed as the cabin "
                                 "camera")
                cabin = other[0]
            else:
                bag.notes.append(f"cabin topic {cabin} is not in this bag: exterior cameras only")
                cabin = None
        private = self._cabin_camera(bag, cabin)
        # the driver's camera, every transport and image of it (camera_of), --cabin's or the
        # configured one: --publish plays its images only with --publish-cabin
        self._driver_cameras = {camera_of(t) for t in (private, cabin) if t}
        topics = select_topics(bag, opts.topics, cabin, bag.skipped, private)
        if opts.topics is None:
            note = unused_camera_topics(opts.config, [t for t in topics if t != cabin])
            if note:
                bag.notes.append(note)
        return cabin, topics

    def _cabin_held_back(self, bag: Bag) -> set[str]:
        """The bag's topics of the driver's camera (:func:`camera_of`: every transport and image
        of it) that ``--publish`` does not play without ``--publish-cabin``; notes them.

        They show the driver's face, which no output holds unless asked (the cabin video needs
        ``--video-cabin``), while ``--publish`` played every topic of the bag, the cabin camera's
        too, with or without ``--cabin``, to every participant of the DDS domain (R80).
        """
        if self.options.publish_cabin:
            return set()
        held = {t for t in bag.topics if camera_of(t) in self._driver_cameras}
        if held:
            note = (f"--publish: the cabin camera's images ({', '.join(sorted(held))}) are not "
                    "played into the graph: they show the driver's face; pass --publish-cabin "
                    "to publish them (a driver_monitor under test needs them)")
            LOG.warning("%s", note)
            bag.notes.append(note)
        return held

    def _cabin_camera(self, bag: Bag, cabin: str | None) -> str | None:
        """The bag's topic of the configured cabin camera, when it has one other than ``cabin``,
        else None.

        It shows the driver: it is never treated as an exterior camera (detector, video). A
        camera is its topic with every image_transport sub-topic and the other images of its
        namespace (:func:`camera_of`: ``image_rect_color`` beside ``image_raw``): a bag recording
        ``/cam/image_raw/compressed`` for a configured ``/cam/image_raw`` (or the raw topic for
        the default compressed one) holds the cabin camera all the same; that recording was
        replayed as an exterior camera, its video filmed the driver. Notes a ``--cabin`` other
        than the configured cabin camera.
        """
        configured = configured_cabin_topic(self.options.config)
        source = self.options.config or "the default parameters"
        if cabin and not may_be_camera(configured, cabin):
            note = (f"--cabin {self.options.cabin} is not the configured cabin camera (driver_monitor."
                    f"camera_topic {configured} in {source}); check the topic, or set camera_topic "
                    "in the --config")
            LOG.warning("%s", note)
            bag.notes.append(note)
        # the configured topic first, then its other transports, then the camera's other images
        # a relative camera_topic (`cabin/image_raw`) resolves in the node's namespace: every
        # bag topic it may resolve to is the cabin camera (R70; none was, the driver replayed
        # as an exterior camera)
        held = sorted((t for t in bag.topics if may_be_camera(configured, t) and t != cabin),
                      key=lambda t: (t != configured,
                                     image_base_topic(t) != image_base_topic(configured), t))
        held = self._one_cabin_camera(bag, configured, source, cabin, held)
        if not held:
            return None
        if not self.options.topics and not (cabin and may_be_camera(configured, cabin)):
            same = "" if held[0] == configured else f" (the camera of {configured})"
            bag.notes.append(f"{held[0]}{same} is the cabin camera (driver_monitor.camera_topic in "
                             f"{source}): not replayed without --cabin {held[0]}, never run "
                             "through the object detector nor filmed as an exterior camera")
        return held[0]

    def _one_cabin_camera(self, bag: Bag, configured: str, source: str | Path, cabin: str | None,
                          held: list[str]) -> list[str]:
        """``held`` (the bag's topics the configured cabin camera may be, ``cabin`` aside) when
        they are one camera; else the choice ``--cabin`` makes, or a refusal.

        A relative ``driver_monitor.camera_topic`` resolves in the node's namespace, which a
        replay does not know: a bare ``image_raw`` may be every camera of the bag that has a
        namespace (R74: it was compared as ``/image_raw``, matched no topic, and the driver was
        replayed as an exterior camera), ``cabin/image_raw`` both ``/a/cabin/`` and
        ``/b/cabin/``. Taking the first such camera as the driver's replayed the others, one of
        them perhaps the driver, as exterior cameras. A ``--cabin`` among them names the one
        (noted); without it the replay is refused, naming the cameras and the fix.

        Raises:
            PrivacyError: the configured camera may be several of the bag's cameras and no
                ``--cabin`` among them says which.
        """
        def possible(topic: str) -> bool:  # an image, or a topic that might carry one
            meta = bag.topics[topic]
            return meta.is_image or not meta.known

        chosen = bool(cabin) and may_be_camera(configured, str(cabin))
        cameras = cameras_it_may_be(configured, [*([cabin] if chosen and cabin else []),
                                                 *(t for t in held if possible(t))])
        if len(cameras) <= 1:
            return held
        listed = [topics[0] for topics in cameras.values()]
        more = f" and {len(listed) - 8} more" if len(listed) > 8 else ""
        which = ", ".join(listed[:8]) + more
        private = configured.startswith("~")
        resolved = ("/<namespace>/<node name>/" if private else "/<namespace>/") + \
            configured.lstrip("~/")
        why = (f"driver_monitor.camera_topic {configured} in {source} is a "
               f"{'private' if private else 'relative'} name: a ROS 2 node resolves it in its own "
               f"namespace ({resolved}), "
               f"which a replay does not know, so in bag {bag.path} it may be any of "
               f"{len(listed)} cameras: {which}")
        if chosen and cabin:
            note = f"{why}; --cabin {cabin} is taken as the cabin camera, the others as exterior"
            LOG.warning("%s", note)
            bag.notes.append(note)
            return [t for t in held if same_camera(t, cabin)]
        raise PrivacyError(
            f"{why}; the driver's camera is neither guessed nor replayed as an exterior camera "
            f"(detector, annotations, --video); fix: set camera_topic in the --config to the "
            f"bag's absolute topic of the cabin camera (such as {listed[0]}), or name it with "
            f"--cabin TOPIC")

    def _finish(self, wall0: float, failure: BaseException | None) -> tuple[float, list[Path]]:
        """Flush pending frames and close every output; returns the wall time and the videos.

        After a ``failure`` this is best effort: later errors are logged, the failure is what the
        caller raises. Without one, the first error is raised once everything is closed.
        """
        errors: list[BaseException] = []
        if not isinstance(failure, OutputWriteError):  # after a failed write more writes fail too
            try:
                if self._stage is not None:
                    self._stage.flush()
                if self._last is not None:  # final state of every camera, at the last frame's time
                    self._diagnostics.write(*self._last)
            except Exception as exc:  # noqa: BLE001 - closing the outputs below must still happen
                errors.append(exc)
        wall = time.perf_counter() - wall0
        videos: list[Path] = []
        for name in ("_videos", "_publisher", "_out"):
            target = getattr(self, name)
            if target is None:
                continue
            try:
                if name == "_videos":
                    videos, problems = target.close_each()
                    self._videos_unfinished(problems, errors)
                else:
                    target.close()
            except Exception as exc:  # noqa: BLE001 - the other outputs must still be closed
                errors.append(exc)
        if errors and failure is None:
            raise errors[0]
        for error in errors:
            LOG.debug("while closing the outputs after %r: %r", failure, error)
        return wall, videos

    def _videos_unfinished(self, problems: list[tuple[str, OutputWriteError]],
                           errors: list[BaseException]) -> None:
        """A video that could not be finished is named in ``skipped`` (exit status 1) and the
        replay's other outputs and summary.json are kept; on a full disk it is an error (R5: the
        bag and summary.json cannot be finished either), added to ``errors``. It was always an
        error: one camera's video cut short lost the summary of a replay whose every frame and
        bag message were done (exit 2, REPLAY_INCOMPLETE.txt)."""
        for topic, exc in problems:
            if exc.disk_full:
                errors.append(exc)
                continue
            self._skipped.add(topic, f"video {VIDEO_DIR}/{exc.path.name} could not be finished: "
                              f"{str(exc)[:200]}")
            LOG.warning("%s", exc)

    def _output_failed(self, output: str, exc: Exception) -> None:
        """One output of one frame could not be written (a message converted or serialised, a
        video frame): counted under ``skipped`` by ``output`` (exit status 1), logged once per
        output; the frame's other outputs and the later frames go on."""
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        where = output if output.startswith(VIDEO_DIR + "/") else f"{output} (the output bag)"
        self._skipped.add(output, f"not written to {where}: {reason}")
        if output not in self._told_output:
            self._told_output.add(output)
            LOG.warning("a frame's output could not be written to %s, the replay goes on "
                        "(counted in summary.json's skipped): %s", where, reason)

    def _write_video(self, topic: str, image: np.ndarray, t: float, private: bool = False) -> None:
        """Add a frame to ``topic``'s video. A frame the video cannot take (OpenCV refusing it,
        an I/O error on that file, the file not created) is counted under ``skipped`` and the
        replay goes on (it ended the replay, its summary unwritten, the later frames lost); a
        full disk stays the replay's end (R5)."""
        videos = self._videos
        assert videos is not None
        where = f"{VIDEO_DIR}/{videos.name_of(topic)}"
        try:
            videos.write(topic, image, t, private=private)
        except OutputWriteError as exc:
            if exc.disk_full:
                raise
            self._output_failed(where, exc)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputWriteError(videos.directory / videos.name_of(topic), exc) from exc
            self._output_failed(where, exc)
        except Exception as exc:  # noqa: BLE001 - counted, named; the replay goes on
            self._output_failed(where, exc)

    def _setup(self, bag: Bag, out: Path, topics: list[str]) -> None:
        self._build_core(self._exterior, self._cabin)
        self._ns = _namespaces(topics)
        self._summary = SummaryBuilder(topics)
        self._stage: ExteriorStage | None = None
        self._cabin_stage: CabinStage | None = None
        # bag time, header and arrival (ns) of the last frame
        self._last: tuple[int, Header, int] | None = None
        self._arrivals = ArrivalClock()
        self._last_attention: Any = None
        self._last_driver: dict[str, Any] | None = None
        self._notes: list[str] = []
        self._notes_left_out = 0  # notes past MAX_NOTES, counted only
        self._received: dict[str, int] = {}  # messages read per camera topic
        # a camera stamping its frames 0 is timed by the bag time, said once
        self._clock = FrameClock(lambda topic: self._note(
            f"{topic}: its header stamps are 0 (the driver does not stamp its frames); its "
            + ("driver attention, identity" if topic == self._cabin else "tracks and velocities")
            + " and camera health are timed by the bag's receive time, its outputs keep the "
            "stamps as they came"))
        self._camera_info = self._camera_info_topic(bag)
        self._exterior_infos = self._exterior_camera_infos(bag)
        # The mount parameters as on the node (they were checked, then left unused: the replay
        # took /tf_static whatever mount_transform or mount_height said).
        self._positions = CameraPositions(self._calibration,
                                          mount=self._settings[EXTERIOR].mount(),
                                          noise=self._settings[EXTERIOR].position_noise(),
                                          calibrated_camera=self.options.calibration_camera)
        self._calibration_topics = self._calibration_inputs(bag)
        # Only now, with the topics checked and the models built, are earlier outputs replaced:
        # marked incomplete (on disk) before any of them is deleted. Deleted first, a stop or a
        # kill while a big bag/ went left the earlier summary.json, which says the replay
        # finished, beside a bag cut short and no marker (R73).
        _mark_replay_output(out)
        _mark_incomplete(out, "this replay has not finished (it is running, or it was stopped by "
                              "a crash, a kill or a write error); the outputs here are incomplete")
        clear_out(out)
        # A cabin replay's bag holds the driver's face boxes, pseudonymous id, head pose and
        # attention (and with --copy-input the face itself): private, as the cabin video is. It
        # was private only with --copy-input: the results kept the umask's mode (0644, or 0666
        # under umask 000), readable by every local user (R80).
        self._out = OutputBag(out / BAG_DIR, bag.typestore, name=output_bag_name(self.options.bag),
                              private=self._cabin is not None)
        self._sink = ResultSink(self._out, self._publisher if self.options.publish_results else None,
                                on_error=self._output_failed)
        self._told_output: set[str] = set()  # outputs whose first failure was logged
        self._cameras = {
            role: CameraHealthBank(role_topics, self._health_settings[role])
            for role, role_topics in ((EXTERIOR, self._exterior),
                                      (CABIN, [self._cabin] if self._cabin else []))
            if role_topics and self._health_settings[role].enabled}
        self._health = self._make_health()
        self._diagnostics = ReplayDiagnostics(list(self._health.values()), self._sink.emit)
        if self._exterior:
            self._stage = ExteriorStage(
                self._detector, self._trackers, {t: self._ns[t] for t in self._exterior},
                switches(self._settings[EXTERIOR], autoware=self._autoware),
                self.options.batch_window_s * 1e9, self._on_exterior, self._inference_failed,
                self._autoware, self._positions, health=self._cameras.get(EXTERIOR),
                ignore=self._ignore, on_judged=self._on_judged)
        if self._cabin:
            self._cabin_stage = CabinStage(
                self._identifier, self._ns[self._cabin],
                switches(self._settings[CABIN], self._identifier.attention is not None),
                self._on_cabin, self._inference_failed, health=self._cameras.get(CABIN),
                on_judged=self._on_judged)
        self._videos = None
        if self.options.video or self.options.video_cabin:
            from .video import VideoSet

            # The cabin video's folder is private too (R88: 0777 under umask 000, where another
            # user could swap the 0600 video before OpenCV opened it by name).
            self._videos = VideoSet(out / VIDEO_DIR, self._fps_by_topic(bag, topics),
                                    private=self.options.video_cabin and self._cabin is not None)

    def _make_health(self) -> dict[str, PipelineHealth]:
        """One :class:`PipelineHealth` per pipeline this replay runs, keyed by camera role."""
        self._bag_now = 0.0  # arrival time (s, ArrivalClock) of the message being handled: the health clock

        def clock() -> float:
            return self._bag_now

        def annotations(role: str) -> str:
            on = self._settings[role].publish_annotations
            return "on" if on else "off (publish_annotations: false)"

        health: dict[str, PipelineHealth] = {}
        if self._exterior:
            health[EXTERIOR] = PipelineHealth(
                NODES[EXTERIOR], self._exterior, clock, self._settings[EXTERIOR].no_input_warn_s,
                annotations(EXTERIOR),
                lambda: {**detector_values(self._detector, self._trackers), **self._camera_info_values(),
                         **self._positions.diagnostic_values(self._exterior)},
                lambda: detector_hardware_id(self._detector),
                lambda: (self._camera_infos.warnings() if self._camera_infos is not None else [])
                + self._positions.warnings(self._exterior),
                cameras=self._cameras.get(EXTERIOR))
        if self._cabin:
            health[CABIN] = PipelineHealth(
                NODES[CABIN], [self._cabin], clock, self._settings[CABIN].no_input_warn_s,
                annotations(CABIN),
                lambda: driver_values(self._identifier, self._last_driver, self._last_attention),
                lambda: driver_hardware_id(self._identifier),
                lambda: driver_warnings(self._identifier), cameras=self._cameras.get(CABIN))
        return health

    def _camera_info_topic(self, bag: Bag) -> str | None:
        """The cabin camera's CameraInfo topic in the bag, if it has one and attention runs."""
        if self._cabin is None or getattr(self._identifier, "attention", None) is None:
            return None
        topic = camera_info_topic(self._cabin, self._settings[CABIN].camera_info_topic)
        meta = bag.topics.get(topic) if topic else None
        if meta is None or meta.msgtype != CAMERA_INFO:
            return None
        return topic

    def _checked_infos(self, exterior: list[str]) -> list[str]:
        """Per exterior camera: the CameraInfo checked for Autoware's fusion
        (``autoware.camera_info_topic``): ``auto`` = the camera's CameraInfo as
        ``camera_info_topics`` names it (``<ns>/camera_info`` where it names none), as the
        node's; "" = none, else the topic named."""
        return checked_camera_info_topics(
            [(camera, self._info_topics.get(camera, "")) for camera in exterior],
            self._autoware.camera_info_topic)

    def _exterior_camera_infos(self, bag: Bag) -> dict[str, list[str]]:
        """{CameraInfo topic: cameras} of the exterior cameras checked for Autoware's fusion (only
        while Autoware's ROIs are on; the CameraInfo topics the bag has)."""
        self._camera_infos: CameraInfoWatch | None = None
        if not self._exterior or not self._autoware.enabled or not self._autoware.camera_info_topic:
            return {}
        self._camera_infos = CameraInfoWatch(list(self._exterior))
        infos: dict[str, list[str]] = {}
        for camera, topic in zip(self._exterior, self._checked_infos(self._exterior), strict=True):
            infos.setdefault(topic, []).append(camera)
        return {t: c for t, c in infos.items()
                if (meta := bag.topics.get(t)) is not None and meta.msgtype == CAMERA_INFO}

    def _camera_info_values(self) -> dict[str, str]:
        if self._camera_infos is None:
            return {}
        return {f"camera_info[{c}]": s for c, s in self._camera_infos.status().items()}

    def _note(self, note: str) -> None:
        """Add ``note`` (printed at the end) once; past :data:`MAX_NOTES` it is only counted."""
        if note in self._notes:
            return
        if len(self._notes) >= MAX_NOTES:
            self._notes_left_out += 1
            return
        self._notes.append(note)
        LOG.warning("%s", note)

    def _all_notes(self) -> list[str]:
        """The notes kept, and how many were left out."""
        if not self._notes_left_out:
            return list(self._notes)
        return [*self._notes, f"{self._notes_left_out} more note(s) not shown (the replay keeps its "
                              f"first {MAX_NOTES}); they repeat the kinds above with other values"]

    def _note_camera_info(self, camera: str, problems: list[str]) -> None:
        for problem in problems:  # each once: the watch reports a problem only the first time
            self._note(f"{camera} CameraInfo: {problem}; Autoware's fusion would ignore or "
                       "misplace this camera")

    def _calibration_inputs(self, bag: Bag) -> dict[str, list[str]]:
        """What places the exterior cameras' detections: topic -> the cameras it calibrates
        (an exterior camera's CameraInfo, as ``camera_info_topics`` names it), or
        ``TF_STATIC``. None for the camera of --calibration [TOPIC=]FILE."""
        if self._calibration is not None and not self.options.calibration_camera:
            return {}
        inputs: dict[str, list[str]] = {}
        for camera in self._exterior:
            if camera == self.options.calibration_camera and self._calibration is not None:
                continue
            # the config's camera_info_topics entry ("" = none), as the node reads it (R67)
            topic = self._info_topics.get(camera, "")
            if not topic:
                continue
            meta = bag.topics.get(topic)
            if meta is not None and meta.msgtype == CAMERA_INFO:
                inputs.setdefault(topic, []).append(camera)
            self._positions.camera_info_topic(camera, topic)
        meta = bag.topics.get(TF_STATIC)
        if meta is not None and meta.msgtype == TF_MESSAGE:
            inputs[TF_STATIC] = [TF_STATIC]
        return inputs

    def _on_calibration_input(self, bag: Bag, msg: BagMessage, skipped: SkipLog) -> None:
        message = bag.deserialize_or_skip(msg, skipped)
        if message is None:
            return
        if msg.topic == TF_STATIC:
            self._positions.tf_static(message)
        else:
            for camera in self._calibration_topics[msg.topic]:
                self._positions.camera_info(camera, message, msg.topic)

    def _on_camera_info(self, bag: Bag, msg: BagMessage, skipped: SkipLog) -> None:
        info = bag.deserialize_or_skip(msg, skipped)
        attention = self._identifier.attention
        # a rectified cabin image (image_rect*) is described by P, not by the raw K and D
        rectified = rectified_topic(self._cabin or "")
        if info is not None and not attention.set_camera_info(info, rectified):
            self._note(f"{msg.topic}: {attention.camera_info_error}; the head pose uses "
                       "the previous or the default intrinsics")

    def _loop(self, bag: Bag, topics: list[str], skipped: SkipLog) -> None:
        expected = sum(bag.topics[t].count for t in topics) or None
        done = 0
        extra = [t for t in (self._camera_info, *self._calibration_topics, *self._exterior_infos) if t]
        read = list(bag.topics) if self._publisher else topics + sorted(set(extra) - set(topics))
        try:
            for msg in bag.messages(read):
                if self._publisher is not None and msg.topic not in self._held_back:
                    self._publisher.play(msg, bag.topics[msg.topic].qos)
                if self.options.copy_input and msg.topic in extra:
                    # The calibration the replay read (CameraInfo, /tf_static) goes with the
                    # copied images, so the output bag alone shows detections_3d in Foxglove's 3-D
                    # panel; images are copied where they are decoded.
                    self._out.write_raw(msg.topic, msg.msgtype, msg.timestamp, msg.data,
                                        bag.topics[msg.topic].qos)
                # One CameraInfo topic may serve several readers: 3-D positions, the cabin's head
                # pose, the Autoware check.
                calibration = msg.topic in self._calibration_topics
                if calibration:
                    self._on_calibration_input(bag, msg, skipped)
                if msg.topic == self._camera_info:
                    self._on_camera_info(bag, msg, skipped)
                    continue
                if msg.topic in self._exterior_infos and self._camera_infos is not None:
                    if (info := bag.deserialize_or_skip(msg, skipped)) is not None:
                        for camera in self._exterior_infos[msg.topic]:
                            self._note_camera_info(camera,
                                                   self._camera_infos.camera_info(camera, info))
                    continue
                if calibration:
                    continue
                if msg.topic not in self._ns:
                    continue  # played into the graph only (--publish)
                done += 1
                self._received[msg.topic] = self._received.get(msg.topic, 0) + 1
                arrival = self._arrivals.step(msg.timestamp)
                self._bag_now = arrival * 1e-9
                self._diagnostics.start()
                self._role_health(msg.topic).frame_received(msg.topic)
                frame = self._decode(bag, msg, skipped, arrival)
                if frame is not None:
                    self._last = (msg.timestamp, frame.header, arrival)
                    if msg.topic == self._cabin:
                        assert self._cabin_stage is not None  # set up with the cabin topic
                        self._cabin_stage.process(frame)
                    else:
                        assert self._stage is not None  # set up with the exterior topics
                        if self._camera_infos is not None:
                            self._note_camera_info(msg.topic, self._camera_infos.image_frame(
                                msg.topic, frame.header.frame_id, image_size_of(frame.image)))
                        self._stage.add(frame)
                    self._diagnostics.maybe_write(frame.timestamp, frame.header, arrival)
                if self.progress:
                    self.progress(done, expected)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM with the command's stop_signals
            self._stopped = exc
            skipped.add(ALL_TOPICS, f"replay interrupted ({stopped_by(exc)}) before the end of "
                        "the bag", max((expected or 0) - done, 1))

    @staticmethod
    def _fps_by_topic(bag: Bag, topics: list[str]) -> dict[str, float]:
        span = bag.time_range
        fps: dict[str, float] = {}
        for topic in topics:
            count = bag.topics[topic].count
            if span and count > 1 and span[1] > span[0]:
                fps[topic] = (count - 1) / ((span[1] - span[0]) * 1e-9)
        return fps

    # -- per frame --------------------------------------------------------------------------------

    def _role_health(self, topic: str) -> Any:
        return self._health[CABIN if topic == self._cabin else EXTERIOR].stats

    def _decode(self, bag: Bag, msg: BagMessage, skipped: SkipLog,
                arrival: int) -> DecodedFrame | None:
        started = time.perf_counter()
        health = self._role_health(msg.topic)
        ros_msg = bag.deserialize_or_skip(msg, skipped)
        if ros_msg is None:
            health.decode_error(msg.topic, ImageDecodeError(
                "msg", f"corrupt message: bytes are not a valid {msg.msgtype}"))
            return None
        if self.options.copy_input:
            self._out.write_raw(msg.topic, msg.msgtype, msg.timestamp, msg.data,
                                bag.topics[msg.topic].qos)
        try:
            header = Header.from_msg(ros_msg.header)
        except ImageDecodeError as exc:
            skipped.add_undecodable(msg.topic, exc)
            health.decode_error(msg.topic, exc)
            return None
        limits = self._limits[CABIN if msg.topic == self._cabin else EXTERIOR]
        # Exterior frames only feed the detector: it reads a raw Image where it lies (no
        # full-frame BGR copy) and a JPEG at the smallest scale it needs. The cabin's face
        # pipeline wants full-resolution BGR.
        exterior = msg.topic != self._cabin
        decoded = safe_decode(ros_msg, limits, zero_copy=exterior,
                              size_floor=self._detector.decode_floor if exterior else None,
                              min_px=MIN_FRAME_PX)
        if decoded.error is not None:
            skipped.add_undecodable(msg.topic, decoded.error)
            health.decode_error(msg.topic, decoded.error)
            return None
        note = self._mono16_watch.check(msg.topic, ros_msg, limits.mono16_bits)
        if note is not None:
            LOG.warning("%s", note)
        seconds = arrival * 1e-9
        # A camera that has never stamped a frame is timed by the bag's receive time: its tracks,
        # or its driver attention and identity (as the node times them by their arrival); stamps
        # that advanced and then stand still stay a cabin camera fault (R19).
        t = self._clock.seconds(msg.topic, header, msg.timestamp * 1e-9)
        return DecodedFrame(msg.topic, msg.timestamp, header, decoded.image, started, seconds, t)

    def _inference_failed(self, frames: list[DecodedFrame], exc: Exception) -> None:
        """Count ``frames`` as skipped because inference raised; the replay goes on."""
        reason = f"inference failed: {type(exc).__name__}: {str(exc)[:200]}"
        for frame in frames:
            self._skipped.add(frame.topic, reason)
            self._role_health(frame.topic).inference_error(
                f"{frame.topic}: {type(exc).__name__}: {exc}", 1)
        LOG.warning("dropped %d frame(s) of %s: %s", len(frames),
                    ", ".join(sorted({f.topic for f in frames})), reason)

    def _on_judged(self, frame: DecodedFrame, messages: list[Message]) -> None:
        """Write the camera health of a frame dropped after it was judged, as the node publishes
        it: a reader synchronising on ``<ns>/camera_health`` sees no gap where things failed."""
        self._sink.write(frame.timestamp, messages)

    def _on_exterior(self, frame: DecodedFrame, result: ExteriorFrame,
                     messages: list[Message]) -> None:
        latency_ms = frame.latency_ms
        self._sink.write(frame.timestamp, messages)
        dets = result.detections
        names = np.asarray(result.label_names, dtype=object)[dets.labels] if len(dets) else []
        self._summary.add_frame(frame.topic, names, latency_ms)
        self._role_health(frame.topic).frame_processed(latency_ms * 1e-3)
        if self._videos is not None and self.options.video:
            self._write_video(frame.topic, _annotate(_bgr(frame.image), dets, result.label_names,
                                                     _health_caption(result.health),
                                                     captions=result.captions(),
                                                     regions=result.ignore_regions),
                              frame.seconds)

    def _on_cabin(self, frame: DecodedFrame, cabin: CabinFrame, messages: list[Message]) -> None:
        latency_ms = frame.latency_ms
        result = cabin.result
        self._sink.write(frame.timestamp, messages)
        attention = result.attention
        if attention is not None:
            status = attention.status
            self._summary.add_attention(frame.seconds, status.state.value, status.level,
                                        status.alert, attention.intrinsics)
            self._last_attention = attention
        self._last_driver = driver_last(result)
        self._summary.add_frame(frame.topic, ["face"] * len(cabin.faces), latency_ms)
        self._summary.add_identity(frame.seconds, state_name(result), result.driver_id)
        self._role_health(frame.topic).frame_processed(latency_ms * 1e-3)
        if self._videos is not None and self.options.video_cabin:
            caption = " | ".join(c for c in (_identity_caption(result),
                                             _health_caption(cabin.health)) if c)
            # The cabin is decoded without zero_copy: _bgr hands its BGR array back as it is.
            image = _annotate(_bgr(frame.image), cabin.faces, FACE_LABELS, caption=caption)
            if attention is not None:
                from ..face.attention.draw import draw_attention

                draw_attention(image, attention)
            # It shows the driver's face: mode 0600, as kept face crops (SECURITY.md P3).
            self._write_video(frame.topic, image, frame.seconds, private=True)


def output_bag_name(bag: Path) -> str:
    """The output MCAP's file name, without ``.mcap``: the input bag's name (``drive.mcap`` and
    the rosbag2 directory ``drive/`` both give ``drive``)."""
    path = Path(bag)
    return path.stem if path.suffix in (".mcap", ".db3") else path.name


def check_calibration_camera(path: Path | None, camera: str, exterior: list[str]) -> None:
    """Refuse ``--calibration FILE`` that would place cameras with another camera's mount.

    The file holds one camera's intrinsics and ``T_base_link_camera``: it was used for every
    exterior camera of its image size, so the cameras of a surround rig (one sensor model, one
    size) were all placed as if mounted where that one camera is; a rear camera's road users
    ahead of the car.

    Raises:
        BagError: several exterior cameras and no camera named (``TOPIC=FILE``), or a named
            camera that is not replayed; each names the cameras and the fix.
    """
    if camera and camera not in exterior:
        raise BagError(f"--calibration {camera}={path}: {camera} is not an exterior camera of "
                       f"this replay ({', '.join(exterior) or 'none'}); name one of them")
    if not camera and len(exterior) > 1:
        raise BagError(f"--calibration {path} holds one camera's calibration and mount, but this "
                       f"replay has {len(exterior)} exterior cameras ({', '.join(exterior)}): "
                       f"each would be placed as if mounted there; fix: --calibration "
                       f"TOPIC={path} names the camera it is for (the others are placed from "
                       "their CameraInfo and /tf_static in the bag), or --topics TOPIC replays "
                       "that camera alone")


def _mark_replay_output(out: Path) -> None:
    """Mark ``out`` as a replay's (see :data:`REPLAY_MARKER`), with its first output file."""
    try:  # temp + rename: a link or FIFO planted under the name is replaced, never written through
        atomic_write(out / REPLAY_MARKER, b"written by sense-perception replay: --force replaces "
                     b"bag/, video/ and summary.json here, nothing else\n", private=False)
    except OSError as exc:
        raise OutputWriteError(out / REPLAY_MARKER, exc) from exc


def _mark_incomplete(out: Path, text: str) -> None:
    try:
        atomic_write(out / INCOMPLETE_FILE, (text + "\n").encode(), private=False)
    except OSError as exc:
        raise OutputWriteError(out / INCOMPLETE_FILE, exc) from exc


def _incomplete(out: Path, exc: OutputWriteError) -> BagError:
    """The error a replay stopped by a failed output write raises; notes why in the marker."""
    marker = out / INCOMPLETE_FILE
    try:  # best effort: the disk may be full; the marker itself is there since the start
        _mark_incomplete(out, f"replay stopped: {exc}; the outputs here are incomplete")
    except OutputWriteError:
        pass
    return BagError(f"replay stopped: {exc}; the outputs in {out} are incomplete and marked so by "
                    f"{marker}; fix: free space on that disk or choose another --out, then run "
                    "again (--force replaces the partial outputs)")


def _identity_caption(result: Any) -> str:
    """The cabin video's caption: the state and the pseudonymous driver id, never the display
    name (SECURITY.md P10: a name burnt into a video leaks with every copy of the file)."""
    state = state_name(result)
    who = result.driver_id
    return f"driver: {state}" + (f" ({who}, {result.score:.2f})" if who else "")


def _health_caption(status: dict[str, Any] | None) -> str:
    """``camera: blocked, low_visibility`` while a camera condition is raised; "" when healthy."""
    if status is None or status["level"] == 0:
        return ""
    return f"camera: {status['message']}"


def _bgr(image: np.ndarray | ImageView) -> np.ndarray:
    # Only the annotated video needs full-size BGR pixels; the conversion is paid only when it is on.
    return image.full_bgr() if isinstance(image, ImageView) else image


def _annotate(image: np.ndarray, dets: Detections, label_names: Any, caption: str = "",
              captions: list[str] | None = None, regions: Any = ()) -> np.ndarray:
    from ..core.output.annotate import draw_detections
    from .video import draw_caption

    out = draw_detections(image, dets, label_names, captions=captions, ignore_regions=regions)
    return draw_caption(out, caption) if caption else out


def replay(options: ReplayOptions, progress: Callable[[int, int | None], None] | None = None,
           **core: Any) -> ReplayResult:
    """Replay ``options.bag``; see :class:`Replayer`."""
    return Replayer(options, progress, **core).run()
