"""A hostile or careless config file, given to the real commands (`--config FILE`): the one loader
answers at once, in one line naming the problem, the file and the fix, exit status 2, never a
traceback, a hang or a setting silently dropped.

The cases are files a user could write by mistake (a key given twice, a number that is NaN) or that
someone could hand them (YAML aliases expanding to millions of parameters, thousands of unknown
names, nesting a thousand levels deep).
"""
from __future__ import annotations

import dataclasses
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sense_perception.config import NODE_KINDS, node_schema, node_sections, section_from_params
from sense_perception.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STREET = SHARED / "street" / "pandaset_seq002_front_camera_00.jpg"
FACE = SHARED / "faces" / "obama_1_official_portrait_2012.jpg"


def health(config: Path, *extra: str, timeout: float = 60) -> tuple[int, str, float]:
    """`sense-perception health STREET --config CONFIG` in a child limited to 3 GB of memory:
    (exit status, stderr, seconds)."""
    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "health", str(STREET),
                             "--config", str(config), *extra], cwd=config.parent,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            timeout=timeout, preexec_fn=limit_memory)
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err[-3000:]
    return result.returncode, err, time.monotonic() - start


def write(tmp_path: Path, text: str, name: str = "hostile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_aliases_expanding_to_millions_of_parameters_are_refused_at_once(tmp_path: Path) -> None:
    """Nine mappings of nine aliases, eight levels deep: 9**8 (43 million) parameters in 900 bytes.
    Flattening them took every command minutes and more than 8 GB before it could answer."""
    lines = ["a0: &a0 {" + ", ".join(f"k{i}: 1" for i in range(9)) + "}"]
    lines += [f"a{n}: &a{n} {{" + ", ".join(f"k{i}: *a{n - 1}" for i in range(9)) + "}"
              for n in range(1, 8)]
    config = write(tmp_path, "\n".join(lines) + "\ndetector: *a7\n")
    assert config.stat().st_size < 1000
    code, err, seconds = health(config)
    assert code == 2, err
    assert f"config file {config} expands to more than 10000 parameters" in err, err
    assert "YAML aliases" in err and len(err) < 1000, err
    assert seconds < 30


@pytest.mark.parametrize("brackets", ["{a: ", "["])
def test_nesting_a_thousand_levels_deep_is_a_clear_error(tmp_path: Path, brackets: str) -> None:
    """YAML nesting 3000 levels of mappings or lists ended every command in a RecursionError
    traceback (exit 1)."""
    closing = "}" if brackets.startswith("{") else "]"
    config = write(tmp_path, "detector: " + brackets * 3000 + "1" + closing * 3000 + "\n")
    code, err, _ = health(config)
    assert code == 2, err
    assert f"config file {config}" in err and "nested too deeply" in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("text, named", [
    ("detector:\n  score_threshold: 0.9\n  score_threshold: 0.1\n",
     "found duplicate key 'score_threshold' (first at line 2)"),
    ("camera_health:\n  dark_mean: 10.0\ncamera_health:\n  dark_highlight: 20.0\n",
     "found duplicate key 'camera_health' (first at line 1)"),
    ("camera_health.dark_mean: 10.0\ncamera_health:\n  dark_mean: 250.0\n",
     "'camera_health.dark_mean' is given twice"),
    ("object_detector:\n  ros__parameters:\n    camera_health: {dark_mean: 10.0}\n"
     "/object_detector:\n  ros__parameters:\n    camera_health: {dark_mean: 250.0}\n",
     "'camera_health.dark_mean' is given in both 'object_detector' and '/object_detector'"),
])
def test_a_setting_given_twice_is_refused_naming_it(tmp_path: Path, text: str, named: str) -> None:
    """The second value silently won (the first silently lost): a key twice in one mapping (YAML
    itself forbids it), a dotted name beside its nested form, and one node's two sections."""
    config = write(tmp_path, text)
    code, err, _ = health(config)
    assert code == 2, err
    assert str(config) in err and named in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_key_beside_ros__parameters_is_refused_not_ignored(tmp_path: Path) -> None:
    """``object_detector: {ros__parameters: {...}, camera_health: {...}}``: the key beside
    ros__parameters was dropped without a word."""
    config = write(tmp_path, "object_detector:\n  ros__parameters: {}\n"
                             "  camera_health:\n    dark_mean: 250.0\n")
    code, err, _ = health(config)
    assert code == 2, err
    assert f"'camera_health' in section 'object_detector' of {config} is outside ros__parameters" \
        in err and "move it under ros__parameters" in err, err


def test_a_missing_base_names_the_overlay_that_names_it(tmp_path: Path) -> None:
    """The error named only the missing file, not the overlay whose '# base:' line named it."""
    config = write(tmp_path, "# base: perceptoin.yaml\ndetector: {score_threshold: 0.5}\n")
    code, err, _ = health(config)
    assert code == 2, err
    assert f"config file {tmp_path / 'perceptoin.yaml'} (the '# base:' of {config}) cannot be " \
        "read" in err and "No such file" in err, err


def test_a_chain_of_two_thousand_overlays_is_a_clear_error(tmp_path: Path) -> None:
    """Each '# base:' is read inside the one before it: 2000 overlays on one another ended in a
    RecursionError. An overlay may stand on 16."""
    for i in range(2000):
        write(tmp_path, f"# base: c{i + 1}.yaml\n", f"c{i}.yaml")
    write(tmp_path, "detector: {score_threshold: 0.5}\n", "c2000.yaml")
    code, err, _ = health(tmp_path / "c0.yaml")
    assert code == 2, err
    assert f"config file {tmp_path / 'c16.yaml'}: '# base: c17.yaml' is more than 16 overlays " \
        "deep" in err, err
    write(tmp_path, "detector: {score_threshold: 0.5}\n", "c16.yaml")  # 16 bases: read
    code, err, _ = health(tmp_path / "c0.yaml")
    assert code == 0, err


def test_an_empty_config_name_is_refused_as_empty(tmp_path: Path) -> None:
    """--config '' read the working directory ('config file . cannot be read: it is a
    directory')."""
    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "health", str(STREET),
                             "--config", ""], cwd=tmp_path, capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and b"config '' is empty" in result.stderr, result.stderr


