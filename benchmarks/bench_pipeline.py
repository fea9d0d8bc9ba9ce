"""pipeline_over_raw: a whole frame through the pipeline vs the bare ``session.run`` of its model.

Pipeline per frame: a real ``sensor_msgs/Image`` (rosbags type, ``rgb8`` as many camera drivers
publish) -> ``decode_view`` (zero-copy view of the message buffer in its rgb8 channel order, as
the replay engine and node use it) -> ``ObjectDetector.detect`` (pre-process into the reused blob,
inference, decode, NMS) -> ``Detection2DArray`` message dict; a second variant adds the
per-camera tracker update between detect and message, as the object_detector node does. Raw:
``session.run`` of the detector's own onnxruntime session (same model, same options) on the blob of
the same frame, prepared beforehand. The variants run interleaved, round by round over the same
frame sequence; each ratio is the median of per-round ratios. A JPEG ``CompressedImage`` variant
is measured the same way and reported beside it.
"""
from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from sense_perception.core.output import messages
from sense_perception.core.imaging.image_decode import decode_any, decode_view
from sense_perception.core.tracking.tracker import TrackerBank, TrackingConfig
from sense_perception.core.types import Header

from .common import Inputs, side_by_side

STAGES = ("decode", "preprocess", "inference", "postprocess", "tracking", "message")


def ros_messages(images: list[np.ndarray], compressed: bool = False) -> list[Any]:
    """Real rosbags sensor_msgs/Image (rgb8) or CompressedImage (JPEG q90) of ``images``."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    header_t = store.types["std_msgs/msg/Header"]
    time_t = store.types["builtin_interfaces/msg/Time"]
    out = []
    for i, bgr in enumerate(images):
        header = header_t(stamp=time_t(sec=1_700_000_000 + i, nanosec=0), frame_id="front_camera")
        if compressed:
            data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].reshape(-1)
            out.append(store.types["sensor_msgs/msg/CompressedImage"](
                header=header, format="rgb8; jpeg compressed bgr8", data=data))
        else:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            out.append(store.types["sensor_msgs/msg/Image"](
                header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                data=rgb.reshape(-1)))
    return out


class Pipeline:
    """The per-frame path of the object_detector node, with per-stage timing."""

    def __init__(self, detector: Any, tracking: bool = True, zero_copy: bool = True,
                 reduced_jpeg: bool = True) -> None:
        self.detector = detector
        # zero_copy=False is the former path (decode_any to a BGR copy), kept as a comparison;
        # reduced_jpeg=False decodes JPEGs at full resolution (the path before reduced decoding).
        floor = detector.decode_floor if reduced_jpeg else None
        self.decode = (lambda msg: decode_view(msg, size_floor=floor)) if zero_copy else decode_any
        self.trackers = TrackerBank(TrackingConfig(), detector.label_names) if tracking else None
        self.stage_ms = {name: 0.0 for name in STAGES}
        self.frames = 0

    def __call__(self, msg: Any, t: float) -> dict[str, Any]:
        t0 = time.perf_counter()
        image = self.decode(msg)
        header = Header.from_msg(msg.header)
        t1 = time.perf_counter()
        dets = self.detector.detect([image])[0]
        t2 = time.perf_counter()
        if self.trackers is not None:
            dets = self.trackers.update(header.frame_id, dets, t)
        t3 = time.perf_counter()
        out = messages.detection2d_array(header, dets, self.detector.label_names)
        t4 = time.perf_counter()
        timings = self.detector.timings
        st = self.stage_ms
        st["decode"] += (t1 - t0) * 1e3
        st["preprocess"] += timings["preprocess"]
        st["inference"] += timings["inference"]
        # detect()'s own bookkeeping (input checks, lock) is counted with post-processing.
        st["postprocess"] += (t2 - t1) * 1e3 - timings["preprocess"] - timings["inference"]
        st["tracking"] += (t3 - t2) * 1e3
        st["message"] += (t4 - t3) * 1e3
        self.frames += 1
        return out

    def mean_stage_ms(self) -> dict[str, float]:
        return {k: round(v / max(self.frames, 1), 4) for k, v in self.stage_ms.items()}


def _floor(detector: Any, msg: Any, blob: np.ndarray, session: Any, name: str,
           outputs: list[str], canvas: np.ndarray) -> None:
    """The least any pipeline with this model's trained pre-processing does: the resize of the
    frame with the model's filter, then session.run (no normalisation, decode, NMS or message)."""
    view = decode_view(msg)
    cv2.resize(view.array, (canvas.shape[1], canvas.shape[0]), dst=canvas,
               interpolation=detector._pre._interp)
    session.run(outputs, {name: blob})


