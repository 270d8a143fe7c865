"""Stream statistics: per-stage latency percentiles, throughput, drops, reconnects.

Latencies are kept in fixed-size reservoirs (uniform sampling over the whole run), so a
robot running for a week uses the same memory as a ten-second test and the
percentiles still describe the whole run; counts, means and maxima are exact.
A second, short-lived set of recorders covers the current reporting interval for the
periodic ``--stats-interval`` lines.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Iterable

import numpy as np

from fcn_edge import __version__
from fcn_edge.stream.frames import now

# the stages a frame goes through, in order; end_to_end spans capture timestamp -> result.
# batch_wait: time a frame waited for the other sources' frames of its batch (several sources only).
# Events kept in memory per run (the stats JSON shows the last 100).
MAX_EVENTS = 1000
STAGES = ("capture", "preprocess", "batch_wait", "inference", "postprocess", "render", "end_to_end")


class LatencyRecorder:
    """Exact count/mean/min/max plus a uniform reservoir sample for percentiles (milliseconds)."""

    def __init__(self, capacity: int = 8192, seed: int = 0) -> None:
        self.capacity = capacity
        self._samples = np.empty(capacity, np.float64)
        self._rng = random.Random(seed)
        self.count = 0
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = 0.0

    def add(self, value_ms: float) -> None:
        value = float(value_ms)
        if self.count < self.capacity:
            self._samples[self.count] = value
        else:
            slot = self._rng.randrange(self.count + 1)
            if slot < self.capacity:
                self._samples[slot] = value
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def percentiles(self, qs: Iterable[float] = (50, 95, 99)) -> list[float]:
        n = min(self.count, self.capacity)
        if n == 0:
            return [float("nan") for _ in qs]
        return [float(v) for v in np.percentile(self._samples[:n], list(qs))]

    def summary(self) -> dict[str, Any]:
        if self.count == 0:
            return {"count": 0}
        p50, p95, p99 = self.percentiles()
        return {"count": self.count, "mean": round(self.total / self.count, 3), "p50": round(p50, 3),
                "p95": round(p95, 3), "p99": round(p99, 3), "min": round(self.minimum, 3),
                "max": round(self.maximum, 3)}


class StreamStats:
    """Everything the runner reports: filled by the runner's main loop (single thread)."""

    def __init__(self, reservoir: int = 8192) -> None:
        self._reservoir = reservoir
        self.latency = {stage: LatencyRecorder(reservoir) for stage in STAGES}
        self.backend: dict[str, LatencyRecorder] = {}
        self.window: dict[str, LatencyRecorder] = {}
        self.window_started = now()
        self.window_frames = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.frames_processed = 0
        self.frames_written = 0
        self.frames_captured = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.stalls = 0
        self.frames_bad = 0
        self.stop_reason: str | None = None
        self.error: str | None = None
        # bounded: a camera that drops out every few minutes for weeks must not grow the process
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.meta: dict[str, Any] = {}

    def start(self) -> None:
        self.started_at = now()
        self.window_started = self.started_at

    def finish(self, reason: str, error: str | None = None) -> None:
        if self.finished_at is None:
            self.finished_at = now()
        self.stop_reason = self.stop_reason or reason
        if error:
            self.error = error

    def record(self, timings: dict[str, float]) -> None:
        """One processed frame's timings (ms): stage names and ``backend_*`` keys."""
        self.frames_processed += 1
        self.window_frames += 1
        for key, value in timings.items():
            if value is None:
                continue
            if key in self.latency:
                self.latency[key].add(value)
            elif key.startswith("backend_"):
                self.backend.setdefault(key[len("backend_"):], LatencyRecorder(self._reservoir)).add(value)
            else:
                continue
            if key in ("end_to_end", "inference"):
                self.window.setdefault(key, LatencyRecorder(1024)).add(value)

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or now()) - self.started_at

    @property
    def throughput(self) -> float:
        elapsed = self.elapsed
        return self.frames_processed / elapsed if elapsed > 0 else 0.0

    def interval_line(self) -> str:
        """One line for the periodic report, covering the frames since the last line."""
        elapsed = max(now() - self.window_started, 1e-9)
        fps = self.window_frames / elapsed
        parts = [f"{fps:6.1f} FPS"]
        for key, label in (("end_to_end", "e2e"), ("inference", "infer")):
            rec = self.window.get(key)
            if rec and rec.count:
                p50, p95 = rec.percentiles((50, 95))
                parts.append(f"{label} p50 {p50:.1f} ms p95 {p95:.1f} ms")
        parts.append(f"dropped {self.frames_dropped}")
        if self.reconnects:
            parts.append(f"reconnects {self.reconnects}")
        self.window = {}
        self.window_frames = 0
        self.window_started = now()
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fcn_edge_version": __version__,
            **self.meta,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "elapsed_s": round(self.elapsed, 3),
            "throughput_fps": round(self.throughput, 3),
            "frames": {"captured": self.frames_captured, "processed": self.frames_processed,
                       "dropped": self.frames_dropped, "written": self.frames_written},
            "dropped_frames": self.frames_dropped,
            "reconnects": self.reconnects,
            "stalls": self.stalls,
            "bad_frames": self.frames_bad,
            "latency_ms": {stage: rec.summary() for stage, rec in self.latency.items()},
            "backend_latency_ms": {name: rec.summary() for name, rec in sorted(self.backend.items())},
            "events": list(self.events)[-100:],
        }

    def summary_lines(self) -> list[str]:
        """The end-of-run report, one figure per line."""
        lines = [f"frames: {self.frames_processed} processed, {self.frames_captured} captured, "
                 f"{self.frames_dropped} dropped, {self.reconnects} reconnects"
                 + (f", {self.frames_bad} unusable frames skipped" if self.frames_bad else "")
                 + f" in {self.elapsed:.2f} s ({self.throughput:.1f} FPS); stopped: {self.stop_reason}"]
        lines.append(f"{'latency (ms)':<16}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}{'max':>9}")
        rows = [(stage, rec) for stage, rec in self.latency.items()]
        rows += [(f"  backend {name}", rec) for name, rec in sorted(self.backend.items())]
        for name, rec in rows:
            if rec.count == 0:
                continue
            p50, p95, p99 = rec.percentiles()
            lines.append(f"{name:<16}{p50:>9.2f}{p95:>9.2f}{p99:>9.2f}{rec.total / rec.count:>9.2f}{rec.maximum:>9.2f}")
        return lines
