"""Pre-processing in torch on the GPU, handed to onnxruntime through IO binding without a host copy.

Optional: needs ``torch`` (the ``gpu`` extra installs a CUDA build). Importing this module without
torch works; building a :class:`TorchPreprocessor` then raises a :class:`ConfigError` with the fix.

Path of one frame on a CUDA machine:

1. raw ``sensor_msgs/Image`` bytes are validated on the CPU (same checks as
   :func:`~sense_perception.core.imaging.image_decode.decode_image`), uploaded as they are, and converted to
   BGR on the device (rgb8, bgr8, rgba8, bgra8, mono8); other encodings and ``CompressedImage``
   (JPEG/PNG) are decoded on the CPU and the BGR result uploaded;
2. resize (bilinear or bicubic, the same sampling grid and kernels as OpenCV), rounding to whole
   pixel values as OpenCV's uint8 resize does, letterbox padding and the per-channel affine
   normalisation all run on the device, into a preallocated NCHW float32 tensor;
3. :class:`IOBindingRunner` binds that tensor's device memory as the model input
   (``bind_input(..., buffer_ptr=tensor.data_ptr())``), so onnxruntime reads it in place.

The math is the CPU :class:`~sense_perception.core.detection.preprocess.Preprocessor`'s, so the same code runs
on a CPU torch device: that is how its parity with the CPU path is tested on machines without a GPU
(results agree to one grey level; OpenCV uses fixed-point weights).
"""
from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ...errors import ConfigError, ImageDecodeError
from ..imaging.image_decode import DEFAULT_MAX_PIXELS, ImageView, SizeFloor, _raw_view, decode_any
from .preprocess import Preprocessor, PreprocessSpec
from .duplicates import suppress_duplicates
from .recheck import recheck_nested
from .low_light import brighten_input
from ..types import Detections

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .detector import DetectorConfig, ObjectDetector

