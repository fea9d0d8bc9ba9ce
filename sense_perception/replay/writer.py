"""The output rosbag2 (MCAP) of a replay: perception results next to (optionally) the input images."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Sequence, cast

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from ..core.output.topics import camera_namespace  # noqa: F401 - sense_perception.replay exports it
from ..errors import BagError
from ..fileio import chmod_nofollow, fsync_dir, fsync_file, shared_mode
from .to_rosbags import MessageConverter

_METADATA_TEMP = "metadata.yaml.tmp"  # rosbags' name for metadata.yaml being written
_INFINITE = QosTime(sec=2147483647, nsec=4294967295)
# LabelInfo is latched in vision_msgs' convention: late subscribers (ros2 bag play into a live graph)
# must still get it, so the bag records it as offered with transient-local durability.
LATCHED_QOS = [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                   _INFINITE, _INFINITE, QosLiveliness.AUTOMATIC, _INFINITE, False)]


class OutputWriteError(BagError):
    """An output file of a replay cannot be written (disk full, I/O error, permissions).

    Attributes:
        path: the file or directory being written.
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (the output disk is full)"
        super().__init__(f"cannot write {path}: {reason}")
        self.path = Path(path)
        self.errno = exc.errno

    @property
    def disk_full(self) -> bool:
        """The disk (or the user's quota) is full: every later write fails too."""
        return self.errno in (errno.ENOSPC, errno.EDQUOT)


class _NamedDir:
    """The bag directory as rosbags' MCAP storage sees it: it names the file ``<name>.mcap`` after
    ``path.name``, so this gives it another name (the input bag's) for the same directory."""

    def __init__(self, path: Path, name: str) -> None:
        self._path = path
        self.name = name

    def __truediv__(self, other: str) -> Path:
        return self._path / other


def _writer(path: Path, name: str, private: bool, made: list[int]) -> Writer:
    """rosbags' MCAP writer of the bag folder ``path``; a descriptor of the temporary metadata
    file it makes there is kept in ``made`` (held open, its inode cannot be another file's: to
    remove that file on failure and nothing else)."""
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)

    def mcap(directory: Path, compression: Any) -> McapWriter:
        # rosbags has just made the folder 0755 less the umask and makes its files under the
        # umask (0666 under umask 000, R88): each gets its mode before the first byte is written
        # (a lookup in the folder is checked against its mode now).
        chmod_nofollow(directory, 0o700 if private else shared_mode(0o777), directory=True)
        storage = McapWriter(cast(Path, _NamedDir(directory, name)), compression)
        file_mode = 0o600 if private else shared_mode(0o666)
        os.fchmod(storage.bio.fileno(), file_mode)
        # rosbags writes metadata.yaml to this temporary name (truncating it, so keeping its
        # mode) and renames it: made here, its mode is right from its first byte on.
        made.append(os.open(directory / _METADATA_TEMP,
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, file_mode))
        return storage

    # rosbags has no option for the file name: its storage plugin table is per instance here.
    writer.STORAGE_PLUGINS = {StoragePlugin.MCAP: mcap}  # type: ignore[misc, dict-item]
    return writer


