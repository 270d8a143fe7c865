"""Live view in the Foxglove app: ``--sink foxglove`` (``foxglove://HOST:PORT``; default 127.0.0.1:8765).

A WebSocket server from the maintained ``foxglove-sdk`` (protocol ``foxglove.websocket.v1``)
streams, per source:

=====================================  ===============================  ==================================
topic                                  schema                           content
=====================================  ===============================  ==================================
``/fcn_edge/image``                    foxglove.CompressedImage (jpeg)  the camera/bag frame
``/fcn_edge/overlay``                  foxglove.CompressedImage (jpeg)  the drawn view (``--view``)
``/fcn_edge/class_mask``               foxglove.CompressedImage (png)   class colours (the model's palette)
``/fcn_edge/class_info``               JSON                             classes in view, their share
``/fcn_edge/stats``                    JSON                             per-frame timings (ms)
=====================================  ===============================  ==================================

With several sources each gets its own set under ``/fcn_edge/src<N>/`` on one server.
Messages carry the frame's stamp (the recorded one for bags) as log time and timestamp.
The server listens on 127.0.0.1 unless told otherwise and stops when the run ends.
``foxglove-sdk`` has wheels for Linux x86_64 and aarch64 (CPython 3.10+ as abi3; the
last one for 3.9 is 0.15, none for 3.8).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from fcn_edge.lazy import require
from fcn_edge.stream.frames import FrameResult
from fcn_edge.stream.sinks import Sink, SinkError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
FOXGLOVE_NEEDS = "pip install 'fcn-edge[robotics]' (foxglove-sdk: CPython 3.10+ on Linux x86_64/aarch64, macOS, Windows)"
STATS_SCHEMA = {"type": "object", "properties": {
    "index": {"type": "integer"}, "stamp_ns": {"type": "integer"}, "source": {"type": "string"},
    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}}}}
INFO_SCHEMA = {"type": "object", "properties": {
    "stamp_ns": {"type": "integer"}, "frame_id": {"type": "string"}, "index": {"type": "integer"},
    "classes": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "fraction": {"type": "number"}}}}}}


def foxglove_module() -> Any:
    return require("foxglove", purpose=f"for the live Foxglove view (--sink foxglove): {FOXGLOVE_NEEDS}")


def parse_address(text: str) -> Tuple[str, int]:
    """``foxglove`` / ``foxglove://HOST:PORT`` / ``foxglove://:PORT`` -> (host, port)."""
    raw = text.strip()
    if raw.lower() == "foxglove":
        return DEFAULT_HOST, DEFAULT_PORT
    rest = raw.split("://", 1)[1].strip("/")
    if not rest:
        return DEFAULT_HOST, DEFAULT_PORT
    match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\[\]]*)(?::(\d+))?", rest)
    if match is None:
        raise SinkError(f"sink {raw!r}: write foxglove://HOST:PORT, e.g. foxglove://127.0.0.1:8765")
    host = match.group(1).strip("[]") or DEFAULT_HOST
    port = int(match.group(2)) if match.group(2) is not None else DEFAULT_PORT
    if port > 65535:
        raise SinkError(f"sink {raw!r}: port {port} is out of range (0-65535)")
    return host, port


class _Server:
    """One foxglove-sdk server (and its context) shared by the sinks of every source on the same address."""

    _lock = threading.Lock()
    _servers: Dict[Tuple[Any, ...], "_Server"] = {}

    def __init__(self, host: str, port: int) -> None:
        fox = foxglove_module()
        self.context = fox.Context()
        try:
            self.server = fox.start_server(name="fcn-edge", host=host, port=port, context=self.context)
        except Exception as exc:  # noqa: BLE001 - the SDK raises its own error types
            raise SinkError(f"cannot start the Foxglove server on {host}:{port}: {exc} (port in use? choose another "
                            "with foxglove://HOST:PORT)") from None
        self.host = host
        self.port = int(self.server.port)
        self.users = 0

    @classmethod
    def acquire(cls, host: str, port: int, group: Any = None) -> "_Server":
        """The server on ``host:port`` (started by the first user); port 0 (any free port) is shared by the
        sinks of one ``group`` (the sources of one run)."""
        key: Tuple[Any, ...] = (host, port) if port else (host, 0, id(group))
        with cls._lock:
            server = cls._servers.get(key) if (port or group is not None) else None
            if server is None:
                server = _Server(host, port)
                cls._servers[(host, server.port)] = server
                if port or group is not None:
                    cls._servers[key] = server
                log.warning("Foxglove: open ws://%s:%d in the Foxglove app (Open connection > Foxglove WebSocket)",
                            host, server.port)
            server.users += 1
            return server

    def release(self) -> None:
        with _Server._lock:
            self.users -= 1
            if self.users > 0:
                return
            for key in [k for k, v in _Server._servers.items() if v is self]:
                del _Server._servers[key]
        self.server.stop()
        log.info("Foxglove: server on %s:%d stopped", self.host, self.port)


