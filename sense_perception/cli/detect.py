"""`sense-perception detect`: run the object detector on image files.

Writes ``DIR/detections.json`` (``{"images": [{"path", "width", "height", "detections": [{"label",
"score", "bbox_xyxy"}]}], "positions": ...}``, boxes in source pixels; with ``--calibration`` each
road user also has ``position_base_link``, ``range_m`` and ``position_covariance``, see
:mod:`..core.output.detection_records`) and, unless ``--no-annotate``, one annotated copy of each
image in DIR. Unreadable images are reported and skipped; the exit status is then 1. Ctrl-C
writes detections.json of the images finished so far, marked ``"interrupted": true`` with the
rest under ``not_processed``, and exits 130.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import AbstractSet, Any

from ..errors import ConfigError, ImageDecodeError, SensePerceptionError
from ..out_lock import FolderLock
from ..stops import StoppedAfterFailure, exit_code, signal_of, stop_signals, stopped_by
from . import CONFIG_HELP, config_file, shown

NODE_NAME = "object_detector"
_WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``detect`` sub-command."""
    from ..core.detection.decoders import detector_models

    detectors = sorted(detector_models(general_only=True))  # the specialists pair with one of them
    parser = subparsers.add_parser(
        "detect", help="detect objects and pedestrians in image files",
        description="Detect pedestrians, vehicles, traffic lights and stop signs in image files. "
                    "Writes DIR/detections.json (boxes in source-image pixels) and annotated "
                    "copies of the images. Unreadable images are reported and skipped; the exit "
                    "status is then 1.")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (anything OpenCV reads: jpg, png, bmp, tiff, webp...)")
    parser.add_argument("--out", required=True, metavar="DIR", type=Path,
                        help="output directory (created if missing) for detections.json and the "
                             "annotated images (the inputs' file names; NAME_2.ext where that would overwrite an "
                             "input or a file detect did not write)")
    parser.add_argument("--config", metavar="FILE", default=None, type=config_file,
                        help="ROS 2 parameter YAML, the same file the object_detector node reads "
                             f"(detector.*, runtime.*, tiling.*, input.* and mount_pitch_sd), {CONFIG_HELP}; options "
                             "below override it")
    parser.add_argument("--node-name", default=NODE_NAME, metavar="NODE",
                        help="section of --config to read (ros__parameters of this node; "
                             "default: %(default)s)")
    parser.add_argument("--model", choices=detectors, default=None,
                        help="bundled detector (default: detector.model from --config, else "
                             "picodet_s_416)")
    parser.add_argument("--score-threshold", type=float, default=None, metavar="X",
                        help="minimum (calibrated) score 0..1 for every label, the pedestrian "
                             "specialist's included (default: detector.score_threshold 0.267, "
                             "cars 0.114, trucks 0.222, PicoDet's pedestrians 0.339, the "
                             "specialist's 0.034)")
    parser.add_argument("--tiling", choices=("off", "horizon_bands"), default=None,
                        help="tiling mode: 'horizon_bands' adds overlapping bands around the "
                             "horizon to find far, small pedestrians (default: tiling.mode)")
    parser.add_argument("--calibration", type=Path, default=None, metavar="FILE",
                        help="camera calibration JSON (K, D, distortion_model, width, height, "
                             "T_base_link_camera 4x4 camera->base_link): adds each road user's "
                             "ground position, range and covariance to detections.json; "
                             "without it there are no 3-D positions")
    parser.add_argument("--no-annotate", action="store_true",
                        help="write only detections.json, no annotated images")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N",
                        help="images read and detected per call, one inference when the model "
                             "allows a batch (default: %(default)s)")
    parser.set_defaults(func=run)
    return parser


