"""The one reader of a CameraInfo's fields (message or dict) and of its binning and roi."""
from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

from sense_perception.core.geometry.camera_info_fields import (ROI_FIELDS, BinningRoi,
                                                               binning_and_roi, get_field, getter)


def _roi(x: int, y: int, w: int, h: int) -> SimpleNamespace:
    return SimpleNamespace(x_offset=x, y_offset=y, width=w, height=h)


def test_a_field_reads_alike_from_a_message_a_dict_and_any_mapping():
    message = SimpleNamespace(width=640)
    for info in (message, {"width": 640}, MappingProxyType({"width": 640})):
        assert get_field(info, "width") == 640
        assert get_field(info, "height") is None
        assert get_field(info, "height", 0) == 0
        get = getter(info)
        assert get("width") == 640
        assert get("height") is None and get("height", 7) == 7


def test_binning_and_roi_are_read_as_given_unchecked():
    message = SimpleNamespace(binning_x=2, binning_y=0, roi=_roi(10, 20, 320, 240))
    as_dict = {"binning_x": 2, "binning_y": 0,
               "roi": {"x_offset": 10, "y_offset": 20, "width": 320, "height": 240}}
    for info in (message, as_dict):
        read = binning_and_roi(info)
        assert read == BinningRoi(2, 0, (10, 20, 320, 240))
        assert (read.binning_x, read.binning_y) == (2, 0)
        assert dict(zip(ROI_FIELDS, read.roi, strict=True))["width"] == 320
    junk = {"binning_x": "2", "roi": {"width": -1.5}}  # the users judge it, not the reader
    assert binning_and_roi(junk) == ("2", 0, (0, 0, -1.5, 0))


def test_a_missing_field_reads_as_the_default_asked_and_no_roi_as_none():
    assert binning_and_roi({}) == BinningRoi(0, 0, None)
    assert binning_and_roi(SimpleNamespace()) == BinningRoi(0, 0, None)
    assert binning_and_roi({"roi": {}}, missing=None) == (None, None, (None, None, None, None))
    # comparable: the positioner tells a changed CameraInfo by it
    assert binning_and_roi({"roi": {"width": 5}}) != binning_and_roi({"roi": {"width": 6}})
