"""The Autoware set-up without ROS: config/autoware.yaml, and the logic of launch/autoware.launch.py."""
from __future__ import annotations

import ast
import re
import sys
import types
from pathlib import Path

import pytest

from sense_perception.config import bundled_config, load_params, resolve_config, section_from_params
from sense_perception.core.autoware.rois import AutowareConfig, rois_topics
from sense_perception.errors import ConfigError
from sense_perception.ros import autoware_launch
from sense_perception.ros.settings import ObjectDetectorSettings, check_param_names

ROOT = Path(__file__).resolve().parents[1]
AUTOWARE = ROOT / "config" / "autoware.yaml"
ROIS = "/perception/object_recognition/detection/rois"


def test_autoware_config_is_bundled_and_turns_the_rois_on():
    assert resolve_config("autoware") == bundled_config("autoware") == AUTOWARE
    params = load_params(AUTOWARE, "object_detector")
    check_param_names(params, ObjectDetectorSettings, str(AUTOWARE))
    cfg = section_from_params(AutowareConfig, params, "autoware.", str(AUTOWARE))
    assert cfg.enabled and cfg.other_labels == "drop" and cfg.camera_info_topic == "auto"
    assert rois_topics(params["camera_topics"], cfg.rois_topic) == [ROIS + "0"]
    # and each calibrated camera's road users in 3-D, on a topic of its own index
    assert rois_topics(params["camera_topics"], cfg.objects_topic, "autoware.objects_topic") == [
        "/perception/object_recognition/detection/camera0/objects"]
    # An overlay, not a copy: the rest comes from perception.yaml.
    assert AUTOWARE.read_text().startswith("# base: perception.yaml\n")
    base = load_params(ROOT / "config" / "perception.yaml", "object_detector")
    changed = {"camera_topics", "autoware.rois_topic", "autoware.objects_topic"}
    assert {k: v for k, v in params.items() if k not in changed} == {
        k: v for k, v in base.items() if k not in changed}
    assert base["autoware.rois_topic"] == base["autoware.objects_topic"] == ""  # off unless a config turns them on


@pytest.mark.parametrize("number, transport, topics", [
    ("1", "raw", ["/sensing/camera/camera0/image_rect_color"]),
    ("3", "compressed", [f"/sensing/camera/camera{i}/image_rect_color/compressed" for i in range(3)]),
    ("8", "raw", [f"/sensing/camera/camera{i}/image_rect_color" for i in range(8)]),
])
def test_image_number_gives_autowares_camera_topics(number, transport, topics):
    assert autoware_launch.camera_topics(number, transport) == topics


@pytest.mark.parametrize("number, transport, fragment", [
    ("0", "raw", "image_number:='0' must be a whole number from 1 to 8"),
    ("9", "raw", "from 1 to 8"), ("two", "raw", "from 1 to 8"),
    ("2", "h264", "image_transport:='h264' must be one of raw, compressed"),
])
def test_bad_launch_arguments_are_refused_with_the_valid_values(number, transport, fragment):
    with pytest.raises(ConfigError, match=fragment):
        autoware_launch.camera_topics(number, transport)


def test_node_parameters_wire_each_camera_to_its_own_rois_topic():
    params = autoware_launch.node_parameters({"image_number": "2"})
    assert params["camera_topics"] == ["/sensing/camera/camera0/image_rect_color",
                                       "/sensing/camera/camera1/image_rect_color"]
    assert rois_topics(params["camera_topics"], params["autoware.rois_topic"]) == [ROIS + "0", ROIS + "1"]
    # Not set on the node unless asked: Autoware's global use_sim_time (SetParameter) applies.
    assert "use_sim_time" not in params
    assert autoware_launch.node_parameters({"use_sim_time": "true"})["use_sim_time"] is True
    # Cameras chosen by topic keep their own index: camera3's ROIs go to rois3.
    params = autoware_launch.node_parameters({"camera_topics": "/sensing/camera/camera3/image_rect_color,"
                                                                "/sensing/camera/camera5/image_rect_color"})
    assert rois_topics(params["camera_topics"], params["autoware.rois_topic"]) == [ROIS + "3", ROIS + "5"]
    assert params["detector.model"] == "picodet_s_416"  # the rest comes from perception.yaml


def test_launch_file_starts_the_autoware_node_through_the_tested_logic():
    tree = ast.parse((ROOT / "launch" / "autoware.launch.py").read_text())
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    call = funcs["generate_launch_description"].body[0].value
    assert call.func.id == "launch_description" and not call.args
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [
        ("sense_perception.ros.autoware_launch", ["launch_description"])]


CAM3 = "/sensing/camera/camera3/image_rect_color"