def every_threshold(value: float) -> dict[str, float]:
    """Parameters that set the lowest kept score of every label to ``value``."""
    from ..core.detection.detector import ClassThresholds

    return {"detector.score_threshold": value, "detector.pedestrian_threshold": value,
            **{f"detector.class_thresholds.{f.name}": -1.0 for f in fields(ClassThresholds)}}


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from ..config import load_params

    params = load_params(args.config, args.node_name, kind=NODE_NAME)
    if args.model is not None:  # the bundled model, without the config's own model's settings
        from ..core.detection.detector import use_bundled_model

        use_bundled_model(params, args.model)
    if args.score_threshold is not None:
        params.update(every_threshold(args.score_threshold))
    if args.tiling is not None:
        params["tiling.mode"] = args.tiling
    return params


#: Hidden list, in --out, of the annotated copies detect wrote there: only those are replaced.
MANIFEST = ".detect-annotated.json"


def _earlier_outputs(out: Path) -> set[str]:
    """Names of the annotated copies an earlier ``detect`` wrote in ``out`` (see MANIFEST)."""
    from ..fileio import read_regular_file

    try:  # a FIFO or device planted under the hidden name is never waited on: no earlier copies
        names = json.loads(read_regular_file(out / MANIFEST, 16 << 20).decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # nested too deeply: a traceback before R89
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _output_name(path: str, used: set[str], out: Path, inputs: list[str],
                 ours: AbstractSet[str] = frozenset()) -> str:
    """A file name in ``out`` for the annotated copy of ``path``: its own name where free, never
    one already used in this run, an input image (``--out`` may be the inputs' folder), nor a
    file already there that is not an annotated copy of an earlier run (``ours``): a user's
    photo of the same name is never overwritten."""
    from ..outpaths import overlap, same_file

    p = Path(path)
    suffix = p.suffix.lower() if p.suffix.lower() in _WRITABLE else ".png"
    name, n = f"{p.stem}{suffix}", 1
    while (name in used or name in ("detections.json", MANIFEST)
           or (os.path.lexists(out / name) and name not in ours)
           or any(overlap(out / name, Path(i)) == "is" or same_file(out / name, Path(i))
                  for i in inputs)):
        n += 1
        name = f"{p.stem}_{n}{suffix}"
    used.add(name)
    return name


#: How every detections.json detect has written begins (``{"images": [...``).
_OWN_RESULTS = re.compile(rb'\A(\xef\xbb\xbf)?\s*\{\s*"images"\s*:')


def _check_earlier_detections(out: Path) -> None:
    """Refuse (before the model loads) an ``--out`` whose ``detections.json`` is not one detect
    wrote: detect replaced any file of that name, a user's labels exported as detections.json
    (or any other file) among them, while it never replaced a user's photo.

    Raises:
        ConfigError: naming the file, how it begins and the fix.
    """
    from ..outpaths import file_head, head_start

    head = file_head(out / "detections.json")
    if head and not _OWN_RESULTS.match(head):
        raise ConfigError(f"--out {out} holds a detections.json that detect did not write (it "
                          f"begins {head_start(head)}, not {{\"images\": ...); it would be replaced: choose "
                          "another --out, or move that file away")


def _write_image(path: Path, image: Any) -> str | None:
    """Write ``image`` (:func:`~sense_perception.fileio.write_image`); the reason when that fails,
    else None."""
    from ..fileio import write_image

    try:
        write_image(path, image)
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def _write_results(out: Path, document: dict[str, Any], manifest: list[str] | None) -> None:
    """Write ``detections.json`` (and the annotated copies' list) atomically: a full disk or a
    kill leaves the earlier file whole, never a truncated one, and a link under that name is
    replaced, not written through.

    Raises:
        ConfigError: a file cannot be written, naming it, the reason and the fix.
    """
    from ..fileio import write_result_json

    files: list[tuple[Path, Any, int | None]] = [(out / MANIFEST, manifest, None)] \
        if manifest is not None else []
    files.append((out / "detections.json", document, 1))
    for path, content, indent in files:
        try:
            write_result_json(path, content, indent)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}; the detections of "
                              f"this run are not saved; fix: free space on that disk or choose "
                              "another --out, then run again") from None


