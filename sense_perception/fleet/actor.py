"""The Ray actor of a fleet worker: a :class:`~.worker.BagWorker` in its own process.

Imported only once :func:`.cluster.require_ray` has found Ray.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray

from .discover import BagJob
from .worker import BagWorker, WorkerSettings


class _FleetWorker:
    """Models are built in the constructor (once per process); ``replay`` is called per bag."""

    def __init__(self, settings: WorkerSettings) -> None:
        _temp_in_session()
        self._worker: BagWorker | None = None
        self._error = ""
        try:
            self._worker = BagWorker(settings)
        except Exception as exc:  # noqa: BLE001 - reported by ready(), in our words, not Ray's
            self._error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> dict[str, Any]:
        """The worker's identity once its models are loaded (see :meth:`BagWorker.info`), or
        ``{"error": ...}`` when they could not be (a bad config, a missing model)."""
        if self._worker is None:
            return {"error": self._error}
        context = ray.get_runtime_context()
        return {**self._worker.info(), "node": context.get_node_id(),
                "gpu_ids": [str(i) for i in context.get_accelerator_ids().get("GPU", [])]}

    def replay(self, job: BagJob, force: bool) -> dict[str, Any]:
        assert self._worker is not None, "replay() on a worker whose ready() reported an error"
        return self._worker.replay(job, force)

    # Its own concurrency group (one thread): answered while ``replay`` runs in the default one,
    # which stays at one call at a time, so two bags never share a worker.
    @ray.method(concurrency_group="status")
    def progress(self) -> dict[str, Any] | None:
        return self._worker.progress() if self._worker is not None else None


def _temp_in_session() -> None:
    """Put this worker's temporary files (a file-compressed bag's unpacked copy: gigabytes) in
    its Ray session folder, ``fleet_tmp/``: a local run removes that folder when it ends, after a
    kill -9 too (:mod:`.reaper`), where a killed worker left its copy in /tmp."""
    try:  # Ray's node API is internal: checked, never guessed
        node = ray._private.worker._global_node
        if node is None:
            return
        folder = Path(node.get_session_dir_path()) / "fleet_tmp"
        folder.mkdir(mode=0o700, exist_ok=True)
    except Exception:  # noqa: BLE001 - another Ray version: the system's temporary folder
        return
    tempfile.tempdir = str(folder)


# ray.remote's typed overloads omit the actor option concurrency_groups that it accepts.
FleetWorker = ray.remote(concurrency_groups={"status": 1})(_FleetWorker)  # type: ignore[call-overload]


def spawn(settings: WorkerSettings, options: dict[str, Any]) -> Any:
    """Start one worker actor with the Ray ``options`` of :func:`.cluster.worker_options`."""
    return FleetWorker.options(**options).remote(settings)
