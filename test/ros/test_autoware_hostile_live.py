"""object_detector refuses at configure what the Autoware drop-in's hostile round found (R25): the
node stays unconfigured, running, naming the parameter and the fix; no traceback, nothing
published on a topic an input or another output already has."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros

CAMERAS = "[/sensing/camera/camera0/image_rect_color, /sensing/camera/camera1/image_rect_color]"


@pytest.mark.parametrize("params, named", [
    # ROIs onto camera1's own image input
    (f"camera_topics: {CAMERAS}\n    autoware:\n      rois_topic: "
     "/sensing/camera/camera{index}/image_rect_color\n",
     "which is already the image input of camera '/sensing/camera/camera0/image_rect_color'"),
    # ROIs on driver_monitor's faces (Detection2DArray) of the cabin camera
    ("camera_topics: [/sensing/camera/camera0/image_rect_color]\n    autoware:\n"
     "      rois_topic: /camera/cabin/faces\n", "which is already driver_monitor's faces output"),
    # both Autoware outputs on one topic (two message types)
    (f"camera_topics: {CAMERAS}\n    autoware:\n      rois_topic: /x/roi{{index}}\n"
     "      objects_topic: /x/roi{index}\n", "which is already the ROI output of camera"),
    ("camera_topics: ['/sensing/camera/camera0/image rect']\n", "is not a ROS topic name"),
    # one CameraInfo topic checked for two cameras
    (f"camera_topics: {CAMERAS}\n    autoware:\n      rois_topic: /x/rois{{index}}\n"
     "      camera_info_topic: /sensing/camera/camera0/camera_info\n",
     "names one CameraInfo topic for 2 cameras"),
    ("detector:\n      max_detections: 0\n", "detector.max_detections"),
])
def test_what_the_hostile_round_found_leaves_the_node_unconfigured_naming_it(params_context, params,
                                                                             named):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("object_detector:\n  ros__parameters:\n    " + params)
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert named in node.config_error, node.config_error
        assert node.lifecycle_state == "unconfigured"
    finally:
        node.destroy_node()


def test_a_camera_info_changing_with_every_message_keeps_the_node_s_log_short(graph, ros_env, tmp_path):
    """Hundreds of CameraInfos, each with a new frame_id, a long distortion_model, another K and
    size, while frames flow: the ROIs go on with the images' headers, the log holds a handful of
    CameraInfo lines of bounded length, /diagnostics shows the current problem."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from tier4_perception_msgs.msg import DetectedObjectsWithFeature

    from ros_helpers import (DATA, describe_status, half_size, image_msg, read_bgr, start_node,
                             status_values, wait_active, write_params)

    from sense_perception.ros import autoware_launch

    camera = "/sensing/camera/camera0/image_rect_color"
    params = autoware_launch.node_parameters({"image_number": "1"})
    node = start_node("object_detector_node", write_params(tmp_path / "p.yaml", {"object_detector": params}),
                      ros_env, tmp_path / "node.log")
    try:
        wait_active(graph, node, "/object_detector")
        received: list = []
        graph._entities.append(graph.node.create_subscription(
            DetectedObjectsWithFeature, "/perception/object_recognition/detection/rois0", received.append,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)))
        image_pub = graph.publisher(Image, camera, 1)
        info_pub = graph.publisher(CameraInfo, "/sensing/camera/camera0/camera_info", 1)
        street = half_size(read_bgr(sorted((DATA / "street").glob("*"))[0]))
        h, w = street.shape[:2]
        for n in range(300):
            info = CameraInfo(width=w + n, height=h + n, distortion_model=f"model_{n}_" + "x" * 5000,
                              d=[0.0] * (n % 12), k=[300.0 + n, 0.0, w / 2, 0.0, 300.0 + n, h / 2, 0.0, 0.0, 1.0])
            info.header.frame_id = f"optical_{n}"
            info_pub.publish(info)
            if n % 10 == 0:
                image_pub.publish(image_msg(street, 100 + n, 0, "camera0/camera_optical_link"))
            graph.spin_until(lambda: False, 0.01)
        assert graph.spin_until(lambda: len(received) > 0, 20.0), "no ROIs while CameraInfos flooded"
        assert all(m.header.frame_id == "camera0/camera_optical_link" for m in received)
        status = graph.spin_until(lambda: (s := graph.diagnostics.get("/object_detector")) is not None
                                  and "model_" in status_values(s).get(f"camera_info[{camera}]", "") and s,
                                  10.0)
        assert status, describe_status(graph.diagnostics.get("/object_detector"))
        assert len(status_values(status)[f"camera_info[{camera}]"]) < 2000
    finally:
        code = node.stop()
        graph.release()
    lines = [line for line in node.output().splitlines() if "CameraInfo:" in line]
    assert 1 <= len(lines) <= 10, lines[:20]  # throttled, and at most MAX_TOLD told
    assert all(len(line) < 1000 for line in lines), max(map(len, lines))
    assert code == 0 and "Traceback" not in node.output()
