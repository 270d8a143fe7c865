"""A source on its own capture thread, with a frame policy, reconnects and a stall watchdog.

Policies:

``latest``
    For live cameras.  The capture thread keeps only the newest frame; if inference has
    not taken the previous one yet, that one is *dropped* (counted).  Inference always
    works on the freshest image, so the runner never builds up lag behind the camera.
``every``
    For files and image sets.  Frames wait in a small bounded queue; the capture thread
    blocks when it is full, so every frame is processed, in order, and memory stays flat.

Unusable frames (None, empty, wrong shape or type, undecodable) are skipped and
counted (``bad_frames``); ``ReconnectPolicy.bad_frame_limit`` of them in a row count as
a lost source: a live one is reopened like any other loss, a file ends with an error.

Live sources that fail (read error, end of stream) or stall (no frame for
``stall_timeout`` seconds, even if the read call never returns; a reopen that has not
returned after ``open_timeout`` seconds is abandoned and tried again) are reopened with
exponential backoff, ``max_attempts`` times per loss (``None``: forever); each event is
logged and passed to ``on_event``.  Files that end finish the feed cleanly.  The first
open happens in :meth:`FrameFeed.start`, in the caller's thread, so a wrong device or
URL fails immediately with one sentence rather than after retries.

The feed exposes ``get(timeout)``, ``has_frame()`` and ``ended`` so a consumer can
multiplex several feeds (one runner batching several cameras); ``on_frame`` is called
(on the capture thread) each time a frame becomes available, so such a consumer can
sleep on one condition instead of polling every feed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from fcn_edge.errors import FcnEdgeError, SourceError
from fcn_edge.stream.frames import Frame, StreamEvent, now
from fcn_edge.stream.sources import BadFrame, Source, check_frame

log = logging.getLogger(__name__)

POLICIES = ("latest", "every")


@dataclass
class ReconnectPolicy:
    """How a lost live source is reopened.  ``max_attempts=None`` retries forever; 0 never."""

    max_attempts: int | None = 10
    initial_delay: float = 0.5
    max_delay: float = 10.0
    factor: float = 2.0
    stall_timeout: float = 5.0
    # Unusable frames (None, empty, wrong shape/type, undecodable) are skipped and counted; this
    # many in a row means the source is broken: a live one is reopened, a file ends with an error.
    bad_frame_limit: int = 25
    # A reconnect whose open() has not returned after this many seconds is abandoned and
    # retried on a fresh worker (OpenCV's GStreamer backend waits without a limit for a
    # pipeline to start).  Longer than the sources' own open timeouts (10 s).
    open_timeout: float = 20.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        return min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))

    def exhausted(self, attempts: int) -> bool:
        return self.max_attempts is not None and attempts >= self.max_attempts


class FrameFeed:
    """Runs ``source_factory()`` sources on a capture thread and hands frames out by policy."""

    def __init__(self, source_factory: Callable[[], Source], *, policy: str, live: bool,
                 reconnect: ReconnectPolicy | None = None, queue_size: int = 4,
                 prepare: Callable[[Frame], None] | None = None,
                 on_event: Callable[[StreamEvent], None] | None = None,
                 realtime: bool = False, pace_fps: float | None = None, max_frames: int | None = None,
                 name: str = "source", source_id: int = 0,
                 on_frame: Callable[[], None] | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self._factory = source_factory
        self.policy = policy
        self.live = live
        self.reconnect = reconnect or ReconnectPolicy()
        self._prepare = prepare
        self._on_event = on_event
        self.realtime = realtime
        self.pace_fps = pace_fps
        self.max_frames = max_frames
        self.name = name
        self.source_id = source_id
        self.on_frame = on_frame

        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._finished = False  # no more frames will be produced
        self._generation = 0
        self._reading_since: float | None = None
        self._opening_since: float | None = None  # a reconnect's open() in progress (watched too)
        self._source: Source | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None

        self.captured = 0
        self.dropped = 0
        self.reconnects = 0
        self.stalls = 0
        self.bad_frames = 0
        self._bad_in_row = 0
        self.failed_attempts = 0
        self.end_reason: str | None = None
        self.error: Exception | None = None
        self.events: deque[StreamEvent] = deque(maxlen=200)
        self.source_info: dict = {}

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "FrameFeed":
        source = self._factory()
        source.open()  # SourceError goes straight to the caller
        self._source = source
        self.source_info = source.describe()
        if getattr(source, "paced", False):  # the source keeps its own (recorded) timing, e.g. a bag
            self.pace_fps = None
        elif self.realtime and not self.pace_fps:  # a file read as if it were a camera: at its own rate
            self.pace_fps = source.fps or 25.0
        self._event("opened", f"opened {source.name}", data={k: v for k, v in self.source_info.items() if v is not None})
        self._spawn(source)
        if self.live:
            self._watchdog = threading.Thread(target=self._watch, name=f"fcn-edge-watchdog-{self.source_id}", daemon=True)
            self._watchdog.start()
        return self

    def stop(self) -> None:
        """Stop capturing; safe from any thread, idempotent."""
        self._stop.set()
        source = self._source
        if source is not None:
            source.interrupt()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float = 5.0) -> None:
        for thread in (self._thread, self._watchdog):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    # --------------------------------------------------------------- consuming
    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame by policy, or ``None`` when none came within ``timeout`` (or the feed ended)."""
        if self.policy == "latest":
            with self._cond:
                if self._slot is None and not self._finished:
                    self._cond.wait_for(lambda: self._slot is not None or self._finished or self._stop.is_set(),
                                        timeout=timeout)
                frame, self._slot = self._slot, None
                return frame
        try:
            return self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def has_frame(self) -> bool:
        if self.policy == "latest":
            return self._slot is not None
        return not self._queue.empty()

    @property
    def ended(self) -> bool:
        """True once the source is done (end of file, given up, stopped) and every frame was taken."""
        return self._finished and not self.has_frame()

    # ---------------------------------------------------------------- internals
    def _spawn(self, source: Source | None) -> None:
        generation = self._generation
        self._thread = threading.Thread(target=self._capture, args=(generation, source),
                                        name=f"fcn-edge-capture-{self.source_id}", daemon=True)
        self._thread.start()

    def _event(self, kind: str, message: str, level: int = logging.INFO, data: dict | None = None) -> None:
        event = StreamEvent(kind, message, self.name, self.source_id, data=data or {})
        self.events.append(event)
        log.log(level, "%s: %s", self.name, message)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # noqa: BLE001 - a user callback must not kill the capture thread
                log.exception("event callback failed")

    @property
    def failure(self) -> str | None:
        """Why the source ended badly, in one sentence; None unless it was lost or capture crashed."""
        if self.end_reason == "source-lost":
            return str(self.error) if self.error is not None else f"{self.name} was lost"
        if self.end_reason == "error":
            if isinstance(self.error, FcnEdgeError):
                return str(self.error)
            return f"capture failed ({type(self.error).__name__}: {self.error})"
        return None

    def _finish(self, reason: str, error: Exception | None = None) -> None:
        with self._cond:
            if not self._finished:
                self._finished = True
                self.end_reason = reason
                self.error = error
            self._cond.notify_all()
        self._notify()  # a consumer waiting for frames learns that this feed ended

    def _publish(self, frame: Frame, generation: int) -> bool:
        """Hand a frame to the consumer; False when the feed is stopping or this worker was replaced."""
        frame.index = self.captured  # numbered by the feed: continuous across reconnects, gaps = drops
        if self._prepare is not None:
            self._prepare(frame)
        self.captured += 1
        if self.policy == "latest":
            with self._cond:
                if generation != self._generation:
                    return False
                if self._slot is not None:
                    self.dropped += 1
                self._slot = frame
                self._cond.notify_all()
            self._notify()
            return True
        while not self._stop.is_set() and generation == self._generation:
            try:
                self._queue.put(frame, timeout=0.1)
                self._notify()
                return True
            except queue.Full:
                continue
        return False

    def _notify(self) -> None:
        if self.on_frame is not None:
            try:
                self.on_frame()
            except Exception:  # noqa: BLE001 - a consumer's hook must not kill the capture thread
                log.exception("on_frame hook failed")

    def _sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False when the feed is stopping."""
        return not self._stop.wait(seconds)

    def _capture(self, generation: int, source: Source | None) -> None:
        """Capture thread: read, check and publish frames; reopen a lost live source; finish the feed at the end."""
        attempts = 0
        next_due: float | None = None
        try:
            while not self._stop.is_set() and generation == self._generation:
                if source is None:
                    attempts += 1
                    source, action = self._reopen(generation, attempts)
                    if action == "return":
                        return
                    if action == "break":
                        break
                    if source is None:
                        continue
                    attempts = 0
                next_due, go_on = self._pace(next_due)
                if not go_on:
                    break
                frame, bad = self._read(source)
                if generation != self._generation:  # the watchdog replaced this worker while it was stuck
                    source.close()
                    return
                if bad is not None and self._skip_bad_frame(bad):
                    continue
                if bad is not None or frame is None:
                    source.close()
                    source = None
                    action = self._lost(bad)
                    if action == "return":
                        return
                    if action == "break":
                        break
                    continue
                self._bad_in_row = 0
                frame.source_id = self.source_id
                if not self._publish(frame, generation):
                    source.close()
                    source = None
                    break
                if self.max_frames is not None and self.captured >= self.max_frames and self.policy == "every":
                    self._finish("max-frames")
                    source.close()
                    return
        except Exception as exc:  # noqa: BLE001 - surface capture crashes to the runner, not a dead thread
            log.debug("capture thread failed", exc_info=True)
            self._event("error", f"capture failed: {type(exc).__name__}: {exc}", logging.ERROR)
            self._finish("error", exc)
            if source is not None:
                source.close()
            return
        if source is not None:
            source.close()
        if generation == self._generation:
            self._finish("stopped" if self._stop.is_set() else "end-of-source")

    def _reopen(self, generation: int, attempts: int) -> tuple[Source | None, str]:
        """Reconnect attempt ``attempts`` after its backoff: (the source or None, "ok" | "retry" | "break" | "return").

        The open is watched like a read (see :meth:`_watch`): some backends (OpenCV's
        GStreamer) wait without a limit for a pipeline that never starts.
        """
        if not self._sleep(self.reconnect.delay(attempts)):
            return None, "break"
        self._opening_since = now()
        try:
            source = self._factory()
            source.open()
        except SourceError as exc:
            self.failed_attempts += 1
            if self.reconnect.exhausted(attempts):
                self._event("gave-up", f"giving up after {attempts} reconnect attempt(s): {exc}", logging.ERROR)
                self._finish("source-lost", SourceError(
                    f"{self.name} was lost and {attempts} reconnect attempt(s) failed: {exc}"))
                return None, "return"
            self._event("reconnecting", f"reconnect attempt {attempts} failed ({exc}); "
                        f"next in {self.reconnect.delay(attempts + 1):.1f} s", logging.WARNING)
            return None, "retry"
        finally:
            self._opening_since = None
        if generation != self._generation:
            source.close()
            return None, "return"
        self._source = source
        self.reconnects += 1
        self._event("reconnected", f"reconnected after {attempts} attempt(s)", logging.WARNING)
        return source, "ok"

    def _pace(self, next_due: float | None) -> tuple[float | None, bool]:
        """Wait for the next frame's turn when pacing a file at ``pace_fps``; (next due time, False when stopping)."""
        if not self.pace_fps:
            return next_due, True
        current = now()
        next_due = current if next_due is None else next_due
        if next_due > current and not self._sleep(next_due - current):
            return next_due, False
        return max(next_due + 1.0 / self.pace_fps, now() - 1.0 / self.pace_fps), True

    def _read(self, source: Source) -> tuple[Frame | None, BadFrame | None]:
        """One read, watched by the stall watchdog: (frame or None at the end, or the unusable frame's error)."""
        self._reading_since = now()
        try:
            frame = source.read()
            if frame is not None:
                check_frame(frame)
            return frame, None
        except BadFrame as exc:
            return None, exc
        finally:
            self._reading_since = None

    def _lost(self, bad: BadFrame | None) -> str:
        """The source ended (``bad`` None) or gave too many unusable frames: "continue" to reopen, "return", "break"."""
        if bad is None and self._stop.is_set():
            return "break"
        if bad is not None:
            message = f"{self.reconnect.bad_frame_limit} unusable frames in a row (last: {bad})"
            if not self.live:
                self._event("gave-up", message, logging.ERROR)
                self._finish("source-lost", SourceError(f"{self.name} delivered {message}"))
                return "return"
            if self.reconnect.max_attempts == 0:
                self._event("gave-up", f"{message}; reconnecting is off", logging.ERROR)
                self._finish("source-lost", SourceError(f"{self.name} delivered {message} (reconnecting is off)"))
                return "return"
            self._event("lost", f"{message}; reopening the source", logging.WARNING)
            return "continue"
        if not self.live:
            self._event("ended", "end of source")
            self._finish("end-of-source")
            return "return"
        if self.reconnect.max_attempts == 0:
            self._event("gave-up", "lost the source and reconnecting is off", logging.ERROR)
            self._finish("source-lost", SourceError(f"{self.name} was lost (reconnecting is off)"))
            return "return"
        self._event("lost", "no frame from the source; reconnecting", logging.WARNING)
        return "continue"

    def _skip_bad_frame(self, error: BadFrame) -> bool:
        """Count an unusable frame; True to skip it and read on, False when the limit in a row is reached."""
        self.bad_frames += 1
        self._bad_in_row += 1
        if self._bad_in_row == 1:  # one event per run of bad frames, not one per frame
            self._event("bad-frame", f"skipping an unusable frame: {error}", logging.WARNING)
        if self._bad_in_row < max(1, self.reconnect.bad_frame_limit):
            return True
        self._bad_in_row = 0
        return False

    def _watch(self) -> None:
        """Replace a capture worker stuck in read() well past the stall timeout, or in a reconnect's open().

        Sources apply ``stall_timeout`` to their own reads (socket / FFmpeg timeouts) and
        report a lost stream themselves; this is the backstop for reads that ignore
        timeouts (some V4L2 drivers, GStreamer pipelines) and for opens that never return
        (OpenCV's GStreamer backend waits without a limit for a pipeline to start).  The
        stuck worker is left to its call (Python cannot kill a thread) and discards whatever
        it gets once it returns.
        """
        timeout = self.reconnect.stall_timeout + max(1.0, 0.5 * self.reconnect.stall_timeout)
        interval = min(0.25, timeout / 4)
        while not self._stop.wait(interval):
            with self._cond:
                if self._finished:
                    return
            reading, opening = self._reading_since, self._opening_since
            if reading is not None and now() - reading >= timeout:
                message = f"no frame for {timeout:.1f} s; reopening"
            elif opening is not None and now() - opening >= self.reconnect.open_timeout:
                message = f"reopening the source took more than {self.reconnect.open_timeout:.1f} s; trying again"
            else:
                continue
            self.stalls += 1
            stuck = self._source
            with self._cond:
                self._generation += 1
            self._reading_since = self._opening_since = None
            self._event("stalled", message, logging.WARNING)
            if stuck is not None:
                stuck.interrupt()
            self._spawn(None)


def default_policy(live: bool, every_frame: bool | None = None, realtime: bool = False) -> str:
    """``latest`` for live sources (and files with ``realtime``), ``every`` for files; ``every_frame`` overrides."""
    if every_frame is True:
        return "every"
    if every_frame is False or realtime:
        return "latest"
    return "latest" if live else "every"


__all__ = ["FrameFeed", "ReconnectPolicy", "POLICIES", "default_policy"]
