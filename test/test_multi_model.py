"""The default detector: PicoDet plus the pedestrian specialist on the horizon band, as one."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from support import FakeDetector, assert_detections_close
from sense_perception.core.detection.band import band_rect, merge_band
from sense_perception.core.detection.detector import (CALIBRATED_DEFAULTS, ClassThresholds,
                                                      DetectorConfig, ObjectDetector)
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.core.detection.labels import AD_LABELS
from sense_perception.core.detection.multi_model import MultiModelDetector
from sense_perception.core.output.status import detector_values
from sense_perception.core.runtime.openvino_session import PROVIDER as OPENVINO
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.types import Detections
from sense_perception.errors import ConfigError, ModelError

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
CPU = {"runtime.providers": ["CPUExecutionProvider"]}
PED = AD_LABELS.index("pedestrian")


def dets(*rows: tuple) -> Detections:
    arr = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(arr[:, :4].astype(np.float32), arr[:, 4].astype(np.float32),
                      arr[:, 5].astype(np.int32))


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.imread(str(STREET / "pandaset_seq002_front_camera_10.jpg"))


@pytest.fixture(scope="module")
def default():
    return build_detector(CPU)


def test_default_is_picodet_plus_the_specialist_on_the_band(default) -> None:
    assert isinstance(default, MultiModelDetector)
    general, specialist = default.members
    assert default.model_name == "picodet_s_416 + person_detection_0203"
    assert default.owners["pedestrian"] == "person_detection_0203"
    assert all(default.owners[label] == "picodet_s_416" for label in AD_LABELS if label != "pedestrian")
    assert default.band == (0.25, 0.75)
    # No GPU provider here: the specialist runs its IR on OpenVINO, reshaped to the band.
    assert specialist.provider == OPENVINO and specialist.reshaped
    assert specialist.input_size == (1280, 384) and specialist.tiling.columns == 1
    assert general.provider == "CPUExecutionProvider"
    assert default.providers == {"picodet_s_416": "CPUExecutionProvider",
                                 "person_detection_0203": OPENVINO}
    # The specialist's pedestrians: the calibrated value of its raw 0.15.
    assert default.min_score == pytest.approx(CALIBRATED_DEFAULTS["pedestrian_threshold"])
    assert default.decode_floor is None  # the band needs the frame's full resolution
    # OpenVINO would infer in bfloat16 on CPUs that have it: f32 keeps results CPU-independent.
    assert "float32" in str(specialist._model._compiled.get_property("INFERENCE_PRECISION_HINT"))
    # runtime.openvino_int8: the specialist's 8-bit form, named in the diagnostics
    assert specialist.int8 and not general.int8
    assert detector_values(default)["int8"] == "person_detection_0203"
    assert any("8-bit form" in note for note in default.notes)


def test_each_label_keeps_its_own_threshold(default, frame) -> None:
    found = default.detect([frame])[0]
    names = [default.label_names[i] for i in found.labels]
    assert "pedestrian" in names and "car" in names
    config = default.config  # pedestrians: the specialist's threshold or PicoDet's, the lower
    lowest = {"pedestrian": min(config.pedestrian_threshold, config.threshold("pedestrian"))}
    for name, score in zip(names, found.scores.tolist(), strict=True):
        assert score >= lowest.get(name, config.threshold(name)) - 1e-6, (name, score)
    assert (np.diff(found.scores) <= 0).all()  # merged best first


def test_the_pedestrian_of_frame_10_is_found_on_both_runtimes(default, frame) -> None:
    # A pedestrian on the right pavement, about x 1730-1790, y 512-697 (tight box).
    ort = build_detector({**CPU, "runtime.openvino": "off"})
    specialist = ort.members[1]
    assert specialist.provider == "CPUExecutionProvider" and not specialist.reshaped
    assert specialist.input_size == (864, 480) and specialist.tiling.columns == 0  # 16:9 tiles
    for detector in (default, ort):
        found = detector.detect([frame])[0]
        peds = found.boxes[found.labels == PED]
        centres = (peds[:, :2] + peds[:, 2:]) / 2
        near = np.hypot(centres[:, 0] - 1760, centres[:, 1] - 605) < 40
        assert near.any(), (detector.providers, peds.tolist())


def test_openvino_and_onnxruntime_run_the_same_weights(frame) -> None:
    # The IR on OpenVINO and the ONNX conversion on onnxruntime, both on the whole frame at
    # 864x480: two engines and two graphs of one network round differently, so they agree within
    # a tolerance (measured: same detections, boxes within a few hundredths of a pixel).
    # Raw scores: the calibration's steep slope would magnify the engines' rounding.
    config = DetectorConfig(model="person_detection_0203", score_threshold=0.15,
                            class_thresholds=ClassThresholds.unset(), calibrated_scores=False)
    on_ov = ObjectDetector(config, RuntimeOptions(providers=("CPUExecutionProvider",),
                                                  openvino_int8=False))
    on_ort = ObjectDetector(config, RuntimeOptions(providers=("CPUExecutionProvider",),
                                                   openvino="off"))
    assert on_ov.provider == OPENVINO and on_ort.provider == "CPUExecutionProvider"
    a, b = on_ov.detect_one(frame), on_ort.detect_one(frame)
    assert len(a) >= 2
    assert_detections_close(a, b, box_px=1.0, score=0.01, threshold=0.15, what="OV vs ORT")


def test_the_8_bit_form_finds_what_the_original_weights_find(frame) -> None:
    # runtime.openvino_int8: the quantised IR against the original, on the band at 1280x384 and
    # raw scores. Measured on 20 developer-set frames, with OpenVINO's AVX-512 VNNI and its AVX2
    # kernels (ONEDNN_MAX_CPU_ISA=AVX2): paired boxes overlap at IoU >= 0.80, scores within 0.04,
    # and a detection on one side only scores within 0.013 of the threshold.
    config = DetectorConfig(model="person_detection_0203", score_threshold=0.15,
                            class_thresholds=ClassThresholds.unset(), calibrated_scores=False)
    forms = [ObjectDetector(config, RuntimeOptions(providers=("CPUExecutionProvider",),
                                                   openvino_int8=int8), openvino_input=(1280, 384))
             for int8 in (True, False)]
    assert [f.int8 for f in forms] == [True, False]
    assert detector_values(forms[1]).get("int8") is None
    band = frame[270:810]
    quantised, original = (f.detect_one(band) for f in forms)
    assert len(original) >= 2
    assert_detections_close(quantised, original, min_iou=0.75, score=0.05, threshold=0.15,
                            what="int8 vs original")


def test_cameras_in_one_call_equal_one_call_each(default, frame) -> None:
    other = cv2.imread(str(STREET / "pandaset_seq002_front_camera_40.jpg"))
    both = default.detect([frame, other])
    for image, got in zip((frame, other), both, strict=True):
        assert_detections_close(got, default.detect([image])[0], threshold=tuple(CALIBRATED_DEFAULTS.values()))


def test_whole_frame_specialist_without_a_band(frame) -> None:
    detector = build_detector({**CPU, "detector.pedestrian_band": []})
    specialist = detector.members[1]
    assert detector.band is None and specialist.tiling is None and specialist.input_size == (864, 480)
    assert "pedestrian" not in detector.members[0].owned_labels  # PicoDet drops its pedestrians
    assert (detector.detect([frame])[0].labels == PED).any()


def test_no_specialist_gives_picodet_alone() -> None:
    detector = build_detector({**CPU, "detector.pedestrian_model": "none"})
    assert isinstance(detector, ObjectDetector) and detector.model_name == "picodet_s_416"
    assert "pedestrian" in detector.owned_labels
    assert detector.min_score == pytest.approx(CALIBRATED_DEFAULTS["class_thresholds.car"])


# -- the band merge, on constructed detections -------------------------------------------------------

W, H = 1920, 1080  # band 270..810


def test_band_rect() -> None:
    assert band_rect(W, H, (0.25, 0.75)) == (0, 270, 1920, 810)
    assert band_rect(1600, 900, (0.25, 0.75)) == (0, 225, 1600, 675)


def test_near_pedestrian_keeps_the_whole_box_the_band_cuts() -> None:
    whole = dets((100, 200, 300, 1000, 0.9, PED))  # near: reaches below the band
    banded = dets((102, 272, 298, 810, 0.8, PED))  # the band's view of it, cut at y 810
    merged = merge_band(whole, banded, W, H, (0.25, 0.75), nms_iou=0.5)
    assert len(merged) == 1
    np.testing.assert_allclose(merged.boxes[0], [100, 200, 300, 1000])


def test_general_pedestrians_inside_the_band_are_dropped_for_the_specialists() -> None:
    whole = dets((500, 400, 520, 450, 0.6, PED),  # far: inside the band, the specialist's job
                 (900, 300, 1100, 1050, 0.9, PED))  # near: reaches below the band
    banded = dets((1500, 420, 1515, 460, 0.3, PED))  # a far one PicoDet missed
    merged = merge_band(whole, banded, W, H, (0.25, 0.75), nms_iou=0.5)
    kept = {tuple(np.round(b).astype(int)) for b in merged.boxes}
    assert kept == {(900, 300, 1100, 1050), (1500, 420, 1515, 460)}
    # Nothing reaching beyond the band: the band's detections as they are.
    assert merge_band(dets((500, 400, 520, 450, 0.6, PED)), banded, W, H, (0.25, 0.75),
                      0.5) is banded


def test_a_cut_box_nobody_else_saw_is_kept() -> None:
    banded = dets((100, 272, 300, 810, 0.7, PED))
    merged = merge_band(dets(), banded, W, H, (0.25, 0.75), 0.5)
    assert len(merged) == 1


# -- configuration ------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, match", [
    ({"detector.pedestrian_model": "yolo_huge"}, "detector.pedestrian_model 'yolo_huge'"),
    ({"detector.pedestrian_band": [0.8, 0.2]}, "0 <= top < bottom <= 1"),
    ({"detector.pedestrian_band": [0.5]}, "pedestrian_band must be"),
    ({"detector.pedestrian_band_input": [16, 16]}, "32..4096"),
    ({"detector.pedestrian_threshold": 1.5}, "pedestrian_threshold must be within 0..1"),
    ({"detector.class_thresholds.car": 2.0}, "class_thresholds.car must be within 0..1"),
    ({"detector.class_thresholds.cars": 0.3},
     "did you mean detector.class_thresholds.car\\?"),
    ({"runtime.openvino": "sometimes"}, "runtime.openvino must be one of auto, off"),
])
def test_bad_settings_are_refused_by_name(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_detector({**CPU, **params})


def test_labels_need_one_owner() -> None:
    # Wiring only: small fakes stand in for PicoDet (every label) and the specialist.
    picodet = FakeDetector(name="picodet_s_416")
    specialist = FakeDetector(owned_labels=("pedestrian",), name="person_detection_0203")
    with pytest.raises(ModelError, match="'pedestrian' is owned by both picodet_s_416 and "
                                         "person_detection_0203"):
        MultiModelDetector([picodet, specialist])  # the band's shared ownership not declared
    MultiModelDetector([picodet, specialist], band=(0.25, 0.75), band_labels=["pedestrian"])
    reordered = FakeDetector(owned_labels=("pedestrian",), name="reordered")
    reordered.label_names = reordered.label_names[::-1]
    with pytest.raises(ModelError, match="reordered orders its labels differently"):
        MultiModelDetector([picodet, reordered])
    runtime = RuntimeOptions(providers=("CPUExecutionProvider",))
    with pytest.raises(ModelError, match="has no class among the labels"):
        ObjectDetector(DetectorConfig(model="person_detection_0203"), runtime, owned_labels=["car"])
