"""Autoware's camera-detection interface (ROS-free).

* :mod:`.rois`: a frame's detections as one ``tier4_perception_msgs/DetectedObjectsWithFeature``
  (Autoware's per-camera 2-D ROIs), the label mapping, and the per-camera ROI topic;
* :mod:`.camera_info`: the CameraInfo checks that tell a user when Autoware's fusion would
  silently ignore a camera's calibration.

The message layout is the project's own copy of upstream's (``sense_perception/interfaces``).
"""
