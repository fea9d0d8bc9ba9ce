"""Start perception nodes in one process: the console entry points and ``sense-perception run``."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..durations import duration
from ..errors import ConfigError

# How long the end of `run` waits for a callback still running on the executor's threads (a
# lifecycle transition or a service call: a configure loading its models or waiting for the
# gallery lock) after the nodes were stopped and destroyed.
CALLBACK_GRACE_S = 2.0


def to_parameters(params: dict[str, Any], source: str) -> list[Any]:
    """rclpy Parameters from flattened YAML values (e.g. :func:`sense_perception.config.load_params`).

    A list mixing ints and floats (``[58, 57.1]``) becomes a float list, as ROS requires one type.

    Raises:
        ConfigError: a value no ROS parameter type can hold (names the key).
    """
    from rclpy.parameter import Parameter

    from .settings import ros_param_value

    out = []
    for name, value in params.items():
        value = ros_param_value(value)
        try:
            out.append(Parameter(name, value=value))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"parameter '{name}' in {source} cannot be a ROS parameter "
                              f"({value!r}): {exc}") from exc
    return out


def _params_files(args: Sequence[str]) -> list[str]:
    """The ``--params-file`` paths of ``--ros-args``, in their order."""
    args = list(args)
    after = args[args.index("--ros-args") + 1:] if "--ros-args" in args else []
    return [path for flag, path in zip(after, after[1:], strict=False) if flag == "--params-file"]


#: What a node started alone takes from the other node's section of its ``--params-file``.
OTHER_NODE_CAMERAS = {"driver_monitor": "exterior_camera_topics",
                      "object_detector": "cabin_camera_topic"}


def params_file_cameras(kind: str, args: Sequence[str]) -> dict[str, Any]:
    """The other node's cameras that the ``--params-file`` files of ``args`` name, for a node of
    ``kind`` started on its own (``ros2 run``, the console scripts).

    rclpy gives a node its own section of the file only, so ``ros2 run sense_perception
    driver_monitor --ros-args --params-file config/perception.yaml`` knew none of the exterior
    cameras the file lists under object_detector (face identification was not refused on them)
    and object_detector not the file's cabin camera; the config loader, which ``run`` and the
    launch files use, gives them (R40). The last file naming them wins, as in rcl; a file the
    loader cannot read gives nothing here (rcl reads it and the node names what is wrong).
    """
    from ..config import load_params

    name = OTHER_NODE_CAMERAS.get(kind, "")
    found: dict[str, Any] = {}
    for path in _params_files(args) if name else []:
        try:
            params = load_params(path, kind, check=False)
        except Exception:  # noqa: BLE001  rcl's own reading names the problem
            continue
        value = params.get(name)
        if isinstance(value, str) and value or isinstance(value, (list, tuple)) and value and \
                all(isinstance(t, str) for t in value):
            found[name] = value  # a value of another type: the node names it at configure
    return found


def _params_file_problem(args: list[str]) -> str:
    """Why a ``--params-file`` of ``--ros-args`` cannot be read ("" when none): rcl would wait for
    ever on a FIFO and read a device without end."""
    import os
    import stat

    from ..fileio import describe_mode

    for path in _params_files(args):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # missing or unreadable: rcl names it
        if not stat.S_ISREG(mode):
            return (f"--params-file {path} is {describe_mode(mode)}, not a regular file; fix: "
                    "give the ROS 2 parameter YAML file itself")
    return ""


def alone_kwargs(factory: Callable[..., Any], args: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments of a node class started alone: as ``config_defaults``, the other
    node's cameras its ``--params-file`` names (:func:`params_file_cameras`)."""
    kind = getattr(getattr(factory, "SETTINGS", None), "KIND", "")
    cameras = params_file_cameras(kind, args)
    return {"config_defaults": to_parameters(cameras, "--params-file")} if cameras else {}


def _start_failure(factory: Callable[..., Any], kwargs: dict[str, Any], exc: Exception) -> str:
    """Why a node could not be created (a ROS parameter of the wrong type, a namespace or name
    that is not a valid ROS name), naming the node and the fix."""
    import sys

    module = sys.modules.get(getattr(factory, "__module__", ""))
    name = getattr(module, "NODE_NAME", getattr(factory, "__name__", "node"))
    where = f" in namespace '{kwargs['namespace']}'" if kwargs.get("namespace") else ""
    text = " ".join(str(exc).split())  # rclpy's name errors span lines, with a caret under the fault
    return (f"node {name}{where} could not start: {type(exc).__name__}: {text}; fix the parameter "
            "(-p NAME:=VALUE of its type, or --config) or the name (--namespace, -r __ns:=, "
            "-r __node:= take letters, digits, '_' and '/')")


