"""The streaming runner: source -> network -> sinks, with the stages overlapped.

Three threads share the work so the slowest stage, not the sum of all, sets the pace:

* **capture** (:class:`~fcn_edge.stream.feed.FrameFeed`): reads and decodes frames,
  applies flip/rotate, and already resizes each frame to the network size (and
  normalises it for raw-I/O models), so the inference thread only submits.
* **inference**: takes frames by policy and submits them to the backend, keeping up to
  ``runner.max_in_flight`` batches in flight (two on TensorRT: upload of N+1 overlaps
  compute of N).  When no newer frame is waiting it collects at once rather than
  holding a result back for pipelining, so live latency stays minimal.
* **main** (the caller's thread, where windows must live): maps labels back to the
  frame size, draws, writes sinks, records stats and yields each
  :class:`~fcn_edge.stream.frames.FrameResult`.

The queue between inference and main holds two results; when drawing or encoding is
slower than inference, inference waits, the capture slot overwrites (latest-frame
policy) and frames are dropped and counted instead of piling up as lag.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError, SourceError
from fcn_edge.runtime.base import Runner
from fcn_edge.runtime.preprocess import frames_to_raw
from fcn_edge.runtime.resize import resize_confidence, resize_frame, resize_labels
from fcn_edge.stream.feed import FrameFeed, ReconnectPolicy, default_policy
from fcn_edge.stream.frames import Frame, FrameResult, StreamEvent, now
from fcn_edge.stream.pipeline import StreamPipeline, failure_message, notify_event
from fcn_edge.stream.sinks import Sink, VideoFileSink
from fcn_edge.stream.sources import SourceOptions, SourceSpec, create_source, parse_source
from fcn_edge.stream.stats import StreamStats
from fcn_edge.stream.visualize import ViewOptions, Visualizer

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """How to run a stream.

    ``size``: network input (H, W) for models that accept several sizes.
    ``every_frame``: True processes every frame (bounded queue), False keeps only the
    latest (drops), None decides by source (live: latest, files: every).
    ``realtime``: read files at their own frame rate with the latest-frame policy, as if
    they were a camera.  ``max_frames``: stop after this many results.
    ``stats_interval``: seconds between progress lines (None: only at the end).
    """

    size: tuple[int, int] | None = None
    every_frame: bool | None = None
    realtime: bool = False
    max_frames: int | None = None
    stats_interval: float | None = None
    queue_size: int = 4
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    warmup: int = 1
    view: ViewOptions = field(default_factory=ViewOptions)
    confidence: bool = True
    result_queue: int = 2


class StreamRunner(StreamPipeline):
    """Runs one source through one backend runner into sinks; iterate :meth:`results` or call :meth:`run`.

    Also one *lane* of :class:`~fcn_edge.stream.multi.MultiStreamRunner`: its source,
    feed, sinks, statistics and per-frame finishing serve each source there.
    """

    def __init__(self, runner: Runner, source: str | SourceSpec, *, source_options: SourceOptions | None = None,
                 config: RunConfig | None = None, sinks: Sequence[Sink] = (),
                 on_result: Callable[[FrameResult], None] | None = None,
                 on_event: Callable[[StreamEvent], None] | None = None,
                 lock: threading.Lock | None = None, source_id: int = 0) -> None:
        config = config or RunConfig()
        super().__init__(runner, config, on_result=on_result, on_event=on_event, lock=lock,
                         result_queue=config.result_queue)
        self.spec = source if isinstance(source, SourceSpec) else parse_source(source)
        self.source_options = source_options or SourceOptions()
        if self.config.realtime and not self.source_options.realtime:  # sources that pace themselves (bags)
            self.source_options = replace(self.source_options, realtime=True)
        self.sinks = list(sinks)
        self.source_id = source_id
        self.visualizer = Visualizer(runner.info, self.config.view)
        self.stats = StreamStats()
        live = self.spec.live
        self.policy = default_policy(live, self.config.every_frame, self.config.realtime and not live)
        self._fixed_size = self._initial_network_size()
        self._network_size: tuple[int, int] | None = self._fixed_size
        self._feed: FrameFeed | None = None
        self._fps_ema: float | None = None
        self._last_result_time: float | None = None

    @property
    def network_size(self) -> tuple[int, int] | None:
        return self._network_size

    # ------------------------------------------------------- pipeline hooks
    def _open(self) -> None:
        for sink in self.sinks:
            sink.open()
        self._warmup(self._network_size)
        self._start_feed()
        log.info("running %s on %s (%s policy, network %s)", self.runner.backend, self.spec.display_name,
                 self.policy, "x".join(map(str, self._network_size)) if self._network_size else "frame size")

    def _stop_feeds(self) -> None:
        if self._feed is not None:
            self._feed.stop()

    def _frame_waiting(self) -> bool:
        return self._feed.has_frame()

    def _submit_next(self, pending: deque) -> bool:
        feed = self._feed
        frame = feed.get(timeout=0.05)
        if frame is None:
            return not feed.ended
        start = now()
        pending.append((frame, self._submit(frame.network_input[None]), start))
        return True

    def _deliver(self, frame: Frame, handle: Any, start: float) -> bool:
        result = handle.result()
        return self._put((frame, result, (now() - start) * 1000.0))

    def _finish(self, item: tuple[Frame, Any, float]) -> FrameResult:
        return self._finish_frame(*item)

    def _after_yield(self, result: FrameResult) -> None:
        if any(sink.wants_stop for sink in self.sinks):
            self.stop("window-closed")
        if self.config.max_frames is not None and self.stats.frames_processed >= self.config.max_frames:
            self.stop("max-frames")

    def _raise_if_lost(self) -> None:
        if self._feed.end_reason == "source-lost" and self._stop_reason is None:
            raise self._feed.error or SourceError(f"{self.spec.display_name} was lost")
        if self._feed.end_reason == "error" and self._stop_reason is None:
            # the capture thread crashed: a run that quietly "ended" would exit 0 with half the video
            error = self._feed.error
            if isinstance(error, FcnEdgeError):
                raise error
            raise SourceError(f"{self.spec.display_name}: {self._feed.failure}") from error

    # ------------------------------------------------------------- internals
    def _initial_network_size(self) -> tuple[int, int] | None:
        io = self.runner.io
        if io.size is not None or self.config.size is not None or io.preferred_size is not None:
            return io.network_size(self.config.size)
        return None

    def _start_feed(self, on_frame: Callable[[], None] | None = None) -> None:
        """Open the source (a SourceError if it cannot), give video sinks its frame rate, start the stats clock."""
        self._feed = self._make_feed(on_frame)
        self._feed.start()
        fps = self._feed.source_info.get("fps") or self.source_options.fps
        for sink in self.sinks:
            if isinstance(sink, VideoFileSink) and sink.fps is None:
                sink.fps = fps or 25.0
        self.stats.meta = self._describe()
        self.stats.start()

    def _make_feed(self, on_frame: Callable[[], None] | None = None) -> FrameFeed:
        live = self.spec.live
        realtime = self.config.realtime and not live
        return FrameFeed(lambda: create_source(self.spec, self.source_options, self.source_id),
                         policy=self.policy, live=live, reconnect=self.config.reconnect,
                         queue_size=self.config.queue_size, prepare=self._prepare, on_event=self._event,
                         realtime=realtime, pace_fps=self.source_options.fps if realtime else None,
                         max_frames=self.config.max_frames if self.policy == "every" else None,
                         name=self.spec.display_name, source_id=self.source_id, on_frame=on_frame)

    def _prepare(self, frame: Frame) -> None:
        """Capture thread: resize (and normalise for raw models) so inference only submits."""
        start = now()
        size = self._network_size
        if size is None:
            size = self.runner.io.network_size(None, frame.size)
            self._network_size = size
        resized = resize_frame(frame.image, size)
        if self.runner.io.kind == "raw":
            frame.network_input = frames_to_raw(resized, self.runner.info.preprocessing)[0]
        else:
            frame.network_input = np.ascontiguousarray(resized)
        frame.timings["preprocess"] = (now() - start) * 1000.0

    def _event(self, event: StreamEvent) -> None:
        self.stats.events.append(event.to_dict())
        notify_event(self.on_event, event)

    def _finish_frame(self, frame: Frame, inference, infer_ms: float) -> FrameResult:
        start = now()
        size = frame.size
        labels = resize_labels(inference.labels[0], size)
        confidence = None
        if self.config.confidence and inference.confidence is not None:
            confidence = resize_confidence(inference.confidence[0], size)
        done = now()
        timings = dict(frame.timings)
        timings["inference"] = infer_ms
        timings["postprocess"] = (done - start) * 1000.0
        timings["end_to_end"] = (done - frame.timestamp) * 1000.0
        for key, value in inference.timings.items():
            timings[f"backend_{key}"] = value
        result = FrameResult(frame=frame, labels=labels, confidence=confidence, network_labels=inference.labels[0],
                             timings=timings, class_names=self.runner.info.class_names,
                             palette=self.runner.info.palette)
        self._update_rate(done)
        if self.sinks:
            render_start = now()
            rendered = None
            if any(sink.needs_render for sink in self.sinks):
                rendered = self.visualizer.render(frame.image, labels, self._text_lines(timings))
            for sink in self.sinks:
                sink.write(result, rendered)
            timings["render"] = (now() - render_start) * 1000.0
        self._sync_feed_stats()
        self.stats.record(timings)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _sync_feed_stats(self) -> None:
        """Copy the capture thread's counters into the stats."""
        feed = self._feed
        self.stats.frames_captured = feed.captured
        self.stats.frames_dropped = feed.dropped
        self.stats.reconnects = feed.reconnects
        self.stats.stalls = feed.stalls
        self.stats.frames_bad = feed.bad_frames

    def _update_rate(self, t: float) -> None:
        if self._last_result_time is not None:
            dt = t - self._last_result_time
            if dt > 0:
                fps = 1.0 / dt
                self._fps_ema = fps if self._fps_ema is None else 0.9 * self._fps_ema + 0.1 * fps
        self._last_result_time = t

    def _text_lines(self, timings: dict[str, float]) -> list[str]:
        fps = f"{self._fps_ema:.1f} FPS" if self._fps_ema else "-- FPS"
        return [f"{fps}  latency {timings['end_to_end']:.0f} ms  infer {timings['inference']:.0f} ms"]

    def _maybe_report(self) -> None:
        if not self._report_due():
            return
        if self._feed is not None:
            self.stats.frames_dropped = self._feed.dropped
            self.stats.reconnects = self._feed.reconnects
        line = self.stats.interval_line()
        log.info("%s", line)
        if self.on_event is not None:
            self._event(StreamEvent("stats", line, self.spec.display_name, self.source_id))

    def _describe(self) -> dict[str, Any]:
        return {
            "model": str(self.runner.model_path),
            "backend": self._backend_description(),
            "source": {**self._feed.source_info, "policy": self.policy} if self._feed else {},
            "network_size": list(self._network_size) if self._network_size else None,
            "sinks": [sink.name for sink in self.sinks],
        }

    def _close(self, error: BaseException | None) -> None:
        """Stop the feed, finish the stats and close the sinks (also used per source by MultiStreamRunner)."""
        feed = self._feed
        if feed is not None:
            feed.stop()
            feed.join(timeout=2.0)
            self._sync_feed_stats()
        reason = self._stop_reason or (feed.end_reason if feed else None) or "end-of-source"
        failure = message = failure_message(error)
        if failure is not None:
            reason = "error"
        elif feed is not None and feed.end_reason in ("source-lost", "error") and self._stop_reason is None:
            message = feed.failure
        self.stats.finish(reason, message)
        close_error: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close(abort=failure is not None)
            except BaseException as exc:  # noqa: BLE001 - close every sink, report the first failure
                close_error = close_error or exc
        self.stats.frames_written = max((sink.written for sink in self.sinks), default=0)
        # a run that failed before its first frame (no camera, ...) has only its error to say,
        # which the caller prints; "stopped (error) after 0 frames" ahead of it only hid it
        quiet = failure is not None and self.stats.frames_processed == 0
        (log.debug if quiet else log.info)("%s: stopped (%s) after %d frames", self.spec.display_name, reason,
                                           self.stats.frames_processed)
        if close_error is not None and error is None:
            raise close_error