def test_an_overlay_saved_with_a_byte_order_mark_still_reads_its_base(tmp_path: Path) -> None:
    """A UTF-8 byte order mark (as Windows editors save) hid the '# base:' first line: the base's
    settings were silently not applied. A '# base:' line below the first was a mere comment too."""
    write(tmp_path, "camera_health:\n  dark_mean: 255.0\n  dark_highlight: 255.0\n", "base.yaml")
    config = tmp_path / "overlay.yaml"
    config.write_bytes(b"\xef\xbb\xbf# base: base.yaml\ndetector:\n  nms_iou: 0.4\n")
    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "health", str(STREET),
                             "--config", str(config)], capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0 and b"dark" in result.stdout, result  # the base's thresholds
    later = write(tmp_path, "# my overlay\n# base: base.yaml\ndetector:\n  nms_iou: 0.4\n")
    code, err, _ = health(later)
    assert code == 2 and "a '# base:' line is read only as the file's first line (it is line 2" \
        in err, err


def test_thousands_of_unknown_names_are_answered_quickly_and_briefly(tmp_path: Path) -> None:
    """9000 misspelt names in one section: every name got its own did-you-mean and the whole valid
    list (minutes, an error of megabytes); a 7 MB file of them took a minute just to parse."""
    config = write(tmp_path, "detector:\n" + "".join(f"  scor_{i}: 1\n" for i in range(9000)))
    code, err, seconds = health(config)
    assert code == 2 and "unknown parameter 'detector.scor_0'" in err, err
    assert "and 8995 more unknown parameters" in err and len(err) < 20000, len(err)
    assert seconds < 30
    big = tmp_path / "big.yaml"
    big.write_text("".join(f"k{i}: 1\n" for i in range(300_000)))  # 2.6 MB of names
    code, err, seconds = health(big)
    assert code == 2 and f"{big.stat().st_size} bytes, more than the 1048576" in err, err
    assert seconds < 10


def test_a_nan_threshold_is_refused_not_a_check_switched_off(tmp_path: Path) -> None:
    """``dark_mean: .nan`` passed the range check (NaN compares false): no frame was ever dark, the
    condition silently switched off. The face portrait is dark when both thresholds are 255."""
    config = write(tmp_path, "driver_monitor:\n  ros__parameters:\n    camera_health:\n"
                             "      dark_highlight: 255.0\n      dark_mean: .nan\n")
    code, err, _ = health(config, "--node-name", "driver_monitor")
    assert code == 2, err
    assert "parameter 'camera_health.dark_mean'" in err and "got nan" in err, err
    config.write_text(config.read_text().replace(".nan", "255.0"))
    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "health", str(FACE),
                             "--node-name", "driver_monitor", "--config", str(config)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            timeout=60)
    assert result.returncode == 0 and b"dark" in result.stdout, result


