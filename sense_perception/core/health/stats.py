"""Health statistics of a perception pipeline, ROS-free: the nodes publish them as diagnostics and the
replay CLI can report the same numbers.

One :class:`HealthStats` per pipeline counts what happened to every input frame (received, processed,
dropped as stale, lost to a decode or inference error: the lost frames are kept by cause in its
:class:`~sense_perception.core.imaging.frame_errors.FrameErrorLedger`), keeps a fixed ring of recent latencies for
p50/p99, per-source arrival times for the input rate and the time since the last input, and QoS
incompatibility events. :meth:`HealthStats.report` turns a snapshot into a
``diagnostic_msgs/DiagnosticStatus`` dict (:mod:`sense_perception.core.output.messages`) with a level that
says what a person should look at.

All methods are thread-safe: transport callbacks and the inference worker update it concurrently.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...durations import duration
from ...errors import ImageDecodeError
from ..imaging.frame_errors import DECODE_PREFIX, INFERENCE, STALE, FrameErrorLedger, decode_kind
from ..output import messages

_RATE_SAMPLES = 64  # arrival times kept per source for the input rate
DEACTIVATED = "deactivated"  # ledger kind: waiting for inference when the node was deactivated
TRANSPORT = "transport"  # ledger kind: published, never delivered (DDS history full, packet lost)


@dataclass
class SourceStats:
    """Counters of one input (camera topic)."""

    received: int = 0
    last_time: float | None = None
    arrivals: deque = field(default_factory=lambda: deque(maxlen=_RATE_SAMPLES))

    def rate_hz(self, now: float, max_age_s: float) -> float:
        """Mean arrival rate over the recent samples; 0 when the last one is older than ``max_age_s``."""
        if len(self.arrivals) < 2 or self.last_time is None or now - self.last_time > max_age_s:
            return 0.0
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - 1) / span if span > 0 else 0.0


@dataclass
class HealthSnapshot:
    """Counters since start plus what happened since the previous report."""

    received: int
    processed: int
    dropped_stale: int
    dropped_error: int
    decode_errors: int
    inference_errors: int
    qos_events: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    input_rate_hz: dict[str, float]
    seconds_since_input: dict[str, float | None]
    new_decode_errors: int
    new_inference_errors: int
    new_qos_events: int
    last_error: str
    last_qos_event: str


class HealthStats:
    """Thread-safe counters and latency ring of one pipeline.

    Args:
        sources: names of the expected inputs (topics); others are added on first use.
        latency_window: how many recent latencies the percentiles are computed over.
        clock: monotonic time source in seconds (injectable for tests).
    """

    def __init__(self, sources: list[str] | tuple[str, ...] = (), latency_window: int = 512,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._latency = np.zeros(int(latency_window), np.float64)  # seconds, ring buffer
        self._latency_count = 0
        self._start = clock()
        self._sources: dict[str, SourceStats] = {s: SourceStats() for s in sources}
        # Lost frames, by cause: the one count of them (snapshot and report read it).
        self.ledger = FrameErrorLedger()
        self._counts = dict.fromkeys(("processed", "inference_errors", "qos_events"), 0)
        self._reported = dict.fromkeys(("decode_errors", "inference_errors", "qos_events"), 0)
        self.last_error = ""
        self.last_qos_event = ""

    def now(self) -> float:
        """The clock this instance measures with."""
        return self._clock()

    def _source(self, name: str) -> SourceStats:
        stats = self._sources.get(name)
        if stats is None:
            stats = self._sources[name] = SourceStats()
        return stats

    def frame_received(self, source: str, now: float | None = None) -> None:
        """An input frame arrived on ``source``."""
        t = self._clock() if now is None else now
        with self._lock:
            s = self._source(source)
            s.received += 1
            s.last_time = t
            s.arrivals.append(t)

    def received_by_source(self) -> dict[str, int]:
        """The frames received so far, per source."""
        with self._lock:
            return {k: s.received for k, s in self._sources.items()}

    def frames_dropped_stale(self, n: int = 1) -> None:
        """``n`` frames were overwritten by newer ones before inference reached them (latest-first)."""
        self.ledger.record_stale(n)

    def frame_dropped_inactive(self, source: str) -> None:
        """A frame of ``source`` was waiting for inference when the node was deactivated."""
        self.ledger.record(DEACTIVATED, "received, then dropped waiting for inference when the "
                           "node was deactivated", 1, source)

    def frames_lost_in_transport(self, source: str, n: int) -> None:
        """``n`` frames the camera published on ``source`` never reached the node: the
        subscription's keep-last history was full, or a best-effort link lost them."""
        self.ledger.record(TRANSPORT, f"{n} frame(s) published but never delivered: the input "
                           "queue (input_depth) was full, or the link lost them", n, source)

    def decode_error(self, source: str, error: ImageDecodeError | str) -> None:
        """A frame from ``source`` could not be decoded; it is dropped (counted under
        ``decode.<field>``, ``decode.msg`` for a plain text)."""
        if isinstance(error, ImageDecodeError):
            self.ledger.record_decode_error(error, source)
        else:
            self.ledger.record(decode_kind("msg"), error, 1, source)
        with self._lock:
            self.last_error = f"{source}: {error}"

    def inference_error(self, error: str, frames: int = 1) -> None:
        """Inference raised on a batch of ``frames`` frames; they are dropped."""
        self.ledger.record_inference_error(error, frames)
        with self._lock:
            self._counts["inference_errors"] += 1
            self.last_error = f"inference: {error}"

    def frame_processed(self, latency_s: float) -> None:
        """A frame's results were published ``latency_s`` after it arrived."""
        with self._lock:
            self._latency[self._latency_count % self._latency.size] = latency_s
            self._latency_count += 1
            self._counts["processed"] += 1

    def frames_processed(self, latencies_s: np.ndarray) -> None:
        """Vectorised :meth:`frame_processed` for a batch."""
        lat = np.asarray(latencies_s, np.float64).reshape(-1)
        size = self._latency.size
        with self._lock:
            idx = (self._latency_count + np.arange(lat.size)) % size
            self._latency[idx[-size:]] = lat[-size:]
            self._latency_count += lat.size
            self._counts["processed"] += lat.size

    def qos_event(self, description: str) -> None:
        """An incompatible-QoS event (publisher and subscription cannot talk)."""
        with self._lock:
            self._counts["qos_events"] += 1
            self.last_qos_event = description

    def snapshot(self, no_input_after_s: float = 3.0, mark_reported: bool = False) -> HealthSnapshot:
        """Current counters. ``mark_reported`` starts a new period for the ``new_*`` fields."""
        now = self._clock()
        lost = self.ledger.as_dict()["kinds"]
        with self._lock:
            n = min(self._latency_count, self._latency.size)
            if n:
                p50, p99 = np.percentile(self._latency[:n], (50.0, 99.0)) * 1000.0
                p50, p99 = float(p50), float(p99)
            else:
                p50 = p99 = None
            c = dict(self._counts)
            c["decode_errors"] = sum(v["count"] for k, v in lost.items() if k.startswith(DECODE_PREFIX))
            c["dropped_stale"] = lost.get(STALE, {}).get("count", 0)
            c["dropped_error"] = lost.get(INFERENCE, {}).get("count", 0)
            new = {k: c[k] - self._reported[k] for k in self._reported}
            if mark_reported:
                self._reported = {k: c[k] for k in self._reported}
            rates = {k: s.rate_hz(now, no_input_after_s) for k, s in self._sources.items()}
            since = {k: (None if s.last_time is None else now - s.last_time) for k, s in self._sources.items()}
            received = sum(s.received for s in self._sources.values())
        return HealthSnapshot(
            received=received, processed=c["processed"], dropped_stale=c["dropped_stale"],
            dropped_error=c["dropped_error"], decode_errors=c["decode_errors"],
            inference_errors=c["inference_errors"], qos_events=c["qos_events"],
            latency_p50_ms=p50, latency_p99_ms=p99, input_rate_hz=rates, seconds_since_input=since,
            new_decode_errors=new["decode_errors"], new_inference_errors=new["inference_errors"],
            new_qos_events=new["qos_events"], last_error=self.last_error,
            last_qos_event=self.last_qos_event)

    def silent_sources(self, no_input_after_s: float) -> list[str]:
        """Sources with no frame for ``no_input_after_s`` (counting from start when none ever came)."""
        now = self._clock()
        with self._lock:
            return [k for k, s in self._sources.items()
                    if now - (self._start if s.last_time is None else s.last_time) > no_input_after_s]

    def restart_silence_clock(self) -> None:
        """Count "no input" from now (e.g. when subscriptions are (re)created on activation)."""
        with self._lock:
            self._start = self._clock()
            for s in self._sources.values():
                s.last_time = None
                s.arrivals.clear()

    def report(self, name: str, hardware_id: str = "", extra: dict[str, Any] | None = None,
               no_input_after_s: float = 3.0, expect_input: bool = True,
               mark_reported: bool = True) -> dict[str, Any]:
        """A ``diagnostic_msgs/DiagnosticStatus`` dict of the current state.

        Level: ERROR when frames failed to decode or inference failed since the previous report; WARN
        when an input was silent for ``no_input_after_s`` (only if ``expect_input``) or QoS
        incompatibility events occurred since the previous report; OK otherwise. The message says why.

        Args:
            name: status name, e.g. ``"object_detector: /camera/front/image_raw"``.
            hardware_id: what the status is about (e.g. the execution provider).
            extra: further key/values first in the list (state, provider, fallback reasons...).
            no_input_after_s: silence that counts as "no input".
            expect_input: False while the node is not active (no subscriptions, silence is expected).
            mark_reported: start a new period for the "since the previous report" counts.
        """
        snap = self.snapshot(no_input_after_s, mark_reported=mark_reported)
        silent = self.silent_sources(no_input_after_s) if expect_input else []
        problems_error, problems_warn = [], []
        if snap.new_decode_errors:
            problems_error.append(f"{snap.new_decode_errors} frame(s) failed to decode "
                                  f"(last: {snap.last_error})")
        if snap.new_inference_errors:
            problems_error.append(f"inference failed {snap.new_inference_errors} time(s) "
                                  f"(last: {snap.last_error})")
        if silent:
            problems_warn.append(f"no input for {duration(no_input_after_s)} on {', '.join(silent)}: check the "
                                 "topic names/remapping, that the camera publishes, and QoS compatibility")
        if snap.new_qos_events:
            problems_warn.append(f"{snap.new_qos_events} incompatible QoS event(s) (last: {snap.last_qos_event})")
        level = messages.ERROR if problems_error else messages.WARN if problems_warn else messages.OK
        message = "; ".join(problems_error + problems_warn) or "ok"

        def ms(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1f}"

        values: dict[str, Any] = dict(extra or {})
        values.update({
            "frames_received": snap.received,
            "frames_processed": snap.processed,
            "frames_dropped_stale": snap.dropped_stale,
            "frames_dropped_error": snap.dropped_error,
            "decode_errors": snap.decode_errors,
            "inference_errors": snap.inference_errors,
            "latency_p50_ms": ms(snap.latency_p50_ms),
            "latency_p99_ms": ms(snap.latency_p99_ms),
            "qos_incompatible_events": snap.qos_events,
        })
        for src, rate in snap.input_rate_hz.items():
            values[f"input_rate_hz[{src}]"] = f"{rate:.2f}"
            since = snap.seconds_since_input[src]
            values[f"seconds_since_input[{src}]"] = "never" if since is None else f"{since:.1f}"
        if snap.last_error:
            values["last_error"] = snap.last_error
        values.update(self.ledger.diagnostic_values())
        return messages.diagnostic_status(name, level, message, hardware_id, values)
