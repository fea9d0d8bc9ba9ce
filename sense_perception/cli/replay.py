"""`sense-perception replay`: run a rosbag2 recording through perception, without ROS.

Outputs in DIR: ``bag/`` (rosbag2 MCAP with ``<camera ns>/detections`` Detection2DArray,
``<camera ns>/label_info`` LabelInfo and ``<camera ns>/annotations`` foxglove_msgs
ImageAnnotations per exterior camera, ``<cabin ns>/faces``, ``<cabin ns>/annotations`` and
``<cabin ns>/driver_identity`` for the cabin camera, ``/diagnostics``, and the input images with
--copy-input), ``video/<topic>.mp4`` with --video, and ``summary.json``.

Exit status: 0 every frame of the selected cameras was read, decoded and processed; 1 the replay
finished but something was skipped or lost (listed under "skipped" in summary.json: damaged or
truncated storage, unknown message types, corrupt frames, frames whose inference failed,
interruption); 2 nothing was replayed (bad arguments, unreadable bag, no message on the camera
topics, bad config, missing model) or
an output could not be written (disk full): then ``REPLAY_INCOMPLETE.txt`` stays in DIR to mark the
partial outputs (it is there from the first output byte and removed only once summary.json is
complete).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ..face.safe_text import printable
from . import CONFIG_HELP, config_file, shown

EXIT_OK, EXIT_SKIPPED, EXIT_FATAL = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``replay`` sub-command."""
    parser = subparsers.add_parser(
        "replay", help="replay a rosbag2 (MCAP or sqlite3) through perception",
        description="Replay a rosbag2 recording (MCAP or sqlite3, no ROS install needed) through "
                    "the same perception core and config as the nodes. Writes DIR/bag (MCAP with "
                    "detections, 3-D positions, label info, Foxglove image annotations, camera "
                    "health, driver identity and attention, diagnostics; with --copy-input it "
                    "opens in Foxglove with the boxes drawn over the frames), DIR/summary.json "
                    "and, on request, annotated MP4s. Exit status: 0 all frames processed, 1 something "
                    "was skipped (see summary.json 'skipped'; also after Ctrl-C, SIGTERM or "
                    "SIGHUP while the bag is read, the outputs closed), 2 fatal error (an output that "
                    "could not be written, e.g. a full disk, leaves DIR/REPLAY_INCOMPLETE.txt "
                    "beside the partial outputs), 130 / 143 / 129 stopped by SIGINT / SIGTERM / "
                    "SIGHUP before "
                    "the bag is read or while the outputs are closed.")
    parser.add_argument("bag", type=Path, metavar="BAG",
                        help="rosbag2 directory, or a single .mcap / .db3 file (also works when "
                             "metadata.yaml is missing or the MCAP is truncated)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output directory; must be empty or new unless --force")
    parser.add_argument("--topics", nargs="*", metavar="TOPIC", default=None,
                        help="exterior camera topics (sensor_msgs/Image or CompressedImage) to "
                             "process (default: every image topic in the bag except the cabin "
                             "camera, driver_monitor.camera_topic of --config, which is never "
                             "run through the object detector); the cabin camera is refused "
                             "here; --topics with no topic after it: no exterior camera (with "
                             "--cabin: the cabin camera alone)")
    parser.add_argument("--cabin", metavar="TOPIC", default=None,
                        help="the in-cabin camera topic: runs the driver-identity pipeline on it "
                             "(and only on it: exterior cameras never get face identification; "
                             "naming it in --topics too is refused); a topic other than "
                             "driver_monitor.camera_topic is warned about")
    parser.add_argument("--config", type=config_file, metavar="FILE", default=None,
                        help="ROS 2 parameter YAML the nodes use (object_detector and "
                             f"driver_monitor sections), {CONFIG_HELP}")
    parser.add_argument("--calibration", type=calibration_argument, default=None,
                        metavar="[TOPIC=]FILE",
                        help="camera calibration JSON (K, D, distortion_model, width, height, "
                             "T_base_link_camera) of one exterior camera: publishes its "
                             "<ns>/detections_3d; TOPIC= names the camera (needed when more than "
                             "one is replayed: its mount is one camera's; the others are placed "
                             "from the bag); default: each camera's camera_info topic in the bag "
                             "plus /tf_static (no 3-D without them)")
    parser.add_argument("--copy-input", action="store_true",
                        help="copy the input image messages, and the CameraInfo and /tf_static "
                             "messages the replay reads, into the output bag, byte for byte")
    parser.add_argument("--video", action="store_true",
                        help="write an annotated MP4 per exterior camera (not the cabin camera)")
    parser.add_argument("--video-cabin", action="store_true",
                        help="also write the cabin camera's annotated MP4; it shows the driver's "
                             "face, so it is written only on this explicit request")
    parser.add_argument("--publish", action="store_true",
                        help="also play the bag into a live ROS 2 graph in recorded time, with "
                             "/clock and the perception topics (needs rclpy)")
    parser.add_argument("--publish-input-only", action="store_true",
                        help="with --publish: play only the bag's messages and /clock, not the "
                             "replay's own results (when live nodes under test publish those "
                             "topics themselves)")
    parser.add_argument("--publish-cabin", action="store_true",
                        help="with --publish: also play the cabin camera's images into the graph; "
                             "they show the driver's face, so they are published only on this "
                             "explicit request")
    parser.add_argument("--rate", type=_rate, default=None, metavar="R",
                        help="playback speed factor with --publish, a number > 0 (default: 1)")
    parser.add_argument("--force", action="store_true",
                        help="replace the replay outputs already in --out (never an --out that "
                             "is, holds or lies inside the input bag: refused)")
    parser.set_defaults(func=run)
    return parser


