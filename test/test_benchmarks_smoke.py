"""The benchmark suite runs end to end in its quick mode and writes every documented key.

Only structure and correctness cross-checks are asserted, never a timing: the quick mode runs a few
iterations on a shared machine, its numbers mean nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
METRICS = ("pipeline_over_raw", "pipeline_over_raw_with_tracking", "pipeline_over_raw_jpeg",
           "pipeline_over_raw_720p", "pipeline_over_raw_bgr_copy", "default_over_picodet",
           "default_fps_1080p",
           "speedup_vs_cv2dnn", "batched6_over_single6", "gallery_10_ms", "gallery_1k_ms",
           "gallery_10k_ms", "gallery_100k_ms", "rss_growth_mb", "replay_fps", "fleet_scaling",
           "fleet_over_replay_per_frame",
           "driver_identity_ms", "driver_identity_attention_ms", "driver_attention_over_identity",
           "driver_identity_attention_interval_ms", "positions_50_ms", "camera_health_ms_1080p")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run([sys.executable, str(RUN), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pipeline_over_raw" in proc.stdout  # the table was printed
    return json.loads(out.read_text())


@pytest.mark.slow
def test_quick_run_writes_every_key(quick_results: dict) -> None:
    doc = quick_results
    assert doc["mode"] == "quick"
    for key in METRICS:
        assert isinstance(doc[key], (int, float)), f"{key} = {doc.get(key)!r}"
    machine = doc["machine"]
    for key in ("cpu_model", "logical_cores", "python", "numpy", "onnxruntime", "opencv"):
        assert machine[key], key
    inputs = doc["inputs"]
    assert len(inputs["files"]) == 5 and len(inputs["sha256"]) == 64
    assert all(len(h) == 64 for h in inputs["files"].values())
    assert doc["model"]["name"] == "picodet_s_416" and len(doc["model"]["sha256"]) == 64
    assert doc["load_average_start"] is not None and doc["duration_s"] > 0


@pytest.mark.slow
def test_quick_run_cross_checks_hold(quick_results: dict) -> None:
    detail = quick_results["detail"]
    # cv2.dnn demo and detector share no code; on the same file and frames they must agree.
    agreement = detail["cv2dnn"]["agreement"]
    assert len(agreement) == 5 and detail["cv2dnn"]["same_detections"], agreement
    assert all(row["count_a"] >= 10 for row in agreement)  # real street scenes
    assert all(detail["gallery"][k]["same_as_brute_force"]
               for k in ("gallery_10_ms", "gallery_1k_ms", "gallery_10k_ms", "gallery_100k_ms"))
    assert detail["replay"]["frames"] == 13 and detail["replay"]["skipped"] == []
    # the fleet replayed the same bags as the plain engine, with the same per-camera results
    assert detail["fleet"]["frames"] == 2 * 13 and detail["fleet"]["same_cameras_summary_as_replay"]
    assert detail["memory"]["frames"] == 6 and len(detail["memory"]["rss_mb_samples"]) == 3
    driver = detail["driver"]  # six real faces, every one measured by the attention pipeline
    assert len(driver["frames"]) == 6 and driver["attention_measured"]
    assert driver["embedded_share"]["identity"] == 1.0  # SFace on every frame by default ...
    assert driver["embedded_share"]["identity_attention_interval"] < 1.0  # ... not with the interval
    assert {"detect", "embed", "attention", "attention.mesh", "attention.eyes"} <= set(driver["stage_mean_ms"])
    assert set(detail["pipeline"]["rgb8"]["stage_mean_ms"]) >= {"decode", "preprocess",
                                                                 "inference", "postprocess"}
    gpu = quick_results["gpu"]
    assert gpu["measured"] or gpu["reason"]  # never silent about GPU figures
    health = detail["camera_health"]  # clean street frames: no camera condition
    assert len(health["clean_input_conditions"]) == 5 and health["frames"] > 0
    assert all(c == [] for c in health["clean_input_conditions"].values()), health


def test_quick_mode_refuses_to_overwrite_committed_results() -> None:
    proc = subprocess.run([sys.executable, str(RUN), "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_device_path_runs_on_cpu_torch() -> None:
    pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0)")
    sys.path.insert(0, str(ROOT))
    from benchmarks import bench_gpu
    from benchmarks.common import load_inputs
    from sense_perception.core.detection.detector import ObjectDetector

    inputs = load_inputs()
    inputs.paths, inputs.images = inputs.paths[:2], inputs.images[:2]
    detector = ObjectDetector.from_params({"runtime.providers": ["CPUExecutionProvider"]})
    result = bench_gpu.device_path(detector, inputs, "cpu", rounds=1, calls=1)
    # torch and OpenCV resize round differently (test_gpu_preprocess): a detection at a
    # threshold may fall on either side, every other one pairs up (IoU >= 0.9).
    for row in result["parity_vs_detect"]["per_image"]:
        assert abs(row["count_a"] - row["count_b"]) <= 2, row
        assert row["matched"] >= min(row["count_a"], row["count_b"]) - 1, row


def test_merge_replaces_only_the_benchmarks_that_ran() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.run import merge_results

    old = {"date_utc": "2026-01-01", "machine": {"cpu_model": "old"}, "replay_fps": 17.0,
           "pipeline_over_raw": 1.2, "targets": {"replay_fps": "(info)"},
           "detail": {"replay": {"runs": 5}, "pipeline": {"rounds": 41}}}
    new = {"date_utc": "2026-02-02", "machine": {"cpu_model": "new"}, "inputs": {}, "model": {},
           "settings": {}, "replay_fps": 18.0, "fleet_scaling": 1.3,
           "targets": {"replay_fps": "(info)", "fleet_scaling": "(info)"},
           "detail": {"replay": {"runs": 1}, "fleet": {"rounds": 5}},
           "produced_by": {"replay": ["replay_fps"], "fleet": ["fleet_scaling"]}}
    doc = merge_results(old, new)
    assert doc["replay_fps"] == 18.0 and doc["fleet_scaling"] == 1.3
    assert doc["pipeline_over_raw"] == 1.2 and doc["detail"]["pipeline"] == {"rounds": 41}
    assert doc["detail"]["replay"] == {"runs": 1} and doc["detail"]["fleet"] == {"rounds": 5}
    assert doc["date_utc"] == "2026-01-01" and doc["machine"] == {"cpu_model": "old"}
    assert doc["merged"] == {"replay": "2026-02-02", "fleet": "2026-02-02"}
    assert set(doc["targets"]) == {"replay_fps", "fleet_scaling"}