class FoxgloveSink(Sink):
    """Streams each result to the Foxglove app; see the module docstring."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, namespace: str = "",
                 jpeg_quality: int = 80) -> None:
        self.host = host
        self.requested_port = int(port)
        self.namespace = namespace.strip("/")
        self.jpeg_quality = jpeg_quality
        self._server: Optional[_Server] = None
        self._group: Any = None  # shared by the sinks for_source() made from one sink
        self._channels: Dict[str, Any] = {}
        self._lut: Optional[np.ndarray] = None
        self._messages: Any = None  # foxglove.messages, resolved once with the channels

    @classmethod
    def from_text(cls, text: str) -> "FoxgloveSink":
        host, port = parse_address(text)
        return cls(host, port)

    def for_source(self, source_id: int, source_name: str = "") -> "FoxgloveSink":
        """The sink of source ``source_id`` when several share one server: its own channel set under /src<N>/."""
        if self._group is None:
            self._group = object()
        sink = FoxgloveSink(self.host, self.requested_port, namespace=f"src{source_id}", jpeg_quality=self.jpeg_quality)
        sink._group = self._group
        return sink

    @property
    def name(self) -> str:
        port = self._server.port if self._server is not None else self.requested_port
        return f"foxglove://{self.host}:{port}" + (f" /{self.namespace}" if self.namespace else "")

    @property
    def needs_render(self) -> bool:  # type: ignore[override]
        """The drawn overlay is wanted only while a client subscribes to it (drawing costs ~2 ms a frame)."""
        overlay = self._channels.get("overlay")
        return overlay is None or bool(overlay.has_sinks())

    @property
    def port(self) -> Optional[int]:
        """The port the server listens on (useful with port 0), once open."""
        return self._server.port if self._server is not None else None

    def topic(self, name: str) -> str:
        return "/fcn_edge/" + (f"{self.namespace}/" if self.namespace else "") + name

    def open(self) -> None:
        if self._server is None:
            self._server = _Server.acquire(self.host, self.requested_port, self._group)
            self._make_channels()

    def _make_channels(self) -> None:
        fox = foxglove_module()
        self._messages = require("foxglove.messages", purpose=f"for the live Foxglove view: {FOXGLOVE_NEEDS}")
        channels = require("foxglove.channels", purpose=f"for the live Foxglove view: {FOXGLOVE_NEEDS}")
        context = self._server.context
        for name in ("image", "overlay", "class_mask"):
            self._channels[name] = channels.CompressedImageChannel(self.topic(name), context=context)
        self._channels["class_info"] = fox.Channel(self.topic("class_info"), schema=INFO_SCHEMA, context=context)
        self._channels["stats"] = fox.Channel(self.topic("stats"), schema=STATS_SCHEMA, context=context)

    def write(self, result: FrameResult, rendered: Optional[np.ndarray]) -> None:
        from fcn_edge.stream.bagsink import class_info
        from fcn_edge.stream.rosimage import encode_compressed

        if self._server is None:
            self.open()
        messages = self._messages
        frame = result.frame
        stamp = frame.stamp_ns if frame.stamp_ns is not None else int(round(frame.wall_time * 1e9))
        timestamp = messages.Timestamp(sec=int(stamp // 1_000_000_000), nsec=int(stamp % 1_000_000_000))
        # pixels are made only for channels someone subscribes to (the class colours cost a full-frame lookup)
        views = (("image", lambda: frame.image, "jpeg"),
                 ("overlay", lambda: rendered if rendered is not None else frame.image, "jpeg"),
                 ("class_mask", lambda: self._colorize(result.labels, result.palette), "png"))
        for name, pixels, fmt in views:
            channel = self._channels[name]
            if not channel.has_sinks():  # nobody subscribed: skip the drawing and the encoding
                continue
            data = encode_compressed(pixels(), fmt, self.jpeg_quality)
            channel.log(messages.CompressedImage(timestamp=timestamp, frame_id=frame.frame_id or "", data=data,
                                                 format=fmt), log_time=stamp)
        info = self._channels["class_info"]
        if info.has_sinks():
            info.log(class_info(result, stamp, frame.frame_id or ""), log_time=stamp)
        stats = self._channels["stats"]
        if stats.has_sinks():
            stats.log({"index": int(result.index), "stamp_ns": int(stamp), "source": self.namespace or "src0",
                       "timings_ms": {k: round(float(v), 3) for k, v in result.timings.items()}}, log_time=stamp)
        self._written = self.written + 1

    def _colorize(self, labels: np.ndarray, palette: Sequence[Tuple[int, int, int]]) -> np.ndarray:
        """Class ids as BGR colours: the model's palette, VOC's colours past its end (and without one)."""
        if self._lut is None:
            from fcn_edge.artifacts.modelinfo import voc_palette

            colours = list(palette)[:256] + voc_palette(256)[len(palette):]
            self._lut = np.array([(b, g, r) for r, g, b in colours], np.uint8)
        index = labels if labels.dtype == np.uint8 else np.clip(labels, 0, 255).astype(np.uint8)
        return self._lut[index]

    def close(self, *, abort: bool = False) -> None:
        server, self._server = self._server, None
        if server is not None:
            for channel in self._channels.values():
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - the server stops anyway
                    pass
            self._channels = {}
            server.release()


__all__ = ["FoxgloveSink", "parse_address", "DEFAULT_HOST", "DEFAULT_PORT"]
