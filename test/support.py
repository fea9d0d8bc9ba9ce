"""Small helpers shared by several test modules."""
from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class RawImage:
    """A plain dataclass with the fields of sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


DEV_SET = REPO.parent / "shared" / "data" / "street_labelled" / "pandaset_seq002_front" / \
    "ground_truth.json"
HAND_LABELLED = REPO / "test" / "data" / "hand_labelled" / "ground_truth.json"


def detect_all(detector: Any, ground_truth: list, read: Any = None) -> list:
    """``ImageDetections`` of ``detector`` on every image of ``ground_truth``, four per call.

    Args:
        read: turns a ground-truth image into the detector's input (default: cv2.imread).
    """
    import cv2

    from sense_perception.evaluation.scoring import ImageDetections

    read = read or (lambda g: cv2.imread(str(g.path)))
    out = []
    for start in range(0, len(ground_truth), 4):
        images = [read(g) for g in ground_truth[start:start + 4]]
        out += [ImageDetections(d.boxes, d.scores, [detector.label_names[i] for i in d.labels])
                for d in detector.detect(images)]
    return out


# -- comparing detections of two code paths -------------------------------------------------------
# OpenCV and onnxruntime choose kernels by instruction set at run time (SSE4/AVX2/AVX-512), and two
# code paths (a 4-channel vs a 3-channel resize, a batch of 5 vs a batch of 1, a rewritten graph vs
# the original, torch vs OpenCV) round differently. Bit-for-bit equality holds only where the same
# kernel runs on the same bytes; everywhere else detections agree within these tolerances:
#  * boxes within CROSS_PATH_BOX_PX source pixels. Measured: the 4-channel cubic resize puts 1-5
#    pixels of a 1920x1080 frame one grey level away from the 3-channel one (an AVX-512 Xeon and an
#    AVX-512 EPYC alike), which moved boxes by up to 0.0043 px (Xeon) and 0.0056 px (EPYC); flipping
#    3 to 30 random pixels by one grey level moved them by up to 0.03 px. 0.1 px covers that with
#    margin and is still far below anything that changes an IoU or a track;
#  * scores within CROSS_PATH_SCORE (measured: 2.3e-5 for the views, 2.6e-4 for 30 flipped pixels);
#  * a detection present on one side only is allowed when its score lies within the score
#    tolerance of the threshold it was cut at: rounding may put it on either side.
CROSS_PATH_BOX_PX = 0.1
CROSS_PATH_SCORE = 1e-3


def assert_detections_close(got: Any, want: Any, *, box_px: float = CROSS_PATH_BOX_PX,
                            score: float = CROSS_PATH_SCORE,
                            threshold: float | tuple[float, ...] | None = None,
                            min_iou: float | None = None, what: str = "") -> None:
    """Assert that two ``Detections`` of the same image from two code paths agree.

    Detections are paired one to one by label and box overlap (the order may differ where two
    scores nearly tie). Paired boxes must lie within ``box_px`` pixels (or, with ``min_iou``,
    overlap at least that much: for paths whose inputs differ in many pixels, where large boxes
    move more) and scores within ``score``. A detection without a partner fails the assertion
    unless ``threshold`` is given and its score is within ``score`` of it (or of one of several
    thresholds: labels may have their own).
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from sense_perception.core.boxes import pairwise_iou

    iou = pairwise_iou(np.asarray(got.boxes, np.float64), np.asarray(want.boxes, np.float64))
    iou[np.asarray(got.labels)[:, None] != np.asarray(want.labels)[None, :]] = 0.0
    rows, cols = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    paired = iou[rows, cols] > 0.5
    rows, cols = rows[paired], cols[paired]
    for side, dets, used in (("got", got, rows), ("want", want, cols)):
        alone = np.setdiff1d(np.arange(len(dets.scores)), used)
        cuts = np.atleast_1d(np.asarray(threshold if threshold is not None else [], np.float64))
        gaps = np.abs(np.asarray(dets.scores)[alone, None] - cuts[None, :])
        near = cuts.size > 0 and bool((gaps.min(axis=1, initial=np.inf) <= score).all())
        assert len(alone) == 0 or near, (
            f"{what}: {len(alone)} detection(s) of '{side}' have no partner on the other side "
            f"(scores {np.asarray(dets.scores)[alone].tolist()}, threshold {threshold})")
    if min_iou is not None:
        overlap = iou[rows, cols]
        assert overlap.size == 0 or overlap.min() >= min_iou, (
            f"{what}: paired boxes overlap down to IoU {overlap.min():.4f} (needed {min_iou})")
    else:
        box_gap = np.abs(np.asarray(got.boxes)[rows] - np.asarray(want.boxes)[cols])
        assert box_gap.size == 0 or box_gap.max() <= box_px, (
            f"{what}: boxes differ by up to {box_gap.max():.5f} px (tolerance {box_px} px)")
    score_gap = np.abs(np.asarray(got.scores)[rows] - np.asarray(want.scores)[cols])
    assert score_gap.size == 0 or score_gap.max() <= score, (
        f"{what}: scores differ by up to {score_gap.max():.2e} (tolerance {score})")


