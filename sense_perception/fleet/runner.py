"""One fleet run from start to end: find the bags, skip finished ones, run the rest on Ray, report."""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_params
from ..errors import FleetError
from . import DEFAULT_TIME_LIMIT_S
from .discover import BagJob, find_bags
from .dispatch import Dispatcher, DispatchOptions, DispatchResult, FleetListener
from .guard import check_bags_apart, check_out_apart, check_out_not_in_an_output, make_out
from .lock import OutLock
from .outputs import (FLEET_SUMMARY, NotFleetOutput, check_ours, discard_ours, final_dir,
                      is_complete, leftovers, read_summary, recover)
from .report import bag_entry, build_summary, exit_code, interrupted_entry, write_fleet_summary
from .signals import InterruptGuard, Interrupted
from .worker import WorkerSettings, outcome_of

LOG = logging.getLogger(__name__)


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
        """Refuse values Ray would reject late or not at all, before any work.

        Raises:
            FleetError: a count or size out of range or not a finite number, --out a file, or
                --video-cabin without --cabin.
            PrivacyError: --cabin names a camera the config lists as an exterior one.
        """
        if self.workers is not None and self.workers < 1:
            raise FleetError(f"--workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 1:
            raise FleetError(f"--cpus-per-worker must be >= 1, got {self.cpus_per_worker}")
        g = self.gpus_per_worker
        if not math.isfinite(g) or g < 0 or (g > 1 and not float(g).is_integer()):
            # Ray's rule: a fraction of one GPU (several workers share it) or whole GPUs.
            raise FleetError(f"--gpus-per-worker must be a fraction of one GPU (e.g. 0.25, 0.5) "
                             f"or a whole number, got {g:g}")
        t = self.time_limit_s
        if t is not None and (not math.isfinite(t) or t < 0):
            raise FleetError(f"--time-limit must be a number of seconds >= 0 (0 = no limit), "
                             f"got {t:g}")
        if self.out.exists() and not self.out.is_dir():
            raise FleetError(f"--out {self.out} is a file; give a directory")
        if self.video_cabin and not self.cabin:  # as replay: never a setting silently ignored
            raise FleetError("--video-cabin films the camera named by --cabin; add --cabin TOPIC")
        if self.cabin:  # before Ray starts: each worker's replay would refuse every bag for it
            from ..face.privacy import check_identity_topic

            check_identity_topic(self.cabin, self.config, "--cabin",
                                 "give --cabin the in-cabin camera's topic (driver_monitor."
                                 "camera_topic), or remove it from camera_topics if it is one")


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


def _refused(jobs: list[BagJob], out: Path) -> dict[str, str]:
    """Bags whose output folders exist but are not fleet's (see :mod:`.outputs`): never touched."""
    refused = {}
    for job in jobs:
        for folder in (final_dir(out, job.name), *leftovers(out, [job.name])):
            try:
                check_ours(folder)
            except NotFleetOutput as exc:
                refused[job.name] = f"not replayed: {exc}"
                break
    return refused


def run_fleet(request: FleetRequest, listener: FleetListener | None = None) -> FleetResult:
    """Replay every bag under ``request.inputs`` on Ray workers into ``request.out``.

    Everything that can be checked is checked before Ray starts: the options, the config, that
    --out is apart from the inputs and writable, and that no other run holds it (:mod:`.lock`).
    SIGINT / SIGTERM stop the run cleanly (:mod:`.signals`): the summary is still written, with
    the unfinished bags ``interrupted``, and the exit status is 128 + the signal.

    Raises:
        FleetError: bad options, --out unusable or in use, Ray missing or unreachable, no bag
            found, no room for a worker.
        ConfigError: the config file is unreadable (checked before Ray starts).
    """
    wall0 = time.perf_counter()
    request.check()
    for node in ("object_detector", "driver_monitor"):
        load_params(request.config, node)  # a broken YAML fails here, not in every worker
    check_out_apart(request.out, request.inputs)
    check_out_not_in_an_output(request.out)
    notes: list[str] = []
    jobs = find_bags(request.inputs, exclude=[request.out], notes=notes)
    if not jobs:
        raise FleetError("no rosbag2 recording (a folder with metadata.yaml, or a .mcap / .db3 "
                         f"file) found under {', '.join(map(str, request.inputs))}")
    check_bags_apart(request.out, [j.path for j in jobs])
    out = make_out(Path(request.out))
    with OutLock(out) as lock, InterruptGuard() as guard:
        if lock.note:
            notes.append(lock.note)
        return _run_locked(request, listener, jobs, out, notes, guard, wall0)


def _run_locked(request: FleetRequest, listener: FleetListener | None, jobs: list[BagJob], out: Path,
                notes: list[str], guard: InterruptGuard, wall0: float) -> FleetResult:
    refused = _refused(jobs, out)
    for reason in refused.values():
        LOG.error("%s", reason)
    for job in jobs:
        if job.name not in refused:
            note = recover(out, job.name)  # before anything can discard a complete output
            if note:
                LOG.warning("%s", note)
                notes.append(note)
    done_before = [] if request.force else [j for j in jobs if j.name not in refused
                                            and is_complete(final_dir(out, j.name))]
    to_run = [j for j in jobs if j not in done_before and j.name not in refused]
    result = DispatchResult([], [], 0.0, None, [])
    ray_info: dict[str, Any] = {"used": False}
    interrupted: Interrupted | None = None
    if to_run:
        from .cluster import check_workers, connect

        cpus, gpus = request.cpus_per_worker, request.gpus_per_worker
        try:
            from .key_env import key_kept_from_ray

            # a local Ray's processes start here, with this environment; a cluster's are its own
            with key_kept_from_ray(request.config, request.cabin) if request.address is None \
                    else contextlib.nullcontext():
                session = _connect(connect, request.address, cpus)
            try:
                guard.install()  # ray.init put its own SIGTERM handler in place of ours
                guard.check()  # a Ctrl-C while Ray started
                workers = request.workers or default_workers(session, cpus, gpus)
                workers, fit_notes = check_workers(session.ray, min(workers, len(to_run)), cpus,
                                                   gpus, asked=workers)
                notes += fit_notes
                ray_info = {"used": True, "address": session.address,
                            "resources": session.resources}
                settings = WorkerSettings(out=out, config=request.config, cabin=request.cabin,
                                          video=request.video, video_cabin=request.video_cabin,
                                          cpus=cpus)
                limit = request.time_limit_s or None
                result = Dispatcher(session.ray, to_run, settings,
                                    DispatchOptions(workers=workers, cpus_per_worker=cpus,
                                                    gpus_per_worker=gpus, time_limit_s=limit,
                                                    force=request.force,
                                                    start_together=request.start_together),
                                    listener, interrupts=guard).run()
                notes += result.notes
                interrupted = result.interrupted
            finally:
                session.close()
        except Interrupted as exc:  # while Ray started or the workers were being sized
            interrupted = exc
        for folder in leftovers(out, [j.name for j in to_run]):
            try:
                discard_ours(folder)  # work folders of failed bags: nothing complete is in them
            except NotFleetOutput:
                pass  # a user's folder: reported in the bag's entry, left alone
            except OSError as exc:
                # It raised out of the run: a traceback and no fleet_summary.json, the bags that
                # finished left unreported. Said, and the summary is still written.
                note = (f"the work folder {folder} of a bag that did not finish could not be "
                        f"removed ({exc.strerror or exc}); nothing complete is in it: remove it "
                        "by hand once the cause is fixed")
                LOG.warning("%s", note)
                notes.append(note)
    if interrupted is None:
        try:
            guard.check()  # a stop the dispatcher never saw (no Ray, or its end): marked, not lost
        except Interrupted as exc:
            interrupted = exc
    if interrupted is not None:
        notes.append(f"stopped by {interrupted.name}: bags not finished are marked "
                     "interrupted; run the same command again to replay them")
    by_name = {r["name"]: r for r in result.reports}
    reports = []
    for j in jobs:
        if j.name in by_name:
            reports.append(by_name[j.name])
        elif j.name in refused:
            reports.append(bag_entry(j, {"status": "failed", "reason": refused[j.name]}, 0,
                                     None, None))
        elif j in to_run:  # stopped before the dispatcher took it
            reports.append(interrupted_entry(j, interrupted.name if interrupted else "?"))
        else:
            reports.append(_skipped_report(j, out))
    summary = build_summary(reports, result, request, ray_info, time.perf_counter() - wall0,
                            notes)
    summary["interrupted"] = interrupted.name if interrupted else None
    path = out / FLEET_SUMMARY
    while True:
        try:
            with guard.protecting():  # a second signal waits for it (milliseconds), R99
                write_fleet_summary(path, summary)  # atomic and strict JSON, as each bag's
        except OSError as exc:
            raise FleetError(f"cannot write {path}: {exc.strerror or exc} (the bags' outputs are "
                             f"in {out})") from exc
        if interrupted is not None:
            break
        try:
            guard.check()
        except Interrupted as exc:
            # The first stop came after the last check, as the summary was built or written: it
            # was lost (exit 0, 1 or 2 and the summary unmarked, R101). Every bag had ended, so
            # the summary is written again only to say so, and the exit status is the stop's.
            interrupted = exc
            note = (f"stopped by {exc.name} as the summary was written: every bag had "
                    "already ended")
            notes.append(note)
            summary["notes"] = [*summary.get("notes", []), note]
            summary["interrupted"] = exc.name
            continue
        break
    code = interrupted.exit_code if interrupted else exit_code(summary)
    return FleetResult(summary, path, code, notes)


def _connect(connect: Any, address: str | None, cpus: int) -> Any:
    try:
        return connect(address, cpus)
    except SystemExit as exc:
        # ray.init's own SIGTERM handler (sys.exit(SIGTERM)) is live while it starts
        if exc.code == signal.SIGTERM:
            raise Interrupted(signal.SIGTERM) from None
        raise
