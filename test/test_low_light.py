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
                                                       mean_luma)
from sense_perception.core.imaging.image_decode import ImageView
from sense_perception.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "street_labelled" / "pandaset_seq002_front"
CPU = {"runtime.providers": ["CPUExecutionProvider"]}
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
    assert brighten(night, LowLightSettings(mode="off", denoise_sigma=0.0)) is night


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
                                             ("dark_luma", 300.0, "0..255"),
                                             ("denoise_sigma", -1.0, "0..5")])
def test_bad_settings_are_refused(tmp_path: Path, key, value, words) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"detector:\n  low_light:\n    {key}: {json.dumps(value)}\n")
    with pytest.raises(ConfigError, match=rf"detector\.low_light\.{key}.*{words}"):
        DetectorConfig.from_params(load_params(path, "object_detector"), str(path))


def test_the_specialist_shares_the_setting_and_night_detection_changes(day, night) -> None:
    """Both models see the treated dark frame; the day frame's detections are those of the
    step switched off."""
    on = build_detector(CPU)
    off = build_detector({**CPU, "detector.low_light.mode": "off",
                          "detector.low_light.denoise_sigma": 0.0})
    assert on.members[1].config.low_light == on.members[0].config.low_light == LowLightSettings()
    a, b = on.detect([day])[0], off.detect([day])[0]
    np.testing.assert_array_equal(a.boxes, b.boxes)
    a, b = on.detect([night])[0], off.detect([night])[0]
    assert a.boxes.shape != b.boxes.shape or not np.array_equal(a.boxes, b.boxes)