class OutputBag:
    """Write perception results and copied input messages to a new rosbag2 MCAP bag.

    Topics are added on first use. Messages may be the core's message-shaped dicts (converted
    with the typestore's definitions) or rosbags message objects; raw CDR bytes are copied as they
    are, so copied input is byte-identical to the input bag.

    Args:
        path: directory of the new bag; must not exist.
        typestore: knows every type written.
        name: the MCAP file's name in it, without ``.mcap`` (the input bag's name); default the
            directory's name.
        private: the folder is made 0700 and its files 0600 whatever the umask (a bag holding
            the cabin camera's frames shows the driver's face: other users must not read it);
            else they get the umask's modes, never writable by group or others (R88).
    """

    def __init__(self, path: Path, typestore: Typestore, name: str | None = None,
                 private: bool = False) -> None:
        self.path = Path(path)
        self.typestore = typestore
        self.private = private
        self.convert = MessageConverter(typestore)
        self._made: list[int] = []  # the metadata temporary file this bag made, held open
        try:
            self._writer = _writer(self.path, name or self.path.name, private, self._made)
            self._writer.open()
        except Exception as exc:
            self._remove_metadata_temp()
            raise BagError(f"output bag {self.path} cannot be created: {exc}") from exc
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}
        self._closed = False

    def _connection(self, topic: str, msgtype: str, qos: Sequence[Qos]) -> Connection:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                               offered_qos_profiles=list(qos))
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise BagError(f"output topic {topic} already carries {conn.msgtype}, cannot add {msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, timestamp: int, message: Any,
              qos: Sequence[Qos] = ()) -> None:
        """Serialise ``message`` (dict or rosbags object) as ``msgtype`` at bag time ``timestamp`` ns."""
        obj = self.convert(msgtype, message)
        self.write_raw(topic, msgtype, timestamp, self.typestore.serialize_cdr(obj, msgtype), qos)

    def write_raw(self, topic: str, msgtype: str, timestamp: int, data: bytes | memoryview,
                  qos: Sequence[Qos] = ()) -> None:
        """Write already serialised CDR bytes.

        Raises:
            OutputWriteError: the bag file cannot be written (e.g. the disk is full).
        """
        try:
            self._writer.write(self._connection(topic, msgtype, qos), int(timestamp), data)
        except OSError as exc:
            raise OutputWriteError(self.path, exc) from exc
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the MCAP (index, summary), write metadata.yaml and flush both to disk.

        Raises:
            OutputWriteError: the rest of the bag cannot be written (the file is closed anyway).
        """
        if not self._closed:
            self._closed = True
            try:
                self._writer.close()
            except OSError as exc:
                # rosbags stops before closing its file when a write fails: close it here.
                bio = getattr(getattr(self._writer, "storage", None), "bio", None)
                if bio is not None:
                    try:
                        bio.close()
                    except OSError:
                        pass  # its unwritten buffer is lost either way
                self._remove_metadata_temp()
                raise OutputWriteError(self.path, exc) from exc
            self._release_metadata_temp()  # renamed into metadata.yaml
            try:
                self._flush_to_disk()
            except OSError as exc:
                raise OutputWriteError(self.path, exc) from exc

    def _remove_metadata_temp(self) -> None:
        """Remove the temporary metadata file this bag made, which rosbags leaves (empty, or cut
        short) when the bag fails before it is closed: it is a half-written file of an output
        already marked incomplete (R90). Only that file: the same file (device and inode) as
        the one made, held open since (so no other file can have its inode), still a regular
        file under its name, in a folder this bag made, which no other user may write (0700, or
        never writable by others: R88). Best effort: a failure
        to remove it leaves it beside the marker, the output's real error unchanged."""
        import stat

        for made in self._made:
            temp = self.path / _METADATA_TEMP
            try:
                now, ours = os.lstat(temp), os.fstat(made)
                if stat.S_ISREG(now.st_mode) and (now.st_dev, now.st_ino) == (ours.st_dev,
                                                                            ours.st_ino):
                    temp.unlink()
            except OSError:
                pass  # gone (renamed into metadata.yaml), or not removable: left as it is
        self._release_metadata_temp()

    def _release_metadata_temp(self) -> None:
        for made in self._made:
            os.close(made)
        self._made.clear()

    def _flush_to_disk(self) -> None:
        """fsync the finished bag's files (the MCAP, metadata.yaml), its folder and the folder
        holding it: rosbags closes its files unflushed, so a power cut soon after a replay that
        had written summary.json could leave a bag cut short, or none, beside a summary (and a
        fleet bag taken as done by resume) that declares it finished. Once per bag, at close."""
        with os.scandir(self.path) as entries:
            files = [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
        for file in sorted(files):
            fsync_file(file)
        fsync_dir(self.path)
        fsync_dir(self.path.parent)

    def __enter__(self) -> "OutputBag":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