# -- a small fake detector, for tests that only check wiring ---------------------------------------


class FakeDetector:
    """A :class:`~sense_perception.core.detection.interface.Detector` without a model: every image
    gets the same boxes (one row per detection: x1, y1, x2, y2, score, label name).

    For tests of the code around a detector (merging, replay, diagnostics), where a real network
    would only cost seconds. ``calls`` records the batch size of each :meth:`detect` call.
    """

    def __init__(self, rows: tuple = ((100.0, 200.0, 300.0, 400.0, 0.9, "car"),),
                 owned_labels: tuple[str, ...] | None = None, name: str = "fake") -> None:
        from sense_perception.core.detection.detector import DetectorConfig
        from sense_perception.core.detection.labels import AD_LABELS

        self.label_names = list(AD_LABELS)
        self.owned_labels = tuple(owned_labels if owned_labels is not None else self.label_names)
        self.rows = rows
        self.model_name, self.family = name, "fake"
        self.config = DetectorConfig(pedestrian_model="none")
        self.tiling = None
        self.tiling_enabled = False
        self.provider = "FakeExecutionProvider"
        self.fallback_reasons: list[str] = []
        self.notes: list[str] = []
        self.batch_dynamic = True
        self.preprocess_device = "cpu"
        self.min_score = 0.5
        self.decode_floor = None
        self.timings: dict[str, float] = {}
        self.calls: list[int] = []

    @property
    def providers(self) -> dict[str, str]:
        return {self.model_name: self.provider}

    def detect(self, images: Any) -> list:
        from sense_perception.core.types import Detections

        import numpy as np

        self.calls.append(len(images))
        rows = [r for r in self.rows if r[5] in self.owned_labels]
        boxes = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
        scores = np.array([r[4] for r in rows], np.float32)
        labels = np.array([self.label_names.index(r[5]) for r in rows], np.int32)
        return [Detections(boxes.copy(), scores.copy(), labels.copy()) for _ in images]

    def detect_one(self, image: Any) -> Any:
        return self.detect([image])[0]


# -- PicoDet alone, for commands whose detector is beside the point ---------------------------------

#: A config of PicoDet alone on the CPU, for tests of a command's handling of paths, files,
#: signals, disks, outputs and messages, which is the same whatever the detector: the default's
#: second model (the pedestrian specialist) cost each run an OpenVINO compile of seconds (more
#: than the rest of a command's load). Tests of what the default detector finds keep the default.
PICODET_ONLY = REPO / "test" / "data" / "picodet_only.yaml"


# -- a script run on a small private tmpfs (full-disk tests) -----------------------------------------

