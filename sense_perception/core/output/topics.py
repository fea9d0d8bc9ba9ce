"""Where a camera's perception results go: topic naming shared by the nodes and the replay (ROS-free).

The replay writes, and the nodes publish, the same output topics for a camera, so that a recording
replayed offline lines up with a live graph: ``<ns>/detections``, ``<ns>/faces``... where ``<ns>`` is
:func:`camera_namespace` of the camera's image topic.
"""
from __future__ import annotations

import re
from typing import Sequence

from ...errors import ConfigError

# Last names of image_transport sub-topics: ``/cam/image_raw/compressed`` is still camera ``/cam``.
TRANSPORT_SUFFIXES = ("compressed", "theora", "zstd", "compressedDepth", "ffmpeg")


def image_base_topic(topic: str) -> str:
    """The image topic a topic carries: ``<base>`` of an image_transport sub-topic
    ``<base>/<transport>`` (``/cam/image_raw/compressed`` -> ``/cam/image_raw``), else the topic."""
    base, _, last = str(topic).rstrip("/").rpartition("/")
    return base if base and last in TRANSPORT_SUFFIXES else str(topic).rstrip("/")


# image_transport's and image_pipeline's last names of a camera's images.
_IMAGE_NAME = re.compile(r"image(_raw|_color|_mono|_rect|_rect_color|_rect_mono|_rect_raw)?")


def image_name(topic: str) -> str:
    """The last name of the image a topic carries, an image_transport sub-topic aside
    (``/cam/image_rect_color/compressed`` -> ``image_rect_color``)."""
    return image_base_topic(topic).rstrip("/").rpartition("/")[2]


def camera_of(topic: str) -> str:
    """The camera an image topic shows, for telling whether two topics show one camera.

    A camera is its image topic with every image_transport sub-topic (:func:`image_base_topic`)
    and, in a namespace, every image image_pipeline and camera drivers publish there
    (``image``, ``image_raw``, ``image_color``, ``image_mono``, ``image_rect``,
    ``image_rect_color``...): ``/cam/image_raw``, ``/cam/image_rect_color/compressed`` and
    ``/cam/image`` are all camera ``/cam/`` (the trailing slash marks a namespace). The root
    namespace is a camera's too: ``/image_raw`` and ``/image_rect_color`` (a camera driver and
    image_proc started without a namespace, as ``usb_cam`` publishes by default) are camera
    ``/`` (R74: they were two, and the cabin camera's rectified image an exterior camera). Any
    other topic is its own camera (``/cam/image_raw`` and ``/cam/depth/image_raw`` are two).
    """
    base = image_base_topic(topic)
    ns, _, name = base.rpartition("/")
    if _IMAGE_NAME.fullmatch(name):
        if ns.strip("/"):
            return ns + "/"
        if base.startswith("/"):
            return "/"
    return base


def same_camera(a: str, b: str) -> bool:
    """Whether topics ``a`` and ``b`` show one camera (:func:`camera_of`): the raw, rectified
    and compressed images of a camera are that camera, the cabin camera's included (R70)."""
    return camera_of(str(a)) == camera_of(str(b))


def may_be_camera(name: str, topic: str) -> bool:
    """Whether ``name``, a camera as a config file gives it, may be the camera of ``topic`` once
    a node resolves it, where no node's namespace is known (a replay, a fleet run, an enrolment
    from a bag: the bag's topics are absolute).

    An absolute ``name`` is :func:`same_camera`; a relative one (``cabin/image_raw``) or a
    private one (``~/cabin/image_raw``) resolves in a node's namespace, so it is the camera of
    every topic whose camera ends in it (``/cabin/image_raw``, ``/car/cabin/image_rect``). The
    replay compared it as given: no bag topic is named ``cabin/image_raw``, so a config naming
    the cabin camera relatively had the driver replayed as an exterior camera (R70).

    A bare image name (``image_raw``, ``image_rect_color/compressed``: a node started in the
    camera's namespace) names no namespace: ROS 2 resolves it to ``<node namespace>/image_raw``,
    the camera ``<node namespace>/``, so it may be every camera of a namespace (the root's, ``/``,
    a node started there, included). It was compared as ``/image_raw`` alone and matched none of
    a bag's cameras (R74). A private name (``~/image_raw``) resolves under the node's name too,
    ``<namespace>/<node>/image_raw``, and a replay knows neither: it may be every camera whose
    camera ends in its name without ``~/`` (for ``~/image_raw``, every camera of a namespace).
    Between two nodes of one namespace the node's name is known: :func:`private_as_relative`.
    """
    if same_camera(name, topic):
        return True
    key, other = camera_of(str(name)), camera_of(str(topic))
    if key.startswith("/"):
        return False
    if names_no_namespace(name):  # any namespace, the root's (``/``) included
        return other.endswith("/")
    key = key[1:] if key.startswith("~") else key
    key = key.lstrip("/")
    return bool(key) and (other == key or other.endswith("/" + key))


