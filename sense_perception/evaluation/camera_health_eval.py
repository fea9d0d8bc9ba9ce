"""Measure the camera-health conditions on real frames: detection rates, false alarms, delays.

    python -m sense_perception.evaluation.camera_health_eval --out /tmp/health/eval

Clean frames are the street and PandaSet frames of ``../shared/data`` and the faces as cabin
frames; degraded copies come from :mod:`.degrade` with a fixed seed, so a run is repeatable.

The source images are split, seeded (:func:`split`), into a **tuning** subset (the thresholds
may be chosen on it) and a **held-out** subset (only measured): by source image, never by
degraded copy, and the PandaSet drive by whole one-second segments of consecutive frames, since
neighbouring frames of one drive are near copies of each other. Every measurement below is made
on each subset separately.

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
SPLIT_SEED = 24  # the tuning / held-out split; never changed once thresholds were chosen on it
SEGMENT = 10  # PandaSet frames per split unit: one second of the 10 Hz drive
SUBSETS = ("tuning", "held_out")


def split(data: Path, seed: int = SPLIT_SEED) -> dict[str, dict[str, list[Path]]]:
    """The source images of each subset: ``{"tuning"|"held_out": {"pandaset", "street",
    "cabin": [paths]}}``.

    PandaSet's 80 frames are cut into one-second segments of :data:`SEGMENT` consecutive frames;
    half the segments (drawn with ``seed``) are held out. The other street frames and the cabin
    photos are drawn one by one, half each (the odd one out to the held-out side).
    """
    rng = np.random.default_rng(seed)
    pandaset = sorted((data / "street_labelled" / "pandaset_seq002_front").glob("*.jpg"))
    segments = [pandaset[i:i + SEGMENT] for i in range(0, len(pandaset), SEGMENT)]
    held = set(rng.permutation(len(segments))[:len(segments) // 2].tolist())
    out: dict[str, dict[str, list[Path]]] = {s: {"pandaset": [], "street": [], "cabin": []}
                                              for s in SUBSETS}
    for i, segment in enumerate(segments):
        out["held_out" if i in held else "tuning"]["pandaset"] += segment
    street = [p for p in sorted((data / "street").iterdir())
              if not p.name.startswith("pandaset")]  # those are copies of PandaSet frames
    for name, paths in (("street", street), ("cabin", sorted((data / "faces").iterdir()))):
        order = rng.permutation(len(paths)).tolist()
        half = len(paths) // 2
        out["tuning"][name] = sorted(paths[i] for i in order[:half])
        out["held_out"][name] = sorted(paths[i] for i in order[half:])
    return out


def read(path: Path) -> np.ndarray:
    """A BGR frame; a file OpenCV cannot read is an error naming it."""
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"{path} is not a readable image")
    return image


def clean_sets(subset: dict[str, list[Path]], step: int, offset: int = 0) -> dict[str, list[Path]]:
    """The clean frames of one subset (:func:`split`): every ``step``-th of its PandaSet frames
    from ``offset``, its other street frames, its faces."""
    return {"pandaset": subset["pandaset"][offset::step], "street": subset["street"],
            "cabin": subset["cabin"]}


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
                  rng: np.random.Generator, data: Path,
                  vehicle_frames: Iterable[str]) -> dict[str, Any]:
    """Per-frame rates: detection per degradation and coverage, false alarms on clean and scenes."""
    out: dict[str, Any] = {"clean": {}, "scenes": {}, "degraded": {}, "soiling_by_coverage": {}}
    every = [i for group in images.values() for i in group]
    for name, group in images.items():
        found = [judge(i, settings) for i in group]
        out["clean"][name] = {**_rate(bool(f) for f in found),
                              "conditions": sorted({c for f in found for c in f})}
    street = images["pandaset"] + images["street"]
    sky_rng = rng.spawn(1)[0]
    # each later proxy its own generator, spawned after the first: every earlier figure's draws
    # stay as they were
    snow_rng, wet_rng, dusk_rng = rng.spawn(3)
    scenes: dict[str, list[np.ndarray]] = {
        "night_street_lights": [degrade.night(i, rng) for i in street],
        # its own generator: added later, it leaves every other figure's draws as they were
        "night_open_sky": [degrade.night_open_sky(i, sky_rng) for i in street],
        "tunnel": [degrade.tunnel(i, rng) for i in street],
        "snow_overcast": [degrade.snow(i, snow_rng) for i in street],
        "wet_road_night_or_dusk": [degrade.wet_road(i, wet_rng) for i in street],
        "dusk": [degrade.dusk(i, dusk_rng) for i in street],
        "uniform_sky": [degrade.crop(i, (0, 0, 450, 110)) for i in images["pandaset"]],
        "vehicle_filling_view": vehicle_crops(data, vehicle_frames),
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
    return _delay_from(monitor, frames, condition, period, 0.0)


def _sequence_delay(frames: list[np.ndarray], fn: Callable[..., np.ndarray], want: str,
                    settings: CameraHealthSettings, seed: int, period: float,
                    *args: Any) -> float | None:
    # the same seed for every frame: the same mud, drops or fog on the moving scene
    seq = [fn(f, np.random.default_rng(seed), *args) for f in frames]
    return _delay(CameraHealthMonitor("/camera", settings), seq, want, period)


def _arriving_delay(lead_in: list[np.ndarray], frames: list[np.ndarray],
                    fn: Callable[..., np.ndarray], settings: CameraHealthSettings, seed: int,
                    period: float, coverage: float) -> float | None:
    """Seconds from the first soiled frame to ``blocked``, after a clean ``lead_in`` of the same
    drive: soiling that arrives while the car drives (a splash). None if never raised."""
    monitor = CameraHealthMonitor("/camera", settings)
    for i, frame in enumerate(lead_in):
        monitor.update(frame, i * period, "camera", i * period)
    soiled = [fn(f, np.random.default_rng(seed), coverage) for f in frames]
    return _delay_from(monitor, soiled, "blocked", period, len(lead_in) * period)


def _delay_from(monitor: CameraHealthMonitor, frames: list[np.ndarray], condition: str,
                period: float, start: float) -> float | None:
    """Seconds from ``start`` (the first of ``frames``) to ``condition`` raised; None if never."""
    for i, frame in enumerate(frames):
        stamp = start + i * period
        for event in monitor.update(frame, stamp, "camera", stamp):
            if event.condition == condition and event.raised:
                return round(i * period, 3)
    return None


def _alarms(frames: list[np.ndarray], settings: CameraHealthSettings, period: float) -> list[str]:
    """The conditions raised over one sequence of frames."""
    monitor = CameraHealthMonitor("/camera", settings)
    return [e.condition for i, f in enumerate(frames)
            for e in monitor.update(f, i * period, "camera", i * period) if e.raised]


def _delays(delays: list[float | None], want: str) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    return {"condition": want, "sequences": len(delays), "raised": len(found),
            "within_1s": sum(d <= 1.0 for d in found),
            "delay_s_max": max(found) if found else None}


def sequences(runs: list[list[Path]], settings: CameraHealthSettings,
              drive: list[Path] | None = None) -> dict[str, Any]:
    """Delay to raise on 10 Hz PandaSet sequences (one per segment of ``runs``); alarms on
    clean and standing-still ones.

    With ``drive`` (every frame of the drive, in order), the segments that have one are also
    played after their lead-in, the second of the drive before them (whichever subset it lies
    in: it only gives the camera its recent past, nothing is measured on it): soiling arriving
    while the car drives, and clean driving into and out of a tunnel.
    """
    period = 0.1
    out: dict[str, Any] = {"period_s": period, "degraded": {}, "blockage_30": {},
                           "blockage_arriving": {}, "clean": {}, "frozen": {}}
    clips = {int(paths[0].stem): [read(p) for p in paths] for paths in runs}
    by_stem = {int(p.stem): p for p in drive or []}
    lead_ins = {start: [read(by_stem[i]) for i in range(start - SEGMENT, start)]
                for start in clips if all(i in by_stem for i in range(start - SEGMENT, start))}
    for name, fn in degrade.DEGRADATIONS.items():
        want = degrade.EXPECTED[name]
        out["degraded"][name] = _delays([_sequence_delay(frames, fn, want, settings, SEED + start,
                                                         period)
                                         for start, frames in clips.items()], want)
    # the target's case: soiling of 30 % or more, three draws of coverage (0.3-0.6) per clip
    for name in ("soil_opaque", "soil_semi"):
        fn = getattr(degrade, name)
        delays = []
        for start, frames in clips.items():
            for k in range(3):
                coverage = float(np.random.default_rng([SEED, start, k]).uniform(0.3, 0.6))
                delays.append(_sequence_delay(frames, fn, "blocked", settings,
                                              SEED + 100 * k + start, period, coverage))
        out["blockage_30"][name] = _delays(delays, "blocked")
        arriving = [_arriving_delay(lead_ins[start], frames, fn, settings, SEED + 100 * k + start,
                                    period, float(np.random.default_rng([SEED, start, k])
                                                  .uniform(0.3, 0.6)))
                    for start, frames in clips.items() if start in lead_ins for k in range(3)]
        out["blockage_arriving"][name] = _delays(arriving, "blocked")
    alarms: list[str] = []
    for frames in clips.values():
        alarms += _alarms(frames, settings, period)
    out["clean"]["moving"] = {"sequences": len(clips), "frames": sum(map(len, clips.values())),
                              "alarms": alarms}
    alarms = []
    for start, frames in clips.items():
        if start in lead_ins:
            alarms += _alarms(lead_ins[start] + frames, settings, period)
    out["clean"]["moving_after_lead_in"] = {
        "sequences": len(lead_ins), "frames": 2 * SEGMENT * len(lead_ins), "alarms": alarms}
    alarms = []
    rng = np.random.default_rng(SEED)
    for start, frames in clips.items():
        if start in lead_ins:  # a clean second, the clip in the tunnel, out into daylight again
            inside = [degrade.tunnel(f, rng) for f in frames]
            alarms += _alarms(lead_ins[start] + inside + lead_ins[start][::-1], settings, period)
    out["clean"]["into_and_out_of_a_tunnel"] = {
        "sequences": len(lead_ins), "frames": 3 * SEGMENT * len(lead_ins), "alarms": alarms}
    for name, grey, over, cover in (
            ("a_lit_plain_truck_side_pulling_in", 220.0, 10, (0.45, 0.75)),
            ("a_dark_plain_truck_side_pulling_in", 90.0, 10, (0.45, 0.75)),
            ("a_plain_truck_side_in_deep_shade_pulling_in", 60.0, 10, (0.45, 0.75)),
            # fast: a front camera's neighbour cutting in, a side camera passed by a truck
            ("a_plain_truck_side_in_shade_covering_a_third_at_once", 60.0, 1, (0.45, 0.75)),
            ("a_dark_plain_truck_side_filling_the_view_in_0.2_s", 90.0, 2, (1.0, 1.0)),
            ("a_dark_plain_truck_side_filling_the_view_in_1_s", 90.0, 10, (1.0, 1.0))):
        alarms = []
        for start, frames in clips.items():
            if start in lead_ins:  # in, then it stands there (in over a second: a second)
                alarms += _alarms(lead_ins[start] + degrade.pulling_in(
                    frames + frames[::-1], grey, rng, over, cover), settings, period)
        out["clean"][name] = {"sequences": len(lead_ins), "frames": 3 * SEGMENT * len(lead_ins),
                              "alarms": alarms}
    alarms = []
    still_frames = 0
    for start, frames in clips.items():
        monitor = CameraHealthMonitor("/camera", settings)
        still = degrade.standing_still(frames[0], np.random.default_rng(SEED + start),
                                       3 * len(frames))
        still_frames += len(still)
        alarms += [e.condition for i, f in enumerate(still)
                   for e in monitor.update(f, i * period, "camera", i * period) if e.raised]
    out["clean"]["standing_still"] = {"sequences": len(clips), "frames": still_frames,
                                      "alarms": alarms}
    for hz in (10, 30):
        frozen_delays: list[float | None] = []
        for frames in clips.values():
            monitor = CameraHealthMonitor("/camera", settings)
            # moving frames first, then the camera repeats its last frame
            seq = frames[:3] + degrade.repeated(frames[3], 2 * hz)
            delay = _delay(monitor, seq, "frozen", 1 / hz)
            frozen_delays.append(None if delay is None else round(delay - 3 / hz, 3))
        out["frozen"][f"{hz}_hz"] = _delays(frozen_delays, "frozen")
    return out


def per_frame_cost_ms(image: np.ndarray, settings: CameraHealthSettings, repeat: int = 50,
                      clock: Callable[[], float] | None = None) -> float:
    """Median cost in milliseconds of one frame's health (:meth:`CameraHealthMonitor.update`:
    small copy, metrics, film watch, stream timing, hysteresis)."""
    import time

    clock = clock or time.perf_counter
    monitor = CameraHealthMonitor("/camera", settings)
    monitor.update(image, 0.0)
    times = []
    for i in range(repeat):
        start = clock()
        monitor.update(image, 0.1 * (i + 1))
        times.append(clock() - start)
    return round(1000 * float(np.median(times)), 3)


def evaluate_subset(data: Path, subset: dict[str, list[Path]], step: int,
                    settings: CameraHealthSettings, offset: int = 0) -> dict[str, Any]:
    """Single frames and sequences of one subset of :func:`split`; the one-frame rates on every
    ``step``-th PandaSet frame from ``offset``."""
    sets = clean_sets(subset, step, offset)
    images = {name: [read(p) for p in paths] for name, paths in sets.items()}
    rng = np.random.default_rng(SEED)
    pandaset = subset["pandaset"]
    runs = [pandaset[i:i + SEGMENT] for i in range(0, len(pandaset), SEGMENT)]
    return {"frames": {k: len(v) for k, v in images.items()},
            "single_frames": single_frames(images, settings, rng, data,
                                           [p.stem for p in pandaset[::SEGMENT // 2]]),
            "sequences": sequences(runs, settings, sorted(
                (data / "street_labelled" / "pandaset_seq002_front").glob("*.jpg")))}


def evaluate(data: Path = DATA, step: int = 2,
             settings: CameraHealthSettings | None = None) -> dict[str, Any]:
    """The whole evaluation as a JSON-ready dict: the split, then each subset's measurements."""
    settings = settings or CameraHealthSettings()
    cv2.setNumThreads(1)
    subsets = split(data)
    result: dict[str, Any] = {
        "seed": SEED, "split_seed": SPLIT_SEED, "step": step,
        "split": {name: {k: [p.name for p in v] for k, v in sub.items()}
                  for name, sub in subsets.items()}}
    for name, sub in subsets.items():
        # held out: the odd PandaSet frames, which no tuning (before the split: every fourth
        # frame) has seen; tuning: the even ones
        result[name] = evaluate_subset(data, sub, step, settings,
                                       offset=1 if name == "held_out" and step > 1 else 0)
    pandaset = sorted((data / "street_labelled" / "pandaset_seq002_front").glob("*.jpg"))
    result["cost_ms_1080p"] = per_frame_cost_ms(read(pandaset[0]), settings)
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _delay_text(row: dict[str, Any], digits: int = 1) -> str:
    return "-" if row["delay_s_max"] is None else f"{row['delay_s_max']:.{digits}f} s"