def run_on_tmpfs(tmp_path: Path, script: str, args: list[Any], options: str = "size=64k") -> Any:
    """Run the Python ``script`` with ``tmp_path/disk`` (a fresh tmpfs mounted with ``options``,
    e.g. ``ro,size=64k``, in a private mount namespace) and then ``args`` as its arguments, and
    return the JSON it prints last. Skips where mounting a tmpfs is not permitted (see
    test_faults_replay._namespace_prefix)."""
    import json
    import os
    import subprocess
    import sys

    from test_faults_replay import _namespace_prefix

    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = _namespace_prefix(disk)
    path = tmp_path / "inside.py"
    path.write_text(script)
    proc = subprocess.run(
        [*prefix, "sh", "-c", f'mount -t tmpfs -o {options} tmpfs "$1" && shift && exec "$@"',
         "sh", str(disk), sys.executable, str(path), str(disk), *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def session_processes(sid: int) -> list[int]:
    """Processes of session ``sid`` (a command started in its own session and all it started,
    such as a fleet run's Ray processes) still alive, zombies left out."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                data = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            fields = data[data.rindex(b")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != b"Z":
                found.append(int(entry))
    return found


@pytest.fixture(autouse=True, scope="module")
def private_fold_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Import into a module that runs ``sense-perception driver``: its folded face models are
    cached in a folder of the module's own, and no gallery key leaks in from the environment."""
    from sense_perception.face import model_fold

    mp = pytest.MonkeyPatch()
    mp.setenv(model_fold.CACHE_ENV, str(tmp_path_factory.mktemp("fold_cache")))
    mp.delenv("SENSE_PERCEPTION_GALLERY_KEY", raising=False)
    yield
    mp.undo()


def driver_cli(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    """Run ``sense-perception driver ARGV...`` in this process: (exit code, stdout, stderr)."""
    from sense_perception.cli.main import main

    code = main(["driver", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


#: The signals whose handlers the commands take over in-process (stop_signals, fleet's guard).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LeftoverSignalState(UserWarning):
    """A test left a signal handler or the blocked-signal mask changed (restored after it)."""


def signal_state() -> tuple[dict[int, object], frozenset[int]]:
    """The handlers of :data:`STOP_SIGNALS` and the main thread's blocked signals."""
    return ({s: signal.getsignal(s) for s in STOP_SIGNALS},
            frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, [])))


def restore_signal_state(start: tuple[dict[int, object], frozenset[int]]) -> list[str]:
    """Put the handlers and the mask of ``start`` back; what differed, in words (empty: none)."""
    handlers, mask = start
    left = []
    for signum, handler in handlers.items():
        now = signal.getsignal(signum)
        if now != handler:
            left.append(f"{signal.Signals(signum).name} handler {now!r} (was {handler!r})")
            signal.signal(signum, handler)  # type: ignore[arg-type]
    blocked = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    if blocked != mask:
        left.append(f"blocked signals {sorted(map(int, blocked))} (were {sorted(map(int, mask))})")
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return left


def check_grouped(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when pytest-xdist's ``loadgroup`` does not group: it tells its scheduler a
    test's group by a suffix to the test's id, which pytest 9.2 no longer lets it set
    (pytest-xdist issue 1386), and the groups were then silently ignored: the Ray tests ran beside
    each other and the shared fixtures were built on both workers (setup.py pins pytest below)."""
    if not getattr(config, "workerinput", None) or not config.getvalue("loadgroup"):
        return
    lost = [item.nodeid for item in items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid.rsplit("]", 1)[-1]]
    if lost:
        message = (f"pytest-xdist's loadgroup does not group here (pytest {pytest.__version__}): "
                   f"{len(lost)} grouped tests, e.g. {lost[0]}, would run on any worker; install "
                   "the pytest that setup.py's test extra names (pip install -e '.[test]'), or "
                   "run with XDIST='-n 0'")
        # A worker's error reaches the controller as an internal error without its words.
        sys.__stderr__.write(f"\n{message}\n")
        raise pytest.UsageError(message)
