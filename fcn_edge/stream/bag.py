"""Recorded robot data as a source: a rosbag2 folder (MCAP or sqlite3 storage), a ``.mcap`` or ``.db3`` file.

``fcn-edge run MODEL --source bag:PATH [--topic /camera/image_raw] [--realtime]`` reads
``sensor_msgs/Image`` (bgr8, rgb8, bgra8, rgba8, mono8) or ``sensor_msgs/CompressedImage``
messages with rosbags (pure Python, no ROS install).  With one image topic in the bag it
is picked; with several, ``--topic`` chooses and the error lists them.  Every message is
a frame, in recorded order (the file policy); ``--realtime`` replays at the recorded
timing with the latest-frame policy, as a camera would.  Each frame carries the
message's header stamp (``Frame.stamp_ns``, ``Frame.wall_time``) and ``frame_id``, so
sinks stamp their outputs with the robot's clock.

Bad input costs one line and nothing else: a message with an unknown encoding is
skipped and counted (:class:`~fcn_edge.stream.sources.BadFrame`); a truncated MCAP file
(a recorder killed before writing its index) is read up to the damage with the mcap
library's stream reader, with a warning; a missing, ambiguous or non-image topic is a
:class:`~fcn_edge.errors.SourceError` naming the topics there are.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

from fcn_edge.errors import SourceError
from fcn_edge.lazy import require
from fcn_edge.stream.frames import Frame, now
from fcn_edge.stream.sources import BadFrame, Source, SourceOptions, SourceSpec

log = logging.getLogger(__name__)

RAW_IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (RAW_IMAGE, COMPRESSED_IMAGE)
BAG_FILE_SUFFIXES = (".mcap", ".db3")
ROBOTICS_NEEDS = "pip install 'fcn-edge[robotics]' (rosbags needs Python 3.10 or newer)"


def rosbags_modules() -> Tuple[Any, Any]:
    """``(rosbags.rosbag2, rosbags.typesys)``, or one sentence saying what to install."""
    rosbag2 = require("rosbags.rosbag2", purpose=f"to read and write rosbag2/MCAP bags: {ROBOTICS_NEEDS}")
    typesys = require("rosbags.typesys", purpose=f"to read and write rosbag2/MCAP bags: {ROBOTICS_NEEDS}")
    return rosbag2, typesys


def typestore() -> Any:
    """The ROS 2 message definitions (Jazzy's; sensor_msgs/Image and CompressedImage are the same since Foxy)."""
    _, typesys = rosbags_modules()
    return typesys.get_typestore(typesys.Stores.ROS2_JAZZY)


def normal_type(msgtype: str) -> str:
    """``sensor_msgs/Image`` -> ``sensor_msgs/msg/Image`` (bags written by ROS 2 always have the ``msg`` part)."""
    parts = str(msgtype).split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return str(msgtype)


def stamp_ns(message: Any, fallback: int) -> int:
    """The header stamp in nanoseconds; the bag's log time when the header has none (zero)."""
    header = getattr(message, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return int(fallback)
    value = int(getattr(stamp, "sec", 0)) * 1_000_000_000 + int(getattr(stamp, "nanosec", 0))
    return value if value > 0 else int(fallback)


def message_to_bgr(msgtype: str, message: Any) -> Any:
    """A decoded Image/CompressedImage as BGR uint8 (BadFrame when it cannot be used)."""
    from fcn_edge.stream.rosimage import compressed_to_bgr, image_to_bgr

    if msgtype == COMPRESSED_IMAGE:
        return compressed_to_bgr(getattr(message, "format", ""), message.data)
    return image_to_bgr(message.encoding, message.height, message.width, message.step, message.data)


# ------------------------------------------------------------------ readers
class BagReader:
    """The messages of one bag, whichever library reads it: ``topics``, ``counts``, ``messages(topic)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.topics: Dict[str, str] = {}
        self.counts: Dict[str, Optional[int]] = {}
        self.recovered = False

    def messages(self, topic: str) -> Iterator[Tuple[int, Any]]:
        """``(log_time_ns, decoded message)`` of ``topic`` in recorded order."""
        raise NotImplementedError

    def duration_ns(self, topic: str) -> Optional[int]:
        return None

    def close(self) -> None:
        """Release the files."""


class RosbagsReader(BagReader):
    """rosbags' reader: rosbag2 folders (metadata.yaml + MCAP or sqlite3 files) and bare .mcap/.db3 files."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        rosbag2, _ = rosbags_modules()
        self._store = typestore()
        self._reader = rosbag2.Reader(path)
        self._reader.open()
        for connection in self._reader.connections:
            self.topics[connection.topic] = normal_type(connection.msgtype)
            self.counts[connection.topic] = (self.counts.get(connection.topic) or 0) + int(connection.msgcount or 0)
        self._span = (self._reader.start_time, self._reader.end_time) if self._reader.message_count else None

    def messages(self, topic: str) -> Iterator[Tuple[int, Any]]:
        connections = [c for c in self._reader.connections if c.topic == topic]
        for connection, timestamp, raw in self._reader.messages(connections=connections):
            yield int(timestamp), _Lazy(self._store, raw, connection.msgtype)

    def duration_ns(self, topic: str) -> Optional[int]:
        return None if self._span is None else int(self._span[1] - self._span[0])

    def close(self) -> None:
        self._reader.close()


class _Lazy:
    """A serialised message decoded when first used, so a bad message fails as one BadFrame in read()."""

    __slots__ = ("store", "raw", "msgtype")

    def __init__(self, store: Any, raw: Any, msgtype: str) -> None:
        self.store, self.raw, self.msgtype = store, raw, msgtype

    def decode(self) -> Any:
        try:
            return self.store.deserialize_cdr(self.raw, self.msgtype)
        except Exception as exc:  # noqa: BLE001 - a corrupt message is one skipped frame
            raise BadFrame(f"a {self.msgtype} message does not deserialise ({type(exc).__name__}: {exc})") from None


class RecoveredMcapReader(BagReader):
    """An MCAP file whose end is missing (the recorder was killed): read record by record with the mcap
    library up to the damage, decoding with mcap-ros2-support's CDR decoder."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.recovered = True
        stream_reader = require("mcap.stream_reader", purpose=f"to read MCAP files: {ROBOTICS_NEEDS}")
        records = require("mcap.records", purpose=f"to read MCAP files: {ROBOTICS_NEEDS}")
        decoder = require("mcap_ros2.decoder", purpose=f"to read MCAP files: {ROBOTICS_NEEDS}")
        self._stream_reader, self._records, self._factory = stream_reader, records, decoder.DecoderFactory()
        self.damage: Optional[str] = None
        # one pass to learn the topics and counts (a truncated file has no summary section to ask)
        counts: Dict[int, int] = {}
        for record in self._records_until_damage():
            if isinstance(record, records.Message):
                counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
        for channel in self._channels.values():
            schema = self._schemas.get(channel.schema_id)
            self.topics[channel.topic] = normal_type(schema.name) if schema is not None else ""
            self.counts[channel.topic] = (self.counts.get(channel.topic) or 0) + counts.get(channel.id, 0)

    def _records_until_damage(self) -> Iterator[Any]:
        """Every record up to the end or the first damaged one (noted in ``damage``)."""
        self._schemas: Dict[int, Any] = {}
        self._channels: Dict[int, Any] = {}
        with open(self.path, "rb") as handle:
            reader = self._stream_reader.StreamReader(handle, skip_magic=False)
            try:
                for record in reader.records:
                    if isinstance(record, self._records.Channel):
                        self._channels[record.id] = record
                    elif isinstance(record, self._records.Schema):
                        self._schemas[record.id] = record
                    yield record
            except Exception as exc:  # noqa: BLE001 - the damage: stop here, keep what was read
                self.damage = f"{type(exc).__name__}: {exc}"

    def messages(self, topic: str) -> Iterator[Tuple[int, Any]]:
        for record in self._records_until_damage():
            if not isinstance(record, self._records.Message):
                continue
            channel = self._channels.get(record.channel_id)
            if channel is None or channel.topic != topic:
                continue
            schema = self._schemas.get(channel.schema_id)
            yield int(record.log_time), _McapLazy(self._factory, channel, schema, record.data)


class _McapLazy:
    __slots__ = ("factory", "channel", "schema", "data")

    def __init__(self, factory: Any, channel: Any, schema: Any, data: bytes) -> None:
        self.factory, self.channel, self.schema, self.data = factory, channel, schema, data

    def decode(self) -> Any:
        try:
            decode = self.factory.decoder_for(self.channel.message_encoding, self.schema)
            if decode is None:
                raise ValueError(f"no ROS 2 decoder for encoding {self.channel.message_encoding!r}")
            return decode(self.data)
        except Exception as exc:  # noqa: BLE001 - a corrupt message is one skipped frame
            raise BadFrame(f"a message on {self.channel.topic} does not deserialise ({type(exc).__name__}: {exc})") \
                from None


def open_bag(path: str | Path) -> BagReader:
    """Open a bag for reading; :class:`SourceError` with one sentence when it cannot be read at all."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"bag {path} does not exist; give a rosbag2 folder, a .mcap or a .db3 file")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise SourceError(f"{path} is not a rosbag2 folder (no metadata.yaml); give the bag's folder or its .mcap file")
    try:
        return RosbagsReader(path)
    except SourceError:
        raise
    except Exception as first:  # noqa: BLE001 - every library failure becomes one sentence
        if type(first).__name__ == "MissingDependencyError":
            raise
        mcap_file = _single_mcap(path)
        if mcap_file is not None:
            recovered = RecoveredMcapReader(mcap_file)
            if recovered.topics:
                log.warning("%s is damaged or truncated (%s): reading the messages before the damage; "
                            "`mcap recover` can rebuild its index", path, _reason(first))
                return recovered
        raise SourceError(f"cannot read bag {path}: {_reason(first)} (truncated or not a rosbag2/MCAP file?)") from None


def _single_mcap(path: Path) -> Optional[Path]:
    if path.is_file():
        return path if path.suffix.lower() == ".mcap" else None
    files = sorted(path.glob("*.mcap"))
    return files[0] if len(files) == 1 else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0]


def choose_topic(reader: BagReader, topic: Optional[str], name: str) -> str:
    """The image topic to read: ``topic`` if given and an image, else the bag's only image topic."""
    images = sorted(t for t, kind in reader.topics.items() if kind in IMAGE_TYPES)
    if topic:
        if topic not in reader.topics:
            there = ", ".join(images) if images else "none"
            raise SourceError(f"bag {name} has no topic {topic}; its image topics: {there}")
        if reader.topics[topic] not in IMAGE_TYPES:
            raise SourceError(f"topic {topic} in bag {name} is {reader.topics[topic] or 'of unknown type'}, not "
                              f"sensor_msgs/Image or sensor_msgs/CompressedImage; its image topics: "
                              f"{', '.join(images) if images else 'none'}")
        return topic
    if not images:
        listed = ", ".join(f"{t} ({k or '?'})" for t, k in sorted(reader.topics.items())) or "no topics at all"
        raise SourceError(f"bag {name} has no sensor_msgs/Image or CompressedImage topic ({listed})")
    if len(images) > 1:
        raise SourceError(f"bag {name} has several image topics ({', '.join(images)}): choose one with --topic")
    return images[0]


def iter_bag_images(path: str | Path, topic: Optional[str] = None) -> Iterator[Tuple[int, str, Any]]:
    """``(stamp_ns, frame_id, BGR image)`` for each usable message of the bag's image topic (eval-style use).

    Unusable messages are skipped with a warning, as the stream source does.
    """
    reader = open_bag(path)
    try:
        chosen = choose_topic(reader, topic, str(path))
        msgtype = reader.topics[chosen]
        for log_time, lazy in reader.messages(chosen):
            try:
                message = lazy.decode()
                image = message_to_bgr(msgtype, message)
            except BadFrame as exc:
                log.warning("%s: skipping a message: %s", path, exc)
                continue
            yield stamp_ns(message, log_time), str(getattr(message.header, "frame_id", "")), image
    finally:
        reader.close()


def bag_summary(path: str | Path) -> str:
    """An ``ros2 bag info``-style summary of a bag (folder, .mcap or .db3), read with rosbags."""
    import datetime

    rosbag2, _ = rosbags_modules()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in BAG_FILE_SUFFIXES)
    size = sum(p.stat().st_size for p in files)
    try:
        with rosbag2.Reader(path) as reader:
            start, end, count = reader.start_time, reader.end_time, reader.message_count
            storage = "mcap" if any(p.suffix == ".mcap" for p in files) else "sqlite3"
            topics = [(c.topic, c.msgtype, c.msgcount, c.ext.serialization_format) for c in reader.connections]
    except Exception as exc:  # noqa: BLE001 - one sentence
        raise SourceError(f"cannot read bag {path}: {_reason(exc)}") from None

    def when(ns: int) -> str:
        moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
        return f"{moment.strftime('%b %d %Y %H:%M:%S')}.{(ns // 1_000_000) % 1000:03d} ({ns / 1e9:.9f})"

    lines = [f"Files:             {', '.join(p.name for p in files)}",
             f"Bag size:          {size / 1024:.1f} KiB",
             f"Storage id:        {storage}",
             f"Duration:          {max(0, end - start) / 1e9:.9f}s",
             f"Start:             {when(start)}" if count else "Start:             -",
             f"End:               {when(end)}" if count else "End:               -",
             f"Messages:          {count}"]
    for i, (topic, msgtype, n, fmt) in enumerate(topics):
        label = "Topic information: " if i == 0 else " " * 19
        lines.append(f"{label}Topic: {topic} | Type: {msgtype} | Count: {n} | Serialization Format: {fmt}")
    return "\n".join(lines)