_TORCH_MODES = {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest"}
# Channel order of each raw encoding converted on the device, as indices into the source channels
# that give B, G, R.
_DEVICE_ENCODINGS = {"bgr8": (0, 1, 2), "8UC3": (0, 1, 2), "rgb8": (2, 1, 0), "bgra8": (0, 1, 2),
                     "rgba8": (2, 1, 0), "mono8": (0, 0, 0), "8UC1": (0, 0, 0)}
_TORCH_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def _torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError as exc:
        raise ConfigError("GPU pre-processing needs torch; fix: pip install "
                          "'sense_perception[gpu]' (CUDA build of torch), or use the CPU "
                          "path") from exc
    return torch


def torch_available() -> bool:
    """True when torch can be imported."""
    try:
        _torch()
    except ConfigError:
        return False
    return True


def cuda_available() -> bool:
    """True when torch is installed with CUDA and sees a GPU."""
    return torch_available() and bool(_torch().cuda.is_available())


class TorchPreprocessor:
    """Same contract as :class:`~sense_perception.core.detection.preprocess.Preprocessor`, on a torch device.

    Args:
        spec: what the network expects.
        device: torch device, e.g. ``"cuda"``, ``"cuda:1"`` or ``"cpu"``.
        max_batch: most images per call; the output tensor is allocated once for this many.

    Raises:
        ConfigError: torch is missing, the device is unavailable, or the interpolation has no exact
            torch equivalent (``area``).
    """

    def __init__(self, spec: PreprocessSpec, device: str = "cuda", max_batch: int = 1) -> None:
        torch = _torch()
        self._t = torch
        if spec.interpolation not in _TORCH_MODES:
            raise ConfigError(f"detector.interpolation {spec.interpolation!r} has no exact torch "
                              f"equivalent; GPU pre-processing supports {', '.join(_TORCH_MODES)}")
        try:
            self.device = torch.device(device)
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False")
            self._blob = torch.empty((max(1, int(max_batch)), 3, spec.height, spec.width),
                                     dtype=torch.float32, device=self.device)
        except RuntimeError as exc:
            raise ConfigError(f"torch device {device!r} cannot be used ({exc}); fix: install a "
                              "CUDA build of torch and check the GPU, or use the CPU path") from exc
        self.spec = spec
        self.max_batch = self._blob.shape[0]
        # Geometry and back-mapping transforms come from the CPU class: one definition of both.
        self._geometry = Preprocessor(spec, 1).geometry
        self._canvas = torch.empty((3, spec.height, spec.width), dtype=torch.float32,
                                   device=self.device)
        std = np.asarray(spec.std, np.float64)
        gain = (spec.scale / std).astype(np.float32).reshape(3, 1, 1)
        offset = (-np.asarray(spec.mean, np.float64) / std).astype(np.float32).reshape(3, 1, 1)
        self._gain = torch.from_numpy(gain).to(self.device)
        self._offset = torch.from_numpy(offset).to(self.device)
        # Images are BGR; an RGB network reads the channels reversed.
        self._rgb = spec.color == "rgb"
        self._mode = _TORCH_MODES[spec.interpolation]

    def to_device(self, image: np.ndarray | ImageView) -> torch.Tensor:
        """Upload a BGR uint8 HxWx3 array (a view is fine) to the device, or an
        :class:`~sense_perception.core.imaging.image_decode.ImageView` (a message buffer in its own
        channel order, uploaded as it lies and put in BGR order on the device)."""
        if isinstance(image, ImageView):
            raw = _upload(self._t, image.array, self.device)
            order = [image.order.index(channel) for channel in "bgr"]
            return raw[:, :, :3] if order == [0, 1, 2] else raw[:, :, order]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageDecodeError("image", f"expected a BGR uint8 HxWx3 array, got {image.dtype} "
                                            f"array of shape {image.shape}")
        return _upload(self._t, image, self.device)

    def decode(self, msg: object, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
        """Decode an Image or CompressedImage-like message to a BGR uint8 HxWx3 device tensor.

        Raises:
            ImageDecodeError: as :func:`~sense_perception.core.imaging.image_decode.decode_any`.
        """
        encoding = getattr(msg, "encoding", None) if not hasattr(msg, "format") else None
        if encoding in _DEVICE_ENCODINGS:
            try:
                _, view = _raw_view(msg, max_pixels)  # validates every field, zero-copy view
            except ImageDecodeError:
                raise
            except Exception as exc:  # keep decode_any's promise: one error type
                raise ImageDecodeError("msg", f"cannot read the message: {exc}") from exc
            raw = _upload(self._t, view, self.device)
            if raw.ndim == 2:
                raw = raw.unsqueeze(2)
            order = _DEVICE_ENCODINGS[encoding]
            if order == (0, 1, 2):
                return raw[:, :, :3]
            return raw[:, :, list(order)]
        return _upload(self._t, decode_any(msg, max_pixels), self.device)

    def geometry(self, width: int, height: int, full_size: tuple[int, int] | None = None
                 ) -> tuple[int, int, np.ndarray]:
        """Resized size and ``[sx, sy, dx, dy]`` transform, exactly as the CPU preprocessor's."""
        return self._geometry(width, height, full_size)

    def __call__(self, images: Sequence[Any]) -> tuple[torch.Tensor, np.ndarray]:
        """Fill the device blob with ``images``: BGR uint8 HxWx3 arrays, ImageViews or device
        tensors. An ImageView's ``full_size`` (a reduced-scale decode) is honoured as on the CPU.

        Returns:
            (blob, transforms): a (N, 3, H, W) float32 view of the internal device tensor, valid
            until the next call, and (N, 4) float64 transforms ``[sx, sy, dx, dy]``.
        """
        torch = self._t
        n = len(images)
        if n > self.max_batch:
            raise ValueError(f"{n} images for a preprocessor of max_batch {self.max_batch}")
        spec = self.spec
        transforms = np.empty((n, 4), np.float64)
        canvas = self._canvas
        with torch.no_grad():
            for i, image in enumerate(images):
                src = image if isinstance(image, torch.Tensor) else self.to_device(image)
                height, width = int(src.shape[0]), int(src.shape[1])
                full_size = image.full_size if isinstance(image, ImageView) else None
                nw, nh, transforms[i] = self.geometry(width, height, full_size)
                dx, dy = int(transforms[i, 2]), int(transforms[i, 3])
                if (nw, nh) != (spec.width, spec.height):
                    canvas.fill_(float(int(round(spec.pad_value))))
                canvas[:, dy:dy + nh, dx:dx + nw] = self._resize(src, nw, nh)
                out = self._blob[i]
                torch.mul(canvas.flip(0) if self._rgb else canvas, self._gain, out=out)
                out.add_(self._offset)
        return self._blob[:n], transforms

    def _resize(self, src: torch.Tensor, nw: int, nh: int) -> torch.Tensor:
        """(3, nh, nw) float resize of an HxWx3 uint8 tensor, rounded like OpenCV's uint8."""
        torch = self._t
        chw = src.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
        if (int(src.shape[0]), int(src.shape[1])) == (nh, nw):
            return chw[0]
        if self._mode == "nearest":
            # torch's float index rounding picks other source pixels than OpenCV at some ratios;
            # OpenCV's rule (floor(i * src/dst) in double) is cheap to apply as a gather.
            return chw[0][:, self._nearest_index(int(src.shape[0]), nh)][
                :, :, self._nearest_index(int(src.shape[1]), nw)]
        out = torch.nn.functional.interpolate(chw, size=(nh, nw), mode=self._mode,
                                              align_corners=False)
        # OpenCV resizes uint8 to uint8: the network sees whole, saturated grey levels.
        return out[0].round_().clamp_(0.0, 255.0)


    def _nearest_index(self, src: int, dst: int) -> torch.Tensor:
        index = np.minimum(np.floor(np.arange(dst) * (1.0 / (dst / src))), src - 1)
        return self._t.from_numpy(index.astype(np.int64)).to(self.device)


def _upload(torch: Any, array: np.ndarray, device: Any) -> torch.Tensor:
    with warnings.catch_warnings():
        # Message buffers are often read-only; the tensor is only read (and copied to the device).
        warnings.simplefilter("ignore", UserWarning)
        host = torch.from_numpy(array)
    if device.type == "cuda":
        return host.to(device, non_blocking=False)
    return host


class IOBindingRunner:
    """Runs an onnxruntime session on a torch tensor in place: the input is bound, not copied.

    Outputs come back as numpy arrays (the decoders run on the CPU).

    Args:
        session: an ``onnxruntime.InferenceSession`` (e.g. ``OnnxModel.session``).
        input_name: the model input to bind.
        output_names: outputs to fetch, in order.
    """

    def __init__(self, session: Any, input_name: str, output_names: Sequence[str]) -> None:
        self.session = session
        self.input_name = input_name
        self.output_names = list(output_names)
        self._binding = session.io_binding()

    def run(self, blob: torch.Tensor) -> list[np.ndarray]:
        """Run the model on ``blob`` (contiguous, on ``cpu`` or ``cuda``); returns the outputs."""
        torch = _torch()
        if not blob.is_contiguous():
            blob = blob.contiguous()
        element = {torch.float32: np.float32, torch.float16: np.float16}.get(blob.dtype)
        if element is None:
            raise ConfigError(f"IO binding supports float32/float16 input tensors, got "
                              f"{blob.dtype}")
        device = blob.device
        if device.type == "cuda":
            # onnxruntime reads on its own stream: the kernels writing the blob must be done.
            torch.cuda.current_stream(device).synchronize()
        self._binding.bind_input(self.input_name, device.type, device.index or 0, element,
                                 tuple(blob.shape), blob.data_ptr())
        # Outputs are bound afresh each run: onnxruntime would otherwise reuse the previous run's
        # output buffers, whose batch size may differ (a batch of 2 cameras, then 1).
        self._binding.clear_binding_outputs()
        for name in self.output_names:
            self._binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(self._binding)
        return self._binding.copy_outputs_to_cpu()


class DeviceDetector:
    """An :class:`ObjectDetector` whose pre-processing runs in torch and whose input is IO-bound.

    A drop-in for the detector in the nodes, the replay and ``detect``
    (:func:`sense_perception.core.detection.detector_setup.build_detector` picks it with
    ``detector.preprocess``): a :class:`~.interface.Detector` that takes the same inputs (BGR
    arrays, ImageViews) plus device tensors from :meth:`decode`; what it reports of the model
    (``label_names``, ``provider``, ``config``, ``decode_floor``...) is the wrapped detector's.
    Decoding of model outputs, NMS and label mapping are the detector's own, so results equal
    :meth:`ObjectDetector.detect` up to the one-grey-level rounding differences of the resize.
    Tiling is not applied on this path.

    Args:
        detector: a built detector; its session is used as is.
        device: torch device; ``cuda`` needs the CUDA or TensorRT provider in the detector.

    Raises:
        ConfigError: torch/device unavailable, or a CUDA device with a CPU-only session.
    """

    def __init__(self, detector: ObjectDetector, device: str = "cuda") -> None:
        if device.startswith("cuda") and detector.provider not in GPU_PROVIDERS:
            raise ConfigError(f"GPU pre-processing on {device!r} needs the detector on the CUDA or "
                              f"TensorRT provider, but it runs on {detector.provider}; fix: "
                              "install the 'gpu' extra or pre-process on the CPU")
        session = detector.session
        if session is None:  # OpenVINO has no onnxruntime session to bind the input to
            raise ConfigError(f"torch pre-processing needs {detector.model_name} on onnxruntime, "
                              f"but it runs on {detector.provider}; fix: set runtime.openvino off "
                              "or detector.preprocess cpu")
        self.detector = detector
        tensor = detector.input_tensor
        self._max_batch = detector.max_batch
        self.pre = TorchPreprocessor(detector.preprocess_spec, device, self._max_batch)
        self.runner = IOBindingRunner(session, tensor.name, detector.output_names)
        self._dtype = getattr(_torch(), _TORCH_DTYPES.get(np.dtype(tensor.dtype), "float32"))
        self._timings: dict[str, float] = {}

    # -- the wrapped detector's facts (the Detector protocol) --------------------------------------

    @property
    def label_names(self) -> list[str]:
        return self.detector.label_names

    @property
    def owned_labels(self) -> tuple[str, ...]:
        return self.detector.owned_labels

    @property
    def model_name(self) -> str:
        return self.detector.model_name

    @property
    def family(self) -> str:
        return self.detector.family

    @property
    def config(self) -> DetectorConfig:
        return self.detector.config

    @property
    def tiling(self) -> Any:
        return self.detector.tiling

    @property
    def tiling_enabled(self) -> bool:
        return self.detector.tiling_enabled

    @property
    def provider(self) -> str:
        return self.detector.provider

    @property
    def providers(self) -> dict[str, str]:
        return self.detector.providers

    @property
    def fallback_reasons(self) -> list[str]:
        return self.detector.fallback_reasons

    @property
    def notes(self) -> list[str]:
        return self.detector.notes

    @property
    def batch_dynamic(self) -> bool:
        return self.detector.batch_dynamic

    @property
    def min_score(self) -> float:
        return self.detector.min_score

    @property
    def decode_floor(self) -> SizeFloor | None:
        return self.detector.decode_floor

    @property
    def preprocess_device(self) -> str:
        """``torch`` and the device the frames are pre-processed on."""
        return f"torch {self.pre.device}"

    @property
    def timings(self) -> dict[str, float]:
        """Milliseconds of the last :meth:`detect` call: ``preprocess`` (upload, resize,
        normalise), ``inference``, ``postprocess``."""
        return self._timings

    def detect_one(self, image: Any) -> Detections:
        """Detect objects in one image."""
        return self.detect([image])[0]

    def detect(self, images: Sequence[Any]) -> list[Detections]:
        """Detect objects in BGR uint8 HxWx3 arrays, ImageViews or tensors from :meth:`decode`.

        Raises:
            ImageDecodeError: an array or ImageView entry is malformed (as
                :meth:`ObjectDetector.detect` says).
        """
        from .detector import check_image

        torch = _torch()
        for index, image in enumerate(images):
            if not isinstance(image, torch.Tensor):
                check_image(index, image)
        low_light = self.detector.config.low_light
        images = [brighten_input(image, low_light) for image in images]  # tensors pass as they are
        results: list[Detections] = []
        timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        for start in range(0, len(images), self._max_batch):
            chunk = images[start:start + self._max_batch]
            t0 = time.perf_counter()
            blob, transforms = self.pre(chunk)
            t1 = time.perf_counter()
            outputs = self.runner.run(blob.to(self._dtype))
            t2 = time.perf_counter()
            results.extend(self.detector.postprocess(outputs, chunk, transforms))
            timings["preprocess"] += (t1 - t0) * 1e3
            timings["inference"] += (t2 - t1) * 1e3
            timings["postprocess"] += (time.perf_counter() - t2) * 1e3
        self._timings = timings
        settings = self.detector.config.duplicates
        results = [suppress_duplicates(d, self.detector.label_names, settings) for d in results]
        # nested boxes re-detected on crops, which the wrapped detector runs (CPU pre-processing)
        return recheck_nested(images, results, settings.nested_recheck_crops,
                              self.detector.detect_crops, settings.nested_containment)

    def decode(self, msg: object) -> torch.Tensor:
        """Decode an image message straight to the device (see :meth:`TorchPreprocessor.decode`)."""
        return self.pre.decode(msg)
