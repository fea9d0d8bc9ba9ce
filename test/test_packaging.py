"""The wheel: only the sense_perception package and its data, a warning-free build, and an installed
copy that replays its own bundled sample bag in a fresh virtual environment (not the source tree)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CABIN = "/camera/cabin/image_raw/compressed"


def _source_files() -> list[str]:
    """The files a clean clone has: tracked plus untracked-but-not-ignored (work in progress)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (REPO / f).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(wheel, build log) built from a copy of the checkout, as `pip wheel .` on a clean clone."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone has")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in _source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    # The venv's own setuptools builds it (no download); -v shows setuptools' warnings.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                           "--no-build-isolation", "-v", "-w", str(tmp / "dist")],
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    wheels = list((tmp / "dist").glob("sense_perception-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], log


def test_build_emits_no_setuptools_warning(built: tuple[Path, str]) -> None:
    _, log = built
    noisy = [line for line in log.splitlines()
             if "Warning" in line or "absent from the `packages`" in line
             or "Package would be ignored" in line]
    assert not noisy, "\n".join(noisy)


def test_wheel_holds_only_sense_perception_and_its_data(built: tuple[Path, str]) -> None:
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    version = wheel.name.split("-")[1]
    top = {n.split("/")[0] for n in names}
    assert top == {"sense_perception", f"sense_perception-{version}.data",
                   f"sense_perception-{version}.dist-info"}, sorted(top)
    for needed in ("sense_perception/data/sample_bag/sample_bag.mcap",
                   "sense_perception/data/fastdds_private.xml",  # R93: read by the nodes
                   "sense_perception/data/sample_bag/metadata.yaml",
                   "sense_perception/data/sample_bag/ATTRIBUTION",
                   "sense_perception/models/picodet_s_416_coco.onnx",
                   "sense_perception/models/coco_labels.txt",
                   "sense_perception/interfaces/vision_msgs/msg/Detection2DArray.msg",
                   "sense_perception/interfaces/foxglove_msgs/msg/ImageAnnotations.msg",
                   "sense_perception/interfaces/tier4_perception_msgs/msg/DetectedObjectsWithFeature.msg",
                   "sense_perception/interfaces/autoware_perception_msgs/msg/ObjectClassification.msg",
                   f"sense_perception-{version}.data/data/share/sense_perception/package.xml",
                   f"sense_perception-{version}.data/data/share/sense_perception/config/perception.yaml",
                   f"sense_perception-{version}.data/data/share/sense_perception/config/carla.yaml",
                   f"sense_perception-{version}.data/data/share/sense_perception/config/awsim.yaml",
                   f"sense_perception-{version}.data/data/share/sense_perception/launch/"
                   "perception.launch.py",
                   f"sense_perception-{version}.dist-info/licenses/NOTICE"):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    requires = zipfile.ZipFile(wheel).read(f"sense_perception-{version}.dist-info/METADATA").decode()
    runtime = [line for line in requires.splitlines()
               if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [r for r in runtime if "rosbags-image" in r], "rosbags-image is a test dependency"
    assert [r for r in requires.splitlines() if "rosbags-image" in r and 'extra == "test"' in r]


@pytest.mark.slow
def test_installed_wheel_replays_its_own_sample_bag(built: tuple[Path, str],
                                                    tmp_path: Path) -> None:
    wheel, _ = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # --no-compile: pip's byte-compiling of every installed file (numpy, OpenVINO, onnxruntime,
    # OpenCV ...) was a third of the install's time and checks nothing (pip ignores a file that does
    # not compile); the modules the replay imports are compiled as it imports them.
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # Outside the checkout, with nothing pointing at it: the installed copy must stand alone.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(SENSE_PERCEPTION_CACHE=str(tmp_path / "cache"),
               SENSE_PERCEPTION_GALLERY=str(tmp_path / "gallery" / "gallery.json"))
    where = subprocess.run([str(python), "-c", "import pathlib, sense_perception; "
                            "print(pathlib.Path(sense_perception.__file__).parent)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    package = Path(where.stdout.strip())
    assert package.is_relative_to(venv), package
    no_test_deps = subprocess.run([str(python), "-c", "import rosbags.image"], cwd=tmp_path,
                                  env=env, capture_output=True, text=True)
    assert no_test_deps.returncode != 0, "rosbags-image came with the runtime dependencies"
    out = tmp_path / "out"
    replay = subprocess.run([str(venv / "bin" / "sense-perception"), "replay",
                             str(package / "data" / "sample_bag"), "--out", str(out),
                             "--cabin", CABIN], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    assert "INFO" not in replay.stderr, replay.stderr  # quiet unless -v
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 13 and not summary["skipped"], summary
    cameras = summary["cameras"]
    assert cameras["/camera/front/image_raw/compressed"]["detections"].get("car", 0) > 0, cameras
    # the bundled bag's front camera is calibrated (its CameraInfo and /tf_static travel with it)
    assert cameras["/camera/front/image_raw/compressed"]["positions"]["placed"] > 0, cameras
    assert (out / "bag" / "metadata.yaml").is_file()
    # --config carla / config:=carla find the installed copy of the simulator set-up
    found = subprocess.run([str(python), "-c", "from sense_perception.config import bundled_config; "
                            "print(bundled_config('carla'))"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(found.stdout.strip()) == venv / "share" / "sense_perception" / "config" / "carla.yaml"
