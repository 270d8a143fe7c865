"""HTTP(S) sources: MJPEG read directly, everything else handed to FFmpeg.

Most IP cameras, ESP32 boards and robot web UIs serve MJPEG as
``multipart/x-mixed-replace``: a never-ending HTTP response of JPEG parts.  Reading it
here (urllib + a small multipart parser + ``cv2.imdecode``) rather than through
FFmpeg gives a socket timeout that detects a stalled camera exactly, works with an
OpenCV built without FFmpeg (a Jetson's GStreamer-only build), and tolerates the usual
server quirks (boundary with or without leading dashes, parts with or without
Content-Length, bare ``\\n`` line ends).  A URL answering with a single image is polled
as a snapshot camera; any other content (MPEG-TS, HLS, FLV, ...) goes to FFmpeg.

What a stream is comes from the connection already open, never from a second one:
many cameras (and FFmpeg's own HTTP output) allow one client at a time, so a probe
connection would lock out the real one.  When the Content-Type does not say (FFmpeg
sends ``application/octet-stream`` with chunked transfer), the first bytes of the body
do (:func:`sniff_stream`): a multipart boundary line followed by image part headers,
or JPEGs back to back.  Only a stream that is neither goes to FFmpeg, which opens its
own connection after this one is closed.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from fcn_edge.errors import SourceError
from fcn_edge.stream.frames import Frame, now
from fcn_edge.stream.sources import BadFrame, CaptureSource, Source, SourceOptions, SourceSpec, cv2_module

log = logging.getLogger(__name__)

_HEADER_ENDS = (b"\r\n\r\n", b"\n\n")


class _BufferedStream:
    """A byte buffer filled from a file-like HTTP response; ``initial``: bytes already read (sniffed)."""

    def __init__(self, stream: Any, initial: bytes = b"", chunk_size: int = 65536,
                 max_part_bytes: int = 64 << 20) -> None:
        self.stream = stream
        self.buffer = bytearray(initial)
        self.chunk_size = chunk_size
        self.max_part_bytes = max_part_bytes

    def _fill(self) -> None:
        reader = getattr(self.stream, "read1", None)
        chunk = reader(self.chunk_size) if reader else self.stream.read(4096)
        if not chunk:
            raise EOFError("the stream ended")
        self.buffer += chunk
        if len(self.buffer) > self.max_part_bytes:
            raise ValueError(f"no multipart boundary within {self.max_part_bytes} bytes: not an MJPEG stream")

    def _find(self, needle: bytes, start: int = 0) -> int:
        while True:
            index = self.buffer.find(needle, start)
            if index >= 0:
                return index
            start = max(0, len(self.buffer) - len(needle))
            self._fill()


class MultipartReader(_BufferedStream):
    """Yields the bodies of a multipart stream one by one (``next_part``); EOFError at the end."""

    def __init__(self, stream: Any, boundary: str, chunk_size: int = 65536, max_part_bytes: int = 64 << 20,
                 initial: bytes = b"") -> None:
        super().__init__(stream, initial, chunk_size, max_part_bytes)
        self.delimiter = b"--" + boundary.strip().strip('"').lstrip("-").encode("latin-1")

    def next_part(self) -> tuple[dict[str, str], bytes]:
        start = self._find(self.delimiter)
        del self.buffer[: start + len(self.delimiter)]
        while True:
            ends = [(self.buffer.find(marker), marker) for marker in _HEADER_ENDS]
            ends = [(i, m) for i, m in ends if i >= 0]
            if ends:
                index, marker = min(ends)
                break
            self._fill()
        headers: dict[str, str] = {}
        for line in bytes(self.buffer[:index]).decode("latin-1").splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        del self.buffer[: index + len(marker)]
        length = headers.get("content-length")
        if length and length.isdigit():
            size = int(length)
            while len(self.buffer) < size:
                self._fill()
            body = bytes(self.buffer[:size])
            del self.buffer[:size]
        else:
            end = self._find(self.delimiter)
            body = bytes(self.buffer[:end]).rstrip(b"\r\n")
            del self.buffer[:end]
        return headers, body


class JpegStreamReader(_BufferedStream):
    """JPEGs back to back without multipart framing (FFmpeg's ``-f mjpeg`` output).

    A part runs from a start-of-image marker to the next end-of-image marker (entropy-
    coded data never contains one: 0xFF bytes there are stuffed).
    """

    def next_part(self) -> tuple[dict[str, str], bytes]:
        start = self._find(_JPEG_START)
        del self.buffer[:start]
        end = self._find(_JPEG_END, len(_JPEG_START))
        size = end + len(_JPEG_END)
        with memoryview(self.buffer) as view:  # one copy of the JPEG, not a slice and then a copy of it
            body = bytes(view[:size])
        del self.buffer[:size]
        return {}, body


_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_SNIFF_LIMIT = 16 << 10
# Content types that say "a video container": FFmpeg without looking at the body.
_CONTAINER_TYPES = ("video/", "application/vnd.apple.mpegurl", "application/x-mpegurl", "application/dash+xml")


def sniff_stream(prefix: bytes) -> tuple[str, str | None]:
    """What the first bytes of a body say: ``("multipart", boundary)``, ``("jpeg", None)``,
    ``("unknown", None)``, or ``("more", None)`` when it cannot tell yet."""
    head = bytes(prefix).lstrip(b"\r\n \t")
    if len(head) < 3:
        return ("more", None) if len(prefix) < _SNIFF_LIMIT else ("unknown", None)
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", None
    if not head.startswith(b"--"):
        return "unknown", None
    line_end = head.find(b"\n")
    header_end = min((i for i in (head.find(b"\r\n\r\n", line_end), head.find(b"\n\n", line_end)) if i >= 0),
                     default=-1) if line_end >= 0 else -1
    if header_end < 0:
        return ("more", None) if len(prefix) < _SNIFF_LIMIT else ("unknown", None)
    boundary = head[2:line_end].strip().decode("latin-1")
    headers = head[line_end:header_end].decode("latin-1")
    is_image = re.search(r"^\s*content-type:\s*image/", headers, flags=re.IGNORECASE | re.MULTILINE)
    after = head[header_end:].lstrip(b"\r\n")
    if boundary and " " not in boundary and (is_image or after.startswith(b"\xff\xd8")):
        return "multipart", boundary
    return "unknown", None


def read_prefix(response: Any) -> bytes:
    """The first bytes of an open response, just enough for :func:`sniff_stream` to decide."""
    data = bytearray()
    reader = getattr(response, "read1", None)
    while len(data) < _SNIFF_LIMIT and sniff_stream(data)[0] == "more":
        chunk = reader(_SNIFF_LIMIT - len(data)) if reader else response.read(min(4096, _SNIFF_LIMIT - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _boundary(content_type: str) -> str | None:
    match = re.search(r"boundary=([^;]+)", content_type, flags=re.IGNORECASE)
    return match.group(1).strip().strip('"') if match else None


class HttpSource(Source):
    """``http(s)://`` source: MJPEG, snapshot polling, or FFmpeg for other stream formats."""

    def __init__(self, spec: SourceSpec, options: SourceOptions, source_id: int = 0) -> None:
        super().__init__(spec, options, source_id)
        self.live = True
        self.mode = "unopened"
        self._response = None
        self._reader: MultipartReader | None = None
        self._ffmpeg: CaptureSource | None = None
        self._pending_snapshot: bytes | None = None
        self._last_poll = 0.0

    def _request(self):
        request = urllib.request.Request(self.spec.target, headers={"User-Agent": "fcn-edge"})
        try:
            return urllib.request.urlopen(request, timeout=self.options.read_timeout)  # noqa: S310 - user-given URL
        except urllib.error.HTTPError as exc:
            raise SourceError(f"cannot open {self.name}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"cannot open {self.name}: {reason}") from exc

    def open(self) -> None:
        response = self._request()
        content_type = response.headers.get("Content-Type", "") or ""
        lowered = content_type.lower()
        if lowered.startswith("multipart/"):
            boundary = _boundary(content_type)
            if not boundary:
                response.close()
                raise SourceError(f"{self.name} sends {content_type} without a boundary: not a readable MJPEG stream")
            self._read_parts(response, MultipartReader(response, boundary), "mjpeg")
        elif lowered.startswith("image/"):
            self._open_snapshot(response)
        elif lowered.startswith(_CONTAINER_TYPES):
            self._open_ffmpeg(response)
        else:
            self._open_sniffed(response, content_type)
        log.debug("%s: %s (%s)", self.name, self.mode, content_type or "no content type")

    def _read_parts(self, response: Any, reader: Any, mode: str) -> None:
        self._response = response
        self._reader = reader
        self.mode = mode

    def _open_snapshot(self, response: Any) -> None:
        try:
            self._pending_snapshot = response.read()
        except OSError as exc:
            raise SourceError(f"cannot read {self.name}: {exc}") from exc
        finally:
            response.close()
        self.mode = "snapshot"

    def _open_sniffed(self, response: Any, content_type: str) -> None:
        """A content type that does not say what the body is: the body of this connection does."""
        try:
            prefix = read_prefix(response)
        except OSError as exc:
            response.close()
            raise SourceError(f"cannot read {self.name}: {exc}") from exc
        kind, boundary = sniff_stream(prefix)
        if kind == "multipart" and boundary:
            self._read_parts(response, MultipartReader(response, boundary, initial=prefix), "mjpeg")
        elif kind == "jpeg":
            self._read_parts(response, JpegStreamReader(response, initial=prefix), "jpeg-stream")
        elif not prefix:
            response.close()
            raise SourceError(f"cannot read {self.name}: it answered {content_type or 'with no content type'} "
                              "and sent no data")
        else:
            self._open_ffmpeg(response)

    def _open_ffmpeg(self, response: Any) -> None:
        """Not MJPEG: FFmpeg opens the URL itself, after this connection is closed."""
        response.close()
        self._ffmpeg = CaptureSource(self.spec, self.options, self.source_id)
        self._ffmpeg.index = self.index
        self._ffmpeg.open()
        self.fps = self._ffmpeg.fps
        self.mode = "ffmpeg"

    def read(self) -> Frame | None:
        if self.mode == "ffmpeg" and self._ffmpeg is not None:
            frame = self._ffmpeg.read()
            self.index = self._ffmpeg.index
            return frame
        cv2 = cv2_module()
        try:
            if self.mode in ("mjpeg", "jpeg-stream") and self._reader is not None:
                _, body = self._reader.next_part()
            elif self.mode == "snapshot":
                if self._pending_snapshot is not None:
                    body, self._pending_snapshot = self._pending_snapshot, None
                else:
                    # poll no faster than --fps (default 10/s): snapshot endpoints are slow and shared
                    interval = 1.0 / (self.options.fps or 10.0)
                    wait = self._last_poll + interval - now()
                    if wait > 0:
                        time.sleep(wait)
                    with self._request() as response:
                        body = response.read()
                self._last_poll = now()
            else:
                return None
        except (EOFError, OSError, ValueError, SourceError) as exc:
            log.debug("%s: read failed: %s", self.name, exc)
            return None
        arrived, wall = now(), time.time()
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        if image is None:  # the stream goes on; the feed skips it and counts it (BadFrame)
            raise BadFrame(f"a {'part' if self.mode != 'snapshot' else 'snapshot'} of {len(body)} bytes is not a "
                           "decodable image")
        return self._frame(image, arrived, wall, (now() - arrived) * 1000.0)

    def interrupt(self) -> None:
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: BLE001 - closing from another thread is best effort
                pass

    def close(self) -> None:
        if self._response is not None:
            response, self._response = self._response, None
            try:
                response.close()
            except Exception:  # noqa: BLE001
                pass
        if self._ffmpeg is not None:
            self._ffmpeg.close()
            self._ffmpeg = None
        self._reader = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "http_mode": self.mode}


__all__ = ["HttpSource", "JpegStreamReader", "MultipartReader", "SourceOptions", "sniff_stream"]
