"""sense_perception: camera perception for automated cars.

The :mod:`sense_perception.core` and :mod:`sense_perception.face` packages are ROS-free; ROS 2 nodes
live in :mod:`sense_perception.ros` and are the only modules that import rclpy.
"""
from . import no_telemetry  # noqa: F401  first: before any module imports onnxruntime

__version__ = "0.1.0"
