"""The work of one fleet worker: models built once, then one bag after another through the replay engine.

:class:`BagWorker` knows nothing of Ray (:mod:`.actor` runs it as an actor), so each bag is
replayed by exactly the code path of ``sense-perception replay``: the same
:class:`~sense_perception.replay.engine.Replayer`, given the worker's prebuilt detector and a
fresh driver identifier per bag (it keeps per-stream evidence; the face models under it are
shared).
"""
from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import load_params
from ..errors import SensePerceptionError
from ..model_load import load_models
from ..replay.engine import ReplayOptions, Replayer
from .discover import BagJob
from .outputs import final_dir, is_complete, prepare_temp, publish, read_summary

if TYPE_CHECKING:  # pragma: no cover
    from ..face.attention.estimator import AttentionEstimator
    from ..face.pipeline import FaceEngine
    from ..face.settings import DriverMonitorSettings

LOG = logging.getLogger(__name__)

THREADS_KEY = "runtime.intra_op_threads"


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker of one fleet run needs (sent to each actor, so plain and picklable)."""

    out: Path
    config: Path | None = None
    cabin: str | None = None
    video: bool = False
    video_cabin: bool = False
    cpus: int = 1  # CPUs Ray reserves per worker; onnxruntime threads when the config says 0 (auto)


def node_params(config: Path | None, node: str, cpus: int) -> dict[str, Any]:
    """Flattened parameters of ``node`` from ``config``, with onnxruntime threads sized to the worker.

    ``runtime.intra_op_threads: 0`` (the default) lets onnxruntime start one thread per physical
    core of the machine, in every worker: N workers on one node would then run N times more
    threads than cores. A worker that Ray gave ``cpus`` CPUs uses that many; a value set in the
    config is kept as it is (then a fleet replay runs exactly the kernels of a plain replay).
    """
    params = load_params(config, node)
    if int(params.get(THREADS_KEY, 0) or 0) == 0:
        params[THREADS_KEY] = max(1, int(cpus))
    return params


def _labels(summary: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for camera in summary.get("cameras", {}).values():
        for label, n in camera.get("detections", {}).items():
            total[label] = total.get(label, 0) + int(n)
    return dict(sorted(total.items()))


def outcome_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The per-bag figures of a replay summary that the fleet report shows."""
    skipped = summary.get("skipped", [])
    return {
        "status": "partial" if skipped else "done",
        "frames": int(summary.get("frames", 0)),
        "detections": _labels(summary),
        "skipped_messages": sum(int(s.get("count", 0)) for s in skipped),
        "skipped_reasons": sorted({str(s.get("reason", "")) for s in skipped}),
        "throughput_fps": float(summary.get("throughput_fps", 0.0)),
    }


#: What a worker's load that did not return in ``warm_up_timeout_s`` means (R87).
GAVE_UP = "so this fleet worker could not start"


def _face_models(face: DriverMonitorSettings) -> tuple[FaceEngine, AttentionEstimator | None]:
    """The face networks a worker loads once: detection and embedding, and with attention on,
    the face mesh and iris models."""
    from ..face.pipeline import FaceEngine

    engine = FaceEngine(face.face, face.runtime.options())
    if not face.attention.enabled:
        return engine, None
    from ..face.attention.estimator import AttentionEstimator

    return engine, AttentionEstimator(face.attention, face.attention_options())


