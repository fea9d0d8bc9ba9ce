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

from support import assert_detections_close  # noqa: E402
from sense_perception.core.detection.detector import (ClassThresholds, DetectorConfig,
                                                      ObjectDetector)
from sense_perception.core.detection.gpu_preprocess import (DeviceDetector, IOBindingRunner,
                                                            TorchPreprocessor, cuda_available)
from sense_perception.core.imaging.image_decode import decode_any
from sense_perception.core.detection.preprocess import Preprocessor, PreprocessSpec
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.types import Detections
from sense_perception.errors import ConfigError, ImageDecodeError

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
    # Raw scores at the raw operating point (cars 0.3, the rest 0.35): the tolerances below were
    # measured on them (the calibration's slope would magnify the two resizes' differences).
    config = DetectorConfig(model="picodet_s_416", calibrated_scores=False, score_threshold=0.35,
                            class_thresholds=ClassThresholds.unset(car=0.3))
    return ObjectDetector(config, CPU)


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
    # The next call with another batch size (one camera after two) gets outputs of its own size.
    single, _ = TorchPreprocessor(detector.preprocess_spec, "cpu", 1)(frames[2:3])
    bound = runner.run(single)
    plain = session.run(detector._model.output_names, {name: single.numpy().copy()})
    for a, b in zip(bound, plain, strict=True):
        assert a.shape[0] == 1
        np.testing.assert_array_equal(a, b)


def _assert_same_detections(a: Detections, b: Detections, what: str) -> None:
    # torch resizes in float, OpenCV in fixed point: up to 15 % of the pixels one grey level apart
    # (the blob test above; 10 % with the bilinear default), which moved boxes of the street frames
    # by up to 4.3 px on a 384 px truck; paired boxes kept IoU >= 0.97, except one car scored 0.32
    # whose bottom edge moved 5.5 px (IoU 0.88); scores within 0.078 (measured). Low-scored boxes
    # are the least stable: IoU 0.85 and 0.1 in score hold that, for other CPUs and CUDA.
    assert_detections_close(a, b, min_iou=0.85, score=0.1, threshold=(0.3, 0.35), what=what)


def test_device_detector_on_cpu_tensor_matches_detector(detector: ObjectDetector,
                                                        frames: list[np.ndarray]) -> None:
    expected = detector.detect(frames)
    got = DeviceDetector(detector, "cpu").detect(frames)
    assert sum(len(d) for d in expected) >= 20  # real street scenes: many cars
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        _assert_same_detections(a, b, f"frame {i}")


@pytest.mark.parametrize("side", [0, 256])
def test_device_detector_re_detects_nested_boxes_on_crops_as_the_cpu_path_does(side: int) -> None:
    """``detector.duplicates.nested_recheck_crops`` on the torch path: the crops are cut from the
    input (an array, or a tensor from :meth:`DeviceDetector.decode`) and detected by the wrapped
    detector, at ``nested_recheck_input`` (0: the model's 416, or the default's 256). Two
    developer-set frames with nested car boxes: the check drops boxes there as on the CPU path,
    and what is left matches the CPU path within the tolerance above."""
    from dataclasses import replace

    from sense_perception.core.detection.duplicates import DuplicateSettings

    dev = STREET.parent / "street_labelled" / "pandaset_seq002_front"
    images = [cv2.imread(str(dev / f"{key}.jpg")) for key in ("15", "33")]
    base = DetectorConfig(model="picodet_s_416", calibrated_scores=False, score_threshold=0.35,
                          class_thresholds=ClassThresholds.unset(car=0.3))
    off = ObjectDetector(base, CPU)
    on = ObjectDetector(replace(base, duplicates=DuplicateSettings(
        nested_recheck_crops=8, nested_recheck_input=side)), CPU)
    assert (on._crop_model is not None) is bool(side)
    device_on = DeviceDetector(on, "cpu")
    without = DeviceDetector(off, "cpu").detect(images)
    expected = on.detect(images)
    tensors = [device_on.decode(_image_msg(image, "bgr8")) for image in images]
    for inputs in (images, tensors):
        got = device_on.detect(inputs)
        assert sum(map(len, got)) < sum(map(len, without)), "no nested box was dropped"
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
    gpu = ObjectDetector(detector.config,  # the same settings: raw scores
                         RuntimeOptions(providers=("CUDAExecutionProvider",)))
    assert gpu.provider == "CUDAExecutionProvider", gpu.fallback_reasons
    device_detector = DeviceDetector(gpu, "cuda")
    msgs = [_image_msg(f, "rgb8") for f in frames[:5]]
    on_device = [device_detector.decode(m) for m in msgs]
    assert all(t.is_cuda for t in on_device)
    got = device_detector.detect(on_device)
    for i, (a, b) in enumerate(zip(got, detector.detect(frames[:5]), strict=True)):
        _assert_same_detections(a, b, f"frame {i} (CUDA vs CPU)")


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "rgba8"])
def test_image_views_on_the_torch_path_match_bgr_arrays(encoding: str, detector: ObjectDetector,
                                                        frames: list[np.ndarray]) -> None:
    # The nodes and the replay hand the detector zero-copy views of the message buffer (with row
    # padding here); the torch path must read them as the BGR image they show.
    from sense_perception.core.imaging.image_decode import decode_view

    device = DeviceDetector(detector, "cpu")
    frame = frames[1]
    msg = _image_msg(frame, encoding)
    step = msg.step + 8  # pad every row
    padded = np.zeros((msg.height, step), np.uint8)
    padded[:, :msg.step] = np.asarray(msg.data).reshape(msg.height, msg.step)
    msg = Image(header=msg.header, height=msg.height, width=msg.width, encoding=encoding,
                is_bigendian=0, step=step, data=padded.reshape(-1))
    view = decode_view(msg)
    assert view.order != "bgr" or encoding == "bgr8"
    _assert_same_detections(device.detect([view])[0], device.detect([frame])[0], encoding)