def private_as_relative(name: str, node: str) -> str:
    """``name``, a topic as node ``node`` is given it, as any other node of its namespace (or a
    reader of absolute topics knowing the node's name) must name that topic: rclpy resolves a
    private name ``~/X`` to ``<namespace>/<node>/X``, so it is ``<node>/X``; any other name is
    everyone's alike and stays as it is.

    A node's camera handed to the other node (object_detector's ``cabin_camera_topic`` from
    driver_monitor's ``camera_topic``, driver_monitor's ``exterior_camera_topics`` from
    object_detector's ``camera_topics``: the config loader, the launch files, ``run``) went as
    given, and ``~/image_raw`` resolved under the receiving node's own name: driver_monitor's
    ``/driver_monitor/image_raw`` was no cabin camera to object_detector, which took it among
    its cameras (the driver's face in its debug image and annotations), while two nodes'
    private ``~/image_raw``, two cameras, were refused as one (R81). ``node`` is the node's name
    as the launch files and ``run`` give it (the config section's). A replay knows neither the
    nodes' namespace nor their names, and takes a private name as any camera it may be
    (:func:`may_be_camera`).
    """
    name = str(name)
    if name == "~":
        return node
    return f"{node}/{name[2:]}" if name.startswith("~/") else name


def names_no_namespace(name: str) -> bool:
    """Whether ``name`` is a relative or private image name without a namespace part
    (``image_raw``, ``image_rect/compressed``, ``~/image_raw``): where no node's namespace (and
    name) is known it may be the image of any camera (:func:`may_be_camera`)."""
    name = str(name)
    if name.startswith("/"):
        return False
    key = camera_of(name)
    key = key[1:] if key.startswith("~") else key
    key = key.lstrip("/")
    return not key or bool(_IMAGE_NAME.fullmatch(key))


def cameras_it_may_be(name: str, topics: Sequence[str]) -> dict[str, list[str]]:
    """The cameras (:func:`camera_of`) among ``topics`` that ``name``, a camera as a config
    gives it, may be once a node resolves it (:func:`may_be_camera`), each with its topics in
    the order given. An absolute name gives at most one camera; a relative one may give several
    (``image_raw`` in a bag of ``/front/image_raw`` and ``/cabin/image_raw``), which a caller
    without a node's namespace cannot choose between."""
    found: dict[str, list[str]] = {}
    for topic in topics:
        if may_be_camera(name, topic):
            found.setdefault(camera_of(topic), []).append(topic)
    return found


def looks_like_image(topic: str) -> bool:
    """A topic named as a camera's image is (``.../image_raw``, ``.../image_rect_color``,
    ``.../image``...), or an image_transport sub-topic (``.../compressed``)."""
    return (bool(_IMAGE_NAME.fullmatch(image_name(topic)))
            or str(topic).rstrip("/").rpartition("/")[2] in TRANSPORT_SUFFIXES)


def is_debug_topic(topic: str) -> bool:
    """A topic in a ``debug`` namespace (``/x/debug/image``, Autoware's ``~/debug/...``): a
    node's debug output by ROS convention, never a camera driver's frames."""
    return "debug" in str(topic).strip("/").split("/")[:-1]


def rectified_topic(topic: str) -> bool:
    """Whether an image topic carries rectified images, by image_pipeline's names: its
    :func:`image_name` begins with ``image_rect`` (``image_rect``, ``image_rect_color``:
    Autoware's camera input). Their CameraInfo is the raw camera's (K, D); the rectified image's
    own intrinsics are its P and R (REP 104)."""
    return image_name(topic).startswith("image_rect")


