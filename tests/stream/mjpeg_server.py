"""A test MJPEG server on 127.0.0.1 (real HTTP, real sockets) that can die, stall and come back."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time

import cv2
import numpy as np


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class MjpegServer:
    """Serves ``/stream.mjpg`` (multipart/x-mixed-replace) and ``/snapshot.jpg``.

    ``frames_per_connection``: close each connection after that many frames (the stream
    "dies" and a reconnect gets a fresh one); ``stall_after``: after that many frames
    keep the connection open but send nothing; ``garbage_after``: after that many frames
    send parts that are not images (random bytes labelled image/jpeg) until the client
    goes; ``fps``: pace of the frames.

    Like FFmpeg's own HTTP output and many single-client cameras: ``content_type`` (e.g.
    ``application/octet-stream`` instead of multipart), ``chunked`` (HTTP/1.1 chunked
    transfer) and ``single_client`` (while one stream connection is open, any other
    request gets 503; ``refused`` counts them).  ``bare_jpeg``: JPEGs back to back, no
    multipart framing (FFmpeg's ``-f mjpeg``).  The stream is also served as ``/cam``.
    """

    def __init__(self, *, fps: float = 100.0, size=(48, 64), frames_per_connection: int | None = None,
                 stall_after: int | None = None, content_length: bool = True, boundary: str = "frame",
                 line_end: bytes = b"\r\n", garbage_after: int | None = None, content_type: str | None = None,
                 chunked: bool = False, single_client: bool = False, bare_jpeg: bool = False) -> None:
        self.fps = fps
        self.size = size
        self.frames_per_connection = frames_per_connection
        self.stall_after = stall_after
        self.garbage_after = garbage_after
        self.garbage_sent = 0
        self.content_length = content_length
        self.boundary = boundary
        self.line_end = line_end
        self.content_type = content_type
        self.chunked = chunked
        self.single_client = single_client
        self.bare_jpeg = bare_jpeg
        self.streaming = 0
        self.refused = 0
        self._lock = threading.Lock()
        self.port = 0
        self.connections = 0
        self.frames_sent = 0
        self._server: _Server | None = None
        self._closing = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    @property
    def cam_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam"

    @property
    def snapshot_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/snapshot.jpg"

    def jpeg(self, index: int) -> bytes:
        h, w = self.size
        image = np.full((h, w, 3), 40, np.uint8)
        image[:, (index * 3) % w] = 255
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        return data.tobytes()

    def start(self) -> "MjpegServer":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if owner.chunked else "HTTP/1.0"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                owner.connections += 1
                if self.path.startswith("/snapshot"):
                    body = owner.jpeg(owner.frames_sent)
                    owner.frames_sent += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if not self.path.startswith(("/stream", "/cam")):
                    self.send_error(404, "no such stream")
                    return
                with owner._lock:
                    busy = owner.single_client and owner.streaming > 0
                    if busy:
                        owner.refused += 1
                    else:
                        owner.streaming += 1
                if busy:
                    self.send_error(503, "another client is connected")
                    return
                try:
                    self._stream()
                finally:
                    with owner._lock:
                        owner.streaming -= 1

            def _write(self, data: bytes) -> None:
                if owner.chunked:
                    data = b"%x\r\n" % len(data) + data + b"\r\n"
                self.wfile.write(data)
                self.wfile.flush()

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", owner.content_type
                                 or f"multipart/x-mixed-replace; boundary={owner.boundary}")
                if owner.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                eol = owner.line_end
                try:
                    while not owner._closing.is_set():
                        if owner.frames_per_connection is not None and sent >= owner.frames_per_connection:
                            break
                        if owner.stall_after is not None and sent >= owner.stall_after:
                            owner._closing.wait(30)
                            return
                        if owner.garbage_after is not None and sent >= owner.garbage_after:
                            body = np.random.default_rng(owner.garbage_sent).integers(
                                0, 256, 700, dtype=np.uint8).tobytes()
                            owner.garbage_sent += 1
                        else:
                            body = owner.jpeg(owner.frames_sent)
                        if owner.bare_jpeg:
                            self._write(body)
                        else:
                            head = b"--" + owner.boundary.encode() + eol + b"Content-Type: image/jpeg" + eol
                            if owner.content_length:
                                head += b"Content-Length: " + str(len(body)).encode() + eol
                            self._write(head + eol + body + eol)
                        sent += 1
                        owner.frames_sent += 1
                        time.sleep(1.0 / owner.fps)
                    if owner.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._closing.clear()
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """The camera goes away: open connections end, new ones are refused."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