def test_autowares_yolox_arguments_mean_here_what_they_mean_there():
    """A user swapping this launch in for autoware_tensorrt_yolox's keeps its arguments:
    input/image and output/objects were declared nowhere and unused without a word (the node
    read camera0 and published on rois0). They name the camera and its ROI topic now (R45)."""
    params = autoware_launch.node_parameters({"input/image": CAM3, "output/objects": "/my/rois3"})
    assert params["camera_topics"] == [CAM3] and params["autoware.rois_topic"] == "/my/rois3"
    # without output/objects, the camera's own index: rois3
    params = autoware_launch.node_parameters({"input/image": CAM3})
    assert rois_topics(params["camera_topics"], params["autoware.rois_topic"]) == [ROIS + "3"]
    # yolox_s_plus_opt.launch.xml's camera_id and image_topic_name (image_raw there by default)
    params = autoware_launch.node_parameters({"camera_id": "2"})
    assert params["camera_topics"] == ["/sensing/camera/camera2/image_raw"]
    params = autoware_launch.node_parameters({"camera_id": "2", "image_topic_name": "image_rect_color"})
    assert params["camera_topics"] == ["/sensing/camera/camera2/image_rect_color"]


@pytest.mark.parametrize("args, fragment", [
    ({"input/image": CAM3, "image_number": "2"}, "give either input/image"),
    ({"input/image": CAM3, "camera_topics": CAM3}, "give either input/image"),
    ({"input/image": "/a//b"}, "not a ROS topic name"),
    ({"camera_id": "x1"}, "camera_id:='x1'"),
    ({"output/objects": "/my/rois", "image_number": "2"}, "one camera's ROI topic"),
    ({"output/objects": "/my rois"}, "output/objects: '/my rois' is not a ROS topic name"),
])
def test_yolox_arguments_that_contradict_this_launchs_are_refused(args, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        autoware_launch.node_parameters(args)


def test_yolox_arguments_with_no_equivalent_are_warned_naming_what_to_use():
    notes = autoware_launch.yolox_notes({"model_path": "/data/yolox.onnx", "use_decompress": "true",
                                         "output/mask": "/mask0", "data_path": "/home/u/autoware_data",
                                         "input/image": CAM3, "camera_id": "3"})
    # data_path: Autoware's global folder, every include inherits it; use_decompress with a
    # camera says which topic the camera is (below)
    assert len(notes) == 3, notes
    assert any("model_path:=/data/yolox.onnx" in n and "detector.model" in n for n in notes)
    assert not any("use_decompress" in n for n in notes)
    assert any("use_decompress" in n and "image_transport:=compressed" in n
               for n in autoware_launch.yolox_notes({"use_decompress": "true"}))
    assert any("camera_id:=3" in n and "input/image names the camera" in n for n in notes)
    assert autoware_launch.yolox_notes({}) == []


def fake_launch(monkeypatch) -> dict[str, list]:
    """Stand-ins for launch and launch_ros (no wheel here) that record what the launch does: the
    nodes it starts (their keyword arguments) and what it logs (info, warnings)."""
    made: dict[str, list] = {"nodes": [], "info": [], "warnings": []}
    fakes = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.logging", "launch_ros", "launch_ros.actions")}
    fakes["launch"].LaunchDescription = list
    fakes["launch.actions"].DeclareLaunchArgument = lambda *a, **k: None
    fakes["launch.actions"].OpaqueFunction = lambda function: function
    fakes["launch.logging"].get_logger = lambda name: types.SimpleNamespace(
        warning=made["warnings"].append, info=made["info"].append)
    fakes["launch_ros.actions"].LifecycleNode = lambda **k: made["nodes"].append(k)
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    return made


def test_launch_declares_the_yolox_arguments_and_hands_them_to_the_node(monkeypatch):
    """The launch itself, with stand-ins for launch and launch_ros (no wheel here): it declares
    autoware_tensorrt_yolox's arguments, reads them from the launch configurations, starts the
    node on input/image's camera and warns about the ones it cannot use."""
    import sys
    import types

    made: dict[str, list] = {"declared": [], "nodes": [], "warnings": []}

    def record(kind):
        def make(*args, **kwargs):
            made[kind].append((args, kwargs))
            return (kind, args, kwargs)
        return make

    fakes = {"launch": types.ModuleType("launch"), "launch.actions": types.ModuleType("launch.actions"),
             "launch.logging": types.ModuleType("launch.logging"),
             "launch_ros": types.ModuleType("launch_ros"),
             "launch_ros.actions": types.ModuleType("launch_ros.actions")}
    fakes["launch"].LaunchDescription = list
    fakes["launch.actions"].DeclareLaunchArgument = record("declared")
    fakes["launch.actions"].OpaqueFunction = lambda function: function
    fakes["launch.logging"].get_logger = lambda name: types.SimpleNamespace(
        warning=lambda text: made["warnings"].append(text))
    fakes["launch_ros.actions"].LifecycleNode = record("nodes")
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)

    description = autoware_launch.launch_description()
    declared = {args[0] for args, _ in made["declared"]}
    assert {"input/image", "output/objects", "model_path", "use_decompress"} <= declared
    assert {f"image_raw{i}" for i in range(8)} <= declared  # Autoware's camera topics (R54)
    context = types.SimpleNamespace(launch_configurations={
        "input/image": CAM3, "output/objects": "/my/rois3", "model_path": "/data/yolox.onnx"})
    description[-1](context)  # the OpaqueFunction
    [(_, node)] = made["nodes"]
    assert node["parameters"][0]["camera_topics"] == [CAM3]
    assert node["parameters"][0]["autoware.rois_topic"] == "/my/rois3"
    assert len(made["warnings"]) == 1 and "model_path:=/data/yolox.onnx" in made["warnings"][0]
    # Autoware's image_raw<i>, as its perception launch hands them to an include (R54)
    made["nodes"].clear()
    description[-1](types.SimpleNamespace(launch_configurations={
        "image_number": "1", "image_raw0": "/sensing/camera/camera0/image_raw"}))
    [(_, node)] = made["nodes"]
    assert node["parameters"][0]["camera_topics"] == ["/sensing/camera/camera0/image_raw"]


