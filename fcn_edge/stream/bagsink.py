"""Results as a rosbag2 that Foxglove, RViz and ``ros2 bag play`` open, written with rosbags (no ROS install).

``--sink out.mcap`` writes one MCAP file, ``--sink out.db3`` one sqlite3 file, ``--sink
bag:DIR`` a rosbag2 folder (``metadata.yaml`` + storage; MCAP unless ``--bag-storage
sqlite3``).  Topics:

==========================  ==========================  ===================================
topic                       type                        when
==========================  ==========================  ===================================
``/fcn_edge/class_mask``    sensor_msgs/Image mono8     always (class ids; int32 models: no)
``/fcn_edge/overlay``       sensor_msgs/Image bgr8      ``--bag-topics overlay`` (the drawn view)
``/fcn_edge/confidence``    sensor_msgs/Image mono8     ``--bag-topics confidence`` (p x 255)
``/fcn_edge/class_info``    std_msgs/String (JSON)      ``--bag-topics class_info``
``/fcn_edge/image``         sensor_msgs/Image bgr8      ``--bag-topics image`` (the input frame)
==========================  ==========================  ===================================

Every message carries its input frame's stamp (the recorded header stamp for bag and ROS
sources, the capture wall time otherwise) and ``frame_id``; the bag's log time is the
same stamp.  Written atomically: the bag grows in a hidden ``.fcn-edge-tmp-<pid>-*``
folder beside the target, is closed (index, metadata.yaml), read back to verify its
message count, and only then renamed into place.  A normal end, SIGINT and SIGTERM
finalise it; a failed run or kill -9 leaves nothing at the target (a later run removes
the hidden folder of a dead writer).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from fcn_edge.fileio import TMP_PREFIX, fsync_dir, remove_stale_temporary_folders
from fcn_edge.stream.frames import FrameResult
from fcn_edge.stream.sinks import Sink, SinkError

log = logging.getLogger(__name__)

TOPIC_PREFIX = "/fcn_edge"
OPTIONAL_TOPICS = ("overlay", "confidence", "class_info", "image")
STORAGES = ("mcap", "sqlite3")
_SUFFIX_STORAGE = {".mcap": "mcap", ".db3": "sqlite3"}


def parse_bag_topics(text: str | Iterable[str] | None) -> tuple:
    """``overlay,confidence`` -> ("overlay", "confidence"); ``all`` -> every optional topic."""
    if text is None:
        return ()
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t and t.strip()]
    if items == ["all"]:
        return OPTIONAL_TOPICS
    unknown = [t for t in items if t not in OPTIONAL_TOPICS]
    if unknown:
        raise SinkError(f"unknown bag topic(s) {', '.join(unknown)}: choose from {', '.join(OPTIONAL_TOPICS)} or all")
    return tuple(dict.fromkeys(items))


class BagSink(Sink):
    """Writes a rosbag2 (folder) or a single .mcap/.db3 file; see the module docstring."""

    def __init__(self, path: str | os.PathLike, *, folder: bool = False, storage: Optional[str] = None,
                 topics: Sequence[str] = (), jpeg_quality: int = 90) -> None:
        self.path = Path(path)
        self.folder = folder
        suffix_storage = None if folder else _SUFFIX_STORAGE.get(self.path.suffix.lower())
        if not folder and suffix_storage is None:
            raise SinkError(f"bag sink {self.path}: give a .mcap or .db3 file, or bag:FOLDER for a rosbag2 folder")
        if storage is not None and storage not in STORAGES:
            raise SinkError(f"bag storage must be mcap or sqlite3, got {storage!r}")
        if suffix_storage is not None and storage is not None and storage != suffix_storage:
            raise SinkError(f"{self.path} is a {suffix_storage} file but --bag-storage is {storage}: use "
                            f"{self.path.with_suffix('.mcap' if storage == 'mcap' else '.db3')} or bag:FOLDER")
        self.storage = storage or suffix_storage or "mcap"
        self.topics = parse_bag_topics(topics)
        self.needs_render = "overlay" in self.topics
        self.jpeg_quality = jpeg_quality
        self._writer: Any = None
        self._store: Any = None
        self._connections: Dict[str, Any] = {}
        self._tmp_root: Optional[Path] = None
        self._bag_dir: Optional[Path] = None
        self._counts: Dict[str, int] = {}
        self._warned: set = set()

    @property
    def name(self) -> str:
        return ("bag:" if self.folder else "") + str(self.path)

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        from fcn_edge.stream.bag import rosbags_modules

        rosbags_modules()  # fail before the source starts when rosbags is missing
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise SinkError(f"cannot write {self.path}: the folder {parent} does not exist (create it first)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SinkError(f"cannot write {self.path}: the folder {parent} is not writable")
        if self.folder and self.path.exists() and not (self.path / "metadata.yaml").is_file():
            raise SinkError(f"{self.path} exists and is not a rosbag2 folder: choose a new name (an existing bag "
                            "folder is replaced once the new one is complete)")
        if not self.folder and self.path.is_dir():
            raise SinkError(f"cannot write {self.path}: it is a folder; use bag:{self.path} for a rosbag2 folder")
        remove_stale_temporary_folders(parent, suffix=".bag")  # hidden bags of killed runs

    def _start(self) -> None:
        from fcn_edge.stream.bag import rosbags_modules, typestore

        rosbag2, _ = rosbags_modules()
        parent = self.path.parent if str(self.path.parent) else Path(".")
        self._tmp_root = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=".bag", dir=parent))
        stem = self.path.name if self.folder else self.path.stem
        self._bag_dir = self._tmp_root / (stem or "bag")
        plugin = rosbag2.StoragePlugin.MCAP if self.storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
        self._store = typestore()
        writer = rosbag2.Writer(self._bag_dir, version=9, storage_plugin=plugin)
        writer.open()
        self._writer = writer
        image, string = "sensor_msgs/msg/Image", "std_msgs/msg/String"
        wanted = [("class_mask", image)] + [(t, string if t == "class_info" else image) for t in self.topics]
        for topic, msgtype in wanted:
            self._connections[topic] = writer.add_connection(f"{TOPIC_PREFIX}/{topic}", msgtype, typestore=self._store)
            self._counts[topic] = 0

    def write(self, result: FrameResult, rendered: Optional[np.ndarray]) -> None:
        if self._writer is None:
            self._start()
        frame = result.frame
        stamp = frame.stamp_ns if frame.stamp_ns is not None else int(round(frame.wall_time * 1e9))
        frame_id = frame.frame_id or ""
        labels = result.labels
        if labels.dtype != np.uint8:
            self._warn_once("mask", "class ids above 255 do not fit mono8: /fcn_edge/class_mask holds them modulo 256")
        self._image("class_mask", stamp, frame_id, labels.astype(np.uint8, copy=False), "mono8")
        if "overlay" in self.topics:
            self._image("overlay", stamp, frame_id, rendered if rendered is not None else frame.image, "bgr8")
        if "confidence" in self.topics:
            if result.confidence is None:
                self._warn_once("confidence", "the model gives no confidence: /fcn_edge/confidence stays empty")
            else:
                from fcn_edge.stream.rosimage import confidence_to_mono8

                self._image("confidence", stamp, frame_id, confidence_to_mono8(result.confidence), "mono8")
        if "image" in self.topics:
            self._image("image", stamp, frame_id, frame.image, "bgr8")
        if "class_info" in self.topics:
            self._string("class_info", stamp, json.dumps(class_info(result, stamp, frame_id), sort_keys=True))
        self._written = self.written + 1

    def _image(self, topic: str, stamp: int, frame_id: str, pixels: np.ndarray, encoding: str) -> None:
        from fcn_edge.stream.rosimage import bgr_to_image

        store = self._store
        enc, height, width, step, data = bgr_to_image(pixels, encoding)
        message = store.types["sensor_msgs/msg/Image"](
            header=self._header(stamp, frame_id), height=height, width=width, encoding=enc, is_bigendian=0,
            step=step, data=np.frombuffer(data, np.uint8))
        self._put(topic, stamp, store.serialize_cdr(message, "sensor_msgs/msg/Image"))

    def _string(self, topic: str, stamp: int, text: str) -> None:
        store = self._store
        message = store.types["std_msgs/msg/String"](data=text)
        self._put(topic, stamp, store.serialize_cdr(message, "std_msgs/msg/String"))

    def _header(self, stamp: int, frame_id: str) -> Any:
        types = self._store.types
        return types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=int(stamp // 1_000_000_000), nanosec=int(stamp % 1_000_000_000)),
            frame_id=frame_id)

    def _put(self, topic: str, stamp: int, data: Any) -> None:
        try:
            self._writer.write(self._connections[topic], int(stamp), data)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._counts[topic] += 1

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: %s", self.path, message)

    def close(self, *, abort: bool = False) -> None:
        if self._writer is None:
            if not abort and self.written == 0:
                log.warning("%s: no frames were produced, so no bag was written", self.path)
            return
        writer, self._writer = self._writer, None
        if abort:
            self._discard(writer)
            log.warning("%s: run failed, the partial bag was discarded", self.path)
            return
        try:
            writer.close()
            self._verify()
            self._move_into_place()
        except SinkError:
            self._discard(None)
            raise
        except Exception as exc:  # noqa: BLE001 - one sentence, nothing half-written left behind
            self._discard(None)
            raise SinkError(f"{self.path} was not written: {type(exc).__name__}: {exc}") from None
        log.info("%s: wrote %d frame(s) (%s)", self.name, self.written,
                 ", ".join(f"{TOPIC_PREFIX}/{t} {n}" for t, n in self._counts.items()))

    def _verify(self) -> None:
        """Read the closed bag back: it opens, and it holds every message written."""
        from fcn_edge.stream.bag import rosbags_modules

        rosbag2, _ = rosbags_modules()
        expected = sum(self._counts.values())
        with rosbag2.Reader(self._bag_dir) as reader:
            found = reader.message_count
        if found != expected:
            raise SinkError(f"{self.path} was not written: the closed bag holds {found} messages, {expected} expected")

    def _move_into_place(self) -> None:
        assert self._tmp_root is not None and self._bag_dir is not None
        if self.folder:
            if self.path.exists():  # an older bag: moved aside only now that the new one is complete
                old = self._tmp_root / ".replaced"
                os.replace(self.path, old)
            os.replace(self._bag_dir, self.path)
        else:
            files = [p for p in self._bag_dir.iterdir() if p.suffix in (".mcap", ".db3")]
            if len(files) != 1:
                raise SinkError(f"{self.path} was not written: expected one storage file, found {len(files)}")
            os.replace(files[0], self.path)
        fsync_dir(self.path.parent if str(self.path.parent) else Path("."))
        shutil.rmtree(self._tmp_root, ignore_errors=True)
        self._tmp_root = None

    def _discard(self, writer: Any) -> None:
        if writer is not None:
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - the folder goes anyway
                pass
        if self._tmp_root is not None:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._tmp_root = None


def class_info(result: FrameResult, stamp: int, frame_id: str) -> Dict[str, Any]:
    """What /fcn_edge/class_info says about one frame: the classes in view with their share of the image."""
    labels = result.labels
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(result.class_names))
    total = float(labels.size) or 1.0
    names = result.class_names
    classes: List[Dict[str, Any]] = [
        {"id": int(i), "name": names[i] if i < len(names) else str(i), "fraction": round(float(n) / total, 6)}
        for i, n in enumerate(counts) if n]
    classes.sort(key=lambda c: -c["fraction"])
    return {"stamp_ns": int(stamp), "frame_id": frame_id, "index": int(result.index), "source_id": int(result.source_id),
            "height": int(labels.shape[0]), "width": int(labels.shape[1]), "classes": classes,
            "timings_ms": {k: round(float(v), 3) for k, v in result.timings.items()}}


__all__ = ["BagSink", "parse_bag_topics", "class_info", "OPTIONAL_TOPICS", "STORAGES", "TOPIC_PREFIX"]
