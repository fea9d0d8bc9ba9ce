"""The Detector protocol: every real detector class honours it, wiring code takes any object that
does, and the model-family registry and the detector set-up build each model once."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from support import FakeDetector
from sense_perception.core.detection import detector as detector_mod
from sense_perception.core.detection.band import band_tiling
from sense_perception.core.detection.decoders import (ALIASES, FAMILIES, canonical_family,
                                                      detector_models, family_input_defaults)
from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector, _input_fields
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.core.detection.gpu_preprocess import DeviceDetector
from sense_perception.core.detection.interface import Detector
from sense_perception.core.detection.multi_model import MultiModelDetector
from sense_perception.core.health.inference_guard import safe_detect
from sense_perception.core.runtime.model_registry import MODELS
from sense_perception.core.runtime.openvino_session import PROVIDER as OPENVINO
from sense_perception.core.runtime.session import RuntimeOptions

CPU = {"runtime.providers": ["CPUExecutionProvider"]}
# Every member of the protocol: its properties and methods (Protocol's own are private).
MEMBERS = sorted(n for n in vars(Detector) if not n.startswith("_"))
FRAME = np.zeros((480, 640, 3), np.uint8)


def test_the_protocol_names_what_callers_use():
    assert {"detect", "detect_one", "label_names", "providers", "provider", "model_name",
            "preprocess_device", "decode_floor", "min_score", "fallback_reasons"} <= set(MEMBERS)


def _check(detector: object) -> None:
    """``detector`` is a Detector, and every member answers with a value of the promised kind."""
    assert isinstance(detector, Detector), type(detector).__name__
    d: Detector = detector  # type: ignore[assignment]
    assert d.label_names and all(isinstance(n, str) for n in d.label_names)
    assert set(d.owned_labels) <= set(d.label_names)
    assert isinstance(d.model_name, str) and isinstance(d.family, str) and d.family
    assert isinstance(d.provider, str) and d.provider in d.providers.values()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.providers.items())
    assert isinstance(d.fallback_reasons, list) and isinstance(d.notes, list)
    assert isinstance(d.batch_dynamic, bool) and isinstance(d.tiling_enabled, bool)
    assert isinstance(d.preprocess_device, str) and 0.0 <= d.min_score <= 1.0
    assert d.decode_floor is None or d.decode_floor(1920, 1080)[0] <= 1920
    assert isinstance(d.config, DetectorConfig)
    (one,) = d.detect([FRAME])
    assert len(d.detect_one(FRAME)) == len(one)
    assert isinstance(d.timings, dict)


@pytest.fixture(scope="module")
def default() -> tuple[Detector, list[str]]:
    """The default detector (PicoDet + the specialist on the band), and the models loaded for it."""
    loaded: list[str] = []
    real = detector_mod.prepare_detector_model

    def counting(path, runtime, name, *args, **kwargs):
        loaded.append(name)
        return real(path, runtime, name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detector_mod, "prepare_detector_model", counting)
        return build_detector(CPU), loaded


def test_every_real_detector_class_honours_the_protocol(default):
    both, _ = default
    assert isinstance(both, MultiModelDetector)
    _check(both)
    for member in both.members:
        assert isinstance(member, ObjectDetector)
        _check(member)
        assert member.providers == {member.model_name: member.provider}
    assert set(both.providers) == {"picodet_s_416", "person_detection_0203"}


def test_device_detector_defines_every_member_itself():
    # torch (and so a DeviceDetector instance) is not on every test machine; its class must still
    # answer every member itself, not through a fallback to the wrapped detector's internals.
    assert not hasattr(DeviceDetector, "__getattr__")
    for name in MEMBERS:
        member = inspect.getattr_static(DeviceDetector, name, None)
        assert isinstance(member, property) or inspect.isfunction(member), name
    source = inspect.getsource(DeviceDetector)
    assert "detector._" not in source  # reads only the detector's public members


def test_device_detector_on_the_torch_cpu_path_honours_the_protocol():
    pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0, CPU "
                                        "build, as `make test` does)")
    detector = ObjectDetector(DetectorConfig(pedestrian_model="none"),
                              RuntimeOptions(providers=("CPUExecutionProvider",)))
    device = DeviceDetector(detector, "cpu")
    _check(device)
    assert device.preprocess_device == "torch cpu" and device.providers == detector.providers
    assert set(device.timings) == {"preprocess", "inference", "postprocess"}


def test_wiring_takes_a_fake_detector():
    general = FakeDetector(rows=((10, 10, 50, 60, 0.8, "car"), (0, 0, 5, 5, 0.6, "pedestrian")),
                           owned_labels=("car",), name="general")
    specialist = FakeDetector(rows=((20, 20, 30, 60, 0.7, "pedestrian"),),
                              owned_labels=("pedestrian",), name="specialist")
    assert isinstance(general, Detector)
    merged = MultiModelDetector([general, specialist])
    _check(merged)
    a, b = merged.detect([FRAME, FRAME])
    assert [merged.label_names[i] for i in a.labels] == ["car", "pedestrian"]
    np.testing.assert_allclose(a.scores, [0.8, 0.7])
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert merged.providers == {"general": "FakeExecutionProvider",
                                "specialist": "FakeExecutionProvider"}
    (result,) = safe_detect(general, [FRAME])
    assert result.error is None and len(result.detections) == 1
    assert general.calls[-1] == 1


def test_pedestrian_specialist_is_built_once(default, monkeypatch):
    built, loaded = default
    # PicoDet twice: the frame's model and its 256x256 form for the nested-box crops
    assert sorted(loaded) == ["person_detection_0203", "picodet_s_416", "picodet_s_416"]
    band = built.members[-1]
    assert band.provider == OPENVINO and band.tiling == band_tiling([0.25, 0.75], None)
    # Where OpenVINO does not take it (off here; a GPU provider elsewhere) it is loaded once too,
    # then cut into tiles of the network's own 864x480.
    loaded = []
    real = detector_mod.prepare_detector_model
    monkeypatch.setattr(detector_mod, "prepare_detector_model",
                        lambda path, runtime, name, *a, **k: loaded.append(name) or
                        real(path, runtime, name, *a, **k))
    onnx = build_detector({**CPU, "runtime.openvino": "off"})
    assert sorted(loaded) == ["person_detection_0203", "picodet_s_416", "picodet_s_416"]
    band = onnx.members[-1]
    assert band.provider == "CPUExecutionProvider"
    assert band.tiling == band_tiling([0.25, 0.75], 864 / 480)


def test_families_are_one_registry():
    assert ALIASES == {"picodet": "gfl", "nanodet": "gfl", "yolo11": "yolov8", "rt-detr": "rtdetr"}
    assert all(canonical_family(alias) == name for alias, name in ALIASES.items())
    for name, cls in FAMILIES.items():
        assert cls.family == name and cls.layout_doc.startswith(name)
        defaults = family_input_defaults(name)
        assert {"color", "resize", "scale", "interpolation"} <= set(defaults)
    # A bundled model's registry input spec is its family's trained input: a custom model of the
    # family gets what the bundled one gets.
    for name in detector_models():
        spec = MODELS[name]
        defaults = family_input_defaults(spec.family)
        assert {k: defaults[k] for k in _input_fields(spec.input)} == _input_fields(spec.input), name
    assert detector_models(general_only=True) == ["picodet_s_416", "yolox_nano"]
    assert "person_detection_0203" in detector_models()


def test_detect_offers_the_general_models_of_the_registry():
    import argparse

    from sense_perception.cli import detect

    parser = detect.add_parser(argparse.ArgumentParser().add_subparsers())
    (model,) = [a for a in parser._actions if a.dest == "model"]
    assert sorted(model.choices) == detector_models(general_only=True)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_defaults_are_a_copy(family):
    defaults = family_input_defaults(family)
    defaults["color"] = "changed"
    assert family_input_defaults(family)["color"] != "changed"


def test_settings_of_a_model_of_your_own_are_never_left_to_a_bundled_model(tmp_path):
    """R75: detector.labels_path and model_family are read only with model_path, and a config
    giving them without it ran the bundled model with its own labels and family, the settings
    taken without a word; they are refused now, naming the fix. ``detect``/``eval --model NAME``
    dropped the config's model_path alone: its model_sha256 then refused the run with an error
    about a key the user had not touched, and its labels and family were left over."""
    import argparse

    from sense_perception.cli.detect import _params
    from sense_perception.errors import ConfigError

    for key, value in (("labels_path", "/data/own_labels.txt"), ("model_family", "yolox")):
        with pytest.raises(ConfigError, match=rf"detector\.{key} is set \('{value}'\) but "
                                              r"detector\.model_path is empty.*fix: clear"):
            DetectorConfig.from_params({f"detector.{key}": value}, "c.yaml")
    config = tmp_path / "own.yaml"
    config.write_text("detector:\n  model_path: /data/own.onnx\n  model_sha256: " + "a" * 64
                      + "\n  labels_path: /data/own_labels.txt\n  model_family: yolox\n")
    params = _params(argparse.Namespace(config=config, node_name="object_detector",
                                        model="yolox_nano", score_threshold=None, tiling=None))
    cfg = DetectorConfig.from_params(params, str(config))
    assert (cfg.model, cfg.model_path, cfg.model_sha256, cfg.labels_path, cfg.model_family) == \
        ("yolox_nano", "", "", "", "")


def test_a_bundled_model_named_beside_a_model_of_your_own_is_refused() -> None:
    """``detector.model: yolox_nano`` beside a ``model_path`` ran the model of the path and never
    the one named, without a word; it is refused, naming the fix. The default name beside a
    path is what every config that sets only the path holds, and stays accepted."""
    from sense_perception.errors import ConfigError

    own = {"detector.model_path": "/data/own.onnx", "detector.labels_path": "/data/own.txt"}
    with pytest.raises(ConfigError, match=r"detector\.model is set \('yolox_nano'\) but "
                                          r"detector\.model_path \(/data/own\.onnx\) replaces.*fix"):
        DetectorConfig.from_params({**own, "detector.model": "yolox_nano"}, "c.yaml")
    cfg = DetectorConfig.from_params({**own, "detector.model": "picodet_s_416"}, "c.yaml")
    assert cfg.model_path == "/data/own.onnx"