@pytest.mark.parametrize("args, topics", [
    ({"input/image": CAM3}, [CAM3]),
    ({"camera_id": "3", "image_topic_name": "image_rect_color"}, [CAM3]),
    ({"camera_topics": f"/sensing/camera/camera0/image_rect_color,{CAM3}"},
     ["/sensing/camera/camera0/image_rect_color", CAM3]),
])
def test_autowares_image_number_inherited_by_an_include_agrees_with_the_cameras_named(args, topics):
    """Launch configurations are inherited: Autoware's perception launch declares image_number
    (6), so an include of this launch there with input/image (its yolox include swapped as is)
    or camera_topics was refused as 'names the cameras too', whatever the include said (R57).
    An image_number (and image_transport) the named cameras agree with is taken, and said."""
    inherited = {"image_number": "6", "image_transport": "raw"}
    params = autoware_launch.node_parameters({**inherited, **args})
    assert params["camera_topics"] == topics
    notes = autoware_launch.camera_notes({**inherited, **args})
    assert len(notes) == 2 and all("agrees with" in n for n in notes)
    assert "image_number:=6" in notes[0] and "image_transport:=raw" in notes[1]
    assert autoware_launch.camera_notes(inherited) == []  # image_number itself names the cameras
    # camera_id is a common name (camera drivers' launch files declare it): the camera it chose
    # is a warning, not only an info line
    warned = autoware_launch.yolox_notes({**inherited, **args})
    assert ("camera_id" in args) == any("chose the one camera " + CAM3 in w for w in warned)
    # a camera that is not one of them, or another transport, still contradicts it
    with pytest.raises(ConfigError, match=re.escape("not one of image_number:=2's cameras")):
        autoware_launch.node_parameters({**args, "image_number": "2"})
    with pytest.raises(ConfigError, match=re.escape("image_transport:=compressed contradicts")):
        autoware_launch.node_parameters({**args, "image_transport": "compressed"})
    with pytest.raises(ConfigError, match="must be a whole number from 1 to 8"):
        autoware_launch.node_parameters({**args, "image_number": "9"})
    # a camera without an index (multiple_yolox.launch.xml passes image_raw<i>, any name, with
    # output/objects rois<i>) contradicts no image_number
    params = autoware_launch.node_parameters({**inherited, "input/image": "/sensing/camera/front/image_raw",
                                              "output/objects": "rois0"})
    assert params["camera_topics"] == ["/sensing/camera/front/image_raw"]


def test_a_camera_without_an_index_takes_its_objects_topic_index_from_output_objects():
    """Autoware's multiple_yolox.launch.xml passes each camera's image_raw<i> (any name) with
    output/objects rois<i>: swapped for this launch, a camera named without an index
    (/sensing/camera/front/image_raw) was refused, because config/autoware.yaml's
    autoware.objects_topic takes {index} from the camera topic, though output/objects settled the
    ROIs (R57). The objects take the ROI topic's index now; a ROI topic without one is refused
    naming the fix."""
    front = "/sensing/camera/front/image_raw"
    params = autoware_launch.node_parameters({"input/image": front, "output/objects": "rois2"})
    assert params["camera_topics"] == [front] and params["autoware.rois_topic"] == "rois2"
    assert params["autoware.objects_topic"] == "/perception/object_recognition/detection/camera2/objects"
    with pytest.raises(ConfigError, match=re.escape("give output/objects as rois<i>")):
        autoware_launch.node_parameters({"input/image": front, "output/objects": "/x/rois_front"})


