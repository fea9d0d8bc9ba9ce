"""Measure the camera-health conditions on real frames: detection rates, false alarms, delays.

    python -m sense_perception.evaluation.camera_health_eval --out /tmp/health/eval

Clean frames are the street and PandaSet frames of ``../shared/data`` and the faces as cabin
frames; degraded copies come from :mod:`.degrade` with a fixed seed, so a run is repeatable.
Three measurements:

- **single frames** (no hysteresis): the share of degraded frames showing the degradation's
  condition (soiling also per coverage), and of clean frames and scene proxies showing any;
- **sequences** at 10 Hz (the PandaSet frames in order, the same soiling on each): the delay from
  the first degraded frame to the raised condition, with the default hysteresis, and the alarms
  raised on clean and standing-still sequences;
- **frozen streams**: repeated frames at 10 and 30 Hz.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.health.camera_conditions import frame_metrics, image_conditions, small_copy
from ..core.health.camera_health import CameraHealthMonitor
from ..core.health.camera_settings import CameraHealthSettings
from . import degrade

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SEED = 2024
COVERAGES = (0.1, 0.2, 0.3, 0.45, 0.6)


def read(path: Path) -> np.ndarray:
    """A BGR frame; a file OpenCV cannot read is an error naming it."""
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"{path} is not a readable image")
    return image


def clean_sets(data: Path, step: int) -> dict[str, list[Path]]:
    """The clean frames: PandaSet (every ``step``-th of 80), the other street frames, the faces."""
    pandaset = sorted((data / "street_labelled" / "pandaset_seq002_front").glob("*.jpg"))
    street = [p for p in sorted((data / "street").iterdir())
              if not p.name.startswith("pandaset")]  # those are copies of PandaSet frames
    return {"pandaset": pandaset[::step], "street": street,
            "cabin": sorted((data / "faces").iterdir())}


def judge(image: np.ndarray, settings: CameraHealthSettings) -> list[str]:
    """The image conditions of one frame (no hysteresis)."""
    return image_conditions(frame_metrics(small_copy(image, settings.width), None, settings), settings)


def _rate(hits: Iterable[bool]) -> dict[str, Any]:
    hits = list(hits)
    return {"frames": len(hits), "rate": round(float(np.mean(hits)), 4) if hits else None}


def vehicle_crops(data: Path, frames: Iterable[str]) -> list[np.ndarray]:
    """The largest vehicle (car or truck, under 30 % occluded) of PandaSet frames, each cropped at
    the camera's resolution: a vehicle filling a narrower view."""
    folder = data / "street_labelled" / "pandaset_seq002_front"
    boxes = json.loads((folder / "ground_truth.json").read_text())["cameras"]
    crops = []
    for key in frames:
        vehicles = [b["bbox_xyxy"] for b in boxes[f"front_camera/{key}"]["boxes"]
                    if b["label"] in ("car", "truck") and b["occluded_fraction"] < 0.3]
        if vehicles:
            box = max(vehicles, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            crops.append(degrade.crop(read(folder / f"{key}.jpg"), box))
    return crops


def single_frames(images: dict[str, list[np.ndarray]], settings: CameraHealthSettings,
                  rng: np.random.Generator, data: Path) -> dict[str, Any]:
    """Per-frame rates: detection per degradation and coverage, false alarms on clean and scenes."""
    out: dict[str, Any] = {"clean": {}, "scenes": {}, "degraded": {}, "soiling_by_coverage": {}}
    every = [i for group in images.values() for i in group]
    for name, group in images.items():
        found = [judge(i, settings) for i in group]
        out["clean"][name] = {**_rate(bool(f) for f in found),
                              "conditions": sorted({c for f in found for c in f})}
    street = images["pandaset"] + images["street"]
    scenes: dict[str, list[np.ndarray]] = {
        "night_street_lights": [degrade.night(i, rng) for i in street],
        "tunnel": [degrade.tunnel(i, rng) for i in street],
        "uniform_sky": [degrade.crop(i, (0, 0, 450, 110)) for i in images["pandaset"]],
        "vehicle_filling_view": vehicle_crops(data, [f"{k:02d}" for k in range(0, 80, 8)]),
    }
    for name, group in scenes.items():
        found = [judge(i, settings) for i in group]
        out["scenes"][name] = {**_rate(bool(f) for f in found),
                               "conditions": sorted({c for f in found for c in f})}
    for name, fn in degrade.DEGRADATIONS.items():
        want = degrade.EXPECTED[name]
        found = [judge(fn(i, rng), settings) for i in every]
        out["degraded"][name] = {"condition": want, **_rate(want in f for f in found),
                                 "any_condition": _rate(bool(f) for f in found)["rate"]}
    for name in ("soil_opaque", "soil_semi"):
        fn = getattr(degrade, name)
        out["soiling_by_coverage"][name] = {
            str(c): _rate("blocked" in judge(fn(i, rng, c), settings) for i in street)
            for c in COVERAGES}
    return out


def _delay(monitor: CameraHealthMonitor, frames: list[np.ndarray], condition: str,
           period: float) -> float | None:
    """Seconds from the first frame to ``condition`` raised; None if never."""
    for i, frame in enumerate(frames):
        for event in monitor.update(frame, i * period, "camera", i * period):
            if event.condition == condition and event.raised:
                return round(i * period, 3)
    return None


def sequences(pandaset: list[Path], settings: CameraHealthSettings, starts: Iterable[int],
              length: int) -> dict[str, Any]:
    """Delay to raise on 10 Hz PandaSet sequences; alarms on clean and standing-still ones."""
    period = 0.1
    out: dict[str, Any] = {"period_s": period, "degraded": {}, "clean": {}, "frozen": {}}
    runs = {start: [read(p) for p in pandaset[start:start + length]] for start in starts}
    for name, fn in degrade.DEGRADATIONS.items():
        want = degrade.EXPECTED[name]
        delays = []
        for start, frames in runs.items():
            # the same seed for every frame: the same mud, drops or fog on the moving scene
            seq = [fn(f, np.random.default_rng(SEED + start)) for f in frames]
            monitor = CameraHealthMonitor("/camera", settings)
            delays.append(_delay(monitor, seq, want, period))
        found = [d for d in delays if d is not None]
        out["degraded"][name] = {"condition": want, "sequences": len(delays),
                                 "raised": len(found),
                                 "within_1s": sum(d <= 1.0 for d in found),
                                 "delay_s_max": max(found) if found else None}
    alarms = []
    for frames in runs.values():
        monitor = CameraHealthMonitor("/camera", settings)
        alarms += [e.condition for i, f in enumerate(frames)
                   for e in monitor.update(f, i * period, "camera", i * period) if e.raised]
    out["clean"]["moving"] = {"sequences": len(runs), "frames": sum(map(len, runs.values())),
                              "alarms": alarms}
    alarms = []
    for start, frames in runs.items():
        monitor = CameraHealthMonitor("/camera", settings)
        still = degrade.standing_still(frames[0], np.random.default_rng(SEED + start), 3 * length)
        alarms += [e.condition for i, f in enumerate(still)
                   for e in monitor.update(f, i * period, "camera", i * period) if e.raised]
    out["clean"]["standing_still"] = {"sequences": len(runs), "frames": 3 * length * len(runs),
                                      "alarms": alarms}
    for hz in (10, 30):
        delays = []
        for frames in runs.values():
            monitor = CameraHealthMonitor("/camera", settings)
            # moving frames first, then the camera repeats its last frame
            seq = frames[:3] + degrade.repeated(frames[3], 2 * hz)
            delay = _delay(monitor, seq, "frozen", 1 / hz)
            delays.append(None if delay is None else round(delay - 3 / hz, 3))
        found = [d for d in delays if d is not None]
        out["frozen"][f"{hz}_hz"] = {"sequences": len(delays), "raised": len(found),
                                     "within_1s": sum(d <= 1.0 for d in found),
                                     "delay_s_max": max(found) if found else None}
    return out


def per_frame_cost_ms(image: np.ndarray, settings: CameraHealthSettings, repeat: int = 50,
                      clock: Callable[[], float] | None = None) -> float:
    """Median cost in milliseconds of the pixel metrics of one frame (small copy included)."""
    import time

    clock = clock or time.perf_counter
    previous = small_copy(image, settings.width)
    times = []
    for _ in range(repeat):
        start = clock()
        small = small_copy(image, settings.width)
        image_conditions(frame_metrics(small, previous, settings), settings)
        times.append(clock() - start)
        previous = small
    return round(1000 * float(np.median(times)), 3)


def evaluate(data: Path = DATA, step: int = 4, starts: Iterable[int] = (0, 40),
             length: int = 15, settings: CameraHealthSettings | None = None) -> dict[str, Any]:
    """The whole evaluation as a JSON-ready dict."""
    settings = settings or CameraHealthSettings()
    cv2.setNumThreads(1)
    sets = clean_sets(data, step)
    images = {name: [read(p) for p in paths] for name, paths in sets.items()}
    rng = np.random.default_rng(SEED)
    pandaset = sorted((data / "street_labelled" / "pandaset_seq002_front").glob("*.jpg"))
    return {"seed": SEED, "frames": {k: len(v) for k, v in images.items()},
            "single_frames": single_frames(images, settings, rng, data),
            "sequences": sequences(pandaset, settings, starts, length),
            "cost_ms_1080p": per_frame_cost_ms(read(pandaset[0]), settings)}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/camera-health.md from an :func:`evaluate` result."""
    single, seq = result["single_frames"], result["sequences"]
    lines = ["| degradation | condition | frames | detected (one frame) | any condition | "
             "sequences raised within 1 s | longest delay |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in single["degraded"].items():
        s = seq["degraded"][name]
        delay = "-" if s["delay_s_max"] is None else f"{s['delay_s_max']:.1f} s"
        lines.append(f"| {name} | {row['condition']} | {row['frames']} | {_pct(row['rate'])} | "
                     f"{_pct(row['any_condition'])} | {s['within_1s']} / {s['sequences']} | {delay} |")
    for hz, s in seq["frozen"].items():
        delay = "-" if s["delay_s_max"] is None else f"{s['delay_s_max']:.2f} s"
        lines.append(f"| repeated frames, {hz.replace('_', ' ')} | frozen | - | - | - | "
                     f"{s['within_1s']} / {s['sequences']} | {delay} |")
    lines += ["", "Soiling found as `blocked`, by the share of the view covered (street frames):", "",
              "| soiling | " + " | ".join(f"{float(c):.0%}" for c in COVERAGES) + " |",
              "| --- |" + " ---: |" * len(COVERAGES)]
    for name, rates in single["soiling_by_coverage"].items():
        lines.append(f"| {name} | " + " | ".join(_pct(r["rate"]) for r in rates.values()) + " |")
    lines += ["", "False alarms (any condition raised):", "", "| clean frames | frames | false alarms |",
              "| --- | ---: | ---: |"]
    for group, key in (("clean", "clean"), ("scene proxy", "scenes")):
        for name, row in single[key].items():
            extra = f" ({', '.join(row['conditions'])})" if row["conditions"] else ""
            lines.append(f"| {group}: {name} | {row['frames']} | {_pct(row['rate'])}{extra} |")
    for name, row in seq["clean"].items():
        lines.append(f"| 10 Hz sequence, {name.replace('_', ' ')} (hysteresis) | {row['frames']} | "
                     f"{len(row['alarms'])} alarms{' (' + ', '.join(row['alarms']) + ')' if row['alarms'] else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: write ``camera_health_eval.json`` and ``.md`` under ``--out``; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for camera_health_eval.json")
    parser.add_argument("--step", type=int, default=4, help="every STEP-th PandaSet frame (1: all 80)")
    args = parser.parse_args(argv)
    if not (args.data / "street_labelled").is_dir():
        print(f"error: {args.data} holds no street_labelled/ folder; give --data the shared data "
              "folder", file=sys.stderr)
        return 2
    result = evaluate(args.data, args.step)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "camera_health_eval.json").write_text(json.dumps(result, indent=1))
    (args.out / "camera_health_eval.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
