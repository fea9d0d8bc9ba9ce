"""Faults at model load: a missing or altered weight file, and GPU execution providers that fail.

Weight files are never touched: each test copies the real file into a temp directory (altering the
copy where needed) and points the registry at it.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from replay_helpers import FRONT, SAMPLE_BAG, WINDSHIELD, read_output

from sense_perception.cli.main import main
from sense_perception.core.runtime import model_registry, session as runtime
from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
from sense_perception.core.runtime.model_registry import MODELS
from sense_perception.core.runtime.session import OnnxModel, RuntimeOptions
from sense_perception.errors import ModelError
from sense_perception.face import model_fold
from sense_perception.face.attention.eyes import EyeOpenness
from sense_perception.face.attention.head_pose import canonical_face
from sense_perception.face.attention.mesh import FaceMesh
from sense_perception.face.pipeline import DriverIdentifier, FaceEngine
from sense_perception.face.sface import SFaceEmbedder
from sense_perception.face.yunet import YuNetDetector

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STREET = DATA / "street" / "pandaset_seq002_front_camera_00.jpg"
PORTRAIT = DATA / "faces" / "obama_1_official_portrait_2012.jpg"
CPU = RuntimeOptions(providers=("CPUExecutionProvider",), intra_op_threads=1)
GPU_FIRST = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
REAL_PATHS = {name: spec.path() for name, spec in MODELS.items()}


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point every registry model at ``tmp/weights/<file>``; returns a function that puts a copy
    of model ``name`` there, optionally altered, and gives its path."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(model_registry.ModelSpec, "path",
                        lambda self: folder / REAL_PATHS[self.name].name)
    monkeypatch.setenv(model_fold.CACHE_ENV, str(tmp_path / "fold_cache"))

    def put(name: str, alter: str = "") -> Path:
        target = folder / REAL_PATHS[name].name
        shutil.copyfile(REAL_PATHS[name], target)
        data = bytearray(target.read_bytes())
        if alter == "flip":  # one bit of one weight: the model still loads, silently wrong
            data[len(data) // 2] ^= 0x01
        elif alter == "truncate":
            data = data[: len(data) // 2]
        target.write_bytes(bytes(data))
        return target

    return put


def _assert_names_file_and_fix(exc: pytest.ExceptionInfo, path: Path, word: str) -> None:
    message = str(exc.value)
    assert str(path) in message, message
    assert word in message, message
    assert "fix: reinstall" in message, message


@pytest.mark.parametrize("name", ["picodet_s_416", "yolox_nano"])
def test_detector_model_missing(weights, name: str) -> None:
    expected = model_registry.ModelSpec.path(MODELS[name])
    with pytest.raises(ModelError) as exc:
        ObjectDetector(DetectorConfig(model=name), CPU)
    _assert_names_file_and_fix(exc, expected, "is missing")


@pytest.mark.parametrize("alter", ["flip", "truncate"])
def test_detector_model_altered(weights, alter: str) -> None:
    path = weights("picodet_s_416", alter)
    with pytest.raises(ModelError) as exc:
        ObjectDetector(DetectorConfig(model="picodet_s_416"), CPU)
    _assert_names_file_and_fix(exc, path, "is altered")
    assert MODELS["picodet_s_416"].sha256 in str(exc.value)


def test_detector_loads_from_an_intact_copy(weights) -> None:
    """Control: the same redirection with an unaltered copy loads and detects (the checks above
    fail because of the fault, not because of the redirection)."""
    weights("picodet_s_416")
    detector = ObjectDetector(DetectorConfig(model="picodet_s_416"), CPU)
    dets = detector.detect_one(cv2.imread(str(STREET)))
    assert "car" in {detector.label_names[i] for i in dets.labels}


@pytest.mark.parametrize("name,build", [
    ("yunet", lambda: YuNetDetector(options=CPU)), ("sface", lambda: SFaceEmbedder(CPU)),
    ("face_mesh", lambda: FaceMesh(CPU)), ("iris_landmark", lambda: EyeOpenness(CPU)),
    ("canonical_face", canonical_face)])
def test_face_model_missing_or_altered(weights, name: str, build) -> None:
    expected = model_registry.ModelSpec.path(MODELS[name])
    with pytest.raises(ModelError) as exc:
        build()
    _assert_names_file_and_fix(exc, expected, "is missing")
    weights(name, "flip")
    with pytest.raises(ModelError) as exc:
        build()
    _assert_names_file_and_fix(exc, expected, "is altered")


def test_driver_pipeline_refuses_an_altered_attention_model(weights, tmp_path: Path) -> None:
    """The node configures through this: an altered mesh leaves it unconfigured, named; with
    attention off the same files are not needed."""
    weights("yunet")
    weights("sface")
    weights("iris_landmark")
    weights("canonical_face")
    path = weights("face_mesh", "flip")
    params = {"gallery.path": str(tmp_path / "g.json"), "runtime.providers": ["CPUExecutionProvider"]}
    with pytest.raises(ModelError) as exc:
        DriverIdentifier.from_params(params, "test")
    _assert_names_file_and_fix(exc, path, "is altered")
    assert DriverIdentifier.from_params({**params, "attention.enabled": False}, "test").attention is None


def test_valid_fold_cache_does_not_hide_an_altered_source(weights, tmp_path: Path) -> None:
    """The fp32 fold cache is keyed by the source's expected hash; the source is checked anyway."""
    weights("yunet")
    weights("sface")
    engine = FaceEngine(options=CPU)  # folds both into the cache
    assert len(engine.detect(cv2.imread(str(PORTRAIT)))) == 1
    assert len(list((tmp_path / "fold_cache").glob("*.onnx"))) == 2
    path = weights("sface", "flip")
    with pytest.raises(ModelError) as exc:
        FaceEngine(options=CPU)
    _assert_names_file_and_fix(exc, path, "is altered")