def calibration_argument(text: str) -> tuple[str, Path]:
    """``--calibration [TOPIC=]FILE``: (the camera topic, "" when not named; the file). A name
    that exists as a file is the file whole, ``=`` and all; ``TOPIC`` is an absolute topic."""
    topic, sep, path = text.partition("=")
    if sep and topic.startswith("/") and path and not Path(text).exists():
        return topic, Path(path)
    return "", Path(text)


def _rate(text: str) -> float:
    """A ``--rate`` value: a finite number > 0 (nan and inf are refused here, as argparse errors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run the replay; returns the exit status (fatal errors raise and main() returns 2)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..result_console import result_console
    from ..replay.engine import ReplayOptions, replay
    from ..replay.summary import render_table
    from ..stops import exit_code, stop_signals, stopped_by

    if args.publish_input_only and not args.publish:
        print("error: --publish-input-only only applies with --publish", file=sys.stderr)
        return EXIT_FATAL
    if args.publish_cabin and not args.publish:
        print("error: --publish-cabin only applies with --publish (it plays the cabin camera's "
              "images into a live graph); add --publish or drop --publish-cabin", file=sys.stderr)
        return EXIT_FATAL
    if args.rate is not None and not args.publish:
        print("error: --rate sets the playback speed of --publish; add --publish or drop --rate "
              "(without --publish the bag is replayed as fast as it can be)", file=sys.stderr)
        return EXIT_FATAL
    if args.topics == [] and not args.cabin:
        print("error: --topics with no topic replays no exterior camera; name the exterior camera "
              "topics after it, drop it (every exterior camera), or add --cabin TOPIC to replay "
              "the cabin camera alone", file=sys.stderr)
        return EXIT_FATAL
    if args.video_cabin and not args.cabin:
        print("error: --video-cabin films the camera named by --cabin; add --cabin TOPIC",
              file=sys.stderr)
        return EXIT_FATAL

    from ..errors import BagError
    from ..outpaths import REPLAY_MARK, check_not_in_an_output

    # Never into a fleet run's output or another replay's (a fleet worker's own replay folder is
    # inside its work folder: checked here, for the user's --out, not in the engine): that run's
    # --force or retry would delete this one, and --force here would delete its results.
    check_not_in_an_output(args.out, error=BagError, own=REPLAY_MARK)
    if args.video or args.video_cabin:
        from ..errors import ConfigError
        from ..outpaths import check_video_dir

        check_video_dir(args.out, error=ConfigError)  # before any work: OpenCV crashes on it
    options = ReplayOptions(bag=args.bag, out=args.out, topics=args.topics, cabin=args.cabin,
                            config=args.config, copy_input=args.copy_input, video=args.video,
                            video_cabin=args.video_cabin,
                            publish=args.publish, publish_results=not args.publish_input_only,
                            publish_cabin=args.publish_cabin,
                            rate=1.0 if args.rate is None else args.rate, force=args.force,
                            calibration=args.calibration[1] if args.calibration else None,
                            calibration_camera=args.calibration[0] if args.calibration else "")
    console = Console(stderr=True)
    # SIGTERM (kill, a service manager, timeout) stops a replay as Ctrl-C does: the outputs are
    # closed and the summary written, never cut off half way (its default ended the process at once).
    with stop_signals() as stops, Progress(
            TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True) as bar:
        task = bar.add_task("replay", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = replay(options, progress, stops=stops)
    render_table(result.summary, result_console())
    for note in result.notes:
        console.print(f"[yellow]note:[/] {shown(note)}", highlight=False, soft_wrap=True)
    # the file Foxglove opens (`ros2 bag play` takes it or its folder), as the README shows
    mcap = next(iter(sorted(result.out_bag.glob("*.mcap"))), None)
    print(f"output bag: {printable(mcap or result.out_bag)}")
    for video in result.videos:
        print(f"video: {printable(video)}")
    print(f"summary: {printable(result.summary_path)}")
    if result.stopped is not None:  # 130 / 143 / 129 as every command: it was exit 1 (R99)
        console.print(f"interrupted: the outputs and {shown(result.summary_path)} hold what was "
                      f"replayed before {stopped_by(result.stopped)}, the frames not read one "
                      "`skipped` entry; run again to replay the whole bag", highlight=False,
                      soft_wrap=True)
        return exit_code(result.stopped)
    return EXIT_OK if result.complete else EXIT_SKIPPED
