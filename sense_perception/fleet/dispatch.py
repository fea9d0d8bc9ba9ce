"""Hand bags to worker actors one at a time and keep the books: retries, time limits, progress.

Each worker holds one bag at a time, so a bag that crashes or hangs its worker takes nothing else
with it. The dispatcher waits on Ray's futures (``ray.wait``) and reacts:

- a result: the bag is done, partial or failed (an error the engine reported, e.g. no camera
  topic: not retried, it would fail the same way again);
- the worker process died (kill -9, a crash in native code, the out-of-memory killer): the bag is
  retried once on another worker, a new one replacing the dead;
- no result within the per-bag time limit: the worker is killed (ray.kill) and the bag retried
  the same way;
- a second loss of the same bag: it is reported failed with both reasons; the others go on;
- no worker at all could start (a bad model or config, no room): one error ends the run, naming
  the cause, rather than every bag failing alike; a worker that fails to start beside others
  that run only lowers the number of workers.
"""
from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Protocol

from ..durations import duration
from ..errors import FleetError
from .discover import BagJob
from .outputs import final_dir
from .report import bag_entry, interrupted_entry
from .signals import InterruptGuard, Interrupted
from .worker import WorkerSettings

MAX_ATTEMPTS = 2  # the first try and one retry on a new worker
TICK_S = 0.25  # longest wait for a future before time limits and progress are looked at again
POLL_S = 0.5  # how often a busy worker is asked how far it got


class FleetListener(Protocol):
    """What a dispatcher tells its caller as it goes (progress bar, tests): see :class:`Listener`."""

    def started(self, name: str, attempt: int, worker: dict[str, Any]) -> None: ...
    def progress(self, bags_done: int, bags_total: int, frames: int) -> None: ...
    def finished(self, report: dict[str, Any]) -> None: ...


class Listener:
    """A :class:`FleetListener` whose hooks do nothing: subclass it to override only some."""

    def started(self, name: str, attempt: int, worker: dict[str, Any]) -> None:
        """Bag ``name`` (try ``attempt``) was handed to ``worker`` (its :meth:`ready` info)."""

    def progress(self, bags_done: int, bags_total: int, frames: int) -> None:
        """Bags finished so far of those to run, and frames read (finished + in-flight bags)."""

    def finished(self, report: dict[str, Any]) -> None:
        """A bag is settled: ``report`` is its entry of fleet_summary.json."""


@dataclass
class DispatchOptions:
    """How many workers, of what size, and the limits of one run."""

    workers: int
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    time_limit_s: float | None = None  # per bag and attempt; None = no limit
    start_timeout_s: float = 600.0  # a worker whose models are not loaded by then is given up
    force: bool = False
    # Hand out the first bags only once every worker has loaded its models, so that bag times
    # hold no model loading (benchmarks); normally the first ready worker starts at once.
    start_together: bool = False


@dataclass
class _Slot:
    """One worker actor and what it is doing."""

    id: int
    handle: Any
    ready_ref: Any
    spawned: float
    info: dict[str, Any] | None = None
    job: BagJob | None = None
    attempt: int = 0
    ref: Any = None
    started: float = 0.0
    progress_ref: Any = None
    polled: float = 0.0
    done: int = 0  # frames read of the current bag
    stats: dict[str, Any] = field(default_factory=lambda: {"bags": 0, "frames": 0, "busy_s": 0.0})
    end: str = "finished"

    def held(self) -> tuple[BagJob, int]:
        """The bag this worker was handed and its try number (only while it holds one)."""
        if self.job is None:
            raise RuntimeError(f"fleet worker {self.id} holds no bag: a dispatcher bug")
        return self.job, self.attempt


@dataclass
class DispatchResult:
    """Per-bag reports (in job order), per-worker figures and the span in which bags ran."""

    reports: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    replay_wall_s: float  # first bag handed out -> last bag settled
    worker_start_s: float | None  # spawn -> first worker ready
    notes: list[str]
    interrupted: Interrupted | None = None  # the SIGINT / SIGTERM that stopped the run