def camera_namespace(topic: str) -> str:
    """Namespace of a camera image topic, where its perception outputs go.

    ``/cam/front/image_raw`` and ``/cam/front/image_raw/compressed`` both give ``/cam/front``; a
    topic with no namespace (``/image``) gives ``/image`` so outputs never land at the root.
    """
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] in TRANSPORT_SUFFIXES:
        parts = parts[:-1]
    if len(parts) > 1:
        parts = parts[:-1]
    return "/" + "/".join(parts)


def output_namespace(topic: str) -> str:
    """:func:`camera_namespace`, but a relative topic gives a relative namespace.

    A node resolves a relative name in its own namespace, so ``front/image_raw`` must give
    ``front``, not ``/front``.
    """
    ns = camera_namespace(topic)
    return ns if topic.startswith("/") else ns.lstrip("/")


def output_namespaces(topics: Sequence[str]) -> list[str]:
    """:func:`output_namespace` of each topic; the full topic where two would collide.

    Two topics of one camera (raw and compressed) would write to the same outputs, so each of
    those keeps its whole topic name as its namespace instead.
    """
    spaces = [output_namespace(t) for t in topics]
    return [t if spaces.count(ns) > 1 else ns for t, ns in zip(topics, spaces, strict=True)]


def join_topic(ns: str, name: str) -> str:
    """``ns/name`` (``name`` alone for the empty namespace)."""
    return f"{ns.rstrip('/')}/{name}" if ns else name


def camera_info_topic(camera_topic: str, setting: str) -> str:
    """The sensor_msgs/CameraInfo topic of a camera: ``auto`` = its namespace + ``/camera_info``
    (image_transport's convention, the sibling of the image's base topic: ``/cam/image_raw`` ->
    ``/cam/camera_info``), "" = none, else ``setting`` itself.

    An image with no namespace has its CameraInfo beside it too: ``/image_raw`` (a camera driver
    started at the root, usb_cam's default) -> ``/camera_info``, and a bare relative
    ``image_raw`` (a node started in the camera's namespace) -> ``camera_info``, which the node
    resolves in that namespace. Both were taken as a namespace of their own
    (:func:`output_namespace`, where a root camera's outputs go): ``/image_raw/camera_info`` and
    ``image_raw/camera_info``, a topic no camera publishes, so the 3-D positions and the head pose
    never got the calibration, while a replay of the same camera read it (R76). A topic of one
    name that is no image's (``/front``) keeps its own namespace, as before.
    """
    if setting == "auto":
        base = image_base_topic(camera_topic)
        ns, slash, name = base.rpartition("/")
        if _IMAGE_NAME.fullmatch(name) and not ns.strip("/"):
            return "/camera_info" if slash and not ns else "camera_info"
        return join_topic(output_namespace(camera_topic), "camera_info")
    return setting


def per_camera(entries: Sequence[str], count: int) -> list[str]:
    """A per-camera setting (``camera_info_topics``) for ``count`` cameras: one entry serves every
    camera, else one entry per camera; [] when it has neither (for the caller to refuse)."""
    if len(entries) == 1:
        return list(entries) * count
    return list(entries) if len(entries) == count else []


# ROS 2 topic names: tokens of letters, digits and underscores, none starting with a digit,
# separated by single slashes; absolute (/a/b), relative (a/b) or private (~/a).
_TOPIC_NAME = re.compile(r"(/|~/)?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")


def check_topic_names(topics: Sequence[str], name: str) -> None:
    """Refuse what ROS would not take as a topic name, naming the first such entry of ``name``.

    Raises:
        ConfigError: an entry of ``topics`` is not a ROS 2 topic name.
    """
    for topic in topics:
        if not _TOPIC_NAME.fullmatch(topic):
            raise ConfigError(f"{name}: {topic!r} is not a ROS topic name (letters, digits and "
                              "underscores between single slashes, no token starting with a "
                              "digit, no trailing slash)")


__all__ = ["TRANSPORT_SUFFIXES", "camera_info_topic", "camera_namespace", "camera_of",
           "cameras_it_may_be", "check_topic_names", "image_base_topic", "image_name",
           "is_debug_topic", "join_topic", "looks_like_image", "may_be_camera",
           "names_no_namespace", "output_namespace", "output_namespaces", "per_camera",
           "private_as_relative", "rectified_topic", "same_camera"]
