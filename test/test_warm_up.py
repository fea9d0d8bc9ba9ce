"""The nodes' warm-up (SECURITY.md R72, R81), ROS-free: which shapes each model is run at, a
warm-up that raises named with its model and the fix, one that never returns given up on after
``warm_up_timeout_s``, and on a GPU provider every input shape the detector's settings can feed
its networks (tiles, the pedestrian band, re-check crops). Fakes stand for the models (the real
bundled ones are warmed in ``test/ros/test_ros_stall_lifecycle.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from sense_perception.core.detection.band import band_tiling
from sense_perception.core.detection.tiling import MAX_AUTO_COLUMNS, TilingConfig
from sense_perception.core.runtime.warm_up import (batch_sizes, detector_feeds, images_per_frame,
                                                   on_gpu, run_bounded, warm_up_detector,
                                                   warm_up_model)
from sense_perception.errors import ModelError


@dataclass
class _Spec:
    name: str
    shape: tuple
    dtype: Any = np.float32


class _Model:
    """An OnnxModel stand-in recording the feeds it runs."""

    def __init__(self, shape: tuple, provider: str = "CPUExecutionProvider", fail: bool = False):
        self.name, self.provider, self.fail = "iris_landmark", provider, fail
        self.inputs = [_Spec("input", shape)]
        self.runs: list[tuple] = []

    def run(self, feeds: dict) -> list:
        if self.fail:
            raise RuntimeError("TensorRT EP failed to create engine from network\nmore lines")
        self.runs.append(feeds["input"].shape)
        return []


class _Detector:
    def __init__(self, provider: str) -> None:
        self.model_name, self.input_size = "picodet_s_416", (416, 320)
        self.providers = {"picodet_s_416": provider}
        self.batches: list[list[tuple]] = []
        self.config = SimpleNamespace(duplicates=SimpleNamespace(nested_recheck_crops=0,
                                                                 nested_recheck_input=0))
        self.tiling, self.max_batch, self.crop_detector = None, 8, None
        self.blank_runs: list[int] = []

    def run_blank(self, batch: int) -> None:
        self.blank_runs.append(batch)

    def detect(self, images: list) -> list:
        self.batches.append([image.shape for image in images])
        return [[] for _ in images]


def test_the_cpu_runs_each_model_once_a_gpu_also_at_its_largest_input():
    assert not on_gpu(["CPUExecutionProvider", "OpenVINO (CPU)"])
    assert on_gpu(["CPUExecutionProvider", "TensorrtExecutionProvider"])
    cpu, gpu = _Detector("CPUExecutionProvider"), _Detector("CUDAExecutionProvider")
    warm_up_detector(cpu, 3)
    warm_up_detector(gpu, 3)
    assert cpu.batches == [[(320, 416, 3)]]  # one blank frame of the network's input size
    assert gpu.batches == [[(320, 416, 3)], [(320, 416, 3)] * 3]  # and one per camera
    assert cpu.blank_runs == [] and gpu.blank_runs == [1, 3]  # and its network at 1 and 3
    wrapped = _Detector("CPUExecutionProvider")  # pre-processing on the GPU wraps the detector
    outer = type("DeviceDetector", (), {"detector": wrapped, "providers": wrapped.providers,
                                        "detect": wrapped.detect})()
    warm_up_detector(outer, 1)
    assert wrapped.batches == [[(320, 416, 3)]]
    model = _Model((None, 3, 64, 64))
    warm_up_model(model)
    assert model.runs == [(1, 3, 64, 64), (2, 3, 64, 64)]  # a free batch axis: 1 and 2


def test_a_warm_up_that_raises_names_the_model_and_the_fix():
    with pytest.raises(ModelError) as caught:
        warm_up_model(_Model((1, 3, 64, 64), fail=True))
    text = str(caught.value)
    assert text.startswith("the warm-up inference of iris_landmark on a blank input of batch 1 "
                           "failed before the node reported ready (RuntimeError: TensorRT EP "
                           "failed to create engine from network); fix: check the model file "
                           "and runtime.providers"), text


class _Clock:
    """A monotonic clock each read of which moves a minute on (no test waits for a bound)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


