"""Measure the track velocities on a labelled image sequence, run as the replay runs it.

The frames of one camera of a project ground truth (keys ending in the frame number, boxes with
``uuid`` and ``position_base_link``, per-frame ``calibration``) go in order through the configured
detector, tracker, positioner and ground-velocity filter; matched detections' steady velocities are
compared with the true ones (central differences of the boxes' positions). See
docs/positions-3d.md (Velocity).

Run: PYTHONPATH=. python tools/eval_velocity.py ../shared/data/street_labelled/pandaset_seq002_front/ground_truth_3d.json
Exit status: 0 measured, 1 measured but frames left out, 2 bad options, ground truth, config or model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sense_perception.cli import config_file
from sense_perception.errors import SensePerceptionError


OPEN = 2 ** 62  # an A:B side left out


def _frames(value: str) -> tuple[int, int]:
    """``A:B``: frame numbers A to B - 1 (either side may be left out)."""
    low, sep, high = value.partition(":")
    try:
        if not sep:
            raise ValueError
        window = (int(low) if low else -OPEN, int(high) if high else OPEN)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected A:B (frame numbers, B excluded), got {value!r}") from None
    if window[0] >= window[1]:  # 50:10 reported nothing, after running every frame
        raise argparse.ArgumentTypeError(
            f"{value!r} holds no frame: B is excluded and must be above A (e.g. 10:50)")
    return window


def _shown(window: tuple[int, int]) -> str:
    """``window`` as the user wrote it (an open side left out)."""
    low, high = window
    return f"{'' if low == -OPEN else low}:{'' if high == OPEN else high}"


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure, print (or write JSON); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 measured, 1 frames left out, 2 bad "
                                            "options, ground truth, config or model")
    parser.add_argument("ground_truth", type=Path,
                        help="project ground truth JSON of one camera's sequence (3-D fields, uuid)")
    parser.add_argument("--config", default=None, metavar="FILE", type=config_file,
                        help="ROS 2 parameter file or bundled name (default: the defaults)")
    parser.add_argument("--camera", default=None,
                        help="key prefix of the camera to read (default: the only one)")
    parser.add_argument("--fps", type=float, default=10.0,
                        help="frame rate of the numbering, stamps 1/fps apart (0.01 to 1000; "
                             "default: 10)")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU of a match (default: 0.5)")
    parser.add_argument("--report-frames", type=_frames, default=None, metavar="A:B",
                        help="report only frames A..B-1 (all still run, so tracks warm up), "
                             "e.g. 40: for a held-out half")
    # The project's rule (docs/command-line.md): --json prints, --json-out FILE writes.
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON instead of the table")
    parser.add_argument("--json-out", type=Path, default=None, metavar="FILE",
                        help="also write the report as JSON to FILE (never over an input, an image or a "
                             "JSON file that is not an earlier report of this tool)")
    args = parser.parse_args(argv)

    from sense_perception.evaluation.velocity import (is_velocity_report, load_sequence,
                                                      render_velocity, run_sequence,
                                                      velocity_report)
    from sense_perception.fileio import write_result_json
    from sense_perception.outpaths import OwnResult, check_result_file

    try:
        if args.json_out is not None:  # before any work
            config = [args.config] if args.config else []  # never the config either
            # an existing JSON file only when it is this tool's earlier report (R80)
            check_result_file(args.json_out, [args.ground_truth, *config], "--json-out",
                              own=OwnResult("tools/eval_velocity.py", is_velocity_report))
        if not 0.0 < args.iou <= 1.0:
            raise SensePerceptionError(f"--iou must be within (0, 1], got {args.iou}")
        frames = load_sequence(args.ground_truth, args.camera, args.fps)
        window = args.report_frames
        if window is not None and not any(window[0] <= f.number < window[1] for f in frames):
            numbers = [f.number for f in frames]
            raise SensePerceptionError(
                f"--report-frames {_shown(window)} holds none of the sequence's frames "
                f"({min(numbers)} to {max(numbers)}); fix: a window among them")
        config = args.config  # resolved by the option (config_file), as for the commands
        results, skipped, labels = run_sequence(frames, config, args.ground_truth)
        report = velocity_report(frames, results, labels, args.iou,
                                 None if window is None else
                                 lambda f: window[0] <= f.number < window[1])
    except SensePerceptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["skipped"] = skipped
    report["ground_truth"] = str(args.ground_truth)
    report["config"] = str(config or "defaults")
    text = json.dumps(report, indent=2)
    print(text if args.json else render_velocity(report))
    if args.json_out is not None:
        try:  # through a temp file: a full disk or a kill keeps an earlier result whole
            write_result_json(args.json_out, report, indent=2)
        except OSError as exc:
            print(f"error: cannot write --json-out {args.json_out}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
    for s in skipped:
        print(f"left out {s['image']}: {s['reason']}", file=sys.stderr)
    return 1 if skipped else 0


if __name__ == "__main__":
    raise SystemExit(main())
