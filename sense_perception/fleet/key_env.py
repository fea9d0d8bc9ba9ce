"""The gallery key given in the environment, and the processes of the local Ray a fleet run starts.

Ray's own processes (GCS, raylet, the dashboard and runtime-env agents, the autoscaler monitor)
start with the environment of the process that calls ``ray.init`` and stay dumpable (R74 made the
commands and the workers non-dumpable, not them): where ``core_pattern`` hands a crash to a
reporter (apport, systemd-coredump), a crash of one of them writes its memory, its environment
included, to the reporter's files. A gallery key in that environment
(``SENSE_PERCEPTION_GALLERY_KEY``, or the variable ``gallery.key_env`` names) went there whether
any worker needed it or not (R83).
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

from ..config import load_params
from ..face.gallery import DEFAULT_KEY_ENV

LOG = logging.getLogger(__name__)


def key_variable(config: Path | None, cabin: str | None) -> tuple[str, bool]:
    """The environment variable the gallery key would come from, and whether the workers read it.

    Args:
        config: the run's ``--config`` (its ``driver_monitor`` section's ``gallery.key_file`` and
            ``gallery.key_env``).
        cabin: the run's ``--cabin`` topic: without it no worker reads the gallery.

    Returns:
        ``(name, needed)``: name is "" when ``gallery.key_env`` is set empty; needed is True only
        when a worker identifies drivers and takes its key from that variable (no key file).
    """
    params = load_params(config, "driver_monitor") if config is not None else {}
    name = str(params.get("gallery.key_env", DEFAULT_KEY_ENV) or "")
    key_file = str(params.get("gallery.key_file", "") or "")
    return name, bool(cabin) and not key_file and bool(name)


@contextlib.contextmanager
def key_kept_from_ray(config: Path | None, cabin: str | None) -> Iterator[None]:
    """Start a local Ray inside this block without a gallery key its workers do not need.

    A key variable set in this process (exported in a shell profile, a service's environment) but
    not read by any worker (no ``--cabin``, or a ``gallery.key_file`` in the config) is taken out
    of the environment while Ray starts its processes, and put back afterwards. A key the workers
    read from the environment must reach them through Ray's processes: a warning says so and
    names the fix (``gallery.key_file``).
    """
    name, needed = key_variable(config, cabin)
    value = os.environ.get(name) if name else None
    if not value:
        yield
        return
    if needed:
        LOG.warning("the gallery key in the environment variable %s reaches every process of the "
                    "local Ray instance (GCS, raylet, its agents), which stay dumpable: a crash of "
                    "one of them handed to a crash reporter (apport, systemd-coredump) writes it "
                    "there; fix: give fleet runs the key as gallery.key_file (a file only you can "
                    "read) and unset %s", name, name)
        yield
        return
    del os.environ[name]
    try:
        yield
    finally:
        os.environ[name] = value
