"""ONNX Runtime sessions with provider fallback, engine cache, warm-up and model-read tensor specs."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import onnxruntime as ort

from ...config import check_settings, setting
from ...errors import ModelError
from ...limits import MAX_THREADS
from ...user_cache import user_cache_dir
from .progress import loading

if TYPE_CHECKING:  # onnx is imported lazily at run time: only the rewrite path needs it
    import onnx

LOG = logging.getLogger(__name__)

DEFAULT_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
OPENVINO_CHOICES = ("auto", "off")

_ORT_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for a dynamic axis) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: type[np.generic]

    @classmethod
    def from_arg(cls, arg: ort.NodeArg) -> "TensorSpec":
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
        return cls(arg.name, shape, _ORT_TYPES.get(arg.type, np.float32))


@dataclass
class RuntimeOptions:
    """How to run a model: provider order, threads, device and TensorRT engine cache."""

    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    intra_op_threads: int = 0  # 0 lets onnxruntime choose (one per physical core)
    device_id: int = 0
    # Resolved per instance: $XDG_CACHE_HOME moves it as it moves the folded face model's cache.
    trt_cache_dir: str = field(default_factory=lambda: str(user_cache_dir("trt")))
    trt_fp16: bool = True
    openvino: str = "auto"
    openvino_int8: bool = True

    def gpu_provider_available(self) -> bool:
        """True when a configured GPU provider is in this onnxruntime build (it may still fail
        to start a session if no GPU is present)."""
        available = set(ort.get_available_providers())
        return any(p in available for p in self.providers if p in GPU_PROVIDERS)


@dataclass
class RuntimeConfig:
    """The ``runtime.*`` parameters of a node; :meth:`options` turns them into :class:`RuntimeOptions`.

    Attributes:
        providers: execution providers in order of preference; unavailable ones are skipped with
            the reason recorded (CPU is always appended last).
        intra_op_threads: threads per operator; 0 lets onnxruntime choose (one per physical core).
        device_id: GPU index for the CUDA and TensorRT providers.
        trt_cache_dir: TensorRT engine/timing cache directory; "" = $XDG_CACHE_HOME (else ~/.cache)/sense_perception/trt.
        trt_fp16: let TensorRT build FP16 engines.
        openvino: ``auto``: bundled models that run faster on OpenVINO's CPU plugin use it
            when they would otherwise run on onnxruntime's CPU provider and the ``openvino``
            package is installed; ``off``: onnxruntime only.
        openvino_int8: on OpenVINO, run the 8-bit form of a model where one is bundled (the
            pedestrian specialist: ``tools/quantize_specialist.py``); false: its original weights.
    """

    providers: list[str] = setting(
        list(DEFAULT_PROVIDERS),
        range="onnxruntime execution provider names, e.g. CPUExecutionProvider")
    intra_op_threads: int = setting(0, range=(0, MAX_THREADS))
    device_id: int = setting(0, range=(0, 255))
    trt_cache_dir: str = ""
    trt_fp16: bool = True
    openvino: str = setting("auto", range=("auto", "off"))
    openvino_int8: bool = True

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0:
            raise ValueError(f"runtime.intra_op_threads must be >= 0, got {self.intra_op_threads}")
        if self.device_id < 0:
            raise ValueError(f"runtime.device_id must be >= 0, got {self.device_id}")
        if not self.providers:
            raise ValueError("runtime.providers must name at least one provider, e.g. "
                             "[CPUExecutionProvider]")
        if self.openvino not in OPENVINO_CHOICES:
            raise ValueError(f"runtime.openvino must be one of {', '.join(OPENVINO_CHOICES)}, "
                             f"got {self.openvino!r}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @classmethod
    def from_params(cls, params: dict, source: str = "config") -> "RuntimeConfig":
        """Read the ``runtime.*`` keys of flattened node parameters (unknown keys are errors)."""
        from ...config import section_from_params

        return section_from_params(cls, params, "runtime.", source)

    def options(self) -> RuntimeOptions:
        """The equivalent :class:`RuntimeOptions`."""
        defaults = RuntimeOptions()
        return RuntimeOptions(
            providers=tuple(self.providers), intra_op_threads=self.intra_op_threads,
            device_id=self.device_id, trt_cache_dir=self.trt_cache_dir or defaults.trt_cache_dir,
            trt_fp16=self.trt_fp16, openvino=self.openvino, openvino_int8=self.openvino_int8)


def trt_cache_refusal(folder: str | Path) -> str | None:
    """Why the TensorRT engine cache must not be kept in ``folder`` (None: it may), after making
    it (and its missing parents) 0700 whatever the umask.

    TensorRT runs the engines it finds there by name, unchecked: whoever can write the folder
    (another user owning it, or group and others given write by the folder's mode, or a
    ``umask 0``, which left the default ``~/.cache/sense_perception/trt`` 0777) can swap in an
    engine of their own, and the detector then runs their network (R44). A sticky folder
    (``/tmp``, ``/dev/shm``: 1777) is refused too: the sticky bit keeps others from replacing
    a file there, not from creating one under an engine's name before TensorRT does (R50).
    """
    import stat

    from ...face.gallery_files import make_private_dirs

    folder = Path(folder).expanduser()
    try:
        make_private_dirs(folder)
        st = os.lstat(folder)
    except OSError as exc:
        return f"it cannot be made ({exc.strerror or exc})"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory (a link or a file)"
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        return f"it belongs to user id {st.st_uid}, not to this user ({me})"
    if st.st_mode & 0o022:  # sticky or not: others may create an engine file there
        return f"other users may write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _provider_entry(name: str, options: RuntimeOptions) -> str | tuple[str, dict]:
    if name == "TensorrtExecutionProvider":
        refused = trt_cache_refusal(options.trt_cache_dir)
        if refused:
            LOG.warning("TensorRT engine cache %s is not used: %s, and whoever can write it could "
                        "replace the engines TensorRT runs; engines are built anew at each start; "
                        "fix: set runtime.trt_cache_dir to a folder that is yours and that only "
                        "you can write (chmod 700)", options.trt_cache_dir, refused)
        entry: dict[str, object] = {"device_id": options.device_id,
                                    "trt_fp16_enable": options.trt_fp16}
        if not refused:
            entry.update(trt_engine_cache_enable=True, trt_engine_cache_path=options.trt_cache_dir,
                         trt_timing_cache_enable=True, trt_timing_cache_path=options.trt_cache_dir)
        return (name, entry)
    if name == "CUDAExecutionProvider":
        return (name, {"device_id": options.device_id})
    return name


class OnnxModel:
    """One ONNX Runtime session.

    Input and output names and shapes are read from the model, never assumed. Providers are tried in
    the configured order; each one skipped is recorded with its reason in :attr:`fallback_reasons`
    and logged, so a node can report it in diagnostics.
    """

    def __init__(self, model: bytes | str | Path, options: RuntimeOptions | None = None,
                 name: str = "model") -> None:
        self.name = name
        self.options = options or RuntimeOptions()
        self.fallback_reasons: list[str] = []
        source: bytes | str
        if isinstance(model, bytes):
            source = model
        else:
            source = str(model)
            if not Path(source).is_file():
                raise ModelError(f"model file {source} does not exist; reinstall sense_perception "
                                 "or point the 'model_path' parameter at an existing ONNX file")
        self.session = self._create_session(source)
        self.inputs = [TensorSpec.from_arg(a) for a in self.session.get_inputs()]
        self.outputs = [TensorSpec.from_arg(a) for a in self.session.get_outputs()]
        self.output_names = [o.name for o in self.outputs]
        self.provider = self.session.get_providers()[0]

    def _session_options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = int(self.options.intra_op_threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # onnxruntime's own warnings are noise to users; we log fallbacks
        # Threads spin while a run is going (fast) but stop the moment it returns: otherwise they
        # keep spinning and take the cores from whatever runs next (the pedestrian specialist on
        # OpenVINO, the next face model): measured 65 -> 45 ms for PicoDet + the specialist.
        so.add_session_config_entry("session.force_spinning_stop", "1")
        return so

    def _create_session(self, source: bytes | str) -> ort.InferenceSession:
        available = set(ort.get_available_providers())
        wanted: list[str] = []
        for name in self.options.providers:
            if name in available:
                wanted.append(name)
            else:
                self._skip(name, "not available in this onnxruntime build "
                                 "(install the 'gpu' extra with CUDA/TensorRT libraries to use it)")
        if "CPUExecutionProvider" not in wanted:
            wanted.append("CPUExecutionProvider")
        while wanted:
            # a node's load is bounded (warm_up_timeout_s): a session creation that hangs (a
            # provider's engine build, a deadlocked GPU driver) is named by this step (R85)
            loading(self.name, f"an onnxruntime session on {', '.join(wanted)}")
            try:
                session = ort.InferenceSession(
                    source, sess_options=self._session_options(),
                    providers=[_provider_entry(p, self.options) for p in wanted])
            except Exception as exc:  # a GPU provider whose libraries fail to load raises here
                if len(wanted) == 1:
                    raise ModelError(f"onnxruntime cannot load {self.name}: {exc}") from exc
                self._skip(wanted.pop(0), f"session creation failed: {exc}")
                continue
            active = session.get_providers()
            for name in wanted:  # onnxruntime may drop a provider silently at load
                if name not in active:
                    self._skip(name, "onnxruntime dropped it at session creation "
                                     "(its CUDA/cuDNN/TensorRT libraries could not be loaded)")
            return session
        raise ModelError(f"no execution provider could run {self.name}")

    def _skip(self, provider: str, reason: str) -> None:
        message = f"{self.name}: {provider} skipped: {reason}"
        self.fallback_reasons.append(message)
        if provider != "CPUExecutionProvider":
            LOG.info(message)

    @property
    def batch_dynamic(self) -> bool:
        """True when the first input's batch axis accepts any size."""
        return bool(self.inputs) and self.inputs[0].shape[:1] == (None,)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns outputs in model order."""
        return self.session.run(self.output_names, feeds)

    def warmup(self, runs: int = 2, batch: int = 1) -> None:
        """Run zero inputs through the model so first-frame latency is not paid on live data."""
        feeds: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            shape = [batch if i == 0 and d is None else (d or 1) for i, d in enumerate(spec.shape)]
            feeds[spec.name] = np.zeros(shape, spec.dtype)
        for _ in range(runs):
            self.run(feeds)


def load_model_bytes(path: str | Path,
                     rewrite: Callable[[onnx.ModelProto], onnx.ModelProto | None] | None = None,
                     ) -> bytes:
    """Read an ONNX file, optionally passing the parsed model through ``rewrite`` first.

    ``rewrite`` may edit the model in place (returning None) or return a new one.
    """
    if rewrite is None:
        return Path(path).read_bytes()
    import onnx

    model = onnx.load(str(path))
    model = rewrite(model) or model
    return model.SerializeToString()


def available_providers() -> Sequence[str]:
    """Execution providers this onnxruntime build offers."""
    return ort.get_available_providers()