def test_the_launch_logs_that_an_inherited_image_number_agrees(monkeypatch):
    """Through the launch itself (stand-ins for launch and launch_ros): the node starts on
    input/image's camera and an info line says image_number agrees with it. Autoware's own
    per-camera arguments inherited from its perception launch naming other topics than this
    launch's cameras and ROIs were unused without a word (the fusion got no ROIs of that
    camera): a detection_rois<i> other than this launch's ROI topic of camera i is a warning
    (R57); an image_raw<i> beside cameras named by topic is R54's one warning (not used), which
    says so too where this launch's camera i is another topic, never two warnings."""
    made = fake_launch(monkeypatch)
    autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations={
        "image_number": "6", "input/image": CAM3, "output/objects": ROIS + "3",
        "image_raw3": CAM3, "detection_rois3": ROIS + "3",
        "image_raw0": "/sensing/camera/camera0/image_rect_color"}))
    [node] = made["nodes"]
    assert node["parameters"][0]["camera_topics"] == [CAM3]
    assert made["warnings"] == [] and len(made["info"]) == 1 and "image_number:=6" in made["info"][0]
    # Autoware's own image_raw<i> / detection_rois<i> naming other topics than this launch's
    made["nodes"].clear()
    cam1 = "/sensing/camera/camera1/image_rect_color"
    autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations={
        "camera_topics": f"/sensing/camera/camera0/image_rect_color,{cam1}",
        "image_raw1": "/sensing/camera/front_right/image_raw", "image_raw4": "/elsewhere/image",
        "detection_rois0": "/perception/object_recognition/detection/rois_front"}))
    # image_raw4 is not warned about: this launch has no camera 4 (another include's camera)
    assert len(made["nodes"]) == 1 and len(made["warnings"]) == 2, made["warnings"]
    assert made["warnings"][0].startswith(
        "launch argument image_raw1:=/sensing/camera/front_right/image_raw (Autoware's camera 1) "
        f"is not used: camera_topics names the cameras; this launch's camera 1 is {cam1}")
    assert "detection_rois0:=/perception/object_recognition/detection/rois_front" in made["warnings"][1]
    assert all("Autoware's fusion would get no ROIs" in made["warnings"][i] for i in (0, 1))
    # with image_number, image_raw<i> name the cameras (R54): none is warned about
    made["nodes"].clear()
    made["warnings"].clear()
    autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations={
        "image_number": "2", "image_raw1": "/sensing/camera/camera1/image_raw"}))
    [node] = made["nodes"]
    assert node["parameters"][0]["camera_topics"][1] == "/sensing/camera/camera1/image_raw"
    assert made["warnings"] == []
    # a relative ROI topic (multiple_yolox.launch.xml's rois<i>, in the pushed namespace) matches
    # Autoware's full name of it
    params = autoware_launch.node_parameters({"input/image": CAM3, "output/objects": "rois3"})
    assert autoware_launch.autoware_camera_notes(params, {"detection_rois3": ROIS + "3"}) == []
    assert len(autoware_launch.autoware_camera_notes(params, {"detection_rois3": ROIS + "4"})) == 1


def test_a_config_turning_autowares_outputs_off_is_refused_by_the_launch(tmp_path):
    """config:= a parameter file based on perception.yaml (autoware.rois_topic '') started a node
    on Autoware's cameras that published nothing for Autoware, without a word (R57): the fusion
    waited for ROIs that never came. Refused now, naming the fix; output/objects (a ROI topic)
    or a config with either Autoware output on is taken."""
    own = tmp_path / "mine.yaml"
    own.write_text("# base: perception.yaml\nobject_detector:\n  ros__parameters:\n"
                   "    detector.score_threshold: 0.3\n")
    for config in ("perception", str(own)):
        with pytest.raises(ConfigError, match=re.escape("turns Autoware's outputs off")) as caught:
            autoware_launch.node_parameters({"config": config, "image_number": "2"})
        assert "# base: autoware.yaml" in str(caught.value)
    based = tmp_path / "based.yaml"
    based.write_text("# base: autoware.yaml\nobject_detector:\n  ros__parameters:\n"
                     "    detector.score_threshold: 0.3\n")
    assert autoware_launch.node_parameters({"config": str(based)})["autoware.rois_topic"] == ROIS + "{index}"
    params = autoware_launch.node_parameters({"config": "perception", "input/image": CAM3,
                                              "output/objects": ROIS + "3"})
    assert params["autoware.rois_topic"] == ROIS + "3"


@pytest.mark.parametrize("image_number, given", [
    ("1", "objects"), ("6", "objects"), ("1", "/perception/object_recognition/detection/objects")])