def test_a_warm_up_that_never_returns_fails_after_warm_up_timeout_s_naming_the_model():
    """R81: a model hung in its warm-up held configure, and the node's executor, for ever."""
    entered, release, late = threading.Event(), threading.Event(), []

    def hung(progress: Any) -> float:
        progress.step("picodet_s_416", "1 blank 416x416 frame(s)")
        entered.set()
        release.wait(30)
        late.append("returned")
        return 1.0

    with pytest.raises(ModelError) as caught:
        run_bounded(hung, 600.0, clock=_Clock())
    text = str(caught.value)
    assert text.startswith("the warm-up inference of picodet_s_416 on 1 blank 416x416 frame(s) "
                           "has not returned after 10 min (warm_up_timeout_s 600)"), text
    assert "raise warm_up_timeout_s" in text and "runtime.trt_cache_dir" in text, text
    assert entered.is_set() and not late
    # a stop (Ctrl-C) ends the wait at once, whatever the bound
    with pytest.raises(ModelError, match="stopped"):
        run_bounded(hung, 600.0, stopping=lambda: True)
    release.set()  # both return after the waits gave up on them: nothing reads their results
    # a warm-up that returns or raises within its bound: its seconds, its own error
    assert run_bounded(lambda progress: 0.25, 600.0) == 0.25
    with pytest.raises(ModelError, match="TensorRT EP failed to create engine"):
        run_bounded(lambda progress: warm_up_model(_Model((1, 3, 8, 8), fail=True), None,
                                                   progress) or 0.0, 600.0)


def test_the_shapes_a_detectors_settings_can_feed_its_networks():
    """R81: a pure function of the settings, whatever the cameras' resolution."""
    assert images_per_frame(None) == 1
    assert images_per_frame(TilingConfig()) == 1  # tiling.mode off: the whole frame
    # the whole frame and up to 64 tiles across the band (columns 0: as the width asks)
    assert images_per_frame(TilingConfig(mode="horizon_bands")) == 1 + MAX_AUTO_COLUMNS
    assert images_per_frame(TilingConfig(mode="horizon_bands", columns=3, rows=2)) == 7
    assert images_per_frame(band_tiling((0.25, 0.75), None)) == 1  # OpenVINO: one band tile
    assert images_per_frame(band_tiling((0.25, 0.75), 864 / 480)) == MAX_AUTO_COLUMNS
    assert batch_sizes(1, 1, 8) == (1,)
    assert batch_sizes(2, 1, 8) == (1, 2)
    assert batch_sizes(2, 1 + MAX_AUTO_COLUMNS, 8) == (1, 8)  # calls of at most max_batch
    assert batch_sizes(4, 7, 1) == (1,)  # a network without a batch axis


class _Recorder:
    """An onnxruntime session stand-in on a GPU provider recording each input shape it is run
    at: it runs the real model for the blank frames of ``detect`` (one and two) and only
    records the rest (a warm-up's outputs are not read)."""

    def __init__(self, model: Any) -> None:
        self.model, self.provider, self.shapes = model, "TensorrtExecutionProvider", []
        self.inputs, self.output_names = model.inputs, model.output_names
        self.fallback_reasons, self.options = model.fallback_reasons, model.options

    def run(self, feeds: dict) -> list:
        (blob,) = feeds.values()
        self.shapes.append(tuple(blob.shape))
        return self.model.run(feeds) if blob.shape[0] <= 2 else []


