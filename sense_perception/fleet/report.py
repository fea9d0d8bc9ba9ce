"""``DIR/fleet_summary.json``, the exit status it means, and the table printed at the end of a run."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..result_console import result_console
from ..face.safe_text import shown
from ..fileio import write_summary_json


STATUSES = ("done", "partial", "failed", "skipped")
INTERRUPTED = "interrupted"  # counted only when a run was stopped (SIGINT / SIGTERM)
EXIT_OK, EXIT_SOME, EXIT_NOTHING = 0, 1, 2


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds, 3) if seconds > 0 else 0.0


def build_summary(reports: list[dict[str, Any]], result: Any, request: Any,
                  ray_info: dict[str, Any], wall_s: float, notes: list[str]) -> dict[str, Any]:
    """The fleet summary dict (the keys of fleet_summary.json).

    Args:
        reports: one entry per bag found, in discovery order.
        result: the :class:`~.dispatch.DispatchResult` of the bags that ran.
        request: the :class:`~.runner.FleetRequest`.
        ray_info: how Ray was used (address, resources), ``{"used": False}`` when nothing ran.
        wall_s: the whole run, Ray start and model loading included.
        notes: things the user should know (fewer workers than asked, ...).
    """
    counts = Counter(r["status"] for r in reports)
    extra = {INTERRUPTED: counts[INTERRUPTED]} if counts.get(INTERRUPTED) else {}
    ran = [r for r in reports if r["status"] in ("done", "partial")]
    frames = sum(r["frames"] for r in ran)
    labels: Counter[str] = Counter()
    for r in ran:
        labels.update(r["detections"])
    return {
        "bags": {"found": len(reports), **{s: counts.get(s, 0) for s in STATUSES}, **extra},
        "frames": frames,  # replayed by this run (skipped bags are in per_bag)
        "detections": dict(sorted(labels.items())),
        "wall_s": round(wall_s, 3),
        "replay_wall_s": result.replay_wall_s,
        "worker_start_s": result.worker_start_s,
        "frames_per_s": {"overall": _rate(frames, wall_s),
                         "while_replaying": _rate(frames, result.replay_wall_s)},
        "bags_per_s": _rate(len(ran), result.replay_wall_s),
        "workers": result.workers,
        "ray": ray_info,
        "settings": {"inputs": [str(p) for p in request.inputs], "out": str(request.out),
                     "address": request.address, "workers": request.workers,
                     "cpus_per_worker": request.cpus_per_worker,
                     "gpus_per_worker": request.gpus_per_worker,
                     "config": str(request.config) if request.config else None,
                     "cabin": request.cabin, "video": request.video,
                     "video_cabin": request.video_cabin, "force": request.force,
                     "time_limit_s": request.time_limit_s or None},
        "notes": list(notes),
        "per_bag": reports,
    }


def is_fleet_summary(document: Any) -> bool:
    """True for a ``fleet_summary.json`` :func:`build_summary` wrote (``bags`` counts, ``per_bag``
    entries, ``settings``): the only file of that name a run replaces (R80)."""
    return (isinstance(document, dict) and {"bags", "per_bag", "settings"} <= set(document)
            and isinstance(document["bags"], dict) and isinstance(document["per_bag"], list))


def bag_entry(job: Any, outcome: dict[str, Any], attempts: int, worker: int | None,
              output: Path | None) -> dict[str, Any]:
    """The entry of one bag in fleet_summary.json ``per_bag``.

    Args:
        job: the :class:`~.discover.BagJob`.
        outcome: what the worker reported (see :meth:`.worker.BagWorker.replay`), or the figures
            of an output already there, with ``status`` and ``reason`` set.
        attempts: tries in this run (0: skipped). worker: the worker id of the last try.
        output: ``DIR/<name>/`` when it holds the bag's outputs.
    """
    return {
        "name": job.name, "bag": str(job.path), "status": outcome.get("status", "failed"),
        "reason": outcome.get("reason"), "attempts": attempts, "worker": worker,
        "output": str(output) if output else None,
        "frames": int(outcome.get("frames", 0)),
        "detections": dict(outcome.get("detections", {})),
        "skipped_messages": int(outcome.get("skipped_messages", 0)),
        "skipped_reasons": list(outcome.get("skipped_reasons", [])),
        "throughput_fps": float(outcome.get("throughput_fps", 0.0)),
        "wall_s": float(outcome.get("wall_s", 0.0)),
        "notes": list(outcome.get("notes", [])),
    }


def interrupted_entry(job: Any, signal_name: str) -> dict[str, Any]:
    """The entry of a bag that was not finished when the run was stopped by ``signal_name``."""
    return bag_entry(job, {"status": INTERRUPTED,
                           "reason": f"not finished: the run was stopped by {signal_name}; run "
                                     "the same command again to replay it (finished bags are "
                                     "kept)"}, 0, None, None)


def write_fleet_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write ``fleet_summary.json`` (:func:`~sense_perception.fileio.write_summary_json`: strict
    JSON, atomic, never through a planted link).

    Raises:
        OSError: it cannot be written (the temp file is removed).
    """
    write_summary_json(path, summary)