def test_an_inherited_output_objects_naming_autowares_objects_topic_is_refused(image_number, given):
    """Autoware's camera_lidar_fusion_based_detection.launch.xml declares output/objects
    (default 'objects', its own DetectedObjects output): this launch included there without an
    output/objects of its own took the inherited 'objects' as the ROI topic, and the node
    published its ROIs on 'objects' in the pushed namespace
    (/perception/object_recognition/detection/objects), not on rois0 (R57). A ROI topic named
    '.../objects' is refused now, naming the include's fix; value="" leaves it out, and a
    relative rois<i> (as Autoware's multiple_yolox.launch.xml passes it) is taken."""
    args = {"output/objects": given, "image_number": image_number}
    with pytest.raises(ConfigError, match=re.escape(f"output/objects:={given} names a topic '.../objects'")) as caught:
        autoware_launch.node_parameters(args)
    assert 'value=""' in str(caught.value) and "camera_lidar_fusion_based_detection" in str(caught.value)
    assert autoware_launch.node_parameters({"output/objects": "rois0"})["autoware.rois_topic"] == "rois0"
    params = autoware_launch.node_parameters({**args, "output/objects": ""})
    assert rois_topics(params["camera_topics"], params["autoware.rois_topic"]) == [
        f"{ROIS}{i}" for i in range(int(image_number))]


def test_yolox_node_name_names_the_node_so_per_camera_includes_do_not_share_one_name(monkeypatch):
    """Autoware's multiple_yolox.launch.xml includes one detector launch per camera, naming each
    node with yolox_node_name (tensorrt_yolox0..7): swapped for this launch with its arguments as
    they are, every include started a node named object_detector (one name for several nodes:
    their parameter and lifecycle services collide), with only a warning that the argument was
    unused (R57). It names the node now; a name ROS would refuse is refused before the start."""
    made = fake_launch(monkeypatch)
    for i in range(2):
        autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations={
            "input/image": f"/sensing/camera/camera{i}/image_rect_color", "output/objects": f"rois{i}",
            "yolox_node_name": f"tensorrt_yolox{i}"}))
    assert [n["name"] for n in made["nodes"]] == ["tensorrt_yolox0", "tensorrt_yolox1"]
    assert made["warnings"] == []
    assert autoware_launch.node_name({}) == "object_detector"
    with pytest.raises(ConfigError, match="yolox_node_name:='0bad' .* is not a ROS node name"):
        autoware_launch.node_name({"yolox_node_name": "0bad"})


def test_use_decompress_means_the_camera_publishes_the_compressed_topic():
    """autoware_tensorrt_yolox's use_decompress:=true starts a decompressor reading
    <input/image>/compressed and publishing <input/image>: the camera publishes the compressed
    topic. Swapped for this launch with its arguments as they are, the node read the raw
    <input/image>, which nobody published any more, with a warning to give
    image_transport:=compressed, which beside input/image was refused (R57). The node reads
    <input/image>/compressed now."""
    args = {"input/image": CAM3, "use_decompress": "true"}
    assert autoware_launch.node_parameters(args)["camera_topics"] == [CAM3 + "/compressed"]
    assert autoware_launch.node_parameters({**args, "use_decompress": "false"})["camera_topics"] == [CAM3]
    assert autoware_launch.node_parameters({"camera_id": "3", "image_topic_name": "image_rect_color",
                                            "use_decompress": "True"})["camera_topics"] == [CAM3 + "/compressed"]
    assert autoware_launch.yolox_notes(args) == []


def test_autowares_image_raw_arguments_name_the_cameras_of_image_number():
    """R54: Autoware's perception launch names its cameras image_raw0 .. image_raw7 beside
    image_number (tensorrt_yolo's yolo.launch.xml takes both, and launch configurations reach an
    include): they were declared nowhere and unused without a word, so a vehicle whose cameras
    publish elsewhere got the node on /sensing/camera/camera<i>/image_rect_color, receiving
    nothing. Camera i is image_raw<i> now; those past image_number are not used, as there."""
    own = [f"/sensing/camera/camera{i}/image_raw" for i in range(8)]
    params = autoware_launch.node_parameters(
        {"image_number": "2", **{f"image_raw{i}": own[i] for i in range(8)}})
    assert params["camera_topics"] == own[:2]
    params = autoware_launch.node_parameters({"image_number": "2", "image_transport": "compressed",
                                              "image_raw1": own[1]})
    assert params["camera_topics"] == ["/sensing/camera/camera0/image_rect_color/compressed",
                                       own[1] + "/compressed"]
    # beside this launch's own choice of cameras they are unused, and the one naming another
    # topic than this launch's camera of its index is warned about (an including file's own
    # arguments reach this launch too, so it is not refused); the other indices are other
    # includes' cameras (multiple_yolox: one include per camera), not named
    for choice in ({"camera_topics": CAM3}, {"input/image": CAM3}):
        args = {**choice, "image_raw0": "/sensing/camera/camera0/image_rect_color",
                "image_raw3": CAM3, "image_raw1": own[1]}
        assert autoware_launch.node_parameters(args)["camera_topics"] == [CAM3]
        assert autoware_launch.yolox_notes(args) == []
        [note] = autoware_launch.yolox_notes({**args, "image_raw3": own[3]})
        assert f"image_raw3:={own[3]} (Autoware's camera 3) is not used: {next(iter(choice))}" in note
        assert f"this launch's camera 3 is {CAM3}" in note
    # a camera_id names the camera too (R57)
    args = {"camera_id": "3", "image_topic_name": "image_rect_color", "image_raw3": own[3],
            "image_raw1": own[1]}
    [note] = autoware_launch.image_raw_notes(args)
    assert note.startswith(f"launch argument image_raw3:={own[3]} (Autoware's camera 3) is not "
                           "used: camera_id/image_topic_name names the cameras")