def test_on_a_gpu_the_warm_up_runs_every_network_at_every_shape_the_settings_can_feed():
    """R81: TensorRT builds an engine per input shape; the warm-up ran the detector on blank
    frames of its network's size, one tile each and no re-check crop, so the first real frame
    built the engines of the tiles, the band's tiles and the re-check crops inside a batch the
    stall watch times."""
    from sense_perception.config import bundled_config, load_params
    from sense_perception.core.detection.detector_setup import build_detector

    params = {**load_params(bundled_config("perception"), "object_detector"),
              "tiling.mode": "horizon_bands", "runtime.openvino": "off",
              "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}
    detector = build_detector(params, "test")
    general, band = detector.members
    crop = general.crop_detector
    recorders = {}
    for net in (general, crop, band):
        net._model = recorders[net.model_name, net.input_size] = _Recorder(net._model)
    warm_up_detector(detector, 2)
    feeds = {(f.model, f.width, f.height): f.batches for f in detector_feeds(detector, 2)}
    assert feeds == {("picodet_s_416", 416, 416): (1, 8),  # whole frame and tiles
                     ("picodet_s_416 at nested_recheck_input 256", 256, 256): (1, 2),
                     ("person_detection_0203", 864, 480): (1,)}  # band tiles, no batch axis
    shapes = {key: set(r.shapes) for key, r in recorders.items()}
    assert {(b, 3, 416, 416) for b in (1, 2, 8)} <= shapes["picodet_s_416", (416, 416)]
    assert {(1, 3, 256, 256), (2, 3, 256, 256)} <= shapes["picodet_s_416", (256, 256)]
    assert shapes["person_detection_0203", (864, 480)] == {(1, 3, 480, 864)}
    # on the CPU nothing is built per shape: one blank frame through the detector, as before
    for recorder in recorders.values():
        recorder.provider, recorder.shapes = "CPUExecutionProvider", []
    warm_up_detector(detector, 2)
    assert {key: r.shapes for key, r in recorders.items()} == {
        ("picodet_s_416", (416, 416)): [(1, 3, 416, 416)],
        ("picodet_s_416", (256, 256)): [],
        ("person_detection_0203", (864, 480)): [(1, 3, 480, 864)]}


def test_a_hung_model_load_is_named_by_the_loader_it_hangs_in(monkeypatch):
    """R85: a node's model load runs bounded as its warm-up (``run_bounded``); the loaders say
    which model they load and how (an onnxruntime session, an OpenVINO compile), so the error
    of one that never returns names it, the time waited and the fix. Outside a bounded job
    (a command-line tool) they report to nobody."""
    from sense_perception.core.runtime import openvino_session
    from sense_perception.core.runtime.progress import current, loading

    loading("yunet", "an onnxruntime session on CPUExecutionProvider")  # no job: a no-op
    assert current() is None
    entered, release = threading.Event(), threading.Event()

    class _HungCore:
        def read_model(self, path: str) -> Any:
            entered.set()
            release.wait(30)
            raise RuntimeError("released")

    monkeypatch.setattr(openvino_session, "_core", lambda: _HungCore())
    try:
        with pytest.raises(ModelError) as caught:
            run_bounded(lambda progress: openvino_session.OpenVinoModel(
                "/nonexistent/ped.xml", name="pedestrian_specialist"), 600.0, clock=_Clock())
    finally:
        release.set()
    text = str(caught.value)
    assert text.startswith("the load of pedestrian_specialist (OpenVINO's read and compile_model "
                           "on the CPU) has not returned after 10 min (warm_up_timeout_s 600)"), text
    assert "raise warm_up_timeout_s" in text and "OpenVINO compiles" in text, text
    assert entered.is_set() and current() is None  # the caller's thread reports to nobody
    # a load that returns in its bound: what it built
    assert run_bounded(lambda progress: "built", 600.0) == "built"


def test_a_hung_gallery_read_at_load_names_the_gallery_fix_not_the_models(tmp_path, monkeypatch):
    """R86: R85 bounds driver_monitor's gallery read at load as a model's load step, and its error
    gave a model's fix (a TensorRT engine, "list CPUExecutionProvider alone"), which cannot help
    a gallery on a disk that does not answer or behind a driver command's lock. It names the
    gallery, its path and what to check now. (No model loads: the engine is a stand-in.)"""
    from sense_perception.face.gallery import GalleryStore
    from sense_perception.face.pipeline import DriverIdentifier
    from sense_perception.face.settings import DriverMonitorSettings

    path = tmp_path / "gallery.json"
    settings = DriverMonitorSettings.from_params(
        {"gallery.path": str(path), "attention.enabled": False}, "test")
    entered, release = threading.Event(), threading.Event()

    def hung_read(self: Any, *args: Any, **kwargs: Any) -> list[Any]:
        entered.set()
        release.wait(30)
        return []

    monkeypatch.setattr(GalleryStore, "drivers", hung_read)
    try:
        with pytest.raises(ModelError) as caught:
            run_bounded(lambda progress: DriverIdentifier(settings, GalleryStore(path),
                                                          engine=SimpleNamespace()),
                        600.0, clock=_Clock())
    finally:
        release.set()
    text = str(caught.value)
    assert entered.is_set(), text
    assert text.startswith(f"the load of the gallery (reading {path}"), text
    assert f"check that the disk of gallery.path ({path}) answers" in text, text
    assert "CPUExecutionProvider" not in text and "TensorRT" not in text, text