def _both(result: dict[str, Any], fmt: Callable[[Any], str], *path: str) -> str:
    """One table cell: the tuning subset's figure / the held-out subset's figure, each the value
    at ``path`` in that subset's result, formatted by ``fmt``."""
    cells = []
    for subset in SUBSETS:
        value: Any = result[subset]
        for key in path:
            value = value[key]
        cells.append(fmt(value))
    return " / ".join(cells)


def _count(row: dict[str, Any]) -> str:
    return f"{row['within_1s']} of {row['sequences']}"


def _alarm_cell(row: dict[str, Any]) -> str:
    extra = f" ({', '.join(row['conditions'])})" if row["conditions"] else ""
    return f"{_pct(row['rate'])}{extra}"


def _seq_alarms(row: dict[str, Any]) -> str:
    return f"{len(row['alarms'])}" + (f" ({', '.join(row['alarms'])})" if row["alarms"] else "")


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/camera-health.md from an :func:`evaluate` result; every cell reads
    ``tuning / held-out``."""
    tuning = result["tuning"]
    sf, sq = "single_frames", "sequences"
    lines = ["| degradation | condition | frames | detected (one frame) | any condition | "
             "1 s sequences raised | longest delay |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in tuning[sf]["degraded"].items():
        d = (sf, "degraded", name)
        lines.append(f"| {name} | {row['condition']} | {_both(result, str, *d, 'frames')} | "
                     f"{_both(result, _pct, *d, 'rate')} | "
                     f"{_both(result, _pct, *d, 'any_condition')} | "
                     f"{_both(result, _count, sq, 'degraded', name)} | "
                     f"{_both(result, _delay_text, sq, 'degraded', name)} |")
    for key, when in (("blockage_30", "present from the first frame"),
                      ("blockage_arriving", "arriving after a clean second")):
        for name in tuning[sq][key]:
            lines.append(f"| {name}, 30-60 % of the view, {when} | blocked | - | - | - | "
                         f"{_both(result, _count, sq, key, name)} | "
                         f"{_both(result, _delay_text, sq, key, name)} |")
    for hz in tuning[sq]["frozen"]:
        lines.append(f"| repeated frames, {hz.replace('_', ' ')} | frozen | - | - | - | "
                     f"{_both(result, _count, sq, 'frozen', hz)} | "
                     f"{_both(result, lambda r: _delay_text(r, 2), sq, 'frozen', hz)} |")
    lines += ["", "Soiling found as `blocked`, by the share of the view covered (street frames, "
              "one frame, tuning / held-out):", "",
              "| soiling | " + " | ".join(f"{float(c):.0%}" for c in COVERAGES) + " |",
              "| --- |" + " ---: |" * len(COVERAGES)]
    for name in tuning[sf]["soiling_by_coverage"]:
        lines.append(f"| {name} | " + " | ".join(
            _both(result, _pct, sf, "soiling_by_coverage", name, str(c), "rate")
            for c in COVERAGES) + " |")
    lines += ["", "False alarms (any condition raised; tuning / held-out):", "",
              "| clean frames | frames | false alarms |", "| --- | ---: | ---: |"]
    for group, key in (("clean", "clean"), ("scene proxy", "scenes")):
        for name in tuning[sf][key]:
            lines.append(f"| {group}: {name} | {_both(result, str, sf, key, name, 'frames')} | "
                         f"{_both(result, _alarm_cell, sf, key, name)} |")
    for name in tuning[sq]["clean"]:
        lines.append(f"| 10 Hz sequences, {name.replace('_', ' ')} (hysteresis) | "
                     f"{_both(result, str, sq, 'clean', name, 'frames')} | "
                     f"{_both(result, _seq_alarms, sq, 'clean', name)} alarms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: write ``camera_health_eval.json`` and ``.md`` under ``--out``; print the tables."""
    from ..fileio import replace_together
    from ..outpaths import OutputPathError, check_result_file, check_writable_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for camera_health_eval.json")
    parser.add_argument("--step", type=int, default=2,
                        help="every STEP-th PandaSet frame of each subset for the one-frame rates "
                             "(1: all 40 of each); the sequences use every frame")
    args = parser.parse_args(argv)
    if not (args.data / "street_labelled").is_dir():
        print(f"error: {args.data} holds no street_labelled/ folder; give --data the shared data "
              "folder", file=sys.stderr)
        return 2
    files = (args.out / "camera_health_eval.json", args.out / "camera_health_eval.md")
    try:  # before the minutes of evaluation: a bad --out lost them all in a traceback
        check_writable_dir(args.out)
        for path in files:
            check_result_file(path, [], "--out", json_only=path.suffix == ".json")
    except OutputPathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = evaluate(args.data, args.step)
    try:  # both whole or neither: a full disk keeps an earlier pair
        replace_together({files[0]: json.dumps(result, indent=1).encode(),
                          files[1]: (markdown(result) + "\n").encode()}, private=False)
    except OSError as exc:
        print(f"error: cannot write the results to --out {args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
