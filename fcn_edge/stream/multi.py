"""Several sources through one runner: frames from N cameras batched into one inference call.

Each source is a *lane*: its own capture thread, frame policy (latest frame for
cameras, every frame for files), reconnects, sinks and statistics, exactly as with
one source (:class:`~fcn_edge.stream.runner.StreamRunner`).  One inference thread
builds batches across the lanes:

* a batch holds at most one frame per source (the newest one for live sources), so a
  fast camera cannot crowd out a slow one, and sources take turns first when there
  are more sources than the model's batch;
* it is sent as soon as every source that is still running has contributed a frame
  (or the model's batch is full), or when ``timeout_ms`` has passed since its first
  frame was taken: one slow or stalled camera delays the others by at most that much;
* a source that ends or is lost for good is simply left out of later batches; the
  others continue and the run ends when all have ended (a lost live source is then
  reported, as with one source).

How a batch is run depends on the model: a dynamic batch axis takes the frames in one
call (up to the model's largest batch); a static batch of N>1 gets padded batches of
N; a static batch of 1 cannot batch, so the frames run one after another (said once
in the log: export with ``--dynamic batch`` to batch them).  Frames of different
sizes (variable-size models without ``--size``) are batched per size.

Results come out in the caller's thread in completion order, each tagged with its
``source_id``; per-frame ``batch_wait`` (time spent waiting for the batch to fill)
joins the usual stage timings, and :class:`MultiStreamStats` adds per-source and total
figures and a batch-size histogram.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError, SourceError
from fcn_edge.runtime.base import Runner
from fcn_edge.stream.frames import Frame, FrameResult, StreamEvent, now
from fcn_edge.stream.pipeline import StreamPipeline, failure_message, notify_event
from fcn_edge.stream.runner import RunConfig, StreamRunner
from fcn_edge.stream.sinks import Sink
from fcn_edge.stream.sources import SourceOptions, SourceSpec
from fcn_edge.stream.stats import LatencyRecorder, StreamStats

log = logging.getLogger(__name__)


@dataclass
class BatchConfig:
    """How frames of several sources are combined.

    ``max_batch``: most frames per inference call (None: as many as there are sources,
    within what the model takes).  ``timeout_ms``: the longest a batch waits for the
    remaining sources once its first frame is in.
    """

    max_batch: int | None = None
    timeout_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.max_batch is not None and self.max_batch < 1:
            raise FcnEdgeError(f"max batch must be at least 1, got {self.max_batch}")
        if not self.timeout_ms >= 0:
            raise FcnEdgeError(f"batch timeout must be 0 ms or more, got {self.timeout_ms}")


@dataclass(frozen=True)
class BatchPlan:
    """What the model allows: ``size`` frames per batch, ``pad_to`` for static batches, ``mode`` for reports."""

    size: int
    pad_to: int | None
    mode: str            # "batched" | "sequential"
    reason: str


def plan_batches(io, sources: int, requested: int | None) -> BatchPlan:
    """Frames per inference call for ``sources`` sources with this model's batch axis."""
    if io.batch is None:
        limit = io.max_batch
        size = sources
        if limit is not None:
            size = min(size, limit)
        if requested is not None:
            size = min(size, requested)
        size = max(1, size)
        mode = "batched" if size > 1 else "sequential"
        reason = f"dynamic batch (up to {limit if limit is not None else 'any'}): {size} frame(s) per call"
        return BatchPlan(size, None, mode, reason)
    fixed = int(io.batch)
    if fixed == 1:
        return BatchPlan(1, None, "sequential",
                         "the model has a static batch of 1: sources are processed one after another "
                         "(export with --dynamic batch or --batch N to batch them)")
    size = min(fixed, sources, requested or fixed)
    reason = f"static batch of {fixed}: {size} frame(s) per call" + (
        f", padded to {fixed}" if size < fixed else "")
    return BatchPlan(size, fixed, "batched" if size > 1 else "sequential", reason)


