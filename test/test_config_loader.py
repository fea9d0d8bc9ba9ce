"""The one config loader (sense_perception.config.load_params) and every command that reads configs
through it: misspelt sections and names are refused with the closest valid name, the plain form
(no node wrapper) is applied, never ignored, and the simulator overlays give the settings of the
complete files they replaced."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from replay_helpers import FRONT, SAMPLE_BAG
from sense_perception.cli.main import main
from sense_perception.config import NODE_KINDS, bundled_config, load_params, node_schema
from sense_perception.errors import ConfigError
from sense_perception.ros.settings import descriptor_fields, ros_default, ros_param_value

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "config"
# load_params of config/carla.yaml and config/awsim.yaml, captured while they were still complete
# files (every parameter listed), before they became overlays on perception.yaml; score thresholds
# since given as calibrated scores (detector.calibrated_scores: the same raw operating point).
BEFORE_OVERLAYS = ROOT / "test" / "data" / "config" / "simulator_params_before_overlays.json"
STREET = ROOT.parent / "shared" / "data" / "street"
IMAGE = STREET / "comma2k19_highway280_rav4_preview.png"
HAND_LABELLED = ROOT / "test" / "data" / "hand_labelled" / "ground_truth.json"

MISSPELT_SECTION = "object_detector:\n  ros__parameters:\n    detectr:\n      score_threshold: 0.99\n"
PLAIN = "detector:\n  score_threshold: 0.99\n"


def _write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the loader ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["carla", "awsim"])
@pytest.mark.parametrize("node", NODE_KINDS)
def test_simulator_overlays_give_the_settings_of_the_complete_files(name, node):
    before = json.loads(BEFORE_OVERLAYS.read_text())[name][node]
    path = CONFIGS / f"{name}.yaml"
    assert path.read_text().startswith("# base: perception.yaml\n")
    assert len(path.read_text().splitlines()) < 70  # only the keys it changes (was 215 lines)
    params = load_params(path, node)
    # Parameters added after the capture (autoware.*, the 3-D positions' camera_info_topics and
    # mount_*, camera_health.*, tracking.velocity.*, runtime.openvino_int8,
    # detector.duplicates.nested_recheck_crops and nested_recheck_input, detector.animals,
    # detector.class_thresholds.animal, input.mono16_bits, inference_stall_s,
    # warm_up_timeout_s and detector.low_light's noise settings) come from
    # perception.yaml unchanged.
    added = set(params) - set(before)
    if node == "object_detector":  # derived: the file's own cabin camera, never a detector input
        assert params["cabin_camera_topic"] == load_params(path, "driver_monitor")["camera_topic"]
        added.discard("cabin_camera_topic")
        params.pop("cabin_camera_topic")
    if node == "driver_monitor":  # derived: the file's exterior cameras, never face identification
        assert params["exterior_camera_topics"] == \
            load_params(path, "object_detector")["camera_topics"]
        added.discard("exterior_camera_topics")
        params.pop("exterior_camera_topics")
    # rendered frames have no sensor noise: the simulator set-ups turn the pixel frozen rule off
    assert params.pop("camera_health.frozen_change") == 0.0
    added.discard("camera_health.frozen_change")
    assert {k: params[k] for k in added} == {k: load_params(CONFIGS / "perception.yaml", node)[k] for k in added}
    assert all(k.startswith(("autoware.", "mount_", "camera_health.", "tracking.velocity."))
               or k in ("camera_info_topics", "runtime.openvino_int8",
                        "detector.duplicates.nested_recheck_crops",
                        "detector.duplicates.nested_recheck_input", "detector.animals",
                        "detector.class_thresholds.animal", "input.mono16_bits",
                        "inference_stall_s", "warm_up_timeout_s",
                        "detector.low_light.noise_reference",
                        "detector.low_light.denoise_noise_power",
                        "detector.low_light.chroma_noise_power")
               for k in added), added
    assert {k: v for k, v in params.items() if k not in added} == before


@pytest.mark.parametrize("name", ["carla", "awsim"])
def test_launch_files_resolve_the_overlays(name):
    from sense_perception.ros import launch_support

    for node in NODE_KINDS:
        params = launch_support.node_parameters(node, {"config": name})
        before = json.loads(BEFORE_OVERLAYS.read_text())[name][node]
        assert {k: v for k, v in params.items() if k in before} == {
            k: ros_param_value(v) for k, v in before.items()}
        assert set(before) <= set(params)
    params = launch_support.node_parameters("object_detector", {"config": name})
    assert params["detector.score_threshold"] == 0.17 and params["detector.nms_iou"] == 0.5  # base


def test_an_overlay_replaces_only_its_keys_and_its_base_is_relative_to_it(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path, "object_detector:\n  ros__parameters:\n    detector: {nms_iou: 0.4, model: yolox_nano}\n"
                     "    tracking: {enabled: false}\n", "base.yaml")
    over = _write(tmp_path / "sub", "# base: ../base.yaml\nobject_detector:\n  ros__parameters:\n"
                                    "    detector: {nms_iou: 0.6}\n")
    assert load_params(over, "object_detector") == {
        "detector.nms_iou": 0.6, "detector.model": "yolox_nano", "tracking.enabled": False}
    # A bundled name works as a base; the overlay's own typo is still refused.
    bundled = _write(tmp_path, "# base: perception\nobject_detector:\n  ros__parameters:\n"
                               "    detector: {score_treshold: 0.5}\n", "b.yaml")
    with pytest.raises(ConfigError, match="did you mean detector.score_threshold"):
        load_params(bundled, "object_detector")
    # ... spelt as a file name too, as the bundled overlays and docs/configuration.md write it,
    # from a folder that holds no such file (it was looked for beside the overlay only)
    named = _write(tmp_path / "sub", "# base: carla.yaml\nobject_detector:\n  ros__parameters:\n"
                                     "    detector: {nms_iou: 0.6}\n", "mine.yaml")
    params = load_params(named, "object_detector")
    assert params["detector.nms_iou"] == 0.6
    assert params["camera_topics"] == load_params(bundled_config("carla"), "object_detector")["camera_topics"]
    loop = _write(tmp_path, "# base: loop.yaml\n{}\n", "loop.yaml")
    with pytest.raises(ConfigError, match="leads back to itself"):
        load_params(loop, "object_detector")


def test_a_misspelt_section_is_refused_with_the_section_meant(tmp_path):
    path = _write(tmp_path, MISSPELT_SECTION)
    for node in NODE_KINDS:  # whichever node a command reads, the file is refused
        with pytest.raises(ConfigError) as info:
            load_params(path, node)
        assert "unknown parameter(s) detectr.score_threshold (did you mean " \
               "detector.score_threshold?)" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("text, words", [
    ("object_detectr:\n  ros__parameters:\n    autostart: true\n",
     ["unknown node section 'object_detectr'", "did you mean object_detector?"]),
    ("object_detector:\n  ros__parameters: {}\ndetector:\n  score_threshold: 0.5\n",
     ["'detector'", "outside the node sections", "object_detector: ros__parameters:"]),
    ("object_detector:\n  detector:\n    score_threshold: 0.5\n",
     ["'object_detector'", "has no ros__parameters"]),
    ("detector:\n  score_treshold: 0.5\n", ["detector.score_treshold", "did you mean detector.score_threshold?"]),
    ("detectr:\n  score_threshold: 0.5\n", ["detectr.score_threshold (did you mean detector.score_threshold?)"]),
    ("'/**':\n  ros__parameters:\n    runtime: {provders: []}\n", ["runtime.provders", "did you mean runtime.providers?"]),
    ("driver_monitor:\n  ros__parameters:\n    gallry: {path: g.json}\n",
     ["gallry.path (did you mean gallery.path?)"]),
    ("object_detector:\n  ros__parameters:\n    detector:\n      class_thresholds: {carr: 0.2}\n",
     ["detector.class_thresholds.carr", "did you mean detector.class_thresholds.car?"]),
])
def test_unknown_sections_and_names_are_refused_with_the_fix(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_params(path, "object_detector")
    for word in words:
        assert word in str(info.value), str(info.value)


def test_the_plain_form_is_the_parameters_of_both_nodes(tmp_path):
    path = _write(tmp_path, "detector: {score_threshold: 0.99}\ninput: {max_width: 640}\n"
                            "gallery: {path: /tmp/g.json}\nautostart: false\n")
    assert load_params(path, "object_detector") == {
        "detector.score_threshold": 0.99, "input.max_width": 640, "autostart": False}
    assert load_params(path, "driver_monitor") == {
        "input.max_width": 640, "gallery.path": "/tmp/g.json", "autostart": False}
    # /** of the ROS 2 form is shared the same way; the node's own section wins over it.
    shared = _write(tmp_path, "'/**':\n  ros__parameters:\n    detector: {nms_iou: 0.4}\n    input: {max_width: 640}\n"
                              "driver_monitor:\n  ros__parameters:\n    input: {max_width: 800}\n", "s.yaml")
    assert load_params(shared, "object_detector") == {"detector.nms_iou": 0.4, "input.max_width": 640}
    assert load_params(shared, "driver_monitor") == {"input.max_width": 800}


# -- the parameters the nodes declare -------------------------------------------------------------

@pytest.mark.parametrize("node", NODE_KINDS)
def test_every_parameter_has_a_description_and_numbers_a_range(node):
    ranged = 0
    for name, item in node_schema(node).items():
        fields = descriptor_fields(item)
        ranged += "range" in fields
        assert len(fields["description"]) > 10, name
        if item.numeric:  # a range ROS enforces, or (e.g. "negative: the default") the rule in words
            assert fields["additional_constraints"], name
            if "range" in fields:
                low, high = fields["range"]
                assert low <= item.default <= high, name
        if str(item.hint).startswith("list"):
            assert fields["additional_constraints"], f"{name}: say what the list holds"
    assert ranged >= 40
    schema = node_schema(node)
    assert "camera_role" in schema if node == "driver_monitor" else "detector.score_threshold" in schema
    assert descriptor_fields(node_schema("object_detector")["detector.score_threshold"])["range"] == (0.0, 1.0)
    high = descriptor_fields(node_schema("object_detector")["tracking.max_age"])["range"][1]
    assert math.isinf(high)  # open upwards
    assert ros_default(node_schema("object_detector")["detector.mean"]) is None  # [] cannot be a ROS value


# -- every command -----------------------------------------------------------------------------------

def _commands(tmp_path: Path, config: Path) -> dict[str, list[str]]:
    return {
        "detect": ["detect", str(IMAGE), "--out", str(tmp_path / "d"), "--config", str(config)],
        "eval": ["eval", str(HAND_LABELLED), "--out", str(tmp_path / "e"), "--config", str(config)],
        "replay": ["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "r"), "--config", str(config)],
        "fleet": ["fleet", str(SAMPLE_BAG), "--out", str(tmp_path / "f"), "--config", str(config)],
        "driver": ["driver", "list", "--gallery", str(tmp_path / "g.json"), "--config", str(config)],
    }


@pytest.mark.parametrize("command", ["detect", "eval", "replay", "fleet", "driver"])
def test_every_command_refuses_a_misspelt_section(tmp_path, capsys, command):
    # The driver command reads driver_monitor: its misspelt section is its own.
    text = MISSPELT_SECTION if command != "driver" else MISSPELT_SECTION.replace(
        "object_detector", "driver_monitor").replace("detectr", "gallry").replace("score_threshold", "path")
    config = _write(tmp_path, text)
    assert main(_commands(tmp_path, config)[command]) == 2
    err = capsys.readouterr().err
    assert "did you mean " + ("gallery.path" if command == "driver" else "detector.score_threshold") in err, err
    assert str(config) in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["detect", "eval", "replay", "fleet", "driver"])
def test_every_command_resolves_config_at_its_option(tmp_path, capsys, command):
    """--config goes through one loader for every command (cli.config_file: a bundled name or a
    file, refused as an option); eval resolved it itself, after reading its ground truth."""
    args = _commands(tmp_path, Path("no_such_config"))[command]  # neither a file nor bundled
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --config: config 'no_such_config' is neither a file nor a bundled" in err, err


@pytest.mark.parametrize("command", ["detect", "eval", "replay", "fleet"])
def test_every_command_refuses_a_misspelt_plain_key(tmp_path, capsys, command):
    config = _write(tmp_path, "detector:\n  score_treshold: 0.99\n")
    assert main(_commands(tmp_path, config)[command]) == 2
    assert "did you mean detector.score_threshold?" in capsys.readouterr().err


def test_detect_applies_the_plain_form(tmp_path, capsys):
    config = _write(tmp_path, "detector:\n  score_threshold: 0.99\n  pedestrian_threshold: 0.99\n"
                              "  class_thresholds: {car: -1.0, pedestrian: -1.0, truck: -1.0}\nruntime:\n  providers: [CPUExecutionProvider]\n")
    assert main(_commands(tmp_path, config)["detect"] + ["--no-annotate"]) == 0
    assert "score >= 0.99" in capsys.readouterr().out
    doc = json.loads((tmp_path / "d" / "detections.json").read_text())
    assert all(d["score"] >= 0.99 for image in doc["images"] for d in image["detections"])


def test_eval_applies_the_plain_form(tmp_path, capsys):
    # A value the detector refuses shows the plain key was read (ignored, eval would have run).
    config = _write(tmp_path, "detector:\n  preprocess: quantum\n")
    assert main(_commands(tmp_path, config)["eval"]) == 2
    assert "detector.preprocess must be one of" in capsys.readouterr().err


def test_replay_applies_the_plain_form(tmp_path, capsys):
    # input.max_width 64: every exterior frame is too wide, dropped and counted, naming the limit.
    config = _write(tmp_path, "input:\n  max_width: 64\nruntime:\n  providers: [CPUExecutionProvider]\n")
    assert main(_commands(tmp_path, config)["replay"] + ["--topics", FRONT]) == 1
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "input.max_width=64" in json.dumps(summary["skipped"])


def test_driver_applies_the_plain_form(tmp_path, capsys):
    gallery = tmp_path / "plain_gallery.json"
    config = _write(tmp_path, f"gallery:\n  path: {gallery}\n")
    assert main(["driver", "list", "--config", str(config)]) == 0
    assert str(gallery) in capsys.readouterr().out


def test_bundled_names_work_in_every_command(tmp_path, capsys):
    assert main(["driver", "list", "--gallery", str(tmp_path / "g.json"), "--config", "carla"]) == 0
    with pytest.raises(SystemExit) as info:  # argparse: a name that is neither file nor bundled
        main(["driver", "list", "--config", "carl"])
    assert info.value.code == 2
    assert "neither a file nor a bundled config" in capsys.readouterr().err


def test_quality_overlay_tiles_the_horizon_band_and_keeps_the_rest():
    from sense_perception.config import bundled_config

    path = bundled_config("quality")
    quality = load_params(path, "object_detector")
    base = load_params(CONFIGS / "perception.yaml", "object_detector")
    assert quality["tiling.mode"] == "horizon_bands"
    # With tiles the loose-outer rule of the duplicates step would drop whole cars that score
    # lower than a tile's box of a part of them (docs/detection-quality.md, "Far vehicles").
    assert quality["detector.duplicates.nested_outer_score_ratio"] == 0.0
    assert base["detector.duplicates.nested_outer_score_ratio"] > 0.0
    # Nested boxes re-detected on crops: one more model run per crop; the 2-core default affords
    # one crop a frame, the quality overlay up to 8, both at 256x256.
    assert quality["detector.duplicates.nested_recheck_crops"] == 8
    assert base["detector.duplicates.nested_recheck_crops"] == 1
    assert quality["detector.duplicates.nested_recheck_input"] == 256
    assert base["detector.duplicates.nested_recheck_input"] == 256
    changed = ("tiling.mode", "detector.duplicates.nested_outer_score_ratio",
               "detector.duplicates.nested_recheck_crops")
    assert {k: v for k, v in quality.items() if k not in changed} == {
        k: v for k, v in base.items() if k not in changed}


def test_what_image_files_cannot_use_is_listed_when_it_differs_from_the_default():
    """detect and eval name the settings they do not apply (settings_not_for_files): none for the
    defaults or the quality overlay (detector settings only), the node's own for Autoware's set-up,
    nothing that equals its default."""
    from sense_perception.config import bundled_config, load_params, settings_not_for_files

    def listed(name: str) -> list[str]:
        return settings_not_for_files(load_params(bundled_config(name), "object_detector"))

    assert listed("perception") == [] and listed("quality") == []
    assert listed("autoware") == ["autoware.objects_topic", "autoware.rois_topic", "camera_topics"]
    assert settings_not_for_files({"tracking.max_age": 1.0, "detector.score_threshold": 0.9,
                                   "input.max_width": 640, "mount_pitch_sd": 2.0,
                                   "warm_up_timeout_s": 30.0}) == []  # applied (R87)
    assert settings_not_for_files({"tracking.max_age": 3.0, "mount_height": 1.5,
                                   "detector.ignore_regions.polygons": ["/c: 0,0 1,0 1,1"]}) == [
        "detector.ignore_regions.polygons", "mount_height", "tracking.max_age"]


def _settings_classes():
    """Every settings dataclass the config loader fills (nested ones too), but the nodes' own
    (ObjectDetectorSettings, DriverMonitorNodeSettings: their validate() is asked by every
    builder), with the field of each that a NaN or a value past its range would break."""
    import dataclasses
    import typing

    from sense_perception.config import node_sections, numeric_range

    found: dict[type, list[tuple[str, object]]] = {}

    def walk(cls):
        if cls in found or callable(getattr(cls, "validate", None)):
            return
        found[cls] = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            if dataclasses.is_dataclass(default):
                walk(type(default))
            span = numeric_range(f.metadata.get("range"))
            if hints[f.name] is float:
                found[cls].append((f.name, math.nan))
            elif hints[f.name] is int and span and span[1] is not None:
                found[cls].append((f.name, span[1] + 1))
    for kind in NODE_KINDS:
        for _, cls in node_sections(kind):
            walk(cls)
    return [(cls, name, bad) for cls, fields in found.items() for name, bad in fields]


def test_settings_built_in_python_are_held_to_the_loaders_rules():
    """R75: the settings dataclasses the loader fills took NaN (and many a value past the range
    a config key is refused outside) when built in Python, as the replay engine, fleet workers
    and tests build them: CameraHealthSettings(dark_mean=nan) judged every frame not dark,
    TilingConfig(columns=100) passed. Every number field is held to the loader's one rule now
    (config.check_settings from each __post_init__); the loader's own words are unchanged."""
    from sense_perception.core.health.camera_settings import CameraHealthSettings
    from sense_perception.core.tracking.tracker import TrackingConfig

    cases = _settings_classes()
    assert len(cases) > 150  # every group, not a few
    taken = [f"{cls.__name__}.{name}={bad}" for cls, name, bad in cases
             if _builds(cls, name, bad)]
    assert not taken, taken
    with pytest.raises(ValueError, match=re.escape(
            "CameraHealthSettings.dark_mean must be within [0.0, 255.0], got nan")):
        CameraHealthSettings(dark_mean=math.nan)
    # the loader: the key and the source, as before
    with pytest.raises(ConfigError, match=re.escape(
            "parameter 'camera_health.dark_mean' in c.yaml must be within [0.0, 255.0], got nan")):
        CameraHealthSettings.from_params({"camera_health.dark_mean": math.nan}, "c.yaml")
    with pytest.raises(ConfigError, match=re.escape(
            "parameter 'camera_health.stream.clear_frames' in c.yaml must be within [1, 1000]")):
        CameraHealthSettings.from_params({"camera_health.stream.clear_frames": 0}, "c.yaml")
    assert TrackingConfig().enabled  # the defaults hold


