"""The rosbags typestore replay works with: ROS 2 Jazzy types plus the project's own message
definitions (vision_msgs, foxglove_msgs, and Autoware's tier4_perception_msgs and
autoware_perception_msgs: :mod:`sense_perception.interfaces`)."""
from __future__ import annotations

import logging
from typing import Iterable

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.typesys import Stores, TypesysError, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ..interfaces import PACKAGES, definitions

LOG = logging.getLogger(__name__)


# Separator rosbag2 puts between concatenated IDL definitions of one connection.
_IDL_SEPARATOR = "=" * 80 + "\n"


def make_typestore() -> Typestore:
    """A fresh typestore: every ROS 2 Jazzy type, and the types of :mod:`sense_perception.interfaces`
    the project writes.

    A new store per bag, because types defined inside a bag are registered into it.
    """
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for package in PACKAGES:
        for name, text in definitions(package).items():
            types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def register_bag_types(store: Typestore, connections: Iterable[Connection]) -> dict[str, str]:
    """Add the message definitions a bag carries for types the store does not know yet.

    Known types keep their store definition: a bag recorded with another ROS distribution may
    describe e.g. std_msgs/Header slightly differently, and the store's layout is the one the
    output bag promises.

    Returns:
        ``{msgtype: reason}`` for definitions that could not be parsed.
    """
    failed: dict[str, str] = {}
    for conn in connections:
        # An empty definition says nothing (std_msgs/Empty-like types are in the store already).
        if (conn.msgtype in store.fielddefs or conn.msgdef.format == MessageDefinitionFormat.NONE
                or not conn.msgdef.data.strip()):
            continue
        try:
            if conn.msgdef.format == MessageDefinitionFormat.MSG:
                types = get_types_from_msg(conn.msgdef.data, conn.msgtype)
            else:
                types = {}
                data = conn.msgdef.data
                parts = data.split(_IDL_SEPARATOR)[1:] if data.startswith(_IDL_SEPARATOR) else [data]
                for part in parts:
                    types.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ")
                                                    else part))
            # Only add what is missing, so a bag cannot redefine a type the store already has.
            store.register({k: v for k, v in types.items() if k not in store.fielddefs})
        except (TypesysError, ValueError, KeyError, IndexError) as exc:
            failed[conn.msgtype] = f"its message definition in the bag cannot be parsed: {exc}"
            LOG.debug("type %s from bag not registered: %s", conn.msgtype, exc)
    return failed


def is_known(store: Typestore, msgtype: str) -> bool:
    """True when ``msgtype`` can be (de)serialised with ``store``."""
    return msgtype in store.fielddefs