def run_nodes(factories: Sequence[Callable[..., Any]], args: Sequence[str] | None = None,
              multi_threaded: bool = False, node_kwargs: Sequence[dict[str, Any]] | None = None) -> int:
    """Create the nodes, autostart them, and spin until Ctrl-C or shutdown.

    A node whose configuration fails stays up, unconfigured, reporting the error in /diagnostics and
    answering lifecycle services, so it can be fixed and configured again without a restart.

    Args:
        factories: node classes (or callables returning a node).
        args: command line incl. ``--ros-args ...`` (remaps, ``-p``, ``--params-file``).
        multi_threaded: spin with a MultiThreadedExecutor (several nodes in one process).
        node_kwargs: per factory, keyword arguments (namespace, parameter_overrides...).

    Returns:
        Process exit code: 0 after a clean shutdown.
    """
    import sys

    from ..core_dumps import no_core_dumps

    # A crash writes no gallery to a core file. For the nodes' console scripts (the launch
    # files') and `python -m` of a node module, which never pass through the CLI's main; under
    # `sense-perception run` main has set it already and this call finds the limit 0 (a no-op).
    no_core_dumps()

    import rclpy
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    from .node_common import autostart, spin

    problem = _params_file_problem(list(args or []))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if node_kwargs is None:  # a node started alone: the other node's cameras its files name
        node_kwargs = [alone_kwargs(factory, args or []) for factory in factories]
    # before the first participant: discovery would announce the OS user name (R93)
    from .dds_privacy import use_private_participant

    use_private_participant()
    from ..stops import stop_signals

    # Before rclpy.init, whose handlers (SIGINT, SIGTERM: the ROS context shut down, the executor
    # woken) call these after their own: one path for every stop, as in the other commands. The
    # first stop raises (SIGTERM and SIGHUP as Ctrl-C, starting or spinning: R79, R91); a later
    # one is said and ignored, and the stop the first began (the frames in flight, the nodes
    # destroyed) runs whole; one FORCE_AFTER_S or more after the first ends the process at once
    # with 128 + the first stop (R100). A second Ctrl-C raised out of the wait for the inference
    # threads: the wait and the nodes' destruction cut short, or exit -2 (R102).
    with stop_signals():
        try:
            rclpy.init(args=list(args) if args is not None else None)
        except RCLError as exc:  # a malformed --ros-args (params file, -p, -r, --log-level)
            print(f"error: {exc}; fix the arguments after --ros-args (-p NAME:=VALUE, -r FROM:=TO, "
                  "--params-file FILE, --log-level LEVEL)", file=sys.stderr)
            return 2
        nodes: list[Any] = []
        executor: Any = None
        try:
            for i, factory in enumerate(factories):
                kwargs = node_kwargs[i] if node_kwargs else {}
                try:
                    nodes.append(factory(**kwargs))
                except Exception as exc:  # noqa: BLE001  a bad -p / --namespace: one line, never a traceback
                    if not rclpy.ok():  # a signal arrived while the node was being created
                        raise KeyboardInterrupt from exc
                    print(f"error: {_start_failure(factory, kwargs, exc)}", file=sys.stderr)
                    _stop_all(nodes)  # the nodes started before this one go down with it
                    return 2
            for node in nodes:
                try:
                    autostart(node)
                except Exception:
                    if rclpy.ok():
                        raise
                    # Ctrl-C or SIGTERM while the node was starting (models load in configure):
                    # rclpy's handler shut the context down, so the transition could not be published.
                    raise KeyboardInterrupt from None
                if not rclpy.ok():
                    raise KeyboardInterrupt
            executor = MultiThreadedExecutor() if multi_threaded else SingleThreadedExecutor()
            with WakeOnSignal(executor):  # SIGHUP's stop begins at once, not at the next timer (R95)
                spin(nodes, executor)
        except KeyboardInterrupt:
            _stop_all(nodes)
        finally:
            rclpy.try_shutdown()
        # in the block: a second stop while a callback is waited for is the first one's too
        _leave_stuck_callbacks(executor, 0)
    return 0


