"""The nodes' warm-up (SECURITY.md R72, R81), ROS-free: which shapes each model is run at, a
warm-up that raises named with its model and the fix, and one that never returns given up on
after ``warm_up_timeout_s``. Fakes stand for the models (the real
bundled ones are warmed in ``test/ros/test_ros_stall_lifecycle.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import threading

import numpy as np
import pytest

from sense_perception.core.runtime.warm_up import (on_gpu, run_bounded, warm_up_detector,
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
                           "has not returned after 600 s (warm_up_timeout_s 600)"), text
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
