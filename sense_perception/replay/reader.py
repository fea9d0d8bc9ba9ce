"""Open rosbag2 recordings (MCAP or sqlite3) and stream their messages, tolerating damage.

A healthy bag is read with rosbags. When that fails the reader falls back step by step, replaying
whatever is readable and recording in a :class:`~.skips.SkipLog` what was lost and why:

- missing or unreadable ``metadata.yaml``: the storage files (``*.mcap``, ``*.db3``) are read
  directly, which rosbags supports (MCAP and rosbag2 >= Iron sqlite3 carry the type definitions);
- MCAP without a valid footer or index (a recorder that crashed, a copy cut short): the file is
  streamed record by record with the ``mcap`` library up to the first damaged record;
- an error while iterating a storage file: reading that file stops there (the other files of a
  split bag go on) and the loss is recorded;
- fewer messages than the index announces without any error (a zeroed chunk, which rosbags
  passes over): the difference is recorded as lost;
- a bag split into several files: the files are merged in receive-time order;
- message types without a definition in the bag or the typestore: reported, never guessed.
"""
from __future__ import annotations

import copy
import functools
import logging
import re
import stat
import struct
from dataclasses import dataclass, field
from io import BytesIO
from operator import attrgetter
from pathlib import Path
from typing import Any, Generator, Iterable, Iterator, NamedTuple, Protocol

import yaml
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel as McapChannel
from mcap.records import Chunk, DataEnd, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
    Qos,
)
from rosbags.rosbag2 import Reader

from ..core.message_types import IMAGE_TYPES
from ..bounded_yaml import MAX_YAML_BYTES, YamlLimitError, parse_bounded, yaml_problem
from ..errors import BagError
from ..fileio import NotRegularFileError, describe_mode, read_regular_file
from . import qos as _qos
from .bounded import DecompressionLimitError, bounded_decompress, install, remove_dead_unpacks
from .merge import Source, merge_by_time
from .skips import ALL_TOPICS, SkipLog
from .typestore import make_typestore, register_bag_types

LOG = logging.getLogger(__name__)
install()  # rosbags decompresses chunks and messages through the bounded decompressor
_qos.install()  # and parses QoS strings within bounds

STORAGE_SUFFIXES = (".mcap", ".db3")
#: Bounds of a bag's metadata.yaml (the config loader's: :mod:`..bounded_yaml`), checked before
#: rosbags parses it. A real one has about 20 mapping and list entries per topic and 6 levels.
MAX_METADATA_ENTRIES = 200_000
MAX_METADATA_DEPTH = 32
_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 1 MiB in < 1 s
_SCHEMA_FORMATS = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL,
                   "omgidl": MessageDefinitionFormat.IDL}


class BagMessage(NamedTuple):
    """One serialized message as stored: topic, type, bag (receive) time in ns and CDR bytes."""

    topic: str
    msgtype: str
    timestamp: int
    data: bytes | memoryview


@dataclass
class TopicMeta:
    """What the bag says about one topic."""

    name: str
    msgtype: str
    count: int  # messages the storage index announces (0 when unknown, e.g. a salvaged file)
    qos: list[Qos] = field(default_factory=list)
    known: bool = True  # the typestore can deserialise its messages

    @property
    def is_image(self) -> bool:
        return self.msgtype in IMAGE_TYPES


class _Part(Protocol):
    """One storage file (or a rosbags directory reader) of a bag."""

    name: str
    connections: list[Connection]

    def messages(self, topics: set[str]) -> Iterator[tuple[Connection, int, bytes | memoryview]]: ...

    def close(self) -> None: ...


