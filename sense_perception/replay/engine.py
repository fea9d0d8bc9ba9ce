"""Replay a rosbag2 recording through the perception core: the engine behind ``sense-perception replay``.

Per exterior camera frame: decode -> ObjectDetector (frames of several cameras close in bag time
share one ``detect`` call) -> per-camera tracker -> Detection2DArray and foxglove_msgs
ImageAnnotations. The configured cabin camera (``driver_monitor.camera_topic``) shows the
driver: it is never an exterior camera (no detector, no ``--video``), only ``cabin``.
Per cabin frame (``cabin`` topic only, never an exterior camera):
DriverIdentifier -> faces (Detection2DArray, ImageAnnotations captioned with the pseudonymous
driver id only), the driver identity (Classification), the driver attention (Classification) and
the head pose (PoseStamped, when a face was measured); a sensor_msgs/CameraInfo on the cabin
camera's ``camera_info`` topic (``driver_monitor.camera_info_topic``) gives the head pose its
intrinsics. Outputs keep the input's header and bag timestamp, so they line up with the input in
Foxglove or ``ros2 bag play``.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from ..config import load_params
from ..core.output import messages
from ..core.output.annotations import IMAGE_ANNOTATIONS, image_annotations, image_size_of
from ..core.imaging.frame_guard import InputLimits, safe_decode
from ..core.imaging.image_decode import ImageView
from ..core.health.inference_guard import safe_detect
from ..core.output.topics import camera_info_topic, output_namespaces
from ..core.types import Detections, Header
from ..errors import BagError, ImageDecodeError, PrivacyError
from ..outpaths import check_apart, check_writable_dir
from ..face.results import (FACE_LABELS, attention_results, attention_values, face_captions,
                            face_detections, head_pose_message, identity_results, state_name)
from .reader import Bag, BagMessage, open_bag
from .skips import ALL_TOPICS, SkipLog
from .summary import SummaryBuilder, write_summary
from .writer import LATCHED_QOS, OutputBag, OutputWriteError

LOG = logging.getLogger(__name__)

DETECTION_ARRAY = "vision_msgs/msg/Detection2DArray"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
CLASSIFICATION = "vision_msgs/msg/Classification"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
DIAGNOSTICS_TOPIC = "/diagnostics"
DIAGNOSTICS_PERIOD_NS = 1_000_000_000

# Smaller frames are invalid, not inference failures: the detector's band tiles and the face
# detector need more pixels than that, and no real camera sends less.
MIN_FRAME_PX = 32

# What --out receives; --force replaces exactly these, nothing else in the directory.
BAG_DIR, VIDEO_DIR, SUMMARY_FILE = "bag", "video", "summary.json"
# Written before the first output byte and removed only once summary.json is complete, so outputs
# cut short (disk full, crash, kill) are always recognisable as incomplete.
INCOMPLETE_FILE = "REPLAY_INCOMPLETE.txt"


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
    rate: float = 1.0
    force: bool = False
    batch_window_s: float = 0.05  # frames of different cameras this close in bag time share a batch
    # Fleet replay: bags of a fleet differ (not every car has a cabin camera); a bag without the
    # ``cabin`` topic replays its exterior cameras with a note instead of failing.
    cabin_if_present: bool = False


@dataclass
class ReplayResult:
    """Where the outputs are and what happened."""

    summary: dict[str, Any]
    out_bag: Path
    summary_path: Path
    videos: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every selected frame was read, decoded and processed."""
        return not self.summary["skipped"]


class _Frame(NamedTuple):
    topic: str
    timestamp: int  # bag time, ns
    header: Header
    image: np.ndarray | ImageView  # a view of the message buffer on exterior cameras
    started: float  # perf_counter() when its decode began


