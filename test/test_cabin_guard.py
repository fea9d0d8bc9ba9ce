"""The cabin camera shows the driver: object_detector never takes it among its cameras, whoever
names them (a config, `run -p camera_topics:=`, a launch argument, a replay's config). Checked
by the node's own settings at configure, with the cabin camera named once, on driver_monitor."""
from __future__ import annotations

import pytest

from sense_perception.config import bundled_config, load_params, section_from_params
from sense_perception.errors import PrivacyError
from sense_perception.ros.launch_support import node_parameters
from sense_perception.ros.settings import ObjectDetectorSettings

from support import REPO


def _validated(**params):
    settings = section_from_params(ObjectDetectorSettings, params, "", "the test", strict=False)
    settings.validate()
    return settings


@pytest.mark.parametrize("exterior", ["/camera/cabin/image_raw/compressed", "/camera/cabin/image_raw",
                                      "/camera/cabin/image_raw/theora"])
def test_the_cabin_camera_or_its_transport_sub_topic_is_refused_among_camera_topics(exterior):
    with pytest.raises(PrivacyError, match="cabin_camera_topic.*camera_topics.*remove it"):
        _validated(camera_topics=["/camera/front/image_raw", exterior])
    # the default cabin camera is driver_monitor's default camera_topic; another camera is fine
    assert _validated(camera_topics=["/camera/front/image_raw/compressed"]).camera_topics


def test_the_cabin_camera_comes_from_driver_monitors_camera_topic_in_every_config(tmp_path):
    default = ObjectDetectorSettings().cabin_camera_topic  # driver_monitor's default camera_topic
    for name in ("perception", "carla", "awsim", "autoware", "quality"):
        config = bundled_config(name)
        cabin = load_params(config, "driver_monitor").get("camera_topic", default)
        assert load_params(config, "object_detector").get("cabin_camera_topic", default) == cabin, name
    carla = load_params(bundled_config("carla"), "object_detector")
    with pytest.raises(PrivacyError, match="/carla/ego_vehicle/rgb_cabin/image"):
        _validated(camera_topics=["/carla/ego_vehicle/rgb_cabin/image"],
                   cabin_camera_topic=carla["cabin_camera_topic"])
    # a file that names it for object_detector keeps its own value
    own = tmp_path / "own.yaml"
    own.write_text("object_detector:\n  ros__parameters:\n    cabin_camera_topic: /in/car\n"
                   "driver_monitor:\n  ros__parameters:\n    camera_topic: /in/car\n")
    assert load_params(own, "object_detector")["cabin_camera_topic"] == "/in/car"


def test_a_launch_argument_naming_the_cabin_camera_reaches_object_detector():
    args = {"config": str(REPO / "config" / "perception.yaml"), "camera_topic": "/seat/cam/image_raw",
            "camera_topics": "/seat/cam/image_raw/compressed"}
    params = node_parameters("object_detector", args)
    assert params["cabin_camera_topic"] == "/seat/cam/image_raw"
    with pytest.raises(PrivacyError, match="/seat/cam/image_raw"):
        _validated(**{k: v for k, v in params.items() if "." not in k})


def test_a_replay_config_listing_the_cabin_camera_for_the_detector_is_refused(tmp_path):
    from sense_perception.replay.pipelines import build_core

    config = tmp_path / "c.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [/car/cabin/image_raw]\n"
                      "driver_monitor:\n  ros__parameters:\n    camera_topic: /car/cabin/image_raw/compressed\n")
    with pytest.raises(PrivacyError, match="/car/cabin/image_raw"):
        build_core(config, exterior=False, cabin=False)


def test_identity_is_refused_on_a_camera_the_config_names_exterior(tmp_path, capsys):
    """`replay --cabin`, `fleet --cabin` and `driver enroll --bag --topic` naming a camera that
    the --config lists in object_detector.camera_topics (either transport) ran face
    identification on that exterior camera with a note at most: refused before any bag or model
    is read, naming the topic and the config."""
    from sense_perception.cli.main import main
    from sense_perception.fleet.runner import FleetRequest
    from sense_perception.replay.engine import ReplayOptions, Replayer

    front = "/camera/front/image_raw"
    config = tmp_path / "c.yaml"
    config.write_text(f"object_detector:\n  ros__parameters:\n    camera_topics: [{front}]\n")
    bag = REPO / "sense_perception" / "data" / "sample_bag"
    for topic in (front, f"{front}/compressed"):
        with pytest.raises(PrivacyError, match=f"on --cabin {topic}.*camera_topics in {config}"):
            Replayer(ReplayOptions(bag=bag, out=tmp_path / "o", cabin=topic, config=config))
        with pytest.raises(PrivacyError, match="have not consented"):
            FleetRequest(inputs=[bag], out=tmp_path / "f", cabin=topic, config=config).check()
        code = main(["driver", "enroll", "--name", "A", "--consent", "--bag", str(bag),
                     "--topic", topic, "--config", str(config), "--gallery", str(tmp_path / "g")])
        assert code == 2 and f"refused on --topic {topic}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "g").exists()
    # the cabin camera itself, and any topic without a --config, are taken
    Replayer(ReplayOptions(bag=bag, out=tmp_path / "o", cabin="/camera/cabin/image_raw/compressed",
                           config=config))
    Replayer(ReplayOptions(bag=bag, out=tmp_path / "o", cabin=front))


