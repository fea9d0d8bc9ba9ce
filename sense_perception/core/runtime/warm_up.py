"""One warm-up inference per model before a node says it is ready (SECURITY.md R72).

The first run of a model can take far longer than any later one: TensorRT builds its engine for
each new input shape (minutes without a ``runtime.trt_cache_dir`` cache), OpenVINO and CUDA
compile kernels and allocate on their first call. On a live node that first run happened on the
first camera frame, inside a batch the inference-stall watch (R69, ``inference_stall_s``) times,
so a node with nothing wrong reported a hung inference (ERROR). The nodes now run these
functions at configure, on blank frames, before they report ready, and say how long it took.

Shapes: on a GPU provider (TensorRT, CUDA) each model is run at the smallest and the largest
input the node will feed it (one image and a batch of every camera; for YuNet, whose input
follows the frame's size, a minimal frame and one of ``face.max_side``), so an engine whose shape
range is widened to the shapes it has seen (TensorRT's) covers those in between. On the CPU
(onnxruntime's CPU provider, OpenVINO, which compiles at load) nothing is built per shape: each
model runs once, on its smallest input, which keeps a configure cheap (0.03-0.22 s per node on
2 shared cores, measured here, a cost the first frame paid before). A camera whose frames give the
detector more tiles than a blank frame of the network's size (``tiling.*``) built on its first
frame (R72); on a GPU provider each network of the detector is now also run at the least and the
most images one call may give it (:func:`detector_feeds`: the whole frame, the ``tiling.*``
tiles, the pedestrian specialist's band tiles, the nested-box re-check's crops at
``nested_recheck_input``), from the settings, whatever the cameras' resolution (R81).

Bounded: a warm-up inference that does not return (a hung GPU call, a deadlocked provider) held
``configure`` for ever, and with it the node's executor (no ``/diagnostics``, no ``shutdown``).
:func:`run_bounded` runs the warm-up in a thread of its own and gives up on an inference that has
run ``warm_up_timeout_s`` (a node parameter, as ``inference_stall_s``), failing the configure
naming the model, the time waited and the fix; the hung thread is left behind with the objects
it was handed, and nothing it returns is used (R81). The nodes' model load before the warm-up
runs through :func:`run_bounded` too, each loader naming its step
(:func:`~sense_perception.core.runtime.progress.loading`, R85), and so does the commands'
(:func:`load_bounded`, :mod:`sense_perception.model_load`, R87).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from ...durations import duration
from ...errors import ModelError
from ..imaging.frame_guard import MIN_FRAME_PX
from .progress import WarmUpProgress, set_current

T = TypeVar("T")

#: What to check when a warm-up fails: it is the model's first run on this runtime.
FIX = ("fix: check the model file and runtime.providers (a GPU provider that cannot run it: "
       "list CPUExecutionProvider alone to confirm), then configure the node again")

#: ``warm_up_timeout_s``'s default: one warm-up inference may take this long. A TensorRT engine
#: build is the slowest first run (a minute or two for the bundled models on a desktop GPU, several
#: on an embedded one, per input shape, without a ``runtime.trt_cache_dir`` cache), so minutes.
WARM_UP_TIMEOUT_S = 600.0
#: How often the configure waiting for a load or a warm-up looks whether it is over, stopped or too long.
POLL_S = 0.05


#: The jobs of :func:`run_bounded` whose thread has not finished (name, set once it has): ``run``
#: waits for them as for its callbacks before the process ends (within its grace, else
#: ``os._exit``): a thread that returns from onnxruntime while Python finalizes aborts the
#: process (``terminate called without an active exception``, R85). Tracked with an Event of its
#: own: a ``join`` that a Ctrl-C interrupts marks the thread stopped in Python 3.11.
_RUNNING: dict[str, threading.Event] = {}
_RUNNING_LOCK = threading.Lock()


def bounded_jobs() -> dict[str, threading.Event]:
    """The jobs of :func:`run_bounded` not finished yet: thread name -> Event set when it is."""
    with _RUNNING_LOCK:
        for key in [k for k, done in _RUNNING.items() if done.is_set()]:
            del _RUNNING[key]
        return dict(_RUNNING)


@dataclass(frozen=True)
class Waiter:
    """Who waits for a bounded load or warm-up, as its error says it (:func:`timed_out`).

    Attributes:
        setting: the bound's name (``warm_up_timeout_s``).
        where: where that setting is given, said after it in the fix ("" for a node's own).
        gave_up: what the wait giving up means (``so the node did not report ready``).
        again: what to do once fixed (``configure the node again``).
    """

    setting: str = "warm_up_timeout_s"
    where: str = ""
    gave_up: str = "so the node did not report ready"
    again: str = "configure the node again"


#: A node's configure waits (R81, R85).
NODE = Waiter()


def unfinished_jobs(deadline: float) -> list[str]:
    """Wait until ``deadline`` (:func:`time.monotonic`) for the jobs of :func:`run_bounded` not
    finished yet (a Ctrl-C ends the wait); the thread names of those still running then. A
    process must not finalize while one may return: back from onnxruntime or OpenVINO during
    Python's finalization, it ends the process in ``terminate called without an active
    exception`` (SIGABRT), so ``run`` and the commands end with ``os._exit`` past the wait
    (R85, R87)."""
    jobs = bounded_jobs()
    try:
        for done in jobs.values():
            done.wait(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:  # Ctrl-C again: wait no longer
        pass
    return [name.split(" ")[0] for name, done in jobs.items() if not done.is_set()]


#: A warm-up to run bounded: the objects it warms bound to it, the progress it reports to given.
WarmUpJob = Callable[[WarmUpProgress], float]


def run_bounded(job: Callable[[WarmUpProgress], T], timeout_s: float,
                stopping: Callable[[], bool] = lambda: False,
                clock: Callable[[], float] = time.monotonic, name: str = "warm-up",
                waiter: Waiter | None = None) -> T:
    """Run ``job`` in a daemon thread of its own and wait for it, giving up on a step (one
    inference of a warm-up, one model's load) that has run ``timeout_s`` (each step its own
    bound: a GPU builds one engine per shape, per model).

    The job holds the objects it warms (bound before this call) or returns the ones it loads,
    so a later configure's objects are never its; its result or error is read only here, so one
    returning after this gave up changes nothing. The model loaders the job calls report their
    steps to its progress (:func:`~sense_perception.core.runtime.progress.loading`, R85).

    Args:
        job: the warm-up or the load, given a :class:`WarmUpProgress` to report each step to.
        timeout_s: ``warm_up_timeout_s``.
        stopping: true once the node stops (Ctrl-C, SIGTERM): the wait ends at once.
        clock: the monotonic clock the bound is counted on (a test moves it).
        name: the thread's name.
        waiter: who waits, as the error says it (default :data:`NODE`: a node's configure).

    Returns:
        What the job returned (a warm-up: the seconds it took; a load: what it built).

    Raises:
        ModelError: the job raised (as the job says it), a step did not return within the bound
            (naming the model, what was done with it, the time waited and the fix) or the node
            was stopped.
    """
    progress = WarmUpProgress(clock)
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        set_current(progress)  # the loaders deep in the core report to it
        try:
            outcome["result"] = job(progress)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting configure
            outcome["error"] = exc
        finally:
            set_current(None)
            done.set()

    thread = threading.Thread(target=work, name=name, daemon=True)
    bounded_jobs()  # forgets those that finished
    with _RUNNING_LOCK:
        _RUNNING[f"{name} {id(done):x}"] = done
    thread.start()
    while not done.wait(POLL_S):
        if stopping():
            raise ModelError(f"{progress.doing()} was stopped (the node is shutting down)")
        waited = progress.running_s()
        if waited >= timeout_s:
            raise ModelError(timed_out(progress, waited, timeout_s, waiter or NODE))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]  # type: ignore[no-any-return]


def timed_out(progress: WarmUpProgress, waited: float, timeout_s: float,
              waiter: Waiter | None = None) -> str:
    """The error of a load or warm-up step that has run ``waited`` seconds, past ``timeout_s``:
    what hung, the time waited and the fix (the step's own, for one that is no model's: the
    gallery read was told to list CPUExecutionProvider alone), in the words of ``waiter``
    (default :data:`NODE`)."""
    waiter = waiter or NODE
    head = (f"{progress.doing()} has not returned after {duration(waited)} ({waiter.setting} "
            f"{timeout_s:g}), {waiter.gave_up}; fix: ")
    tail = (f", then {waiter.again} (the hung call is left behind; nothing it returns is "
            "used)")
    if progress.fix:
        return head + progress.fix + tail
    slow = ("its load (TensorRT builds its engines, OpenVINO compiles; keep "
            "runtime.trt_cache_dir so that an engine is built once)" if progress.load else
            "its first run (a TensorRT engine build, per input shape: keep runtime.trt_cache_dir "
            "so that it is built once)")
    return (head + f"if this hardware takes longer for {slow}, raise {waiter.setting}"
            f"{waiter.where}; else the model or its provider hangs: list CPUExecutionProvider "
            "alone in runtime.providers to confirm" + tail)


def load_bounded(job: Callable[[], T], models: str, timeout_s: float,
                 stopping: Callable[[], bool] = lambda: False, name: str = "load",
                 waiter: Waiter | None = None) -> T:
    """Run a model load (``job``, building ``models``) bounded by :func:`run_bounded`: the one
    bounded load of the nodes' configure (R85) and of the commands that load models (``detect``,
    ``replay``, ``eval``, the fleet's workers, R87). The loaders report each model's session
    creation, compile and first run at load to the job's progress; a load that hangs in plain
    Python before any of them is named as ``the load of <models> (reading and preparing the
    model files)``. ``job`` returns what it built and touches nothing else: one that returns
    after the wait gave up on it changes nothing.

    Raises:
        ModelError: it raised (its own error), a step ran past ``timeout_s`` or ``stopping``
            became true.
    """
    def load(progress: WarmUpProgress) -> T:
        progress.loading(models, "reading and preparing the model files")  # the first step
        return job()

    return run_bounded(load, timeout_s, stopping=stopping, name=name, waiter=waiter)


def on_gpu(providers: Sequence[str]) -> bool:
    """Whether any of these execution providers builds or compiles per input shape (all but
    onnxruntime's CPU provider and OpenVINO on the CPU)."""
    return any(p != "CPUExecutionProvider" and not str(p).startswith("OpenVINO")
               for p in providers)


def _failed(model: str, what: str, exc: BaseException) -> ModelError:
    first = (str(exc).splitlines() or [""])[0][:300]
    return ModelError(f"the warm-up inference of {model} on {what} failed before the node "
                      f"reported ready ({type(exc).__name__}: {first}); {FIX}")


def _step(progress: WarmUpProgress | None, model: str, what: str) -> None:
    if progress is not None:
        progress.step(model, what)


# -- the shapes a detector's networks are fed ------------------------------------------------------

def images_per_frame(tiling: Any) -> int:
    """The most images one camera frame gives a network through its ``tiling.*`` settings (a
    :class:`~sense_perception.core.detection.tiling.TilingConfig`, None: the whole frame): the
    whole frame, plus ``rows`` x ``columns`` tiles (``columns`` 0: as many as the frame's width
    asks for, at most :data:`~sense_perception.core.detection.tiling.MAX_AUTO_COLUMNS`). The
    pedestrian specialist's band is such a tiling without the whole frame."""
    if tiling is None or getattr(tiling, "mode", "off") == "off":
        return 1
    from ..detection.tiling import MAX_AUTO_COLUMNS

    whole = 1 if tiling.include_full_frame else 0
    return whole + int(tiling.rows) * (int(tiling.columns) or MAX_AUTO_COLUMNS)


def batch_sizes(cameras: int, per_frame: int, max_batch: int) -> tuple[int, ...]:
    """The least and the most images one inference call of a network takes: ``cameras`` frames
    of ``per_frame`` images each, cut into calls of at most ``max_batch`` (the last call of a
    batch may hold one image, and a camera whose frames are not tiled gives one)."""
    most = max(1, min(int(max_batch), max(1, int(cameras)) * max(1, int(per_frame))))
    return tuple(dict.fromkeys((1, most)))


@dataclass(frozen=True)
class Feed:
    """One network of a detector and the input shapes a node may feed it.

    Attributes:
        model: the network's name (with ``at nested_recheck_input N`` for the re-check's copy).
        width, height: its input size.
        batches: the batch sizes to warm: the least and the most one call takes (an engine
            TensorRT widens to the shapes it has met covers those between).
        why: what gives those images (the whole frame, tiles, band tiles, crops).
        run: runs the network once on a blank batch of that many inputs.
    """

    model: str
    width: int
    height: int
    batches: tuple[int, ...]
    why: str
    run: Callable[[int], Any]


def _frame_images(tiling: Any) -> str:
    """What one frame gives a network through ``tiling`` (see :func:`images_per_frame`)."""
    per_frame = images_per_frame(tiling)
    whole = tiling is None or getattr(tiling, "mode", "off") == "off" or tiling.include_full_frame
    if per_frame == 1 and whole:
        return "the whole frame"
    return ("the whole frame and " if whole else "") + f"up to {per_frame - whole} tile(s)"


def detector_feeds(detector: Any, cameras: int) -> list[Feed]:
    """Every network of a built detector with the input shapes the node may feed it, from its
    settings (:func:`images_per_frame`, :func:`batch_sizes`): the general model on the whole
    frame and its ``tiling.*`` tiles, the pedestrian specialist on the band (one tile where
    OpenVINO reshaped it, else tiles of its fixed size) or the whole frame, the nested-box
    re-check's crops (``detector.duplicates.nested_recheck_crops`` a frame) at
    ``nested_recheck_input`` (a network of its own) or at the general model's size.

    Args:
        detector: an ObjectDetector, a DeviceDetector around one, or a MultiModelDetector of them.
        cameras: how many cameras the node reads (their frames share a call).
    """
    feeds: list[Feed] = []
    cameras = max(1, int(cameras))
    for member in getattr(detector, "members", None) or [detector]:
        net = getattr(member, "detector", member)  # a DeviceDetector's own detector
        dup = net.config.duplicates
        crops = int(dup.nested_recheck_crops)
        per_frame = images_per_frame(net.tiling)
        crop_net = getattr(net, "crop_detector", None)
        most = per_frame if crop_net is not None or not crops else max(per_frame, crops)
        why = _frame_images(net.tiling)
        if crop_net is None and crops:
            why += f", or up to {crops} re-check crop(s)"
        width, height = (int(v) for v in net.input_size)
        feeds.append(Feed(net.model_name, width, height,
                          batch_sizes(cameras, most, net.max_batch),
                          f"{why} a frame, {cameras} camera(s), at most {net.max_batch} a call",
                          net.run_blank))
        if crop_net is not None and crops:
            cw, ch = (int(v) for v in crop_net.input_size)
            feeds.append(Feed(f"{net.model_name} at nested_recheck_input {dup.nested_recheck_input}",
                              cw, ch, batch_sizes(cameras, crops, crop_net.max_batch),
                              f"up to {crops} re-check crop(s) a frame, {cameras} camera(s), at "
                              f"most {crop_net.max_batch} a call", crop_net.run_blank))
    return feeds


def warm_up_detector(detector: Any, cameras: int, progress: WarmUpProgress | None = None) -> float:
    """Run ``detector.detect`` on a blank frame of its network input size, and on a GPU provider
    also on one per camera (the largest batch the node's worker takes together) and each of its
    networks at every shape :func:`detector_feeds` names (R81: tiles, the band, re-check crops
    built their engines on the first real frame, inside a batch the stall watch times).

    Args:
        detector: an ObjectDetector, MultiModelDetector or DeviceDetector.
        cameras: how many cameras the node reads.
        progress: told each inference as it begins (:func:`run_bounded`).

    Returns:
        The seconds it took.

    Raises:
        ModelError: the warm-up raised, naming the model and the fix.
    """
    width, height = _detector_size(detector)
    blank = np.zeros((height, width, 3), np.uint8)
    t0 = time.perf_counter()
    gpu = on_gpu(list(getattr(detector, "providers", {}).values())
                 or [getattr(detector, "provider", "")])
    name = getattr(detector, "model_name", "the detector")
    for count in dict.fromkeys((1, max(1, int(cameras)) if gpu else 1)):
        what = f"{count} blank {width}x{height} frame(s)"
        _step(progress, name, what)
        try:
            detector.detect([blank] * count)
        except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
            raise _failed(name, what, exc) from exc
    for feed in detector_feeds(detector, cameras) if gpu else []:
        for batch in feed.batches:
            what = f"a blank batch of {batch} {feed.width}x{feed.height} input(s) ({feed.why})"
            _step(progress, feed.model, what)
            try:
                feed.run(batch)
            except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
                raise _failed(feed.model, what, exc) from exc
    return time.perf_counter() - t0


def _detector_size(detector: Any) -> tuple[int, int]:
    """The (width, height) of the detector's network input (its first member's, for several;
    the wrapped detector's, for one pre-processing on the GPU)."""
    for member in (detector, *getattr(detector, "members", ())):
        for candidate in (member, getattr(member, "detector", None)):
            size = getattr(candidate, "input_size", None)
            if size is not None:
                return max(MIN_FRAME_PX, int(size[0])), max(MIN_FRAME_PX, int(size[1]))
    return 640, 480


def warm_up_driver(identifier: Any, progress: WarmUpProgress | None = None) -> float:
    """Run each model of the driver pipeline on blank input: YuNet on a minimal blank frame (on a
    GPU provider also one of ``face.max_side`` a side), the embedder, face mesh and iris models on
    zeros (a blank frame has no face to reach them).

    Args:
        identifier: the DriverIdentifier.
        progress: told each inference as it begins (:func:`run_bounded`).

    Returns:
        The seconds it took.

    Raises:
        ModelError: a model's warm-up raised, naming the model and the fix.
    """
    engine = identifier.engine
    others = [engine.embedder.model]
    attention = getattr(identifier, "attention", None)
    if attention is not None:
        others += list(attention.estimator.models)
    gpu = on_gpu([m.provider for m in [engine.detector.model, *others]])
    side = int(getattr(engine.detector, "max_side", 640)) if gpu else MIN_FRAME_PX
    t0 = time.perf_counter()
    for size in dict.fromkeys((MIN_FRAME_PX, side)):
        what = f"a blank {size}x{size} frame"
        _step(progress, "yunet", what)
        try:
            engine.detect(np.zeros((size, size, 3), np.uint8))
        except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
            raise _failed("yunet", what, exc) from exc
    for model in others:
        warm_up_model(model, None if gpu else (1,), progress)
    return time.perf_counter() - t0


def warm_up_model(model: Any, batches: Sequence[int] | None = None,
                  progress: WarmUpProgress | None = None) -> None:
    """Run ``model`` (an OnnxModel or OpenVinoModel) on zeros: batch 1, and 2 where its batch
    axis is free (the iris model's two eyes).

    Raises:
        ModelError: naming the model and the fix.
    """
    dynamic = bool(model.inputs) and model.inputs[0].shape[:1] == (None,)
    name = getattr(model, "name", "a model")
    for batch in batches or ((1, 2) if dynamic else (1,)):
        feeds = {spec.name: np.zeros([batch if i == 0 and d is None else (d or 1)
                                      for i, d in enumerate(spec.shape)], spec.dtype)
                 for spec in model.inputs}
        what = f"a blank input of batch {batch}"
        _step(progress, name, what)
        try:
            model.run(feeds)
        except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
            raise _failed(name, what, exc) from exc


__all__ = ["FIX", "WARM_UP_TIMEOUT_S", "Feed", "WarmUpJob", "WarmUpProgress", "batch_sizes",
           "detector_feeds", "images_per_frame", "on_gpu", "bounded_jobs", "run_bounded",
           "load_bounded", "NODE", "Waiter", "timed_out", "unfinished_jobs",
           "warm_up_detector", "warm_up_driver", "warm_up_model"]
