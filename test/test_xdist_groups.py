"""`make test` runs the core tests on two pytest-xdist workers with ``--dist loadgroup``:
test/conftest.py groups the tests that start Ray, and the tests that share a module-scoped
fixture, each group on one worker. Grouping failed silently once (pytest 9.2 with pytest-xdist
3.8: the Ray tests ran beside each other, the benchmarks' 100-second quick run was made twice)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import check_grouped

ROOT = Path(__file__).resolve().parents[1]


def test_tests_sharing_a_module_fixture_run_on_one_worker_the_others_on_any() -> None:
    """test_image_decode.py's ``typestore`` (a module fixture) is built once: every test using it
    runs on one worker, under one group; its other tests are free."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist",
         "loadgroup", "-v", "test/test_image_decode.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ran = re.findall(r"^\[(gw\d)\] .*?PASSED (\S+)", proc.stdout, re.M)
    grouped = [(worker, nodeid.rsplit("@", 1)) for worker, nodeid in ran
               if "@" in nodeid.rsplit("]", 1)[-1]]
    assert {worker for worker, _ in grouped} and len({worker for worker, _ in grouped}) == 1, ran
    assert {group for _, (_, group) in grouped} == {
        f"module:{ROOT / 'test' / 'test_image_decode.py'}::typestore"}, grouped
    users = {test.split("[")[0] for _, (test, _) in grouped}
    assert users == {f"test/test_image_decode.py::{name}" for name in (
        "test_rosbags_image_through_cdr", "test_agrees_with_rosbags_image",
        "test_jpeg_round_trip_real_image")}, users
    assert len(ran) - len(grouped) >= 20  # the rest stay free


@pytest.mark.parametrize("nodeid, refused", [
    ("test/test_x.py::test_y[a@b]", True),  # an '@' in a parameter is no group
    ("test/test_x.py::test_y", True),
    ("test/test_x.py::test_y[a]@ray", False),
])
def test_a_worker_whose_groups_were_not_taken_refuses_to_run(nodeid: str, refused: bool) -> None:
    """When pytest-xdist cannot mark a grouped test's id (pytest 9.2), the run stops with the
    fix named instead of running the groups' tests on any worker."""
    config = SimpleNamespace(workerinput={"workerid": "gw0"},
                             getvalue=lambda name: name == "loadgroup")
    item = SimpleNamespace(nodeid=nodeid,
                           get_closest_marker=lambda name: object() if name == "xdist_group" else None)
    if refused:
        with pytest.raises(pytest.UsageError, match=r"loadgroup does not group.*setup\.py"):
            check_grouped(config, [item])  # type: ignore[arg-type]
    else:
        check_grouped(config, [item])  # type: ignore[arg-type]
    check_grouped(SimpleNamespace(workerinput=None, getvalue=config.getvalue), [item])  # type: ignore[arg-type]
