"""Reading a sensor_msgs/CameraInfo's fields, as a message or a dict (ROS-free).

A CameraInfo reaches the package as an rclpy message, a rosbags message or an equal dict (tests,
files): :func:`get_field` and :func:`getter` read a field of any of them, a missing one as the
default. :func:`binning_and_roi` reads ``binning_x``, ``binning_y`` and ``roi`` (REP 104: the
image published is that region of the calibrated sensor, binned) as the message holds them,
unchecked: each user judges them by its own rule (:mod:`.calibration` refuses a wrong one,
:mod:`..autoware.camera_info` names it, :mod:`.positioner` compares them, the head pose asks
whether any is set).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

#: A sensor_msgs/RegionOfInterest's fields, in the order :class:`BinningRoi` holds them.
ROI_FIELDS = ("x_offset", "y_offset", "width", "height")


def get_field(msg: Any, name: str, default: Any = None) -> Any:
    """Field ``name`` of a message or a mapping (a dict), ``default`` when it has none."""
    return msg.get(name, default) if isinstance(msg, Mapping) else getattr(msg, name, default)


def getter(msg: Any) -> Callable[..., Any]:
    """``get(name, default=None)`` reading the fields of ``msg`` (a message or a mapping)."""
    if isinstance(msg, Mapping):
        return msg.get
    return lambda name, default=None: getattr(msg, name, default)


class BinningRoi(NamedTuple):
    """A CameraInfo's binning and roi as it holds them (comparable, as a tuple).

    Attributes:
        binning_x, binning_y: as given (0 and 1 both mean none).
        roi: ``(x_offset, y_offset, width, height)`` as given (all 0: the whole sensor), None
            when the CameraInfo has no roi.
    """

    binning_x: Any
    binning_y: Any
    roi: tuple[Any, Any, Any, Any] | None


def binning_and_roi(info: Any, missing: Any = 0) -> BinningRoi:
    """The ``binning_x``, ``binning_y`` and ``roi`` of a CameraInfo (message or mapping), unchecked;
    a field it lacks (a dict by hand) reads as ``missing``."""
    roi = get_field(info, "roi", None)
    return BinningRoi(get_field(info, "binning_x", missing), get_field(info, "binning_y", missing),
                      None if roi is None else (get_field(roi, "x_offset", missing),
                                                get_field(roi, "y_offset", missing),
                                                get_field(roi, "width", missing),
                                                get_field(roi, "height", missing)))


__all__ = ["BinningRoi", "ROI_FIELDS", "binning_and_roi", "get_field", "getter"]
