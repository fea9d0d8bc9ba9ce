"""`sense-perception eval`: score the configured detector against ground truth of your own.

Writes ``DIR/eval.json`` (per class: ground truth, found, false positives, recall, precision, AP,
recall by object height; false positives per image; with a 3-D ground truth, range errors and
recall by range band), ``DIR/precision_recall.png`` and ``DIR/detections.json`` (detect's format,
with ground positions when a calibration is known), and prints the same as tables. Exit status:
0 scored, 1 scored but some image was left out (unreadable, or too small to detect on: listed in
eval.json's ``skipped``) or got no positions (its calibration is for another image size:
``positions_left_out``), 2 bad options, ground truth, calibration, config, model or output
directory, 130 / 143 stopped by Ctrl-C / SIGTERM (the earlier results kept, or this run's whole).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from ..out_lock import FolderLock
from ..stops import Stops, stop_signals, stopped_by
from . import CONFIG_HELP, config_file

NODE_NAME = "object_detector"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``eval`` sub-command."""
    from ..evaluation.ground_truth import FORMATS

    parser = subparsers.add_parser(
        "eval", help="measure detection quality (recall, precision, AP) on labelled images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the detector configured as for the nodes (--config) on every image a "
                    "ground truth lists and score it: per class ground truth, found, false "
                    "positives, recall, precision and AP (COCO-style, pycocotools, at --iou), "
                    "recall by object height (<25, 25-50, 50-100, >=100 px) and false positives "
                    "per image. Boxes marked difficult count neither as misses nor as false "
                    "positives. False positives are only counted for classes the ground truth "
                    "covers.",
        epilog="ground truth formats:\n"
               "  project  {\"cameras\": {KEY: {\"image\": PATH relative to the file, \"boxes\": "
               "[{\"label\": \"pedestrian\",\n"
               "           \"bbox_xyxy\": [x1, y1, x2, y2], \"difficult\": false}]}}}\n"
               "  kitti    a label_2 folder (images in image_2 beside it, or --images); Van and\n"
               "           Person_sitting are difficult car/pedestrian, DontCare areas ignore\n"
               "           everything, boxes below KITTI's hard level are difficult\n"
               "  coco     instances json (person -> pedestrian; iscrowd/ignore -> difficult)\n"
               "  3-D      per camera \"calibration\": {K, D, distortion_model, width, height,\n"
               "           T_base_link_camera}, per box \"position_base_link\": [x, y, z] and\n"
               "           \"range_m\" (project format): range errors and recall by range\n"
               "output: DIR/eval.json, DIR/precision_recall.png, DIR/detections.json (detect's\n"
               "  format, with positions when calibrated)\n"
               "exit status: 0 scored, 1 scored but images left out (eval.json: skipped) or without\n"
               "  positions (calibration for another image size), 2 bad options, ground truth,\n"
               "  calibration, config, model or --out, 130/143/129 stopped by "
               "Ctrl-C/SIGTERM/SIGHUP\n  (the earlier results kept, or this run's whole)")
    parser.add_argument("ground_truth", type=Path, metavar="GT",
                        help="ground-truth file (project or COCO json) or KITTI label_2 folder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output directory (created if missing) for eval.json, "
                             "detections.json and the plot")
    parser.add_argument("--config", default=None, metavar="FILE", type=config_file,
                        help="ROS 2 parameter YAML the object_detector node reads (detector.*, "
                             "tiling.*, runtime.*, input.* and mount_pitch_sd): the settings "
                             "being measured; "
                             f"{CONFIG_HELP}")
    parser.add_argument("--node-name", default=NODE_NAME, metavar="NODE",
                        help="section of --config to read (default: %(default)s)")
    parser.add_argument("--iou", type=float, default=0.5, metavar="X",
                        help="IoU a detection needs with a box to be a hit (default: %(default)s; "
                             "0.3 suits boxes projected from 3-D cuboids, which are loose)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="bundled detector model, picodet_s_416 or yolox_nano (or "
                             "person_detection_0203); overrides detector.model")
    parser.add_argument("--pedestrian-model", default=None, metavar="NAME",
                        help="pedestrian specialist (person_detection_0203), or 'none': the "
                             "general model's own pedestrians; overrides "
                             "detector.pedestrian_model")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="ground-truth format (default: guessed from the path)")
    parser.add_argument("--images", type=Path, default=None, metavar="DIR",
                        help="where the images are, when not where the ground truth says")
    parser.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                        help="camera calibration JSON (K, D, distortion_model, width, height, "
                             "T_base_link_camera) for every image, instead of the ground "
                             "truth's per-camera 'calibration': ground positions of the "
                             "detections, and their errors where the boxes have "
                             "position_base_link / range_m")
    parser.add_argument("--no-curve", action="store_true",
                        help="skip the low-threshold pass: no AP (null in eval.json) and no "
                             "precision-recall plot (half the time)")
    parser.set_defaults(func=run)
    return parser