def exit_code(summary: dict[str, Any]) -> int:
    """0 every bag done (now or before), 1 some partial or failed, 2 none could be replayed."""
    bags = summary["bags"]
    if bags["found"] == 0 or bags["failed"] == bags["found"]:
        return EXIT_NOTHING
    return EXIT_SOME if bags["failed"] or bags["partial"] else EXIT_OK


def _top_labels(detections: dict[str, int], n: int = 4) -> str:
    top = sorted(detections.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{label} {k}" for label, k in top[:n])
    return text + (", ..." if len(top) > n else "") or "-"


def render_fleet_table(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the per-bag table, the totals and the per-worker figures with rich."""
    console = console or result_console()
    style = {"done": "green", "partial": "yellow", "failed": "bold red", "skipped": "dim",
             INTERRUPTED: "magenta"}
    table = Table(title="sense-perception fleet")
    for name, justify in (("bag", "left"), ("status", "left"), ("frames", "right"),
                          ("detections", "left"), ("worker", "right"), ("note", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in summary["per_bag"]:
        note = r["reason"] or ""
        if r["status"] == "partial":
            note = f"{r['skipped_messages']} messages skipped: " + "; ".join(r["skipped_reasons"])
        elif r["status"] == "skipped":
            note = "already done"
        elif r["status"] == INTERRUPTED:
            note = "not finished: run again to resume"
        if r["attempts"] > 1 and r["status"] != "failed":
            note = (note + "; " if note else "") + "retried on a new worker"
        table.add_row(shown(r["name"]), f"[{style[r['status']]}]{r['status']}[/]",
                      str(r["frames"]), shown(_top_labels(r["detections"])),
                      "-" if r["worker"] is None else str(r["worker"]), shown(note))
    console.print(table)
    bags = summary["bags"]
    console.print(f"bags {bags['found']}: {bags['done']} done, {bags['partial']} partial, "
                  f"{bags['failed']} failed, {bags['skipped']} skipped (already done)"
                  + (f", {bags[INTERRUPTED]} interrupted" if bags.get(INTERRUPTED) else ""))
    fps = summary["frames_per_s"]
    console.print(f"frames {summary['frames']}  {fps['overall']:.1f} frames/s overall "
                  f"({fps['while_replaying']:.1f} while replaying)  wall {summary['wall_s']:.1f} s"
                  + (f"  detections: {shown(_top_labels(summary['detections'], 6))}"
                     if summary["detections"] else ""))
    if summary["workers"]:
        workers = Table(title="workers")
        for name in ("worker", "pid", "host", "gpus", "bags", "frames", "frames/s", "end"):
            workers.add_column(name, justify="right" if name in ("bags", "frames", "frames/s")
                               else "left")
        for w in summary["workers"]:
            workers.add_row(str(w["id"]), str(w["pid"] or "-"), shown(w["host"] or "-"),
                            ",".join(w["gpu_ids"] or []) or "-", str(w["bags"]), str(w["frames"]),
                            f"{w['frames_per_s']:.1f}", w["end"])
        console.print(workers)
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {shown(note)}")
