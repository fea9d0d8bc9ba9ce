"""The object_detector node hands CameraPositions each CameraInfo and /tf_static message on the
executor's thread while its inference thread places a frame with it: what one thread changes
mid-way through the other's step is never lost (SECURITY.md R48). ROS-free: two threads here."""
from __future__ import annotations

import math
import threading

import numpy as np

from sense_perception.core.geometry import mount_transform, positioner
from sense_perception.core.geometry.positioner import CameraPositions

TOPIC = "/camera/front/image_raw"
FRAME = "front_camera_optical"
W, H = 1280, 720
MOUNT = mount_transform(1.5, pitch=math.radians(3))
BOX = np.array([[600.0, 300.0, 660.0, 500.0]])
LABELS = ("pedestrian",)


def _info(focal: float) -> dict:
    k = [focal, 0.0, W / 2, 0.0, focal, H / 2, 0.0, 0.0, 1.0]
    return {"k": k, "d": [0.0] * 5, "distortion_model": "plumb_bob", "width": W, "height": H,
            "header": {"frame_id": FRAME}}


def _place(positions: CameraPositions):
    return positions.positions(TOPIC, FRAME, W, H, BOX, np.array([0]), LABELS)


def test_a_camera_info_arriving_while_a_frame_builds_the_calibration_is_not_lost(monkeypatch):
    """A new CameraInfo (a recalibrated camera, one changing with every frame) that arrived while
    the inference thread built the calibration from the one before was overwritten by it: the node
    placed every later frame with the old intrinsics, and the same new CameraInfo repeated by the
    driver was taken as already known. Now the new one is used from the next frame."""
    entered, go = threading.Event(), threading.Event()
    real = positioner.from_camera_info

    def slow(*args, **kwargs):  # the inference thread, mid-way through building the calibration
        entered.set()
        assert go.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(positioner, "from_camera_info", slow)
    positions = CameraPositions(mount=MOUNT)
    positions.camera_info(TOPIC, _info(800.0))
    worker = threading.Thread(target=_place, args=(positions,))
    worker.start()
    assert entered.wait(10)
    executor = threading.Thread(target=positions.camera_info, args=(TOPIC, _info(1600.0)))
    executor.start()
    executor.join(0.5)  # the old code took it at once; now it waits for the frame's step
    go.set()
    worker.join(10)
    executor.join(10)
    positions.camera_info(TOPIC, _info(1600.0))  # the driver repeats it with every frame
    monkeypatch.setattr(positioner, "from_camera_info", real)
    got = _place(positions)
    fresh = CameraPositions(mount=MOUNT)
    fresh.camera_info(TOPIC, _info(1600.0))
    want = _place(fresh)
    assert got is not None and want is not None
    np.testing.assert_allclose(got.xyz, want.xyz)
    assert positions.generation(TOPIC) == 1  # the camera's velocity filters restart on it


def test_tf_static_while_the_first_frame_of_a_camera_is_placed_raises_nothing():
    """/tf_static (the executor) walked the cameras while the inference thread added one (the
    first frame of a camera): "dictionary changed size during iteration" raised out of the
    subscription callback, out of the executor's spin. Both steps now take their turn."""
    entered, go = threading.Event(), threading.Event()

    class Pausing(positioner._Camera):  # /tf_static, paused on its way through the cameras
        armed = False

        def __setattr__(self, name, value):
            if self.armed and name == "calibration":
                entered.set()
                assert go.wait(10)
            super().__setattr__(name, value)

    positions = CameraPositions()
    camera = positions._cameras["/camera/other/image_raw"] = Pausing()
    camera.armed = True
    errors: list[BaseException] = []

    def tf_message() -> None:
        try:
            positions.tf_static({"transforms": []})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    executor = threading.Thread(target=tf_message)
    executor.start()
    assert entered.wait(10)
    worker = threading.Thread(target=_place, args=(positions,))  # TOPIC's first frame
    worker.start()
    worker.join(0.5)  # the old code added the camera at once; now it waits for the message
    go.set()
    executor.join(10)
    worker.join(10)
    assert not errors, errors
    assert positions.reason(TOPIC).startswith("no calibration")
