"""object_detector as Autoware's camera detector, included in place of autoware_tensorrt_yolox.

    ros2 launch sense_perception autoware.launch.py image_number:=6
    ros2 launch sense_perception autoware.launch.py image_number:=2 image_transport:=compressed

Camera i: /sensing/camera/camera<i>/image_rect_color[/compressed] with .../camera_info; its ROIs
(tier4_perception_msgs/DetectedObjectsWithFeature) on /perception/object_recognition/detection/rois<i>;
a calibrated camera's road users in 3-D (autoware_perception_msgs/DetectedObjects, base_link) on
/perception/object_recognition/detection/camera<i>/objects.
Arguments: image_number (1-8), image_transport (raw, compressed), camera_topics (instead of
image_number), config (default autoware), namespace, use_sim_time ('' = Autoware's global one),
autostart, log_level; Autoware's image_raw<i> and camera_info<i> (camera i's image and CameraInfo
with image_number); autoware_tensorrt_yolox's input/image (one camera; with use_decompress:=true
its /compressed), output/objects (its ROI topic), camera_id, image_topic_name and yolox_node_name
(the node's name) are taken as there, its other arguments (model_path, build_only...) are warned
about, naming what to use. The logic is in
sense_perception/ros/autoware_launch.py; docs/autoware.md.
"""
from sense_perception.ros.autoware_launch import launch_description


def generate_launch_description():
    return launch_description()