def test_reduced_jpeg_view_on_the_torch_path_reports_full_image_pixels(
        detector: ObjectDetector, frames: list[np.ndarray]) -> None:
    from sense_perception.core.imaging.image_decode import ImageView

    device = DeviceDetector(detector, "cpu")
    half = np.ascontiguousarray(frames[1][::2, ::2])
    plain = device.detect([half])[0]
    scaled = device.detect([ImageView(half, "bgr", (half.shape[1] * 2, half.shape[0] * 2))])[0]
    assert len(plain) > 3
    np.testing.assert_array_equal(scaled.labels, plain.labels)
    np.testing.assert_allclose(scaled.boxes, plain.boxes * 2, rtol=1e-5, atol=1e-3)


def test_device_detector_stands_in_for_the_detector(detector: ObjectDetector) -> None:
    device = DeviceDetector(detector, "cpu")
    assert device.preprocess_device == "torch cpu" and detector.preprocess_device == "cpu"
    assert device.label_names == detector.label_names and device.provider == detector.provider
    assert device.decode_floor is not None and device.config is detector.config
    with pytest.raises(ImageDecodeError, match=r"images\[0\]"):
        device.detect([np.zeros((10, 10), np.uint8)])


def test_build_detector_torch_cpu_and_a_replay_through_it(tmp_path: Path) -> None:
    from replay_helpers import FRONT, SAMPLE_BAG, WINDSHIELD, read_output

    from sense_perception.core.detection.detector_setup import build_detector
    from sense_perception.replay.engine import ReplayOptions, Replayer

    # PicoDet alone: the torch path is the general model's (the pedestrian specialist tiles the
    # horizon band, which that path does not do).
    params = {"runtime.providers": ["CPUExecutionProvider"], "detector.pedestrian_model": "none"}
    torch_path = build_detector({**params, "detector.preprocess": "torch_cpu"})
    assert isinstance(torch_path, DeviceDetector)
    cpu_path = build_detector({**params, "detector.preprocess": "cpu"})
    assert isinstance(cpu_path, ObjectDetector)
    outputs = {}
    for name, det in (("torch", torch_path), ("cpu", cpu_path)):
        out = tmp_path / name
        result = Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[FRONT, WINDSHIELD]),
                          detector=det).run()
        assert result.complete and result.summary["frames"] == 5
        outputs[name] = [m.ros_msg for m in read_output(out / "bag")  # 2-D (not detections_3d)
                         if m.channel.topic.endswith(("/detections", "/diagnostics"))]
    diag = [m for m in outputs["torch"] if hasattr(m, "status")]
    # the object_detector pipeline's status (the cameras' own health statuses sit beside it)
    statuses = [s for s in diag[-1].status if s.name.endswith(": object_detector")] if diag else []
    assert statuses and all(dict((v.key, v.value) for v in s.values)["preprocess"] == "torch cpu"
                            for s in statuses)
    dets = {name: [m for m in msgs if hasattr(m, "detections")] for name, msgs in outputs.items()}
    assert len(dets["torch"]) == len(dets["cpu"]) == 5
    for a, b in zip(dets["torch"], dets["cpu"], strict=True):
        assert (a.header.frame_id, a.header.stamp.sec) == (b.header.frame_id, b.header.stamp.sec)
        assert abs(len(a.detections) - len(b.detections)) <= 1
        centres_b = np.array([[d.bbox.center.position.x, d.bbox.center.position.y]
                              for d in b.detections])
        for d in a.detections:
            if d.results[0].hypothesis.score < 0.5:
                continue
            gap = np.hypot(*(centres_b - [d.bbox.center.position.x,
                                          d.bbox.center.position.y]).T).min()
            # The same one-grey-level differences as above: centres within 3 % of the box size
            # or 4 px (measured: 3.3 px on a small car).
            allowed = max(4.0, 0.03 * max(d.bbox.size_x, d.bbox.size_y))
            assert gap < allowed, f"{d.results[0].hypothesis.class_id} moved {gap:.1f} px"
