"""fleet_scaling: bags/s of ``sense-perception fleet`` with 2 workers over 1, on the same bags, and
``fleet_over_replay_per_frame``: the fleet path's time per frame over a plain replay's.

The bags are copies of the bundled sample bag (13 frames on 3 cameras, identity on the cabin
camera, the gallery of :mod:`.bench_replay`). One local Ray instance (2 CPUs) serves every round.
Each round runs, in alternating order: the plain replay engine over all bags in this process
(models built once, outside the timing), the fleet with 1 worker and the fleet with 2 workers
(``--force``, so every bag is replayed). Fleet times are the dispatcher's ``replay_wall_s``: first
bag handed out to last bag settled, with the first bag handed out only once every worker has
loaded its models (``start_together``), so worker start-up (paid once per worker, reported apart
as ``worker_start_s``) is left out, as the models are for the plain replay.
Both sides run onnxruntime and OpenCV with one thread (``runtime.intra_op_threads: 1``; a
worker sets OpenCV's threads to its one CPU, this process does the same for the plain replay):
the overhead figure is then the fleet machinery itself (Ray calls, actors, the temporary folder
and its rename, progress polling), not a different thread count. Figures are medians of per-round
ratios.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .bench_replay import CABIN, _gallery_config
from .common import SAMPLE_BAG, load
from .tempdirs import private_folder

FLEET_WORKERS = (1, 2)


def _config(tmp: Path, picodet_only: bool = False) -> tuple[Path, str]:
    """The replay benchmark's gallery config with onnxruntime at one thread per process; with
    ``picodet_only`` (``--quick``) the detector is PicoDet alone (``pedestrian_model: none``)."""
    base, note = _gallery_config(tmp)
    doc = yaml.safe_load(base.read_text())
    for node in ("object_detector", "driver_monitor"):
        params = doc.setdefault(node, {}).setdefault("ros__parameters", {})
        params.setdefault("runtime", {})["intra_op_threads"] = 1
    if picodet_only:
        doc["object_detector"]["ros__parameters"]["detector"] = {"pedestrian_model": "none"}
    path = tmp / "fleet_params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, note


def _plain(bags: list[Path], out: Path, config: Path, core: dict[str, Any]) -> tuple[float, dict]:
    from sense_perception.replay.engine import ReplayOptions, Replayer

    cameras = {}
    t0 = time.perf_counter()
    for bag in bags:
        result = Replayer(ReplayOptions(bag, out / bag.name, cabin=CABIN, config=config,
                                        force=True), **core).run()
        cameras[bag.name] = result.summary["cameras"]
    return time.perf_counter() - t0, cameras


def _fleet(root: Path, out: Path, config: Path, workers: int) -> dict[str, Any]:
    from sense_perception.fleet.runner import FleetRequest, run_fleet

    result = run_fleet(FleetRequest(inputs=[root], out=out, workers=workers, config=config,
                                    cabin=CABIN, force=True, start_together=True))
    if result.summary["bags"]["done"] != result.summary["bags"]["found"]:
        raise RuntimeError(f"fleet benchmark: not every bag done: {result.summary['bags']}")
    return result.summary


def run(bags: int, rounds: int, picodet_only: bool = False) -> dict[str, Any]:
    """Measure ``rounds`` interleaved rounds over ``bags`` copies of the sample bag, with the
    default detector, or PicoDet alone with ``picodet_only`` (``--quick``: its numbers mean
    nothing, and each of its 3 fleet workers and the in-process replay saved the specialist's
    OpenVINO compile; the cross-check of fleet against the plain replay is the same)."""
    try:
        import ray
    except ImportError as exc:
        return {"fleet_scaling": None, "fleet_over_replay_per_frame": None,
                "detail": {"measured": False,
                           "reason": f"Ray is not installed ({exc}): pip install '.[fleet]'"}}
    import cv2

    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # as each fleet worker of one CPU does (fleet.worker.BagWorker)
    try:
        return _measure(ray, bags, rounds, picodet_only)
    finally:
        cv2.setNumThreads(cv2_threads)


def _measure(ray: Any, bags: int, rounds: int, picodet_only: bool) -> dict[str, Any]:
    from sense_perception.config import load_params
    from sense_perception.core.detection.detector_setup import build_detector
    from sense_perception.face.pipeline import DriverIdentifier

    with private_folder("fleet") as tmp:
        config, gallery_note = _config(tmp, picodet_only)
        root = tmp / "bags"
        paths = [shutil.copytree(SAMPLE_BAG, root / f"bag{i:02d}") for i in range(bags)]
        core = {"detector": load(lambda: build_detector(load_params(config, "object_detector"),
                                                        "bench"), "the detector's models"),
                "identifier": load(lambda: DriverIdentifier.from_params(
                    load_params(config, "driver_monitor"), "bench"), "the face models")}
        ray.init(address="local", num_cpus=max(FLEET_WORKERS), include_dashboard=False,
                 object_store_memory=100 * 1024 * 1024, log_to_driver=False,
                 logging_level=logging.WARNING)
        try:
            # warms caches (first MCAP write, first face model run); its summaries are the reference
            _, cameras = _plain(paths, tmp / "warm", config, core)
            reference = cameras
            plain_s, fleet_s, start_s, same = [], {w: [] for w in FLEET_WORKERS}, [], True
            frames = 0
            for r in range(rounds):
                order = ["plain", *FLEET_WORKERS]
                for variant in order if r % 2 == 0 else order[::-1]:
                    if variant == "plain":
                        seconds, cameras = _plain(paths, tmp / "plain", config, core)
                        plain_s.append(seconds)
                        same &= cameras == reference
                        continue
                    summary = _fleet(root, tmp / f"fleet{variant}", config, variant)
                    fleet_s[variant].append(summary["replay_wall_s"])
                    start_s.append(summary["worker_start_s"])
                    frames = summary["frames"]
                    for bag in summary["per_bag"]:  # the same work on both paths
                        got = json.loads((Path(bag["output"]) / "summary.json").read_text())
                        same &= got["cameras"] == reference[Path(bag["bag"]).name]
        finally:
            ray.shutdown()
    one, two, plain = (np.asarray(fleet_s[1]), np.asarray(fleet_s[2]), np.asarray(plain_s))
    scaling = one / two  # bags/s with 2 workers over 1 = time with 1 over time with 2
    overhead = one / plain  # same frames, one worker vs one process: time per frame ratio
    return {
        "fleet_scaling": round(float(np.median(scaling)), 3),
        "fleet_over_replay_per_frame": round(float(np.median(overhead)), 3),
        "detail": {
            "measured": True,
            "detector": "picodet alone" if picodet_only else "default",
            "what": (f"{bags} copies of sense_perception/data/sample_bag ({frames // bags} frames "
                     f"each), all 3 cameras, identity on {CABIN}; {gallery_note}; "
                     f"{'PicoDet alone (--quick)' if picodet_only else 'the default detector'}; "
                     "onnxruntime "
                     "and OpenCV 1 thread per worker and in the plain replay; local Ray, 2 CPUs; fleet time "
                     "= replay_wall_s (worker start-up apart), plain = Replayer loop in-process "
                     "(models prebuilt); medians of per-round ratios, variants alternating"),
            "rounds": rounds,
            "bags": bags,
            "frames": frames,
            "bags_per_s": {f"{w}_workers": round(float(np.median(bags / np.asarray(fleet_s[w]))), 3)
                           for w in FLEET_WORKERS},
            "plain_replay_bags_per_s": round(float(np.median(bags / plain)), 3),
            "ms_per_frame": {"plain": round(float(np.median(plain)) * 1e3 / frames, 3),
                             "fleet_1_worker": round(float(np.median(one)) * 1e3 / frames, 3),
                             "fleet_2_workers": round(float(np.median(two)) * 1e3 / frames, 3)},
            "scaling_spread": [round(float(np.percentile(scaling, q)), 3) for q in (25, 75)],
            "overhead_spread": [round(float(np.percentile(overhead, q)), 3) for q in (25, 75)],
            "worker_start_s_median": round(float(np.median([s for s in start_s if s])), 3),
            "same_cameras_summary_as_replay": bool(same),
        },
    }
