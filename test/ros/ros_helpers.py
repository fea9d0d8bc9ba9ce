"""Helpers of the ROS 2 graph tests (.venv-ros, `make test-ros`); fixtures are in conftest.py.

* Without rclpy / vision_msgs the tests skip with the reason, except under CI (CI=true), where a
  missing ROS environment fails the run: CI must never pass by skipping them.
* Every run gets its own ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: no packet
  leaves the machine and parallel runs do not see each other.
* Nodes run as separate processes of this interpreter; they are stopped with SIGINT, then SIGKILL
  after 3 s. Every wait is bounded.
"""
from __future__ import annotations

import array
import gc
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _ros_import_error() -> str | None:
    try:
        import rclpy  # noqa: F401
        import rclpy.lifecycle  # noqa: F401
        import vision_msgs.msg  # noqa: F401
        from sensor_msgs.msg import Image  # noqa: F401
    except ImportError as exc:
        return (f"ROS 2 test environment not available ({exc}); build it with `make ros-env` and run "
                "`.venv-ros/bin/python -m pytest -m ros test`")
    return None


ROS_ERROR = _ros_import_error()


def require_ros() -> None:
    """Skip (outside CI) or fail (under CI) when the ROS environment is missing."""
    if ROS_ERROR:
        if CI:
            pytest.fail(ROS_ERROR)
        pytest.skip(ROS_ERROR)


# What each process of a test graph must share (read by rcl and Fast DDS at init).
GRAPH_ENV_KEYS = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR",
                  "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")

# Shared memory with segments that hold whole raw frames, plus UDP (see the file's comment).
FASTDDS_PROFILE = Path(__file__).with_name("fastdds_large_frames.xml")