def test_driver_cli_reports_an_altered_face_model(weights, tmp_path: Path, capsys) -> None:
    weights("yunet")
    path = weights("sface", "truncate")
    code = main(["driver", "identify", str(PORTRAIT), "--gallery", str(tmp_path / "g.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and str(path) in err and "altered" in err and "reinstall" in err
    assert "Traceback" not in err


def test_driver_identifier_refuses_to_start_with_a_missing_model(weights, tmp_path: Path) -> None:
    weights("sface")
    with pytest.raises(ModelError, match="yunet.*is missing"):
        DriverIdentifier.from_params({"gallery.path": str(tmp_path / "g.json"),
                                      "runtime.providers": ["CPUExecutionProvider"]}, "test")


def test_replay_with_a_missing_detector_model_fails_before_writing(weights, tmp_path: Path,
                                                                  capsys) -> None:
    out = tmp_path / "out"
    code = main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", FRONT])
    err = capsys.readouterr().err
    assert code == 2
    assert "picodet_s_416_coco.onnx" in err and "missing" in err and "reinstall" in err
    assert not out.exists() or not any(out.iterdir())  # no partial output to mistake for results


# -- GPU execution providers -------------------------------------------------------------------------


def _gpu_unavailable(*names: str) -> None:
    available = set(ort.get_available_providers())
    if available & set(names):
        pytest.skip(f"this onnxruntime build has {sorted(available & set(names))}")


def test_unavailable_gpu_providers_fall_back_to_cpu_with_reasons(caplog) -> None:
    _gpu_unavailable("TensorrtExecutionProvider", "CUDAExecutionProvider")
    caplog.set_level(logging.INFO, logger="sense_perception")
    model = OnnxModel(MODELS["yolox_nano"].verified_path(), RuntimeOptions(providers=GPU_FIRST),
                      name="yolox_nano")
    assert model.provider == "CPUExecutionProvider"
    assert len(model.fallback_reasons) == 2
    for provider, reason in zip(GPU_FIRST[:2], model.fallback_reasons, strict=True):
        assert reason.startswith(f"yolox_nano: {provider} skipped: not available")
        assert reason in caplog.text  # logged, not only stored
    outputs = model.run({model.inputs[0].name: np.zeros((1, 3, 416, 416), np.float32)})
    assert outputs[0].shape[0] == 1


def test_a_tensorrt_engine_cache_others_could_write_is_not_given_to_tensorrt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """TensorRT runs the engines it finds in its cache folder, unchecked. The folder was made
    with the umask (0777 under umask 0, parents too) and used whoever owned it and whoever could
    write it: another user could swap in an engine of their own. It is made 0700 now, and one
    that others may write (or another user's) is not used, with a warning naming why."""
    import os
    import stat

    given: list[dict] = []

    def session(source, sess_options=None, providers=()):
        for p in providers:
            if isinstance(p, tuple) and p[0] == "TensorrtExecutionProvider":
                given.append(p[1])
                raise RuntimeError("TensorRT is not in this build")  # then CPU, as on a bare host
        return real_session(source, sess_options=sess_options, providers=providers)

    real_session = ort.InferenceSession
    monkeypatch.setattr(runtime.ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime.ort, "InferenceSession", session)

    def options_for(folder: Path) -> dict:
        given.clear()
        model = OnnxModel(MODELS["yolox_nano"].verified_path(), RuntimeOptions(
            providers=("TensorrtExecutionProvider",), trt_cache_dir=str(folder)), name="detector")
        assert model.provider == "CPUExecutionProvider"
        return given[0]

    new = tmp_path / "cache" / "trt"
    old = os.umask(0)
    try:
        entry = options_for(new)
    finally:
        os.umask(old)
    assert entry["trt_engine_cache_path"] == str(new) and entry["trt_engine_cache_enable"]
    for folder in (new.parent, new):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    caplog.set_level(logging.WARNING, logger="sense_perception")
    entry = options_for(shared)
    assert not entry.get("trt_engine_cache_enable") and "trt_engine_cache_path" not in entry
    assert f"TensorRT engine cache {shared} is not used: other users may write it" in caplog.text
    if os.geteuid() == 0:  # another user's folder (chown needs root)
        shared.chmod(0o700)
        os.chown(shared, 4242, 4242)
        entry = options_for(shared)
        assert "trt_engine_cache_path" not in entry
        assert "belongs to user id 4242" in caplog.text


def test_gpu_provider_whose_session_creation_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """As when onnxruntime-gpu is installed but libcudnn is missing or no GPU is present."""
    real_session = ort.InferenceSession
    attempts: list[list[str]] = []

    def session(source, sess_options=None, providers=()):
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        attempts.append(names)
        if "CUDAExecutionProvider" in names:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected ; GPU=0")
        return real_session(source, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(runtime.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime.ort, "InferenceSession", session)
    model = OnnxModel(MODELS["yolox_nano"].verified_path(),
                      RuntimeOptions(providers=("CUDAExecutionProvider",)), name="detector")
    assert attempts == [["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]]
    assert model.provider == "CPUExecutionProvider"
    [reason] = model.fallback_reasons
    assert "CUDAExecutionProvider skipped: session creation failed" in reason
    assert "no CUDA-capable device" in reason


def test_gpu_provider_dropped_silently_by_onnxruntime_is_reported(monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """onnxruntime accepts a provider it cannot load and runs on CPU; the drop is still recorded."""
    _gpu_unavailable("CUDAExecutionProvider")
    monkeypatch.setattr(runtime.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        model = OnnxModel(MODELS["yolox_nano"].verified_path(),
                          RuntimeOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider")),
                          name="detector")
    assert model.provider == "CPUExecutionProvider"
    [reason] = model.fallback_reasons
    assert "CUDAExecutionProvider skipped: onnxruntime dropped it" in reason


def test_detector_and_face_models_work_after_gpu_fallback() -> None:
    _gpu_unavailable("TensorrtExecutionProvider", "CUDAExecutionProvider")
    options = RuntimeOptions(providers=GPU_FIRST, intra_op_threads=1)
    detector = ObjectDetector(DetectorConfig(), options)
    assert detector.provider == "CPUExecutionProvider" and len(detector.fallback_reasons) == 2
    dets = detector.detect_one(cv2.imread(str(STREET)))
    assert "car" in {detector.label_names[i] for i in dets.labels}
    engine = FaceEngine(options=options)
    for model in (engine.detector.model, engine.embedder.model):
        assert model.provider == "CPUExecutionProvider"
        assert [r.split(" skipped")[0] for r in model.fallback_reasons] == [
            f"{model.name}: TensorrtExecutionProvider", f"{model.name}: CUDAExecutionProvider"]
    faces, index, emb, _ = engine.driver_embedding(cv2.imread(str(PORTRAIT)))
    assert index >= 0 and emb is not None and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3


def test_replay_reports_the_provider_fallback_in_diagnostics(tmp_path: Path) -> None:
    _gpu_unavailable("TensorrtExecutionProvider", "CUDAExecutionProvider")
    config = tmp_path / "params.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    runtime:\n      providers: "
                      + json.dumps(list(GPU_FIRST)) + "\n      intra_op_threads: 1\n")
    out = tmp_path / "out"
    assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", WINDSHIELD,
                 "--config", str(config)]) == 0
    diagnostics = [m.ros_msg for m in read_output(out / "bag") if m.channel.topic == "/diagnostics"]
    assert diagnostics
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert values["provider"] == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider skipped" in values["provider_fallback"]
    assert "CUDAExecutionProvider skipped" in values["provider_fallback"]


def test_a_sticky_shared_folder_is_no_tensorrt_engine_cache(tmp_path: Path) -> None:
    """R50: a folder others may write with the sticky bit (/tmp, /dev/shm: 1777, root's) was
    accepted as runtime.trt_cache_dir: the sticky bit keeps others from replacing a file, not
    from creating an engine file under the name TensorRT looks for before it does."""
    import os

    from sense_perception.core.runtime.session import trt_cache_refusal

    sticky = tmp_path / "shared"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    assert trt_cache_refusal(sticky) == "other users may write it (mode 1777)"
    os.chmod(sticky, 0o1755)  # the sticky bit alone: nobody else may write
    assert trt_cache_refusal(sticky) is None


def test_every_cache_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$XDG_CACHE_HOME moves the TensorRT engines with the folded face model: the TensorRT default
    was fixed at import under ~/.cache, so a user who keeps caches elsewhere (a read-only home, a
    cache volume) had engines written where they were not looked for."""
    from sense_perception.core.runtime.session import RuntimeConfig

    monkeypatch.delenv(model_fold.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert RuntimeOptions().trt_cache_dir == str(tmp_path / "xdg" / "sense_perception" / "trt")
    assert RuntimeConfig().options().trt_cache_dir == RuntimeOptions().trt_cache_dir
    assert model_fold.cache_dir() == tmp_path / "xdg" / "sense_perception" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # empty: the XDG default, as unset
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert RuntimeOptions().trt_cache_dir == str(tmp_path / "home" / ".cache" / "sense_perception"
                                                 / "trt")
    assert RuntimeConfig(trt_cache_dir=str(tmp_path / "own")).options().trt_cache_dir == str(
        tmp_path / "own")
