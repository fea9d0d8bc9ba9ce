"""Ray for a fleet run: import it (an optional extra), start a local instance or join a cluster,
and check the cluster can place the workers asked for before any is started."""
from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from ..errors import FleetError
from . import reaper

LOG = logging.getLogger(__name__)

EXTRA_HINT = ("install the fleet extra: pip install 'sense_perception[fleet]' (from a source tree: "
              "pip install '.[fleet]')")
# The object store carries only small per-bag result dicts: frames and bags stay on disk.
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def require_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        FleetError: Ray is not installed; the message names the extra that brings it.
    """
    try:
        import ray
    except ImportError as exc:
        raise FleetError(f"sense-perception fleet needs Ray, which is not installed ({exc}); "
                         f"{EXTRA_HINT}") from exc
    return ray


@dataclass
class RaySession:
    """A connection to Ray for one fleet run; :meth:`close` ends what this run started."""

    ray: ModuleType
    address: str  # "local" for an instance started by this run
    started_here: bool
    resources: dict[str, float] = field(default_factory=dict)
    reaper: Any = None  # see :mod:`.reaper`: a local instance's processes end with this one
    # The session folder of the local instance this run started (logs, sockets): removed by
    # close. None for a cluster's (--address) or an existing instance's: never touched.
    session_dir: Path | None = None

    def close(self) -> None:
        """Shut down the Ray this run started (a cluster's or an existing one stays up) and remove
        the session folder of a local instance it started."""
        try:
            if self.started_here and self.ray.is_initialized():
                self.ray.shutdown()
        finally:
            reaper.stop(self.reaper)
            if self.session_dir is not None:
                remove_session_dir(self.session_dir)


def local_session_dir(ray: ModuleType) -> Path | None:
    """The session folder (``<temp>/ray/session_<date>_<pid>``) of the Ray instance this process
    started, or None where Ray does not say (its node API is internal: checked, never guessed)."""
    try:
        node = ray._private.worker._global_node
        session = Path(node.get_session_dir_path())
        temp = Path(node.get_temp_dir_path())
    except Exception:  # noqa: BLE001 - another Ray version: the folder is then left, as before
        LOG.debug("Ray's session folder is not known: it is left in place", exc_info=True)
        return None
    if session.parent != temp or not session.name.startswith("session_") or \
            session.name == "session_latest":
        return None  # not the layout of a session folder: never delete what is not one
    return session


def make_private(session: Path) -> None:
    """Make the session folder of the local Ray this run started 0700 (Ray makes it 0777, no
    sticky bit: any local user could read its logs, which name the bags, and put files, folders
    or links of their own in it, among them the workers' ``fleet_tmp/`` where a cabin bag is
    unpacked: R44). Ray's processes run as this user and create nothing there with other modes
    afterwards; only a folder of this user that is no link is changed."""
    import stat

    try:
        fd = os.open(session, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        LOG.warning("Ray's session folder %s cannot be made private (%s): the workers keep their "
                    "temporary files in the system's temporary folder", session, exc)
        return
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, stat.S_IRWXU)
    except OSError as exc:
        LOG.warning("Ray's session folder %s cannot be made private (%s)", session, exc)
    finally:
        os.close(fd)


def remove_session_dir(folder: Path) -> None:
    """Remove a local Ray instance's session folder once it is shut down, and Ray's
    ``session_latest`` link when it still points there (a later session's link is left)."""
    for _ in range(3):  # a Ray process still ending may write a last log line meanwhile
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            break
        time.sleep(0.2)
    else:
        LOG.warning("Ray's session folder %s could not be removed; delete it by hand", folder)
    latest = folder.parent / "session_latest"
    try:
        if os.readlink(latest) == str(folder):
            latest.unlink()
    except OSError:
        pass  # no link, or another session's: not ours


# Ray's token authentication (the default of a new local instance since Ray 2.59): the token,
# the variables that choose it, and the variable naming a token file.
AUTH_MODE_ENV, AUTH_TOKEN_ENV, AUTH_TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
_RUN_TOKEN: str | None = None  # one per process: Ray's token loader caches the first it reads


def private_auth_token() -> bool:
    """Give the local Ray instance this run starts a token of its own, in this process's
    environment (inherited by Ray's processes and its workers), so that Ray writes none to disk.

    Ray (2.59 and later) turns token authentication on for a new local instance and, when no token
    is set, generates one and writes it to ``~/.ray/auth_token`` under the umask (0644 in a 0755
    ``~/.ray``: every local user who can enter the home folder reads it), where it stays after the
    run and is taken again by every later local instance of this user. GCS and raylet listened on
    every interface (the loopback only since R88: :func:`loopback_only`), the token being all that
    kept others out: whoever read it could join a later run's instance and run code as this user, next to the
    gallery, its key and the cabin frames of the bags. The token given here lives only in the
    environment of this user's processes (``/proc/PID/environ``: their user and root; the
    non-dumpable workers': root, R74) and ends with the run.

    A choice the user made is kept: ``RAY_AUTH_MODE`` other than ``token`` (``disabled``),
    ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` already set leave the environment as it is.

    Returns:
        Whether the run's own token was put in the environment.
    """
    global _RUN_TOKEN
    mode = os.environ.get(AUTH_MODE_ENV)
    if (mode is not None and mode.lower() != "token") or os.environ.get(AUTH_TOKEN_ENV) \
            or os.environ.get(AUTH_TOKEN_PATH_ENV):
        return False
    import secrets

    if _RUN_TOKEN is None:
        _RUN_TOKEN = secrets.token_hex(32)  # what Ray generates: 256 random bits
    # The mode is left to Ray: it turns token authentication on for a new local instance and
    # refreshes the settings it cached at import (a mode set here after the import was not seen
    # by this process, and the GCS refused it as unauthenticated).
    os.environ[AUTH_TOKEN_ENV] = _RUN_TOKEN
    return True


def readable_token_file() -> str | None:
    """A warning when Ray's token file (``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``) may
    be read by group or others (None when it may not, or there is none).

    Such a file was left by a fleet run before R83 (0644 under the usual umask) and is taken by
    this user's own ``ray start`` clusters and a ``ray.init`` without a token: whoever read it may
    join them and run code as this user. Only reported: the file is Ray's, and may be the user's
    token for a cluster of their own.
    """
    import stat

    path = os.environ.get(AUTH_TOKEN_PATH_ENV) or os.path.join(os.path.expanduser("~"), ".ray",
                                                               "auth_token")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (f"Ray's token file {path} has mode {mode:04o}: other local users may read it, and "
            "whoever holds it may join every Ray cluster that uses it (this user's `ray start` "
            "clusters, a `ray.init` without a token) and run code as this user, next to the "
            f"gallery and the cabin frames; fix: chmod 600 {path}, or delete it if no cluster of "
            "yours uses it (a local fleet run uses a token of its own)")


# Ray's switch for clusters beyond this machine (``ray._private.ray_constants``, read from this
# variable when Ray is imported). Off, Ray takes 127.0.0.1 for the node's address, and its GCS,
# raylet, agents and workers then listen on the loopback only (Ray's C++ servers bind there when
# the node's address is 127.0.0.1, every interface otherwise); ``_node_ip_address="127.0.0.1"``
# is turned back into the machine's address by ray.init (``resolve_ip_for_localhost``).
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = ("127.0.0.1", "::1")


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While a local instance starts: Ray takes the node for one without a cluster, so it listens
    on the loopback only (see :data:`LOCAL_ONLY_ENV`); the variable (for Ray's processes, which
    read it at their import) and Ray's constant (read at this process's import, maybe earlier)
    are put back afterwards, so that a later ``--address`` run of this process reaches a cluster.
    Measured (R88): GCS, raylet and idle workers on ``*:PORT``, the runtime-env agent on the
    machine's address; all on 127.0.0.1 with it."""
    constants: Any = importlib.import_module("ray._private.ray_constants")  # Ray-private
    before_env, before = os.environ.get(LOCAL_ONLY_ENV), getattr(constants, "ENABLE_RAY_CLUSTER", True)
    os.environ[LOCAL_ONLY_ENV] = "0"
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(LOCAL_ONLY_ENV, None)
        else:
            os.environ[LOCAL_ONLY_ENV] = before_env


def check_loopback(ray: ModuleType) -> None:
    """Warn when the local instance's node address is not the loopback (a Ray that no longer
    honours :func:`loopback_only`): its GCS and raylet then listen on every interface, the run's
    token (R83) being all that keeps other hosts out."""
    address = ray.util.get_node_ip_address()
    if address not in LOOPBACK:
        LOG.warning("the local Ray instance took %s for its address (this Ray version ignores "
                    "%s=0), so its GCS and raylet listen on every interface of this machine, "
                    "guarded by the run's own token only; fix: a firewall for Ray's ports, or "
                    "a Ray version that keeps a local instance on 127.0.0.1", address, LOCAL_ONLY_ENV)


def local_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def connect(address: str | None, cpus_per_worker: int = 1) -> RaySession:
    """Join the Ray cluster at ``address``, or start a local instance sized by this machine.

    A local instance offers the CPUs this process may use (:func:`local_cpus`), whatever
    --workers asks: Ray then places only as many workers as fit, and :func:`check_workers` says
    when that is fewer. A Ray already initialised in this process (a notebook, a test) is used as
    it is and left running afterwards.

    Args:
        address: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; None starts Ray on this machine.
        cpus_per_worker: CPUs one worker reserves; more than this machine has is refused before
            Ray starts.

    Raises:
        FleetError: Ray is missing, a worker cannot fit this machine, or the cluster cannot be
            reached / the local one started.
    """
    ray = require_ray()
    if ray.is_initialized():
        return RaySession(ray, "existing", False, _resources(ray))
    num_cpus = local_cpus()
    if address is None and cpus_per_worker > num_cpus:
        raise FleetError(f"--cpus-per-worker {cpus_per_worker}: this machine has {num_cpus} "
                         f"CPUs, so not even one worker fits; give --cpus-per-worker "
                         f"{num_cpus} or less, or join a cluster with bigger nodes (--address)")
    readable = readable_token_file()
    if readable:
        LOG.warning("%s", readable)
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    # Started first, so that a kill -9 while Ray starts is covered too.
    watch = reaper.start() if address is None else None
    try:
        if address is None:
            private_auth_token()  # no token of Ray's in ~/.ray, readable by other users
            # "local" always starts a new instance, never attaches to one a `ray start` left;
            # on the loopback only, as it has no other node (R88).
            with loopback_only():
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                         object_store_memory=OBJECT_STORE_BYTES, **quiet)
            check_loopback(ray)
        else:
            ray.init(address=address, **quiet)
        # Still inside the try: a step after ray.init that fails (the cluster's resources cannot
        # be read) must not leave the Ray this run started up.
        session_dir = local_session_dir(ray) if address is None else None
        if session_dir is not None:
            reaper.tell_session(watch, session_dir)  # a kill -9 of this run removes it too
            make_private(session_dir)
        return RaySession(ray, address or "local", True, _resources(ray), watch, session_dir)
    except BaseException as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        _abandon(ray, watch, local_session_dir(ray) if address is None else None)
        if not isinstance(exc, Exception):
            raise  # Ctrl-C / SIGTERM while Ray starts: the caller reports it
        where = "start a local Ray instance" if address is None else \
            f"join the Ray cluster at {address}"
        fix = ("check /tmp/ray for the logs" if address is None else
               "check the cluster runs (`ray start --head` on the head node, then --address "
               "auto there); if it uses token authentication (the default of `ray start` since "
               "Ray 2.59), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to its token (`ray "
               "get-auth-token` on the head node) here; or leave out --address to run on this "
               "machine")
        raise FleetError(f"cannot {where}: {type(exc).__name__}: {exc}; {fix}") from exc