class MultiStreamStats:
    """Per-source :class:`StreamStats` plus totals over all sources and the batching record."""

    def __init__(self, lanes: Sequence[StreamStats], plan: BatchPlan, batch: BatchConfig) -> None:
        self.lanes = list(lanes)
        self.total = StreamStats()
        self.plan = plan
        self.batch_config = batch
        self.batches = 0
        self.batch_sizes: dict[int, int] = {}
        self.batch_wait = LatencyRecorder()
        self.meta: dict[str, Any] = {}

    @property
    def frames_processed(self) -> int:
        return self.total.frames_processed

    def record_batch(self, size: int) -> None:
        self.batches += 1
        self.batch_sizes[size] = self.batch_sizes.get(size, 0) + 1

    @property
    def mean_batch(self) -> float:
        frames = sum(k * v for k, v in self.batch_sizes.items())
        return frames / self.batches if self.batches else 0.0

    def sync_totals(self) -> None:
        total = self.total
        total.frames_captured = sum(s.frames_captured for s in self.lanes)
        total.frames_dropped = sum(s.frames_dropped for s in self.lanes)
        total.frames_written = sum(s.frames_written for s in self.lanes)
        total.reconnects = sum(s.reconnects for s in self.lanes)
        total.stalls = sum(s.stalls for s in self.lanes)
        total.frames_bad = sum(s.frames_bad for s in self.lanes)

    def to_dict(self) -> dict[str, Any]:
        self.sync_totals()
        total = self.total.to_dict()
        total.pop("events", None)
        return {
            **self.meta,
            "sources": [dict(lane.to_dict(), source_id=i) for i, lane in enumerate(self.lanes)],
            "total": total,
            "batching": {"mode": self.plan.mode, "reason": self.plan.reason, "max_frames_per_call": self.plan.size,
                         "padded_to": self.plan.pad_to, "timeout_ms": self.batch_config.timeout_ms,
                         "batches": self.batches, "mean_batch": round(self.mean_batch, 3),
                         "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}},
        }

    def summary_lines(self) -> list[str]:
        self.sync_totals()
        lines = [f"{len(self.lanes)} sources, {self.plan.mode}: {self.plan.reason}; batch timeout "
                 f"{self.batch_config.timeout_ms:g} ms"]
        for i, lane in enumerate(self.lanes):
            e2e = lane.latency["end_to_end"]
            p50, p95 = e2e.percentiles((50, 95)) if e2e.count else (float("nan"), float("nan"))
            name = lane.meta.get("source", {}).get("source", f"source {i}")
            lines.append(f"[{i}] {name}: {lane.frames_processed} processed, {lane.frames_dropped} dropped, "
                         f"{lane.reconnects} reconnects, {lane.throughput:.1f} FPS, e2e p50 {p50:.1f} ms "
                         f"p95 {p95:.1f} ms; stopped: {lane.stop_reason}"
                         + (f" ({lane.error})" if lane.error else ""))
        sizes = " ".join(f"{k}:{v}" for k, v in sorted(self.batch_sizes.items()))
        lines.append(f"total: {self.total.frames_processed} processed, {self.total.frames_captured} captured, "
                     f"{self.total.frames_dropped} dropped in {self.total.elapsed:.2f} s "
                     f"({self.total.throughput:.1f} FPS); {self.batches} inference calls, mean batch "
                     f"{self.mean_batch:.2f} (sizes {sizes or '-'})")
        lines.extend(self.total.summary_lines()[1:])
        return lines


class MultiStreamRunner(StreamPipeline):
    """Runs several sources through one backend runner; iterate :meth:`results` or call :meth:`run`.

    Each source is a lane, a :class:`StreamRunner` whose source, feed, sinks, stats
    and per-frame finishing are used as they are; this class only batches across
    them (the thread protocol is :class:`~fcn_edge.stream.pipeline.StreamPipeline`'s,
    as for one source).
    """

    thread_name = "fcn-edge-multi-infer"

    def __init__(self, runner: Runner, sources: Sequence[str | SourceSpec], *,
                 source_options: SourceOptions | Sequence[SourceOptions] | None = None,
                 config: RunConfig | None = None, batch: BatchConfig | None = None,
                 sinks: Sequence[Sequence[Sink]] | None = None,
                 on_result: Callable[[FrameResult], None] | None = None,
                 on_event: Callable[[StreamEvent], None] | None = None,
                 lock: threading.Lock | None = None) -> None:
        if len(sources) < 1:
            raise FcnEdgeError("give at least one source")
        config = config or RunConfig()
        count = len(sources)
        super().__init__(runner, config, on_result=on_result, on_event=on_event, lock=lock,
                         result_queue=max(2, config.result_queue * count))
        self.batch = batch or BatchConfig()
        if isinstance(source_options, SourceOptions) or source_options is None:
            options = [source_options or SourceOptions()] * count
        else:
            options = list(source_options)
            if len(options) != count:
                raise FcnEdgeError(f"{len(options)} source option sets for {count} sources")
        sink_lists = [list(s) for s in sinks] if sinks is not None else [[] for _ in range(count)]
        if len(sink_lists) != count:
            raise FcnEdgeError(f"{len(sink_lists)} sink lists for {count} sources")
        lane_config = RunConfig(**{**self.config.__dict__, "max_frames": self.config.max_frames, "warmup": 0,
                                   "stats_interval": None})
        self.lanes = [StreamRunner(runner, src, source_options=options[i], config=lane_config, sinks=sink_lists[i],
                                   on_event=on_event, source_id=i) for i, src in enumerate(sources)]
        self.plan = plan_batches(runner.io, count, self.batch.max_batch)
        self.stats = MultiStreamStats([lane.stats for lane in self.lanes], self.plan, self.batch)
        self._wake = threading.Condition()
        self._opened: list[StreamRunner] = []
        self._done: set[int] = set()       # lanes that reached max_frames
        self._rotation = 0                 # the lane that goes first in the next batch

    # ------------------------------------------------------- pipeline hooks
    def _open(self) -> None:
        if self.plan.mode == "sequential" and len(self.lanes) > 1:
            log.warning("%s", self.plan.reason)
        else:
            log.info("%d sources: %s", len(self.lanes), self.plan.reason)
        for lane in self.lanes:
            for sink in lane.sinks:
                sink.open()
        self._warmup(self.lanes[0].network_size, batch=self.plan.pad_to or self.plan.size)
        for lane in self.lanes:
            lane._start_feed(on_frame=self._notify)  # noqa: SLF001 - a source that cannot open fails the run here
            self._opened.append(lane)
        self.stats.meta = self._describe()
        self.stats.total.start()

    def _stop_feeds(self) -> None:
        for lane in self.lanes:
            lane._stop_feeds()  # noqa: SLF001 - lanes are ours
        self._notify()

    def _frame_waiting(self) -> bool:
        return any(lane._feed.has_frame() for lane in self.lanes)  # noqa: SLF001

    def _submit_next(self, pending: deque) -> bool:
        group = self._collect(self._rotation)
        self._rotation = (self._rotation + 1) % len(self.lanes)
        if not group:
            return not all(i in self._done or lane._feed.ended for i, lane in enumerate(self.lanes))  # noqa: SLF001
        for part in self._split(group):
            pending.append(self._submit_part(part))
        return True

    def _deliver(self, part: list[tuple[int, Frame, float]], handle: Any, start: float) -> bool:
        result = handle.result()
        infer_ms = (now() - start) * 1000.0
        for position, (lane_index, frame, _) in enumerate(part):
            if not self._put((lane_index, frame, result.item(position), infer_ms)):
                return False
        return True

    def _finish(self, item: tuple[int, Frame, Any, float]) -> FrameResult | None:
        lane_index, frame, inference, infer_ms = item
        if lane_index in self._done:
            return None  # that source already delivered its --max-frames
        result = self.lanes[lane_index]._finish_frame(frame, inference, infer_ms)  # noqa: SLF001
        self.stats.total.record(result.timings)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _after_yield(self, result: FrameResult) -> None:
        lane_index = result.source_id
        lane = self.lanes[lane_index]
        if any(sink.wants_stop for sink in lane.sinks):
            self.stop("window-closed")
        limit = self.config.max_frames
        if limit is not None and lane.stats.frames_processed >= limit:
            self._done.add(lane_index)
            lane._stop_reason = lane._stop_reason or "max-frames"  # noqa: SLF001
            lane._stop_feeds()  # noqa: SLF001
            self._notify()
            if len(self._done) == len(self.lanes):
                self.stop("max-frames")

    def _maybe_report(self) -> None:
        if not self._report_due():
            return
        for lane in self.lanes:
            if lane._feed is not None:  # noqa: SLF001
                lane.stats.frames_dropped = lane._feed.dropped  # noqa: SLF001
        self.stats.sync_totals()
        line = "total " + self.stats.total.interval_line()
        log.info("%s", line)
        notify_event(self.on_event, StreamEvent("stats", line, "all", -1))

    def _close(self, error: BaseException | None) -> None:
        first: BaseException | None = None
        for lane in self.lanes:
            if lane not in self._opened and lane._feed is None:  # noqa: SLF001
                for sink in lane.sinks:  # opened before the sources: close without output
                    try:
                        sink.close(abort=True)
                    except Exception:  # noqa: BLE001
                        pass
                lane.stats.finish("not-started")
                continue
            if self._stop_reason and lane._stop_reason is None:  # noqa: SLF001
                lane._stop_reason = self._stop_reason  # noqa: SLF001
            try:
                lane._close(error)  # noqa: SLF001
            except BaseException as exc:  # noqa: BLE001 - close every lane, report the first failure
                first = first or exc
        failure = failure_message(error)
        self.stats.total.finish("error" if failure else self._stop_reason or "end-of-source", failure)
        self.stats.sync_totals()
        if first is not None and error is None:
            raise first

    def _raise_if_lost(self) -> None:
        lost = [lane for lane in self.lanes
                if lane._feed is not None and lane._feed.end_reason in ("source-lost", "error")  # noqa: SLF001
                and self._stop_reason is None]
        if lost:
            names = ", ".join(lane.spec.display_name for lane in lost)
            raise SourceError(f"{names} {'was' if len(lost) == 1 else 'were'} lost (the other sources ran to the end): "
                              + "; ".join(lane._feed.failure for lane in lost))  # noqa: SLF001

    # ------------------------------------------------------------- internals
    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _collect(self, rotation: int) -> list[tuple[int, Frame, float]]:
        """One batch: at most one frame per running source, by the full-or-deadline rule."""
        frames: list[tuple[int, Frame, float]] = []
        taken: set[int] = set()
        deadline: float | None = None
        count = len(self.lanes)
        order = [(rotation + k) % count for k in range(count)]
        while not self._stopping.is_set():
            running = [i for i in order if i not in self._done and not self.lanes[i]._feed.ended]  # noqa: SLF001
            for i in running:
                if i in taken or len(frames) >= self.plan.size:
                    continue
                feed = self.lanes[i]._feed  # noqa: SLF001
                if feed.has_frame():
                    frame = feed.get(timeout=0)
                    if frame is not None:
                        frames.append((i, frame, now()))
                        taken.add(i)
            if not running and not frames:
                return frames
            target = min(self.plan.size, len(set(running) | taken))
            if frames and len(frames) >= target:
                return frames
            t = now()
            if frames:
                if deadline is None:
                    deadline = frames[0][2] + self.batch.timeout_ms / 1000.0
                if t >= deadline:
                    return frames
                wait = deadline - t
            else:
                wait = 0.05
            with self._wake:
                if not any(self.lanes[i]._feed.has_frame() for i in running if i not in taken):  # noqa: SLF001
                    self._wake.wait(timeout=min(wait, 0.05))
        return frames

    def _split(self, group: list[tuple[int, Frame, float]]) -> list[list[tuple[int, Frame, float]]]:
        """Frames of one batch grouped by input shape (sizes differ only for variable-size models)."""
        if self.plan.size == 1:
            return [[item] for item in group]
        by_shape: dict[tuple[int, ...], list[tuple[int, Frame, float]]] = {}
        for item in group:
            by_shape.setdefault(tuple(item[1].network_input.shape), []).append(item)
        return list(by_shape.values())

    def _submit_part(self, part: list[tuple[int, Frame, float]]) -> tuple[list[tuple[int, Frame, float]], Any, float]:
        batch = np.stack([frame.network_input for _, frame, _ in part])
        if self.plan.pad_to and len(batch) < self.plan.pad_to:
            batch = np.concatenate([batch, np.repeat(batch[-1:], self.plan.pad_to - len(batch), axis=0)])
        start = now()
        for _, frame, taken in part:
            frame.timings["batch_wait"] = (start - taken) * 1000.0
        self.stats.record_batch(len(part))
        return part, self._submit(batch), start

    def _describe(self) -> dict[str, Any]:
        return {"model": str(self.runner.model_path), "backend": self._backend_description(),
                "network_size": list(self.lanes[0].network_size) if self.lanes[0].network_size else None}


__all__ = ["MultiStreamRunner", "MultiStreamStats", "BatchConfig", "BatchPlan", "plan_batches"]