@pytest.mark.parametrize("args, fragment", [
    ({"image_raw0": "/sensing/camera/camera2/image_rect_color"},
     "image_raw0:=/sensing/camera/camera2/image_rect_color is camera 0 to Autoware, but its topic "
     "ends in index 2"),
    ({"image_raw0": "/sensing/camera/front/image_raw"}, "'/sensing/camera/front/image_raw' has none"),
    ({"image_raw0": "/a b"}, "launch argument image_raw0: '/a b' is not a ROS topic name"),
])
def test_image_raw_arguments_that_cannot_be_used_as_given_are_refused(args, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        autoware_launch.node_parameters(args)


def test_use_decompress_is_read_as_ros_launch_reads_a_condition():
    """R61: autoware_tensorrt_yolox starts its decompressor under ``if="$(var use_decompress)"``,
    which ROS 2 launch reads as true for ``true`` or ``1`` (any case, spaces around) and refuses
    for anything but those and ``false`` / ``0``. Only ``true`` was read as true here, so
    ``use_decompress:=1``, which starts Autoware's decompressor, left the node on the raw
    <input/image> that nobody published (nothing received, no word), and a value launch refuses
    (``yes``) was taken as false. ``1`` is true now, and a value launch refuses is refused."""
    args = {"input/image": CAM3}
    for true in ("1", " TRUE ", "true"):
        assert autoware_launch.node_parameters({**args, "use_decompress": true})[
            "camera_topics"] == [CAM3 + "/compressed"], true
    for false in ("0", "False", ""):
        assert autoware_launch.node_parameters({**args, "use_decompress": false})[
            "camera_topics"] == [CAM3], false
    with pytest.raises(ConfigError, match="use_decompress:='yes' .*true, false, 1 or 0"):
        autoware_launch.node_parameters({**args, "use_decompress": "yes"})


@pytest.mark.parametrize("topic", ["/perception/object_recognition/detection/objects",
                                   "objects", "/perception/object_recognition/detection/camera{index}/objects"])
def test_a_config_naming_autowares_objects_topic_as_the_roi_topic_is_refused(tmp_path, topic):
    """R65: the launch refused a ROI topic named '.../objects' given as output/objects (R57), but
    a config's autoware.rois_topic of that name was taken, by the launch, the node's loader and
    the replay alike: Autoware's DetectedObjects topic received ROIs (two message types on one
    topic). Refused now wherever the config is read, with the same message and the fix."""
    own = tmp_path / "own.yaml"
    own.write_text("# base: autoware.yaml\nobject_detector:\n  ros__parameters:\n"
                   f"    autoware.rois_topic: {topic}\n")
    message = f"autoware.rois_topic '{topic}' names a topic '.../objects', Autoware's name for its DetectedObjects topics"
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        autoware_launch.node_parameters({"config": str(own)})
    assert f"fix: set autoware.rois_topic to {ROIS}{{index}}" in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape(f"invalid settings in {own}: {message}")):
        section_from_params(AutowareConfig, load_params(own, "object_detector"), "autoware.", str(own))
    # given by output/objects as the ROI topic, the config's objects are no ROI topic
    assert autoware_launch.node_parameters({"config": str(own), "output/objects": "rois0"})[
        "autoware.rois_topic"] == "rois0"


@pytest.mark.parametrize("rois", ["", "/my/roi{index}"])
def test_a_config_naming_autowares_roi_topics_as_the_objects_topic_is_refused(tmp_path, rois):
    """R65: autoware.objects_topic named as Autoware's ROI topics (rois<i>) was refused only
    where it was this node's own ROI topic too; with the ROIs off or elsewhere, the node's
    DetectedObjects went to the rois<i> Autoware's fusion reads as DetectedObjectsWithFeature
    (two message types on one topic: the fusion got nothing). Refused now, by name."""
    own = tmp_path / "own.yaml"
    topic = f"{ROIS}{{index}}"
    own.write_text("# base: autoware.yaml\nobject_detector:\n  ros__parameters:\n"
                   f"    autoware.rois_topic: '{rois}'\n    autoware.objects_topic: {topic}\n")
    message = f"autoware.objects_topic '{topic}' names a topic 'rois<i>', Autoware's name for its ROI topics"
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        autoware_launch.node_parameters({"config": str(own)})
    assert "fix: set autoware.objects_topic to /perception/object_recognition/detection/camera{index}/objects" \
        in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape(f"invalid settings in {own}: {message}")):
        section_from_params(AutowareConfig, load_params(own, "object_detector"), "autoware.", str(own))
    AutowareConfig(objects_topic="/perception/object_recognition/detection/camera{index}/objects")
    AutowareConfig(objects_topic="/perception/object_recognition/detection/roisx")