class _RosbagsPart:
    """A bag directory or storage file that rosbags opens."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        remove_dead_unpacks()  # what a killed replay left: before this one unpacks beside it
        self.reader = Reader(path)
        self.damage: str | None = None  # what stopped one file of a split bag (the others go on)
        self.reader.open()
        self.connections = list(self.reader.connections)
        # A directory's storage files have connections of their own (their QoS from the file)
        self.storage_connections = [c for storage in getattr(self.reader.storage, "storages", [])
                                    for c in storage.connections]

    def messages(self, topics: set[str]) -> Iterator[tuple[Connection, int, bytes | memoryview]]:
        conns = [c for c in self.connections if c.topic in topics]
        if not conns:
            return
        directory = self.reader.storage
        storages = getattr(directory, "storages", [])
        if len(storages) < 2:
            yield from self.reader.messages(conns)
            return
        # rosbags reads a split bag (``--max-bag-size``, or files merged from several recordings)
        # file after file, in metadata.yaml's order; the trackers and camera health need receive-
        # time order (a later file listed first restarted every track). Each file is in time
        # order already: merged, each started when due (hundreds of files are not all held).
        self.damage = None
        starts = {_plain_name(str(f["path"])): f["starting_time"]["nanoseconds_since_epoch"]
                  for f in getattr(directory, "files", None) or []
                  if isinstance(f, dict) and "path" in f and "starting_time" in f}
        sources: list[Source[tuple[Connection, int, bytes | memoryview]]] = [Source(
            starts.get(_plain_name(str(getattr(storage, "path", ""))), _storage_start(storage)),
            functools.partial(self._storage_messages, directory, storage, conns))
            for storage in storages]
        yield from merge_by_time(sources, _receive_time)

    @property
    def start_time(self) -> int | None:
        """The first message's bag time from the storage index; None when unknown."""
        return self.reader.start_time if self.reader.message_count else None

    def _storage_messages(self, directory: Any, storage: Any, conns: list[Connection]
                          ) -> Iterator[tuple[Connection, int, bytes | memoryview]]:
        """The messages of one storage file of a rosbags directory reader, read as rosbags reads
        them (its connection mapping and message decompression), by a copy that holds that file
        only. Damage ends this file alone and is kept in :attr:`damage`."""
        one = copy.copy(directory)
        one.storages = [storage]
        try:
            yield from one.messages(conns)
        except Exception as exc:  # a bad page or chunk: the other files go on
            name = getattr(getattr(storage, "path", None), "name", "a storage file")
            damage = f"{name}: reading stopped by {type(exc).__name__}: {exc}"
            self.damage = damage if self.damage is None else f"{self.damage}; {damage}"

    def close(self) -> None:
        self.reader.close()


def _receive_time(item: tuple[Connection, int, bytes | memoryview]) -> int:
    return item[1]


def _plain_name(path: str) -> str:
    """A storage file's name without folders or a file-compression suffix (``x_0.mcap.zstd`` is
    unpacked to ``x_0.mcap``)."""
    name = Path(path).name
    return name[:-len(".zstd")] if name.endswith(".zstd") else name


def _storage_start(storage: Any) -> int | None:
    """The first message time an MCAP storage's summary gives; None when unknown."""
    statistics = getattr(storage, "statistics", None)
    start = getattr(statistics, "start_time", None)
    return start if isinstance(start, int) else None