# ------------------------------------------------------------------- source
class BagSource(Source):
    """Frames from one image topic of a bag; see the module docstring."""

    live = False
    paced = True  # with --realtime the source keeps the recorded timing itself; the feed must not pace again

    def __init__(self, spec: SourceSpec, options: SourceOptions, source_id: int = 0) -> None:
        super().__init__(spec, options, source_id)
        self._reader: Optional[BagReader] = None
        self._messages: Optional[Iterator[Tuple[int, Any]]] = None
        self.topic: Optional[str] = None
        self.msgtype: Optional[str] = None
        self._wake = threading.Event()
        self._origin: Optional[Tuple[float, int]] = None
        self._read_any = False

    def open(self) -> None:
        reader = open_bag(self.spec.target)
        try:
            self.topic = choose_topic(reader, self.options.topic, self.spec.target)
        except BaseException:
            reader.close()
            raise
        self._reader = reader
        self.msgtype = reader.topics[self.topic]
        count = reader.counts.get(self.topic)
        self.frame_count = count if count else None
        duration = reader.duration_ns(self.topic)
        if count and count > 1 and duration:
            self.fps = (count - 1) / (duration / 1e9)
        self._messages = reader.messages(self.topic)
        self._origin = None
        self._read_any = False

    def read(self) -> Frame | None:
        if self._messages is None:
            return None
        started = now()
        try:
            log_time, lazy = next(self._messages)
        except StopIteration:
            return self._at_end()
        self._pace(log_time)
        arrived, begun = now(), time.time()
        message = lazy.decode()
        image = message_to_bgr(self.msgtype, message)  # BadFrame: skipped and counted by the feed
        stamp = stamp_ns(message, log_time)
        self._read_any = True
        frame = self._frame(image, arrived if self.options.realtime else started, stamp / 1e9,
                            (now() - arrived) * 1000.0)
        frame.stamp_ns = stamp
        frame.frame_id = str(getattr(getattr(message, "header", None), "frame_id", "") or "")
        log.debug("%s: frame %d stamp %d read at %.3f", self.name, frame.index, stamp, begun)
        return frame

    def _at_end(self) -> Frame | None:
        reader = self._reader
        if reader is not None and reader.recovered and getattr(reader, "damage", None) and not self._read_any:
            raise SourceError(f"bag {self.spec.target} is damaged before its first image ({reader.damage})")
        if self.options.loop and self._read_any and reader is not None:
            self._messages = reader.messages(self.topic)
            self._origin = None
            return self.read()
        self._messages = None
        return None

    def _pace(self, log_time: int) -> None:
        """--realtime: wait until the message's recorded offset from the first one has passed."""
        if not self.options.realtime:
            return
        if self._origin is None:
            self._origin = (now(), log_time)
            return
        due = self._origin[0] + (log_time - self._origin[1]) / 1e9
        wait = due - now()
        if wait > 0:
            self._wake.wait(wait)

    def interrupt(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._wake.set()
        reader, self._reader = self._reader, None
        self._messages = None
        if reader is not None:
            reader.close()

    def describe(self) -> Dict[str, Any]:
        """Also the topic, its type and the recording's log-time span (the stats JSON keeps the robot's clock)."""
        info = super().describe()
        span = getattr(self._reader, "_span", None)
        info.update(topic=self.topic, msgtype=self.msgtype,
                    recorded_start_ns=int(span[0]) if span else None, recorded_end_ns=int(span[1]) if span else None)
        return info


__all__ = ["BagSource", "bag_summary", "BagReader", "open_bag", "choose_topic", "iter_bag_images", "IMAGE_TYPES",
           "RAW_IMAGE", "COMPRESSED_IMAGE", "typestore", "rosbags_modules", "message_to_bgr", "stamp_ns"]
