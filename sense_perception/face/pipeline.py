"""The per-frame driver pipeline: detect, pick the driver, then identity (align, embed, match,
decide) and attention (face mesh, head pose, eyes, attention state).

Only the driver's face is embedded and matched; other faces in the cabin (passengers) are detected
so they can be reported or blurred, but never recognised. Attention needs no identity: it runs on
the driver's face whether or not anybody is enrolled.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..durations import duration
from ..core.runtime.progress import loading
from ..core.runtime.session import RuntimeOptions
from ..errors import GalleryError
from .align import ALIGNED_SIZE, align_faces
from .decision import DriverState, IdentityDecider
from .domain_text import gallery_paths, home_paths, redact_paths
from .driver_select import same_face, select_driver
from .gallery import LOCK_WAIT_S, GalleryStore
from .identify import TemplateIndex
from .privacy import check_identity_allowed
from .sface import SFaceEmbedder
from .settings import DriverMonitorSettings, FaceConfig
from .yunet import Faces, YuNetDetector

LOG = logging.getLogger(__name__)


class FaceEngine:
    """Detector, aligner and embedder with their buffers, shared by the pipeline and the CLI.

    Args:
        config: ``face.*`` settings.
        options: onnxruntime providers and threads.
    """

    def __init__(self, config: FaceConfig | None = None, options: RuntimeOptions | None = None) -> None:
        self.config = config or FaceConfig()
        self.region = self.config.region
        self.driver_half = self.config.driver_half
        self.detector = YuNetDetector(self.config.score_threshold, self.config.nms_iou,
                                      self.config.max_side, self.config.top_k, options)
        self.embedder = SFaceEmbedder(options)
        self._aligned = np.empty((1, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)

    def detect(self, image_bgr: np.ndarray) -> Faces:
        """All faces in the image, best score first."""
        return self.detector.detect(image_bgr)

    def select(self, faces: Faces, image_shape: tuple[int, ...]) -> int:
        """Index of the driver's face (largest inside the driver region, one on the driver's half
        of the image first: :func:`~.driver_select.select_driver`), -1 if none."""
        return select_driver(faces.boxes, image_shape, self.region, self.driver_half)

    def embed(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Align and embed faces given their landmarks (N, 5, 2).

        Returns:
            (N, 128) unit embeddings and the (N, 112, 112, 3) aligned crops (a reused buffer when
            N == 1: copy it to keep it).
        """
        landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
        out = self._aligned if landmarks.shape[0] == 1 else None
        aligned = align_faces(image_bgr, landmarks, out=out)
        return self.embedder.embed(aligned), aligned

    def driver_embedding(self, image_bgr: np.ndarray) -> tuple[Faces, int, np.ndarray | None,
                                                                np.ndarray | None]:
        """Detect, select the driver and embed only that face.

        Returns:
            faces, driver index (-1 none), the driver's (128,) embedding and aligned crop or None.
        """
        faces = self.detect(image_bgr)
        index = self.select(faces, image_bgr.shape)
        if index < 0:
            return faces, -1, None, None
        emb, aligned = self.embed(image_bgr, faces.landmarks[index:index + 1])
        return faces, index, emb[0], aligned[0]


@dataclass
class DriverResult:
    """What the pipeline concludes from one frame.

    Attributes:
        faces: every detected face (boxes (N, 4), scores (N,), landmarks (N, 5, 2)), source pixels.
        driver_index: index into ``faces`` of the driver's face, -1 when none.
        state: ``no_face``, ``unknown``, ``identified``, ``uncertain`` (the temporal decision) or
            ``camera_fault`` (the cabin camera cannot be trusted on this frame).
        driver_id: id of the identified driver, else None.
        display_name: name of the identified driver, else None.
        score: cosine similarity behind the state (window mean), 0 for no_face.
        reason: why this state, in words.
        frame_score: this frame's best similarity of the driver's face (NaN when not scored).
        timings_ms: milliseconds spent in detect / embed (align + SFace) / match / attention.
        attention: head pose, eyes and attention state (None with ``attention.enabled`` false).
    """

    faces: Faces
    driver_index: int
    state: DriverState
    driver_id: str | None
    display_name: str | None
    score: float
    reason: str
    frame_score: float = math.nan
    timings_ms: dict[str, float] = field(default_factory=dict)
    attention: Any = None