class _McapSalvagePart:
    """An MCAP file rosbags rejects, streamed record by record up to the first damaged record.

    Whole chunks are read with the ``mcap`` library; in the damaged chunk of an uncompressed file
    (rosbags' and rosbag2's default) the complete records before the cut are recovered as well.
    """

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.path = path
        self.damage: str | None = None  # what stopped the stream; None when it reached DataEnd
        self.bomb: str | None = None  # a chunk over the decompression limit, when one stopped it
        self._schemas: dict[int, Schema] = {}
        counts: dict[int, int] = {}
        by_id: dict[int, Connection] = {}
        # A first pass learns the channels (rosbags' writer puts them inside chunks) and counts,
        # so topics can be selected before streaming.
        for record in self._records():
            if isinstance(record, Message):
                counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
            elif isinstance(record, McapChannel) and record.id not in by_id:
                by_id[record.id] = self._connection(record)
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in by_id.values()]
        self._by_id = {c.id: c for c in self.connections}

    def _records(self) -> Iterator[Any]:
        self.damage = None
        with self.path.open("rb") as stream:
            good = 0  # end of the last record read in full
            try:
                for record in StreamReader(stream, emit_chunks=True, record_size_limit=1 << 31).records:
                    if isinstance(record, Chunk):
                        yield from self._inner(bounded_decompress(
                            record.data, record.compression, record.uncompressed_size)
                            if record.compression else record.data)
                    elif isinstance(record, DataEnd):
                        return
                    else:
                        yield from self._inner_record(record)
                    good = stream.tell()
            except Exception as exc:  # any parse failure marks where the readable part ends
                self.damage = (f"{self.path.name} is damaged after byte {good} "
                               f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})")
                if isinstance(exc, DecompressionLimitError):
                    self.bomb = f"the chunk at byte {good}: {exc}"
                stream.seek(good)
                yield from self._partial_chunk(stream.read())
                return
        self.damage = f"{self.path.name} has no MCAP data-end record"

    def _inner_record(self, record: Any) -> Iterator[Any]:
        if isinstance(record, Schema):
            self._schemas[record.id] = record
        yield record

    def _inner(self, data: bytes) -> Iterator[Any]:
        """Records of a chunk's (possibly cut) uncompressed data, up to the first incomplete one."""
        pos, end = 0, len(data)
        while pos + 9 <= end:
            opcode = data[pos]
            (length,) = struct.unpack_from("<Q", data, pos + 1)
            if pos + 9 + length > end:
                return
            body = ReadDataStream(BytesIO(data[pos + 9:pos + 9 + length]))
            if opcode == Opcode.MESSAGE:
                yield Message.read(body, length)
            elif opcode == Opcode.SCHEMA:
                yield from self._inner_record(Schema.read(body))
            elif opcode == Opcode.CHANNEL:
                yield McapChannel.read(body)
            pos += 9 + length

    def _partial_chunk(self, tail: bytes) -> Iterator[Any]:
        # Chunk record: opcode, length, start, end, uncompressed size, crc, compression, data size
        if len(tail) < 41 or tail[0] != Opcode.CHUNK:
            return
        (name_len,) = struct.unpack_from("<I", tail, 37)
        compression = tail[41:41 + name_len]
        if compression:  # a cut compressed stream cannot be decoded
            return
        yield from self._inner(tail[41 + name_len + 8:])

    def _connection(self, channel: McapChannel) -> Connection:
        schema = self._schemas.get(channel.schema_id)
        msgdef = MessageDefinition(MessageDefinitionFormat.NONE, "")
        if schema is not None and schema.encoding in _SCHEMA_FORMATS:
            msgdef = MessageDefinition(_SCHEMA_FORMATS[schema.encoding], schema.data.decode())
        # QoS metadata is advisory: a bad one is ignored (with a note), never costs the topic
        qos = _qos.parse_qos_bounded(channel.metadata.get("offered_qos_profiles"))
        return Connection(channel.id, channel.topic, schema.name if schema else "", msgdef, "", 0,
                          ConnectionExtRosbag2(channel.message_encoding, qos), self)

    def messages(self, topics: set[str]) -> Iterator[tuple[Connection, int, bytes | memoryview]]:
        wanted = {c.id for c in self.connections if c.topic in topics}
        for record in self._records():
            if isinstance(record, Message) and record.channel_id in wanted:
                yield self._by_id[record.channel_id], record.log_time, record.data

    def close(self) -> None:
        pass


def _natural_key(path: Path) -> list[Any]:
    # rosbag2 splits recordings into name_0.mcap, name_1.mcap, ..., name_10.mcap
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _read_metadata(meta: Path) -> Any:
    """The document of a bag's ``metadata.yaml``, read within :mod:`..bounded_yaml`'s bounds.

    Raises:
        BagError: it is not a regular file, is over 1 MiB, is not UTF-8 YAML, or nests or (through
            aliases) expands beyond :data:`MAX_METADATA_DEPTH` / :data:`MAX_METADATA_ENTRIES`.
    """
    try:
        text = read_regular_file(meta, MAX_YAML_BYTES).decode("utf-8-sig")
        return parse_bounded(text, _SAFE_LOADER, MAX_METADATA_ENTRIES, MAX_METADATA_DEPTH,
                             (dict, list))
    except (NotRegularFileError, YamlLimitError) as exc:
        problem = str(exc)
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start})"
    except yaml.YAMLError as exc:
        problem = f"not valid YAML ({yaml_problem(exc)})"
    raise BagError(f"{meta} refused: {problem}")


