"""HTTP sources against a real MJPEG server thread on 127.0.0.1."""

from __future__ import annotations

import io

import pytest

from fcn_edge.errors import SourceError
from fcn_edge.stream.mjpeg import MultipartReader
from fcn_edge.stream.sources import SourceOptions, open_source
from tests.onnx_models import write_video
from tests.stream.mjpeg_server import MjpegServer


def multipart(parts, boundary=b"frame", eol=b"\r\n", lengths=True, preamble=b""):
    out = preamble
    for body in parts:
        out += b"--" + boundary + eol + b"Content-Type: image/jpeg" + eol
        if lengths:
            out += b"Content-Length: " + str(len(body)).encode() + eol
        out += eol + body + eol
    return out


@pytest.mark.parametrize("boundary_param, eol, lengths", [
    ("frame", b"\r\n", True),
    ("frame", b"\r\n", False),
    ("--frame", b"\n", False),    # boundary given with its dashes, bare newlines
    ('"frame"', b"\n", True),
])
def test_multipart_parser_tolerates_server_quirks(boundary_param, eol, lengths):
    parts = [b"\xff\xd8first\r\n--fr\xff\xd9", b"\xff\xd8second\xff\xd9", b"\xff\xd8third\xff\xd9"]
    data = multipart(parts, eol=eol, lengths=lengths, preamble=b"junk before the first part" + eol)
    reader = MultipartReader(io.BufferedReader(io.BytesIO(data), buffer_size=7), boundary_param, chunk_size=5)
    got = [reader.next_part()[1] for _ in range(2)]
    assert got == parts[:2]
    if lengths:
        assert reader.next_part()[1] == parts[2]
    else:  # without lengths a part ends at the next boundary, so the last one is only known at the end
        with pytest.raises(EOFError):
            reader.next_part()


def test_reads_an_mjpeg_stream():
    with MjpegServer(size=(48, 64)) as server:
        source = open_source(server.url, SourceOptions(read_timeout=2.0))
        assert source.live and source.mode == "mjpeg"
        frames = [source.read() for _ in range(5)]
        source.close()
    assert all(f is not None and f.image.shape == (48, 64, 3) for f in frames)
    assert [f.index for f in frames] == list(range(5))


def test_stream_end_and_stall_make_read_return_none():
    with MjpegServer(frames_per_connection=3) as server:
        source = open_source(server.url, SourceOptions(read_timeout=2.0))
        assert [source.read() is not None for _ in range(4)] == [True, True, True, False]
        source.close()
    with MjpegServer(stall_after=2) as server:
        source = open_source(server.url, SourceOptions(read_timeout=0.3))
        assert [source.read() is not None for _ in range(3)] == [True, True, False]
        source.close()


def test_snapshot_urls_are_polled():
    with MjpegServer() as server:
        source = open_source(server.snapshot_url, SourceOptions(read_timeout=2.0))
        assert source.mode == "snapshot"
        frames = [source.read() for _ in range(3)]
        source.close()
        assert all(f is not None for f in frames) and server.connections == 3


def test_http_errors_are_one_line():
    with MjpegServer() as server:
        with pytest.raises(SourceError, match="HTTP 404"):
            open_source(f"http://127.0.0.1:{server.port}/missing")
    with pytest.raises(SourceError, match="cannot open http://127.0.0.1:9/"):
        open_source("http://127.0.0.1:9/stream", SourceOptions(read_timeout=1.0))


def test_other_http_content_goes_to_ffmpeg(tmp_path):
    """A plain video file served over HTTP is decoded by FFmpeg through OpenCV."""
    import http.server
    import socketserver
    import threading
    from functools import partial

    write_video(tmp_path / "clip.avi", 6, size=(48, 64))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_address[1]}/clip.avi", SourceOptions(read_timeout=3.0))
        assert source.mode == "ffmpeg"
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        source.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(frames) == 6


@pytest.mark.parametrize("bare_jpeg", [False, True])
def test_octet_stream_mjpeg_from_a_single_client_server_uses_the_one_connection(bare_jpeg):
    """FFmpeg's HTTP output and one-client cameras: no multipart Content-Type, chunked, one connection.

    The body of the connection already open says what the stream is; a probe connection
    would be refused (503) while the first one is still open.
    """
    with MjpegServer(size=(48, 64), content_type="application/octet-stream", chunked=True, single_client=True,
                     bare_jpeg=bare_jpeg) as server:
        source = open_source(server.cam_url, SourceOptions(read_timeout=2.0))
        assert source.mode == ("jpeg-stream" if bare_jpeg else "mjpeg")
        frames = [source.read() for _ in range(5)]
        source.close()
        assert server.connections == 1 and server.refused == 0
    assert all(f is not None and f.image.shape == (48, 64, 3) for f in frames)
    assert [f.index for f in frames] == list(range(5))


@pytest.mark.parametrize("prefix, expected", [
    (b"--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: 5\r\n\r\n\xff\xd8\xff", ("multipart", "ffmpeg")),
    (b"\r\n--frame\nContent-Type: image/jpeg\n\n\xff\xd8", ("multipart", "frame")),
    (b"--b\r\nX-Other: 1\r\n\r\n\xff\xd8\xff\xe0", ("multipart", "b")),    # no part Content-Type: the JPEG says it
    (b"--b\r\nContent-Type: text/plain\r\n\r\nhello", ("unknown", None)),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", ("jpeg", None)),
    (b"\x47\x40\x00\x10", ("unknown", None)),                             # MPEG-TS: FFmpeg's
    (b"--frame\r\nContent-Type: ima", ("more", None)),
    (b"", ("more", None)),
])
def test_sniffing_the_body(prefix, expected):
    from fcn_edge.stream.mjpeg import sniff_stream

    assert sniff_stream(prefix) == expected
