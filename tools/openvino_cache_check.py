"""Would OpenVINO's model cache (``CACHE_DIR``) shorten the default detector's start, and does a
cached compile of the pedestrian specialist give the detections a fresh compile gives?

Each load runs in a fresh process (one ``openvino.Core`` per process, as in a node): a cold one
compiles without a cache, a warm one imports the blob an earlier load wrote to a private cache
folder. Cold and warm alternate, several rounds, for the specialist's 8-bit form (the default)
and its original weights. Each process also runs the whole default detector on the first frames
of the developer set, and the warm detections are compared with the cold ones with the tolerance
the tests use for two code paths (test/support.py ``assert_detections_close``).

    .venv/bin/python tools/openvino_cache_check.py [--rounds 3] [--frames 10]

Prints one JSON object: per form, the median seconds of ``build_detector`` and of the
specialist's OpenVINO load (read, reshape to the band, compile or import), cold and warm, and how
many frames' detections differ beyond the tolerance.
"""
from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "data" / "street_labelled" / "pandaset_seq002_front"


def child(cache: str, int8: bool, frames: int, out: str) -> None:
    """One load in this process: time it, detect on ``frames`` frames, pickle both to ``out``."""
    import cv2

    from sense_perception.core.detection.detector_setup import build_detector
    from sense_perception.core.runtime import openvino_session

    if cache:
        openvino_session._core().set_property({"CACHE_DIR": cache})
    spent: list[float] = []
    init = openvino_session.OpenVinoModel.__init__

    def timed(self, *args, **kwargs):  # the specialist's read + reshape + compile (or import)
        start = time.perf_counter()
        init(self, *args, **kwargs)
        spent.append(time.perf_counter() - start)

    openvino_session.OpenVinoModel.__init__ = timed  # type: ignore[method-assign]
    start = time.perf_counter()
    detector = build_detector({"runtime.providers": ["CPUExecutionProvider"],
                               "runtime.openvino_int8": int8})
    built = time.perf_counter() - start
    paths = sorted(FRAMES.glob("*.jpg"))[:frames]
    found = [detector.detect_one(cv2.imread(str(p))) for p in paths]
    Path(out).write_bytes(pickle.dumps({"build_s": built, "openvino_s": sum(spent),
                                        "detections": found}))


def load(cache: str, int8: bool, frames: int, scratch: str) -> dict:
    """One load in a fresh process (``cache`` "": none); what :func:`child` recorded."""
    out = Path(scratch) / "out.pkl"
    subprocess.run([sys.executable, __file__, "--child", cache, str(int(int8)), str(frames),
                    str(out)], check=True, cwd=REPO)
    return pickle.loads(out.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--child", nargs=4, metavar=("CACHE", "INT8", "FRAMES", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cache, int8, frames, out = args.child
        child(cache, int8 == "1", int(frames), out)
        return
    sys.path.insert(0, str(REPO / "test"))
    from support import assert_detections_close

    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for int8 in (True, False):
            cache = Path(scratch) / f"cache_int8_{int(int8)}"
            cache.mkdir(mode=0o700)
            runs: dict[str, list[dict]] = {"cold": [], "warm": []}

            load(str(cache), int8, args.frames, scratch)  # writes the blob warm loads import
            for _ in range(args.rounds):
                for kind in ("cold", "warm"):
                    runs[kind].append(load("" if kind == "cold" else str(cache), int8,
                                           args.frames, scratch))
            differing = 0
            for cold, warm in zip(runs["cold"][0]["detections"], runs["warm"][0]["detections"],
                                  strict=True):
                try:
                    assert_detections_close(warm, cold, threshold=(0.0,))
                except AssertionError:
                    differing += 1
            report["int8" if int8 else "original"] = {
                kind: {"build_s": round(statistics.median(r["build_s"] for r in rs), 2),
                       "openvino_s": round(statistics.median(r["openvino_s"] for r in rs), 2),
                       "detections": sum(len(d) for d in rs[0]["detections"])}
                for kind, rs in runs.items()} | {"frames_differing": differing,
                                                 "frames": len(runs["cold"][0]["detections"])}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
