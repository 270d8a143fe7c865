"""Where results go: a window, a video file, an image folder, a callback, or nowhere.

==================  ====================================================================
string              sink
==================  ====================================================================
``display``         an OpenCV window (``q``/Esc or closing it stops the run)
``out.mp4``         a video file; codec by extension (.mp4/.mov/.m4v mp4v, .avi MJPG,
                    .mkv XVID, .webm VP80); written to a temporary file and renamed when
                    complete and readable, so an interrupted run never leaves half a file
``out/``            a folder of PNG images (rendered view), one per frame
``labels:out/``     a folder of class-id PNGs (mono8; 16-bit beyond 255 classes)
``none``            nothing (headless benchmark)
``out.mcap``        a rosbag2 MCAP file (``.db3``: sqlite3; ``bag:DIR``: a rosbag2 folder),
                    see :mod:`fcn_edge.stream.bagsink`
``foxglove``        a live Foxglove WebSocket server on 127.0.0.1:8765
                    (``foxglove://HOST:PORT``), see :mod:`fcn_edge.stream.foxglove`
==================  ====================================================================
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.fileio import atomic_path, atomic_write_bytes, check_writable_destination
from fcn_edge.lazy import opencv
from fcn_edge.stream.frames import FrameResult

log = logging.getLogger(__name__)

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".webm": "VP80"}
SINK_HELP = ("display, none, a video file (.mp4 .avi .mkv .mov .webm), a folder, labels:FOLDER, a bag (out.mcap, "
             "out.db3, bag:FOLDER) or foxglove[://HOST:PORT]")


class SinkError(FcnEdgeError):
    """A sink cannot be opened or written."""


class Sink(abc.ABC):
    """Receives every result; ``needs_render`` says whether it wants the drawn image."""

    needs_render: bool = True
    wants_stop: bool = False  # set when the user closed the window

    @property
    @abc.abstractmethod
    def name(self) -> str: ...

    def open(self) -> None:
        """Fail early (before the source starts) when the sink cannot work."""

    @abc.abstractmethod
    def write(self, result: FrameResult, rendered: np.ndarray | None) -> None: ...

    def close(self, *, abort: bool = False) -> None:
        """Finish the output; ``abort`` discards incomplete artifacts (the run failed)."""

    @property
    def written(self) -> int:
        return getattr(self, "_written", 0)


class NullSink(Sink):
    needs_render = False

    @property
    def name(self) -> str:
        return "none"

    def write(self, result: FrameResult, rendered: np.ndarray | None) -> None:
        self._written = self.written + 1


class CallbackSink(Sink):
    """Calls ``callback(result, rendered)`` for each frame (the Python API's hook)."""

    def __init__(self, callback: Callable[[FrameResult, np.ndarray | None], None], render: bool = False) -> None:
        self.callback = callback
        self.needs_render = render

    @property
    def name(self) -> str:
        return f"callback {getattr(self.callback, '__name__', 'callable')}"

    def write(self, result: FrameResult, rendered: np.ndarray | None) -> None:
        self.callback(result, rendered)
        self._written = self.written + 1


class DisplaySink(Sink):
    def __init__(self, title: str = "fcn-edge") -> None:
        self.title = title
        self._open = False

    @property
    def name(self) -> str:
        return "display"

    def open(self) -> None:
        cv2 = opencv()
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("cannot open a window: no display (DISPLAY is not set); use --sink none or a file "
                            "(e.g. --sink out.mp4), or run where a screen is attached")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise SinkError("cannot open a window: this OpenCV has no GUI support (opencv-python-headless?); "
                            "pip install opencv-python, or on a Jetson use the system OpenCV, or write to a file "
                            "with --sink out.mp4") from exc
        self._open = True

    def write(self, result: FrameResult, rendered: np.ndarray | None) -> None:
        cv2 = opencv()
        if not self._open:
            self.open()
        cv2.imshow(self.title, rendered if rendered is not None else result.image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.wants_stop = True
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.wants_stop = True
        except cv2.error:
            self.wants_stop = True
        self._written = self.written + 1

    def close(self, *, abort: bool = False) -> None:
        if self._open:
            cv2 = opencv()
            with contextlib.suppress(Exception):
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            self._open = False


class VideoFileSink(Sink):
    """Video file written atomically: temp file in the same folder, verified, then renamed."""

    def __init__(self, path: str | os.PathLike, fps: float | None = None, codec: str | None = None) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if codec is None and suffix not in VIDEO_CODECS:
            raise SinkError(f"cannot tell the codec for {self.path}: use one of {', '.join(VIDEO_CODECS)} or --codec")
        self.codec = codec or VIDEO_CODECS[suffix]
        if len(self.codec) != 4:
            raise SinkError(f"codec must be a four-character code such as mp4v or MJPG, got {self.codec!r}")
        self.fps = fps
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self._writer = None
        self._size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def open(self) -> None:
        check_writable_destination(self.path)

    def _start(self, image: np.ndarray) -> None:
        cv2 = opencv()
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        height, width = image.shape[:2]
        fps = float(self.fps or 25.0)
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter.fourcc(*self.codec), fps, (width, height))
        if not writer.isOpened():
            self._abort()
            raise SinkError(f"cannot write {self.path} with codec {self.codec}: this OpenCV lacks the encoder; "
                            "try .avi (MJPG) or --codec")
        self._writer = writer
        self._size = (width, height)

    def write(self, result: FrameResult, rendered: np.ndarray | None) -> None:
        image = rendered if rendered is not None else result.image
        if self._writer is None:
            self._start(image)
        if (image.shape[1], image.shape[0]) != self._size:
            cv2 = opencv()
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(image))
        self._written = self.written + 1

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            with contextlib.suppress(_Discard):
                stack.__exit__(_Discard, _Discard(), None)

    def close(self, *, abort: bool = False) -> None:
        if self._stack is None:
            if not abort and self.written == 0:
                log.warning("%s: no frames were produced, so no video was written", self.path)
            return
        if abort:
            self._abort()
            log.warning("%s: run failed, the partial video was discarded", self.path)
            return
        self._writer.release()
        self._writer = None
        problem = _verify_video(self._tmp, self.written)
        if problem:
            self._abort()
            raise SinkError(f"{self.path} was not written: {problem}")
        stack, self._stack = self._stack, None
        stack.close()  # renames the temporary file over the destination