def _record(path: str, width: int, height: int, names: list[str], dets: Any,
            positions: Any = None) -> dict[str, Any]:
    """One entry of detections.json (with the 3-D fields when ``positions`` is given)."""
    from ..core.output.detection_records import detection_record

    return detection_record(path, width, height, names, dets.boxes, dets.scores, positions)


def _summary(rows: list[tuple[str, str, int, str, str]], threshold: float) -> Any:
    """Rich table: one row per processed image."""
    from rich.table import Table

    table = Table(title=f"detections (score >= {threshold:g} and each label's own threshold)")
    for column in ("image", "size", "count", "labels", "annotated"):
        table.add_column(column, justify="right" if column == "count" else "left",
                         overflow="fold")
    for path, size, count, labels, written in rows:
        table.add_row(shown(path), size, str(count), labels, shown(written))
    return table


def detect_each(detector: Any, paths: list[Any], images: list[Any],
                report: Any) -> list[tuple[Any, Any, Any]]:
    """``(path, image, detections)`` of every image the detector takes; ``report(path, message)``
    is called for each one it cannot take (a 1x1 photo is too small to tile), which is left out.

    The batch is detected in one call; only when that fails is each image tried alone, so that
    one bad image neither ends the run nor takes its batch-mates with it.
    """
    try:
        return list(zip(paths, images, detector.detect(images) if images else [], strict=True))
    except SensePerceptionError:
        pass
    done = []
    for path, image in zip(paths, images, strict=True):
        try:
            done.append((path, image, detector.detect([image])[0]))
        except SensePerceptionError as exc:
            height, width = image.shape[:2]
            report(path, f"cannot detect on {path} ({width}x{height} px): {exc}")
    return done


def _not_handled(paths: list[str], handled: Counter[str]) -> list[str]:
    """``paths`` that were neither recorded nor skipped (``handled``), in order; a path given
    twice counts twice."""
    left = Counter(handled)
    rest = []
    for path in paths:
        if left[path]:
            left[path] -= 1
        else:
            rest.append(path)
    return rest


def _out_lock() -> FolderLock:
    """One ``detect`` at a time per ``--out`` (:class:`~sense_perception.out_lock.FolderLock`).

    Two runs into one folder each replaced ``detections.json`` whole at their end: the one that
    finished first lost every record (its annotated copies stayed, listed nowhere), and the
    list of annotated copies kept only the last run's.
    """
    return FolderLock("detect", "its detections.json would replace this run's (or this run's "
                      "it)", ConfigError)


def run(args: argparse.Namespace) -> int:
    """Execute ``detect``; returns the exit status (130 after Ctrl-C, 143 after SIGTERM: the
    images finished so far are saved, marked interrupted). One run at a time per ``--out``
    (:func:`_out_lock`)."""
    lock = _out_lock()
    try:
        return _run(args, lock)
    finally:
        lock.release()


