"""The Autoware set-up in a live graph: object_detector started the way launch/autoware.launch.py
configures it (sense_perception.ros.autoware_launch.node_parameters, image_number:=2), real street
frames on Autoware's camera topics, and an independent subscriber with Autoware's QoS (best effort,
keep last 1) on rois0 and rois1. The subscriber takes the serialized bytes and decodes them with a
reader built from Autoware's published layout (test/autoware_layout.py), not with the project's
message classes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ros_helpers import DATA, describe_status, half_size, image_msg, level, read_bgr, start_node, \
    status_values, wait_active, write_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test/autoware_layout.py
from autoware_layout import ROIS, published_typestore, roi_rows  # noqa: E402

pytestmark = pytest.mark.ros

CAMERAS = ["/sensing/camera/camera0/image_rect_color", "/sensing/camera/camera1/image_rect_color"]
ROIS_TOPIC = "/perception/object_recognition/detection/rois"
NODE = "/object_detector"


def _camera_info(width: int, height: int, frame_id: str, model: str):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=width, height=height, distortion_model=model, d=[0.0] * 5,
                      k=[float(width), 0.0, width / 2, 0.0, float(width), height / 2, 0.0, 0.0, 1.0],
                      p=[float(width), 0.0, width / 2, 0.0, 0.0, float(width), height / 2, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.header.frame_id = frame_id
    return info


def test_autoware_launch_setup_publishes_rois_per_camera_with_the_images_headers(graph, ros_env, tmp_path):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from sense_perception.ros import autoware_launch

    params = autoware_launch.node_parameters({"image_number": "2"})
    assert params["camera_topics"] == CAMERAS
    node = start_node("object_detector_node", write_params(tmp_path / "p.yaml", {"object_detector": params}),
                      ros_env, tmp_path / "node.log")
    try:
        wait_active(graph, node, NODE)
        # Autoware's fusion subscribes best effort, keep last 1; the raw bytes, decoded independently.
        autoware_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                  reliability=ReliabilityPolicy.BEST_EFFORT)
        from tier4_perception_msgs.msg import DetectedObjectsWithFeature

        received: dict[int, list[bytes]] = {0: [], 1: []}
        for i in (0, 1):
            graph._entities.append(graph.node.create_subscription(
                DetectedObjectsWithFeature, f"{ROIS_TOPIC}{i}", received[i].append, autoware_qos, raw=True))
        image_pubs = [graph.publisher(Image, t, 1) for t in CAMERAS]
        info_pubs = [graph.publisher(CameraInfo, t.rsplit("/", 1)[0] + "/camera_info", 1) for t in CAMERAS]
        assert graph.spin_until(lambda: all(graph.node.count_publishers(f"{ROIS_TOPIC}{i}") == 1
                                            for i in (0, 1)), 30.0), "no ROI publishers"
        street = half_size(read_bgr(sorted((DATA / "street").glob("*"))[0]))
        h, w = street.shape[:2]
        published = published_typestore()
        sent: dict[int, set[tuple[int, int, str]]] = {0: set(), 1: set()}

        def decoded(i: int) -> list:
            return [published.deserialize_cdr(bytes(raw), ROIS) for raw in received[i]]

        def both_answered() -> bool:
            return all(any((m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) in sent[i]
                           for m in decoded(i)) for i in (0, 1))

        for n in range(60):  # best effort: frames may be lost after discovery, so keep sending
            for i in (0, 1):
                frame = f"camera{i}/camera_optical_link"
                # camera1's CameraInfo names another frame than its images: Autoware would misplace it
                info_pubs[i].publish(_camera_info(w, h, frame if i == 0 else "camera1/camera_link", "plumb_bob"))
                image_pubs[i].publish(image_msg(street, 100 + n, i * 10_000_000, frame))
                sent[i].add((100 + n, i * 10_000_000, frame))
            if graph.spin_until(both_answered, 0.5):
                break
        assert both_answered(), f"rois0/rois1 got {len(received[0])}/{len(received[1])} messages"
        for i in (0, 1):
            answers = [m for m in decoded(i) if (m.header.stamp.sec, m.header.stamp.nanosec,
                                                m.header.frame_id) in sent[i]]
            assert len(answers) == len(decoded(i)), "a ROI message without an input image's header"
            rows = roi_rows(answers[-1])
            assert any(r[0] == 1 for r in rows), rows  # the street frame's cars
            assert all(r[1] == 1.0 and r[3] + r[5] <= w and r[4] + r[6] <= h and not r[7] for r in rows)
        status = graph.spin_until(lambda: (s := graph.diagnostics.get(NODE)) is not None and "differs" in
                                  status_values(s).get(f"camera_info[{CAMERAS[1]}]", "") and s, 10.0)
        assert status, describe_status(graph.diagnostics.get(NODE))
        assert level(status) >= 1 and status_values(status)[f"camera_info[{CAMERAS[0]}]"] == "ok"
    finally:
        code = node.stop()
        print(node.output()[-3000:], f"\nnode exit code {code}")
        graph.release()
    # warned once, not per frame
    assert node.output().count("camera1/camera_link") == 1, node.output()


OBJECTS_TOPIC = "/perception/object_recognition/detection/camera0/objects"


def test_calibrated_camera_publishes_detected_objects_and_roi_kinematics(graph, ros_env, tmp_path):
    """config/autoware.yaml with a calibration (the camera's CameraInfo plus the mount
    parameters): camera0's DetectedObjects, decoded independently from the published layout, have
    the image's stamp, frame base_link and placed cars; the ROIs' objects carry the same
    kinematics; one CameraInfo subscription serves the 3-D positions and the Autoware check."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from sense_perception.core.geometry import mount_transform
    from sense_perception.ros import autoware_launch

    # the mount as a transform: mount_height (base_link below the camera) is refused with
    # Autoware's outputs, whose base_link is the rear axle (R57)
    params = {**autoware_launch.node_parameters({"image_number": "1"}),
              "mount_transform": mount_transform(1.5, 0.02).ravel().tolist()}
    node = start_node("object_detector_node", write_params(tmp_path / "p.yaml", {"object_detector": params}),
                      ros_env, tmp_path / "node.log")
    camera, info_topic = CAMERAS[0], CAMERAS[0].rsplit("/", 1)[0] + "/camera_info"
    try:
        wait_active(graph, node, NODE)
        from autoware_perception_msgs.msg import DetectedObjects
        from tier4_perception_msgs.msg import DetectedObjectsWithFeature

        objects: list[bytes] = []
        rois: list[bytes] = []
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                              reliability=ReliabilityPolicy.RELIABLE)
        graph._entities.append(graph.node.create_subscription(
            DetectedObjects, OBJECTS_TOPIC, objects.append, reliable, raw=True))
        graph._entities.append(graph.node.create_subscription(
            DetectedObjectsWithFeature, f"{ROIS_TOPIC}0", rois.append,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.BEST_EFFORT), raw=True))
        image_pub = graph.publisher(Image, camera, 1)
        info_pub = graph.publisher(CameraInfo, info_topic, 1)
        assert graph.spin_until(lambda: graph.node.count_publishers(OBJECTS_TOPIC) == 1, 30.0)
        # item of #23: one subscription per CameraInfo topic, not one per reader
        assert graph.spin_until(lambda: graph.node.count_subscribers(info_topic) >= 1, 10.0)
        graph.spin_until(lambda: False, 1.0)  # a second subscription would be discovered by now
        assert graph.node.count_subscribers(info_topic) == 1
        street = half_size(read_bgr(sorted((DATA / "street").glob("*"))[0]))
        h, w = street.shape[:2]
        published = published_typestore()
        frame = "camera0/camera_optical_link"
        sent: set[tuple[int, int]] = set()

        def decoded() -> list:
            return [published.deserialize_cdr(bytes(raw), "autoware_perception_msgs/msg/DetectedObjects")
                    for raw in objects]

        def answered() -> bool:
            return any((m.header.stamp.sec, m.header.stamp.nanosec) in sent and m.objects
                       for m in decoded())

        for n in range(60):
            info_pub.publish(_camera_info(w, h, frame, "plumb_bob"))
            image_pub.publish(image_msg(street, 200 + n, 5_000_000, frame))
            sent.add((200 + n, 5_000_000))
            if graph.spin_until(answered, 0.5):
                break
        assert answered(), f"{len(objects)} DetectedObjects, none for a sent image; " \
                           f"{describe_status(graph.diagnostics.get(NODE))}"
        msgs = decoded()
        assert all((m.header.stamp.sec, m.header.stamp.nanosec) in sent for m in msgs)
        assert all(m.header.frame_id == "base_link" for m in msgs)
        last = [m for m in msgs if m.objects][-1]
        assert any(o.classification[0].label == 1 for o in last.objects)  # the street's cars
        for o in last.objects:
            kin = o.kinematics
            assert kin.has_position_covariance and kin.orientation_availability == 0
            x, y = kin.pose_with_covariance.pose.position.x, kin.pose_with_covariance.pose.position.y
            assert 0.0 < x < 200.0 and abs(y) < 100.0
            assert o.shape.type == (1 if o.classification[0].label == 7 else 0)
        stamp = (last.header.stamp.sec, last.header.stamp.nanosec)
        assert graph.spin_until(lambda: any(
            (r.header.stamp.sec, r.header.stamp.nanosec) == stamp
            for r in (published.deserialize_cdr(bytes(raw), ROIS) for raw in rois)), 5.0)
        roi = next(r for r in (published.deserialize_cdr(bytes(raw), ROIS) for raw in rois)
                   if (r.header.stamp.sec, r.header.stamp.nanosec) == stamp)
        assert roi.header.frame_id == frame
        roi_x = sorted(f.object.kinematics.pose_with_covariance.pose.position.x
                       for f in roi.feature_objects if f.object.kinematics.has_position_covariance)
        assert roi_x == sorted(o.kinematics.pose_with_covariance.pose.position.x for o in last.objects)
    finally:
        code = node.stop()
        print(node.output()[-3000:], f"\nnode exit code {code}")
        graph.release()