def own_domain_id() -> int:
    """A random ROS_DOMAIN_ID (1-200) from this process's own share of that range.

    Under pytest-xdist (``make test-ros`` runs two workers) each worker draws from its own slice,
    so two graphs running at once never share a domain; a lone run draws from all of it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    span = 200 // count
    index = int(worker) % count if worker.isdigit() else 0
    return 1 + index * span + random.SystemRandom().randrange(span)


def make_ros_env(log_dir: Path) -> dict[str, str]:
    """Environment of this run's graph: own domain, localhost-only discovery, logs in ``log_dir``.

    Fast DDS transports from ``FASTDDS_PROFILE``: shared memory with 32 MB segments, and UDP.
    With the default 512 kB segments a 1.5 MB raw frame cannot go through shared memory; over
    UDP alone its ~25 fragments were dropped whole while the node was busy inferring. Where shared
    memory is unavailable (CI containers may lack a usable /dev/shm) Fast DDS falls back to UDP, so
    the tests do not rely on it: best-effort frames are re-sent until answered (publish_until), and
    the two-camera batching test subscribes reliably (see its fixture).
    """
    env = dict(os.environ)
    env.update({
        "ROS_DOMAIN_ID": str(own_domain_id()),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(log_dir),
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
        "FASTDDS_BUILTIN_TRANSPORTS": "",  # an inherited value would override the profile
        "AMENT_PREFIX_PATH": sys.prefix,
        "PYTHONUNBUFFERED": "1",
        "RCUTILS_COLORIZED_OUTPUT": "0",
    })
    return env


def end_context(context: Any) -> None:
    """Shut down and destroy an rclpy context now, with what the test built in it.

    A test's nodes, executors and the context itself sit in reference cycles (callbacks holding
    their node): left to Python's cyclic GC, the context's DDS participant was torn down in a GC
    pass at a random allocation inside a later test, possibly in another thread or inside an
    rclpy call in flight. CI once hung there for over an hour with no Python frame to show.
    Collecting here and destroying the context makes the teardown happen at one quiet point."""
    import rclpy

    rclpy.try_shutdown(context=context)
    gc.collect()
    context.destroy()
    gc.collect()


class Graph:
    """The test's own rclpy node in a private context, spun only inside bounded waits."""

    def __init__(self, env: dict[str, str]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        for key in GRAPH_ENV_KEYS:
            os.environ[key] = env[key]  # read by rcl and Fast DDS at init
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"probe_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.diagnostics: dict[str, Any] = {}  # status name -> latest DiagnosticStatus
        # status name -> its DiagnosticArray's stamp (s): the graph lives for a whole module, so the
        # latest status of a node name may be that of an earlier test's process
        self.stamps: dict[str, float] = {}
        self._entities: list[Any] = []
        from diagnostic_msgs.msg import DiagnosticArray

        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = status
            self.stamps[status.name] = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def spin_until(self, predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
        """Spin until ``predicate()`` is truthy (returns it) or ``timeout`` s passed (returns it too)."""
        end = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() >= end:
                return value
            self.executor.spin_once(timeout_sec=step)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, cls: type, topic: str, qos: Any = 10) -> list:
        got: list = []
        self._entities.append(self.node.create_subscription(cls, topic, got.append, qos))
        return got

    def publisher(self, cls: type, topic: str, qos: Any = 10) -> Any:
        pub = self.node.create_publisher(cls, topic, qos)
        self._entities.append(pub)
        return pub

    def client(self, cls: type, name: str) -> Any:
        cli = self.node.create_client(cls, name)
        self._entities.append(cli)
        return cli

    def call(self, cls: type, name: str, request: Any, timeout: float = 30.0) -> Any:
        """Call a service; fails the test if it is not there or does not answer within ``timeout``."""
        cli = self.client(cls, name)
        assert self.spin_until(lambda: cli.service_is_ready(), 20.0), f"service {name} not available"
        future = cli.call_async(request)
        assert self.spin_until(future.done, timeout), f"service {name} did not answer in {timeout} s"
        return future.result()

    def wait_subscribed(self, pub: Any, timeout: float = 20.0) -> None:
        assert self.spin_until(lambda: pub.get_subscription_count() > 0, timeout), \
            f"nobody subscribed to {pub.topic_name} within {timeout} s"

    def matching_status(self, name: str, predicate: Callable[[Any], bool]) -> Any:
        """Latest diagnostic status ``name`` if it satisfies ``predicate``, else None."""
        status = self.diagnostics.get(name)
        return status if status is not None and predicate(status) else None

    def wait_status(self, name: str, predicate: Callable[[Any], bool], timeout: float) -> Any:
        """Latest diagnostic status ``name`` satisfying ``predicate`` (fails after ``timeout``)."""
        status = self.spin_until(lambda: self.matching_status(name, predicate), timeout)
        assert status is not None, (f"no diagnostic status '{name}' as expected within {timeout} s; "
                                    f"last: {describe_status(self.diagnostics.get(name))}")
        return status

    def release(self) -> None:
        for entity in self._entities:
            destroy = {"Subscription": self.node.destroy_subscription, "Publisher": self.node.destroy_publisher,
                       "Client": self.node.destroy_client}.get(type(entity).__name__)
            if destroy is not None:
                destroy(entity)
        self._entities = []

    def close(self) -> None:
        self.release()
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        end_context(self.context)


class NodeProcess:
    """A node running in a child process of this interpreter, output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        self.started = time.time()  # a node stamps its diagnostics with the system clock
        self.proc = subprocess.Popen([sys.executable, *args], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=ROOT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exit_code(self, timeout: float, when: str) -> int:
        """The exit status within ``timeout`` seconds, else an AssertionError saying the process
        was still running ``when``, with its output."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"still running {when}:\n{self.output()}") from exc

    def stop(self) -> int:
        """SIGINT, then SIGKILL after 3 s; returns the exit code."""
        self.killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        self._log.close()
        return self.proc.returncode


def wait_active(graph: Graph, proc: NodeProcess, node: str, timeout: float = 90.0) -> Any:
    """Wait until ``node`` (in ``proc``) reports state ``active`` in /diagnostics; fail fast if it died.

    Only a status stamped since ``proc`` started counts (nodes on the system clock, no
    use_sim_time): the module's graph keeps the last status of an earlier test's process of the
    same node name, and may still have that process's last statuses queued, which said ``active``
    at once. The module's second test then waited for nothing and left the new process's start-up
    (models loading on a loaded CI machine) to its next, shorter wait."""
    def active() -> bool:
        s = graph.diagnostics.get(node)
        return s is not None and graph.stamps[node] >= proc.started \
            and status_values(s).get("state") == "active"

    status = graph.spin_until(lambda: (not proc.alive()) or active(), timeout)
    if not proc.alive() or not status:
        raise AssertionError(f"{node} did not become active (exit code {proc.proc.poll()}; last status "
                             f"{describe_status(graph.diagnostics.get(node))}); its output:\n{proc.output()}")
    return graph.diagnostics[node]


def start_node(module: str, params: Path, env: dict[str, str], log: Path, *ros_args: str) -> NodeProcess:
    """``python -m sense_perception.ros.<module> --ros-args --params-file params ...``."""
    return NodeProcess(["-m", f"sense_perception.ros.{module}", "--ros-args", "--params-file", str(params),
                        *ros_args], env, log)


def write_params(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A ROS 2 parameter YAML with one ``ros__parameters`` section per node."""
    import yaml

    path.write_text(yaml.safe_dump({node: {"ros__parameters": p} for node, p in sections.items()}))
    return path


def cabin_run_config(tmp_path: Path, topic: str) -> Path:
    """A config for `run --nodes driver_monitor`: ``topic`` its camera, its gallery in a private
    folder of ``tmp_path``, CPU alone on one thread, no warning of a missing input for a minute."""
    folder = tmp_path / "gallery"
    folder.mkdir(mode=0o700)
    return write_params(tmp_path / "run.yaml", {"driver_monitor": {
        "camera_topic": topic, "no_input_warn_s": 60.0, "gallery": {"path": str(folder / "g.json")},
        "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}}})


def read_bgr(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read test image {path}"
    return image


def half_size(bgr: np.ndarray) -> np.ndarray:
    """``bgr`` at half width and height, for raw frames sent over best-effort DDS in tests.

    A full-HD raw frame is 6 MB, ~100 UDP fragments, and a best-effort DDS link on a loaded 2-core
    machine loses whole samples of that size for many seconds (seen in CI); the graph tests are
    about the nodes, not about DDS socket-buffer tuning (see docs/ros2-nodes.md, QoS).
    """
    import cv2

    return cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA)


def stamp_header(msg: Any, sec: int, nanosec: int, frame_id: str) -> Any:
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    msg.header.frame_id = frame_id
    return msg


def image_msg(bgr: np.ndarray, sec: int, nanosec: int = 0, frame_id: str = "camera") -> Any:
    """sensor_msgs/Image bgr8 of a real image."""
    from sensor_msgs.msg import Image

    h, w = bgr.shape[:2]
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(bgr).tobytes())
    msg = Image(height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3)
    msg.data = data
    return stamp_header(msg, sec, nanosec, frame_id)


def compressed_msg(bgr: np.ndarray, sec: int, nanosec: int = 0, frame_id: str = "camera") -> Any:
    """sensor_msgs/CompressedImage (JPEG, as compressed_image_transport writes it)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = array.array("B")
    data.frombytes(buf.tobytes())
    msg = CompressedImage(format="bgr8; jpeg compressed bgr8")
    msg.data = data
    return stamp_header(msg, sec, nanosec, frame_id)


def header_key(msg: Any) -> tuple[int, int, str]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)


def status_values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def level(status: Any) -> int:
    lv = status.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)


