"""detector.preprocess: which pre-processing path the nodes, the replay and ``detect`` get.

Runs without torch too: ``auto`` must stay on the CPU without importing torch where the model is
not on a GPU provider, and ``gpu`` must be refused with the reason and the fix.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
from sense_perception.core.detection.detector_setup import (build_detector, gpu_unavailable_reason,
                                                            with_preprocess)
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.detection.tiling import TilingConfig
from sense_perception.errors import ConfigError

CPU_PARAMS = {"runtime.providers": ["CPUExecutionProvider"]}


def test_auto_on_a_cpu_provider_keeps_the_cpu_path_without_importing_torch():
    code = ("import sys\n"
            "from sense_perception.core.detection.detector_setup import build_detector\n"
            "for p in ({}, {'detector.pedestrian_model': 'none'}):\n"
            "    d = build_detector({'runtime.providers': ['CPUExecutionProvider'], **p})\n"
            "    print(type(d).__name__, d.preprocess_device, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["MultiModelDetector", "cpu", "False",
                                  "ObjectDetector", "cpu", "False"]


def test_gpu_is_refused_with_the_reason_and_the_fix():
    with pytest.raises(ConfigError, match="detector.preprocess is gpu but the model runs on "
                                          "CPUExecutionProvider.*fix: install the 'gpu' extra"):
        build_detector({**CPU_PARAMS, "detector.preprocess": "gpu"})


def test_unknown_choice_is_refused():
    with pytest.raises(ConfigError, match="auto, cpu, gpu, torch_cpu"):
        DetectorConfig(preprocess="cuda")


def test_reasons_name_the_blocker():
    cpu = RuntimeOptions(providers=("CPUExecutionProvider",))
    plain = ObjectDetector(DetectorConfig(), cpu)
    assert "CPUExecutionProvider" in gpu_unavailable_reason(plain)
    tiled = ObjectDetector(DetectorConfig(preprocess="torch_cpu"), cpu,
                           TilingConfig(mode="horizon_bands"))
    assert gpu_unavailable_reason(tiled).startswith("tiling is on")
    with pytest.raises(ConfigError, match="torch_cpu but tiling is on"):
        with_preprocess(tiled)
    assert with_preprocess(ObjectDetector(DetectorConfig(preprocess="cpu"), cpu)).preprocess_device \
        == "cpu"


def test_torch_preprocessing_of_a_model_on_openvino_is_refused_with_the_fix():
    from sense_perception.core.detection.gpu_preprocess import DeviceDetector
    from sense_perception.core.runtime.openvino_session import PROVIDER as OPENVINO

    cpu = RuntimeOptions(providers=("CPUExecutionProvider",))
    specialist = ObjectDetector(DetectorConfig(model="person_detection_0203",
                                               pedestrian_model="none"), cpu)
    assert specialist.provider == OPENVINO and specialist.session is None
    # Was an AttributeError (no session to bind the input to); checked before torch is needed.
    with pytest.raises(ConfigError, match="torch pre-processing needs person_detection_0203 on "
                                          "onnxruntime, but it runs on OpenVINO.*fix: set "
                                          "runtime.openvino off or detector.preprocess cpu"):
        DeviceDetector(specialist, "cpu")