def _builds(cls, name, value):
    """Whether settings class ``cls`` takes ``value`` for field ``name``."""
    try:
        cls(**{name: value})
    except (ValueError, ConfigError):
        return False
    return True


def test_ros2_param_describe_says_what_the_range_cannot():
    """R75: ``ros2 param describe`` showed camera_health.lit_surface_ratio's range 0..100 while
    0 < value < 1 is refused (R68, said only in the description), and 0..1 for the ends a class
    refuses on its own (tracking.match_iou 0, tiling.overlap 1) or a rule between settings
    (tracking.low_threshold above high_threshold): ROS 2's ranges are inclusive and one span, so
    each such rule is declared beside the range (``setting(constraint=...)``) and shown after it
    in additional_constraints; the loader's rules are unchanged."""
    from sense_perception.config import node_sections
    from sense_perception.core.health.camera_settings import CameraHealthSettings

    lit = descriptor_fields(node_schema("object_detector")["camera_health.lit_surface_ratio"])
    assert lit["additional_constraints"] == "0..100; 0 (off) or at least 1"
    assert lit["range"] == (0.0, 100.0)  # what ROS enforces itself, as before
    with pytest.raises(ConfigError, match=r"lit_surface_ratio \(0\.5\) must be 0 \(off\) or at"):
        CameraHealthSettings.from_params({"camera_health.lit_surface_ratio": 0.5})
    unsaid = []
    for kind in NODE_KINDS:
        schema = node_schema(kind)
        for prefix, cls in node_sections(kind):
            for key, cls_of, name, hint, span in _ranged_fields(prefix, cls):
                for end in span:
                    if end is None or _builds(cls_of, name, hint(end)):
                        continue
                    if ";" not in descriptor_fields(schema[key])["additional_constraints"]:
                        unsaid.append(f"{key} {end}")
    assert not unsaid, unsaid


def _ranged_fields(prefix, cls):
    """(key, class, field, type, (low, high)) of every number field with a declared range of
    settings dataclass ``cls`` and the ones nested in it, but the nodes' own."""
    import dataclasses
    import typing

    from sense_perception.config import numeric_range

    if callable(getattr(cls, "validate", None)):
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        if dataclasses.is_dataclass(default):
            yield from _ranged_fields(f"{prefix}{f.name}.", type(default))
        span = numeric_range(f.metadata.get("range"))
        if span and hints[f.name] in (int, float):
            yield prefix + f.name, cls, f.name, hints[f.name], span
