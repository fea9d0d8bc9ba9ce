"""The nodes' warm-up (SECURITY.md R72), ROS-free: which shapes each model is run at, and a
warm-up that raises named with its model and the fix. Fakes stand for the models (the real
bundled ones are warmed in ``test/ros/test_ros_stall_lifecycle.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from sense_perception.core.runtime.warm_up import on_gpu, warm_up_detector, warm_up_model
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
