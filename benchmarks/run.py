"""Benchmark suite of sense_perception: ``make bench`` (or ``python benchmarks/run.py``).

Prints a table and writes ``benchmarks/results.json``: machine and library versions, the sha256 of
every input frame and of the model, and these figures (ratios measured side by side in one run,
interleaved, as medians of per-round ratios):

* ``pipeline_over_raw``: whole frame (decode -> pre-process -> inference -> post-process ->
  message dict) over the bare ``session.run`` of the same model on the same input (also with the
  tracker update, from JPEG with and without reduced-scale decoding, and from 1280x720 frames);
  ``floor_over_raw`` is the model's own resize of the frame plus ``session.run`` alone: the least
  any pipeline that keeps the model's trained pre-processing can reach on the machine;
* ``default_over_picodet``: per-frame cost of the default detector (PicoDet-S + the pedestrian
  specialist on the horizon band) over PicoDet-S alone, and ``default_fps_1080p``: its frames/s
  for one 1920x1080 camera; ``quality_over_default`` and ``quality_fps_1080p``: the same for the
  ``quality`` overlay (config/quality.yaml, PicoDet on tiles of the horizon band too);
  ``recheck_over_without``: the default over the same without the nested-box re-check on a crop;
  ``original_over_default``: the default with the specialist's original weights over its 8-bit
  form (``runtime.openvino_int8``);
* ``speedup_vs_cv2dnn``: detector throughput over the common OpenCV-DNN demo on the same model;
* ``batched6_over_single6``: six cameras in one batched call over six single calls;
* ``gallery_10_ms`` .. ``gallery_100k_ms``: identification against N enrolled templates;
* ``rss_growth_mb``: memory growth over 10,000 frames of the pipeline;
* ``replay_fps``: replay throughput on the bundled sample bag;
* ``fleet_scaling``: bags/s of ``sense-perception fleet`` with 2 workers over 1 on the same bags,
  and ``fleet_over_replay_per_frame``: the fleet path's time per frame over a plain replay's;
* ``driver_identity_ms`` / ``driver_identity_attention_ms``: the driver monitor per 1280x720 cabin
  frame, identity alone and identity + attention (head pose, eyes, state), side by side;
* ``camera_health_ms_1080p``: a camera's whole health update per 1920x1080 frame on one core
  (small copy, metrics, verdict);
* ``gpu``: CUDA/TensorRT figures where a GPU is present, else why none were measured.

``--quick`` runs every benchmark with a few iterations only (for the smoke test; the fleet one
with PicoDet alone, saving its workers' model compiles): its numbers mean nothing and it refuses to
overwrite the committed results file.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

from benchmarks import (bench_batch, bench_camera_health, bench_cv2dnn,  # noqa: E402
                        bench_default, bench_driver, bench_fleet, bench_gallery,
                        bench_gpu, bench_memory, bench_pipeline, bench_positions,
                        bench_replay)
from benchmarks.common import (LOAD_TIMEOUT_S, ROOT, SHARED_STREET, load,  # noqa: E402
                               load_average, load_inputs, machine_info, sha256_file)
from benchmarks.tempdirs import remove_stale  # noqa: E402
from sense_perception.errors import SensePerceptionError  # noqa: E402
from sense_perception.fileio import atomic_write, write_result_json  # noqa: E402
from sense_perception.stops import (StoppedAfterFailure, exit_code, stop_signals,  # noqa: E402
                                    stopped_by)

DEFAULT_OUT = ROOT / "benchmarks" / "results.json"
BENCHMARKS = ("pipeline", "default", "cv2dnn", "batch", "gallery", "memory", "replay", "fleet",
              "driver", "positions", "camera_health", "gpu")

# (key, target text, check) for the table; check returns True/False, or None for no target.
TARGETS: list[tuple[str, str, Callable[[Any], bool | None]]] = [
    ("pipeline_over_raw", "<= 1.10", lambda v: v <= 1.10),
    ("pipeline_over_raw_with_tracking", "(info)", lambda v: None),
    ("pipeline_over_raw_bgr_copy", "(info)", lambda v: None),
    ("pipeline_over_raw_jpeg", "(info)", lambda v: None),
    ("pipeline_over_raw_jpeg_full_decode", "(info)", lambda v: None),
    ("floor_over_raw", "(info: resize + run)", lambda v: None),
    ("pipeline_over_raw_720p", "(info)", lambda v: None),
    ("default_over_picodet", "(info: cost of the default)", lambda v: None),
    ("default_fps_1080p", ">= 15", lambda v: v >= 15.0),
    ("quality_over_default", "(info: cost of config/quality.yaml)", lambda v: None),
    ("quality_fps_1080p", "(info: for a GPU or a CPU with headroom)", lambda v: None),
    ("original_over_default", "(info: the specialist's original weights / its 8-bit form)",
     lambda v: None),
    ("recheck_over_without", "(info: the default / the same without the re-check on a crop)",
     lambda v: None),
    ("speedup_vs_cv2dnn", ">= 1.5", lambda v: v >= 1.5),
    ("batched6_over_single6", "< 1 helps", lambda v: None),
    ("gallery_10_ms", "(info)", lambda v: None),
    ("gallery_1k_ms", "(info)", lambda v: None),
    ("gallery_10k_ms", "(info)", lambda v: None),
    ("gallery_100k_ms", "< 2", lambda v: v < 2.0),
    ("rss_growth_mb", "~ 0 (|x| < 5)", lambda v: abs(v) < 5.0),
    ("replay_fps", "(info)", lambda v: None),
    ("fleet_scaling", "(info: 2 workers / 1, 2 cores)", lambda v: None),
    ("fleet_over_replay_per_frame", "(info)", lambda v: None),
    ("driver_identity_ms", "(info)", lambda v: None),
    ("positions_50_ms", "<= 0.2", lambda v: v <= 0.2),
    ("driver_identity_attention_ms", "<= 35", lambda v: v <= 35.0),
    ("driver_attention_over_identity", "(info)", lambda v: None),
    ("camera_health_ms_1080p", "<= 1.0 (one core)", lambda v: v <= 1.0),
    ("driver_identity_attention_interval_ms", "(info: identity.embed_interval_s 0.5)",
     lambda v: None),
]



@dataclass(frozen=True)
class Settings:
    """Iteration counts of one run."""

    rounds: int  # interleaved rounds per ratio
    calls: int  # calls per variant per round
    gallery_calls: int
    memory_frames: int
    memory_every: int
    replay_runs: int
    fleet_bags: int
    fleet_rounds: int
    health_calls: int  # calls per 1080p input frame of the camera-health metrics
    fleet_picodet_only: bool  # the fleet benchmark's detector: PicoDet alone, not the default


# Many short rounds: on a shared machine the load changes from second to second, and a ratio of
# two measurements taken a few milliseconds apart is what stays meaningful.
FULL = Settings(rounds=41, calls=1, gallery_calls=300, memory_frames=10_000, memory_every=1000,
                replay_runs=5, fleet_bags=8, fleet_rounds=5, health_calls=100,
                fleet_picodet_only=False)
QUICK = Settings(rounds=2, calls=1, gallery_calls=3, memory_frames=6, memory_every=3,
                 replay_runs=1, fleet_bags=2, fleet_rounds=1, health_calls=2,
                 fleet_picodet_only=True)  # the smoke test: 3 fleet workers, 3 compiles saved


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="few iterations, to check the suite runs (numbers are meaningless)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results file (default {DEFAULT_OUT.relative_to(ROOT)}; --quick "
                             "needs an explicit --out)")
    parser.add_argument("--images", type=Path, default=SHARED_STREET,
                        help="directory of real camera frames (default: %(default)s)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--memory-frames", type=int, default=None,
                        help="frames of the memory benchmark (default 10000)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE",
                        help="also profile 200 pipeline frames with cProfile into FILE")
    parser.add_argument("--warm-up-timeout", type=float, default=LOAD_TIMEOUT_S["value"],
                        metavar="S", help="seconds each model load may take, as a node's "
                        "warm_up_timeout_s (default %(default)g)")
    parser.add_argument("--merge", action="store_true",
                        help="with --only: replace just those benchmarks' figures in the existing "
                             "results file and keep the others (each benchmark's detail says "
                             "when it ran and under what load)")
    args = parser.parse_args(argv)
    if not 0 < args.warm_up_timeout < float("inf"):
        parser.error(f"--warm-up-timeout must be a number of seconds above 0, got "
                     f"{args.warm_up_timeout:g}")
    if args.quick and args.out is None:
        parser.error("--quick writes meaningless numbers: give --out elsewhere than "
                     f"{DEFAULT_OUT.relative_to(ROOT)}")
    unknown = set(args.only.split(",")) - set(BENCHMARKS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    problem = check_outputs(args)
    if problem:
        parser.error(problem)
    return args


#: How a profile :func:`profile_pipeline` writes begins (pstats' first line): the only text file
#: ``--profile`` replaces.
PROFILE_START = re.compile(rb"\s*\d+ function calls")


def is_results(document: Any) -> bool:
    """True for a results document :func:`run` writes (``schema`` 1, the machine, the mode): the
    only JSON file ``--out`` replaces or ``--merge`` merges into (R80)."""
    return (isinstance(document, dict) and document.get("schema") == 1
            and {"mode", "machine"} <= set(document))


def check_outputs(args: argparse.Namespace) -> str | None:
    """Why ``--out`` or ``--profile`` cannot take the results, checked before any benchmark runs
    (a directory, an image, a FIFO or an unwritable path as --out ended a 30-minute run in a
    traceback that lost every figure); for ``--merge``, an existing --out must be a results file
    it can read. Missing parent folders are created. None when both can be written."""
    from sense_perception.outpaths import OutputPathError, OwnResult, check_result_file, file_head

    images = sorted(args.images.glob("*")) if args.images.is_dir() else []
    for option, path in (("--out", args.out or DEFAULT_OUT), ("--profile", args.profile)):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # an existing JSON file only when it is an earlier results file of this suite (R80:
            # a COCO ground truth or another command's JSON was replaced, or --merge'd into)
            check_result_file(path, images, option, json_only=option == "--out",
                              own=OwnResult("benchmarks/run.py", is_results)
                              if option == "--out" else None)
        except OutputPathError as exc:
            return str(exc)
        except OSError as exc:
            return f"{option} {path}: {exc.strerror or exc}; give a path you can write to"
        head = file_head(path) if option == "--profile" else None
        if head and head.strip() and not PROFILE_START.match(head):
            return (f"--profile {path} already holds a file that is not a profile this suite "
                    f"wrote (it begins {ascii(head.strip()[:24].decode('utf-8', 'replace'))}); a "
                    "profile replaces only an earlier profile: give a new file name, or move "
                    "that file away first")
    out = args.out or DEFAULT_OUT
    if args.merge and out.is_file():
        try:
            old = json.loads(out.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            return (f"--merge: {out} is not a readable results file ({exc}); the figures of "
                    "this run would have nothing to merge into: give --out a results file or "
                    "drop --merge")
        if not isinstance(old, dict):
            return f"--merge: {out} is not a results file (no JSON object); drop --merge"
    return None


def build_detector() -> Any:
    """The default detector (bundled PicoDet) on the CPU provider, as the nodes build it."""
    from sense_perception.core.detection.detector import ObjectDetector

    return load(lambda: ObjectDetector.from_params(
        {"runtime.providers": ["CPUExecutionProvider"]}, "benchmark"), "the detector's models")


def profile_pipeline(detector: Any, inputs: Any, path: Path, frames: int = 200) -> None:
    """cProfile ``frames`` pipeline frames; writes the top functions by own time to ``path``."""
    import cProfile
    import io
    import pstats

    msgs = bench_pipeline.ros_messages(inputs.images)
    pipeline = bench_pipeline.Pipeline(detector)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(frames):
        pipeline(msgs[i % len(msgs)], i * 0.1)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    atomic_write(path, text.getvalue().encode(), private=False)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the figures of the benchmarks that ran in ``new`` replaced (``--merge``).

    Machine, inputs and model facts are taken from ``new`` only when ``old`` lacks them: the kept
    figures were measured with the old ones. ``merged`` lists when each benchmark was replaced.
    """
    doc = {**old}
    produced = {**old.get("produced_by", {})}
    for name, keys in new["produced_by"].items():
        for key in produced.get(name, []):
            doc.pop(key, None)
        for key in keys:
            doc[key] = new[key]
        produced[name] = keys
        doc.setdefault("detail", {})[name] = new["detail"][name]
        doc.setdefault("merged", {})[name] = new["date_utc"]
    doc["produced_by"] = produced
    doc["targets"] = {**old.get("targets", {}), **new["targets"]}
    for key in ("machine", "inputs", "model", "settings"):
        doc.setdefault(key, new[key])
    return doc


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected benchmarks; returns the results document."""
    settings = QUICK if args.quick else FULL
    if args.memory_frames is not None:
        settings = Settings(**{**settings.__dict__, "memory_frames": args.memory_frames})
    only = args.only.split(",")
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "schema": 1,
        "mode": "quick" if args.quick else "full",
        "command": "make bench  (= python benchmarks/run.py" + (" --quick" if args.quick else "")
                   + ")",
        "date_utc": _now(),
        "load_average_start": load_average(),
        "machine": machine_info(),
        "settings": settings.__dict__,
    }
    inputs = load_inputs(args.images)
    doc["inputs"] = {
        "directory": str(args.images),
        "files": inputs.sha256,
        "sha256": inputs.combined_sha256,
        "sizes": {p.name: f"{im.shape[1]}x{im.shape[0]}"
                  for p, im in zip(inputs.paths, inputs.images, strict=True)},
    }
    detector = build_detector()
    from sense_perception.core.runtime.model_registry import get_model

    doc["model"] = {"name": detector.model_name, "sha256": sha256_file(
        get_model(detector.model_name).verified_path()), "provider": detector.provider,
        "batch_dynamic": detector.batch_dynamic, "notes": detector.notes}
    detail: dict[str, Any] = {}
    produced: dict[str, list[str]] = {}

    def merge(name: str, result: dict[str, Any]) -> None:
        detail[name] = result.pop("detail", {})
        doc.update(result)

    s = settings
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "pipeline": lambda: bench_pipeline.run(detector, inputs, s.rounds, s.calls),
        "default": lambda: bench_default.run(inputs, max(2, s.rounds // 2), s.calls),
        "cv2dnn": lambda: bench_cv2dnn.run(detector, inputs, s.rounds, s.calls),
        "batch": lambda: bench_batch.run(detector, inputs, max(2, s.rounds // 2), 1),
        "gallery": lambda: bench_gallery.run(s.gallery_calls),
        "memory": lambda: bench_memory.run(detector, inputs, s.memory_frames, s.memory_every),
        "replay": lambda: bench_replay.run(detector, s.replay_runs),
        "fleet": lambda: bench_fleet.run(s.fleet_bags, s.fleet_rounds, s.fleet_picodet_only),
        "driver": lambda: bench_driver.run(max(2, s.rounds // 2)),
        "positions": lambda: bench_positions.run(s.rounds),
        "camera_health": lambda: bench_camera_health.run(inputs, s.health_calls),
    }
    for name in only:
        if name == "gpu":
            continue
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        load0, result = load_average(), steps[name]()
        produced[name] = [key for key in result if key != "detail"]
        merge(name, result)
        detail[name].update(seconds=round(time.perf_counter() - t0, 1),
                            date_utc=_now(), load_average=[load0, load_average()])
    if "gpu" in only:
        doc["gpu"] = bench_gpu.run(detector, inputs, s.rounds, s.calls)
        produced["gpu"] = ["gpu"]
    doc["produced_by"] = produced
    if args.profile:
        profile_pipeline(detector, inputs, args.profile)
    doc["detail"] = detail
    doc["targets"] = {key: text for key, text, _ in TARGETS}
    doc["load_average_end"] = load_average()
    doc["duration_s"] = round(time.perf_counter() - started, 1)
    return doc


def print_table(doc: dict[str, Any]) -> None:
    """Rich table of the headline figures with their targets."""
    from rich.console import Console
    from rich.table import Table

    machine = doc["machine"]
    table = Table(title=f"sense_perception benchmark ({doc['mode']}) - {machine['cpu_model']}, "
                        f"{machine['logical_cores']} cores, load {doc['load_average_start']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("", justify="center")
    for key, target, check in TARGETS:
        if key not in doc:
            continue
        value = doc[key]
        verdict = None if value is None else check(value)
        mark = {True: "[green]ok[/]", False: "[red]miss[/]", None: ""}[verdict]
        table.add_row(key, "n/a" if value is None else f"{value:g}", target, mark)
    gpu = doc.get("gpu")
    if gpu is not None:
        table.add_row("gpu", "measured" if gpu.get("measured") else "not measured",
                      "", "", end_section=False)
    console = Console()
    console.print(table)
    if gpu is not None and not gpu.get("measured"):
        console.print(f"GPU: {gpu['reason']}")
    pipe = doc.get("detail", {}).get("pipeline", {}).get("rgb8")
    if pipe:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in pipe["stage_mean_ms"].items())
        console.print(f"pipeline {pipe['pipeline_ms']:.2f} ms/frame vs session.run "
                      f"{pipe['raw_session_run_ms']:.2f} ms; stages (mean ms): {stages}")
    console.print(f"load average start {doc['load_average_start']} end {doc['load_average_end']}; "
                  f"{doc['duration_s']} s")


def main(argv: list[str] | None = None) -> int:
    """Entry point: remove the temporary folders of killed runs, run, print, write JSON (130 / 143
    stopped by SIGINT / SIGTERM: every temporary folder removed, and nothing written unless the
    stop came while the results were written, which then land whole first)."""
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the benchmarks' TemporaryDirectory blocks remove their
    # folders (mkdtemp: 0700): the replay's holds a gallery of face templates, which must not
    # outlive the run under /tmp (the default SIGTERM ended the process with no cleanup).
    # kill -9 runs no cleanup at all: such a run's folders go at the next start.
    for folder in remove_stale():
        print(f"[bench] removed {folder}: a temporary folder left by a killed run",
              file=sys.stderr)
    LOAD_TIMEOUT_S["value"] = args.warm_up_timeout
    out = args.out or DEFAULT_OUT
    written = False
    try:
        # The block covers the tail as well (R101): a stop while the table was printed or the
        # results written met Python's default, and a SIGTERM between the temp file and its
        # rename ended the process at once, the temp file left beside the results. The write is
        # held (milliseconds): it lands whole, then the stop is obeyed.
        with stop_signals() as stops:
            doc = run(args)
            print_table(doc)
            if args.merge and out.is_file():
                doc = merge_results(json.loads(out.read_text()), doc)
            with stops.deferred():
                # temp file + rename: a full disk or a kill keeps the committed results whole,
                # and a link under the name is replaced, never written through
                write_result_json(out, doc, indent=2)
                written = True
                print(f"results: {out}")
            stops.raise_pending()
    except SensePerceptionError as exc:  # a model load that hung or failed (R90), as the CLI says it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if isinstance(exc, StoppedAfterFailure):  # the stop waited for a write that failed
            print(f"error: {exc.failure}", file=sys.stderr)
        print(f"[bench] stopped ({stopped_by(exc)}) " + (
            f"after the results were written to {out}" if written else
            "with no results written, temporary folders removed"), file=sys.stderr)
        return exit_code(exc)
    return 0

if __name__ == "__main__":
    from sense_perception.cli.main import leave_unfinished_loads

    status = main()
    leave_unfinished_loads(status)  # without a load it gave up on, still running (R87)
    sys.exit(status)
