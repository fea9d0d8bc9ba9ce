"""A bag's QoS profiles (``offered_qos_profiles``) parsed within bounds, or ignored with a note.

Every MCAP channel and every sqlite3 topic of a rosbag2 bag carries its publishers' QoS profiles
as a YAML string (before rosbag2 format 9, metadata.yaml too). rosbags parses it whole with
ruamel's pure-Python loader: YAML nested thousands of levels deep ran 6 s per channel and ended in
a RecursionError that made the whole bag unreadable to rosbags, and megabytes of it take minutes.
:func:`install` puts :func:`parse_qos_bounded` in place of rosbags' ``parse_qos``: the string is
read within :mod:`..bounded_yaml`'s bounds (size, nesting, entries counted through aliases). QoS
profiles are advisory to a replay, so one over a bound, or not QoS profiles at all, is not an
error: the topic is read without them and :func:`refused_notes` says so.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import yaml
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import metadata as _metadata

from ..bounded_yaml import YamlLimitError, parse_bounded, yaml_problem

#: Bounds of one topic's QoS string. A real one is about 400 bytes, 11 entries and 3 levels per
#: publisher: these allow a hundred publishers with room to spare.
MAX_QOS_BYTES = 64 << 10
MAX_QOS_ENTRIES = 10_000
MAX_QOS_DEPTH = 8
_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ROSBAGS_PARSE_QOS = _metadata.parse_qos


class RefusedQos(list):  # type: ignore[type-arg]  # an empty list[Qos] that says why it is empty
    """The (empty) QoS profiles of a topic whose QoS metadata was refused: ``problem`` says why.

    It compares equal to any list of profiles: rosbags pairs a storage file's channels with
    metadata.yaml's topics by topic, type *and* QoS, and an unknown QoS must not part a topic's
    messages from it (they would be dropped without a word).
    """

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, list)

    __hash__ = None  # type: ignore[assignment]  # as list's


def parse_qos_bounded(raw: Any) -> list[Qos]:
    """rosbags' ``parse_qos`` of ``raw`` (a YAML string, or the list metadata.yaml holds), the
    string read within :data:`MAX_QOS_BYTES`, :data:`MAX_QOS_ENTRIES` and :data:`MAX_QOS_DEPTH`.

    Returns:
        the profiles; a :class:`RefusedQos` (empty) when ``raw`` is over a bound or is not a list
        of QoS profiles. Never raises.
    """
    if not raw:
        return []
    doc = raw
    if isinstance(raw, (str, bytes)):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > MAX_QOS_BYTES:
            return RefusedQos(f"{size} bytes, more than the {MAX_QOS_BYTES} a QoS string may have")
        try:
            doc = parse_bounded(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"),
                                _SAFE_LOADER, MAX_QOS_ENTRIES, MAX_QOS_DEPTH, (dict, list))
        except YamlLimitError as exc:
            return RefusedQos(str(exc))
        except yaml.YAMLError as exc:
            return RefusedQos(f"not valid YAML ({yaml_problem(exc)})")
    if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
        return RefusedQos("not a list of QoS profiles")
    try:
        return list(_ROSBAGS_PARSE_QOS(doc))
    except Exception as exc:  # noqa: BLE001 - a value of the wrong type deep in a profile
        return RefusedQos(f"not QoS profiles ({type(exc).__name__}: {exc})")


def refused_notes(connections: Iterable[Connection]) -> list[str]:
    """One note per topic whose QoS metadata was refused, naming the topic and the problem."""
    notes: dict[str, str] = {}
    for conn in connections:
        qos = getattr(conn.ext, "offered_qos_profiles", None)
        if isinstance(qos, RefusedQos) and conn.topic not in notes:
            notes[conn.topic] = (f"topic {conn.topic}: its QoS metadata (offered_qos_profiles) is "
                                 f"ignored: {qos.problem}; the topic is read without QoS profiles")
    return list(notes.values())


def install() -> None:
    """Make rosbags parse QoS strings through :func:`parse_qos_bounded` (idempotent).

    rosbags has no hook for this: the name ``parse_qos`` that each of its readers imported is
    replaced.
    """
    from rosbags.rosbag2 import reader, storage_mcap, storage_sqlite3

    for module in (reader, storage_mcap, storage_sqlite3):
        if not hasattr(module, "parse_qos"):  # another rosbags: say so rather than bound nothing
            logging.getLogger(__name__).warning(
                "this rosbags has no %s.parse_qos: its QoS strings are parsed without bounds "
                "(tested with rosbags 0.11)", module.__name__)
            continue
        setattr(module, "parse_qos", parse_qos_bounded)  # noqa: B010 - rosbags' module attribute
