"""The driver_monitor lifecycle node (in-cabin camera only).

    ros2 launch sense_perception driver_monitor.launch.py \
        camera_topic:=/cabin_camera/image_raw gallery_path:=/var/lib/car/gallery.json.enc

Arguments: config, namespace, use_sim_time, autostart, camera_topic, gallery_path, log_level.
"""
from sense_perception.ros.launch_support import launch_description


def generate_launch_description():
    return launch_description(["driver_monitor"])
