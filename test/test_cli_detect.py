"""`sense-perception detect` end to end on real street frames."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from sense_perception.cli.main import main

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
PANDASET = STREET / "pandaset_seq002_front_camera_40.jpg"
COMMA = STREET / "comma2k19_highway280_rav4_preview.png"
# One threshold for every label (cars, trucks, pedestrians and the pedestrian specialist have
# their own by default).
CPU_ONLY = """object_detector:
  ros__parameters:
    detector:
      score_threshold: {threshold}
      pedestrian_threshold: {threshold}
      class_thresholds: {{car: -1.0, truck: -1.0, pedestrian: -1.0}}
    runtime:
      providers: [CPUExecutionProvider]
"""


def _config(tmp_path: Path, threshold: float = 0.35) -> str:
    path = tmp_path / "detector.yaml"
    path.write_text(CPU_ONLY.format(threshold=threshold))
    return str(path)


def _check_schema(doc: dict) -> None:
    assert set(doc) == {"images", "positions"}
    assert doc["positions"]["calibration"] is None and "--calibration FILE" in \
        doc["positions"]["reason"]  # no 3-D without a calibration (test_eval_positions: with)
    for image in doc["images"]:
        assert set(image) == {"path", "width", "height", "detections"}
        assert isinstance(image["path"], str)
        assert isinstance(image["width"], int) and isinstance(image["height"], int)
        for det in image["detections"]:
            assert set(det) == {"label", "score", "bbox_xyxy"}
            assert isinstance(det["label"], str) and isinstance(det["score"], float)
            x1, y1, x2, y2 = det["bbox_xyxy"]
            assert 0 <= x1 < x2 <= image["width"] and 0 <= y1 < y2 <= image["height"]


def test_detect_two_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["detect", str(PANDASET), str(COMMA), "--out", str(out),
                 "--config", _config(tmp_path)])
    assert code == 0
    doc = json.loads((out / "detections.json").read_text())
    _check_schema(doc)
    assert [i["path"] for i in doc["images"]] == [str(PANDASET), str(COMMA)]
    assert [(i["width"], i["height"]) for i in doc["images"]] == [(1920, 1080), (1164, 874)]
    for image in doc["images"]:
        assert sum(d["label"] == "car" for d in image["detections"]) >= 4
    for src in (PANDASET, COMMA):
        annotated = cv2.imread(str(out / src.name))
        assert annotated is not None
        assert annotated.shape == cv2.imread(str(src)).shape
        assert (annotated != cv2.imread(str(src))).any()  # boxes were drawn
    table = capsys.readouterr().out
    assert "car" in table and "1920x1080" in table


def test_unreadable_image_is_reported_and_others_still_processed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    code = main(["detect", str(broken), str(COMMA), str(tmp_path / "missing.png"),
                 "--out", str(out), "--config", _config(tmp_path, 0.6), "--model", "yolox_nano",
                 "--no-annotate"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "not a decodable image" in err
    assert "missing.png" in err and "no such file" in err
    doc = json.loads((out / "detections.json").read_text())
    _check_schema(doc)
    assert [i["path"] for i in doc["images"]] == [str(COMMA)]
    assert all(d["score"] >= 0.6 for d in doc["images"][0]["detections"])
    assert sorted(p.name for p in out.iterdir()) == ["detections.json"]


def test_score_threshold_option_overrides_config(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["detect", str(COMMA), "--out", str(out), "--config", _config(tmp_path),
                 "--score-threshold", "0.7", "--no-annotate"]) == 0
    dets = json.loads((out / "detections.json").read_text())["images"][0]["detections"]
    assert dets and all(d["score"] >= 0.7 for d in dets)


def test_bad_config_value_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["detect", str(COMMA), "--out", str(tmp_path / "o"),
                 "--config", _config(tmp_path, 1.5)])
    assert code == 2
    assert "detector.score_threshold" in capsys.readouterr().err


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--config", "--model", "--score-threshold", "--tiling",
                   "--no-annotate", "--batch-size", "--node-name", "IMAGE"):
        assert option in text
    assert "picodet_s_416" in text and "horizon_bands" in text


def test_settings_image_files_cannot_use_are_named_not_dropped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config's stream settings (tracking, ignore regions per camera topic, Autoware, camera
    health) do nothing to image files: detect says which, once; the detector's own settings and
    settings left at their defaults are not listed."""
    config = tmp_path / "streams.yaml"
    config.write_text(CPU_ONLY.format(threshold=0.35) + """    tracking:
      velocity: {accel_sd: 2.0}
      max_age: 1.0
    camera_health: {enabled: false}
""")
    config.write_text(config.read_text().replace("    detector:\n", "    detector:\n      ignore_regions:\n"
                                                 "        polygons: ['/cam/image_raw: 0,0 10,0 10,10']\n", 1))
    assert main(["detect", str(COMMA), "--out", str(tmp_path / "out"), "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert err.count("not applied to image files") == 1
    named = err.split("not applied to image files", 1)[1]
    for name in ("camera_health.enabled", "detector.ignore_regions.polygons",
                 "tracking.velocity.accel_sd"):
        assert name in named
    for name in ("tracking.max_age", "score_threshold", "runtime.providers"):  # default / applied
        assert name not in named
    assert main(["detect", str(COMMA), "--out", str(tmp_path / "out2"),
                 "--config", _config(tmp_path)]) == 0
    assert "not applied" not in capsys.readouterr().err


def test_a_second_detect_into_one_out_is_refused_and_the_first_keeps_its_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two runs into one --out each replaced detections.json at their end: the first to finish
    # lost every record. A run holding --out (here: its lock, taken as detect takes it) refuses
    # the second before it writes anything; once it ends, the folder is free again.
    import fcntl
    import os

    out = tmp_path / "out"
    out.mkdir()
    first = out / "detections.json"
    first.write_text('{"images": [{"path": "first run"}]}\n')
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["detect", str(COMMA), "--out", str(out), "--config", _config(tmp_path),
                     "--no-annotate"])
        err = capsys.readouterr().err
        assert code == 2 and f"another detect is writing into --out {out}" in err, err
        assert first.read_text() == '{"images": [{"path": "first run"}]}\n'
    finally:
        os.close(fd)
    assert main(["detect", str(COMMA), "--out", str(out), "--config", _config(tmp_path),
                 "--no-annotate"]) in (0, 1)
    assert json.loads(first.read_text())["images"][0]["path"] == str(COMMA)


def test_a_detections_json_that_detect_did_not_write_is_never_replaced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # detect never replaced a user's photo in --out, but replaced any detections.json there: a
    # labelling tool's export of that name was lost. Refused now, before the model loads.
    out = tmp_path / "out"
    out.mkdir()
    theirs = out / "detections.json"
    for content in ('{"info": {"description": "hand labels"}, "images": []}\n', "id,label\n"):
        theirs.write_text(content)
        assert main(["detect", str(COMMA), "--out", str(out), "--no-annotate"]) == 2
        err = capsys.readouterr().err
        assert "holds a detections.json that detect did not write" in err, err
        assert theirs.read_text() == content


def test_an_out_that_cannot_be_opened_for_the_lock_is_still_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder the user may write but not list (mode 0300) cannot be opened O_RDONLY for the
    # one-run-at-a-time lock: the PermissionError ended detect in a traceback after the model
    # loaded, where the run worked before the lock. It is written without the lock now (as on a
    # file system without locks). Faked: tests run as root, who may open any folder.
    import os

    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def no_read(path, flags, *args, **kwargs):
        if flags & os.O_DIRECTORY and Path(path) == out:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_read)
    assert main(["detect", str(COMMA), "--out", str(out), "--config", _config(tmp_path),
                 "--no-annotate"]) in (0, 1)
    assert json.loads((out / "detections.json").read_text())["images"][0]["path"] == str(COMMA)
