"""Torch pre-processing (the GPU path) against the CPU path, on a CPU torch device and, where one
exists, on CUDA with the input handed to onnxruntime through IO binding.

The resize/normalise math is device-independent torch code, so its parity with the OpenCV/numpy CPU
path is checked here on every machine with torch; only the CUDA run needs a GPU.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0, "
                                            "CPU build, for the parity test)")

from rosbags.typesys import Stores, get_typestore  # noqa: E402

from sense_perception.core.boxes import pairwise_iou  # noqa: E402
from sense_perception.core.detector import DetectorConfig, ObjectDetector  # noqa: E402
from sense_perception.core.gpu_preprocess import (DeviceDetector, IOBindingRunner,  # noqa: E402
                                                  TorchPreprocessor, cuda_available)
from sense_perception.core.image_decode import decode_any  # noqa: E402
from sense_perception.core.preprocess import Preprocessor, PreprocessSpec  # noqa: E402
from sense_perception.core.runtime import RuntimeOptions  # noqa: E402
from sense_perception.core.types import Detections  # noqa: E402
from sense_perception.errors import ConfigError, ImageDecodeError  # noqa: E402

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
FRAMES = sorted(STREET.glob("*.jpg")) + sorted(STREET.glob("*.png"))
CPU = RuntimeOptions(providers=("CPUExecutionProvider",))
IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
SPECS = {
    # PicoDet: stretch, bicubic, RGB, ImageNet normalisation.
    "stretch_cubic_rgb": PreprocessSpec(416, 416, "rgb", "stretch", scale=1 / 255.0,
                                        interpolation="cubic", **IMAGENET),
    # YOLOX: top-left letterbox, bilinear, BGR 0..255.
    "letterbox_linear_bgr": PreprocessSpec(416, 416, "bgr", "letterbox", 114.0, 1.0,
                                           interpolation="linear"),
    # Ultralytics: centred letterbox, bilinear, RGB 0..1; non-square input.
    "center_linear_rgb": PreprocessSpec(640, 384, "rgb", "letterbox_center", 114.0, 1 / 255.0,
                                        interpolation="linear"),
    "stretch_nearest_bgr": PreprocessSpec(320, 320, "bgr", "stretch", interpolation="nearest"),
}
TS = get_typestore(Stores.ROS2_HUMBLE)
Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    assert len(FRAMES) == 5, f"expected the 5 street frames in {STREET}"
    images = [cv2.imread(str(p)) for p in FRAMES]
    # A small, odd-sized crop exercises upscaling and a non-contiguous source view.
    return images + [images[1][301:478, 603:854]]


@pytest.fixture(scope="module")
def detector() -> ObjectDetector:
    return ObjectDetector(DetectorConfig(model="picodet_s_416"), CPU)


def _levels(blob_a: np.ndarray, blob_b: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """|a - b| in grey levels of the 0..255 input (undoing the per-channel gain)."""
    gain = spec.scale / np.asarray(spec.std, np.float64)  # std is in the network's order
    return np.abs(blob_a.astype(np.float64) - blob_b) / gain.reshape(1, 3, 1, 1)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_blob_matches_cpu_path_to_one_grey_level(name: str, frames: list[np.ndarray]) -> None:
    spec = SPECS[name]
    cpu = Preprocessor(spec, max_batch=len(frames))
    dev = TorchPreprocessor(spec, "cpu", max_batch=len(frames))
    blob_cpu, tr_cpu = cpu(frames)
    blob_dev, tr_dev = dev(frames)
    assert blob_dev.shape == blob_cpu.shape == (len(frames), 3, spec.height, spec.width)
    np.testing.assert_array_equal(tr_dev, tr_cpu)
    levels = _levels(blob_dev.numpy(), blob_cpu, spec)
    # OpenCV resizes with fixed-point weights; torch in float. Both round to whole grey levels,
    # so they can differ by one level at a pixel, never more.
    assert levels.max() <= 1.0 + 1e-3, f"{name}: up to {levels.max():.3f} grey levels apart"
    assert (levels > 0.5).mean() < 0.15, f"{name}: {(levels > 0.5).mean():.1%} pixels differ"
    for i, (sx, sy, dx, dy) in enumerate(tr_cpu):  # letterbox padding: same value (float32)
        h, w = frames[i].shape[:2]
        pad = np.ones((spec.height, spec.width), bool)
        pad[int(dy):int(dy) + round(h * sy), int(dx):int(dx) + round(w * sx)] = False
        np.testing.assert_allclose(blob_dev.numpy()[i][:, pad], blob_cpu[i][:, pad], atol=1e-6)


def test_blob_is_preallocated_and_reused(frames: list[np.ndarray]) -> None:
    dev = TorchPreprocessor(SPECS["stretch_cubic_rgb"], "cpu", max_batch=2)
    first, _ = dev(frames[:2])
    second, _ = dev(frames[2:4])
    assert first.data_ptr() == second.data_ptr()
    with pytest.raises(ValueError, match="max_batch 2"):
        dev(frames[:3])


def _image_msg(bgr: np.ndarray, encoding: str, pad: int = 7) -> object:
    convert = {"bgr8": None, "rgb8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGR2BGRA,
               "rgba8": cv2.COLOR_BGR2RGBA, "mono8": cv2.COLOR_BGR2GRAY}[encoding]
    pixels = bgr if convert is None else cv2.cvtColor(bgr, convert)
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1)
    padded = np.zeros((h, row.shape[1] + pad), np.uint8)  # drivers may pad rows: step > width*c
    padded[:, :row.shape[1]] = row
    return Image(header=Header(stamp=Time(sec=1, nanosec=0), frame_id="cam"), height=h, width=w,
                 encoding=encoding, is_bigendian=0, step=padded.shape[1], data=padded.reshape(-1))


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8"])
def test_decode_raw_on_device_equals_cpu_decode(encoding: str, frames: list[np.ndarray]) -> None:
    msg = _image_msg(frames[4], encoding)
    dev = TorchPreprocessor(SPECS["stretch_cubic_rgb"], "cpu")
    got = dev.decode(msg)
    assert got.dtype == torch.uint8 and tuple(got.shape) == frames[4].shape
    np.testing.assert_array_equal(got.numpy(), decode_any(msg))


def test_decode_compressed_falls_back_to_cpu_decoder(frames: list[np.ndarray]) -> None:
    data = cv2.imencode(".jpg", frames[0])[1].reshape(-1)
    msg = CompressedImage(header=Header(stamp=Time(sec=1, nanosec=0), frame_id="cam"),
                          format="jpeg", data=data)
    got = TorchPreprocessor(SPECS["stretch_cubic_rgb"], "cpu").decode(msg)
    np.testing.assert_array_equal(got.numpy(), decode_any(msg))


def test_decode_bad_message_names_the_field(frames: list[np.ndarray]) -> None:
    msg = _image_msg(frames[4], "rgb8", pad=0)
    msg.step = msg.width * 3 - 1
    with pytest.raises(ImageDecodeError) as info:
        TorchPreprocessor(SPECS["stretch_cubic_rgb"], "cpu").decode(msg)
    assert info.value.field == "step"


def test_area_interpolation_is_refused() -> None:
    spec = PreprocessSpec(416, 416, interpolation="area")
    with pytest.raises(ConfigError, match="area"):
        TorchPreprocessor(spec, "cpu")


def test_io_binding_reads_the_tensor_in_place(detector: ObjectDetector,
                                              frames: list[np.ndarray]) -> None:
    session = detector._model.session
    name = detector._model.inputs[0].name
    runner = IOBindingRunner(session, name, detector._model.output_names)
    blob, _ = TorchPreprocessor(detector.preprocess_spec, "cpu", 2)(frames[:2])
    bound = runner.run(blob)
    plain = session.run(detector._model.output_names, {name: blob.numpy().copy()})
    for a, b in zip(bound, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def _assert_same_detections(a: Detections, b: Detections, what: str) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} detections"
    if len(a) == 0:
        return
    iou = pairwise_iou(a.boxes, b.boxes)
    best = iou.argmax(axis=1)
    assert len(set(best.tolist())) == len(a), f"{what}: detections do not pair one-to-one"
    assert iou[np.arange(len(a)), best].min() > 0.98, what
    np.testing.assert_array_equal(a.labels, b.labels[best])
    np.testing.assert_allclose(a.scores, b.scores[best], atol=0.02)


def test_device_detector_on_cpu_tensor_matches_detector(detector: ObjectDetector,
                                                        frames: list[np.ndarray]) -> None:
    expected = detector.detect(frames)
    got = DeviceDetector(detector, "cpu").detect(frames)
    assert sum(len(d) for d in expected) >= 20  # real street scenes: many cars
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        _assert_same_detections(a, b, f"frame {i}")


def test_cuda_device_needs_a_gpu_provider(detector: ObjectDetector) -> None:
    with pytest.raises(ConfigError, match="CUDA or TensorRT provider"):
        DeviceDetector(detector, "cuda")


def _gpu_reason() -> str:
    if not cuda_available():
        return "no CUDA GPU visible to torch (torch.cuda.is_available() is False)"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install the 'gpu' extra)"
    return ""


@pytest.mark.skipif(bool(_gpu_reason()), reason=_gpu_reason() or "GPU present")
def test_cuda_io_binding_matches_cpu_detections(detector: ObjectDetector,
                                                frames: list[np.ndarray]) -> None:
    gpu = ObjectDetector(DetectorConfig(model="picodet_s_416"),
                         RuntimeOptions(providers=("CUDAExecutionProvider",)))
    assert gpu.provider == "CUDAExecutionProvider", gpu.fallback_reasons
    device_detector = DeviceDetector(gpu, "cuda")
    msgs = [_image_msg(f, "rgb8") for f in frames[:5]]
    on_device = [device_detector.decode(m) for m in msgs]
    assert all(t.is_cuda for t in on_device)
    got = device_detector.detect(on_device)
    for i, (a, b) in enumerate(zip(got, detector.detect(frames[:5]), strict=True)):
        _assert_same_detections(a, b, f"frame {i} (CUDA vs CPU)")