class _Discard(Exception):
    """Raised into atomic_path's context to make it delete the temporary file."""


def _verify_video(path: Path | None, expected: int) -> str | None:
    cv2 = opencv()
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return "the encoded file cannot be opened again"
        ok, _ = capture.read()
        if not ok and expected > 0:
            return "the encoded file has no readable frame"
    finally:
        capture.release()
    return None


class ImageFolderSink(Sink):
    """One PNG per frame: the rendered view, or (``labels=True``) the class ids as mono8."""

    def __init__(self, folder: str | os.PathLike, labels: bool = False, extension: str = ".png") -> None:
        self.folder = Path(folder)
        self.labels = labels
        self.needs_render = not labels
        self.extension = extension

    @property
    def name(self) -> str:
        return ("labels:" if self.labels else "") + str(self.folder)

    def open(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise SinkError(f"{self.folder} exists and is not a folder")
        parent = self.folder.parent
        if not parent.exists():
            raise SinkError(f"cannot create {self.folder}: the folder {parent} does not exist")
        self.folder.mkdir(exist_ok=True)
        check_writable_destination(self.folder / f"probe{self.extension}")

    def write(self, result: FrameResult, rendered: np.ndarray | None) -> None:
        cv2 = opencv()
        stem = result.frame.name or f"{result.index:06d}"
        if result.frame.source_id:
            stem = f"src{result.frame.source_id}_{stem}"
        if self.labels:
            data = result.labels if result.labels.dtype == np.uint8 else result.labels.astype(np.uint16)
            extension = ".png"
        else:
            data = rendered if rendered is not None else result.image
            extension = self.extension
        ok, encoded = cv2.imencode(extension, data)
        if not ok:
            raise SinkError(f"could not encode {stem}{extension}")
        atomic_write_bytes(self.folder / f"{stem}{extension}", encoded.tobytes())
        self._written = self.written + 1


def parse_sink(text: str, *, fps: float | None = None, codec: str | None = None, bag_storage: str | None = None,
               bag_topics: str | None = None) -> Sink:
    """A sink from its string (see the module docstring); ``bag_*`` configure bag sinks."""
    raw = str(text).strip()
    lower = raw.lower()
    if not raw:
        raise SinkError(f"empty sink: give {SINK_HELP}")
    robotics = _parse_robotics_sink(raw, bag_storage=bag_storage, bag_topics=bag_topics)
    if robotics is not None:
        return robotics
    if lower in ("none", "null", "headless"):
        return NullSink()
    if lower in ("display", "window", "screen", "show"):
        return DisplaySink()
    if lower.startswith("labels:"):
        target = raw[len("labels:"):].strip()
        if not target:
            raise SinkError("labels: needs a folder, e.g. labels:out/labels")
        return ImageFolderSink(target, labels=True)
    path = Path(os.path.expanduser(raw))
    if path.suffix.lower() in VIDEO_CODECS:
        return VideoFileSink(path, fps=fps, codec=codec)
    if path.suffix and not path.is_dir() and not raw.endswith(("/", os.sep)):
        raise SinkError(f"sink {raw!r}: unknown file type {path.suffix}; give {SINK_HELP}")
    return ImageFolderSink(path)


def _parse_robotics_sink(raw: str, *, bag_storage: str | None, bag_topics: str | None) -> Sink | None:
    """Bag (``x.mcap``, ``x.db3``, ``bag:DIR``) and Foxglove (``foxglove[://HOST:PORT]``) sinks; None for others."""
    lower = raw.lower()
    if lower == "foxglove" or lower.startswith("foxglove://"):
        from fcn_edge.stream.foxglove import FoxgloveSink

        return FoxgloveSink.from_text(raw)
    if lower.startswith("bag:"):
        from fcn_edge.stream.bagsink import BagSink

        target = raw[4:].strip()
        if not target:
            raise SinkError("bag: needs a folder, e.g. bag:out_bag")
        return BagSink(os.path.expanduser(target), folder=True, storage=bag_storage, topics=bag_topics or ())
    if Path(lower).suffix in (".mcap", ".db3"):
        from fcn_edge.stream.bagsink import BagSink

        return BagSink(os.path.expanduser(raw), topics=bag_topics or ())  # storage by suffix
    return None


__all__ = ["Sink", "SinkError", "NullSink", "CallbackSink", "DisplaySink", "VideoFileSink", "ImageFolderSink",
           "parse_sink", "VIDEO_CODECS"]
