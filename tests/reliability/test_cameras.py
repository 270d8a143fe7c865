"""Cameras that stop, stall or send garbage, cycle after cycle, under the streaming runner.

The runner's policy (fcn_edge/stream/feed.py): a live source that ends or errors is
reopened with backoff; one silent for ``stall_timeout`` is reopened; unusable frames
(undecodable, None, empty, wrong shape or type) are skipped and counted, and
``bad_frame_limit`` of them in a row count as a loss (reopened).  Each scenario runs
several such cycles in a row, then checks the counts, that results kept coming, and
that the process is back to its thread and file-descriptor baseline once the runner
stopped (memory over 20,000 frames is benchmarks/soak_runner.py's job).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from fcn_edge.stream import ReconnectPolicy, RunConfig, SourceOptions, StreamRunner
from fcn_edge.stream.feed import FrameFeed
from fcn_edge.stream.frames import Frame, now
from fcn_edge.stream.sources import Source, SourceSpec
from tests.stream.mjpeg_server import MjpegServer

CYCLES = 4
BAD_LIMIT = 5


def fast_policy(**changes) -> ReconnectPolicy:
    values = dict(max_attempts=5, initial_delay=0.02, max_delay=0.05, stall_timeout=0.6, bad_frame_limit=BAD_LIMIT)
    values.update(changes)
    return ReconnectPolicy(**values)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def python_threads(*, server: bool = True) -> list[str]:
    """Names of the live Python threads (``server=False``: without the test server's per-connection handlers)."""
    return sorted(t.name for t in threading.enumerate() if server or "process_request_thread" not in t.name)


def wait_for_baseline(threads: list[str], fds: int, timeout: float = 20.0, *, server: bool = True) -> None:
    """Threads end and sockets close asynchronously after stop(): allow them a moment, then insist."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if python_threads(server=server) == threads and open_fds() <= fds:
            return
        time.sleep(0.05)
    assert python_threads(server=server) == threads, "threads left running after the runner stopped"
    assert open_fds() <= fds, f"file descriptors leaked: {open_fds()} open, {fds} before"


@pytest.fixture(scope="module")
def ort_runner(tiny_onnx):
    from fcn_edge.runtime import open_runner

    runner = open_runner(tiny_onnx, intra_op_threads=1)
    yield runner
    runner.close()


def run_stream(runner, source, *, frames: int, policy: ReconnectPolicy, every_frame: bool | None = None):
    events = []
    stream = StreamRunner(runner, source, source_options=SourceOptions(read_timeout=policy.stall_timeout),
                          config=RunConfig(max_frames=frames, reconnect=policy, warmup=0, every_frame=every_frame),
                          on_event=events.append)
    results = list(stream.results())
    return stream, results, events


def warm_up(runner, url: str) -> None:
    """OpenCV, ONNX Runtime and urllib start their pools/caches on first use: not a leak, so before the baseline."""
    run_stream(runner, url, frames=3, policy=fast_policy())


# ---------------------------------------------------------------------------- a real HTTP camera
@pytest.mark.parametrize("misbehaviour", ["stops", "stalls", "garbage"])
def test_misbehaving_mjpeg_camera_is_survived_cycle_after_cycle(ort_runner, misbehaviour):
    good = 3
    options = {"stops": {"frames_per_connection": good}, "stalls": {"stall_after": good},
               "garbage": {"garbage_after": good}}[misbehaviour]
    threads, fds = python_threads(), open_fds()
    with MjpegServer(fps=200, **options) as server:
        warm_up(ort_runner, server.url)
        client_threads = python_threads(server=False)
        stream, results, events = run_stream(ort_runner, server.url, frames=good * CYCLES + 1, policy=fast_policy(),
                                             every_frame=True)
        assert len(results) == good * CYCLES + 1 and stream.stats.stop_reason == "max-frames"
        kinds = [e.kind for e in events]
        assert stream.stats.reconnects >= CYCLES and kinds.count("reconnected") >= CYCLES, kinds
        if misbehaviour == "stalls":
            assert kinds.count("lost") + kinds.count("stalled") >= CYCLES
        if misbehaviour == "garbage":
            assert stream.stats.frames_bad >= CYCLES * BAD_LIMIT
            assert kinds.count("bad-frame") >= CYCLES  # said once per run of garbage, not once per frame
            assert stream.stats.to_dict()["bad_frames"] == stream.stats.frames_bad
        # the runner's own threads are gone while the camera is still up (its stalled handlers keep their
        # sockets for 30 s, so descriptors are compared once the server is down)
        wait_for_baseline(client_threads, 10 ** 6, server=False)
    wait_for_baseline(threads, fds)


# ---------------------------------------------------------------------------- garbage of every kind
GARBAGE = {
    "none": lambda: None,
    "empty": lambda: np.zeros((0, 0, 3), np.uint8),
    "two channels": lambda: np.zeros((8, 8, 2), np.uint8),
    "rank 4": lambda: np.zeros((1, 8, 8, 3), np.uint8),
    "float": lambda: np.random.default_rng(0).random((8, 8, 3)),
    "int64": lambda: np.ones((8, 8, 3), np.int64),
    "not an array": lambda: "a frame",
    "zero width": lambda: np.zeros((8, 0, 3), np.uint8),
}


class GarbageCamera(Source):
    """Test double for a live camera whose driver hands over ``bad`` garbage images after ``good`` real ones.

    Garbage goes through the same path as a real capture (``Source._frame``), except
    "not a frame", which a custom Source could return from read() itself.
    """

    live = True

    def __init__(self, kind: str, good: int = 3, bad: int = BAD_LIMIT) -> None:
        super().__init__(SourceSpec("webcam", "garbage", "garbage-camera"), SourceOptions())
        self.kind, self.good, self.bad = kind, good, bad
        self.opened = self.closed = False

    def open(self) -> None:
        self.opened = True

    def read(self):
        time.sleep(0.002)
        if self.index < self.good:
            return self._frame(np.full((8, 8, 3), 100, np.uint8), now(), time.time(), 0.0)
        if self.kind == "not a frame":
            self.index += 1
            return {"image": "nonsense"}
        self.index += 1  # _frame refuses the garbage before counting it
        return self._frame(GARBAGE[self.kind](), now(), time.time(), 0.0)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("kind", list(GARBAGE) + ["not a frame"])
def test_garbage_frames_are_skipped_and_a_garbage_stream_reopened(kind):
    cameras = []

    def factory():
        cameras.append(GarbageCamera(kind))
        return cameras[-1]

    events = []
    threads, fds = python_threads(), open_fds()
    feed = FrameFeed(factory, policy="every", live=True, reconnect=fast_policy(), on_event=events.append).start()
    frames = []
    deadline = time.monotonic() + 30
    while len(frames) < 3 * CYCLES and time.monotonic() < deadline:
        frame = feed.get(timeout=0.5)
        if frame is not None:
            frames.append(frame)
    feed.stop()
    feed.join()
    assert len(frames) == 3 * CYCLES, [e.message for e in events]
    assert all(isinstance(f, Frame) and f.image.shape == (8, 8, 3) and f.image.dtype == np.uint8 for f in frames)
    assert feed.bad_frames >= (CYCLES - 1) * BAD_LIMIT and feed.reconnects >= CYCLES - 1
    assert all(c.closed for c in cameras[:-1])  # every abandoned camera was released
    assert feed.end_reason == "stopped" and feed.error is None
    wait_for_baseline(threads, fds)


def test_a_garbage_file_ends_the_run_with_an_error(ort_runner, tmp_path, monkeypatch):
    """Files are not reopened: bad_frame_limit unusable frames in a row end the run, saying why (exit non-zero)."""
    from fcn_edge.errors import SourceError
    from fcn_edge.stream import runner as runner_module

    class GarbageFile(GarbageCamera):
        live = False

    monkeypatch.setattr(runner_module, "create_source", lambda spec, options, source_id=0: GarbageFile("empty"))
    image = tmp_path / "frame.png"
    image.write_bytes(b"placeholder: the test double replaces the source")
    stream = StreamRunner(ort_runner, str(image),
                          config=RunConfig(reconnect=fast_policy(), warmup=0))
    with pytest.raises(SourceError, match=f"{BAD_LIMIT} unusable frames in a row"):
        list(stream.results())
    assert stream.stats.frames_processed == 3 and stream.stats.frames_bad == BAD_LIMIT


def test_a_crashing_capture_fails_the_run_instead_of_ending_it_quietly(ort_runner, tmp_path, monkeypatch):
    """Before: a capture thread that raised made the run end 'normally' (exit 0, half the video)."""
    from fcn_edge.errors import SourceError
    from fcn_edge.stream import runner as runner_module

    class CrashingCamera(GarbageCamera):
        def read(self):
            if self.index >= 2:
                raise RuntimeError("driver exploded")
            return super().read()

    monkeypatch.setattr(runner_module, "create_source", lambda spec, options, source_id=0: CrashingCamera("none"))
    stream = StreamRunner(ort_runner, "0", config=RunConfig(reconnect=fast_policy(), warmup=0))
    with pytest.raises(SourceError, match="capture failed.*driver exploded"):
        list(stream.results())
    assert stream.stats.stop_reason == "end-of-source" or stream.stats.error


def test_stream_events_stay_bounded():
    from fcn_edge.stream.stats import MAX_EVENTS, StreamStats

    stats = StreamStats()
    for i in range(MAX_EVENTS * 3):
        stats.events.append({"kind": "reconnected", "i": i})
    assert len(stats.events) == MAX_EVENTS and len(stats.to_dict()["events"]) == 100
    assert stats.to_dict()["events"][-1]["i"] == MAX_EVENTS * 3 - 1
