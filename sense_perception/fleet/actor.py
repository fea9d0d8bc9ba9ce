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
    kill -9 too (:mod:`.reaper`), where a killed worker left its copy in /tmp.

    Only where nobody else can reach it (:func:`private_folder`): Ray makes its session folders
    world-writable (0777, no sticky bit), so another local user could put a ``fleet_tmp`` of
    their own there (a folder or a link to one) before the worker, or rename the worker's away
    afterwards: the unpacked copy of a cabin recording (the driver's face) went into their
    folder (R44). A local run makes its session folder 0700 (:func:`.cluster.connect`); a
    cluster's (``--address``) stays as Ray made it, and the system's temporary folder is used."""
    try:  # Ray's node API is internal: checked, never guessed
        node = ray._private.worker._global_node
        if node is None:
            return
        session = Path(node.get_session_dir_path())
        if not private_folder(session):
            return
        folder = session / "fleet_tmp"
        folder.mkdir(mode=0o700, exist_ok=True)
        if not private_folder(folder):
            return
    except Exception:  # noqa: BLE001 - another Ray version: the system's temporary folder
        return
    tempfile.tempdir = str(folder)


def private_folder(folder: Path) -> bool:
    """Whether ``folder`` is a directory (not a link) of this user that nobody else may enter or
    write (no group or other permission bits)."""
    import os
    import stat

    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not stat.S_IMODE(st.st_mode) & 0o077)


# ray.remote's typed overloads omit the actor option concurrency_groups that it accepts.
FleetWorker = ray.remote(concurrency_groups={"status": 1})(_FleetWorker)  # type: ignore[call-overload]


def spawn(settings: WorkerSettings, options: dict[str, Any]) -> Any:
    """Start one worker actor with the Ray ``options`` of :func:`.cluster.worker_options`."""
    return FleetWorker.options(**options).remote(settings)
