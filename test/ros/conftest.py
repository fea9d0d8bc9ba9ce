"""Fixtures of the ROS 2 graph tests (.venv-ros, `make test-ros`); helpers in ros_helpers.py.

* Without rclpy / vision_msgs the tests skip with the reason, except under CI (CI=true), where a
  missing ROS environment fails the run: CI must never pass by skipping them.
* Every run gets its own ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: no packet
  leaves the machine and parallel runs do not see each other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ros_helpers import CI, GRAPH_ENV_KEYS, ROS_ERROR, Graph, end_context, make_ros_env, require_ros


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under CI a run that selects the ROS tests fails at once when ROS cannot be imported."""
    markexpr = session.config.getoption("markexpr", "") or ""
    if CI and ROS_ERROR and "not ros" not in markexpr:
        pytest.exit(f"CI=true and the ROS tests are selected, but: {ROS_ERROR}", returncode=1)


def pytest_collection_modifyitems(items: list) -> None:
    # Everything under test/ros needs the ROS environment, whether or not a module marks it.
    for item in items:
        if "/test/ros/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.ros)


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of this run's graph (own domain, localhost-only discovery, logs in tmp)."""
    require_ros()
    return make_ros_env(tmp_path_factory.mktemp("ros_log"))


@pytest.fixture(scope="module")
def graph(ros_env: dict[str, str]) -> Any:
    """The module's own rclpy node in a private context."""
    g = Graph(ros_env)
    yield g
    g.close()


@pytest.fixture()
def context(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A private rclpy context for nodes built inside the test process (in-process tests)."""
    import rclpy

    for key in GRAPH_ENV_KEYS:
        monkeypatch.setenv(key, ros_env[key])
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    end_context(ctx)


@pytest.fixture()
def params_context(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Start a private rclpy context with ``--params-file FILE``; yields a function doing that."""
    import rclpy

    for key in GRAPH_ENV_KEYS:
        monkeypatch.setenv(key, ros_env[key])
    contexts = []

    def start(text: str) -> Any:
        path = tmp_path / f"params_{len(contexts)}.yaml"
        path.write_text(text)
        ctx = rclpy.Context()
        rclpy.init(context=ctx, args=["--ros-args", "--params-file", str(path)])
        contexts.append(ctx)
        return ctx

    yield start
    for ctx in contexts:
        end_context(ctx)


@pytest.fixture()
def probe(graph: Graph) -> Any:
    """The module's graph; what a test subscribes/publishes/calls is removed after it."""
    yield graph
    graph.release()