def _settings(params: dict) -> ObjectDetectorSettings:
    """object_detector's own settings from the launch's parameters, as the node reads them."""
    settings = section_from_params(ObjectDetectorSettings, {k: v for k, v in params.items() if "." not in k},
                                   "", "launch", strict=False)
    settings.validate()
    return settings


def test_autowares_camera_info_arguments_name_the_cameras_calibration(monkeypatch):
    """R65: Autoware's perception launch declares camera_info0 .. camera_info7 beside image_raw<i>
    (its fusion reads camera_info<i> with rois<i>), and they reach an include; this launch
    declared none and read <ns>/camera_info, so a vehicle whose CameraInfo is published elsewhere
    had its 3-D positions and its CameraInfo check read another topic than the fusion, without a
    word. With image_number, camera i's CameraInfo is camera_info<i> now (the positions'
    camera_info_topics, which the check's auto follows); beside cameras named by topic it is not
    used and, naming another topic than the camera's own, warned about, as image_raw<i> is."""
    front = "/sensing/camera/front/camera0/image_raw"
    info = "/sensing/camera/front/camera0/camera_info_rect"
    args = {"image_number": "2", "image_raw0": front, "camera_info0": info,
            "camera_info5": "/past/image_number"}
    params = autoware_launch.node_parameters(args)
    assert params["camera_info_topics"] == [info, "auto"]
    settings = _settings(params)
    both = [info, "/sensing/camera/camera1/camera_info"]
    assert settings.info_topics() == both  # the 3-D positions
    assert settings.autoware_info_topics("auto") == both  # the check of what the fusion ignores
    assert settings.autoware_info_topics("") == ["", ""]
    assert autoware_launch.node_parameters({"image_number": "2"})["camera_info_topics"] == ["auto"]
    with pytest.raises(ConfigError, match=re.escape("launch argument camera_info1: '/a b' is not a ROS topic")):
        autoware_launch.node_parameters({"image_number": "2", "camera_info1": "/a b"})
    # through the launch itself: declared, handed over, nothing warned
    made = fake_launch(monkeypatch)
    autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations=args))
    [node] = made["nodes"]
    assert node["parameters"][0]["camera_info_topics"] == [info, "auto"] and made["warnings"] == []
    # beside cameras named by topic: not used, and warned about where the fusion reads another
    # CameraInfo for this launch's camera (Autoware's default included); the other indices are
    # other includes' cameras
    made["nodes"].clear()
    named = {"camera_topics": CAM3, "camera_info3": "/sensing/camera/camera3/camera_info",
             "camera_info1": "/elsewhere/camera_info"}
    autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations=named))
    [node] = made["nodes"]
    assert node["parameters"][0]["camera_info_topics"] == ["auto"] and made["warnings"] == []
    other = "/vehicle/camera3/image"
    autoware_launch.launch_description()[-1](types.SimpleNamespace(launch_configurations={
        **named, "camera_topics": other}))
    [warning] = made["warnings"]
    assert warning.startswith("launch argument camera_info3:=/sensing/camera/camera3/camera_info "
                              "(Autoware's CameraInfo of camera 3, which its fusion reads with rois3) "
                              "is not used: camera_topics names the cameras, and this launch's camera "
                              f"3 ({other}) reads /vehicle/camera3/camera_info")


def test_an_image_raw_naming_the_compressed_topic_is_not_given_a_second_suffix():
    """R65: with image_transport:=compressed, an image_raw<i> naming the compressed topic itself
    became '.../compressed/compressed', refused as a camera topic without an index (a message
    naming neither argument nor the doubling). It is that camera now."""
    compressed = "/sensing/camera/camera0/image_raw/compressed"
    params = autoware_launch.node_parameters({"image_number": "2", "image_transport": "compressed",
                                              "image_raw0": compressed})
    assert params["camera_topics"] == [compressed, "/sensing/camera/camera1/image_rect_color/compressed"]


