"""replay_fps: throughput of the replay engine on the bundled sample bag.

The sample bag (sense_perception/data/sample_bag) holds 13 frames on three cameras: 4 JPEG front
frames 960x540, 1 raw rgb8 windshield frame 640x480, and 8 JPEG cabin frames 640x480. The replay
runs all three, with the driver-identity pipeline on the cabin topic against a gallery holding one
driver enrolled from two real photos (shared/data/faces) when they are there, an empty gallery
otherwise. Models are built once outside the timed part, as a long replay amortises them;
``replay_fps`` is the median over runs of the engine's own ``throughput_fps`` (frames processed /
wall time of its read-decode-detect-track-write loop, output MCAP writing included).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .common import SAMPLE_BAG, SHARED_FACES, load
from .tempdirs import private_folder

CABIN = "/camera/cabin/image_raw/compressed"
ENROL_PHOTOS = ("obama_2_congress_2009.jpg", "obama_3_blue_room_2010.jpg")


def _gallery_config(tmp: Path) -> tuple[Path, str]:
    import cv2

    from sense_perception.face.gallery import ConsentRecord, GalleryStore
    from sense_perception.face.pipeline import FaceEngine
    from sense_perception.face.settings import FaceConfig

    gallery = tmp / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    note = "empty gallery (shared/data/faces not found)"
    photos = [SHARED_FACES / name for name in ENROL_PHOTOS]
    if all(p.is_file() for p in photos):
        engine = load(lambda: FaceEngine(FaceConfig(driver_region=[0.0, 0.0, 1.0, 1.0])),
                      "the face models")
        embs = [engine.driver_embedding(cv2.imread(str(p)))[2] for p in photos]
        if all(e is not None for e in embs):
            GalleryStore(gallery).enroll("Barack Obama", np.stack(embs),
                                         ConsentRecord.now("Barack Obama"))
            note = "one driver enrolled from two photos not in the bag"
    config = tmp / "params.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      path: {gallery}\n")
    return config, note


def run(detector: Any, runs: int) -> dict[str, Any]:
    """Median replay throughput (frames/s) over ``runs`` replays of the sample bag."""
    from sense_perception.config import load_params
    from sense_perception.face.pipeline import DriverIdentifier
    from sense_perception.replay.engine import ReplayOptions, Replayer

    with private_folder("replay") as tmp:
        config, gallery_note = _gallery_config(tmp)
        identifier = load(lambda: DriverIdentifier.from_params(
            load_params(config, "driver_monitor"), "bench"), "the face models")
        fps, summaries = [], []
        for i in range(runs + 1):  # run 0 warms caches (first MCAP write, first face model run)
            result = Replayer(ReplayOptions(SAMPLE_BAG, tmp / f"out{i}", cabin=CABIN,
                                            config=config),
                              detector=detector, identifier=identifier).run()
            if i:
                fps.append(result.summary["throughput_fps"])
                summaries.append(result.summary)
    last = summaries[-1]
    return {
        "replay_fps": round(float(np.median(fps)), 3),
        "detail": {
            "what": ("Replayer on sense_perception/data/sample_bag, all 3 cameras, identity on "
                     f"{CABIN}; {gallery_note}; median of the engine's throughput_fps over runs"),
            "runs": runs,
            "fps_per_run": fps,
            "frames": last["frames"],
            "latency_ms": last["latency_ms"],
            "skipped": last["skipped"],
        },
    }