def prepare_out(out: Path, force: bool) -> None:
    """Create ``out``; refuse a non-empty one unless ``force`` (then replace only replay outputs).

    Raises:
        BagError: ``out`` is a file, or holds files and ``force`` is false.
    """
    if out.exists() and not out.is_dir():
        raise BagError(f"--out {out} is a file; give a directory")
    check_writable_dir(out, error=BagError)  # an unwritable --out fails before any model loads
    if any(out.iterdir()):
        if not force:
            raise BagError(f"--out {out} is not empty; pass --force to replace its replay outputs "
                           f"({BAG_DIR}/, {VIDEO_DIR}/, {SUMMARY_FILE}, {INCOMPLETE_FILE}) or "
                           "choose another directory")
        for name in (BAG_DIR, VIDEO_DIR):
            if (out / name).is_symlink():
                (out / name).unlink()  # the link only, never what it points to
            elif (out / name).exists():
                shutil.rmtree(out / name)
        for name in (SUMMARY_FILE, f".{SUMMARY_FILE}.tmp", INCOMPLETE_FILE):
            (out / name).unlink(missing_ok=True)


def configured_cabin_topic(config: Path | None) -> str:
    """The cabin camera of ``config`` (``driver_monitor.camera_topic``, else the node's default)."""
    from ..ros.settings import DriverMonitorNodeSettings

    default = DriverMonitorNodeSettings.__dataclass_fields__["camera_topic"].default
    return str(load_params(config, "driver_monitor").get("camera_topic", default))


def select_topics(bag: Bag, topics: list[str] | None, cabin: str | None,
                  skipped: SkipLog, private: str | None = None) -> list[str]:
    """Camera topics to replay: ``topics`` (checked) or every image topic, plus ``cabin``.

    Topics whose type is unknown are recorded as skipped: in auto mode they might carry images.
    ``private`` (the configured cabin camera when it is not ``cabin``) is never an exterior
    camera: left out of the automatic choice, refused in ``topics``.

    Raises:
        BagError: a named topic is missing or not an image topic, or no image topic is left.
        PrivacyError: ``topics`` names ``private``.
    """
    if private and private in (topics or []):
        raise PrivacyError(f"topic {private} is the cabin camera (driver_monitor.camera_topic): it "
                           "shows the driver, so it is never run through the object detector as "
                           f"an exterior camera; pass --cabin {private} to replay it through the "
                           "driver pipeline, or a --config whose camera_topic names the real cabin "
                           "camera")
    available = ", ".join(t for t in bag.image_topics() if t != private) or "none"
    auto = [t for t in bag.image_topics() if t != private]
    wanted = list(dict.fromkeys([*(topics or auto), *([cabin] if cabin else [])]))
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
    if not topics:
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


def _namespaces(topics: list[str]) -> dict[str, str]:
    # The nodes' rule: two topics of one camera (raw and compressed) keep their full topic names.
    return dict(zip(topics, output_namespaces(topics)))


