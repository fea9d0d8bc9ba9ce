"""Both perception nodes (object_detector, driver_monitor) as lifecycle nodes.

    ros2 launch sense_perception perception.launch.py \
        camera_topics:=/camera/front/image_raw,/camera/rear/image_raw/compressed \
        camera_topic:=/cabin_camera/image_raw config:=/path/to/perception.yaml \
        namespace:=perception use_sim_time:=false

config is a YAML path or a bundled set-up by name (perception, carla, awsim, autoware, quality:
config:=carla reads the package's share/sense_perception/config/carla.yaml). Arguments left empty
keep the config file's values; see `ros2 launch ... --show-args`.
"""
from sense_perception.ros.launch_support import launch_description


def generate_launch_description():
    return launch_description(["object_detector", "driver_monitor"])
