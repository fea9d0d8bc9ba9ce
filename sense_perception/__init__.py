"""sense_perception: camera perception for automated cars.

The :mod:`sense_perception.core` and :mod:`sense_perception.face` packages are ROS-free; ROS 2 nodes
live in :mod:`sense_perception.ros` and are the only modules that import rclpy.
"""
__version__ = "0.1.0"
