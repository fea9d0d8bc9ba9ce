"""summary.json of a replay and the table printed at its end."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from ..result_console import result_console
from ..core.first_last import FirstLast
from ..face.safe_text import shown
from ..fileio import write_summary_json

#: Latencies kept for the percentiles: every frame's up to this many frames, then a uniform random
#: sample of this many (reservoir sampling, seeded): a long bag's summary no longer holds one
#: number per frame in memory (650 000 for an hour of six 30 Hz cameras).
LATENCY_SAMPLES = 100_000


class SummaryBuilder:
    """Collects per-frame facts during a replay and produces the summary dict.

    The dict has exactly the keys of summary.json: ``frames``, ``cameras`` (per topic ``frames``
    and ``detections`` per label; the engine adds ``positions`` per exterior camera: detections,
    placed, calibration, reason, and with frames that got none ``frames`` and
    ``frames_without_positions``: reason -> frames), ``identity`` (the driver state timeline: the first cabin frame
    and every frame where state or driver changes), ``attention`` (None without a cabin camera or
    with attention off; else ``time_in_state_s`` per state, ``alerts``: each rise of the
    escalation level with its time, level and state, ``max_level``, ``timeline``: the first cabin
    frame and every change of state or level, and ``intrinsics``), ``latency_ms`` (p50/p95/p99 of
    the time from a frame's decode to its results), ``throughput_fps`` and ``skipped``.

    Bounded whatever the bag's length: the identity timeline, the attention timeline and the
    alerts keep their first and last ``keep_each_end`` items (a driver flickering between two
    states changes them every frame); what was left out is counted in ``identity_left_out``
    (beside ``identity``) and ``timeline_left_out`` / ``alerts_total`` and ``alerts_left_out``
    (in ``attention``), present only when something was left out. The latency percentiles are
    computed over at most :data:`LATENCY_SAMPLES` frames (a uniform sample beyond that).
    """

    def __init__(self, cameras: Sequence[str], keep_each_end: int | None = None,
                 latency_samples: int = LATENCY_SAMPLES) -> None:
        self._frames: dict[str, int] = {topic: 0 for topic in cameras}
        self._labels: dict[str, dict[str, int]] = {topic: {} for topic in cameras}
        self._latency_ms = np.zeros(max(1, int(latency_samples)), np.float64)
        self._latency_seen = 0  # latencies offered (the buffer holds min(seen, size))
        self._rng = np.random.default_rng(0)  # the reservoir's draws: the same bag, the same sample
        self._keep = {} if keep_each_end is None else {"head": keep_each_end, "tail": keep_each_end}
        self._identity: FirstLast[dict[str, Any]] = FirstLast(**self._keep)
        self._attention: dict[str, Any] | None = None
        self._timeline: FirstLast[dict[str, Any]] = FirstLast(**self._keep)
        self._alerts: FirstLast[dict[str, Any]] = FirstLast(**self._keep)

    def add_frame(self, topic: str, labels: Sequence[str] | np.ndarray, latency_ms: float) -> None:
        """Count one processed frame of ``topic`` with the labels of its detections."""
        self._frames[topic] = self._frames.get(topic, 0) + 1
        counts = self._labels.setdefault(topic, {})
        if len(labels):
            names, n = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
            for name, k in zip(names.tolist(), n.tolist(), strict=True):
                counts[name] = counts.get(name, 0) + k
        self._add_latency(float(latency_ms))

    def _add_latency(self, value: float) -> None:
        # Algorithm R: once the buffer is full, the n-th value replaces a random slot with
        # probability size/n, so the buffer stays a uniform sample of every latency offered.
        size, seen = self._latency_ms.size, self._latency_seen
        self._latency_seen += 1
        if seen < size:
            self._latency_ms[seen] = value
            return
        slot = int(self._rng.integers(0, seen + 1))
        if slot < size:
            self._latency_ms[slot] = value

    def add_identity(self, t: float, state: str, driver: str | None) -> None:
        """Record the driver state of a cabin frame; kept only when it differs from the last one."""
        last = self._identity.last
        if last is None or (last["state"], last["driver"]) != (state, driver):
            self._identity.append({"t": round(float(t), 9), "state": str(state),
                                   "driver": None if driver is None else str(driver)})

    def add_attention(self, t: float, state: str, level: int, alert: bool, intrinsics: str) -> None:
        """Record the attention of a cabin frame: the timeline keeps changes, alerts every rise."""
        if self._attention is None:
            self._attention = {"time_in_state_s": {}, "alerts": [], "max_level": 0,
                               "timeline": [], "intrinsics": intrinsics}
        att = self._attention
        t = round(float(t), 9)
        last = self._timeline.last
        if last is None or (last["state"], last["level"]) != (state, level):
            self._timeline.append({"t": t, "state": str(state), "level": int(level)})
        if alert:
            self._alerts.append({"t": t, "level": int(level), "state": str(state)})
        att["max_level"] = max(att["max_level"], int(level))
        att["intrinsics"] = intrinsics

    def set_attention_time(self, time_in_state_s: dict[str, float]) -> None:
        """Seconds of stamped time spent in each attention state (the monitor's own totals)."""
        if self._attention is not None:
            self._attention["time_in_state_s"] = {k: round(float(v), 3)
                                                  for k, v in sorted(time_in_state_s.items())}

    @property
    def frames(self) -> int:
        return sum(self._frames.values())

    def build(self, wall_seconds: float, skipped: list[dict[str, Any]]) -> dict[str, Any]:
        """The summary dict, given the processing wall time and the skip entries."""
        lat = self._latency_ms[:min(self._latency_seen, self._latency_ms.size)]
        pct = np.percentile(lat, [50, 95, 99]).tolist() if lat.size else [0.0, 0.0, 0.0]
        frames = self.frames
        attention = self._attention
        if attention is not None:
            attention = {**attention, "timeline": self._timeline.items(),
                         "alerts": self._alerts.items()}
            if self._timeline.left_out:
                attention["timeline_left_out"] = self._timeline.left_out
            if self._alerts.left_out:
                attention.update(alerts_total=self._alerts.total,
                                 alerts_left_out=self._alerts.left_out)
        summary: dict[str, Any] = {
            "frames": frames,
            "cameras": {
                topic: {"frames": self._frames[topic],
                        "detections": dict(sorted(self._labels.get(topic, {}).items()))}
                for topic in sorted(self._frames)
            },
            "identity": self._identity.items(),
            "attention": attention,
            "latency_ms": {"p50": round(pct[0], 3), "p95": round(pct[1], 3), "p99": round(pct[2], 3)},
            "throughput_fps": round(frames / wall_seconds, 3) if wall_seconds > 0 else 0.0,
            "skipped": list(skipped),
        }
        if self._identity.left_out:  # beside the list, which holds the first and the last
            summary["identity_left_out"] = self._identity.left_out
        return summary


def write_summary(path: Path, summary: dict[str, Any], private: bool = False) -> None:
    """Write a replay's ``summary.json`` (:func:`~sense_perception.fileio.write_summary_json`:
    strict JSON, atomic, never through a planted link), as fleet writes ``fleet_summary.json``;
    ``private``: mode 0600 whatever the umask (a cabin replay's: the driver's pseudonymous id
    timeline and attention alerts).

    Raises:
        OSError: it cannot be written (the temp file is removed).
    """
    write_summary_json(path, summary, private=private)


def render_table(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the per-camera table, timing and skipped items with rich.

    Topics, frame ids and reasons come from the bag: printed as text, never as rich markup (a
    frame_id '[/front]' ended the replay in a MarkupError traceback; '[red]' would restyle)."""
    console = console or result_console()
    table = Table(title="sense-perception replay", show_lines=False)
    table.add_column("camera")
    table.add_column("frames", justify="right")
    table.add_column("detections")
    for topic, cam in summary["cameras"].items():
        dets = ", ".join(f"{label} {n}" for label, n in sorted(cam["detections"].items(),
                                                                key=lambda kv: (-kv[1], kv[0])))
        table.add_row(shown(topic), str(cam["frames"]), shown(dets) or "-")
    console.print(table)
    for topic, cam in summary["cameras"].items():
        placed = cam.get("positions")
        if placed is None:
            continue
        unplaced = placed.get("frames_without_positions") or {}
        if placed.get("calibration") and (placed.get("placed") or not placed.get("reason")):
            console.print(f"3-D positions {shown(topic)}: {placed['placed']} of "
                          f"{placed['detections']} detections placed "
                          f"({shown(placed['calibration'])})", highlight=False, soft_wrap=True)
        else:
            console.print(f"3-D positions {shown(topic)}: none ({shown(placed.get('reason'))})",
                          highlight=False, soft_wrap=True)
            if len(unplaced) < 2:
                continue  # that one reason was all
        for reason, frames in unplaced.items():  # some frames had none: say which and why
            console.print(f"3-D positions {shown(topic)}: {frames} of {placed['frames']} frames "
                          f"without ({shown(reason)})", highlight=False, soft_wrap=True)
    lat = summary["latency_ms"]
    console.print(f"frames {summary['frames']}  throughput {summary['throughput_fps']:.1f} fps  "
                  f"latency p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms  p99 {lat['p99']:.1f} ms")
    for item in summary["identity"]:
        console.print(f"driver at t={item['t']:.3f}: {shown(item['state'])}"
                      + (f" ({shown(item['driver'])})" if item["driver"] else ""))
    if summary.get("identity_left_out"):
        console.print(f"driver: {summary['identity_left_out']} more change(s) between the first and "
                      "the last listed, not kept (counted as identity_left_out in summary.json)")
    attention = summary.get("attention")
    if attention:
        spent = ", ".join(f"{state} {seconds:.1f} s" for state, seconds
                          in attention["time_in_state_s"].items() if seconds > 0)
        alerts = attention.get("alerts_total", len(attention["alerts"]))
        console.print(f"attention: {spent or 'one frame only'}; highest level "
                      f"{attention['max_level']}, {alerts} alert(s)")
    if summary["skipped"]:
        skipped = Table(title="skipped", title_style="bold red")
        skipped.add_column("topic")
        skipped.add_column("count", justify="right")
        skipped.add_column("reason")
        for item in summary["skipped"]:
            skipped.add_row(shown(item["topic"]), str(item["count"]), shown(item["reason"]))
        console.print(skipped)
