"""``--publish``: play a bag into a live ROS 2 graph while it is replayed, with /clock.

This is the only replay module that imports rclpy, and only when a publisher is built, so the rest
of replay runs without ROS. Messages go out as the raw CDR bytes stored in the bag (rclpy publishes
serialised bytes as they are), at their recorded bag times scaled by ``rate``. /clock
(rosgraph_msgs/Clock) carries the bag time, published before each message and at ``clock_hz``
while waiting, so nodes under test can run with ``use_sim_time``. Perception results are published
on their output topics as soon as they exist, like a live stack would.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from rosbags.interfaces import Qos, QosDurability, QosReliability

from ..errors import BagError, SensePerceptionError
from ..face.safe_text import printable
from .reader import BagMessage
from .skips import SkipLog

LOG = logging.getLogger(__name__)

#: The longest gap of bag time (seconds) waited out between two messages: a longer one restarts
#: the pacing at the message after it (a recording paused for minutes plays on at once; a gap up
#: to this is played as recorded, at ``--rate``, so a silent camera still shows). A message
#: received at 0 (a tool leaving its log time unset) before a recording's 1.5e18 ns, or one
#: years ahead, made the replay wait ~47 years, publishing /clock and nothing else.
MAX_GAP_S = 60.0
#: Jumps said one by one in the log; later ones are counted in :attr:`LivePublisher.jumps`.
MAX_JUMPS_LOGGED = 5
CLOCK_TOPIC = "/clock"
#: The deepest history a bag's offered QoS may give a publisher. A depth of 2**31 or more (a
#: crafted or corrupt bag) raised TypeError out of rclpy before the first frame; 10**9 with
#: transient-local durability would keep every frame played in memory.
MAX_DEPTH = 1000
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"


class LivePublisher:
    """Publishes bag messages and replay results into a ROS 2 graph in (scaled) recorded time.

    Args:
        rate: playback speed factor (2.0 = twice as fast).
        skipped: where topics that cannot be published are recorded.
        node_name: name of the publishing node.
        clock_hz: /clock publications per second of wall time while waiting for the next message.

    Raises:
        BagError: rclpy is not importable (source a ROS 2 environment, or drop --publish).
    """

    def __init__(self, rate: float = 1.0, skipped: SkipLog | None = None,
                 node_name: str = "sense_perception_replay", clock_hz: float = 100.0) -> None:
        try:
            import rclpy
            from rclpy.qos import QoSProfile
            from rosgraph_msgs.msg import Clock
        except ImportError as exc:
            raise BagError(f"--publish needs ROS 2 (rclpy) in this Python environment ({exc}); "
                           "source your ROS 2 setup.bash or install the ros-jazzy-rclpy wheels, "
                           "or replay without --publish") from exc
        if rate <= 0:
            raise BagError(f"--rate must be > 0, got {rate}")
        from ..ros.convert import msg_class

        self._msg_class = msg_class
        self._rclpy = rclpy
        self._QoSProfile = QoSProfile
        self._Clock = Clock
        self.rate = float(rate)
        self.skipped = skipped if skipped is not None else SkipLog()
        # A context of its own, without rclpy's signal handlers: on SIGINT / SIGTERM those shut
        # the default context down under the replay, whose next publication (the /clock, the
        # diagnostics written at the end) raised RCLError: a traceback, exit 1 and no
        # summary.json instead of the replay's own stop (exit 130 / 143, outputs closed).
        from rclpy.context import Context
        from rclpy.signals import SignalHandlerOptions

        from ..ros.dds_privacy import use_private_participant

        use_private_participant()  # discovery would announce the OS user name (R93)
        self._context = Context()
        rclpy.init(context=self._context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.node = rclpy.create_node(node_name, context=self._context)
            self._clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        except BaseException:
            self._end_context()
            raise
        self._clock_period = 1.0 / clock_hz
        self._pubs: dict[str, Any] = {}
        self._bad: dict[str, str] = {}  # topic -> why it is not published
        self._bag0: int | None = None
        self._wall0 = 0.0
        self._last_bag: int | None = None  # the bag time of the message played last
        self.published = 0
        self.jumps = 0  # gaps of bag time longer than MAX_GAP_S not waited for
        # The bag records /clock (a simulator's): that is the graph's clock, played as recorded,
        # and the replay publishes none of its own (see :meth:`_clock_topic`).
        self.bag_clock = False
        self._results: set[str] = set()  # the replay's own result topics (reserve)

    def _profile(self, qos: Sequence[Qos], topic: str = "") -> Any:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

        profile = self._QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10)
        if qos:
            offered = qos[0]
            depth = max(int(offered.depth), 1)
            if depth > MAX_DEPTH:
                LOG.warning("--publish: %s offers a history depth of %d in the bag; published "
                            "with %d (the most a bag's QoS may ask for)", printable(topic), depth,
                            MAX_DEPTH)
                depth = MAX_DEPTH
            profile.depth = depth
            if offered.reliability == QosReliability.BEST_EFFORT:
                profile.reliability = ReliabilityPolicy.BEST_EFFORT
            if offered.durability == QosDurability.TRANSIENT_LOCAL:
                profile.durability = DurabilityPolicy.TRANSIENT_LOCAL
        return profile

    def _publisher(self, topic: str, msgtype: str, qos: Sequence[Qos]) -> Any:
        """The publisher of ``topic``; None, with the reason kept for :meth:`not_published`, for
        a topic that cannot be published: its type's package is not installed, its type name is
        not a ROS 2 one (never imported: a bag's ``idlelib/idle/X`` ran IDLE), or its name is not
        a valid ROS 2 topic name (a bag may hold any name: ``/1cam``, ``/a b``; rclpy's
        InvalidTopicNameException ended the replay in a traceback before its first frame)."""
        if _is_clock(topic):
            return self._clock_topic(msgtype)
        pub = self._pubs.get(topic)
        if pub is None and topic not in self._bad:
            from rclpy.exceptions import NameValidationException

            try:
                pub = self.node.create_publisher(self._msg_class(msgtype), topic,
                                                 self._profile(qos, topic))
            except SensePerceptionError as exc:  # the type's package is not installed
                self._refuse(topic, f"{exc}")
                return None
            except NameValidationException as exc:
                reason = " ".join(str(exc).split())  # rclpy's text spans lines
                self._refuse(topic, f"not a valid ROS 2 topic name ({reason})")
                return None
            self._pubs[topic] = pub
        return pub

    def _clock_topic(self, msgtype: str) -> Any:
        """The publisher of a bag's own /clock: the replay's (one publisher, one clock), and from
        now on the replay publishes no /clock of its own. A simulator's recording holds /clock in
        simulation time, its frames stamped on it: played beside the replay's (the bag's receive
        time, the wall clock of the recording) a node under use_sim_time saw its time jump between
        the two a hundred times a second. A /clock of another type (one participant cannot have
        two types on a topic: RCLError ended the replay) is not published, said why."""
        if msgtype != CLOCK_TYPE:
            if CLOCK_TOPIC not in self._bad:
                self._refuse(CLOCK_TOPIC, f"/clock is the graph's clock ({CLOCK_TYPE}) and this "
                                          f"bag's /clock is {printable(msgtype)}")
            return None
        if not self.bag_clock:
            self.bag_clock = True
            LOG.warning("--publish: the bag records /clock; it is played as the graph's clock and "
                        "the replay publishes no /clock of its own")
        return self._clock_pub

    def _refuse(self, topic: str, reason: str) -> None:
        self._bad[topic] = reason
        LOG.warning("not publishing %s: %s", printable(topic), printable(reason))

    def not_published(self, topic: str, msgtype: str) -> str:
        """Why ``topic`` (of ``msgtype``) is not published, for the skip log."""
        return f"not published: {self._bad.get(topic) or f'message type {msgtype} is not installed'}"

    def _clock(self, bag_ns: int) -> None:
        if self.bag_clock:  # the bag's own /clock is the clock (_clock_topic)
            return
        msg = self._Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self._clock_pub.publish(msg)

    def reserve(self, topics: set[str]) -> None:
        """Topics the replay publishes its own results on: a bag's recorded messages there (an
        output bag replayed again, a recording of a live object_detector) are not played, a named
        skip each. They went out beside the new results, two Detection2DArray for one frame, and
        one of another type went through the bag's publisher, the new results sent as it."""
        self._results |= {topic.rstrip("/") for topic in topics}

    def advertise(self, topics: Sequence[tuple[str, str, Sequence[Qos]]]) -> None:
        """Create the publishers of (topic, msgtype, offered QoS) now, before playing.

        DDS discovery takes a moment; a publisher created just before its first message would
        lose that message to subscribers not matched yet.
        """
        for topic, msgtype, qos in topics:
            if topic.rstrip("/") not in self._results:
                self._publisher(topic, msgtype, qos)

    def play(self, message: BagMessage, qos: Sequence[Qos] = ()) -> None:
        """Wait until ``message``'s recorded time (scaled by rate), then publish its raw bytes.

        Where the bag time goes back (a bag of two loops, a recording on simulation time across a
        reset) the pacing starts again from that message, as ``ros2 bag play --loop`` does: paced
        from the first message, everything after the step back went out at once (``--rate``
        ignored) until the bag time passed where it had been.
        """
        if self._bag0 is None or (self._last_bag is not None and message.timestamp < self._last_bag):
            self._bag0, self._wall0 = message.timestamp, time.monotonic()
        elif self._last_bag is not None and \
                (message.timestamp - self._last_bag) * 1e-9 > MAX_GAP_S:
            self._jump(message)
        self._last_bag = message.timestamp
        target = self._wall0 + (message.timestamp - self._bag0) * 1e-9 / self.rate
        while (now := time.monotonic()) < target:
            self._clock(self._bag0 + int((now - self._wall0) * self.rate * 1e9))
            time.sleep(min(self._clock_period, target - now))
        self._clock(message.timestamp)
        if message.topic.rstrip("/") in self._results:
            self.skipped.add(message.topic, "not published: the replay publishes its own results on "
                                            "this topic (the bag's recorded ones would go out beside them)")
            return
        pub = self._publisher(message.topic, message.msgtype, qos)
        if pub is None:
            self.skipped.add(message.topic, self.not_published(message.topic, message.msgtype))
            return
        pub.publish(bytes(message.data))
        self.published += 1

    def _jump(self, message: BagMessage) -> None:
        """Restart the pacing at ``message``, whose bag time is more than :data:`MAX_GAP_S` after
        the message before it: played at once, /clock jumping with it."""
        gap = (message.timestamp - (self._last_bag or 0)) * 1e-9
        self._bag0, self._wall0 = message.timestamp, time.monotonic()
        self.jumps += 1
        if self.jumps <= MAX_JUMPS_LOGGED:
            LOG.warning("--publish: the bag time jumps %.6g s forward at a message of %s (bag time "
                        "%d ns); played at once instead of waiting, /clock jumps with it (gaps of bag "
                        "time over %g s are not waited for)%s", gap, printable(message.topic),
                        message.timestamp, MAX_GAP_S,
                        "; further jumps are not logged" if self.jumps == MAX_JUMPS_LOGGED else "")

    def publish(self, topic: str, msgtype: str, raw: bytes | memoryview, qos: Sequence[Qos] = ()) -> None:
        """Publish a replay result (serialised CDR) now."""
        pub = self._publisher(topic, msgtype, qos)
        if pub is None:
            self.skipped.add(topic, self.not_published(topic, msgtype))
            return
        pub.publish(bytes(raw))
        self.published += 1

    def close(self) -> None:
        """Destroy the node and the publisher's rclpy context, now (never left to the garbage
        collector, whose pass would tear the DDS participant down at a random later moment)."""
        try:
            self.node.destroy_node()
        finally:
            self._end_context()

    def _end_context(self) -> None:
        self._context.try_shutdown()
        self._context.destroy()


def _is_clock(topic: str) -> bool:
    """Whether a bag topic is the graph's /clock (``clock`` expands to it in the root namespace)."""
    return topic in (CLOCK_TOPIC, CLOCK_TOPIC[1:])
