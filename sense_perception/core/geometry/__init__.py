"""Where detected road users are on the road: calibration, ground-plane geometry, size priors."""
from .calibration import (CalibrationError, CameraCalibration, from_camera_info, from_dict,
                          load_calibration, mount_transform)
from .ground import GroundPositions, estimate_positions
from .priors import DEFAULT_NOISE, PRIORS, ROAD_USERS, PositionNoise

__all__ = ["CalibrationError", "CameraCalibration", "DEFAULT_NOISE", "GroundPositions", "PRIORS",
           "PositionNoise", "ROAD_USERS", "estimate_positions", "from_camera_info", "from_dict",
           "load_calibration", "mount_transform"]
