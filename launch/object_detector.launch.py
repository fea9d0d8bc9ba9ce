"""The object_detector lifecycle node.

    ros2 launch sense_perception object_detector.launch.py \
        camera_topics:=/camera/front/image_raw config:=/path/to/perception.yaml namespace:=perception

    ros2 launch sense_perception object_detector.launch.py config:=carla   # or config:=awsim

Arguments: config (a YAML path, or a bundled set-up by name: perception, carla, awsim, autoware,
quality), namespace, use_sim_time, autostart, camera_topics (comma-separated), log_level.
"""
from sense_perception.ros.launch_support import launch_description


def generate_launch_description():
    return launch_description(["object_detector"])