def _abandon(ray: ModuleType, watch: Any, session_dir: Path | None) -> None:
    """Undo a :func:`connect` that failed: shut down the Ray it started (each step runs even when
    the one before fails), let the reaper go, remove the local instance's session folder."""
    try:
        if ray.is_initialized():
            ray.shutdown()
    finally:
        reaper.stop(watch)
        if session_dir is not None:
            remove_session_dir(session_dir)


def _resources(ray: ModuleType) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(ray.cluster_resources().items())
            if k in ("CPU", "GPU", "memory", "object_store_memory")}


def worker_options(cpus: int, gpus: float) -> dict[str, Any]:
    """Ray actor options of one worker: the CPUs and GPUs it reserves, and no automatic restarts.

    A dead worker is not restarted by Ray: the dispatcher starts a new one and retries the bag
    itself, so it can count attempts per bag, report why each failed, and time each attempt.
    """
    options: dict[str, Any] = {"num_cpus": cpus, "max_restarts": 0, "max_task_retries": 0}
    if gpus:
        options["num_gpus"] = gpus
    return options


def _fits(free: float, each: float) -> int:
    return int(math.floor(free / each + 1e-9)) if each > 0 else 1 << 30


def workers_that_fit(nodes: list[dict[str, Any]], cpus: int, gpus: float) -> int:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs the alive nodes can hold at once.

    A worker lives on one node, so each node is counted on its own (four half-GPU workers need
    two GPUs, but on one node or two: not a half here and a half there).
    """
    total = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        res = node.get("Resources", {})
        total += min(_fits(res.get("CPU", 0.0), cpus),
                     _fits(res.get("GPU", 0.0), gpus) if gpus else 1 << 30)
    return total


def check_workers(ray: ModuleType, workers: int, cpus: int, gpus: float,
                  asked: int | None = None) -> tuple[int, list[str]]:
    """The number of workers to start: ``workers``, or fewer when the cluster cannot hold them.

    Ray would leave an actor that fits nowhere pending forever; asking first turns that into an
    error naming what is missing.

    Args:
        workers: workers wanted (--workers, at most one per bag to run).
        asked: what --workers said, for the note (default ``workers``).

    Returns:
        (workers to start, notes on why fewer than asked).

    Raises:
        FleetError: not even one worker fits.
    """
    nodes = ray.nodes()
    fit = workers_that_fit(nodes, cpus, gpus)
    totals = _resources(ray)
    have = f"CPUs: {totals.get('CPU', 0):g}, GPUs: {totals.get('GPU', 0):g}"
    if fit == 0:
        if gpus and not any(n.get("Resources", {}).get("GPU", 0) >= gpus - 1e-9
                            for n in nodes if n.get("Alive", True)):
            raise FleetError(f"--gpus-per-worker {gpus:g}: the Ray cluster has no node with that "
                             f"many GPUs (in all {have}); leave out --gpus-per-worker to run on "
                             "CPUs, or join a cluster with GPUs (--address)")
        raise FleetError(f"no node of the Ray cluster ({have}) can hold one worker of "
                         f"{cpus} CPUs and {gpus:g} GPUs; lower --cpus-per-worker / "
                         "--gpus-per-worker")
    if fit < workers:
        note = (f"{asked or workers} workers asked for, but the cluster ({have}) holds {fit} of "
                f"{cpus} CPUs and {gpus:g} GPUs each: starting {fit}")
        LOG.warning("%s", note)
        return fit, [note]
    return workers, []