class Dispatcher:
    """Runs ``jobs`` on worker actors; see the module docstring.

    Args:
        ray: the ray module (connected).
        jobs: the bags to replay (not those already done).
        settings: what each worker needs.
        options: workers, sizes, limits.
        listener: progress hooks.
        spawn: starts one worker actor from Ray options (default :func:`.actor.spawn`).
        interrupts: looked at on every turn of the loop: a SIGINT / SIGTERM it caught stops
            the run (see :meth:`run`).
    """

    def __init__(self, ray: ModuleType, jobs: list[BagJob], settings: WorkerSettings,
                 options: DispatchOptions, listener: FleetListener | None = None,
                 spawn: Callable[[WorkerSettings, dict[str, Any]], Any] | None = None,
                 interrupts: InterruptGuard | None = None) -> None:
        from .cluster import worker_options

        if spawn is None:
            from .actor import spawn as ray_spawn
            spawn = ray_spawn
        self._ray = ray
        self._jobs = jobs
        self._settings = settings
        self._options = options
        self._listener: FleetListener = listener or Listener()
        self._spawn = spawn
        self._interrupts = interrupts or InterruptGuard()
        self._actor_options = worker_options(options.cpus_per_worker, options.gpus_per_worker)
        self._queue: deque[tuple[BagJob, int]] = deque((job, 1) for job in jobs)
        self._slots: list[_Slot] = []
        self._retired: list[_Slot] = []
        self._reports: dict[str, dict[str, Any]] = {}
        self._losses: dict[str, list[str]] = {}
        self._target = max(1, min(options.workers, len(jobs)))
        self._next_id = 0
        self._frames_done = 0
        self._first_start: float | None = None
        self._first_ready: float | None = None
        self._spawned_at: float | None = None
        self._notes: list[str] = []
        self._start_failures: list[str] = []  # distinct reasons workers could not start

    # -- main loop --------------------------------------------------------------------------------

    def run(self) -> DispatchResult:
        """Replay every job; returns when each is done, partial or failed, or on SIGINT / SIGTERM
        (see :mod:`.signals`) with the unfinished ones reported ``interrupted``."""
        ray = self._ray
        interrupted = None
        try:
            while self._queue or any(s.job for s in self._slots):
                self._interrupts.check()
                self._top_up()
                self._hand_out()
                self._poll_progress()
                waiting = self._futures()
                if waiting:
                    ready, rest = ray.wait(list(waiting), num_returns=1, timeout=TICK_S)
                    if ready and rest:  # collect whatever else finished meanwhile
                        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                        ready += more
                    for ref in ready:
                        kind, slot = waiting[ref]
                        getattr(self, f"_on_{kind}")(slot, ref)
                self._enforce_limits()
                self._report_progress()
        except Interrupted as exc:
            interrupted = exc
        finally:
            for slot in list(self._slots):
                self._kill(slot)
                self._retire(slot, f"stopped by {interrupted.name}" if interrupted else slot.end)
        if interrupted is not None:
            for job in self._jobs:
                if job.name not in self._reports:
                    self._reports[job.name] = interrupted_entry(job, interrupted.name)
        end = time.perf_counter()
        return DispatchResult(
            reports=[self._reports[job.name] for job in self._jobs],
            workers=[self._worker_entry(s) for s in sorted(self._retired, key=lambda s: s.id)],
            replay_wall_s=round(end - self._first_start, 3) if self._first_start else 0.0,
            worker_start_s=(round(self._first_ready - self._spawned_at, 3)
                            if self._first_ready and self._spawned_at else None),
            notes=self._notes, interrupted=interrupted)

    def _futures(self) -> dict[Any, tuple[str, _Slot]]:
        waiting: dict[Any, tuple[str, _Slot]] = {}
        for slot in self._slots:
            if slot.info is None:
                waiting[slot.ready_ref] = ("ready", slot)
            if slot.ref is not None:
                waiting[slot.ref] = ("result", slot)
            if slot.progress_ref is not None:
                waiting[slot.progress_ref] = ("progress", slot)
        return waiting

    # -- workers ----------------------------------------------------------------------------------

    def _top_up(self) -> None:
        """Start workers until there are as many as bags left to run allow (up to the target)."""
        busy = sum(1 for s in self._slots if s.job)
        wanted = min(self._target, len(self._queue) + busy)
        while len(self._slots) < wanted:
            now = time.perf_counter()
            handle = self._spawn(self._settings, self._actor_options)
            self._slots.append(_Slot(self._next_id, handle, handle.ready.remote(), now))
            self._spawned_at = self._spawned_at or now
            self._next_id += 1

    def _hand_out(self) -> None:
        if (self._options.start_together and self._first_start is None
                and any(s.info is None for s in self._slots)):
            return
        for slot in self._slots:
            if slot.info is None or slot.job is not None or not self._queue:
                continue
            job, attempt = self._queue.popleft()
            now = time.perf_counter()
            slot.job, slot.attempt, slot.started, slot.done = job, attempt, now, 0
            slot.polled = now
            slot.ref = slot.handle.replay.remote(job, self._options.force)
            self._first_start = self._first_start or now
            self._listener.started(job.name, attempt, {**slot.info, "worker": slot.id})

    def _poll_progress(self) -> None:
        now = time.perf_counter()
        for slot in self._slots:
            if slot.job is not None and slot.progress_ref is None and now - slot.polled >= POLL_S:
                slot.progress_ref = slot.handle.progress.remote()
                slot.polled = now

    def _kill(self, slot: _Slot) -> None:
        try:
            self._ray.kill(slot.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead is fine
            pass

    def _retire(self, slot: _Slot, end: str) -> None:
        slot.end = end
        if slot in self._slots:
            self._slots.remove(slot)
            self._retired.append(slot)

    # -- futures ----------------------------------------------------------------------------------

    def _on_ready(self, slot: _Slot, ref: Any) -> None:
        try:
            info = self._ray.get(ref)
            error = info.get("error")
        except Exception as exc:  # noqa: BLE001 - the process died before its models loaded
            error = _short(exc)
        if error:
            reason = f"a worker could not start: {error}"
            self._kill(slot)
            self._retire(slot, reason)
            self._start_failed(reason)
            return
        slot.info = info
        self._first_ready = self._first_ready or time.perf_counter()

    def _start_failed(self, reason: str) -> None:
        """A worker never became ready: run on with fewer, or fail what is left if none remain.

        Raises:
            FleetError: no worker of this run ever started (each bag would fail alike).
        """
        self._target = max(0, self._target - 1)
        if reason not in self._notes:
            self._notes.append(reason)
        if reason not in self._start_failures:
            self._start_failures.append(reason)
        if not self._slots and self._target == 0:
            if self._first_ready is None:
                # Models or room the workers lack: every bag would fail with the same reason, and
                # a new worker would fail to start the same way.
                raise FleetError(
                    f"no fleet worker could start ({self._next_id} tried), so none of the "
                    f"{len(self._jobs)} bags was replayed: {'; '.join(self._start_failures)}; "
                    "then run the same command again")
            while self._queue:
                job, attempt = self._queue.popleft()
                self._settle(job, attempt, None, {"status": "failed", "reason": reason})

    def _on_result(self, slot: _Slot, ref: Any) -> None:
        job, attempt = slot.held()
        slot.ref = None
        try:
            outcome = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as exc:
            self._lost(slot, f"its worker process died while replaying it (killed, crashed or out "
                             f"of memory): {_short(exc)}")
            return
        except Exception as exc:  # noqa: BLE001 - the call itself failed (e.g. serialisation)
            outcome = {"status": "failed", "reason": _short(exc)}
        busy = time.perf_counter() - slot.started
        slot.job = None
        slot.stats["bags"] += 1
        slot.stats["frames"] += int(outcome.get("frames", 0))
        slot.stats["busy_s"] += busy
        self._settle(job, attempt, slot, outcome)

    def _on_progress(self, slot: _Slot, ref: Any) -> None:
        slot.progress_ref = None
        try:
            current = self._ray.get(ref)
        except Exception:  # noqa: BLE001 - a dying worker; its replay future says what happened
            return
        if current and slot.job is not None and current["bag"] == slot.job.name:
            slot.done = int(current["done"])

    def _enforce_limits(self) -> None:
        now = time.perf_counter()
        limit = self._options.time_limit_s
        for slot in list(self._slots):
            if limit and slot.job is not None and now - slot.started > limit:
                self._kill(slot)
                self._lost(slot, f"no result within the time limit of {duration(limit)} (hung or too "
                                 "slow): its worker was killed")
            elif slot.info is None and now - slot.spawned > self._options.start_timeout_s:
                self._kill(slot)
                reason = (f"no worker started within {duration(self._options.start_timeout_s)}: the "
                          f"cluster has no free room for {self._options.cpus_per_worker} CPUs and "
                          f"{self._options.gpus_per_worker:g} GPUs per worker")
                self._retire(slot, reason)
                self._start_failed(reason)

    def _lost(self, slot: _Slot, reason: str) -> None:
        """The worker of a bag died or was killed: retire it; retry the bag or give up on it."""
        job, attempt = slot.held()
        slot.stats["busy_s"] += time.perf_counter() - slot.started
        slot.job = slot.ref = slot.progress_ref = None
        self._retire(slot, f"lost on {job.name}: {reason}")
        losses = self._losses.setdefault(job.name, [])
        losses.append(f"try {attempt}: {reason}")
        if attempt < MAX_ATTEMPTS:
            self._queue.appendleft((job, attempt + 1))  # next free worker; a new one replaces this
        else:
            self._settle(job, attempt, None, {"status": "failed", "reason": "; ".join(losses)})

    # -- books ------------------------------------------------------------------------------------

    def _settle(self, job: BagJob, attempt: int, slot: _Slot | None,
                outcome: dict[str, Any]) -> None:
        replayed = outcome.get("status") in ("done", "partial")
        report = bag_entry(job, outcome, attempt, slot.id if slot else None,
                           final_dir(self._settings.out, job.name) if replayed else None)
        if job.name in self._losses and report["status"] != "failed":
            report["notes"].append("retried after: " + "; ".join(self._losses[job.name]))
        self._reports[job.name] = report
        self._frames_done += report["frames"]
        self._listener.finished(report)

    def _report_progress(self) -> None:
        in_flight = sum(s.done for s in self._slots if s.job)
        self._listener.progress(len(self._reports), len(self._jobs), self._frames_done + in_flight)

    @staticmethod
    def _worker_entry(slot: _Slot) -> dict[str, Any]:
        info = slot.info or {}
        busy = slot.stats["busy_s"]
        return {"id": slot.id, **{k: info.get(k) for k in ("pid", "host", "node", "gpu_ids",
                                                           "provider", "threads", "load_s")},
                "bags": slot.stats["bags"], "frames": slot.stats["frames"],
                "busy_s": round(busy, 3),
                "frames_per_s": round(slot.stats["frames"] / busy, 3) if busy > 0 else 0.0,
                "end": slot.end}


def _short(exc: BaseException) -> str:
    """One line of an exception: Ray's run over pages (tracebacks, ids); the first line says it."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
