"""Dark frames smoothed and contrast-equalised before detection; daylight frames untouched."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.config import load_params
from sense_perception.core.detection.detector import DetectorConfig
from sense_perception.core.detection.detector_setup import build_detector
from sense_perception.core.detection.low_light import (LowLightSettings, brighten, brighten_input,
                                                       mean_luma, noise_sigma, smooth_chroma,
                                                       smoothing)
from sense_perception.core.imaging.image_decode import ImageView
from sense_perception.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "street_labelled" / "pandaset_seq002_front"
CPU = {"runtime.providers": ["CPUExecutionProvider"]}
NO_STEP = {"detector.low_light.mode": "off", "detector.low_light.denoise_sigma": 0.0,
           "detector.low_light.chroma_sigma": 0.0}
#: a dark frame's measured luma noise at which the smoothing is as set (the default's)
REFERENCE = LowLightSettings().noise_reference
sys.path.insert(0, str(ROOT / "tools"))
from make_night_proxy import darken  # noqa: E402


@pytest.fixture(scope="module")
def day() -> np.ndarray:
    return cv2.imread(str(DEV / "26.jpg"))


@pytest.fixture(scope="module")
def night(day) -> np.ndarray:
    return darken(day, np.random.default_rng(0))


def test_the_night_proxy_is_dark_and_noisy(day, night) -> None:
    assert mean_luma(day) > 90 and 20 < mean_luma(night) < 35
    flat = night[950:1000, 800:1000].astype(np.float32)  # road surface: texture plus grain
    assert flat.std() > day[950:1000, 800:1000].astype(np.float32).std() * 0.5


def test_day_frames_pass_untouched_dark_ones_are_changed(day, night) -> None:
    settings = LowLightSettings()
    assert brighten(day, settings) is day
    out = brighten(night, settings)
    assert out.shape == night.shape and out.dtype == np.uint8
    grain = lambda im: np.abs(np.diff(im[900:1000, 600:1200].astype(np.float32), axis=1)).mean()  # noqa: E731
    assert grain(out) < grain(night) * 0.8 or settings.denoise_sigma == 0
    assert brighten(night, LowLightSettings(mode="off", denoise_sigma=0.0, chroma_sigma=0.0)) is night


def test_the_colour_noise_goes_the_luma_keeps_its_detail(night) -> None:
    with_chroma = brighten(night, LowLightSettings())
    without = brighten(night, LowLightSettings(chroma_sigma=0.0))
    ycc = [cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb).astype(np.float32) for im in (with_chroma, without)]
    grain = lambda plane: np.abs(np.diff(plane[900:1000, 600:1200], axis=1)).mean()  # noqa: E731
    # Cr and Cb: their pixel-to-pixel grain falls to under a third ...
    assert grain(ycc[0][:, :, 1]) < grain(ycc[1][:, :, 1]) / 3
    assert grain(ycc[0][:, :, 2]) < grain(ycc[1][:, :, 2]) / 3
    # ... while the luma the detectors find shapes in is the same but for the colour round trip.
    assert np.abs(ycc[0][:, :, 0] - ycc[1][:, :, 0]).mean() < 1.0
    # The blur at reduced resolution is the full-size one within a grey level or two.
    chroma = np.ascontiguousarray(cv2.cvtColor(night, cv2.COLOR_BGR2YCrCb)[:, :, 1:])
    full = cv2.GaussianBlur(chroma, (0, 0), 6.0).astype(np.int16)
    fast = smooth_chroma(chroma, 6.0).astype(np.int16)
    assert fast.shape == chroma.shape and np.abs(fast - full).max() <= 2
    np.testing.assert_array_equal(smooth_chroma(chroma, 1.0), cv2.GaussianBlur(chroma, (0, 0), 1.0))


@pytest.mark.parametrize("sigma", [2.0, 4.0, 8.0])
def test_the_noise_estimate_reads_a_known_noise(sigma) -> None:
    """Grey noise of a known standard deviation on a scene of a ramp and hard-edged blocks (what a
    Laplacian sees besides noise) is read within 10 %; the scene alone reads as next to none."""
    rng = np.random.default_rng(1)
    h, w = 540, 960
    scene = np.tile(np.linspace(40, 200, w, dtype=np.float32), (h, 1))
    scene[100:300, 200:400] = 30.0
    scene[350:500, 600:900] = 220.0
    noisy = np.clip(np.rint(scene + rng.normal(0.0, sigma, (h, w))), 0, 255).astype(np.uint8)
    assert noise_sigma(cv2.merge([noisy] * 3)) == pytest.approx(sigma, rel=0.1)
    assert noise_sigma(noisy) == noise_sigma(cv2.merge([noisy] * 3))
    assert noise_sigma(cv2.merge([np.rint(scene).astype(np.uint8)] * 3)) < 0.3


def test_a_quiet_dark_frame_is_smoothed_less_than_a_noisy_one(day) -> None:
    """With ``noise_reference`` set, the smoothing follows each dark frame's measured noise: the
    same scene at the same brightness, seen by a sensor with ten times the full well (a quiet
    one) and by one at half the light and twice the gain (a noisy one), gets the given values
    (never less: a camera's own noise reduction reads quiet) and more, and the step applies what
    :func:`smoothing` says."""
    settings = LowLightSettings(noise_reference=REFERENCE, denoise_noise_power=1.0,
                                chroma_noise_power=1.0)
    quiet = darken(day, np.random.default_rng(3), full_well=20000.0, read_noise=1.0)
    normal = darken(day, np.random.default_rng(3))
    noisy = darken(day, np.random.default_rng(3), exposure=0.01, gain=3.0)
    assert abs(mean_luma(quiet) - mean_luma(noisy)) < 3  # the same darkness
    assert noise_sigma(quiet) < noise_sigma(normal) < noise_sigma(noisy)
    (ql, qc), (nl, nc) = smoothing(quiet, settings), smoothing(noisy, settings)
    assert (ql, qc) == (settings.denoise_sigma, settings.chroma_sigma)
    assert nl > settings.denoise_sigma and nc > settings.chroma_sigma
    fixed = LowLightSettings(denoise_sigma=nl, chroma_sigma=nc, noise_reference=0.0)
    np.testing.assert_array_equal(brighten(noisy, settings), brighten(noisy, fixed))
    # Fixed smoothing (noise_reference 0) is the same whatever the noise.
    fixed = LowLightSettings(noise_reference=0.0)
    assert smoothing(quiet, fixed) == smoothing(noisy, fixed) == (fixed.denoise_sigma,
                                                                  fixed.chroma_sigma)
    # The default: the luma's smoothing follows the noise, the colour's is fixed.
    default = LowLightSettings()
    (ql, qc), (nl, nc) = smoothing(quiet, default), smoothing(noisy, default)
    assert ql == default.denoise_sigma < nl and qc == nc == default.chroma_sigma
    # Daylight frames pass untouched, their noise never measured.
    assert brighten(day, settings) is day and brighten(day, default) is day


def test_image_views_keep_their_source_size(night) -> None:
    settings = LowLightSettings()
    rgb = np.ascontiguousarray(night[::2, ::2, ::-1])
    view = ImageView(rgb, "rgb", (night.shape[1], night.shape[0]))
    out = brighten_input(view, settings)
    assert isinstance(out, ImageView) and out.order == "bgr" and out.full_size == view.full_size
    np.testing.assert_array_equal(out.array, brighten(np.ascontiguousarray(rgb[:, :, ::-1]),
                                                      settings))
    day_view = ImageView(np.full((64, 64, 3), 200, np.uint8), "rgb", None)
    assert brighten_input(day_view, settings) is day_view


@pytest.mark.parametrize("key,value,words", [("mode", "gamma", "off, clahe"),
                                             ("dark_luma", 300.0, r"\[0.0, 255.0\], got 300"),
                                             ("denoise_sigma", -1.0, r"\[0.0, 5.0\], got -1"),
                                             ("chroma_sigma", 25.0, r"\[0.0, 20.0\], got 25"),
                                             ("noise_reference", 60.0, r"\[0.0, 50.0\], got 60"),
                                             ("denoise_noise_power", -0.5, r"\[0.0, 2.0\]"),
                                             ("chroma_noise_power", 3.0, r"\[0.0, 2.0\]")])
def test_bad_settings_are_refused(tmp_path: Path, key, value, words) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"detector:\n  low_light:\n    {key}: {json.dumps(value)}\n")
    with pytest.raises(ConfigError, match=rf"detector\.low_light\.{key}.*{words}") as refused:
        DetectorConfig.from_params(load_params(path, "object_detector"), str(path))
    if key != "mode":  # a range is refused in the loader's words, naming the file
        assert "bad.yaml" in str(refused.value)


def test_settings_built_in_python_are_held_to_the_same_ranges() -> None:
    """The replay engine and tests build settings in Python: the declared ranges hold there too
    (one check, the loader's; the class once repeated each range by hand)."""
    with pytest.raises(ValueError, match=r"LowLightSettings\.dark_luma must be within \[0.0, 255.0\]"):
        LowLightSettings(dark_luma=300.0)
    with pytest.raises(ValueError, match=r"LowLightSettings\.noise_reference .*got nan"):
        LowLightSettings(noise_reference=float("nan"))


def test_the_specialist_shares_the_setting_and_night_detection_changes(day, night) -> None:
    """Both models see the treated dark frame; the day frame's detections are those of the
    step switched off."""
    on = build_detector(CPU)
    off = build_detector({**CPU, **NO_STEP})
    assert on.members[1].config.low_light == on.members[0].config.low_light == LowLightSettings()
    a, b = on.detect([day])[0], off.detect([day])[0]
    np.testing.assert_array_equal(a.boxes, b.boxes)
    a, b = on.detect([night])[0], off.detect([night])[0]
    assert a.boxes.shape != b.boxes.shape or not np.array_equal(a.boxes, b.boxes)


def _pedestrians_found(boxes: np.ndarray, truth: np.ndarray, iou: float = 0.3) -> int:
    """Ground-truth pedestrians some detection overlaps at ``iou`` (projected boxes: 0.3)."""
    if not len(boxes) or not len(truth):
        return 0
    lo = np.maximum(truth[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(truth[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda b: np.prod(b[:, 2:] - b[:, :2], axis=1)  # noqa: E731
    return int((inter / (area(truth)[:, None] + area(boxes)[None, :] - inter) >= iou).any(axis=1).sum())


def test_smoothing_the_colour_finds_night_pedestrians_the_grain_hid() -> None:
    """On night copies of developer-set frames where the person beside the parked cars was lost
    in the colour grain (docs/detection-quality.md, "Night"), smoothing the colour finds more of
    the labelled pedestrians than the step without it."""
    truth = json.loads((DEV / "ground_truth.json").read_text())["cameras"]
    keys = ("26", "36", "40", "42")
    rng = np.random.default_rng(0)
    nights = [darken(cv2.imread(str(DEV / f"{k}.jpg")), rng) for k in keys]
    with_chroma = build_detector(CPU)
    without = build_detector({**CPU, "detector.low_light.chroma_sigma": 0.0})
    ped = with_chroma.label_names.index("pedestrian")
    found = {"with": 0, "without": 0}
    for key, image in zip(keys, nights, strict=True):
        gt = np.array([b["bbox_xyxy"] for b in truth[f"front_camera/{key}"]["boxes"]
                       if b["label"] == "pedestrian" and not b["difficult"]], np.float32)
        for name, det in (("with", with_chroma), ("without", without)):
            d = det.detect([image])[0]
            found[name] += _pedestrians_found(d.boxes[d.labels == ped], gt)
    assert found["with"] > found["without"], found