def describe_status(status: Any) -> str:
    if status is None:
        return "none received"
    return f"level {level(status)} '{status.message}' {status_values(status)}"


def publish_until(graph: Graph, pub: Any, make: Callable[[int], Any], results: list,
                  accept: Callable[[Any], bool] = lambda r: True, timeout: float = 30.0,
                  period: float = 0.4) -> tuple[Any, Any]:
    """Publish ``make(i)`` every ``period`` s until a result answering one of them arrives.

    Best-effort links may lose a frame (e.g. right after discovery), so frames are re-sent with new
    stamps. A result answers a frame when its header equals that frame's header exactly and
    ``accept(result)`` holds. Returns (the sent message, its result).
    """
    end = time.monotonic() + timeout
    sent: dict[tuple, Any] = {}

    def answered() -> Any:
        return next((r for r in results if header_key(r) in sent and accept(r)), None)

    while time.monotonic() < end:
        msg = make(len(sent))
        sent[header_key(msg)] = msg
        pub.publish(msg)
        result = graph.spin_until(answered, max(0.0, min(period, end - time.monotonic())))
        if result is not None:
            return sent[header_key(result)], result
    raise AssertionError(f"no accepted result for {pub.topic_name} within {timeout} s "
                         f"({len(sent)} frames sent, {len(results)} results received)")


def publish_until_status(graph: Graph, pub: Any, msg: Any, node: str, predicate: Callable[[Any], bool],
                         timeout: float, period: float = 0.5) -> Any:
    """Publish ``msg`` every ``period`` s until ``node``'s diagnostics satisfy ``predicate``.

    A node's best-effort subscription drops a sample that arrives before it has discovered the
    writer (the writer may match first), so a single publish can be lost; cameras re-send anyway
    (CameraInfo with every frame). Returns the matching DiagnosticStatus.
    """
    end = time.monotonic() + timeout
    while True:
        pub.publish(msg)
        status = graph.spin_until(lambda: graph.matching_status(node, predicate),
                                  max(0.0, min(period, end - time.monotonic())))
        if status is not None or time.monotonic() >= end:
            break
    assert status is not None, (f"no diagnostic status '{node}' as expected within {timeout} s while "
                                f"publishing on {pub.topic_name}; last: {describe_status(graph.diagnostics.get(node))}")
    return status