class DriverIdentifier:
    """Identify the enrolled, consenting driver in the cabin camera stream.

    Args:
        settings: all ``driver_monitor`` settings.
        gallery: the gallery to match against; default built from ``settings.gallery``.
        engine: a FaceEngine to share (tests, CLI); default built from ``settings``.
        attention_estimator: an :class:`~.attention.estimator.AttentionEstimator` to share (its
            models); default built from ``settings`` when ``attention.enabled``.

    Attributes:
        gallery_error: why the last re-read of the gallery failed (None when it is current): the
            frames go on with the drivers loaded before, and this is shown in ``/diagnostics``,
            with the gallery's paths labelled (``<gallery.path>``, ``~``: it reaches the DDS
            domain); the full text is logged locally.

    Raises:
        PrivacyError: ``settings.camera_role`` is not ``cabin`` (checked before anything loads).
        GalleryError: the gallery cannot be read (link, FIFO, unsafe mode, corrupt, ...).
    """

    #: Seconds of stream time, or of the monotonic clock, between checks whether the gallery
    #: file changed on disk.
    GALLERY_CHECK_S = 1.0

    def __init__(self, settings: DriverMonitorSettings, gallery: GalleryStore | None = None,
                 engine: FaceEngine | None = None, attention_estimator: Any = None,
                 stopping: Callable[[], bool] | None = None) -> None:
        check_identity_allowed(settings.camera_role)
        self.settings = settings
        self.gallery = gallery if gallery is not None else GalleryStore.from_config(settings.gallery)
        if stopping is not None:  # the node's stop ends a wait for the gallery lock
            self.gallery.stopping = stopping
        self.engine = engine or FaceEngine(settings.face, settings.runtime.options())
        self.decider = IdentityDecider(settings.identity)
        self.attention = None
        if settings.attention.enabled:
            from .attention.estimator import DriverAttention

            self.attention = DriverAttention(settings.attention, settings.attention_options(),
                                             attention_estimator)
        self._gallery_stamp: tuple[int, int] | None = None
        self.gallery_error: str | None = None
        self._last_check = -math.inf
        self._last_check_clock = time.monotonic()
        self._last_embed_t: float | None = None  # stamp of the last frame whose face was embedded
        self._last_embed_clock = 0.0  # the monotonic clock then
        self._previous: tuple[float, np.ndarray] | None = None  # previous frame: stamp, driver box
        # a node's load is bounded (warm_up_timeout_s): a read that hangs is named (R85)
        loading("the gallery", f"reading {self.gallery.path}, after any enrol or forget in progress",
                fix=f"check that the disk of gallery.path ({self.gallery.path}) answers (a network "
                    "mount that hangs) and that no `sense-perception driver` command holds the "
                    f"gallery's lock (it is waited for at most {duration(LOCK_WAIT_S)}: keep "
                    "warm_up_timeout_s above that)")
        self.reload_gallery()

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "config",
                    stopping: Callable[[], bool] | None = None) -> "DriverIdentifier":
        """Build from flattened ``driver_monitor`` parameters (``camera_role``, ``face.*``, ...).
        ``stopping``: true once the caller is being stopped (ends a wait for the gallery lock).

        Raises:
            ConfigError: bad settings. PrivacyError: a camera role other than ``cabin``.
        """
        settings = DriverMonitorSettings.from_params(params, source)
        check_identity_allowed(settings.camera_role)  # refuse before reading the gallery key
        return cls(settings, stopping=stopping)

    def _stamp(self) -> tuple[int, int] | None:
        try:  # lstat: never follows a link, never blocks (a FIFO is refused when read)
            st = os.lstat(self.gallery.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def reload_gallery(self, wait: bool = True, keep_if_unchanged: bool = False) -> bool:
        """Re-read the gallery (after enrol/forget), use its drivers and clear the decision
        history.

        Args:
            wait: wait for an enrol or forget in progress (at most ``gallery.LOCK_WAIT_S``);
                False refuses at once instead.
            keep_if_unchanged: a read that finds the same drivers (ids, names and templates)
                keeps the index and the evidence gathered. The node's ``~/reload_gallery``
                sets it: called again and again (more often than the decider needs frames to
                settle), it reset the identification every time, so the driver was never
                identified.

        Returns:
            Whether the drivers were replaced (False: kept, unchanged).

        Raises:
            GalleryError: the gallery cannot be read; the drivers loaded before stay in use.
        """
        stamp = self._stamp()
        drivers = [d for d in self.gallery.drivers(wait=wait) if len(d.templates)]
        unchanged = keep_if_unchanged and self._same_drivers(drivers)
        self._gallery_stamp, self.gallery_error = stamp, None
        if unchanged:
            return False
        self.index = TemplateIndex(drivers)
        # Reasons are published (driver_reason in /diagnostics): the pseudonymous id, never
        # the display name (SECURITY.md P10).
        self.decider.reset(self.index.ids)
        return True

    def _same_drivers(self, drivers: list[Any]) -> bool:
        """Whether ``drivers`` (those with templates) are exactly the ones in use."""
        index = getattr(self, "index", None)
        if index is None or [d.id for d in drivers] != index.ids \
                or [d.name for d in drivers] != index.names:
            return False
        matrix = (np.concatenate([d.templates for d in drivers]) if drivers
                  else np.zeros((0, index.matrix.shape[1])))
        return bool(np.array_equal(np.asarray(matrix, np.float32), index.matrix))

    def _check_gallery(self) -> None:
        """Re-read a changed gallery between frames without ever blocking the frame thread.

        The read opens only a regular file, non-blocking, under a lock it does not wait for; a
        failure keeps the drivers loaded before, is kept in :attr:`gallery_error` and is retried
        at the next check (a held lock is gone by then).
        """
        if self.gallery_error is None and self._stamp() == self._gallery_stamp:
            return
        try:
            self.reload_gallery(wait=False)
        except GalleryError as exc:
            full = (f"gallery reload failed, still using the {len(self.index)} driver(s) loaded "
                    f"before: {exc}")
            # /diagnostics (the node's, a replay's played with --publish) reaches the whole DDS
            # domain: the gallery by its setting, the home folder as ~; the local log keeps the
            # full path (R93)
            error = redact_paths(full, home_paths() + gallery_paths(
                str(self.gallery.path), self.settings.gallery.key_file))
            if error != self.gallery_error:  # logged once per distinct failure, not every second
                LOG.warning("%s", full)
            self.gallery_error = error

    def _keep_decision(self, box: np.ndarray, t: float, clock: float) -> bool:
        """Skip this frame's embedding (``identity.embed_interval_s``): the decision is settled,
        the same face is still there (its box moved little since the previous frame) and it was
        embedded less than the interval ago, in stamps and on the monotonic ``clock`` (stamps
        that stand still, a paused simulation's or a camera's that never sets them, skipped every
        embedding for as long as they did: the identity was never checked again)."""
        interval = self.settings.identity.embed_interval_s
        previous = self._previous
        return bool(interval > 0 and self.decider.settled and self._last_embed_t is not None
                    and previous is not None and t >= previous[0]
                    and 0.0 <= t - self._last_embed_t < interval
                    and clock - self._last_embed_clock < interval and same_face(previous[1], box))

    def process(self, image_bgr: np.ndarray, t: float, camera_fault: bool = False) -> DriverResult:
        """Run the whole pipeline on one BGR frame taken at time ``t`` (seconds).

        ``camera_fault``: the cabin camera's health is in fault on this frame (it is blocked, dark,
        ...: :func:`~sense_perception.core.health.camera_health.in_fault`); identity and attention
        then report ``camera_fault`` instead of judging the driver: no face is embedded, attention
        holds its timers, and the identity's evidence is kept for a fault shorter than
        ``identity.max_gap_s``."""
        # The monotonic clock too: a camera whose stamps do not advance (a driver that never
        # sets them, paused sim time) would otherwise keep a forgotten driver identified.
        clock = time.monotonic()
        if (t - self._last_check >= self.GALLERY_CHECK_S or t < self._last_check
                or clock - self._last_check_clock >= self.GALLERY_CHECK_S):
            self._last_check, self._last_check_clock = t, clock
            self._check_gallery()  # an enrol or forget may have happened meanwhile
        t0 = time.perf_counter()
        faces = self.engine.detect(image_bgr)
        index = self.engine.select(faces, image_bgr.shape)
        t1 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "embed": 0.0, "match": 0.0, "attention": 0.0}
        attention = None
        if self.attention is not None:
            box, marks = (faces.boxes[index], faces.landmarks[index]) if index >= 0 else (None, None)
            attention = self.attention.process(image_bgr, box, marks, t, camera_fault)
            t_att = time.perf_counter()
            timings["attention"] = (t_att - t1) * 1e3
            t1 = t_att
        frame_score = math.nan
        if camera_fault:  # a degraded frame must neither vote nor count as an empty seat
            decision = self.decider.camera_fault()
        elif index < 0:
            decision = self.decider.update(t, face=False)
        elif faces.boxes[index, 2] - faces.boxes[index, 0] < self.settings.identity.min_face_px:
            decision = self.decider.update(t, face=True)
        elif self._keep_decision(faces.boxes[index], t, clock):
            decision = self.decider.hold(t)
        else:
            emb, _ = self.engine.embed(image_bgr, faces.landmarks[index:index + 1])
            t2 = time.perf_counter()
            match = self.index.match(emb)
            t3 = time.perf_counter()
            timings["embed"], timings["match"] = (t2 - t1) * 1e3, (t3 - t2) * 1e3
            frame_score = float(match.score[0]) if len(self.index) else math.nan
            decision = self.decider.update(t, True, int(match.index[0]),
                                           float(match.score[0]) if len(self.index) else -1.0)
            self._last_embed_t, self._last_embed_clock = t, clock
        self._previous = (t, faces.boxes[index].copy()) if index >= 0 and not camera_fault else None
        identified = decision.state is DriverState.IDENTIFIED
        return DriverResult(
            faces=faces, driver_index=index, state=decision.state,
            driver_id=self.index.ids[decision.index] if identified else None,
            display_name=self.index.names[decision.index] if identified else None,
            score=decision.score, reason=decision.reason, frame_score=frame_score,
            timings_ms=timings, attention=attention)
