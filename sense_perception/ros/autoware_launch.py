"""``launch/autoware.launch.py``: object_detector as Autoware's camera detector, in place of
autoware_tensorrt_yolox (one node for all cameras instead of one YOLOX per camera).

:func:`node_parameters` is ROS-free (tested without ROS); :func:`launch_description` imports
``launch`` / ``launch_ros`` and is only called by the launch file.

Camera i is Autoware's ``/sensing/camera/camera<i>/image_rect_color`` (``.../compressed`` with
``image_transport:=compressed``); its ROIs go to ``/perception/object_recognition/detection/rois<i>``
(``autoware.rois_topic`` of config/autoware.yaml); a calibrated camera's DetectedObjects to
``/perception/object_recognition/detection/camera<i>/objects`` (``autoware.objects_topic``).
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from ..core.autoware.rois import (AUTOWARE_ROIS_TOPIC, INDEX_PLACEHOLDER, camera_index,
                                  check_camera_info_topic, check_objects_topic_name,
                                  check_rois_topic_name, rois_topics)
from ..core.output.topics import (camera_info_topic, check_topic_names, image_base_topic,
                                  per_camera)
from ..errors import ConfigError
from ..face.privacy import check_cabin_not_exterior
from . import launch_support
from .settings import CABIN_CAMERA_TOPIC

#: Autoware's most cameras (rois0..rois7 in its fusion launch files).
MAX_CAMERAS = 8
IMAGE_TRANSPORTS = ("raw", "compressed")
CAMERA_TOPIC = "/sensing/camera/camera{i}/image_rect_color"

#: name -> (default, description). "" means "keep the config file's value".
ARGUMENTS: dict[str, tuple[str, str]] = {
    # "" = not given (1 and raw): beside camera_topics or input/image they are checked against
    # the cameras named (an inherited one agreeing with them is taken, R57), never ignored.
    "image_number": ("", f"number of cameras, 1 to {MAX_CAMERAS}: Autoware's camera0.."
                         "camera<image_number - 1> ('' = 1)"),
    "image_transport": ("", "raw (sensor_msgs/Image on .../image_rect_color) or compressed "
                            "(sensor_msgs/CompressedImage on .../image_rect_color/compressed); "
                            "'' = raw"),
    "camera_topics": ("", "comma-separated camera topics instead of image_number and "
                          "image_transport (each camera's ROIs go to rois<i>, i from its topic)"),
    "config": ("autoware", "ROS 2 parameter YAML of object_detector, or a bundled one by name "
                           "(default autoware: share/sense_perception/config/autoware.yaml)"),
    "namespace": ("", "namespace of the node"),
    "use_sim_time": ("", "true/false ('' = not set here: Autoware's global use_sim_time applies)"),
    "autostart": ("", "true/false: configure and activate at start ('' = config's autostart)"),
    "log_level": ("info", "log level of the node: debug, info, warn, error, fatal (or LOGGER:=LEVEL)"),
}

#: autoware_tensorrt_yolox's launch arguments that mean here what they mean there (its
#: yolox_*.launch.xml: one camera per include): name -> (what it sets, description).
YOLOX_MAPPED: dict[str, str] = {
    "input/image": "the camera's image topic, as camera_topics:=<topic> (one camera)",
    "output/objects": "that camera's ROI topic (autoware.rois_topic; default rois<i>)",
    "camera_id": "with image_topic_name and no input/image: the camera "
                 "/sensing/camera/camera<camera_id>/<image_topic_name>, as yolox_s_plus_opt.launch.xml",
    "image_topic_name": "with camera_id (default image_raw there): see camera_id",
    "yolox_node_name": "the node's name (default object_detector): each include one node, as "
                       "multiple_yolox.launch.xml names them tensorrt_yolox0..7",
}

#: Autoware's camera topic arguments (tier4_perception_launch's perception.launch.xml declares
#: them, tensorrt_yolo's yolo.launch.xml takes them beside image_number): camera i's image.
IMAGE_RAW = tuple(f"image_raw{i}" for i in range(MAX_CAMERAS))
#: Autoware's CameraInfo topic arguments, declared beside :data:`IMAGE_RAW` by the same launch
#: files: camera i's CameraInfo, which Autoware's fusion pairs with ``rois<i>``.
CAMERA_INFO = tuple(f"camera_info{i}" for i in range(MAX_CAMERAS))
#: Autoware's default CameraInfo topic of camera i (and this node's ``auto`` for its default camera).
CAMERA_INFO_TOPIC = "/sensing/camera/camera{i}/camera_info"

_MODEL = ("the model is the config's detector.model (picodet_s_416, yolox_nano) or "
          "detector.model_path with detector.labels_path: give config:=<your parameter file>")
#: autoware_tensorrt_yolox's launch arguments with no equivalent here -> what to do instead.
#: Warned, not refused: an including launch file's own arguments of these names reach this one
#: too. (Autoware's global data_path is left out: every Autoware include inherits it.)
YOLOX_UNMAPPED: dict[str, str] = {
    "output/mask": "no segmentation mask is published; remove it",
    "model_name": _MODEL, "model_path": _MODEL, "label_path": _MODEL, "yolox_param_path": _MODEL,
    "model_param_path": _MODEL, "ml_package_param_path": _MODEL,
    "precision": "the runtime is the config's runtime.providers (TensorRT, CUDA, CPU)",
    "gpu_id": "the GPU is the config's runtime.device_id",
    "build_only": "the node builds no engine apart; remove it",
    "use_decompress": "the node reads CompressedImage itself: give image_transport:=compressed "
                      "(or a camera topic ending in /compressed) instead of a decompressor",
    "decompress_param_path": "no decompressor is started; see use_decompress",
    "decompressor_param_path": "no decompressor is started; see use_decompress",
    "param_file": "no decompressor is started; see use_decompress",
    "use_bytetrack": "tracking is the config's tracking.enabled (on by default)",
    "bytetrack_param_path": "tracking is the config's tracking.*",
    "color_map_path": "no segmentation is published; remove it",
    "semantic_segmentation_color_map_path": "no segmentation is published; remove it",
    "roi_remap_path": "labels map to Autoware's classes as docs/autoware.md says "
                      "(autoware.other_labels for the rest)",
    "roi_to_semantic_segmentation_remap_path": "no segmentation is published; remove it",
    "image_transport_decompressor_node_name": "no decompressor is started; see use_decompress",
}


def camera_topics(image_number: str, image_transport: str,
                  image_raw: Sequence[str] = ()) -> list[str]:
    """Autoware's camera topics ``camera0 .. camera<image_number - 1>``; ``image_raw``: the
    launch arguments ``image_raw0`` .. ``image_raw7`` (Autoware's own camera topics, "" where not
    given): camera i is ``image_raw<i>`` where given (its ``/compressed`` sub-topic with
    ``image_transport:=compressed``), else ``/sensing/camera/camera<i>/image_rect_color``.
    They were declared nowhere and unused without a word: a vehicle whose perception launch
    names its cameras ``image_raw0:=/sensing/camera/front/image_raw`` got the node on
    ``camera0/image_rect_color``, receiving nothing (R54). Those past ``image_number`` are not
    used, as in Autoware's own detector launch files (its perception launch passes all eight).

    Raises:
        ConfigError: image_number is not 1 to 8, image_transport is not raw or compressed, or
            an ``image_raw<i>`` in use is not a ROS topic name.
    """
    # ASCII digits only: int() also takes '٣' or '1_0'.
    count = int(image_number) if re.fullmatch(r"\s*[0-9]{1,3}\s*", image_number) else 0
    if not 1 <= count <= MAX_CAMERAS:
        raise ConfigError(f"launch argument image_number:={image_number!r} must be a whole number "
                          f"from 1 to {MAX_CAMERAS}")
    if image_transport and image_transport not in IMAGE_TRANSPORTS:
        raise ConfigError(f"launch argument image_transport:={image_transport!r} must be one of "
                          f"{', '.join(IMAGE_TRANSPORTS)}")
    suffix = "/compressed" if image_transport == "compressed" else ""
    given = [*image_raw, *[""] * MAX_CAMERAS]
    topics = []
    for i in range(count):
        topic = given[i].strip()
        if topic:
            check_topic_names([topic], f"launch argument image_raw{i}")
            _check_image_raw_transport(i, topic, image_transport)
        topic = topic or CAMERA_TOPIC.format(i=i)
        # an image_raw<i> naming the compressed topic itself: doubled, the camera was
        # '.../compressed/compressed', refused as a topic without a camera index (R65)
        topics.append(topic if image_base_topic(topic) != topic else topic + suffix)
    return topics


def _check_image_raw_transport(i: int, topic: str, image_transport: str) -> None:
    """Refuse an ``image_raw<i>`` naming an image_transport sub-topic that ``image_transport``
    contradicts: ``image_transport:=raw`` beside ``.../compressed`` (the node read the
    CompressedImage topic while the launch was told the cameras are raw), or a sub-topic the node
    cannot read at all (``.../theora``, ``.../zstd``: read as a raw Image). ``image_transport``
    not given ("") takes a ``/compressed`` topic as what it is (R67).

    Raises:
        ConfigError: naming the argument, the transport and the fix.
    """
    kind = topic.rstrip("/").rpartition("/")[2] if image_base_topic(topic) != topic else ""
    if not kind:
        return
    base = image_base_topic(topic)
    if kind != "compressed":
        raise ConfigError(
            f"launch argument image_raw{i}:={topic} names image_transport's '{kind}' sub-topic, "
            "which the node cannot decode (it reads sensor_msgs/Image and CompressedImage only; "
            f"it would read it as a raw Image); fix: give image_raw{i}:={base} with "
            f"image_transport:=raw, or {base}/compressed with image_transport:=compressed")
    if image_transport == "raw":
        raise ConfigError(
            f"launch argument image_raw{i}:={topic} names the compressed topic, but "
            "image_transport:=raw says the cameras publish raw sensor_msgs/Image (image_transport "
            "may come from a launch file including this one); fix: give image_transport:="
            f"compressed, or image_raw{i}:={base} for the raw image")


def node_parameters(args: dict[str, str]) -> dict[str, Any]:
    """object_detector's parameters for Autoware, from the config and the launch arguments (ROS-free).

    Args:
        args: launch argument values as strings (missing ones take their defaults).
    """
    values = {name: args.get(name, default) for name, (default, _) in ARGUMENTS.items()}
    yolox = {name: args.get(name, "") for name in (*YOLOX_MAPPED, *YOLOX_UNMAPPED)}
    image_raw = [args.get(name, "") for name in IMAGE_RAW]
    camera_info = [args.get(name, "") for name in CAMERA_INFO]
    image = _yolox_camera(yolox, values)  # autoware_tensorrt_yolox's one camera
    if image:
        topics = ",".join(launch_support.camera_topic_list(image))
    elif values["camera_topics"]:
        topics = ",".join(launch_support.camera_topic_list(values["camera_topics"]))
        _check_autoware_cameras(topics.split(","), values, "camera_topics", "give either "
                                "camera_topics or image_number (and image_transport)")
    else:
        # "" (not given) is raw, but leaves a compressed image_raw<i> as it is
        topics = ",".join(camera_topics(values["image_number"] or "1",
                                        values["image_transport"], image_raw))
    params = launch_support.node_parameters("object_detector", {
        "config": values["config"], "use_sim_time": values["use_sim_time"],
        "autostart": values["autostart"], "camera_topics": topics})
    infos: list[tuple[str, str]] = []
    if not (image or values["camera_topics"]):
        infos = _take_camera_infos(params, camera_info)
    if yolox["output/objects"]:
        _yolox_rois_topic(yolox["output/objects"], params)
    else:  # the config's: refused before the node starts (the node's loader refuses it too)
        rois = str(params.get("autoware.rois_topic", ""))
        check_rois_topic_name(rois, f"config:={values['config']}'s autoware.rois_topic {rois!r}",
                              f"set autoware.rois_topic to {AUTOWARE_ROIS_TOPIC} (each camera's "
                              "rois<i>) in it")
    check_objects_topic_name(str(params.get("autoware.objects_topic", "")))
    if not params.get("autoware.rois_topic") and not params.get("autoware.objects_topic"):
        # the launch stands in for Autoware's camera detector: a node publishing nothing for
        # Autoware was started without a word (a config based on perception.yaml)
        raise ConfigError(
            f"config:={values['config']} turns Autoware's outputs off (autoware.rois_topic and "
            "autoware.objects_topic are ''), so this launch would publish no ROIs for Autoware; "
            "fix: base the config on autoware (its first line '# base: autoware.yaml') or set "
            f"autoware.rois_topic: {AUTOWARE_ROIS_TOPIC} in it, or use object_detector.launch.py "
            "for the node without Autoware's outputs")
    if not values["use_sim_time"] and not _config_sets_sim_time(values["config"]):
        # A parameter given to the node would override Autoware's global SetParameter(use_sim_time).
        params.pop("use_sim_time", None)
    # Refused here, before the node starts (its configure would refuse them too).
    cabin = str(params.get("cabin_camera_topic", CABIN_CAMERA_TOPIC))
    if cabin:
        check_cabin_not_exterior(cabin, params["camera_topics"],
                                 "object_detector's cabin_camera_topic", "launch argument "
                                 "camera_topics", "remove it from camera_topics")
    if params.get("autoware.rois_topic"):  # the node's CameraInfo check runs with the ROIs on
        # a named autoware.camera_info_topic other than the camera_info<i> the positions read
        entries = [str(t) for t in params.get("camera_info_topics", ["auto"])]
        infos = infos or [("the config's camera_info_topics", t)
                          for t in per_camera(entries, len(params["camera_topics"]))]
        check_camera_info_topic(params["camera_topics"],
                                str(params.get("autoware.camera_info_topic", "auto")), infos)
    for name in ("autoware.rois_topic", "autoware.objects_topic"):
        rois_topics(params["camera_topics"], str(params.get(name, "")), name)
        if not (image or values["camera_topics"]):
            _check_image_raw_index(params["camera_topics"], image_raw, str(params.get(name, "")),
                                   name)
    return params


def _take_camera_infos(params: dict[str, Any],
                       camera_info: Sequence[str]) -> list[tuple[str, str]]:
    """Camera i's CameraInfo is Autoware's ``camera_info<i>`` where given (with ``image_number``,
    as ``image_raw<i>`` names its image; those past ``image_number`` are not used): it sets the
    camera's entry of ``camera_info_topics`` (the 3-D positions), which ``autoware.camera_info_topic:
    auto`` follows (the check of what Autoware's fusion ignores). They were declared nowhere and
    unused without a word: a vehicle whose CameraInfo is not ``<ns>/camera_info`` got positions
    and checks from a topic Autoware's fusion does not read (R65).

    Returns:
        per camera, (what names its CameraInfo, the topic as named): for
        :func:`~sense_perception.core.autoware.rois.check_camera_info_topic`; empty where no
        ``camera_info<i>`` is given (the node compares the config's own).

    Raises:
        ConfigError: a ``camera_info<i>`` in use is not a ROS topic name, or the config's
            ``camera_info_topics`` has neither one entry nor one per camera.
    """
    count = len(params["camera_topics"])
    given = {i: topic.strip() for i, topic in enumerate(camera_info[:count]) if topic.strip()}
    if not given:
        return []
    for i, topic in given.items():
        check_topic_names([topic], f"launch argument camera_info{i}")
    entries = list(params.get("camera_info_topics", ["auto"]))
    base = per_camera(entries, count)
    if not base:
        raise ConfigError(f"the config's camera_info_topics has {len(entries)} entries for "
                          f"{count} cameras, and launch argument(s) "
                          f"{', '.join(f'camera_info{i}' for i in given)} name some of them: give "
                          "camera_info_topics one entry (auto) or one per camera")
    params["camera_info_topics"] = [given.get(i, entry) for i, entry in enumerate(base)]
    return [(f"launch argument camera_info{i}" if i in given else "the config's camera_info_topics",
             str(topic)) for i, topic in enumerate(params["camera_info_topics"])]


def _check_image_raw_index(topics: Sequence[str], image_raw: Sequence[str], template: str,
                           name: str) -> None:
    """Refuse an ``image_raw<i>`` whose topic ends in another camera index j while ``name``'s
    template takes the index from the topic: its ROIs would go to ``rois<j>``, where Autoware's
    fusion, which pairs ``rois<i>`` with ``camera_info<i>``, never looks for camera i's.

    Raises:
        ConfigError: naming the argument, both indices and the fix.
    """
    if INDEX_PLACEHOLDER not in template:
        return
    for i, topic in enumerate(topics):
        if i < len(image_raw) and image_raw[i].strip() and camera_index(topic) not in (i, None):
            j = camera_index(topic)
            raise ConfigError(
                f"launch argument image_raw{i}:={image_raw[i].strip()} is camera {i} to Autoware, "
                f"but its topic ends in index {j}: {name} {template!r} would publish it as "
                f"camera {j}, where Autoware looks for camera {i}'s; give camera_topics:="
                f"{image_raw[i].strip()} instead (its own index, {j}), or {name} without "
                f"{INDEX_PLACEHOLDER} for a single camera")


def _yolox_camera(yolox: dict[str, str], values: dict[str, str]) -> str:
    """The camera autoware_tensorrt_yolox's ``input/image`` (or ``camera_id`` and
    ``image_topic_name``) names, or "" when they name none.

    Raises:
        ConfigError: it is given beside this launch's own camera arguments.
    """
    image = yolox["input/image"].strip()
    if not image and (yolox["camera_id"] or yolox["image_topic_name"]):
        camera_id = yolox["camera_id"].strip() or "0"
        if not re.fullmatch(r"[0-9]{1,3}", camera_id):
            raise ConfigError(f"launch argument camera_id:={yolox['camera_id']!r} "
                              "(autoware_tensorrt_yolox's) must be a camera index in ASCII digits")
        image = (f"/sensing/camera/camera{int(camera_id)}/"
                 f"{yolox['image_topic_name'].strip() or 'image_raw'}")
    if not image:
        return ""
    if _launch_condition("use_decompress", yolox.get("use_decompress", "")) \
            and image_base_topic(image) == image.rstrip("/"):
        # There a decompressor reads <input/image>/compressed and publishes <input/image>: the
        # camera publishes the compressed topic, which this node reads itself.
        image = image.rstrip("/") + "/compressed"
    source = "input/image" if yolox["input/image"].strip() else "camera_id/image_topic_name"
    check_topic_names([image], f"launch argument {source} (autoware_tensorrt_yolox's)")
    fix = ("give either input/image (one camera) or this launch's camera_topics / image_number")
    if values["camera_topics"]:
        raise ConfigError(f"launch argument {source} (autoware_tensorrt_yolox's) names the camera "
                          f"{image}, and camera_topics:={values['camera_topics']} names the "
                          f"cameras too: {fix}")
    _check_autoware_cameras([image], values, f"{source} (autoware_tensorrt_yolox's)", fix)
    return image


def _check_autoware_cameras(topics: list[str], values: dict[str, str], source: str,
                            fix: str) -> None:
    """Refuse ``image_number`` / ``image_transport`` given beside cameras named by topic
    (``camera_topics``, ``input/image``) when they contradict them.

    Launch configurations are inherited: an Autoware perception launch file declaring
    ``image_number`` (6 in Autoware's) hands it to this launch, however it is included. It says
    how many cameras Autoware has, and a camera named by topic that is one of them
    (``camera<i>``, ``i`` < image_number) agrees with it, as does one whose topic has no index
    (``/sensing/camera/front/image_raw``: nothing to compare); so does an ``image_transport`` that
    the topics' own transport matches. Such values are taken as agreeing (:func:`camera_notes`
    says so); a camera outside them, or a transport the topics do not have, is refused.

    Raises:
        ConfigError: naming both arguments and the fix.
    """
    number, transport = values["image_number"], values["image_transport"]
    if number:
        count = len(camera_topics(number, "raw"))  # refuses a number that is not 1 to 8
        # a camera topic without an index (/sensing/camera/front/image_raw) contradicts nothing
        outside = [t for t in topics if (index := camera_index(t)) is not None and index >= count]
        if outside:
            raise ConfigError(
                f"launch argument {source} names {', '.join(outside)}, which is not one of "
                f"image_number:={number}'s cameras camera0..camera{count - 1} (image_number "
                f"may come from a launch file including this one): {fix}")
    if transport:
        camera_topics("1", transport)  # refuses a transport that is not raw or compressed
        other = [t for t in topics if (image_base_topic(t) != t) != (transport == "compressed")]
        if other:
            raise ConfigError(
                f"launch argument {source} names {', '.join(other)}, which image_transport:="
                f"{transport} contradicts (image_transport may come from a launch file "
                f"including this one): {fix}")


_OUTPUT_OBJECTS_FIX = ("pass <arg name=\"output/objects\" value=\"/perception/object_recognition/"
                       "detection/rois<i>\"/> (the camera's ROI topic) in the include, or "
                       "value=\"\" (each camera's ROIs on its rois<i>)")


def _launch_condition(name: str, value: str) -> bool:
    """A launch argument used as a condition, read as ROS 2 launch reads ``if="$(var NAME)"``:
    ``true`` or ``1`` (any case, spaces around) is true, ``false``, ``0`` or not given ("") is
    false. Only ``true`` was true here: ``use_decompress:=1``, which starts Autoware's
    decompressor, left the node on the raw topic nobody published (R61).

    Raises:
        ConfigError: a value launch refuses as a condition, naming it.
    """
    word = value.strip().lower()
    if word in ("true", "1"):
        return True
    if word in ("false", "0", ""):
        return False
    raise ConfigError(f"launch argument {name}:={value!r} (autoware_tensorrt_yolox's) is not a "
                      "condition ROS 2 launch takes: give true, false, 1 or 0")


def _yolox_rois_topic(topic: str, params: dict[str, Any]) -> None:
    """``output/objects`` (autoware_tensorrt_yolox's one camera's ROI topic) as
    ``autoware.rois_topic``.

    Raises:
        ConfigError: several cameras (one topic cannot hold them all), not a topic name, or a
            topic named ``.../objects`` (Autoware's DetectedObjects topics).
    """
    topic = topic.strip()
    check_topic_names([topic], "launch argument output/objects")
    # Launch configurations are inherited: Autoware's camera_lidar_fusion_based_detection
    # launch declares output/objects (default 'objects', its own DetectedObjects output).
    # Included there, the node published its ROIs on that name in the pushed namespace
    # (/perception/object_recognition/detection/objects), not on rois<i>. Relative ROI names
    # are Autoware's own (multiple_yolox.launch.xml gives rois0..rois7): only the name is told.
    check_rois_topic_name(
        topic, f"launch argument output/objects:={topic}",
        f"{_OUTPUT_OBJECTS_FIX}. An including launch file's own output/objects reaches this launch "
        "too (Autoware's camera_lidar_fusion_based_detection.launch.xml declares "
        "output/objects:=objects, its DetectedObjects output)")
    if len(params["camera_topics"]) != 1:
        raise ConfigError(f"launch argument output/objects:={topic} is one camera's ROI topic "
                          "(autoware_tensorrt_yolox runs one camera per launch), but this launch "
                          f"has {len(params['camera_topics'])} cameras: leave it out (camera i's "
                          "ROIs go to rois<i>; an including launch file's own output/objects "
                          "reaches this launch too: pass <arg name=\"output/objects\" "
                          "value=\"\"/> in the include) or give one camera (input/image)")
    params["autoware.rois_topic"] = topic
    objects = str(params.get("autoware.objects_topic", ""))
    (camera,) = params["camera_topics"]
    if INDEX_PLACEHOLDER in objects and camera_index(camera) is None:
        # A camera named without an index (multiple_yolox.launch.xml passes any image_raw<i>
        # with output/objects rois<i>): its objects take the ROI topic's index, as its ROIs do.
        match = re.search(r"(\d+)$", topic.rstrip("/").rpartition("/")[2])
        if match is None:
            raise ConfigError(
                f"autoware.objects_topic {objects!r} takes the camera's index from its topic, but "
                f"neither input/image {camera} nor output/objects:={topic} ends in one; fix: give "
                "output/objects as rois<i> (the camera's index), or a config:= whose "
                "autoware.objects_topic names the topic without {index}")
        params["autoware.objects_topic"] = objects.replace(INDEX_PLACEHOLDER, str(int(match.group(1))))


def node_name(args: dict[str, str]) -> str:
    """The node's name: autoware_tensorrt_yolox's ``yolox_node_name`` where given (Autoware's
    multiple_yolox.launch.xml includes one launch per camera, naming each node
    ``tensorrt_yolox<i>``: swapped for this launch, every include started a node named
    object_detector, one name for several nodes), else ``object_detector``.

    Raises:
        ConfigError: not a ROS node name.
    """
    name = args.get("yolox_node_name", "").strip()
    if not name:
        return "object_detector"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"launch argument yolox_node_name:={name!r} (autoware_tensorrt_yolox's) "
                          "is not a ROS node name (letters, digits and underscores, not starting "
                          "with a digit)")
    return name


def yolox_notes(args: dict[str, str]) -> list[str]:
    """A warning for each autoware_tensorrt_yolox launch argument given that has no
    equivalent here (:data:`YOLOX_UNMAPPED`), naming what to use instead, and for camera_id /
    image_topic_name left unused beside input/image."""
    has_camera = bool(args.get("input/image", "") or args.get("camera_id", "")
                      or args.get("image_topic_name", ""))
    # with a yolox camera, use_decompress says which topic it is (see _yolox_camera)
    notes = [f"launch argument {name}:={args[name]} (autoware_tensorrt_yolox's) is not used: "
             f"{fix}" for name, fix in YOLOX_UNMAPPED.items()
             if args.get(name, "") and not (name == "use_decompress" and has_camera)]
    if args.get("input/image", ""):
        notes += [f"launch argument {name}:={args[name]} (autoware_tensorrt_yolox's) is not "
                  "used: input/image names the camera"
                  for name in ("camera_id", "image_topic_name") if args.get(name, "")]
    elif args.get("camera_id", "") or args.get("image_topic_name", ""):
        # camera_id is a common name (camera drivers' launch files declare it), and launch
        # configurations are inherited: say which camera it chose, not only that image_number agrees
        [camera] = _named_cameras(args)[1]
        notes.append(f"launch argument camera_id:={args.get('camera_id', '')} / image_topic_name:="
                     f"{args.get('image_topic_name', '')} (autoware_tensorrt_yolox's, or a launch "
                     f"file's including this one) chose the one camera {camera}; give input/image "
                     "or camera_topics to name the cameras")
    return notes + image_raw_notes(args)


def _named_cameras(args: dict[str, str]) -> tuple[str, list[str]]:
    """The cameras named by topic and the argument naming them: ``input/image`` (or
    ``camera_id`` / ``image_topic_name``, with ``use_decompress``), else ``camera_topics``; or
    ``("", [])`` where ``image_number`` (with ``image_raw<i>``) names them."""
    yolox = {name: args.get(name, "") for name in (*YOLOX_MAPPED, *YOLOX_UNMAPPED)}
    image = _yolox_camera(yolox, {name: "" for name in ARGUMENTS})
    if image:
        return ("input/image" if yolox["input/image"].strip() else "camera_id/image_topic_name",
                [image])
    topics = [t.strip() for t in args.get("camera_topics", "").split(",") if t.strip()]
    return ("camera_topics", topics) if topics else ("", [])


def image_raw_notes(args: dict[str, str]) -> list[str]:
    """A warning for each of Autoware's ``image_raw<i>`` naming another topic than this launch's
    own camera ``i``.

    With ``image_number`` they name its cameras (:func:`camera_topics`, R54). Beside
    ``input/image``, ``camera_id`` or ``camera_topics``, which name the cameras themselves, they
    are not used, and warned about, not refused: an including file's own reach this launch too
    (launch configurations are inherited). Only an index this launch serves is looked at: there
    Autoware's fusion pairs ``rois<i>`` with the camera ``image_raw<i>`` names (R57) and would get
    no ROIs of it. The other indices are other includes' cameras (Autoware's multiple_yolox
    starts one include per camera, each inheriting every ``image_raw<j>``), so warning about them
    made every include of a correct set-up warn about all the others.
    """
    source, cameras = _named_cameras(args)
    ours = {camera_index(camera): camera for camera in cameras}
    notes = []
    for i, name in enumerate(IMAGE_RAW):
        theirs = args.get(name, "").strip()
        if i not in ours or not theirs or any(
                _same_topic(theirs, topic) for topic in (CAMERA_TOPIC.format(i=i), *cameras)):
            continue
        notes.append(f"launch argument {name}:={theirs} (Autoware's camera {i}) is not used: "
                     f"{source} names the cameras; this launch's camera {i} is {ours[i]}, so "
                     "Autoware's fusion would get no ROIs of that camera; fix: give camera_topics "
                     f"(or input/image) as Autoware's {name}, or {name} as the camera this launch "
                     "serves")
    return notes


def camera_info_notes(args: dict[str, str], params: dict[str, Any]) -> list[str]:
    """A warning for each of Autoware's ``camera_info<i>`` naming another topic than the
    CameraInfo this launch's camera ``i`` reads, where the cameras are named by topic
    (``camera_topics``, ``input/image``, ``camera_id``): there, as :func:`image_raw_notes` says
    of ``image_raw<i>``, they are not used (an including file's own reach this launch too), but
    Autoware's fusion pairs ``rois<i>`` with ``camera_info<i>``: the node's 3-D positions and its
    CameraInfo check would read another calibration than the fusion (R65). Autoware's default
    (``/sensing/camera/camera<i>/camera_info``) is compared too: the fusion reads it all the same.

    Args:
        args: the launch arguments (``camera_info0``... where present).
        params: the node's parameters (:func:`node_parameters`).
    """
    source, cameras = _named_cameras(args)
    if not cameras:
        return []
    infos = list(params.get("camera_info_topics", ["auto"]))
    infos = infos * len(params["camera_topics"]) if len(infos) == 1 else infos
    notes = []
    for camera, info in zip(params["camera_topics"], infos, strict=True):
        i = camera_index(camera)
        theirs = args.get(f"camera_info{i}", "").strip() if i is not None and i < MAX_CAMERAS else ""
        # the CameraInfo the node reads for camera i (its check's, where positions read none)
        ours = camera_info_topic(camera, info) or camera_info_topic(camera, "auto")
        if not theirs or _same_topic(theirs, ours):
            continue
        notes.append(f"launch argument camera_info{i}:={theirs} (Autoware's CameraInfo of camera "
                     f"{i}, which its fusion reads with rois{i}) is not used: {source} names the "
                     f"cameras, and this launch's camera {i} ({camera}) reads {ours}, so the "
                     "node's 3-D positions and CameraInfo check would read another calibration "
                     f"than the fusion; fix: set Autoware's camera_info{i} (its perception launch "
                     "file's argument) to that camera's CameraInfo, or give config:= with "
                     "camera_info_topics naming the one the fusion reads")
    return notes


def camera_notes(args: dict[str, str]) -> list[str]:
    """An info line for ``image_number`` / ``image_transport`` given beside cameras named by
    topic and agreeing with them (:func:`_check_autoware_cameras`): taken as Autoware's camera
    count and transport, the cameras being the ones named."""
    named, cameras = _named_cameras(args)
    if not cameras:
        return []
    return [f"launch argument {name}:={args[name]} (given here or by a launch file including "
            f"this one) agrees with {named}, which names the cameras this launch serves"
            for name in ("image_number", "image_transport") if args.get(name, "")]


#: Autoware's per-camera ROI topic arguments (its perception and detection launch files declare
#: ``detection_rois0`` .. ``detection_rois7``; an include of this launch there inherits them).
#: Its ``image_raw<i>`` are this launch's own arguments (:data:`IMAGE_RAW`, :func:`image_raw_notes`).
DETECTION_ROIS = tuple(f"detection_rois{i}" for i in range(MAX_CAMERAS))


def autoware_camera_notes(params: dict[str, Any], configurations: dict[str, str]) -> list[str]:
    """A warning for each of Autoware's own ``detection_rois<i>`` (inherited from an including
    Autoware launch file) that names another topic than this launch's ROI topic of camera ``i``:
    Autoware's fusion reads ``detection_rois<i>``, so a vehicle whose ROI topics are not
    Autoware's defaults got no ROIs there, without a word (R57).

    Args:
        params: the node's parameters (:func:`node_parameters`).
        configurations: the launch configurations (``detection_rois0``... where present).
    """
    rois = rois_topics(params["camera_topics"], str(params.get("autoware.rois_topic", "")))
    notes = []
    for camera, roi in zip(params["camera_topics"], rois, strict=True):
        index = camera_index(camera)
        if index is None or not roi:
            continue
        theirs = str(configurations.get(f"detection_rois{index}", "") or "").strip()
        if theirs and not _same_topic(theirs, roi):
            notes.append(
                f"launch configuration detection_rois{index}:={theirs} (Autoware's ROI topic of "
                f"camera {index}, from a launch file including this one) differs from this "
                f"launch's {roi}: Autoware's fusion would get no ROIs of that camera; fix: give "
                "output/objects or config:= with autoware.rois_topic as Autoware's launch names "
                "them")
    return notes


def _same_topic(theirs: str, ours: str) -> bool:
    """Whether two names are one topic, an image_transport sub-topic aside; a relative name of
    ours (``rois3``, in the namespace an including file pushes) matches by its last names."""
    theirs, ours = image_base_topic(theirs), image_base_topic(ours)
    if ours.startswith("/") or not theirs.startswith("/"):
        return theirs == ours
    return theirs.endswith("/" + ours)


def _config_sets_sim_time(config: str) -> bool:
    from ..config import load_params, resolve_config

    return "use_sim_time" in load_params(resolve_config(config), "object_detector")


def launch_description() -> Any:
    """LaunchDescription declaring :data:`ARGUMENTS` and starting object_detector for Autoware."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    declared += [DeclareLaunchArgument(name, default_value="", description=(
        f"camera {i}'s topic with image_number, as Autoware's perception launch names it ('' = "
        f"{CAMERA_TOPIC.format(i=i)})")) for i, name in enumerate(IMAGE_RAW)]
    declared += [DeclareLaunchArgument(name, default_value="", description=(
        f"camera {i}'s CameraInfo topic with image_number, as Autoware's perception launch names "
        "it ('' = the config's camera_info_topics: <ns>/camera_info)"))
        for i, name in enumerate(CAMERA_INFO)]
    declared += [DeclareLaunchArgument(name, default_value="", description=(
        f"autoware_tensorrt_yolox's argument, taken here as {text}"))
        for name, text in YOLOX_MAPPED.items()]
    declared += [DeclareLaunchArgument(name, default_value="", description=(
        f"autoware_tensorrt_yolox's argument, not used here (a warning says so): {text}"))
        for name, text in YOLOX_UNMAPPED.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_node_actions)])


def _node_actions(context: Any) -> list[Any]:
    from launch_ros.actions import LifecycleNode

    from launch.logging import get_logger

    args = {name: context.launch_configurations.get(name, default)
            for name, (default, _) in ARGUMENTS.items()}
    args.update({name: context.launch_configurations.get(name, "")
                 for name in (*IMAGE_RAW, *CAMERA_INFO, *YOLOX_MAPPED, *YOLOX_UNMAPPED)})
    params = node_parameters(args)
    name = node_name(args)  # refused before the node starts
    logger = get_logger("sense_perception.autoware_launch")
    for note in yolox_notes(args):
        logger.warning(note)
    for note in camera_info_notes(args, params):
        logger.warning(note)
    for note in camera_notes(args):
        logger.info(note)
    autoware = {name: context.launch_configurations.get(name, "") for name in DETECTION_ROIS}
    for note in autoware_camera_notes(params, autoware):
        logger.warning(note)
    return [LifecycleNode(
        package="sense_perception", executable="object_detector", name=name,
        namespace=args["namespace"], parameters=launch_support.launch_parameters(params),
        output="screen",
        emulate_tty=True, arguments=launch_support.log_level_arguments(args["log_level"]))]