# -- nodes built inside the test process -------------------------------------------------------------

def overrides(**values: Any) -> list:
    """rclpy parameter overrides from keyword arguments (dotted names via ``**{"a.b": v}``)."""
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in values.items()]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``predicate`` (no spinning: for a node's own worker thread) until truthy or ``timeout``."""
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.05)
    return predicate()


def spin_until(executor: Any, predicate: Callable[[], Any], timeout: float) -> Any:
    """Spin ``executor`` (the test's nodes in one thread) until ``predicate`` is truthy or
    ``timeout`` s passed; the last value."""
    return wait_for(lambda: executor.spin_once(timeout_sec=0.05) or predicate(), timeout)


def published_statuses(node: Any) -> list:
    """The DiagnosticStatus list ``node`` publishes on /diagnostics now (its real publication path,
    captured): its own status first, then one per camera while it is active (camera health)."""
    sent: list = []
    publish = node._diag_pub.publish
    node._diag_pub.publish = sent.append
    try:
        node.publish_diagnostics()
    finally:
        node._diag_pub.publish = publish
    [array_] = sent
    return list(array_.status)


def published_status(node: Any) -> Any:
    """The node's own DiagnosticStatus on /diagnostics now (the first of :func:`published_statuses`)."""
    statuses = published_statuses(node)
    assert statuses[0].name == node.get_fully_qualified_name()
    return statuses[0]


def record_published(monkeypatch: Any) -> list[Any]:
    """Every output message the nodes build from now on (``Message``: ``topic``, ``msgtype``,
    ``message``), recorded where the node's table turns a frame into messages."""
    from sense_perception.ros import node_common

    published: list[Any] = []
    real = node_common.frame_messages

    def recording(*args: Any, **kwargs: Any) -> Any:
        messages = real(*args, **kwargs)
        published.extend(messages)
        return messages

    monkeypatch.setattr(node_common, "frame_messages", recording)
    return published


def spin_publishing(executor: Any, publish: Callable[[], None], done: Callable[[], Any],
                  timeout: float = 20.0) -> Any:
    """Publish (``publish()``) and spin ``executor`` until ``done()`` is true or ``timeout``
    seconds pass (discovery takes a moment); returns ``done()``'s last value."""
    end = time.monotonic() + timeout
    while not (result := done()) and time.monotonic() < end:
        publish()
        executor.spin_once(timeout_sec=0.05)
    return result


class StallClock:
    """An inference-stall watch's clock, moved by the test (no test sleeps for a stall)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hang(real: Any, entered: Any, release: Any) -> Any:
    """``real`` that first waits for ``release`` (a threading.Event): a model that does not
    return until the test lets it; ``entered`` is set once it is called."""
    def hung(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)
    return hung


def camera_callback(node: Any, topic: str) -> Any:
    """object_detector's subscription callback of its first camera, to feed frames without a
    graph."""
    from sense_perception.core.health.publication_gaps import PublicationGaps

    return node._make_callback(node._slots, 0, topic, PublicationGaps(node.count_publishers))


# -- the driver in the cabin ------------------------------------------------------------------------

def enrol_driver(gallery: Any, name: str, photos: list[str]) -> str:
    """Enrol ``name`` (consented) in the gallery file ``gallery`` from photos of shared/data/faces
    (portraits: the face anywhere in the image); returns the driver id."""
    from sense_perception.face import ConsentRecord, FaceConfig, FaceEngine, GalleryStore

    engine = FaceEngine(FaceConfig(driver_region=[0.0, 0.0, 1.0, 1.0]))
    embeddings = []
    for photo in photos:
        _, index, emb, _ = engine.driver_embedding(read_bgr(DATA / "faces" / photo))
        assert index >= 0, f"no face found in {photo}"
        embeddings.append(emb)
    record = GalleryStore(gallery).enroll(name, np.stack(embeddings), ConsentRecord.now(name))
    return record.id


def cabin_stream(image: np.ndarray, start_sec: int) -> Callable[[int], Any]:
    """Frames of a 10 Hz camera: stamps 0.1 s apart (the identity decision votes over time), each
    with its own sensor noise as a real camera's: a still photo repeated exactly is a frozen
    camera, which camera health raises and driver attention reports as camera_fault."""
    def frame(i: int):
        noise = np.random.default_rng(i).normal(0.0, 1.5, image.shape)
        noisy = np.clip(image + noise, 0, 255).astype(np.uint8)
        return compressed_msg(noisy, start_sec + i // 10, (i % 10) * 100_000_000, "cabin_optical")
    return frame