class Replayer:
    """One replay run. Build it, then call :meth:`run`.

    Args:
        options: what to do.
        progress: called with (messages read so far, messages expected or None) as reading goes.
        detector, identifier: prebuilt core objects (tests share them between runs); default
            built from the config file like the nodes do.
    """

    def __init__(self, options: ReplayOptions,
                 progress: Callable[[int, int | None], None] | None = None,
                 detector: Any = None, identifier: Any = None) -> None:
        self.options = options
        self.progress = progress
        self._detector = detector
        self._identifier = identifier
        if options.rate <= 0:
            raise BagError(f"--rate must be > 0, got {options.rate}")

    # -- setup ------------------------------------------------------------------------------------

    def _build_core(self, exterior: list[str], cabin: str | None) -> None:
        source = str(self.options.config) if self.options.config else "default parameters"
        # The input.* size limits of the node that would handle each camera apply here too.
        self._limits = {role: InputLimits.from_params(load_params(self.options.config, node), source)
                        for role, node in (("exterior", "object_detector"),
                                           ("cabin", "driver_monitor"))}
        if exterior and self._detector is None:
            from ..core.detection.detector_setup import build_detector

            self._detector = build_detector(load_params(self.options.config, "object_detector"),
                                            source)
        if cabin and self._identifier is None:
            from ..face.pipeline import DriverIdentifier

            self._identifier = DriverIdentifier.from_params(
                load_params(self.options.config, "driver_monitor"), source)
        self._trackers = None
        self._ignore = None
        if exterior:
            from ..core.detection.ignore_regions import IgnoreRegions

            self._ignore = IgnoreRegions.from_params(
                load_params(self.options.config, "object_detector"), source)
            for topic in self._ignore.topics:
                if topic not in exterior:  # a region of a camera this replay does not detect on
                    LOG.warning("detector.ignore_regions.polygons in %s names %s, which is not "
                                "an exterior camera of this replay (%s): not applied", source,
                                topic, ", ".join(exterior))
        if exterior:
            from ..core.tracking.tracker import TrackerBank, TrackingConfig

            config = TrackingConfig.from_params(load_params(self.options.config, "object_detector"),
                                                source)
            if config.enabled:
                self._trackers = TrackerBank(config, self._detector.label_names)

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
        try:
            prepare_out(out, opts.force)
            return self._run(bag, out)
        finally:
            bag.close()

    def _run(self, bag: Bag, out: Path) -> ReplayResult:
        opts = self.options
        skipped = bag.skipped
        self._skipped = skipped
        cabin = opts.cabin
        if cabin and opts.cabin_if_present and cabin not in bag.topics:
            bag.notes.append(f"cabin topic {cabin} is not in this bag: exterior cameras only")
            cabin = None
        private = self._cabin_camera(bag, cabin)
        topics = select_topics(bag, opts.topics, cabin, skipped, private)
        self._cabin = opts.cabin if opts.cabin in topics else None
        self._exterior = [t for t in topics if t != self._cabin]
        self._publisher = None
        if opts.publish:  # first: without rclpy this fails before models load or outputs exist
            from .publish import LivePublisher

            self._publisher = LivePublisher(rate=opts.rate, skipped=skipped)
            # Before the models load: subscribers discover the publishers meanwhile, so the
            # first frames are not lost to discovery.
            self._publisher.advertise([(t, m.msgtype, m.qos) for t, m in bag.topics.items()
                                       if m.known])
        try:
            self._setup(bag, out, topics)
        except BaseException:
            if self._publisher is not None:
                self._publisher.close()
            raise
        wall0 = time.perf_counter()
        failure: BaseException | None = None
        try:
            try:
                self._loop(bag, topics, skipped)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                # Whatever happened, leave readable outputs: a closed MCAP and finished videos.
                wall, videos = self._finish(skipped, wall0, failure)
            if self._last_attention is not None:
                self._summary.set_attention_time(self._identifier.attention.monitor.time_in_state)
            summary = self._summary.build(wall, skipped.entries())
            try:
                write_summary(out / SUMMARY_FILE, summary)
            except OSError as exc:
                raise OutputWriteError(out / SUMMARY_FILE, exc) from exc
        except OutputWriteError as exc:
            raise _incomplete(out, exc) from exc
        (out / INCOMPLETE_FILE).unlink(missing_ok=True)
        return ReplayResult(summary, out / BAG_DIR, out / SUMMARY_FILE, videos,
                            list(bag.notes) + self._notes)

    def _cabin_camera(self, bag: Bag, cabin: str | None) -> str | None:
        """The configured cabin camera when it is in ``bag`` but not ``cabin``, else None.

        It shows the driver: it is never treated as an exterior camera (detector, video). Notes
        a ``--cabin`` other than the configured cabin camera.
        """
        configured = configured_cabin_topic(self.options.config)
        source = self.options.config or "the default parameters"
        if cabin and cabin != configured:
            note = (f"--cabin {cabin} is not the configured cabin camera (driver_monitor."
                    f"camera_topic {configured} in {source}); check the topic, or set camera_topic "
                    "in the --config")
            LOG.warning("%s", note)
            bag.notes.append(note)
        if configured == cabin or configured not in bag.topics:
            return None
        if not self.options.topics:
            bag.notes.append(f"{configured} is the cabin camera (driver_monitor.camera_topic in "
                             f"{source}): not replayed without --cabin {configured}, never run "
                             "through the object detector nor filmed as an exterior camera")
        return configured

    def _finish(self, skipped: SkipLog, wall0: float,
                failure: BaseException | None) -> tuple[float, list[Path]]:
        """Flush pending frames and close every output; returns the wall time and the videos.

        After a ``failure`` this is best effort: later errors are logged, the failure is what the
        caller raises. Without one, the first error is raised once everything is closed.
        """
        errors: list[BaseException] = []
        if not isinstance(failure, OutputWriteError):  # after a failed write more writes fail too
            try:
                self._flush(self._pending)
                if self._last is not None:  # final state of every camera, at the last frame's time
                    self._write_diagnostics(self._last[1], self._last[0], skipped)
            except Exception as exc:  # noqa: BLE001 - closing the outputs below must still happen
                errors.append(exc)
        wall = time.perf_counter() - wall0
        videos: list[Path] = []
        for name in ("_videos", "_publisher", "_out"):
            target = getattr(self, name)
            if target is None:
                continue
            try:
                closed = target.close()
            except Exception as exc:  # noqa: BLE001 - the other outputs must still be closed
                errors.append(exc)
                continue
            if name == "_videos":
                videos = closed
        if errors and failure is None:
            raise errors[0]
        for exc in errors:
            LOG.debug("while closing the outputs after %r: %r", failure, exc)
        return wall, videos

    def _setup(self, bag: Bag, out: Path, topics: list[str]) -> None:
        self._build_core(self._exterior, self._cabin)
        self._ns = _namespaces(topics)
        self._summary = SummaryBuilder(topics)
        self._diag_next: int | None = None
        self._cam_stats = {t: {"frames": 0, "detections": 0} for t in topics}
        self._label_info_done: set[str] = set()
        self._pending: list[_Frame] = []
        self._last: tuple[Header, int] | None = None  # header and bag time of the last frame
        self._last_attention: Any = None
        self._notes: list[str] = []
        self._camera_info = self._camera_info_topic(bag)
        _mark_incomplete(out, "this replay has not finished (it is running, or it was stopped by "
                              "a crash, a kill or a write error); the outputs here are incomplete")
        self._out = OutputBag(out / BAG_DIR, bag.typestore)
        self._videos = None
        if self.options.video or self.options.video_cabin:
            from .video import VideoSet

            self._videos = VideoSet(out / VIDEO_DIR, self._fps_by_topic(bag, topics))

    def _camera_info_topic(self, bag: Bag) -> str | None:
        """The cabin camera's CameraInfo topic in the bag, if it has one and attention runs."""
        if self._cabin is None or getattr(self._identifier, "attention", None) is None:
            return None
        setting = load_params(self.options.config, "driver_monitor").get("camera_info_topic", "auto")
        topic = camera_info_topic(self._cabin, str(setting))
        meta = bag.topics.get(topic) if topic else None
        if meta is None or meta.msgtype != CAMERA_INFO:
            return None
        return topic

    def _on_camera_info(self, bag: Bag, msg: BagMessage, skipped: SkipLog) -> None:
        info = bag.deserialize_or_skip(msg, skipped)
        attention = self._identifier.attention
        if info is not None and not attention.set_camera_info(info):
            note = (f"{msg.topic}: {attention.camera_info_error}; the head pose uses "
                    "the previous or the default intrinsics")
            if note not in self._notes:
                self._notes.append(note)

    def _loop(self, bag: Bag, topics: list[str], skipped: SkipLog) -> None:
        window_ns = self.options.batch_window_s * 1e9
        pending = self._pending
        expected = sum(bag.topics[t].count for t in topics) or None
        done = 0
        read = list(bag.topics) if self._publisher else (
            topics + [self._camera_info] if self._camera_info else topics)
        try:
            for msg in bag.messages(read):
                if self._publisher is not None:
                    self._publisher.play(msg, bag.topics[msg.topic].qos)
                if msg.topic == self._camera_info:
                    self._on_camera_info(bag, msg, skipped)
                    continue
                if msg.topic not in self._ns:
                    continue  # played into the graph only (--publish)
                done += 1
                frame = self._decode(bag, msg, skipped)
                if frame is not None:
                    if self._last is None or msg.timestamp >= self._last[1]:
                        self._last = (frame.header, msg.timestamp)
                    if msg.topic == self._cabin:
                        self._process_cabin(frame)
                    else:
                        if pending and (msg.topic in {p.topic for p in pending}
                                        or msg.timestamp - pending[0].timestamp > window_ns):
                            self._flush(pending)
                        pending.append(frame)
                        if len(pending) == len(self._exterior):
                            self._flush(pending)
                    self._maybe_diagnostics(frame, skipped)
                if self.progress:
                    self.progress(done, expected)
        except KeyboardInterrupt:
            skipped.add(ALL_TOPICS, "replay interrupted (Ctrl-C) before the end of the bag",
                        max((expected or 0) - done, 1))

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

    def _decode(self, bag: Bag, msg: BagMessage, skipped: SkipLog) -> _Frame | None:
        started = time.perf_counter()
        ros_msg = bag.deserialize_or_skip(msg, skipped)
        if ros_msg is None:
            return None
        if self.options.copy_input:
            self._out.write_raw(msg.topic, msg.msgtype, msg.timestamp, msg.data,
                                bag.topics[msg.topic].qos)
        try:
            header = Header.from_msg(ros_msg.header)
        except ImageDecodeError as exc:
            skipped.add_undecodable(msg.topic, exc)
            return None
        limits = self._limits["cabin" if msg.topic == self._cabin else "exterior"]
        # Exterior frames only feed the detector: it reads a raw Image where it lies (no
        # full-frame BGR copy) and a JPEG at the smallest scale it needs. The cabin's face
        # pipeline wants full-resolution BGR.
        exterior = msg.topic != self._cabin
        image, error = safe_decode(ros_msg, limits, zero_copy=exterior,
                                   size_floor=self._detector.decode_floor if exterior else None)
        if error is not None:
            skipped.add_undecodable(msg.topic, error)
            return None
        width, height = image_size_of(image)
        if min(width, height) < MIN_FRAME_PX:
            # Not an inference failure: no camera sends such a frame; a broken driver or a cut
            # recording does. Named as such, with the size, instead of a detector error.
            skipped.add(msg.topic, f"invalid frame: {width}x{height} px is too small to process "
                                   f"(at least {MIN_FRAME_PX}x{MIN_FRAME_PX}); check the camera "
                                   "driver or the recording")
            return None
        return _Frame(msg.topic, msg.timestamp, header, image, started)

    def _emit(self, topic: str, msgtype: str, timestamp: int, message: dict[str, Any],
              qos: list | None = None) -> None:
        obj = self._out.convert(msgtype, message)
        raw = self._out.typestore.serialize_cdr(obj, msgtype)
        self._out.write_raw(topic, msgtype, timestamp, raw, qos or ())
        if self._publisher is not None and self.options.publish_results:
            self._publisher.publish(topic, msgtype, raw, qos or ())

    def _inference_failed(self, frames: list[_Frame], exc: Exception) -> None:
        """Count ``frames`` as skipped because inference raised; the replay goes on."""
        reason = f"inference failed: {type(exc).__name__}: {str(exc)[:200]}"
        for frame in frames:
            self._skipped.add(frame.topic, reason)
        LOG.warning("dropped %d frame(s) of %s: %s", len(frames),
                    ", ".join(sorted({f.topic for f in frames})), reason)

    def _detect(self, pending: list[_Frame]) -> list[tuple[_Frame, Detections]]:
        """Detections of each frame; a frame whose inference raises is counted and left out."""
        pairs = []
        for frame, (dets, error) in zip(pending, safe_detect(self._detector, [f.image for f in pending])):
            if error is not None:
                self._inference_failed([frame], error)
            else:
                pairs.append((frame, dets))
        return pairs

    def _flush(self, pending: list[_Frame]) -> None:
        if not pending:
            return
        detector = self._detector
        results = self._detect(pending)
        for frame, dets in results:
            size = image_size_of(frame.image)
            regions = self._ignore.outlines(frame.topic, *size) if self._ignore else []
            if self._ignore:
                dets = self._ignore.apply(frame.topic, dets, *size)
            if self._trackers is not None:
                dets = self._trackers.update(frame.topic, dets, frame.header.seconds)
            latency_ms = (time.perf_counter() - frame.started) * 1e3
            ns = self._ns[frame.topic]
            if frame.topic not in self._label_info_done:
                self._label_info_done.add(frame.topic)
                self._emit(f"{ns}/label_info", LABEL_INFO, frame.timestamp,
                           messages.label_info(frame.header, detector.label_names,
                                               detector.min_score), LATCHED_QOS)
            self._emit(f"{ns}/detections", DETECTION_ARRAY, frame.timestamp,
                       messages.detection2d_array(frame.header, dets, detector.label_names))
            self._emit(f"{ns}/annotations", IMAGE_ANNOTATIONS, frame.timestamp,
                       image_annotations(frame.header, dets, detector.label_names, size,
                                         ignore_regions=regions))
            names = np.asarray(detector.label_names, dtype=object)[dets.labels] if len(dets) else []
            self._summary.add_frame(frame.topic, names, latency_ms)
            self._cam_stats[frame.topic]["frames"] += 1
            self._cam_stats[frame.topic]["detections"] += len(dets)
            if self._videos is not None and self.options.video:
                self._videos.write(frame.topic, _annotate(_bgr(frame.image), dets,
                                                          detector.label_names,
                                                          regions=regions),
                                   frame.header.seconds)
        pending.clear()

    def _process_cabin(self, frame: _Frame) -> None:
        try:
            result = self._identifier.process(frame.image, frame.header.seconds)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not end the replay
            self._inference_failed([frame], exc)
            return
        latency_ms = (time.perf_counter() - frame.started) * 1e3
        ns = self._ns[frame.topic]
        faces = result.faces
        face_dets = face_detections(result)
        self._emit(f"{ns}/faces", DETECTION_ARRAY, frame.timestamp,
                   messages.detection2d_array(frame.header, face_dets, FACE_LABELS))
        self._emit(f"{ns}/annotations", IMAGE_ANNOTATIONS, frame.timestamp,
                   image_annotations(frame.header, face_dets, FACE_LABELS,
                                     image_size_of(frame.image), face_captions(face_dets, result)))
        state = state_name(result)
        self._emit(f"{ns}/driver_identity", CLASSIFICATION, frame.timestamp,
                   messages.classification(frame.header,
                                           identity_results(state, result.driver_id, result.score)))
        attention = result.attention
        if attention is not None:
            self._emit(f"{ns}/driver_attention", CLASSIFICATION, frame.timestamp,
                       messages.classification(frame.header, attention_results(attention)))
            pose = head_pose_message(frame.header, attention)
            if pose is not None:
                self._emit(f"{ns}/head_pose", POSE_STAMPED, frame.timestamp, pose)
            status = attention.status
            self._summary.add_attention(frame.header.seconds, status.state.value, status.level,
                                        status.alert, attention.intrinsics)
            self._last_attention = attention
        self._summary.add_frame(frame.topic, ["face"] * len(faces), latency_ms)
        self._summary.add_identity(frame.header.seconds, state, result.driver_id)
        self._cam_stats[frame.topic]["frames"] += 1
        self._cam_stats[frame.topic]["detections"] += len(faces)
        if self._videos is not None and self.options.video_cabin:
            image = _annotate(frame.image, face_dets, FACE_LABELS, caption=_identity_caption(result))
            if attention is not None:
                from ..face.attention.draw import draw_attention

                draw_attention(image, attention)
            self._videos.write(frame.topic, image, frame.header.seconds)

    def _maybe_diagnostics(self, frame: _Frame, skipped: SkipLog) -> None:
        if self._diag_next is None or frame.timestamp >= self._diag_next:
            self._diag_next = frame.timestamp + DIAGNOSTICS_PERIOD_NS
            self._write_diagnostics(frame.timestamp, frame.header, skipped)

    def _write_diagnostics(self, timestamp: int, header: Header, skipped: SkipLog) -> None:
        lost = {}
        for item in skipped.entries():
            lost[item["topic"]] = lost.get(item["topic"], 0) + item["count"]
        provider = getattr(self._detector, "provider", "") if self._detector else ""
        engine = getattr(self._identifier, "engine", None)
        fallback = {  # GPU providers skipped at model load, and why
            "exterior": _fallback_reasons([self._detector]),
            "cabin": _fallback_reasons([getattr(getattr(engine, part, None), "model", None)
                                        for part in ("detector", "embedder")]
                                       + _attention_models(self._identifier)),
        }
        statuses = []
        for topic, stats in self._cam_stats.items():
            n_lost = lost.get(topic, 0) + lost.get(ALL_TOPICS, 0)
            role = "cabin" if topic == self.options.cabin else "exterior"
            values = {"role": role, "frames": stats["frames"], "detections": stats["detections"],
                      "skipped": n_lost, "provider": provider}
            if role == "exterior":
                values["preprocess"] = getattr(self._detector, "preprocess_device", "")
            elif self._last_attention is not None:
                values.update(attention_values(self._last_attention))
            if fallback[role]:
                values["provider_fallback"] = fallback[role]
            statuses.append(messages.diagnostic_status(
                f"sense_perception replay: {topic}", messages.WARN if n_lost else messages.OK,
                f"{n_lost} messages skipped" if n_lost else "all frames processed",
                hardware_id=topic, values=values))
        self._emit(DIAGNOSTICS_TOPIC, DIAGNOSTIC_ARRAY, timestamp,
                   messages.diagnostic_array(Header(header.sec, header.nanosec, ""), statuses))


def _attention_models(identifier: Any) -> list[Any]:
    attention = getattr(identifier, "attention", None)
    return attention.estimator.models if attention is not None else []


def _fallback_reasons(models: list[Any]) -> str:
    return " | ".join(r for m in models if m is not None for r in getattr(m, "fallback_reasons", ()))


def _mark_incomplete(out: Path, text: str) -> None:
    try:
        (out / INCOMPLETE_FILE).write_text(text + "\n")
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


def _bgr(image: np.ndarray | ImageView) -> np.ndarray:
    # Only the annotated video needs full-size BGR pixels; the conversion is paid only when it is on.
    return image.full_bgr() if isinstance(image, ImageView) else image


def _annotate(image: np.ndarray, dets: Detections, label_names: Any, caption: str = "",
              regions: Any = ()) -> np.ndarray:
    from ..core.output.annotate import draw_detections
    from .video import draw_caption

    out = draw_detections(image, dets, label_names, ignore_regions=regions)
    return draw_caption(out, caption) if caption else out


def replay(options: ReplayOptions, progress: Callable[[int, int | None], None] | None = None,
           **core: Any) -> ReplayResult:
    """Replay ``options.bag``; see :class:`Replayer`."""
    return Replayer(options, progress, **core).run()
