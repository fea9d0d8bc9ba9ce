"""`sense-perception fleet`: replay many rosbag2 recordings on Ray workers (local or a cluster).

Every bag found under the inputs goes through the same engine as ``replay`` and gets the same
outputs, under ``DIR/<bag name>/``; ``DIR/fleet_summary.json`` says what happened to each.

Exit status: 0 every bag done (in this run or an earlier one); 1 some bag partial (replayed with
skips) or failed; 2 nothing could be replayed (bad arguments, --out overlapping an input,
unwritable or in use by another run, Ray missing or unreachable, no bag found, no room for a
worker on the cluster, or every bag failed); 130 / 143 / 129 stopped by SIGINT / SIGTERM / SIGHUP
(the summary is written, unfinished bags marked interrupted).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..fleet import DEFAULT_TIME_LIMIT_S
from ..face.safe_text import printable
from . import CONFIG_HELP, config_file


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``fleet`` sub-command."""
    parser = subparsers.add_parser(
        "fleet", help="replay many rosbag2 recordings on Ray workers (local or a cluster)",
        description="Find every rosbag2 recording (MCAP or sqlite3; a folder or a single file) "
                    "under the inputs and replay each through the same engine and config as "
                    "`replay`, on Ray worker actors that load the models once. Without "
                    "--address a Ray instance is started on this machine; --address auto (on a "
                    "node of a cluster started with `ray start --head`) or ray://HOST:10001 "
                    "joins a cluster. Needs the fleet extra: pip install "
                    "'sense_perception[fleet]'.",
        epilog="Each bag's outputs (as `replay` writes them: bag/, summary.json, video/) appear "
               "in DIR/<bag name>/ only once complete; a second run skips those bags (resume) "
               "unless --force. A bag whose worker dies or that runs past --time-limit is "
               "retried once on a new worker, then reported failed; the other bags go on. "
               "DIR must lie outside every input. Fleet replaces only folders it wrote (they "
               "hold a .sense-perception-fleet file); one run at a time per DIR (DIR/.fleet.lock). "
               "Ctrl-C, SIGTERM or SIGHUP (a closed terminal, unless under nohup) stops the "
               "workers and still writes the summary. "
               "Exit status: 0 all bags done, 1 some partial or failed, 2 nothing could run, "
               "130/143/129 stopped by SIGINT/SIGTERM/SIGHUP.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="BAG_OR_DIR",
                        help="rosbag2 directories, .mcap/.db3 files, or folders searched for "
                             "them recursively")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output directory, outside every input: DIR/<bag name>/ per bag, "
                             "DIR/fleet_summary.json")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT (default: "
                             "start a local Ray instance on this machine)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker actors, each replaying one bag at a time (default: as many "
                             "as the CPUs, and with --gpus-per-worker the GPUs, hold)")
    parser.add_argument("--cpus-per-worker", type=int, default=1, metavar="C",
                        help="CPUs Ray reserves per worker; also its onnxruntime threads when the "
                             "config leaves runtime.intra_op_threads at 0; on this machine at "
                             "most its CPU count (default: %(default)s)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                        help="GPUs per worker: 1 = one GPU each, 0.5 = two workers share a GPU "
                             "(default: 0, CPU only); refused at once if no node has them")
    parser.add_argument("--config", type=config_file, metavar="FILE", default=None,
                        help=f"ROS 2 parameter YAML the nodes use (as for replay), {CONFIG_HELP}")
    parser.add_argument("--cabin", metavar="TOPIC", default=None,
                        help="the in-cabin camera topic (driver identity); bags without it "
                             "replay their exterior cameras only")
    parser.add_argument("--video", action="store_true",
                        help="annotated MP4s of the exterior cameras of every bag")
    parser.add_argument("--video-cabin", action="store_true",
                        help="also the cabin camera's MP4 (it shows the driver's face)")
    parser.add_argument("--force", action="store_true",
                        help="replay bags whose output is already complete, replacing it")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="S",
                        help="seconds one bag may take before its worker is killed and the bag "
                             "retried (a finite number >= 0; 0 = no limit; default: %(default)g)")
    parser.set_defaults(func=run)
    return parser


class _ProgressListener:  # a fleet.dispatch.FleetListener
    """Drives the rich progress bar (bags and frames) from the dispatcher's hooks."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar, self._task = bar, task

    def started(self, name: str, attempt: int, worker: dict[str, Any]) -> None:
        self._bar.update(self._task, state="")
        if attempt > 1:
            self._bar.console.log(f"retrying {name} on worker {worker['worker']}")

    def progress(self, bags_done: int, bags_total: int, frames: int) -> None:
        self._bar.update(self._task, completed=bags_done, total=bags_total, frames=frames)

    def finished(self, report: dict[str, Any]) -> None:
        if report["status"] == "failed":
            self._bar.console.log(f"[red]failed:[/] {report['name']}: {report['reason']}")


def run(args: argparse.Namespace) -> int:
    """Run the fleet replay; returns the exit status (fatal errors raise and main() returns 2)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..result_console import result_console
    from ..fleet.report import render_fleet_table
    from ..fleet.runner import FleetRequest, run_fleet

    if args.video or args.video_cabin:
        from ..errors import ConfigError
        from ..outpaths import check_video_dir

        check_video_dir(args.out, error=ConfigError)  # before Ray starts: OpenCV crashes on it
    request = FleetRequest(inputs=list(args.inputs), out=args.out, address=args.address,
                           workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                           gpus_per_worker=args.gpus_per_worker, config=args.config,
                           cabin=args.cabin, video=args.video, video_cabin=args.video_cabin,
                           force=args.force, time_limit_s=args.time_limit)
    console = Console(stderr=True)
    with Progress(TextColumn("fleet: bags"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("frames {task.fields[frames]}"), TimeElapsedColumn(),
                  TextColumn("{task.fields[state]}"), console=console, transient=True) as bar:
        task = bar.add_task("fleet", total=None, frames=0,
                            state="starting Ray and loading the models in each worker")
        result = run_fleet(request, _ProgressListener(bar, task))
    render_fleet_table(result.summary, result_console())
    print(f"summary: {printable(result.summary_path)}")
    return result.exit_code
