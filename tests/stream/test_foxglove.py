"""The live Foxglove sink, checked by a client speaking the Foxglove WebSocket protocol on loopback.

The client (``websockets``) negotiates ``foxglove.websocket.v1``, reads ``serverInfo`` and
``advertise``, subscribes to every channel and decodes the binary ``messageData`` frames
(opcode 1, subscription id, log time, payload).  Image payloads are protobuf
``foxglove.CompressedImage``; the JPEG/PNG inside is found by its signature and decoded
with OpenCV to check its size.  Everything listens and connects on 127.0.0.1.
"""

from __future__ import annotations

import json
import struct
import threading
import time

import numpy as np
import pytest

pytest.importorskip("foxglove", reason="needs foxglove-sdk (pip install 'fcn-edge[robotics]')")
pytest.importorskip("rosbags", reason="needs the robotics extra (pip install 'fcn-edge[robotics]')")
websockets_sync = pytest.importorskip("websockets.sync.client", reason="needs the websockets package (dev extra)")

import cv2  # noqa: E402

from fcn_edge.errors import FcnEdgeError  # noqa: E402
from fcn_edge.stream.foxglove import FoxgloveSink, parse_address  # noqa: E402
from tests.stream.bagtools import make_frames, write_rosbags  # noqa: E402

# The protocol is foxglove.websocket.v1; foxglove-sdk 0.30 negotiates it under its newer name
# foxglove.sdk.v1 (same ops, same binary framing) and refuses a client offering only the old name.
SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