def check_results_apart(out: Path, inputs: list[Path]) -> None:
    """Refuse an ``out`` where eval.json, the plot or the detections file would replace (or a run
    without a curve would delete) one of ``inputs``: the ground truth or one of its images, or
    where one of them is not a regular file (a FIFO would block the write for ever).

    Raises:
        ConfigError: naming the input and the fix.
    """
    from ..errors import ConfigError
    from ..evaluation.positions import DETECTIONS_FILE
    from ..evaluation.report import EVAL_FILE, PLOT_FILE
    from ..outpaths import file_kind, overlap, same_file

    for name in (EVAL_FILE, PLOT_FILE, DETECTIONS_FILE):
        result = out / name
        if result.exists() and not result.is_file():  # a FIFO there would block the final write
            raise ConfigError(f"--out {out}: its {name} is {file_kind(result)}, not a regular "
                              "file, so the results cannot be written there; remove it or "
                              "choose another --out")
        for source in inputs:
            if overlap(result, Path(source)) == "is" or same_file(result, Path(source)):
                raise ConfigError(f"--out {out}: its {name} would replace the input {source}; "
                                  "choose another --out")


def _check_iou(iou: float) -> None:
    from ..errors import ConfigError

    if not 0.0 < iou <= 1.0:  # nan fails the comparison too
        raise ConfigError(f"--iou must be within (0, 1] (a hit needs that overlap), got {iou}")


def run(args: argparse.Namespace) -> int:
    """Execute ``eval``; returns the exit status (errors raise and main() returns 2). One run at
    a time per ``--out``: two runs into one folder each replaced the other's results at their end
    (the first to end had printed figures that eval.json no longer held), and their renames could
    interleave into one run's eval.json beside the other's detections.json (R40).

    SIGTERM stops it as Ctrl-C does (exit 143 / 130), and a stop while the three results are
    replaced waits for them (milliseconds): a Ctrl-C between two renames left this run's
    detections.json beside the earlier run's eval.json, and SIGTERM (no handler: the process
    ended at once) left that mix and the temp files of the others (R73)."""
    from ..errors import ConfigError

    lock = FolderLock("eval", "its eval.json, detections.json and plot would replace this run's "
                      "(or this run's them)", ConfigError)
    written = False

    def results_written() -> None:
        nonlocal written
        written = True

    try:
        with stop_signals() as stops:
            return _run(args, lock, stops, results_written)
    except KeyboardInterrupt as exc:
        if not written:  # what the stop did to --out, as detect says it (R73)
            import sys

            from . import shown

            print(f"eval stopped ({stopped_by(exc)}) before its results were written: nothing "
                  f"in --out {shown(args.out)} was replaced", file=sys.stderr)
        raise  # main(): 130 / 143, and the failure a kept stop met, if any
    finally:
        lock.release()


