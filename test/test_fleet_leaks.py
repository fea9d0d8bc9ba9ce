"""A fleet run never leaves its local Ray behind: not when a step after ``ray.init`` fails while
connecting (the Ray started stayed up, with its GCS and raylet, the reaper and the session folder),
and not after a ``kill -9`` (its session folder stayed in ``/tmp/ray``).

Each case starts a real local Ray instance in a child process, with Ray's temporary folder a
private one of the test (RAY_TMPDIR) so that other runs' folders cannot be mistaken for its own.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from replay_helpers import ROOT


@pytest.fixture(scope="module", autouse=True)
def _ray():
    if os.environ.get("CI"):
        import ray  # noqa: F401 - CI installs the fleet extra: a missing Ray must fail, not skip
    else:
        pytest.importorskip("ray", reason="Ray not installed: pip install '.[fleet]'")


@pytest.fixture()
def ray_tmp():
    # Short: Ray's socket paths in it must fit the 107 bytes of a Unix socket address.
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# connect() with the step after ray.init (reading the cluster's resources) failing, then what is
# left: Ray initialised?, the processes below this one, the session folders.
_CONNECT_FAILS = """
import json, os, time
from sense_perception.errors import FleetError
from sense_perception.fleet import cluster, reaper
import ray

def unreachable(ray):
    assert ray.is_initialized()  # the failure comes after ray.init succeeded
    raise ConnectionError("the GCS went away")

cluster._resources = unreachable
try:
    cluster.connect(None, 1)
    error = None
except FleetError as exc:
    error = str(exc)
deadline = time.monotonic() + 15
def alive():
    found = []
    for pid in reaper._descendants(os.getpid()):
        try:
            stat = open(f"/proc/{pid}/stat", "rb").read()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:][:1] != b"Z":
            found.append(cmd)
    return found
while alive() and time.monotonic() < deadline:
    time.sleep(0.5)
root = os.path.join(os.environ["RAY_TMPDIR"], "ray")
print(json.dumps({"error": error, "initialized": ray.is_initialized(), "processes": alive(),
                  "sessions": sorted(n for n in os.listdir(root) if n.startswith("session"))
                  if os.path.isdir(root) else []}))
"""


def test_a_connect_failing_after_ray_init_shuts_down_what_it_started(ray_tmp) -> None:
    proc = subprocess.run([sys.executable, "-c", _CONNECT_FAILS], cwd=ROOT, capture_output=True,
                          text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    left = json.loads(proc.stdout.splitlines()[-1])
    assert left["error"] is not None and left["error"].startswith(
        "cannot start a local Ray instance: ConnectionError: the GCS went away;"), left
    assert left["initialized"] is False
    assert left["processes"] == []  # no GCS, raylet, agent nor reaper outlives the failure
    assert left["sessions"] == []  # the session folder (logs naming the bags) is removed