def _monitor(**params):
    from sense_perception.ros.settings import DriverMonitorNodeSettings

    settings = section_from_params(DriverMonitorNodeSettings, params, "", "the test", strict=False)
    settings.validate()
    return settings


def test_driver_monitor_refuses_a_camera_its_config_calls_exterior(tmp_path):
    """A config whose driver_monitor.camera_topic is one of its own object_detector.camera_topics
    (a copy-paste slip, or `-p driver_monitor:camera_topic:=` naming the front camera): `run
    --nodes driver_monitor` and the launch files (each node its own process) started
    driver_monitor on it, face identification on the pedestrians of an exterior camera, while
    only object_detector refused it. driver_monitor's exterior_camera_topics, which the loader
    and the launch files set from object_detector's camera_topics, refuse it at configure."""
    config = tmp_path / "c.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [/x/front/image_raw]\n"
                      "driver_monitor:\n  ros__parameters:\n    camera_topic: /x/front/image_raw/compressed\n")
    params = load_params(config, "driver_monitor")
    assert params["exterior_camera_topics"] == ["/x/front/image_raw"]
    with pytest.raises(PrivacyError, match="face identification refused on camera_topic "
                       "/x/front/image_raw/compressed .the same camera as /x/front/image_raw."):
        _monitor(**params)
    args = {"config": str(REPO / "config" / "perception.yaml"), "camera_topic": "/y/front/image_raw",
            "camera_topics": "/y/front/image_raw"}
    with pytest.raises(PrivacyError, match="/y/front/image_raw"):
        _monitor(**{k: v for k, v in node_parameters("driver_monitor", args).items() if "." not in k})
    for name in ("perception", "carla", "awsim", "autoware", "quality"):  # each its own cabin
        _monitor(**{k: v for k, v in load_params(bundled_config(name), "driver_monitor").items()
                    if "." not in k})


def test_the_rectified_or_other_image_of_a_camera_is_that_camera(tmp_path):
    """A camera's namespace holds its raw and its rectified images (image_proc's
    `image_rect_color` beside the driver's `image_raw`). Only the topic and its image_transport
    sub-topics counted as one camera (R70): object_detector took the cabin camera's
    `image_rect_color` (its debug image and annotations publishing the driver's face),
    driver_monitor and `replay --cabin` ran face identification on an exterior camera's
    rectified image. Both are refused now; another camera's namespace is still taken."""
    from sense_perception.replay.engine import ReplayOptions, Replayer

    with pytest.raises(PrivacyError, match="image_rect_color .the same camera as "
                       "/camera/cabin/image_raw/compressed. is the cabin camera"):
        _validated(camera_topics=["/camera/front/image_raw", "/camera/cabin/image_rect_color"])
    with pytest.raises(PrivacyError, match="cabin camera"):
        _validated(camera_topics=["/camera/cabin/image/compressed"])
    assert _validated(camera_topics=["/camera/cabin/depth/image_raw", "/camera/cabin_door/image_raw",
                                     "/camera/image_raw"]).camera_topics
    config = tmp_path / "c.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [/x/front/image_raw]\n"
                      "driver_monitor:\n  ros__parameters:\n    camera_topic: /x/front/image_rect_color\n")
    with pytest.raises(PrivacyError, match="refused on camera_topic /x/front/image_rect_color "
                       ".the same camera as /x/front/image_raw."):
        _monitor(**load_params(config, "driver_monitor"))
    bag = REPO / "sense_perception" / "data" / "sample_bag"
    for topic in ("/x/front/image_rect", "/x/front/image_color/compressed", "/x/front/image"):
        with pytest.raises(PrivacyError, match=f"on --cabin {topic}"):
            Replayer(ReplayOptions(bag=bag, out=tmp_path / "o", cabin=topic, config=config))
    Replayer(ReplayOptions(bag=bag, out=tmp_path / "o", cabin="/x/cabin/image_rect", config=config))
    assert _monitor(camera_topic="/x/front/depth/image_raw",
                    exterior_camera_topics=["/x/front/image_raw"]).camera_topic
    assert not (tmp_path / "o").exists()


def test_a_node_started_alone_reads_the_other_node_s_cameras_from_its_params_files(tmp_path):
    """`ros2 run` gives a node its own section of a --params-file only: driver_monitor knew no
    exterior camera of the file, object_detector not its cabin camera (test/ros: configure). The
    console scripts read them from the files, the last naming them winning as in rcl; a value of
    another type or a file the loader cannot read gives nothing (the node names it)."""
    from sense_perception.ros.run import params_file_cameras

    first, second, odd = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "odd.yaml"
    first.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [/a/front/image_raw]\n"
                     "driver_monitor:\n  ros__parameters:\n    camera_topic: /a/cabin/image_raw\n")
    second.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [/b/front/image_raw]\n")
    odd.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [1, 2]\n")
    args = ["driver_monitor", "--ros-args", "--params-file", str(first), "--params-file",
            str(second), "--params-file", str(odd), "--params-file", str(tmp_path / "missing.yaml")]
    assert params_file_cameras("driver_monitor", args) == {
        "exterior_camera_topics": ["/b/front/image_raw"]}
    assert params_file_cameras("object_detector", args) == {
        "cabin_camera_topic": "/a/cabin/image_raw"}
    assert params_file_cameras("driver_monitor", ["driver_monitor"]) == {}
