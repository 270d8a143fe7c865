"""The capture feed: latest-frame policy, every-frame policy, reconnects, stalls."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fcn_edge.errors import SourceError
from fcn_edge.stream.feed import FrameFeed, ReconnectPolicy, default_policy
from fcn_edge.stream.frames import Frame, now
from fcn_edge.stream.sources import Source, SourceOptions, SourceSpec, create_source, parse_source
from tests.stream.mjpeg_server import MjpegServer


class FakeCamera(Source):
    """Test double for a live camera: numbered frames at ``fps``; can fail to open or hang."""

    live = True

    def __init__(self, fps: float = 200.0, frames: int | None = None, hang_after: int | None = None,
                 fail_open: bool = False) -> None:
        super().__init__(SourceSpec("webcam", "fake", "fake-camera"), SourceOptions())
        self.fps, self.frames, self.hang_after, self.fail_open = fps, frames, hang_after, fail_open
        self.released = threading.Event()
        self.closed = False

    def open(self) -> None:
        if self.fail_open:
            raise SourceError("fake camera is unplugged")

    def read(self) -> Frame | None:
        if self.frames is not None and self.index >= self.frames:
            return None
        if self.hang_after is not None and self.index >= self.hang_after:
            self.released.wait(30)  # a driver read that never returns
            return None
        time.sleep(1.0 / self.fps)
        frame = Frame(np.full((4, 4, 3), self.index % 256, np.uint8), self.index, now(), time.time())
        self.index += 1
        return frame

    def interrupt(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.closed = True


def fast_reconnect(attempts=3, stall=5.0):
    return ReconnectPolicy(max_attempts=attempts, initial_delay=0.02, max_delay=0.05, stall_timeout=stall)


def test_policy_defaults():
    assert default_policy(live=True) == "latest"
    assert default_policy(live=False) == "every"
    assert default_policy(live=True, every_frame=True) == "every"
    assert default_policy(live=False, realtime=True) == "latest"


def test_latest_policy_drops_instead_of_lagging():
    feed = FrameFeed(lambda: FakeCamera(fps=200), policy="latest", live=True, name="cam").start()
    got = []
    try:
        for _ in range(10):
            time.sleep(0.03)  # a consumer much slower than the camera
            frame = feed.get(timeout=1.0)
            assert frame is not None
            got.append(frame.index)
            # the frame handed out is (about) the newest one; a queue would fall further behind each time
            assert feed.captured - 1 - frame.index <= 5
    finally:
        feed.stop()
        feed.join()
    assert feed.dropped > 0
    assert all(b > a + 1 for a, b in zip(got, got[1:]))  # gaps: skipped frames, not a growing queue
    assert feed.captured >= got[-1] + 1


def test_every_policy_keeps_order_and_memory_bounded():
    feed = FrameFeed(lambda: FakeCamera(fps=1000, frames=30), policy="every", live=False, queue_size=3).start()
    indices = []
    while not feed.ended:
        frame = feed.get(timeout=1.0)
        if frame is not None:
            indices.append(frame.index)
            assert feed._queue.qsize() <= 3
            time.sleep(0.002)
    feed.join()
    assert indices == list(range(30))
    assert feed.dropped == 0 and feed.end_reason == "end-of-source"


def test_max_frames_on_every_policy():
    feed = FrameFeed(lambda: FakeCamera(fps=1000), policy="every", live=False, max_frames=5).start()
    indices = []
    while not feed.ended:
        frame = feed.get(timeout=1.0)
        if frame is not None:
            indices.append(frame.index)
    assert indices == list(range(5)) and feed.end_reason == "max-frames"


def test_first_open_failure_is_immediate():
    feed = FrameFeed(lambda: FakeCamera(fail_open=True), policy="latest", live=True)
    with pytest.raises(SourceError, match="unplugged"):
        feed.start()


def test_stream_that_dies_and_comes_back_reconnects(caplog):
    events = []
    with MjpegServer(frames_per_connection=4) as server:
        spec = parse_source(server.url)
        feed = FrameFeed(lambda: create_source(spec, SourceOptions(read_timeout=2.0)), policy="every", live=True,
                         reconnect=fast_reconnect(), on_event=events.append, name=server.url).start()
        frames = []
        while len(frames) < 10:
            frame = feed.get(timeout=3.0)
            assert frame is not None, [e.message for e in events]
            frames.append(frame)
        feed.stop()
        feed.join()
    assert feed.reconnects >= 2
    kinds = [e.kind for e in events]
    assert kinds[0] == "opened" and "lost" in kinds and "reconnected" in kinds
    assert "reconnected after 1 attempt" in caplog.text or any("reconnected" in e.message for e in events)


def test_gives_up_after_the_configured_attempts():
    events = []
    server = MjpegServer(frames_per_connection=2).start()
    spec = parse_source(server.url)

    def factory():
        return create_source(spec, SourceOptions(read_timeout=1.0))

    feed = FrameFeed(factory, policy="latest", live=True, reconnect=fast_reconnect(attempts=2),
                     on_event=events.append, name="cam").start()
    assert feed.get(timeout=3.0) is not None
    server.stop()  # the camera goes away for good
    deadline = time.monotonic() + 10
    while not feed.ended and time.monotonic() < deadline:
        feed.get(timeout=0.1)
    assert feed.ended and feed.end_reason == "source-lost"
    assert isinstance(feed.error, SourceError) and "2 reconnect attempt(s) failed" in str(feed.error)
    assert [e.kind for e in events].count("reconnecting") == 1 and events[-1].kind == "gave-up"


def test_reconnect_off_ends_at_the_first_loss():
    feed = FrameFeed(lambda: FakeCamera(frames=2), policy="every", live=True,
                     reconnect=ReconnectPolicy(max_attempts=0)).start()
    while not feed.ended:
        feed.get(timeout=1.0)
    assert feed.end_reason == "source-lost" and feed.reconnects == 0


def test_a_read_that_never_returns_is_detected_as_a_stall():
    cameras = []

    def factory():
        camera = FakeCamera(fps=500, hang_after=3 if not cameras else None)
        cameras.append(camera)
        return camera

    events = []
    feed = FrameFeed(factory, policy="every", live=True, reconnect=fast_reconnect(stall=0.2),
                     on_event=events.append).start()
    frames = []
    deadline = time.monotonic() + 10
    while len(frames) < 8 and time.monotonic() < deadline:
        frame = feed.get(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    feed.stop()
    feed.join()
    assert len(frames) == 8
    assert feed.stalls == 1 and feed.reconnects == 1
    assert "stalled" in [e.kind for e in events]
    assert cameras[0].released.is_set() and cameras[0].closed  # the stuck reader was unblocked and released


class HangingOpenCamera(FakeCamera):
    """A camera whose open() never returns (OpenCV's GStreamer backend waiting for a pipeline that never starts)."""

    def open(self) -> None:
        self.released.wait(30)


def test_a_reconnect_whose_open_never_returns_is_abandoned_and_retried():
    hung = HangingOpenCamera()
    cameras = iter([FakeCamera(frames=5), hung, FakeCamera()])
    policy = ReconnectPolicy(max_attempts=3, initial_delay=0.02, max_delay=0.05, stall_timeout=5.0, open_timeout=0.3)
    events = []
    feed = FrameFeed(lambda: next(cameras), policy="latest", live=True, reconnect=policy, name="cam",
                     on_event=events.append).start()
    try:
        deadline = time.monotonic() + 20
        while feed.reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        before = feed.captured
        while feed.captured <= before and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        feed.stop()
        feed.join()
        hung.released.set()
    assert feed.reconnects == 1 and feed.stalls == 1 and feed.captured > before
    assert any(e.kind == "stalled" and "reopening the source took more than 0.3 s" in e.message for e in events)
