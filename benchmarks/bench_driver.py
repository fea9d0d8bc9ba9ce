"""driver_*_ms: the driver monitor's cost per 1280x720 cabin frame, identity alone and with attention.

Frames: each real face photo of shared/data/faces scaled so that the face is about 220 px wide
(a driver half a metre from a 1280x720 cabin camera) on a grey 1280x720 canvas, in three copies
shifted by 2 px (a head moving slightly). A round plays one photo's ten frames, stamped 0.1 s
apart (a 10 Hz camera; stamps run on across rounds), and the next round the next photo: a new
face every second. Variants, all :class:`~sense_perception.face.pipeline.DriverIdentifier` with
the default ``driver_monitor`` settings on the CPU provider, an empty gallery (nobody enrolled:
SFace still embeds the driver's face, the matching is trivial) and one shared FaceEngine:

* ``identity``: ``attention.enabled`` false;
* ``identity_attention``: the defaults (face mesh, head pose, both eyes, the state machine; the
  previous frame's mesh places the crop, as in a stream);
* ``identity_attention_interval``: also ``identity.embed_interval_s`` 0.5 (SFace at most twice a
  second on a settled, steady face).

They alternate round by round (side by side), so their ratios saw the same machine. The attention
networks run on one thread each (``attention.intra_op_threads`` 1): no variant adds a thread pool
of its own, whose idle, spinning workers would slow the others down.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .common import SHARED_FACES, load, side_by_side
from .tempdirs import private_folder

FRAME_W, FRAME_H = 1280, 720
FACE_PX = 220  # face width in the cabin frame
SHIFTS_PX = (0, 2, 4)
FRAMES_PER_ROUND = 10


def cabin_frames(directory: Path = SHARED_FACES) -> tuple[list[str], list[list[np.ndarray]]]:
    """Per real face photo, its 1280x720 cabin frames (see the module docstring)."""
    import cv2

    from sense_perception.core.runtime.session import RuntimeOptions
    from sense_perception.face.yunet import YuNetDetector

    detector = load(lambda: YuNetDetector(options=RuntimeOptions(
        providers=("CPUExecutionProvider",))), "the face detector")
    names, streams = [], []
    for path in sorted(p for p in Path(directory).glob("*") if p.suffix in (".jpg", ".png")):
        photo = cv2.imread(str(path))
        faces = detector.detect(photo)
        if not len(faces):
            continue
        box = faces.boxes[int(np.argmax(faces.boxes[:, 2] - faces.boxes[:, 0]))]
        scale = FACE_PX / float(box[2] - box[0])
        small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cx, cy = (box[:2] + box[2:]) * 0.5 * scale
        stream = []
        for shift in SHIFTS_PX:
            frame = np.full((FRAME_H, FRAME_W, 3), 96, np.uint8)
            # The face centre at (0.6 W, 0.4 H): inside the default (left-hand drive) driver region.
            ox, oy = int(0.6 * FRAME_W - cx) + shift, int(0.4 * FRAME_H - cy) + shift
            x0, y0 = max(ox, 0), max(oy, 0)
            x1, y1 = min(ox + small.shape[1], FRAME_W), min(oy + small.shape[0], FRAME_H)
            frame[y0:y1, x0:x1] = small[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
            stream.append(frame)
        names.append(path.name)
        streams.append(stream)
    if not streams:
        raise SystemExit(f"no face photo with a face in {directory}; the driver benchmark needs "
                         "shared/data/faces")
    return names, streams


def run(rounds: int) -> dict[str, Any]:
    """Identity alone and with attention per cabin frame, side by side (module docstring)."""
    from sense_perception.face.pipeline import DriverIdentifier, FaceEngine
    from sense_perception.face.settings import DriverMonitorSettings

    names, streams = cabin_frames()
    with private_folder("driver") as tmp:
        base = {"gallery.path": str(tmp / "gallery.json"),
                "runtime.providers": ["CPUExecutionProvider"]}
        engine = load(lambda: FaceEngine(DriverMonitorSettings.from_params(base, "bench").face),
                      "the face models")
        variants = {
            "identity": {"attention.enabled": False},
            "identity_attention": {},
            "identity_attention_interval": {"identity.embed_interval_s": 0.5},
        }
        identifiers = load(lambda: {name: DriverIdentifier(DriverMonitorSettings.from_params(
            {**base, **extra}, "bench"), engine=engine) for name, extra in variants.items()},
            "the attention models")
        stages: dict[str, list[float]] = {}
        embedded = {name: 0 for name in variants}
        frames_seen = {name: 0 for name in variants}

        def step(name: str, i: int) -> None:
            frame = streams[(i // FRAMES_PER_ROUND) % len(streams)][i % len(SHIFTS_PX)]
            result = identifiers[name].process(frame, 0.1 * i)
            frames_seen[name] += 1
            embedded[name] += result.timings_ms["embed"] > 0
            if name == "identity_attention":
                timings = dict(result.timings_ms)
                if result.attention is not None:
                    timings.update({f"attention.{k}": v
                                    for k, v in result.attention.timings_ms.items()})
                for stage, ms in timings.items():
                    stages.setdefault(stage, []).append(ms)

        timed = side_by_side({name: (lambda i, n=name: step(n, i)) for name in variants},
                             rounds, FRAMES_PER_ROUND)
        last = identifiers["identity_attention"].process(streams[0][0], 0.1 * FRAMES_PER_ROUND
                                                          * (rounds + 2))
    return {
        "driver_identity_ms": round(timed.median_ms("identity"), 2),
        "driver_identity_attention_ms": round(timed.median_ms("identity_attention"), 2),
        "driver_attention_over_identity": round(timed.ratio("identity_attention", "identity"), 3),
        "driver_identity_attention_interval_ms": round(
            timed.median_ms("identity_attention_interval"), 2),
        "detail": {
            "what": (f"ms per {FRAME_W}x{FRAME_H} cabin frame (median over rounds of the mean of "
                     f"{FRAMES_PER_ROUND} frames of one face), identity alone (YuNet + align + "
                     "SFace + match + decision) and with attention (+ face mesh + solvePnP + iris "
                     "on both eyes + state machine), interleaved in the same rounds, CPU provider; "
                     "variants in benchmarks/bench_driver.py"),
            "frames": names,
            "face_px": FACE_PX,
            "timed": timed.summary(),
            "ratios": {name: round(timed.ratio(name, "identity"), 3) for name in variants
                       if name != "identity"},
            "ratio_p25_p75": timed.ratio_spread("identity_attention", "identity"),
            "embedded_share": {name: round(embedded[name] / max(frames_seen[name], 1), 3)
                               for name in variants},
            "stage_mean_ms": {k: round(float(np.mean(v)), 3) for k, v in sorted(stages.items())},
            "attention_measured": last.attention is not None and last.attention.pose is not None,
        },
    }