def _expected_topics(doc: Any) -> dict[str, tuple[str, int]] | None:
    """``{topic: (type, message count)}`` from a metadata.yaml rosbags could not use, if readable."""
    try:
        info = doc["rosbag2_bagfile_information"]
        return {t["topic_metadata"]["name"]: (str(t["topic_metadata"]["type"]), int(t["message_count"]))
                for t in info["topics_with_message_count"]}
    except Exception:  # a broken metadata.yaml may be why we are here; counts are a bonus
        return None


class Bag:
    """A readable view of a rosbag2 recording, whatever state it is in.

    Attributes:
        path: what was opened.
        storage: "mcap" or "sqlite3".
        typestore: Jazzy + vision_msgs + the types defined in the bag.
        topics: ``{name: TopicMeta}`` of every topic found.
        skipped: what could not be read so far.
        notes: human-readable remarks on how the bag was opened (fallbacks taken).
    """

    def __init__(self, path: Path, parts: list[_Part], storage: str, skipped: SkipLog,
                 notes: list[str], expected: dict[str, tuple[str, int]] | None) -> None:
        self.path = path
        self.storage = storage
        self.skipped = skipped
        self.notes = notes
        self._parts = parts
        self._expected = {t: n for t, (_, n) in expected.items()} if expected else None
        self.typestore = make_typestore()
        connections = [c for part in parts for c in part.connections]
        notes.extend(_qos.refused_notes([*connections, *(
            c for part in parts for c in getattr(part, "storage_connections", []))]))
        for msgtype, reason in register_bag_types(self.typestore, connections).items():
            notes.append(f"type {msgtype}: {reason}")
        self.topics: dict[str, TopicMeta] = {}
        for conn in connections:
            meta = self.topics.get(conn.topic)
            if meta is None:
                qos = list(getattr(conn.ext, "offered_qos_profiles", []) or [])
                self.topics[conn.topic] = TopicMeta(conn.topic, conn.msgtype, conn.msgcount, qos,
                                                    conn.msgtype in self.typestore.fielddefs)
            elif meta.msgtype == conn.msgtype:
                meta.count += conn.msgcount
            else:
                notes.append(f"topic {conn.topic} has several types ({meta.msgtype}, {conn.msgtype}); "
                             f"only {meta.msgtype} is read")
        # Topics metadata.yaml announces whose channel records were lost with the damaged data:
        # listing them lets their loss be counted and --topics name them.
        for topic, (msgtype, count) in (expected or {}).items():
            if topic not in self.topics:
                self.topics[topic] = TopicMeta(topic, msgtype, count, [], msgtype in self.typestore.fielddefs)

    # -- topic selection -------------------------------------------------------------------------

    def image_topics(self) -> list[str]:
        """Topics of type sensor_msgs/msg/Image or CompressedImage, sorted."""
        return sorted(t for t, m in self.topics.items() if m.is_image)

    def unknown_topics(self) -> list[str]:
        """Topics whose type has no definition in the bag or the typestore."""
        return sorted(t for t, m in self.topics.items() if not m.known)

    # -- streaming -------------------------------------------------------------------------------

    def messages(self, topics: Iterable[str]) -> Generator[BagMessage, None, None]:
        """Yield the messages of ``topics`` in receive-time order (each storage file is in time
        order; the files are merged as rosbag2 plays them).

        Damage met while reading ends that storage file (the others go on); what was lost is
        added to :attr:`skipped` once the stream ends.
        """
        wanted = set(topics)
        reads: list[dict[str, int]] = [{} for _ in self._parts]
        damages: list[str | None] = [None] * len(self._parts)
        # Files read without metadata.yaml are separate parts: merged by receive time too.
        sources: list[Source[BagMessage]] = [Source(
            part.start_time if isinstance(part, _RosbagsPart) else None,
            functools.partial(self._part_messages, part, wanted, reads[k], damages, k))
            for k, part in enumerate(self._parts)]
        yield from merge_by_time(sources, attrgetter("timestamp"))
        read_total: dict[str, int] = {}
        deferred: list[str] = []
        for part, read, damage in zip(self._parts, reads, damages, strict=True):
            for topic, n in read.items():
                read_total[topic] = read_total.get(topic, 0) + n
            if isinstance(part, _McapSalvagePart):
                damage = damage or part.damage
                if damage and self._expected is not None:
                    deferred.append(damage)  # metadata.yaml counts are bag totals: settle at the end
                elif damage:
                    # Without index or metadata.yaml the number of lost messages is unknowable;
                    # count the damaged file once so the loss still shows (and sets the exit code).
                    self.skipped.add(ALL_TOPICS, f"unreadable, number of lost messages unknown: {damage}")
            elif damage:
                for conn in part.connections:
                    if conn.topic in wanted and (lost := conn.msgcount - read.get(conn.topic, 0)) > 0:
                        self.skipped.add(conn.topic, f"unreadable: {damage}", lost)
            else:
                self._count_unfound(part, wanted, read)
        if deferred and self._expected is not None:
            for topic in sorted(wanted & self._expected.keys()):
                self.skipped.add(topic, f"unreadable: {'; '.join(deferred)}",
                                 self._expected[topic] - read_total.get(topic, 0))

    def _count_unfound(self, part: _Part, wanted: set[str], read: dict[str, int]) -> None:
        """Count the messages ``part``'s index announces that its stream did not give though
        nothing raised: rosbags passes over a chunk that is not one (zeroed, overwritten) in
        silence, and its frames were lost without a word."""
        announced: dict[str, int] = {}
        for conn in part.connections:  # a topic's other types are skipped and counted already
            if conn.topic in wanted and conn.msgtype == self.topics[conn.topic].msgtype:
                announced[conn.topic] = announced.get(conn.topic, 0) + conn.msgcount
        for topic, count in sorted(announced.items()):
            if (lost := count - read.get(topic, 0)) > 0:
                self.skipped.add(topic, f"unreadable: {count} messages announced by the index of "
                                        f"{part.name} (metadata.yaml or the file's summary), "
                                        f"{count - lost} found (damaged storage)", lost)

    def _part_messages(self, part: _Part, wanted: set[str], read: dict[str, int],
                       damages: list[str | None], index: int) -> Iterator[BagMessage]:
        """The messages of one part; ``read`` counts them per topic, ``damages[index]`` gets
        what stopped it."""
        try:
            for conn, timestamp, data in part.messages(wanted):
                meta = self.topics[conn.topic]
                if conn.msgtype != meta.msgtype:
                    self.skipped.add(conn.topic, f"message type {conn.msgtype} differs from the "
                                                 f"topic's first type {meta.msgtype}")
                    continue
                read[conn.topic] = read.get(conn.topic, 0) + 1
                yield BagMessage(conn.topic, conn.msgtype, timestamp, data)
        except Exception as exc:  # storage errors after the open (bad page, bad chunk)
            damages[index] = f"{part.name}: reading stopped by {type(exc).__name__}: {exc}"
        if isinstance(part, _RosbagsPart) and part.damage:  # one file of a split bag
            damages[index] = part.damage
        if damages[index]:
            LOG.warning("%s", damages[index])

    def deserialize(self, message: BagMessage) -> Any:
        """Deserialise a message with the bag's typestore (raises on corrupt bytes)."""
        return self.typestore.deserialize_cdr(message.data, message.msgtype)

    def deserialize_or_skip(self, message: BagMessage, skipped: SkipLog) -> Any | None:
        """Deserialise ``message``; None, and an entry in ``skipped``, when its bytes are corrupt."""
        try:
            return self.deserialize(message)
        except Exception:  # noqa: BLE001 - rosbags raises several types on corrupt CDR
            skipped.add(message.topic, f"corrupt message: bytes are not a valid {message.msgtype}")
            return None

    @property
    def time_range(self) -> tuple[int, int] | None:
        """(first, last) bag time in ns when the storage index gives it, else None."""
        starts, ends = [], []
        for part in self._parts:
            if isinstance(part, _RosbagsPart) and part.reader.message_count:
                starts.append(part.reader.start_time)
                ends.append(part.reader.end_time)
        return (min(starts), max(ends)) if starts else None

    def close(self) -> None:
        """Close every storage file."""
        for part in self._parts:
            part.close()

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_file(path: Path, notes: list[str]) -> _Part:
    try:
        return _RosbagsPart(path)
    except DecompressionLimitError as exc:  # read at open (no index): the whole file is suspect
        raise BagError(f"bag file {path}: {exc}") from None
    except Exception as exc:  # rosbags raises ReaderError, but also KeyError/struct.error on junk
        if path.suffix != ".mcap":
            raise BagError(f"storage file {path} cannot be read: {exc}; if it is a sqlite3 bag from "
                           "before ROS 2 Iron, restore its metadata.yaml") from exc
        notes.append(f"{path.name}: rosbags cannot open it ({exc}); streaming it record by record")
        part = _McapSalvagePart(path)
        if part.bomb:
            raise BagError(f"bag file {path}: {part.bomb}") from None
        return part