def _measure(detector: Any, msgs: list[Any], rounds: int, calls: int,
             with_tracking: bool = True, full_jpeg: bool = False) -> dict[str, Any]:
    images = [decode_any(m) for m in msgs]
    session = detector._model.session  # the detector's own session: same model, same options
    name = detector._model.inputs[0].name
    outputs = detector._model.output_names
    blobs = [detector._pre([im])[0].copy() for im in images]
    pipeline = Pipeline(detector, tracking=False)
    tracked = Pipeline(detector, tracking=True)
    copying = Pipeline(detector, tracking=False, zero_copy=False)
    n = len(msgs)
    canvas = np.empty((*detector.input_size[::-1], 3), np.uint8)
    variants = {
        "pipeline": lambda i: pipeline(msgs[i % n], i * 0.1),
        "raw": lambda i: session.run(outputs, {name: blobs[i % n]}),
        "floor": lambda i: _floor(detector, msgs[i % n], blobs[i % n], session, name, outputs,
                                  canvas),
    }
    full = Pipeline(detector, tracking=False, reduced_jpeg=False)
    if full_jpeg:
        variants["pipeline_full_jpeg"] = lambda i: full(msgs[i % n], i * 0.1)
    if with_tracking:
        variants["pipeline_tracked"] = lambda i: tracked(msgs[i % n], i * 0.1)
        variants["pipeline_bgr_copy"] = lambda i: copying(msgs[i % n], i * 0.1)
    result = side_by_side(variants, rounds, calls)
    out = {
        "ratio": round(result.ratio("pipeline", "raw"), 4),
        "ratio_iqr": [round(x, 4) for x in result.ratio_spread("pipeline", "raw")],
        "pipeline_ms": round(result.median_ms("pipeline"), 3),
        "raw_session_run_ms": round(result.median_ms("raw"), 3),
        "stage_mean_ms": pipeline.mean_stage_ms(),
        "floor_ratio": round(result.ratio("floor", "raw"), 4),
        "timing": result.summary(),
    }
    if full_jpeg:
        out["ratio_full_jpeg_decode"] = round(result.ratio("pipeline_full_jpeg", "raw"), 4)
        out["stage_mean_ms_full_jpeg_decode"] = full.mean_stage_ms()
    if with_tracking:
        out["ratio_with_tracking"] = round(result.ratio("pipeline_tracked", "raw"), 4)
        out["stage_mean_ms_with_tracking"] = tracked.mean_stage_ms()
        out["ratio_bgr_copy"] = round(result.ratio("pipeline_bgr_copy", "raw"), 4)
        out["stage_mean_ms_bgr_copy"] = copying.mean_stage_ms()
    return out


def run(detector: Any, inputs: Inputs, rounds: int, calls: int) -> dict[str, Any]:
    """Measure ``pipeline_over_raw`` for rgb8 Image messages, with tracking, and for JPEG."""
    rgb8 = _measure(detector, ros_messages(inputs.images), rounds, calls)
    jpeg = _measure(detector, ros_messages(inputs.images, compressed=True), rounds, calls,
                    with_tracking=False, full_jpeg=True)
    # The per-frame overhead scales with the camera resolution, inference does not.
    hd = [cv2.resize(im, (1280, 720), interpolation=cv2.INTER_AREA) for im in inputs.images]
    rgb8_720p = _measure(detector, ros_messages(hd), rounds, calls, with_tracking=False)
    return {
        "pipeline_over_raw": rgb8["ratio"],
        "pipeline_over_raw_with_tracking": rgb8["ratio_with_tracking"],
        "pipeline_over_raw_bgr_copy": rgb8["ratio_bgr_copy"],
        "pipeline_over_raw_jpeg": jpeg["ratio"],
        "pipeline_over_raw_jpeg_full_decode": jpeg["ratio_full_jpeg_decode"],
        "floor_over_raw": rgb8["floor_ratio"],
        "pipeline_over_raw_720p": rgb8_720p["ratio"],
        "detail": {
            "what": ("per frame: sensor_msgs/Image rgb8 (rosbags type) -> decode_view (zero-copy "
                     "view in the message's channel order; JPEG: decode to BGR) -> "
                     "ObjectDetector.detect (pre-process into the reused blob, inference, decode, "
                     "NMS) -> Detection2DArray dict; divided by session.run of the detector's own "
                     "onnxruntime session on the prepared blob of the same frame. "
                     "_with_tracking adds the per-camera ByteTrack update (as the node runs it); "
                     "_bgr_copy decodes with decode_any to a full BGR copy instead (the path "
                     "before the zero-copy view, for comparison); "
                     "_jpeg starts from a JPEG CompressedImage (q90) instead, decoded at the "
                     "smallest libjpeg scale that still covers the network input "
                     "(detector.reduced_jpeg_decode, the default; _jpeg_full_decode: at full "
                     "resolution); _720p from rgb8 "
                     "frames downscaled to 1280x720 (INTER_AREA). floor_over_raw: only the "
                     "resize of the rgb8 frame with the model's own filter (bilinear for PicoDet) "
                     "plus session.run, over session.run: the least any pipeline with the "
                     "model's trained pre-processing costs here. Variants interleaved "
                     "round by round; each ratio is the median of per-round ratios"),
            "model": detector.model_name,
            "provider": detector.provider,
            "frames": [f"{im.shape[1]}x{im.shape[0]}" for im in inputs.images],
            "rgb8": rgb8,
            "jpeg": jpeg,
            "rgb8_720p": rgb8_720p,
        },
    }