class WakeOnSignal:
    """Wake ``executor``'s wait as soon as a signal with a Python handler arrives.

    Python runs a signal handler in the main thread between bytecodes, and while spinning the
    main thread waits inside rcl until a frame or a timer wakes it. rclpy's own handler wakes
    the executor on SIGINT and SIGTERM (a guard condition it triggers), but not on SIGHUP, whose
    handler is ours (:func:`~sense_perception.stops.stop_signals`): a closed terminal's stop began
    only at the next /diagnostics (``diagnostics_period_s``, up to 3600 s) or frame (R95). Python's C-level
    handler writes each signal's number to the wakeup fd (:func:`signal.set_wakeup_fd`); a thread
    reading it calls ``executor.wake()``, whose guard condition ends the wait, and the handler
    runs. A context manager; it does nothing off the main thread or where a wakeup fd is already
    set (asyncio's), which it leaves as it is.
    """

    def __init__(self, executor: Any) -> None:
        self._executor = executor
        self._fds: tuple[int, int] | None = None
        self._previous = -1
        self._stopped = False
        self._thread: Any = None

    def __enter__(self) -> "WakeOnSignal":
        import os
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # the C handler must never block on a full pipe
        try:
            self._previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(read_fd)
            os.close(write_fd)
            return self
        if self._previous != -1:  # someone else's (asyncio's): theirs stays
            signal.set_wakeup_fd(self._previous)
            os.close(read_fd)
            os.close(write_fd)
            return self
        self._fds = (read_fd, write_fd)
        self._thread = threading.Thread(target=self._wake, args=(read_fd,), daemon=True,
                                        name="signal-waker")
        self._thread.start()
        return self

    def _wake(self, read_fd: int) -> None:
        import os

        try:
            while os.read(read_fd, 64) and not self._stopped:
                try:
                    self._executor.wake()
                except Exception:  # noqa: BLE001  an executor shut down meanwhile: none to wake
                    pass
        except OSError:
            pass

    def __exit__(self, *exc: Any) -> None:
        import os
        import signal

        if self._fds is None:
            return
        read_fd, write_fd = self._fds
        self._fds = None
        signal.set_wakeup_fd(-1)
        self._stopped = True
        try:
            os.write(write_fd, b"\0")  # the thread's read returns, and it ends
        except OSError:
            pass
        self._thread.join(timeout=1.0)
        os.close(write_fd)
        if not self._thread.is_alive():  # else left to the daemon thread: closed at exit
            os.close(read_fd)


def _stop_all(nodes: Sequence[Any]) -> None:
    """Stop every node's inputs, wait for their inference threads together, destroy them."""
    from .node_common import stop_nodes

    stop_nodes(nodes)


def _leave_stuck_callbacks(executor: Any, code: int) -> None:
    """End the process with ``code`` now if a callback is still running after the stop.

    A MultiThreadedExecutor runs callbacks on a thread pool that Python joins at exit: a
    transition asked for over ROS (``ros2 lifecycle set ... configure``) and still under way when
    Ctrl-C or SIGTERM arrived, loading models (a TensorRT engine build takes minutes) or waiting
    for the gallery lock (for ever, before that wait was bounded), held the process after its
    nodes were gone, with nothing said. The pool is told to end; a thread still busy after
    :data:`CALLBACK_GRACE_S` is named on stderr and left behind (``os._exit``: its work is for
    nodes already destroyed). A model load or warm-up the configure was stopped in (Ctrl-C,
    SIGTERM) or gave up on runs in a daemon thread of its own (``run_bounded``, R81, R85): one
    still in onnxruntime while Python finalized ended the process in ``terminate called without
    an active exception`` (SIGABRT, exit -6) instead of 0 (nothing waited for it: a ``join`` a
    Ctrl-C interrupts marks the thread stopped in Python 3.11): each is waited for likewise, by
    the Event it sets when its job is over (``bounded_jobs``). Returns when all have ended.
    """
    import sys
    import threading
    import time

    from concurrent.futures import ThreadPoolExecutor

    pool = getattr(executor, "_executor", None)  # where rclpy's MultiThreadedExecutor runs them
    if isinstance(pool, ThreadPoolExecutor):
        pool.shutdown(wait=False, cancel_futures=True)  # its idle threads end; none is waited for
    from ..core.runtime.warm_up import unfinished_jobs
    from ..stops import exit_now

    busy = [t for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    deadline = time.monotonic() + CALLBACK_GRACE_S
    try:
        for thread in busy:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:  # the first stop (`run`'s later ones are ignored): wait no longer
        deadline = time.monotonic()
    stuck = [t.name for t in busy if t.is_alive()] + unfinished_jobs(deadline)
    if not stuck:
        return
    try:
        print(f"warning: a callback was still running {duration(CALLBACK_GRACE_S)} after the stop "
              f"(threads {', '.join(stuck)}: a lifecycle transition or service call, e.g. a "
              "configure loading its models, or a model load or warm-up); the process ends "
              "without it", file=sys.stderr)
    except OSError:  # a hung-up terminal (EIO; SIGHUP stops run, R91): the exit must still come
        pass
    exit_now(code)