def open_bag(path: str | Path) -> Bag:
    """Open a rosbag2 directory or a single ``.mcap`` / ``.db3`` file.

    Raises:
        BagError: nothing readable at ``path`` (names the path and what to check).
    """
    root = Path(path)
    if not root.exists():
        raise BagError(f"bag {root} does not exist; pass a rosbag2 directory or a .mcap/.db3 file")
    if root.is_dir():
        for entry in root.iterdir():
            if entry.suffix in STORAGE_SUFFIXES or entry.name == "metadata.yaml":
                _check_regular(entry)
    else:
        _check_regular(root)
    notes: list[str] = []
    skipped = SkipLog()
    expected: dict[str, tuple[str, int]] | None = None
    refused: str | None = None  # why metadata.yaml was not used, for an error the fallback meets
    if root.is_dir():
        files = sorted((p for p in root.iterdir() if p.suffix in STORAGE_SUFFIXES), key=_natural_key)
        meta = root / "metadata.yaml"
        if meta.exists():
            try:  # bounded first: rosbags parses metadata.yaml whole, without a size or alias limit
                doc = _read_metadata(meta)
            except BagError as exc:
                refused = str(exc)
                notes.append(f"{exc}; reading the storage files directly without it")
            else:
                try:
                    part = _RosbagsPart(root)
                    return Bag(root, [part], _storage_of(part, files), skipped, notes, None)
                except DecompressionLimitError as exc:  # a file-compressed bag's bomb
                    raise BagError(f"bag {root}: {exc}") from None
                except Exception as exc:
                    notes.append(f"metadata.yaml present but the bag does not open with it "
                                 f"({exc}); reading the storage files directly")
                    expected = _expected_topics(doc)
        else:
            notes.append(f"{meta} is missing (recording not closed cleanly?); "
                         "reading the storage files directly")
        if not files:
            raise BagError(f"bag directory {root} holds no .mcap or .db3 storage file")
    elif root.suffix in STORAGE_SUFFIXES:
        files = [root]
    else:
        raise BagError(f"{root} is neither a rosbag2 directory nor a .mcap/.db3 storage file")
    suffixes = {p.suffix for p in files}
    if len(suffixes) > 1:
        raise BagError(f"bag directory {root} mixes .mcap and .db3 files; replay one storage at a time")
    try:
        parts = [_open_file(p, notes) for p in files]
    except BagError as exc:
        if refused is None:
            raise
        raise BagError(f"{exc} ({refused})") from None
    for note in notes:
        LOG.warning("%s", note)
    return Bag(root, parts, "mcap" if ".mcap" in suffixes else "sqlite3", skipped, notes, expected)


def _check_regular(path: Path) -> None:
    """Refuse a FIFO, socket or device where a bag file belongs: opening one blocks forever.

    ``stat`` does not open the file (a FIFO without a writer would block ``open``); a symbolic
    link to a regular file is fine.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise BagError(f"bag file {path} cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):  # a directory read "is not a regular file, not a regular file"
        raise BagError(f"bag file {path} is {describe_mode(mode)}, not a regular file; a "
                       "recording must be a file on disk (copy it to one first)")


def _storage_of(part: _RosbagsPart, files: list[Path]) -> str:
    storage = getattr(part.reader.storage, "storages", None)
    if storage and type(storage[0]).__name__.lower().startswith("sqlite"):
        return "sqlite3"
    if files and files[0].suffix == ".db3":
        return "sqlite3"
    return "mcap"
