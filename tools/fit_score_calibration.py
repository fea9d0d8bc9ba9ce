#!/usr/bin/env python3
"""Fit the score calibration each bundled detector ships with (sense_perception/models/score_calibration.json).

Every member model of the configured detector (PicoDet, the pedestrian specialist on its band) is
run alone, with raw scores down to ``--floor``, on the images of a labelled set; the evaluation's
own matcher (pycocotools, ``--iou``) marks each detection hit or false positive. Per model and
label a Platt map ``p = sigmoid(a * logit(raw) + b)`` is fitted by maximum likelihood: two
parameters, strictly increasing, so it cannot chase the noise of 80 correlated frames. Labels with
fewer than ``--min-hits`` hits or false positives get the model's pooled fit. ``--check`` scores
the fitted maps on a second set (the far stand-in of tools/make_far_proxy.py) against overfitting.
It prints reliability tables (Markdown) before and after calibration and the default thresholds
that keep the raw operating point.

    python tools/fit_score_calibration.py ../shared/data/street_labelled/pandaset_seq002_front/ground_truth.json \\
        --check /tmp/far/ground_truth.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sense_perception.config import load_params, resolve_config  # noqa: E402
from sense_perception.core.detection.calibration import (  # noqa: E402
    CALIBRATION_RESOURCE, PlattMap, logit)
from sense_perception.core.detection.detector_setup import build_detector  # noqa: E402
from sense_perception.core.imaging.frame_guard import InputLimits  # noqa: E402
from sense_perception.core.imaging.image_file import read_image_file  # noqa: E402
from sense_perception.core.runtime.model_registry import MODELS, sha256_file  # noqa: E402
from sense_perception.evaluation.ground_truth import load_ground_truth  # noqa: E402
from sense_perception.evaluation.scoring import ImageDetections, match_detections  # noqa: E402
from sense_perception.fileio import read_regular_file, write_result_json  # noqa: E402
from sense_perception.outpaths import OutputPathError, OwnResult, check_result_file  # noqa: E402

BATCH = 4
BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)
# The raw operating point (docs/detection-quality.md): (setting, model, label, raw threshold).
OPERATING_POINT = (("score_threshold", "picodet_s_416", "", 0.35),
                   ("class_thresholds.pedestrian", "picodet_s_416", "pedestrian", 0.35),
                   ("class_thresholds.car", "picodet_s_416", "car", 0.3),
                   ("class_thresholds.truck", "picodet_s_416", "truck", 0.35),
                   ("pedestrian_threshold", "person_detection_0203", "pedestrian", 0.15))


def collect(ground_truth: Path, params: dict[str, Any], iou: float) -> dict[str, dict[str, Any]]:
    """Per member model: raw scores, labels, hit and ignored flags of all its detections, and
    how it ran (provider, input size)."""
    images = load_ground_truth(ground_truth)
    detector = build_detector(params, "fit_score_calibration")
    members = getattr(detector, "members", [detector])
    limits = InputLimits.from_params(params, "fit_score_calibration")
    found: dict[str, list[ImageDetections]] = {m.model_name: [] for m in members}
    for start in range(0, len(images), BATCH):
        chunk = images[start:start + BATCH]
        pixels = [read_image_file(g.path, limits) for g in chunk]
        for g, image in zip(chunk, pixels, strict=True):
            g.height, g.width = image.shape[:2]
        for member in members:
            for dets in member.detect(pixels):
                found[member.model_name].append(ImageDetections(
                    dets.boxes, dets.scores, [member.label_names[i] for i in dets.labels]))
        print(f"  {ground_truth.parent.name}: {min(start + BATCH, len(images))}/{len(images)}",
              file=sys.stderr, end="\r")
    print(file=sys.stderr)
    out = {}
    for member in members:
        dets = found[member.model_name]
        flags = match_detections(images, dets, member.label_names, iou)
        out[member.model_name] = {
            "scores": np.concatenate([d.scores for d in dets]).astype(np.float64),
            "labels": np.array([lb for d in dets for lb in d.labels], dtype=object),
            "hit": np.concatenate([f[0] for f in flags]),
            "ignored": np.concatenate([f[1] for f in flags]),
            "ran": f"{member.provider}, input {member.input_size[0]}x{member.input_size[1]}"
                   + (", on the horizon band" if member is not members[0] else ""),
            "images": len(images)}
    return out


def fit_platt(scores: np.ndarray, hit: np.ndarray) -> PlattMap:
    """Maximum-likelihood Platt map of ``hit`` on logit(``scores``), slope kept > 0."""
    x, y = logit(scores), hit.astype(np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * x + theta[1]
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        return float(nll), np.array([np.sum((p - y) * x), np.sum(p - y)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(0.05, 20.0), (-20.0, 20.0)])
    return PlattMap(float(res.x[0]), float(res.x[1]))


def check_options(args: argparse.Namespace) -> None:
    """Refuse options that fit nothing sound (exit 2, before any work): an IoU or floor outside
    (0, 1), fewer than one hit per map."""
    problem = (f"--iou {args.iou} is not within (0, 1]" if not 0.0 < args.iou <= 1.0 else
               f"--floor {args.floor} is not within (0, 1)" if not 0.0 < args.floor < 1.0 else
               f"--min-hits {args.min_hits} is below 1 (a label without a hit or a false "
               "positive would get a map of its own)" if args.min_hits < 1 else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)


def check_enough(data: dict[str, dict[str, Any]], min_hits: int, floor: float) -> None:
    """Refuse to fit a model's pooled map on fewer than ``min_hits`` hits or false positives
    (exit 2, before anything is written): on no hit the map sent every score to 0 (the
    detector, calibrated, reported nothing), on no detection it was the identity claimed as a
    fit, on one hit it sent every score to 0.999; each was written, exit 0."""
    for name, d in data.items():
        use = ~d["ignored"]
        hits, misses = int(d["hit"][use].sum()), int((~d["hit"][use]).sum())
        if min(hits, misses) < min_hits:
            print(f"error: {name}: {hits} hit(s) and {misses} false positive(s) at raw >= "
                  f"{floor:g} on {d['images']} image(s); a map needs at least {min_hits} of each "
                  "(--min-hits): fit on a larger labelled set (nothing was written)",
                  file=sys.stderr)
            raise SystemExit(2)


def fit(data: dict[str, dict[str, Any]], min_hits: int, provenance: dict[str, Any]
        ) -> dict[str, Any]:
    """The calibration table of every model in ``data``, each with ``provenance``."""
    models = {}
    for name, d in data.items():
        use = ~d["ignored"]
        pooled = fit_platt(d["scores"][use], d["hit"][use])
        entry: dict[str, Any] = {"sha256": MODELS[name].sha256, **provenance, "ran": d["ran"],
                                 "default": {"a": round(pooled.a, 5), "b": round(pooled.b, 5),
                                             "detections": int(use.sum()),
                                             "hits": int(d["hit"][use].sum())},
                                 "labels": {}, "pooled_labels": []}
        for label in sorted(set(d["labels"][use])):
            sel = use & (d["labels"] == label)
            hits, misses = int(d["hit"][sel].sum()), int((~d["hit"][sel]).sum())
            if min(hits, misses) < min_hits:
                entry["pooled_labels"].append(label)
                continue
            m = fit_platt(d["scores"][sel], d["hit"][sel])
            entry["labels"][label] = {"a": round(m.a, 5), "b": round(m.b, 5),
                                      "detections": hits + misses, "hits": hits}
        models[name] = entry
    return models


def _map(models: dict[str, Any], model: str, label: str) -> PlattMap:
    entry = models[model]
    m = entry["labels"].get(label, entry["default"])
    return PlattMap(m["a"], m["b"])


def reliability(data: dict[str, dict[str, Any]], models: dict[str, Any], title: str) -> str:
    """Markdown: per model and scored label, bins of score with count and measured precision,
    raw and calibrated."""
    rows = [f"**{title}**", "",
            "| model | label | map | score bin | raw: detections | raw: precision "
            "| calibrated: detections | calibrated: precision |",
            "|---|---|---|---|---|---|---|---|"]
    for name, d in data.items():
        use = ~d["ignored"]
        for label in sorted(set(d["labels"][use])):
            sel = use & (d["labels"] == label)
            raw, hit = d["scores"][sel], d["hit"][sel]
            cal = _map(models, name, label)(raw)
            kind = "own" if label in models[name]["labels"] else "pooled"
            for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
                cells = []
                for s in (raw, cal):
                    inside = (s >= lo) & (s < hi)
                    n = int(inside.sum())
                    cells += [str(n), f"{hit[inside].mean():.2f}" if n else "—"]
                if cells[0] == "0" and cells[2] == "0":
                    continue
                rows.append(f"| {name} | {label} | {kind} | {lo:.1f}–{min(hi, 1.0):.1f} | "
                            + " | ".join(cells) + " |")
    return "\n".join(rows)


def calibration_error(data: dict[str, dict[str, Any]], models: dict[str, Any]) -> str:
    """Expected calibration error (count-weighted |mean score - precision| over the bins), raw
    and calibrated, per model and label."""
    lines = []
    for name, d in data.items():
        use = ~d["ignored"]
        for label in sorted(set(d["labels"][use])):
            sel = use & (d["labels"] == label)
            raw, hit = d["scores"][sel], d["hit"][sel].astype(float)
            errs = []
            for s in (raw, _map(models, name, label)(raw)):
                idx = np.digitize(s, BINS[1:-1])
                errs.append(sum(abs(s[idx == k].mean() - hit[idx == k].mean()) * (idx == k).sum()
                                for k in np.unique(idx)) / len(s))
            lines.append(f"  {name} {label}: {len(raw)} detections, {int(hit.sum())} hits, "
                         f"calibration error raw {errs[0]:.3f} -> calibrated {errs[1]:.3f}")
    return "\n".join(lines)


def is_calibration_file(document: Any) -> bool:
    """True for a score calibration file this tool writes (``about``, ``models``: per model a
    table with its ``default`` map, ``operating_point``): the only JSON file ``--out`` replaces
    (R80: a JSON file of the user's holding a ``models`` table of its own was replaced, its other
    keys lost)."""
    return (isinstance(document, dict) and "models" in document
            and set(document) <= {"about", "models", "operating_point"}
            and isinstance(document["models"], dict)
            and all(isinstance(entry, dict) and "default" in entry
                    for entry in document["models"].values()))


def earlier_maps(args: argparse.Namespace) -> dict[str, Any]:
    """The calibration file ``--out`` holds (its models are kept), checked before any work: an
    ``--out`` that is one of the ground truths, an image, a directory or a FIFO, or an existing
    file that is no calibration, ends the tool (exit 2) naming it."""
    inputs = [args.ground_truth, *([args.check] if args.check else [])]
    try:
        check_result_file(args.out, inputs, "--out",
                          own=OwnResult("tools/fit_score_calibration.py", is_calibration_file))
        data = read_regular_file(args.out, 16 << 20) if args.out.is_file() else b""
        old = json.loads(data) if data.strip() else {}  # an empty file holds no model
    except (OutputPathError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return old if isinstance(old, dict) else {}  # an empty one ({}, []) holds no model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ground_truth", type=Path, help="developer set (project ground truth JSON)")
    parser.add_argument("--check", type=Path, help="second set scored with the fitted maps")
    parser.add_argument("--config", default="perception", help="config file or bundled name")
    parser.add_argument("--node-name", default="object_detector")
    parser.add_argument("--model", help="general model to fit (default: the config's)")
    parser.add_argument("--pedestrian-model", help="pedestrian specialist (none: fit none)")
    parser.add_argument("--iou", type=float, default=0.3, help="IoU of a hit (0.3: projected boxes)")
    parser.add_argument("--floor", type=float, default=0.05, help="lowest raw score fitted on")
    parser.add_argument("--min-hits", type=int, default=15,
                        help="hits and false positives a label needs for a map of its own")
    parser.add_argument("--out", type=Path, default=ROOT / "sense_perception" / CALIBRATION_RESOURCE)
    args = parser.parse_args()
    check_options(args)
    old = earlier_maps(args)  # before the fit: --out gt.json replaced the labels after minutes

    params = load_params(resolve_config(args.config), args.node_name)
    for key, value in (("model", args.model), ("pedestrian_model", args.pedestrian_model)):
        if value is not None:
            params[f"detector.{key}"] = value
    params.update({"detector.calibrated_scores": False, "detector.score_threshold": args.floor,
                   "detector.pedestrian_threshold": args.floor, "detector.max_detections": 300})
    for key in [k for k in params if k.startswith("detector.class_thresholds.")]:
        params[key] = -1.0
    data = collect(args.ground_truth, params, args.iou)
    check_enough(data, args.min_hits, args.floor)
    provenance = {
        "method": f"Platt scaling on logit(raw), maximum likelihood, raw >= {args.floor}, hit = "
                  f"matched by pycocotools at IoU {args.iou}, min hits {args.min_hits}",
        "data": {"ground_truth": str(args.ground_truth), "sha256": sha256_file(args.ground_truth),
                 "images": next(iter(data.values()))["images"]},
        "config": args.config, "fitted": datetime.date.today().isoformat()}
    models = fit(data, args.min_hits, provenance)
    # Models fitted before (another general model) keep their entries.
    doc = {"about": "Score calibration per bundled detector: calibrated = sigmoid(a * logit(raw) "
                    "+ b), a > 0; per label, labels without a map of their own (or listed in "
                    "pooled_labels) use 'default', the model's pooled fit. Refit with "
                    "tools/fit_score_calibration.py; sha256 is the model file's.",
           "models": {**old.get("models", {}), **models}}
    doc["operating_point"] = {
        key: {"raw": raw, "calibrated": round(float(_map(doc["models"], model, label)(raw)), 3)}
        for key, model, label, raw in OPERATING_POINT if model in doc["models"]}
    write_result_json(args.out, doc, indent=2)  # temp + rename: never a cut-off resource
    print(f"wrote {args.out}")
    print(reliability(data, models, f"{args.ground_truth.parent.name} (fitted here)"))
    print(calibration_error(data, models))
    if args.check:
        check = collect(args.check, params, args.iou)
        print(reliability(check, models, f"{args.check.parent.name} (check)"))
        print(calibration_error(check, models))
    print("calibrated thresholds of the raw operating point (the defaults to set):")
    for key, value in doc["operating_point"].items():
        print(f"  {key}: raw {value['raw']} -> {value['calibrated']}")
    for model, entry in models.items():  # the other shipped configs' raw thresholds
        for label in ("", *entry["labels"]):
            print(f"  {model} {label or '(pooled)'}: raw 0.3 -> "
                  f"{float(_map(doc['models'], model, label)(0.3)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