class BagWorker:
    """Builds the detector (and, with a cabin topic, every face model) once; replays bags on request.

    Args:
        settings: the run's outputs folder, config, cabin topic, videos and CPUs per worker.

    Raises:
        ConfigError, ModelError, GalleryError, PrivacyError: as the replay's model set-up does.
    """

    def __init__(self, settings: WorkerSettings) -> None:
        import cv2

        from ..core.detection.detector_setup import build_detector
        from ..core_dumps import no_core_dumps

        # a Ray worker is a program of its own: it inherits the core limit of 0, but starts
        # dumpable, and it holds the gallery and the cabin frames of its bags (R74)
        no_core_dumps()
        self.settings = settings
        # OpenCV's own pool would use every core of the node in every worker, like onnxruntime.
        cv2.setNumThreads(max(1, settings.cpus))
        source = str(settings.config) if settings.config else "default parameters"
        t0 = time.perf_counter()
        # bounded as a node's load (R87): a worker whose load never returned held its slot until
        # the fleet's start_timeout_s, with no word of the model that hung
        detector_params = node_params(settings.config, "object_detector", settings.cpus)
        self._detector = load_models(partial(build_detector, detector_params, source),
                                     "the detector's models", detector_params, source, "fleet",
                                     gave_up=GAVE_UP)
        self._face_settings: DriverMonitorSettings | None = None
        self._face_engine: FaceEngine | None = None
        self._attention: AttentionEstimator | None = None
        if settings.cabin:
            from ..face.privacy import check_identity_allowed
            from ..face.settings import DriverMonitorSettings

            face_params = node_params(settings.config, "driver_monitor", settings.cpus)
            face = DriverMonitorSettings.from_params(face_params, source)
            check_identity_allowed(face.camera_role)
            self._face_settings = face
            # Every face network loads here, once per worker: face detection and embedding, and
            # the attention's face mesh and iris models (stateless; the per-stream state lives in
            # the DriverIdentifier each bag gets).
            self._face_engine, self._attention = load_models(
                partial(_face_models, face), "the face models", face_params, source, "fleet",
                "driver_monitor", GAVE_UP)
        self.load_s = time.perf_counter() - t0
        self._current: tuple[str, int, int | None] | None = None  # bag, frames read, expected

    def info(self) -> dict[str, Any]:
        """Who this worker is: process id, host, onnxruntime provider and threads, model load time."""
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "provider": self._detector.provider,
                "threads": node_params(self.settings.config, "object_detector",
                                       self.settings.cpus)[THREADS_KEY],
                "load_s": round(self.load_s, 3)}

    def progress(self) -> dict[str, Any] | None:
        """The bag being replayed and how far it got (read from another thread while it runs)."""
        current = self._current  # one tuple, replaced whole: a consistent snapshot without a lock
        if current is None:
            return None
        return {"bag": current[0], "done": current[1], "expected": current[2]}

    def _identifier(self) -> Any:
        if self._face_settings is None:
            return None
        from ..face.pipeline import DriverIdentifier

        # Fresh per bag: identity evidence must not carry over from one recording to the next.
        return DriverIdentifier(self._face_settings, engine=self._face_engine,
                                attention_estimator=self._attention)

    def replay(self, job: BagJob, force: bool = False) -> dict[str, Any]:
        """Replay one bag into ``DIR/<name>/`` via a temporary folder; never raises.

        Args:
            job: the bag and its output name.
            force: replay and replace a finished output already there (without it, such an
                output is kept and its figures returned: see the comment below).

        Returns:
            The bag's outcome: ``status`` (done, partial or failed), ``reason`` when failed,
            frames, detections per label, what was skipped, timing, notes.
        """
        s = self.settings
        final = final_dir(s.out, job.name)
        started = time.perf_counter()
        outcome: dict[str, Any]
        if not force and is_complete(final):
            # The dispatcher sends only unfinished bags, so this is a retry after a worker died
            # right after publishing: the work is done, keep it rather than replay twice.
            return {**outcome_of(read_summary(final) or {}), "wall_s": 0.0,
                    "notes": ["finished by the previous attempt before its worker died"]}
        self._current = (job.name, 0, None)
        try:
            if not Path(job.path).exists():
                raise FileNotFoundError(
                    f"bag {job.path} is not visible on worker host {socket.gethostname()}: on a "
                    "cluster the bags and --out must be on storage every node mounts at the same path")
            temp = prepare_temp(s.out, job.name)  # wipes what a killed attempt left behind
            options = ReplayOptions(bag=Path(job.path), out=temp, cabin=s.cabin, config=s.config,
                                    video=s.video, video_cabin=s.video_cabin,
                                    cabin_if_present=True)
            result = Replayer(options, self._on_progress, detector=self._detector,
                              identifier=self._identifier()).run()
            publish(temp, final)
            outcome = {**outcome_of(result.summary), "notes": list(result.notes)}
        except (SensePerceptionError, OSError) as exc:
            outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:  # noqa: BLE001 - one bag's bug must not end the worker
            LOG.error("bag %s: %s", job.path, traceback.format_exc())
            outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        finally:
            self._current = None
        return {**outcome, "wall_s": round(time.perf_counter() - started, 3)}

    def _on_progress(self, done: int, expected: int | None) -> None:
        current = self._current
        self._current = (current[0] if current else "", done, expected)