def _run(args: argparse.Namespace, lock: FolderLock, stops: Stops,
         results_written: Callable[[], None]) -> int:
    """:func:`run`, which takes ``lock`` on ``--out`` once the folder exists, before any model;
    ``stops`` defers a stop while the results are replaced, and ``results_written()`` is called
    once they are."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..result_console import result_console

    from . import shown

    from ..config import files_note, load_params
    from ..errors import ConfigError
    from ..evaluation.outputs import check_own_results, incomplete_note, write_results
    from ..evaluation.report import PLOT_FILE, EVAL_FILE, plot_png, render, to_dict
    from ..evaluation.run import run_evaluation
    from ..outpaths import check_not_in_an_output, check_writable_dir

    _check_iou(args.iou)  # options first: nothing is read or loaded for a wrong one
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} exists and is not a directory")
    check_results_apart(args.out, [args.ground_truth])
    # a fleet bag folder or a replay's output is replaced whole by that run: not eval's to use
    check_not_in_an_output(args.out, ConfigError)
    from ..core.geometry import load_calibration
    from ..evaluation.positions import load_truth_3d

    calibration = load_calibration(args.calibration) if args.calibration else None
    truth_3d = load_truth_3d(args.ground_truth) if args.format in ("auto", "project") else {}
    config = args.config  # resolved by the option (config_file), as for every command
    params = load_params(config, args.node_name, kind=NODE_NAME)
    if args.model is not None:  # the bundled model, without the config's own model's settings
        from ..core.detection.detector import use_bundled_model

        use_bundled_model(params, args.model)
    if args.pedestrian_model is not None:
        params["detector.pedestrian_model"] = args.pedestrian_model
    from ..ros.settings import position_noise

    noise = position_noise(params, str(config or "defaults"))  # before the model loads
    console = Console(stderr=True)
    for line in files_note(params, NODE_NAME):
        console.print(f"[yellow]note:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    with Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("images"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("eval", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def before_detection(paths: list[Path]) -> None:
            check_results_apart(args.out, paths)
            check_own_results(args.out)  # never another command's results (or the user's)
            if (note := incomplete_note(args.out)) is not None:  # a set a kill -9 left mixed
                console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False,
                              soft_wrap=True)
            check_writable_dir(args.out, error=ConfigError)  # created and proven, before any model
            lock.acquire(args.out)  # held until the results are written

        detections: list = []
        result, meta, scored = run_evaluation(args.ground_truth, params,
                                              str(config or "defaults"), args.iou, args.format,
                                              args.images, curve=not args.no_curve,
                                              progress=progress,
                                              before_detection=before_detection,
                                              detections_out=detections)
    out = result_console()
    out.print(f"{meta['model']} ({', '.join(f'{k}: {v}' for k, v in meta['providers'].items())}), "
              f"tiling {meta['tiling']}, {meta['ms_per_image']} ms per image")
    render(result, out)
    if meta["clipped_boxes"]:
        out.print(f"{meta['clipped_boxes']} ground-truth box(es) reached past the image's edge: "
                  "scored on their part inside it, as the detector's boxes are", highlight=False,
                  soft_wrap=True)
    skipped = meta["skipped"]
    for entry in skipped:
        console.print(f"[red]skipped:[/red] {shown(entry['image'])}: {shown(entry['reason'])}",
                      highlight=False, soft_wrap=True)
    from ..evaluation.positions import DETECTIONS_FILE, evaluate_positions, render_positions

    three_d = evaluate_positions(scored, detections, list(result.classes), args.iou, truth_3d,
                                 calibration, noise)
    if three_d.report is not None:
        render_positions(three_d.report, out, placed=three_d.source is not None)
        meta["positions"] = three_d.report
    if three_d.source is None:
        out.print(f"3-D positions: none ({three_d.detections['positions']['reason']})",
                  highlight=False, soft_wrap=True)
    else:
        out.print(f"3-D positions from {shown(three_d.source)}", highlight=False, soft_wrap=True)
    for key, reason in three_d.unplaced:
        console.print(f"[red]no positions:[/red] {shown(key)}: {shown(reason)}",
                      highlight=False, soft_wrap=True)
    # each entry names the image file by `path`, as detections.json's list and `skipped` do
    meta["positions_left_out"] = three_d.left_out
    unplaced = three_d.unplaced
    plot_bytes = plot_png(result)
    stale = args.out / PLOT_FILE
    removed = plot_bytes is None and stale.is_file()  # an earlier run's curve would pass for ours
    # A stop (Ctrl-C, SIGTERM) while the three are replaced waits for them and is raised once
    # this run has said what it wrote: never one run's detections.json beside another's
    # eval.json. Should the write fail, the stop is raised naming the failure (exit 130 / 143).
    with stops.obeyed():
        with stops.deferred():
            try:
                # the three results replaced as one set: a full disk keeps the earlier set whole
                write_results(args.out, to_dict(result, meta), three_d.detections, plot_bytes)
            except OSError as exc:
                raise ConfigError(f"cannot write the results to --out {args.out}: "
                                  f"{exc.strerror or exc}; the earlier results there are "
                                  "unchanged") from None
            results_written()
        if removed:
            out.print(f"removed {shown(stale)} of an earlier run (no curve in this one)",
                      soft_wrap=True, highlight=False)
        json_path, plot = args.out / EVAL_FILE, (stale if plot_bytes is not None else None)
        out.print(f"wrote {shown(json_path)}, {shown(args.out / DETECTIONS_FILE)}"
                  + (f" and {shown(plot)}" if plot else "")
                  + (f"; {len(skipped)} image(s) skipped, not scored" if skipped else ""),
                  soft_wrap=True, highlight=False)
    return 1 if skipped or unplaced else 0