def _groups(kind: str) -> dict[str, tuple[type, str]]:
    """Every parameter of node ``kind`` -> (the settings dataclass that reads it, its prefix), as the
    nodes and commands build them: each group through section_from_params."""
    out: dict[str, tuple[type, str]] = {}

    def walk(cls: type, prefix: str, instance: Any = None) -> None:
        for f in dataclasses.fields(cls):
            default = getattr(instance, f.name) if instance is not None else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            if dataclasses.is_dataclass(default):
                walk(type(default), f"{prefix}{f.name}.", default)
            else:
                out.setdefault(prefix + f.name, (cls, prefix))

    for prefix, cls in node_sections(kind):
        walk(cls, prefix)
    return out


def _bad_numbers(item: Any) -> list[Any]:
    """Values outside what parameter ``item`` may hold: NaN, and each side of its range."""
    if item.hint is float:
        bad: list[Any] = [math.nan]
    elif item.hint is int:
        bad = []
    elif str(item.hint) in ("list[float]", "tuple[float, ...]"):
        return [[math.nan] * max(1, len(item.default)), [math.inf] * max(1, len(item.default))]
    else:
        return []
    bounds = item.range if isinstance(item.range, tuple) and len(item.range) == 2 and all(
        b is None or isinstance(b, (int, float)) for b in item.range) else None
    if bounds is None:
        return bad + ([math.inf] if item.hint is float else [])
    low, high = bounds
    step = 1 if item.hint is int else 0.5
    if low is not None:
        bad.append(low - step - abs(low))
    if high is not None:
        bad.append(high + step + abs(high))
    return bad


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_every_number_outside_its_range_or_nan_is_refused_by_the_loader(kind: str) -> None:
    """The range each parameter declares (what `ros2 param describe` shows) is what the loader
    enforces for every command too; NaN is never a setting, nor a non-finite number where no range
    says it may be. Some ranges were checked only by ROS (attention.neutral_yaw_deg 500 was taken by
    replay), and NaN passed most checks."""
    groups = _groups(kind)
    schema = node_schema(kind)
    assert set(groups) == set(schema)
    tried = 0
    for name, item in schema.items():
        cls, prefix = groups[name]
        section_from_params(cls, {name: item.default}, prefix, "probe.yaml")  # the default is fine
        for value in _bad_numbers(item):
            tried += 1
            with pytest.raises(ConfigError) as refused:  # the class's own words, or the loader's
                settings = section_from_params(cls, {name: value}, prefix, "probe.yaml")
                if hasattr(settings, "validate"):  # a node's own settings: as its configure does
                    settings.validate()
            assert name.rsplit(".", 1)[-1] in str(refused.value), refused.value
    assert tried > 100


SAMPLE_BAG = ROOT / "sense_perception" / "data" / "sample_bag"
CABIN = "/camera/cabin/image_raw/compressed"


@pytest.mark.parametrize("text, cabin, named", [
    ("identity:\n  window: 4611686018427387904\n", True, "identity.window"),
    ("face:\n  top_k: 4611686018427387904\n", True, "face.top_k"),
    ("runtime:\n  intra_op_threads: 4611686018427387904\n", False, "runtime.intra_op_threads"),
    ("detector:\n  max_batch: 1000000000\n", False, "detector.max_batch"),
    ("tiling:\n  mode: horizon_bands\n  min_tile_px: 1\n  columns: 4611686018427387904\n", False,
     "tiling.columns"),
])
def test_a_count_that_sizes_memory_or_threads_has_an_upper_bound(tmp_path: Path, text: str,
                                                                 cabin: bool, named: str) -> None:
    """A count far beyond any use (a typo, or 2**62) reached numpy or onnxruntime: identity.window
    ended the replay in a traceback ('array is too big'), runtime.intra_op_threads in a multi-line
    pybind11 error naming no parameter, max_batch 10**9 asked for terabytes, and face.top_k and
    tiling.columns dropped every frame as 'inference failed'. Each has an upper bound now, which
    ROS enforces on the nodes too; the replay refuses the file before the first frame."""
    config = write(tmp_path, text)
    topics = ["--topics", "--cabin", CABIN] if cabin else ["--topics", "/camera/front/image_raw/compressed"]
    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay",
                             str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--config", str(config),
                             *topics], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, timeout=300)
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err[-3000:]
    assert result.returncode == 2, err
    assert named in err and ("4611686018427387904" in err or "1000000000" in err), err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_the_replay_checks_the_nodes_own_parameters_as_the_node_does(tmp_path: Path) -> None:
    """The replay read object_detector's and driver_monitor's own parameters without the node's
    checks: a mount 1.5 m below the road (a sign typo) was taken, where the node refuses it."""
    config = write(tmp_path, "mount_height: -1.5\n")
    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay",
                             str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--config", str(config),
                             "--topics", "/camera/front/image_raw/compressed"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            timeout=300)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2 and "Traceback" not in err, err
    assert "parameter 'mount_height'" in err and "-1.5" in err, err
