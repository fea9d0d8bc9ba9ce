"""How far off the track velocities are: a labelled image sequence run as the replay runs it.

The frames of one camera of a project ground truth go, in order and stamped ``frame / fps``,
through the replay's exterior stage (:class:`~sense_perception.replay.pipelines.ExteriorStage`:
the configured detector, ignore regions, :class:`~sense_perception.core.tracking.tracker.
TrackerBank` and its ground-velocity filters) with the frame's own calibration from the ground
truth. Each detection the 2-D matcher of ``eval`` pairs with a box that counts (IoU, non-difficult)
is compared with that box's true velocity relative to base_link.

**The true velocity** comes from the boxes' ``position_base_link`` and ``uuid`` (the object's id
over the sequence): a central difference, ``(p[n+1] - p[n-1]) / (2 dt)``. base_link is the ego
vehicle's frame of each frame, so this is the apparent velocity relative to the ego car, the very
quantity the filter estimates. Central rather than forward: it is centred on frame n (no half-frame
lag, second-order accurate for smooth motion) and divides the annotation's position noise by
``2 dt`` instead of ``dt``; white position noise of sigma per axis becomes ``sigma / (sqrt(2) dt)``
(0.1 m at 10 Hz for sigma = 2 cm), which is part of the measured error. A box whose object is not
labelled in both neighbouring frames has no true velocity and is left out (counted).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.geometry.calibration import CameraCalibration
from ..core.tracking.ground_motion import GroundVelocities
from ..errors import GroundTruthError
from .ground_truth import GroundTruthImage, load_project
from .gt_fields import read_json
from .positions import (GAUSSIAN_1SIGMA_2D, RANGE_BANDS, load_truth_3d, match_outcomes,
                        range_band)
from .scoring import ImageDetections

PARKED = "Parked"
_FRAME_KEY = re.compile(r"^(?P<camera>.*?)(?P<number>\d+)$")
MIN_FPS, MAX_FPS = 0.01, 1000.0  # a frame per 100 s to tracking.frame_rate's bound
_MAX_NUMBER_DIGITS = 18  # a frame number fits an int64 (numpy), as a sequence's count does


@dataclass
class SequenceFrame:
    """One labelled frame of a camera's sequence.

    Attributes:
        number: the frame's number (the trailing digits of its key).
        t: its stamp, seconds (``number / fps``).
        image: its 2-D ground truth (boxes, labels, difficult).
        calibration: its camera calibration (base_link of that frame).
        positions: (G, 3) ``position_base_link`` per box, nan where absent.
        uuids: per box the object's id over the sequence ("" where absent).
        motion: per box ``motion`` ("" where absent).
        velocity: (G, 2) per box its true velocity relative to base_link, m/s (nan: none; see
            :func:`truth_velocities`).
    """

    number: int
    t: float
    image: GroundTruthImage
    calibration: CameraCalibration
    positions: np.ndarray
    uuids: list[str]
    motion: list[str]
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def _check_unique(uuids: Sequence[str], where: str) -> None:
    """Refuse an object id on two boxes of one frame: its true velocity would be taken from the
    last of them for both (a wrong number, silently)."""
    first: dict[str, int] = {}
    for i, u in enumerate(uuids):
        if u and u in first:
            raise GroundTruthError(f"{where}.boxes[{i}].uuid: {u[:40]!r} is also the uuid of "
                                   f"boxes[{first[u]}]; a uuid names one object, once per frame")
        first.setdefault(u, i)


def load_sequence(path: Path, camera: str | None = None, fps: float = 10.0,
                  image_dir: Path | None = None) -> list[SequenceFrame]:
    """The frames of one camera of a project ground truth, in frame order, with true velocities.

    Keys name a camera and a frame number (``front_camera/07``). Every frame needs the camera's
    ``calibration``; boxes need ``uuid`` and ``position_base_link`` to get a true velocity.

    Args:
        camera: the key prefix to read (``front_camera/``); None: the only one there is.
        fps: frames per second of the numbering (the stamps' spacing is ``1 / fps``).

    Raises:
        GroundTruthError: not a sequence (keys without frame numbers, several cameras and no
            ``camera``, a repeated number), a frame without calibration, a bad field.
    """
    # .inf made every stamp 0 and every true velocity inf (a difference over 0 s); 1e308 overflowed.
    if not MIN_FPS <= fps <= MAX_FPS:  # nan fails it too
        raise GroundTruthError(f"--fps must be > 0: from {MIN_FPS:g} to {MAX_FPS:g} frames per "
                               f"second, got {fps}")
    path = Path(path)
    doc = read_json(path)
    images = load_project(path, doc, image_dir)
    truth = load_truth_3d(path)
    by_camera: dict[str, list[tuple[int, GroundTruthImage]]] = {}
    for g in images:
        m = _FRAME_KEY.match(g.key)
        if m is None:
            raise GroundTruthError(f"{path}: key {g.key!r} has no frame number; a sequence's keys "
                                   "end in the frame's number (front_camera/07)")
        if len(m["number"]) > _MAX_NUMBER_DIGITS:  # int() refuses thousands of digits
            raise GroundTruthError(f"{path}: key {g.key[:40]!r}... ends in a number of "
                                   f"{len(m['number'])} digits; a frame number has at most "
                                   f"{_MAX_NUMBER_DIGITS}")
        by_camera.setdefault(m["camera"], []).append((int(m["number"]), g))
    if camera is None:
        if len(by_camera) > 1:
            raise GroundTruthError(f"{path} holds several cameras ({', '.join(sorted(by_camera))}); "
                                   "fix: name one with --camera")
        camera = next(iter(by_camera), "")
    if camera not in by_camera:
        raise GroundTruthError(f"{path}: no frame of camera {camera!r}; its cameras: "
                               f"{', '.join(sorted(by_camera)) or 'none'}")
    entries = sorted(by_camera[camera], key=lambda e: e[0])
    numbers = [n for n, _ in entries]
    if len(set(numbers)) != len(numbers):
        raise GroundTruthError(f"{path}: camera {camera!r} has a frame number twice")
    frames = []
    for number, g in entries:
        t3 = truth.get(g.key)
        if t3 is None or t3.calibration is None:
            raise GroundTruthError(f"{path}: cameras.{g.key} has no 'calibration'; every frame of "
                                   "a velocity sequence needs one")
        boxes = doc["cameras"][g.key]["boxes"]
        uuids = [str(b.get("uuid", "")) if isinstance(b, dict) else "" for b in boxes]
        _check_unique(uuids, f"{path}: cameras.{g.key}")
        motion = [str(b.get("motion", "")) if isinstance(b, dict) else "" for b in boxes]
        frames.append(SequenceFrame(number, number / fps, g, t3.calibration, t3.positions[:len(boxes)],
                                    uuids, motion))
    velocities = truth_velocities([f.number for f in frames], [f.uuids for f in frames],
                                  [f.positions for f in frames], 1.0 / fps)
    for f, v in zip(frames, velocities, strict=True):
        f.velocity = v
    return frames


def truth_velocities(numbers: Sequence[int], uuids: Sequence[Sequence[str]],
                     positions: Sequence[np.ndarray], dt: float) -> list[np.ndarray]:
    """Per frame, (G, 2) true velocities (vx, vy) of its boxes by a central difference.

    Args:
        numbers: each frame's number (frames n-1 and n+1 are its neighbours).
        uuids: per frame the boxes' object ids ("": none).
        positions: per frame (G, 3) the boxes' positions (nan: none).
        dt: seconds between consecutive frame numbers.

    Returns:
        Per frame (G, 2), ``(p[n+1] - p[n-1]) / (2 dt)`` of the same object; nan where the object
        is missing from a neighbour, has no id, or a position is missing.
    """
    # Each frame's neighbours by number, each object's row by id: no table spanning the numbers
    # (frames 0 and 10**9 made one of a billion columns per object).
    frame_at = {n: k for k, n in enumerate(numbers)}
    rows_of = [{u: i for i, u in enumerate(frame_ids) if u} for frame_ids in uuids]
    out = []
    for n, frame_ids in zip(numbers, uuids, strict=True):
        v = np.full((len(frame_ids), 2), np.nan)
        before, after = frame_at.get(n - 1), frame_at.get(n + 1)
        if before is not None and after is not None:
            a = np.array([rows_of[before].get(u, -1) if u else -1 for u in frame_ids], np.int64)
            b = np.array([rows_of[after].get(u, -1) if u else -1 for u in frame_ids], np.int64)
            has = (a >= 0) & (b >= 0)
            v[has] = (positions[after][b[has], :2] - positions[before][a[has], :2]) / (2.0 * dt)
        out.append(v)
    return out


@dataclass
class FrameResult:
    """What the replay's exterior stage made of one frame.

    Attributes:
        detections: the tracked detections (labels by name) as the matcher takes them.
        track_ids: (N,) their track ids (-1: none).
        velocities: their ground velocities (:class:`GroundVelocities`).
    """

    detections: ImageDetections
    track_ids: np.ndarray
    velocities: GroundVelocities


class _FrameCalibration:
    """The replay's positioner with each frame's own calibration: the ground truth's base_link is
    rebuilt on every frame (its road plane), and the true positions are in it."""

    def __init__(self, noise: Any) -> None:
        from ..core.geometry.positioner import CameraPositions

        self.positioner = CameraPositions(noise=noise)

    def use(self, calibration: CameraCalibration) -> None:
        """Place the next frame with ``calibration``."""
        self.positioner.fixed = calibration

    def positions(self, *args: Any) -> Any:
        """:meth:`CameraPositions.positions`."""
        return self.positioner.positions(*args)

    def generation(self, camera: str) -> int:
        """:meth:`CameraPositions.generation`: 0, a calibration given per frame does not restart
        the velocities (the ground truth's base_link is the frame's, its positions in it)."""
        return self.positioner.generation(camera)


def run_sequence(frames: Sequence[SequenceFrame], config: Path | None = None,
                 ground_truth: Path | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 ) -> tuple[list[FrameResult | None], list[dict[str, str]], list[str]]:
    """Run ``frames`` in order through the replay's exterior stage (detector, ignore regions,
    tracker, positioner, ground-velocity filter), built from ``config`` like a replay.

    Args:
        ground_truth: the file the frames come from (named in errors).

    Returns:
        (per frame its result, None for a frame left out; the frames left out: image, reason; the
        detector's class names). An image that cannot be read or detected on is left out, the
        rest goes on (its neighbours' tracks predict over the gap).

    Raises:
        GroundTruthError: a missing image, a size that disagrees (before the model loads).
        ConfigError: tracking is off in ``config`` (there would be no velocities); errors of the
            detector's setup (ModelError, ConfigError).
    """
    from ..config import load_params
    from ..core.imaging.frame_guard import InputLimits
    from ..core.imaging.image_file import read_image_file
    from ..core.types import Header
    from ..errors import ConfigError, ImageDecodeError
    from ..replay.pipelines import EXTERIOR, NODES, DecodedFrame, ExteriorStage, build_core
    from .run import check_images, skip_record

    skipped: list[dict[str, str]] = []
    limits = InputLimits.from_params(load_params(config, NODES[EXTERIOR]),
                                     str(config or "default parameters"))
    readable = {id(g) for g in check_images([f.image for f in frames],
                                            ground_truth or Path("the ground truth"), limits,
                                            skipped)}
    core = build_core(config, exterior=True, cabin=False, command="eval_velocity")
    if core.trackers is None:
        raise ConfigError(f"{config or 'the default parameters'}: tracking.enabled is false, so "
                          "there are no track velocities to evaluate; fix: enable tracking")
    placer = _FrameCalibration(core.settings[EXTERIOR].position_noise())
    topic = "camera"
    results: list[FrameResult | None] = [None] * len(frames)
    current = {"index": 0}

    def on_result(frame: Any, result: Any, _messages: Any) -> None:
        dets = result.detections
        names = [core.detector.label_names[k] for k in dets.labels]
        motion = result.motion if result.motion is not None else GroundVelocities.none(len(dets))
        results[current["index"]] = FrameResult(
            ImageDetections(dets.boxes.astype(np.float64), dets.scores, names),
            dets.track_ids.copy(), motion)

    def on_failure(failed: Any, exc: Exception) -> None:
        skipped.append(skip_record(frames[current["index"]].image, f"inference failed: {exc}"))

    stage = ExteriorStage(core.detector, core.trackers, {topic: "eval"}, {}, 0.0, on_result,
                          on_failure, positions=placer, ignore=core.ignore)
    stage.outputs = []  # no messages: only the results are scored
    for index, frame in enumerate(frames):
        current["index"] = index
        g = frame.image
        if id(g) not in readable:
            continue
        try:
            pixels = read_image_file(g.path, limits)
        except ImageDecodeError as exc:
            skipped.append(skip_record(g, exc))
            continue
        sec = int(np.floor(frame.t))
        header = Header(sec, int(round((frame.t - sec) * 1e9)), "camera")
        placer.use(frame.calibration)
        # One camera: add() detects the frame at once, so the positioner's calibration is its own.
        stage.add(DecodedFrame(topic, int(round(frame.t * 1e9)), header, pixels, 0.0))
        if progress is not None:
            progress(index + 1, len(frames))
    return results, skipped, list(core.detector.label_names)


def _cell(err: np.ndarray, inside: np.ndarray, steady: int, tracked: int, no_truth: int
          ) -> dict[str, Any]:
    """Figures of one table cell from the steady velocities' errors (m, 2)."""
    out: dict[str, Any] = {"tracked": tracked, "steady": steady, "no_truth_velocity": no_truth,
                           "count": int(len(err))}
    if len(err):
        mag = np.hypot(err[:, 0], err[:, 1])
        out.update({"median_error": round(float(np.median(mag)), 3),
                    "p90_error": round(float(np.percentile(mag, 90)), 3),
                    "bias_x": round(float(np.median(err[:, 0])), 3),
                    "coverage_1sigma": round(float(np.mean(inside)), 3)})
    return out


def velocity_report(frames: Sequence[SequenceFrame], results: Sequence[FrameResult | None],
                    labels: Sequence[str], iou: float = 0.5,
                    select: Callable[[SequenceFrame], bool] | None = None) -> dict[str, Any]:
    """The velocity errors of matched detections, per label and true range band, for all objects
    and for parked ones (true over-ground velocity zero: their apparent velocity is the ego car's
    motion, reversed).

    Args:
        frames, results: the sequence and :func:`run_sequence`'s results, in the same order.
        labels: the detector's class names.
        iou: IoU of a match (the matcher of ``eval``; difficult boxes count neither way).
        select: which frames to report (e.g. a held-out half); None: all.

    Per cell: ``tracked`` matched detections with a track and a velocity, ``steady`` of them
    steady, ``no_truth_velocity`` steady ones whose object has no true velocity (not labelled in a
    neighbouring frame), ``count`` steady ones compared; of those the median and 90th percentile
    of the error's magnitude (m/s), the median x error (bias, m/s; < 0: the estimate is slower
    towards +x) and the share of true velocities inside the reported covariance's 1-sigma ellipse.
    """
    kept = [i for i, r in enumerate(results)
            if r is not None and (select is None or select(frames[i]))]
    gts = [frames[i].image for i in kept]
    dets = [results[i].detections for i in kept]  # type: ignore[union-attr]
    matches, _ = match_outcomes(gts, dets, labels, iou)
    rows: dict[tuple[bool, str, int], list[tuple[Any, ...]]] = {}
    for i, j, b in matches:
        frame, res = frames[kept[i]], results[kept[i]]
        assert res is not None
        v = res.velocities
        if res.track_ids[j] < 0 or v.updates[j] == 0:
            continue
        band = int(range_band(np.hypot(*frame.positions[b:b + 1, :2].T))[0])
        if band < 0:
            continue
        label = res.detections.labels[j]
        row = (bool(v.steady[j]), v.velocity[j], v.covariance[j], frame.velocity[b])
        rows.setdefault((False, label, band), []).append(row)
        if frame.motion[b] == PARKED:
            rows.setdefault((True, label, band), []).append(row)
    out: dict[str, Any] = {"iou": iou, "bands": [name for name, _, _ in RANGE_BANDS],
                           "expected_coverage_1sigma": round(GAUSSIAN_1SIGMA_2D, 3),
                           "frames": len(kept)}
    for parked, name in ((False, "all"), (True, "parked")):
        table: dict[str, dict[str, Any]] = {}
        for label in [n for n in labels if any(k[:2] == (parked, n) for k in rows)]:
            table[label] = {}
            for band, (band_name, _, _) in enumerate(RANGE_BANDS):
                cell = rows.get((parked, label, band), [])
                steady = [r for r in cell if r[0]]
                known = [r for r in steady if np.isfinite(r[3]).all()]
                err = np.array([r[1] - r[3] for r in known]).reshape(-1, 2)
                cov = np.array([r[2] for r in known]).reshape(-1, 2, 2)
                inside = np.einsum("ni,ni->n", err, np.linalg.solve(cov, err[:, :, None])[:, :, 0]) \
                    <= 1.0 if len(err) else np.zeros(0, bool)
                table[label][band_name] = _cell(err, inside, len(steady), len(cell),
                                                len(steady) - len(known))
        out[name] = table
    return out


#: The keys of a report ``tools/eval_velocity.py`` writes (:func:`velocity_report` and the tool's own).
REPORT_KEYS = frozenset({"iou", "bands", "expected_coverage_1sigma", "frames", "all", "parked",
                         "skipped", "ground_truth", "config"})


def is_velocity_report(document: Any) -> bool:
    """True for a JSON document ``tools/eval_velocity.py --json-out`` writes: the only JSON file
    it replaces (R80; a COCO ground truth or another command's results were replaced whole)."""
    return (isinstance(document, dict) and {"bands", "all"} <= set(document) <= REPORT_KEYS
            and isinstance(document["all"], dict))


def render_velocity(report: dict[str, Any]) -> str:
    """The report as a plain text table (one row per label and band with tracked detections)."""
    lines = [f"velocity of matched detections (IoU {report['iou']:g}, {report['frames']} frames); "
             f"in 1σ: true velocities inside the 1-sigma ellipse "
             f"({100 * report['expected_coverage_1sigma']:.0f} % when calibrated)"]
    head = (f"{'objects':8} {'class':11} {'range':8} {'tracked':>7} {'steady':>6} {'n':>5} "
            f"{'median':>8} {'p90':>8} {'bias x':>8} {'in 1σ':>6}")
    for part in ("all", "parked"):
        lines += ["", head]
        for label, bands in report[part].items():
            for band, c in bands.items():
                if not c["tracked"]:
                    continue
                figures = (f"{c['median_error']:>8.2f} {c['p90_error']:>8.2f} {c['bias_x']:>+8.2f} "
                           f"{100 * c['coverage_1sigma']:>5.0f}%" if c["count"] else
                           f"{'-':>8} {'-':>8} {'-':>8} {'-':>6}")
                lines.append(f"{part:8} {label:11} {band:8} {c['tracked']:>7} {c['steady']:>6} "
                             f"{c['count']:>5} {figures}")
    return "\n".join(lines)
