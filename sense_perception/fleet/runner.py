"""One fleet run from start to end: find the bags, skip finished ones, run the rest on Ray, report."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_params
from ..errors import FleetError
from ..replay.summary import write_summary
from . import DEFAULT_TIME_LIMIT_S
from .discover import BagJob, find_bags
from .dispatch import Dispatcher, DispatchOptions, DispatchResult, Listener
from .outputs import FLEET_SUMMARY, discard, final_dir, is_complete, leftovers, read_summary
from .report import bag_entry, build_summary, exit_code
from .worker import WorkerSettings, outcome_of


@dataclass
class FleetRequest:
    """Everything ``sense-perception fleet`` was asked to do."""

    inputs: list[Path]
    out: Path
    address: str | None = None  # None: a local Ray instance on this machine
    workers: int | None = None  # None: as many as the CPUs (and GPUs) hold
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    config: Path | None = None
    cabin: str | None = None
    video: bool = False
    video_cabin: bool = False
    force: bool = False
    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S  # None or 0: no limit
    start_together: bool = False  # see DispatchOptions.start_together (benchmarks)

    def check(self) -> None:
        """Refuse values Ray would reject late or not at all.

        Raises:
            FleetError: a count or size out of range, or --out a file.
        """
        if self.workers is not None and self.workers < 1:
            raise FleetError(f"--workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 1:
            raise FleetError(f"--cpus-per-worker must be >= 1, got {self.cpus_per_worker}")
        g = self.gpus_per_worker
        if g < 0 or (g > 1 and not float(g).is_integer()):
            # Ray's rule: a fraction of one GPU (several workers share it) or whole GPUs.
            raise FleetError(f"--gpus-per-worker must be a fraction of one GPU (e.g. 0.25, 0.5) "
                             f"or a whole number, got {g:g}")
        if self.time_limit_s is not None and self.time_limit_s < 0:
            raise FleetError(f"--time-limit must be >= 0 (0 = none), got {self.time_limit_s:g}")
        if self.out.exists() and not self.out.is_dir():
            raise FleetError(f"--out {self.out} is a file; give a directory")


@dataclass
class FleetResult:
    """The summary (also in ``DIR/fleet_summary.json``) and the exit status it means."""

    summary: dict[str, Any]
    summary_path: Path
    exit_code: int
    notes: list[str] = field(default_factory=list)


def default_workers(session: Any, cpus: int, gpus: float) -> int:
    """Workers when --workers is not given: as many as the CPUs (and GPUs, if asked) hold."""
    totals = session.resources
    n = int(totals.get("CPU", os.cpu_count() or 1) // cpus)
    if gpus:
        n = min(n, int(math.floor(totals.get("GPU", 0.0) / gpus + 1e-9)))
    return max(1, n)


def _skipped_report(job: BagJob, out: Path) -> dict[str, Any]:
    folder = final_dir(out, job.name)
    outcome = {**outcome_of(read_summary(folder) or {}), "status": "skipped",
               "reason": "already done: its output is complete (--force replays it)"}
    return bag_entry(job, outcome, 0, None, folder)


def run_fleet(request: FleetRequest, listener: Listener | None = None) -> FleetResult:
    """Replay every bag under ``request.inputs`` on Ray workers into ``request.out``.

    Raises:
        FleetError: bad options, Ray missing or unreachable, no bag found, no room for a worker.
        ConfigError: the config file is unreadable (checked before Ray starts).
    """
    wall0 = time.perf_counter()
    request.check()
    for node in ("object_detector", "driver_monitor"):
        load_params(request.config, node)  # a broken YAML fails here, not in every worker
    out = Path(request.out).resolve()
    jobs = find_bags(request.inputs, exclude=[out])
    if not jobs:
        raise FleetError("no rosbag2 recording (a folder with metadata.yaml, or a .mcap / .db3 "
                         f"file) found under {', '.join(map(str, request.inputs))}")
    out.mkdir(parents=True, exist_ok=True)
    done_before = [] if request.force else [j for j in jobs if is_complete(final_dir(out, j.name))]
    to_run = [j for j in jobs if j not in done_before]
    notes: list[str] = []
    result = DispatchResult([], [], 0.0, None, [])
    ray_info: dict[str, Any] = {"used": False}
    if to_run:
        from .cluster import check_workers, connect

        cpus, gpus = request.cpus_per_worker, request.gpus_per_worker
        # A local instance offers what was asked for (--workers x --cpus-per-worker), else the
        # machine's cores; a cluster offers what its nodes have.
        local_cpus = (request.workers * cpus if request.workers
                      else max(os.cpu_count() or 1, cpus))
        session = connect(request.address, local_cpus)
        try:
            workers = request.workers or default_workers(session, cpus, gpus)
            workers, fit_notes = check_workers(session.ray, min(workers, len(to_run)), cpus, gpus)
            notes += fit_notes
            ray_info = {"used": True, "address": session.address, "resources": session.resources}
            settings = WorkerSettings(out=out, config=request.config, cabin=request.cabin,
                                      video=request.video, video_cabin=request.video_cabin,
                                      cpus=cpus)
            limit = request.time_limit_s or None
            result = Dispatcher(session.ray, to_run, settings,
                                DispatchOptions(workers=workers, cpus_per_worker=cpus,
                                                gpus_per_worker=gpus, time_limit_s=limit,
                                                force=request.force,
                                                start_together=request.start_together),
                                listener).run()
            notes += result.notes
        finally:
            session.close()
        for folder in leftovers(out, [j.name for j in to_run]):
            discard(folder)  # work folders of failed bags: nothing complete is in them
    by_name = {r["name"]: r for r in result.reports}
    reports = [by_name[j.name] if j.name in by_name else _skipped_report(j, out) for j in jobs]
    summary = build_summary(reports, result, request, ray_info, time.perf_counter() - wall0,
                            notes)
    path = out / FLEET_SUMMARY
    write_summary(path, summary)  # atomic, like each bag's summary.json
    return FleetResult(summary, path, exit_code(summary), notes)
