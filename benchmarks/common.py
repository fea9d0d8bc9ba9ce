"""What every benchmark shares: inputs, machine facts, side-by-side timing, detection matching."""
from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_STREET = ROOT.parent / "shared" / "data" / "street"
SHARED_FACES = ROOT.parent / "shared" / "data" / "faces"
SAMPLE_BAG = ROOT / "sense_perception" / "data" / "sample_bag"

#: The bound of each model load, in seconds (``run.py --warm-up-timeout``; the nodes' default).
LOAD_TIMEOUT_S = {"value": 600.0}


def load(job: Callable[[], Any], models: str) -> Any:
    """Build ``models`` (``job``) bounded as the commands' loads are
    (:func:`~sense_perception.model_load.load_models`, R87): a session creation or compile that
    never returned held the benchmarks for ever, with nothing said (R90).

    Raises:
        ModelError: a step of the load has not returned after ``--warm-up-timeout`` seconds
            (named, with the fix), or it raised.
    """
    from sense_perception.model_load import load_models

    return load_models(job, models, {"warm_up_timeout_s": LOAD_TIMEOUT_S["value"]},
                       "--warm-up-timeout", "benchmarks/run.py",
                       gave_up="so the benchmarks stopped before writing any result",
                       setting="--warm-up-timeout", where="")


@dataclass
class Inputs:
    """The frames every benchmark runs on, and where they came from."""

    paths: list[Path]
    images: list[np.ndarray]  # BGR uint8, as the detector takes them
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def combined_sha256(self) -> str:
        """sha256 over the sorted per-file digests: one value naming the whole input set."""
        h = hashlib.sha256()
        for name in sorted(self.sha256):
            h.update(f"{name}:{self.sha256[name]}\n".encode())
        return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_inputs(directory: Path = SHARED_STREET) -> Inputs:
    """Read the real front-camera frames (shared/data/street: PandaSet 1920x1080, comma2k19).

    Raises:
        SystemExit: the directory has no images (the benchmark needs real frames).
    """
    paths = sorted(p for p in Path(directory).glob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not paths:
        raise SystemExit(f"no .jpg/.png frames in {directory}; pass --images DIR with real "
                         "camera frames (the repository expects shared/ beside it)")
    images = []
    for p in paths:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{p} is not a readable image")
        images.append(image)
    return Inputs(paths, images, {p.name: sha256_file(p) for p in paths})


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, Python and library versions, execution providers."""
    import onnxruntime as ort

    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": list(ort.get_available_providers()),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "openvino": _version("openvino"),
        "torch": _version("torch"),
        "rosbags": _version("rosbags"),
    }


def rss_mb() -> float:
    """Current resident set size in MiB (from /proc; peak RSS where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class SideBySide:
    """Result of :func:`side_by_side`: per-call milliseconds of each variant per round."""

    ms: dict[str, list[float]]

    def median_ms(self, name: str) -> float:
        return float(np.median(self.ms[name]))

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median over rounds of the per-round ratio: both sides saw the same machine state."""
        a = np.asarray(self.ms[numerator])
        b = np.asarray(self.ms[denominator])
        return float(np.median(a / b))

    def ratio_spread(self, numerator: str, denominator: str) -> list[float]:
        """25th and 75th percentile of the per-round ratios (how noisy the machine was)."""
        r = np.asarray(self.ms[numerator]) / np.asarray(self.ms[denominator])
        return [float(np.percentile(r, 25)), float(np.percentile(r, 75))]

    def summary(self) -> dict[str, Any]:
        return {name: {"median_ms": round(self.median_ms(name), 4),
                       "p25_ms": round(float(np.percentile(v, 25)), 4),
                       "p75_ms": round(float(np.percentile(v, 75)), 4),
                       "rounds": len(v)} for name, v in self.ms.items()}


def side_by_side(variants: dict[str, Callable[[int], Any]], rounds: int, calls: int,
                 warmup_rounds: int = 1) -> SideBySide:
    """Time several variants interleaved: every round runs each of them ``calls`` times in turn.

    The order of the variants alternates from round to round so neither always runs first (caches,
    CPU frequency). Each variant is called with a running call index, so variants can walk the same
    input sequence in the same order.

    Returns:
        Per round and variant, the mean milliseconds per call.
    """
    names = list(variants)
    ms: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup_rounds + rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = variants[name]
            start = time.perf_counter()
            for i in range(calls):
                fn(r * calls + i)
            elapsed = (time.perf_counter() - start) * 1e3 / calls
            if r >= warmup_rounds:
                ms[name].append(elapsed)
    return SideBySide(ms)


def match_detections(a_boxes: np.ndarray, a_labels: Sequence[str], b_boxes: np.ndarray,
                     b_labels: Sequence[str], iou_min: float = 0.9) -> dict[str, Any]:
    """Pair two detection lists one-to-one (same label, best IoU first) and say how well they agree.

    Returns:
        ``{"count_a", "count_b", "matched", "min_iou", "mean_iou", "same"}`` where ``same`` means
        equal counts and every detection paired at IoU >= ``iou_min``.
    """
    from sense_perception.core.boxes import pairwise_iou
    from sense_perception.core.tracking.tracker import linear_assignment

    a_boxes = np.asarray(a_boxes, np.float64).reshape(-1, 4)
    b_boxes = np.asarray(b_boxes, np.float64).reshape(-1, 4)
    ious: list[float] = []
    if len(a_boxes) and len(b_boxes):
        iou = pairwise_iou(a_boxes, b_boxes)
        same_label = np.asarray(a_labels, object)[:, None] == np.asarray(b_labels, object)[None, :]
        iou = np.where(same_label, iou, 0.0)
        rows, cols, _, _ = linear_assignment(1.0 - iou, 1.0 - iou_min + 1e-9)
        ious = [float(iou[r, c]) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= iou_min]
    matched = len(ious)
    return {
        "count_a": int(len(a_boxes)),
        "count_b": int(len(b_boxes)),
        "matched": matched,
        "min_iou": round(min(ious), 4) if ious else None,
        "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
        "same": len(a_boxes) == len(b_boxes) == matched,
    }