class FoxgloveClient:
    """A minimal foxglove.websocket.v1 client: advertise -> subscribe -> binary message data, on its own thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ws = None
        self.server_info = None
        self.channels: dict[int, dict] = {}
        self.messages: dict[str, list[tuple[int, bytes]]] = {}
        self._subscriptions: dict[int, str] = {}
        self.ready = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.ready.wait(10) and self.ws is not None, "could not connect"

    def _run(self) -> None:
        try:
            with websockets_sync.connect(f"ws://127.0.0.1:{self.port}", subprotocols=SUBPROTOCOLS,
                                         open_timeout=10) as ws:
                assert ws.subprotocol in SUBPROTOCOLS
                self.ws = ws
                self.ready.set()
                while True:
                    message = ws.recv()
                    if isinstance(message, str):
                        self._control(json.loads(message))
                    else:
                        self._data(message)
        except Exception:  # noqa: BLE001 - the connection closing is what ends the loop
            pass
        finally:
            self.ready.set()
            self.closed.set()

    def _control(self, message: dict) -> None:
        if message["op"] == "serverInfo":
            self.server_info = message
        elif message["op"] == "advertise":
            subscriptions = []
            for channel in message["channels"]:
                self.channels[channel["id"]] = channel
                sub_id = len(self._subscriptions) + 1
                self._subscriptions[sub_id] = channel["topic"]
                subscriptions.append({"id": sub_id, "channelId": channel["id"]})
            self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))

    def _data(self, data: bytes) -> None:
        assert data[0] == 0x01, data[:1]  # messageData
        sub_id, log_time = struct.unpack_from("<IQ", data, 1)
        self.messages.setdefault(self._subscriptions[sub_id], []).append((log_time, data[13:]))

    def topics(self) -> set:
        return {c["topic"] for c in self.channels.values()}

    def close(self) -> None:
        self.ws.close()


def image_in(payload: bytes) -> np.ndarray:
    """The JPEG or PNG carried in a protobuf CompressedImage payload, decoded."""
    starts = [i for i in (payload.find(b"\xff\xd8\xff"), payload.find(b"\x89PNG")) if i >= 0]
    assert starts, payload[:40]
    image = cv2.imdecode(np.frombuffer(payload[min(starts):], np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_parse_address():
    assert parse_address("foxglove") == ("127.0.0.1", 8765)
    assert parse_address("foxglove://127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_address("foxglove://:0") == ("127.0.0.1", 0)
    with pytest.raises(FcnEdgeError, match="out of range"):
        parse_address("foxglove://localhost:70000")


def test_stream_to_a_foxglove_client(tmp_path, tiny_onnx):
    import fcn_edge

    frames = make_frames(4, size=(48, 80))
    bag = tmp_path / "rec"
    times = write_rosbags(bag, frames)
    sink = FoxgloveSink("127.0.0.1", 0)
    sink.open()  # the runner opens it again (no-op); here the client connects before frames flow
    client = FoxgloveClient(sink.port)
    expected = {"/fcn_edge/image", "/fcn_edge/overlay", "/fcn_edge/class_mask", "/fcn_edge/class_info",
                "/fcn_edge/stats"}
    assert wait_until(lambda: client.topics() == expected), client.topics()
    assert client.server_info["name"] == "fcn-edge"
    assert wait_until(lambda: all(c.has_sinks() for c in sink._channels.values()))  # subscriptions arrived
    with fcn_edge.Segmenter.open(tiny_onnx, intra_op_threads=1) as seg:
        results = list(seg.stream(f"bag:{bag}", sinks=[sink]))
    assert len(results) == 4
    assert wait_until(lambda: all(len(client.messages.get(t, [])) == 4 for t in expected)), \
        {t: len(v) for t, v in client.messages.items()}
    assert client.closed.wait(10)  # the run ended: the server stopped and closed the connection
    for topic in ("/fcn_edge/image", "/fcn_edge/overlay", "/fcn_edge/class_mask"):
        for (log_time, payload), stamp in zip(client.messages[topic], times):
            assert log_time == stamp
            assert image_in(payload).shape[:2] == (48, 80)
    mask = image_in(client.messages["/fcn_edge/class_mask"][0][1])
    assert mask.ndim == 3  # class colours, lossless PNG: each pixel in the model's own colour for its class
    palette_bgr = np.array([(b, g, r) for r, g, b in seg.info.palette], np.uint8)
    np.testing.assert_array_equal(mask, palette_bgr[results[0].labels])
    info = [json.loads(p) for _, p in client.messages["/fcn_edge/class_info"]]
    assert [i["stamp_ns"] for i in info] == times and info[0]["width"] == 80
    stats = json.loads(client.messages["/fcn_edge/stats"][-1][1])
    assert stats["timings_ms"]["inference"] > 0
    client.close()


def test_cli_several_sources_one_server_one_channel_set_each(tmp_path, run_cli, tiny_onnx):
    """Two bags, --sink foxglove://127.0.0.1:PORT: one server, /fcn_edge/src0/... and /src1/...; it stops with the run."""
    import socket

    with socket.socket() as probe:  # a free loopback port for the run's server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bags = []
    for name in ("left", "right"):
        write_rosbags(tmp_path / name, make_frames(3))
        bags.append(f"bag:{tmp_path / name}")
    done = run_cli("run", tiny_onnx, "--source", bags[0], "--source", bags[1], "--sink", f"foxglove://127.0.0.1:{port}",
                   "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert f"ws://127.0.0.1:{port}" in done.stderr
    assert done.stderr.count("open ws://") == 1  # one server for both sources
    with socket.socket() as again:  # stopped with the run: the port is free
        again.bind(("127.0.0.1", port))


def test_several_sources_get_their_own_channels(tmp_path):
    base = FoxgloveSink("127.0.0.1", 0)
    first, second = base.for_source(0), base.for_source(1)
    first.open()
    try:
        second.open()  # port 0 (any free port): still one server for the sources of one run
        assert second._server is first._server
        client = FoxgloveClient(first.port)
        assert wait_until(lambda: len(client.topics()) == 10)
        assert {"/fcn_edge/src0/image", "/fcn_edge/src1/class_mask"} <= client.topics()
        client.close()
    finally:
        second.close()
        first.close()


def test_class_mask_uses_the_models_palette_not_vocs():
    """A model with its own colours gets them in Foxglove; classes past the palette's end fall back to VOC's."""
    from fcn_edge.artifacts.modelinfo import voc_palette

    palette = [(10, 20, 30), (200, 100, 50)]
    labels = np.array([[0, 1], [1, 2]], np.uint8)
    mask = FoxgloveSink("127.0.0.1", 0)._colorize(labels, palette)
    r, g, b = voc_palette(3)[2]
    np.testing.assert_array_equal(mask, [[(30, 20, 10), (50, 100, 200)], [(50, 100, 200), (b, g, r)]])


def test_results_carry_the_models_palette(tmp_path, tiny_onnx):
    """The runner hands every sink the model's palette with each result (what _colorize above receives)."""
    from fcn_edge.runtime import open_runner
    from fcn_edge.stream import CallbackSink, RunConfig, StreamRunner, parse_source

    bag = tmp_path / "rec"
    write_rosbags(bag, make_frames(2, size=(48, 80)))
    seen = []
    with open_runner(tiny_onnx) as runner:
        StreamRunner(runner, parse_source(f"bag:{bag}"), config=RunConfig(warmup=0),
                     sinks=[CallbackSink(lambda result, rendered: seen.append(result))]).run()
        palette = runner.info.palette
    assert len(seen) == 2 and all(r.palette == palette for r in seen)
