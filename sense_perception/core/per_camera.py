"""Per-camera settings written ``"TOPIC: VALUE"``: one parser and one way of naming a camera.

A list parameter whose entries each name a camera topic and give it a value
(``detector.ignore_regions.polygons``: ``"/cam/image_raw: 0,345 640,345 640,480"``;
``camera_health.expected_rates_hz``: ``"/cam/image_raw: 30"``). A topic names its camera in every
image_transport (``/cam/image_raw`` and ``/cam/image_raw/compressed`` are one camera,
:func:`~.output.topics.image_base_topic`), so an entry written for the node's raw topic applies
to the replay of a bag that recorded the camera compressed. A node refuses an entry whose topic
is none of its cameras (:meth:`PerCamera.check_topics`: it would never apply); the replay notes
it (:meth:`PerCamera.unmatched`).
"""
from __future__ import annotations

from typing import Callable, Generic, Iterable, TypeVar

from ..errors import ConfigError
from .output.topics import image_base_topic

T = TypeVar("T")


class PerCamera(Generic[T]):
    """The values of a ``"TOPIC: VALUE"`` list parameter, by camera.

    Args:
        name: the parameter (``detector.ignore_regions.polygons``), for messages.
        entries: its entries.
        form: the form of an entry, for messages (``"TOPIC: x,y x,y x,y ..."``).
        parse: reads the text after ``TOPIC:`` of one entry; given that text and where the entry
            is (``name[i] ('entry')``), it returns the value or raises ConfigError naming it.

    Raises:
        ConfigError: an entry without a topic or a value, naming it and ``form``; whatever
            ``parse`` raises.
    """

    def __init__(self, name: str, entries: Iterable[str], form: str,
                 parse: Callable[[str, str], T]) -> None:
        self.name = name
        self._values: dict[str, list[T]] = {}
        self._named: dict[str, str] = {}  # camera -> the topic the entries name it by
        for index, entry in enumerate(entries):
            where = f"{name}[{index}] ({entry!r})"
            topic, sep, spec = str(entry).partition(":")
            topic, spec = topic.strip(), spec.strip()
            if not sep or not topic or not spec:
                raise ConfigError(f"{where}: expected {form}")
            camera = image_base_topic(topic)
            self._values.setdefault(camera, []).append(parse(spec, where))
            self._named.setdefault(camera, topic)

    def get(self, topic: str) -> list[T]:
        """The values given for the camera of ``topic`` (in any transport), in their order."""
        return self._values.get(image_base_topic(topic), [])

    def __contains__(self, topic: object) -> bool:
        return isinstance(topic, str) and image_base_topic(topic) in self._values

    def __bool__(self) -> bool:
        return bool(self._values)

    @property
    def topics(self) -> list[str]:
        """The camera topics that have an entry (as the entries name them)."""
        return list(self._named.values())

    def unmatched(self, topics: Iterable[str]) -> list[str]:
        """The topics the entries name that are no camera of ``topics`` (in any transport:
        ``/cam/image_raw`` and ``/cam/image_raw/compressed`` are one camera)."""
        cameras = {image_base_topic(t) for t in topics}
        return [self._named[c] for c in self._values if c not in cameras]

    def check_topics(self, topics: list[str], source: str = "config",
                     listed_as: str = "camera_topics") -> None:
        """Refuse entries for topics that are not among the camera ``topics``: an entry that
        would never apply.

        Raises:
            ConfigError: naming the parameter, the topic and the camera topics.
        """
        unknown = self.unmatched(topics)
        if unknown:
            raise ConfigError(f"{self.name} in {source} names {', '.join(unknown)}, which is not "
                              f"a camera topic ({', '.join(topics)}); fix: use the camera topic "
                              f"as {listed_as} lists it")


__all__ = ["PerCamera"]
