"""ROS 2 nodes: thin rclpy adapters over the ROS-free core (the only package that imports rclpy).

``object_detector_node`` and ``driver_monitor_node`` are lifecycle nodes; ``run`` starts them.
``settings``, ``frame_slots`` and ``launch_support`` import no rclpy, so configs can be checked
without ROS.
"""