def test_an_image_raw_contradicting_image_transport_is_refused():
    """R67: image_transport:=raw with an image_raw<i> naming the compressed topic was taken without
    a word (the cameras said raw, the node read CompressedImage), and an image_raw<i> naming a
    sub-topic the node cannot decode (.../theora) was read as a raw Image. Both are refused now,
    naming the argument and the fix; image_transport not given takes a compressed topic as it is."""
    compressed = "/sensing/camera/camera0/image_raw/compressed"
    with pytest.raises(ConfigError, match=r"image_raw0:=.*/compressed names the compressed topic, "
                                          r"but image_transport:=raw.*fix: give image_transport:="
                                          r"compressed, or image_raw0:=/sensing/camera/camera0/"
                                          r"image_raw for the raw image"):
        autoware_launch.node_parameters({"image_number": "1", "image_transport": "raw",
                                         "image_raw0": compressed})
    for transport in ("raw", "compressed", ""):
        with pytest.raises(ConfigError, match=r"image_raw1:=.*/theora names image_transport's "
                                              r"'theora' sub-topic, which the node cannot decode"):
            autoware_launch.node_parameters({"image_number": "2", "image_transport": transport,
                                             "image_raw1": "/sensing/camera/camera1/image_raw/theora"})
    params = autoware_launch.node_parameters({"image_number": "1", "image_raw0": compressed})
    assert params["camera_topics"] == [compressed]


def test_a_named_camera_info_check_contradicting_camera_info_is_refused(tmp_path):
    """R67: a config naming autoware.camera_info_topic, with the launch's camera_info0 naming another
    CameraInfo, had the node's check watch the config's topic while its 3-D positions (and
    Autoware's fusion) read camera_info0, without a word. Refused now, naming both and the fix;
    the same topic in both, or auto, is taken."""
    own = tmp_path / "own.yaml"
    own.write_text("# base: autoware.yaml\nobject_detector:\n  ros__parameters:\n"
                   "    autoware:\n      camera_info_topic: /sensing/camera/camera0/camera_info\n")
    info = "/sensing/camera/front/camera_info"
    with pytest.raises(ConfigError, match=re.escape(
            "autoware.camera_info_topic '/sensing/camera/camera0/camera_info' is the CameraInfo the "
            "Autoware check reads for camera '/sensing/camera/camera0/image_rect_color', but launch "
            f"argument camera_info0 names '{info}', which its 3-D positions read")) as caught:
        autoware_launch.node_parameters({"config": str(own), "camera_info0": info})
    assert "fix: set autoware.camera_info_topic: auto (it follows launch argument camera_info0)" \
        in str(caught.value)
    # the node's own settings: the config's camera_info_topics naming another topic
    with pytest.raises(ConfigError, match=re.escape("but the config's camera_info_topics names")):
        autoware_launch.node_parameters({
            "config": str(_with(tmp_path, own, f"    camera_info_topics: [{info}]\n"))})
    same = autoware_launch.node_parameters({"config": str(own),
                                            "camera_info0": "/sensing/camera/camera0/camera_info"})
    assert same["camera_info_topics"] == ["/sensing/camera/camera0/camera_info"]
    assert autoware_launch.node_parameters({"camera_info0": info})["camera_info_topics"] == [info]
    # the core check the node's configure and the replay make
    from sense_perception.core.autoware.rois import check_camera_info_topic
    with pytest.raises(ConfigError, match="but camera_info_topics names '/b'"):
        check_camera_info_topic(["/cam/image_raw"], "/a", [("camera_info_topics", "/b")])


def test_a_named_camera_info_check_beside_an_auto_entry_is_refused(tmp_path):
    """R75: camera_info_topics auto (the positions read <ns>/camera_info) beside a named
    autoware.camera_info_topic was taken: the check read one topic, the positions another, and
    nothing said which one the user meant. Refused now, naming both and the fix; a named check
    equal to <ns>/camera_info, or beside an entry of "" (no positions), is one CameraInfo: taken."""
    from sense_perception.core.autoware.rois import check_camera_info_topic
    with pytest.raises(ConfigError, match=re.escape(
            "but camera_info_topics is auto, so its 3-D positions read '/cam/camera_info': the "
            "check would watch another calibration than the one used; fix: set "
            "autoware.camera_info_topic: auto")):
        check_camera_info_topic(["/cam/image_raw"], "/a", [("camera_info_topics", "auto")])
    check_camera_info_topic(["/cam/image_raw"], "/cam/camera_info", [("camera_info_topics", "auto")])
    check_camera_info_topic(["/cam/image_raw"], "/a", [("camera_info_topics", "")])
    # the launch, with the config's camera_info_topics left at auto
    own = tmp_path / "own.yaml"
    own.write_text("# base: autoware.yaml\nobject_detector:\n  ros__parameters:\n"
                   "    autoware:\n      camera_info_topic: /sensing/camera/front/camera_info\n")
    with pytest.raises(ConfigError, match=re.escape(
            "but the config's camera_info_topics is auto, so its 3-D positions read "
            "'/sensing/camera/camera0/camera_info'")):
        autoware_launch.node_parameters({"config": str(own)})


def _with(tmp_path, base, lines):
    extended = tmp_path / "extended.yaml"
    extended.write_text(base.read_text() + lines)
    return extended
