"""What a newcomer sees first: quiet commands by default, -v for model preparation, typo hints."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sense_perception.cli.main import build_parser, log_level
from sense_perception.config import load_params, section_from_params
from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
from sense_perception.errors import ConfigError
from sense_perception.ros.settings import ObjectDetectorSettings, check_param_names

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"


def test_log_levels_by_verbosity() -> None:
    assert log_level("detect", 0) == logging.WARNING
    assert log_level("replay", 1) == logging.INFO
    assert log_level("driver", 2) == logging.DEBUG == log_level("driver", 5)
    assert log_level("run", 0) == logging.INFO  # the nodes log INFO as they always did
    # -v works before and after the sub-command, and counts.
    parser = build_parser()
    for argv, want in ((["-v", "driver", "list"], 1), (["driver", "list", "-vv"], 2),
                       (["replay", "bag", "--out", "o"], 0), (["-v", "replay", "b", "--out", "o", "-v"], 2)):
        args = parser.parse_args(argv)
        assert args.verbose + getattr(args, "sub_verbose", 0) == want, argv


def _detect(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SENSE_PERCEPTION_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "detect",
                           str(STREET / "pandaset_seq002_front_camera_00.jpg"), "--out",
                           str(tmp_path / "out"), "--no-annotate", *extra],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_detect_prints_no_info_lines_unless_asked(tmp_path: Path) -> None:
    quiet = _detect(tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stderr and "INFO" not in quiet.stdout, quiet.stderr
    assert "picodet_s_416" in quiet.stdout  # its own output is still there
    assert (tmp_path / "out" / "detections.json").is_file()
    loud = _detect(tmp_path, "-v")
    assert loud.returncode == 0, loud.stderr
    assert "INFO sense_perception" in loud.stderr and "HardSwish" in loud.stderr


def test_misspelt_key_names_the_closest_valid_key_first(tmp_path: Path) -> None:
    config = tmp_path / "perception.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    detector:\n"
                      "      score_treshold: 0.3\n")
    # The loader refuses it (every command reads configs through it) ...
    with pytest.raises(ConfigError) as info:
        load_params(config, "object_detector")
    # ... and so does the component reading a raw parameter dict, in the same words.
    with pytest.raises(ConfigError) as raw:
        ObjectDetector.from_params(load_params(config, "object_detector", check=False), str(config))
    for message in (str(info.value), str(raw.value)):
        assert message.startswith(f"unknown parameter 'detector.score_treshold' in {config}; "
                                  "did you mean detector.score_threshold? valid: "), message
        assert "detector.nms_iou" in message  # and the whole list after it
    # Nothing close: no guess, only the list.
    with pytest.raises(ConfigError) as info:
        section_from_params(DetectorConfig, {"detector.zzz": 1}, "detector.", "f.yaml")
    message = str(info.value)
    assert "did you mean" not in message and "; valid: detector." in message
    assert "detector.batching" in message and "detector.score_threshold" in message


def test_misspelt_node_parameters_and_prefixes_get_hints() -> None:
    with pytest.raises(ConfigError) as info:
        check_param_names({"camera_topic": "/c", "inputs.max_pixels": 10}, ObjectDetectorSettings,
                          "f.yaml")
    message = str(info.value)
    assert "camera_topic (did you mean camera_topics?)" in message
    assert "inputs.max_pixels (did you mean input.max_pixels?)" in message
    assert "valid: autostart" in message