def _run(args: argparse.Namespace, lock: FolderLock) -> int:
    """:func:`run`, which takes ``lock`` on ``--out`` once the folder exists."""
    from rich.console import Console
    from rich.progress import Progress

    from ..result_console import result_console
    from ..core.output.annotate import draw_detections
    from ..core.detection.detector_setup import build_detector
    from ..model_load import load_models
    from ..core.imaging.frame_guard import InputLimits
    from ..core.imaging.image_file import read_image_file
    from ..core.imaging.image_layers import layer_notes
    from ..evaluation.outputs import check_not_eval_results
    from ..outpaths import check_not_in_an_output, check_writable_dir

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} exists and is not a directory")
    check_writable_dir(args.out, create=False, error=ConfigError)  # before the model loads
    check_not_eval_results(args.out, "detect")  # eval's detections.json is not detect's to replace
    # a fleet bag folder or a replay's output is replaced whole by that run: not detect's to use
    check_not_in_an_output(args.out, ConfigError)
    _check_earlier_detections(args.out)
    from ..core.geometry import estimate_positions, load_calibration
    from ..core.geometry.calibration import CalibrationError
    from ..core.output.detection_records import positions_note
    from ..core.output.detections_3d import range_captions

    calibration = load_calibration(args.calibration) if args.calibration else None
    console, errors = result_console(), Console(stderr=True)
    params, source = _params(args), str(args.config or "command line")
    limits = InputLimits.from_params(params, source)  # the nodes' input.* limits, for files too
    from ..ros.settings import position_noise

    noise = position_noise(params, source)
    # bounded as a node's load (R87): a session creation that never returns held detect for ever
    detector = load_models(partial(build_detector, params, source=source), "the detector's models",
                           params, source, "detect")
    check_writable_dir(args.out, error=ConfigError)
    lock.acquire(args.out)  # before the earlier run's list of copies is read
    # Judged again under the lock: an eval that held --out while the model loaded (seconds) and
    # has since written its results there was refused by nothing, and its detections.json was
    # replaced at the end (R73).
    check_not_eval_results(args.out, "detect")
    _check_earlier_detections(args.out)
    console.print(f"{detector.model_name} ({detector.family}) on {detector.provider}, "
                  f"pre-processing on {detector.preprocess_device}, "
                  f"batching {'on' if detector.batch_dynamic else 'off'}")
    from rich.markup import escape

    from ..config import files_note

    for line in files_note(params):
        errors.print(f"[yellow]note:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)
    records: list[dict[str, Any]] = []
    rows: list[tuple[str, str, int, str, str]] = []
    failed = 0
    # Images the calibration does not fit: their detections carry no 3-D fields, which alone
    # read like a run without --calibration.
    left_out: list[dict[str, str]] = []
    used: set[str] = set()
    made: set[str] = set()  # annotated copies written by this run
    ours = _earlier_outputs(args.out)
    paths = list(args.images)
    handled: Counter[str] = Counter()  # images recorded or skipped: the rest, on Ctrl-C, were not
    stop: KeyboardInterrupt | None = None  # what ended the loop early (Ctrl-C, SIGTERM)
    with Progress(console=errors, transient=True, disable=len(paths) < 4) as progress, \
            stop_signals() as stops:
        task = progress.add_task("detecting", total=len(paths))

        def skip(path: str, message: str) -> None:
            nonlocal failed
            failed += 1
            handled[path] += 1
            errors.print(f"[red]error:[/red] {shown(message)}", highlight=False, soft_wrap=True)
            progress.advance(task)

        try:
            for start in range(0, len(paths), args.batch_size):
                batch, images = [], []
                for path in paths[start:start + args.batch_size]:
                    try:
                        images.append(read_image_file(path, limits))
                        batch.append(path)
                        for layer_note in layer_notes(path, limits):  # R64: not silently
                            errors.print(f"[yellow]note:[/yellow] {shown(layer_note)}",
                                         highlight=False, soft_wrap=True)
                    except ImageDecodeError as exc:
                        skip(path, str(exc))
                for path, image, dets in detect_each(detector, batch, images, skip):
                    height, width = image.shape[:2]
                    names = [detector.label_names[i] for i in dets.labels.tolist()]
                    positions = None
                    if calibration is not None:
                        try:
                            calibration.for_image(width, height,
                                                  f"--calibration {args.calibration}")
                            positions = estimate_positions(calibration, dets.boxes, dets.labels,
                                                           tuple(detector.label_names), noise)
                        except CalibrationError as exc:  # this image only: the others go on
                            errors.print(f"[red]error:[/red] {shown(path)}: no 3-D positions: "
                                         f"{shown(exc)}",
                                         highlight=False, soft_wrap=True)
                            left_out.append({"path": str(path), "reason": str(exc)})
                    # The copy and its record land together: a stop waits for both, so
                    # an interrupted detections.json lists exactly the copies on disk.
                    with stops.held():
                        written = "-"
                        if not args.no_annotate:
                            written = _output_name(path, used, args.out, paths, ours)
                            captions = None if positions is None else range_captions(
                                dets, detector.label_names, positions)  # "car 0.87 · 14 m"
                            annotated = draw_detections(image, dets, detector.label_names,
                                                        captions=captions)
                            problem = _write_image(args.out / written, annotated)
                            if problem is None:
                                made.add(written)
                            else:
                                errors.print(f"[red]error:[/red] cannot write "
                                             f"{shown(args.out / written)}: {shown(problem)}",
                                             soft_wrap=True, highlight=False)
                                failed += 1
                                written = "-"
                        # Recorded once its copy is written: a stop before that leaves it out
                        # of both, one during it waits for the record.
                        records.append(_record(path, width, height, names, dets, positions))
                        handled[path] += 1
                        counts = ", ".join(f"{k} {v}" for k, v in sorted(Counter(names).items()))
                        rows.append((path, f"{width}x{height}", len(dets), counts or "-", written))
                        progress.advance(task)
        except KeyboardInterrupt as exc:
            stop = exc
            if isinstance(exc, StoppedAfterFailure):  # an image's block failed, a stop kept (R61)
                failure = exc.failure
                text = str(failure) if isinstance(failure, SensePerceptionError) else \
                    f"{type(failure).__name__}: {failure}"
                errors.print(f"[red]error:[/red] {shown(text)}; stopped ({stopped_by(exc)}) "
                             "after it", highlight=False, soft_wrap=True)
        note = positions_note(f"--calibration {args.calibration}" if calibration else None)
        document: dict[str, Any] = {"images": records, "positions": note}
        if calibration is not None:  # which images have none, and why (as eval.json says)
            document["positions_left_out"] = left_out
        if stop is not None:  # what was finished, never the earlier run's file beside this run's copies
            document.update(interrupted=True, not_processed=_not_handled(paths, handled))
        try:
            # A second Ctrl-C waits for both files: the manifest never lists copies that the
            # detections.json beside it (still the earlier run's) does not.
            with stops.held():
                # Only the copies really written join the list: a name whose write failed stays
                # the user's.
                _write_results(args.out, document, sorted(ours | made) if made else None)
        except StoppedAfterFailure:
            raise  # a stop kept while the write failed: its 130 / 143, the failure named (main)
        except KeyboardInterrupt:
            if stop is None:
                raise  # every image is saved; the run ends as asked (exit 130)
        except Exception as exc:
            if stop is not None:  # the run was stopped: the stop's 130 / 143, naming the failure
                raise StoppedAfterFailure(signal_of(stop), exc) from exc  # (it was exit 2: R61)
            raise
    if stop is not None:
        errors.print(f"interrupted: {shown(args.out / 'detections.json')} holds the {len(records)} "
                     f"image(s) processed before {stopped_by(stop)}, marked \"interrupted\": "
                     "true; the "
                     f"{len(document['not_processed'])} others are listed under \"not_processed\"",
                     highlight=False, soft_wrap=True)
        return exit_code(stop)
    console.print(_summary(rows, detector.min_score))
    if calibration is None:
        console.print(f"3-D positions: none ({note['reason']})", highlight=False, soft_wrap=True)
    # An image left without 3-D positions was detected: it is no failure, but it is said and
    # it sets exit status 1 as a failure does (it was counted as one: "1 images, 1 failed").
    console.print(f"wrote {shown(args.out / 'detections.json')} ({len(records)} "
                  f"image{'' if len(records) == 1 else 's'}"
                  + (f", {len(left_out)} without 3-D positions" if left_out else "")
                  + (f", {failed} failed" if failed else "") + ")", highlight=False, soft_wrap=True)
    return 1 if failed or left_out else 0


if __name__ == "__main__":  # pragma: no cover - convenience for python -m
    from .main import main

    sys.exit(main(["detect", *sys.argv[1:]]))
