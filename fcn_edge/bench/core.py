"""The benchmark loop: open each model, warm up, time batches (and a pipelined run), collect the facts.

Everything goes through :func:`fcn_edge.runtime.open_runner` and the :class:`Runner`
interface, so any model path or URL a backend is registered for is benchmarked the
same way; nothing here knows a backend by name.  What a backend can tell beyond the
interface comes from the interface too: ``timing_notes`` (what its timing keys
measure), ``device_memory()`` and ``max_in_flight``.
"""

from __future__ import annotations

import collections
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fcn_edge.bench.config import BenchConfig, ModelSpec, as_model_specs
from fcn_edge.bench.io_bytes import io_bytes_per_frame
from fcn_edge.bench.memory import RssSampler, current_rss_bytes, max_rss_bytes
from fcn_edge.bench.stats import summarize
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.progress import progress
from fcn_edge.runtime import open_runner, resolve_backend
from fcn_edge.runtime.registry import is_url

log = logging.getLogger("fcn_edge.bench")

SYNC, PIPELINED = "sync", "pipelined"
RSS_SAMPLE_INTERVAL_S = 0.1


@dataclass
class BenchRow:
    """One (model, batch size, mode) measurement, or the reason it was not run (``skipped``)."""

    model: str
    model_index: int
    backend: str | None
    batch: int
    mode: str = SYNC
    in_flight: int = 1
    size: tuple[int, int] | None = None
    skipped: str | None = None
    iterations: int = 0
    warmup_iterations: int = 0
    wall_s: float = 0.0
    latency_ms: dict[str, Any] = field(default_factory=dict)
    fps: float | None = None
    batches_per_s: float | None = None
    timings_ms: dict[str, dict[str, Any]] = field(default_factory=dict)
    host_memory: dict[str, Any] = field(default_factory=dict)
    device_memory: dict[str, Any] = field(default_factory=dict)
    io_bytes_per_frame: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] | None = None
    vs_first: dict[str, Any] | None = None

    @property
    def ran(self) -> bool:
        return self.skipped is None

    @property
    def key(self) -> tuple[int, str, tuple[int, int] | None]:
        return self.batch, self.mode, self.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "model_index": self.model_index, "backend": self.backend, "batch": self.batch,
            "mode": self.mode, "in_flight": self.in_flight, "size": list(self.size) if self.size else None,
            "skipped": self.skipped, "iterations": self.iterations, "warmup_iterations": self.warmup_iterations,
            "wall_s": round(self.wall_s, 4), "latency_ms": self.latency_ms,
            "fps": None if self.fps is None else round(self.fps, 3),
            "batches_per_s": None if self.batches_per_s is None else round(self.batches_per_s, 3),
            "timings_ms": self.timings_ms, "host_memory": self.host_memory, "device_memory": self.device_memory,
            "io_bytes_per_frame": self.io_bytes_per_frame, "agreement": self.agreement, "vs_first": self.vs_first,
        }


@dataclass
class ModelResult:
    """One model: how it was opened, what the runner says about itself, and notes for the reader."""

    label: str
    model: str
    index: int
    backend: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    ignored_options: list[str] = field(default_factory=list)
    open_s: float | None = None
    describe: dict[str, Any] = field(default_factory=dict)
    timing_notes: dict[str, str] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    max_in_flight: int = 1
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from fcn_edge.bench.config import _jsonable

        return {"label": self.label, "model": self.model, "index": self.index, "backend": self.backend,
                "options": _jsonable(self.options), "ignored_options": self.ignored_options,
                "open_s": None if self.open_s is None else round(self.open_s, 3), "runner": _jsonable(self.describe),
                "timing_notes": self.timing_notes, "size": list(self.size) if self.size else None,
                "max_in_flight": self.max_in_flight, "error": self.error, "notes": self.notes}


# ------------------------------------------------------------------ checks
def check_model_argument(model: str) -> str:
    """The backend name for ``model``; a one-line error for a missing file or an unknown kind."""
    entry = resolve_backend(model)
    if not is_url(model):
        from pathlib import Path

        path = Path(model)
        if not path.exists():
            raise ArtifactError(f"model {model} does not exist (give a .pt, .onnx or .engine file, or a served model URL)")
        if path.is_dir():
            raise ArtifactError(f"model {model} is a folder, not a model file")
    return entry.name


def batch_problem(io, batch: int, label: str) -> str | None:
    """Why ``batch`` cannot run on a model with this IOSpec, or None."""
    if io.batch is not None and batch != io.batch:
        return (f"{label} has a static batch of {io.batch}; re-export it with --dynamic batch "
                f"(or --batch {batch}) to run batches of {batch}")
    if io.max_batch is not None and batch > io.max_batch:
        return f"{label} takes at most {io.max_batch} frames per batch (its dynamic batch range)"
    min_shape = io.input.min_shape
    if min_shape and batch < int(min_shape[0]):
        return f"{label} takes at least {min_shape[0]} frames per batch (its optimisation profile)"
    return None


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def open_with_options(spec: ModelSpec, shared: dict[str, Any], backend: str) -> tuple[Any, dict[str, Any], list[str]]:
    """Open ``spec`` with its own options and those shared options its backend takes.

    A shared option (``--device`` for a mixed .pt/.onnx comparison) that the backend
    does not take is dropped and reported; a model's own option never is.
    """
    options = {**shared, **dict(spec.options)}
    ignored: list[str] = []
    while True:
        try:
            return open_runner(spec.model, **options), options, ignored
        except TypeError as exc:
            match = _UNEXPECTED.search(str(exc))
            name = match.group(1) if match else None
            if name is None or name not in options:
                raise
            if name in spec.options:
                raise FcnEdgeError(f"the {backend} backend takes no option {name!r} (given for {spec.model})") from None
            options.pop(name)
            ignored.append(name)


# ------------------------------------------------------------------ loops
class _Clock:
    """Stop rule of a timed loop: a batch count, or a duration with a minimum count."""

    def __init__(self, iterations: int | None, seconds: float | None, minimum: int) -> None:
        self.iterations, self.seconds, self.minimum = iterations, seconds, minimum
        self.started = time.perf_counter()

    def more(self, done: int) -> bool:
        if self.iterations is not None:
            return done < self.iterations
        return done < self.minimum or time.perf_counter() - self.started < (self.seconds or 0.0)


@dataclass
class _Samples:
    """The timed batches of one row; RSS is sampled between batches (outside the timed region)."""

    sampler: RssSampler
    bar: Any
    latencies: list[float] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    wall_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    last_rss: float = field(default_factory=time.perf_counter)

    def add(self, t0: float, t1: float, timings: dict[str, float]) -> None:
        """One batch timed from ``t0`` to ``t1`` with the backend's own ``timings``."""
        self.latencies.append((t1 - t0) * 1000.0)
        for key, value in timings.items():
            if value is not None:
                self.timings[key].append(float(value))
        if t1 - self.last_rss >= RSS_SAMPLE_INTERVAL_S:
            self.sampler.sample()
            self.last_rss = time.perf_counter()
        self.bar.update(1)

    def finish(self) -> "_Samples":
        self.wall_s = time.perf_counter() - self.started
        self.sampler.sample()
        return self


def _warm_up(runner, frames: np.ndarray, config: BenchConfig) -> tuple[int, np.ndarray | None]:
    """Run the warm-up batches; returns (count, labels of the first one)."""
    first = None
    count = 0
    clock = _Clock(None if config.warmup_seconds is not None else config.warmup, config.warmup_seconds,
                   1 if config.warmup_seconds else 0)
    while clock.more(count):
        result = runner.infer(frames)
        if first is None:
            first = result.labels
        count += 1
    return count, first


def _run_sync(runner, frames: np.ndarray, clock: _Clock, sampler: RssSampler, bar) -> tuple[_Samples, np.ndarray]:
    samples = _Samples(sampler, bar)
    first = None
    while clock.more(len(samples.latencies)):
        t0 = time.perf_counter()
        result = runner.infer(frames)
        samples.add(t0, time.perf_counter(), result.timings)
        if first is None:
            first = result.labels
    return samples.finish(), first


def _run_pipelined(runner, frames: np.ndarray, clock: _Clock, in_flight: int, sampler: RssSampler, bar) -> _Samples:
    samples = _Samples(sampler, bar)
    pending: collections.deque = collections.deque()
    submitted = 0
    while True:
        while len(pending) < in_flight and clock.more(submitted):
            pending.append((time.perf_counter(), runner.submit(frames)))
            submitted += 1
        if not pending:
            break
        t0, handle = pending.popleft()
        result = handle.result()
        samples.add(t0, time.perf_counter(), result.timings)
    return samples.finish()


def _fill(row: BenchRow, samples: _Samples, batch: int) -> None:
    row.iterations = len(samples.latencies)
    row.wall_s = samples.wall_s
    row.latency_ms = summarize(samples.latencies)
    if samples.wall_s > 0:
        row.batches_per_s = row.iterations / samples.wall_s
        row.fps = batch * row.batches_per_s
    row.timings_ms = {key: summarize(values) for key, values in samples.timings.items()}


def _mb(nbytes: int | None) -> float | None:
    return None if nbytes is None else round(nbytes / 1e6, 1)


# ------------------------------------------------------------------ one model
def bench_runner(runner, config: BenchConfig, *, label: str, index: int = 0, result: ModelResult | None = None,
                 sampler: RssSampler | None = None, rss_before: int | None = None,
                 reference_labels: dict | None = None, reference_label: str | None = None) -> list[BenchRow]:
    """Benchmark an open runner with ``config``; returns its rows (skipped ones included).

    ``reference_labels`` maps ``(batch, H, W)`` to the first model's labels: when given
    (``--check-agreement``), rows get their pixel agreement with them; when it is the
    first model's own dict, its labels are stored into it.
    """
    from fcn_edge.runtime.synthetic import synthetic_frames

    sampler = sampler or RssSampler()
    backend = getattr(runner, "backend", None)
    rows: list[BenchRow] = []
    batches = config.batches or (runner.io.batch or 1,)
    try:
        size = runner.io.network_size(config.size)
    except FcnEdgeError as exc:
        return [BenchRow(label, index, backend, b, skipped=str(exc)) for b in batches]
    if result is not None:
        result.size = size
    num_classes = runner.info.num_classes
    try:
        io_bytes = io_bytes_per_frame(runner.io, size, num_classes)
    except ValueError as exc:
        io_bytes = {"error": str(exc)}

    max_in_flight = int(getattr(runner, "max_in_flight", 1) or 1)
    in_flight = min(config.in_flight, max_in_flight)
    # real frames are read (and resized) once per model, not once per batch size
    real = load_real_frames(config.images, size, config.max_images) if config.images else None
    for batch in batches:
        problem = batch_problem(runner.io, batch, label)
        modes = [(SYNC, 1)] + ([(PIPELINED, config.in_flight)] if config.in_flight > 1 else [])
        if problem:
            rows += [BenchRow(label, index, backend, batch, mode, k, size, skipped=problem) for mode, k in modes]
            continue
        frames = (timed_batch(real, batch) if real is not None
                  else synthetic_frames(batch, size[0], size[1], seed=config.seed))
        sync_row = BenchRow(label, index, backend, batch, SYNC, 1, size, io_bytes_per_frame=io_bytes)
        warm, first_labels = _warm_up(runner, frames, config)
        sampler.sample()
        sync_row.warmup_iterations = warm
        clock = _Clock(config.iterations, config.effective_seconds if config.duration_mode else None,
                       config.min_iterations)
        with progress(total=config.iterations, desc=f"{label} batch {batch}", unit="batch",
                      leave=False, disable=not config.progress) as bar:
            samples, timed_first = _run_sync(runner, frames, clock, sampler, bar)
        _fill(sync_row, samples, batch)
        labels = first_labels if first_labels is not None else timed_first
        rows.append(sync_row)

        if config.in_flight > 1:
            pipe_row = BenchRow(label, index, backend, batch, PIPELINED, in_flight, size, io_bytes_per_frame=io_bytes)
            if max_in_flight < 2:
                pipe_row.skipped = (f"the {backend} backend runs one batch at a time (max_in_flight 1): "
                                    "no pipelined mode")
                pipe_row.in_flight = config.in_flight
            else:
                clock = _Clock(config.iterations, config.effective_seconds if config.duration_mode else None,
                               config.min_iterations)
                with progress(total=config.iterations, desc=f"{label} batch {batch} x{in_flight} in flight",
                              unit="batch", leave=False, disable=not config.progress) as bar:
                    _fill(pipe_row, _run_pipelined(runner, frames, clock, in_flight, sampler, bar), batch)
                if in_flight < config.in_flight and result is not None:
                    note = f"{backend} allows {max_in_flight} batches in flight; the pipelined run used {in_flight}"
                    if note not in result.notes:
                        result.notes.append(note)
            rows.append(pipe_row)

        host = {"rss_peak_mb": _mb(sampler.peak), "rss_before_open_mb": _mb(rss_before),
                "process_max_rss_mb": _mb(max_rss_bytes())}
        device = _device_memory(runner)
        agreement = None
        if reference_labels is not None and real is not None:
            labels = labels_on(runner, real, batch)   # every real frame, not only the timed batch
        if reference_labels is not None and labels is not None:
            key = (batch, size[0], size[1])
            if index == 0:
                reference_labels[key] = np.array(labels, copy=True)
            else:
                reference = reference_labels.get(key)
                if reference is None:
                    agreement = {"reference": reference_label, "pixel_agreement": None,
                                 "note": "the first model has no result at this batch size and input size"}
                else:
                    agreement = {"reference": reference_label,
                                 "pixel_agreement": round(_pixel_agreement(labels, reference), 6),
                                 "pixels": int(np.asarray(labels).size),
                                 "frames": agreement_frames_text(config, len(labels))}
        for row in rows:
            if row.batch == batch and row.ran:
                row.host_memory, row.device_memory = dict(host), dict(device)
                row.agreement = agreement
    return rows


def load_real_frames(source: str, size: tuple[int, int], limit: int) -> list[np.ndarray]:
    """Up to ``limit`` frames from ``source`` (what ``run --source`` reads), resized as the runner resizes."""
    from fcn_edge.errors import SourceError
    from fcn_edge.runtime.resize import resize_frame
    from fcn_edge.stream.sources import SourceOptions, open_source

    reader = open_source(source, SourceOptions())
    frames: list[np.ndarray] = []
    try:
        while len(frames) < limit:
            frame = reader.read()
            if frame is None:
                break
            frames.append(resize_frame(frame.image, size))
    finally:
        reader.close()
    if not frames:
        raise SourceError(f"--images {source}: no frame could be read from it")
    return frames


def timed_batch(frames: list[np.ndarray], batch: int) -> np.ndarray:
    """The fixed batch the timed runs use: the first ``batch`` real frames (repeated when fewer)."""
    return np.stack([frames[i % len(frames)] for i in range(batch)])


def labels_on(runner, frames: list[np.ndarray], batch: int) -> np.ndarray:
    """The runner's labels for every frame, ``batch`` at a time (the last batch padded, padding dropped)."""
    out = []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        real = len(chunk)
        chunk = chunk + [chunk[-1]] * (batch - real)
        out.append(np.asarray(runner.infer(np.stack(chunk)).labels)[:real])
    return np.concatenate(out)


def agreement_frames_text(config: BenchConfig, count: int) -> str:
    """What agreement was measured on, for the table's footnote and the JSON."""
    if config.images:
        return f"{count} frame(s) from {config.images}"
    return f"{count} synthetic noise frame(s) (seed {config.seed}); --images measures it on real frames"


def _pixel_agreement(a: np.ndarray, b: np.ndarray) -> float:
    from fcn_edge.metrics import pixel_agreement

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("nan")
    return pixel_agreement(a.astype(np.int64, copy=False), b.astype(np.int64, copy=False))


def _device_memory(runner) -> dict[str, Any]:
    reader: Callable[[], dict[str, Any]] | None = getattr(runner, "device_memory", None)
    if reader is None:
        return {}
    try:
        memory = dict(reader() or {})
    except Exception as exc:  # noqa: BLE001 - a memory query must not lose the timings
        return {"error": f"{type(exc).__name__}: {exc}"}
    if "bytes" in memory and memory["bytes"] is not None:
        memory["mb"] = _mb(int(memory["bytes"]))
    return memory


# ------------------------------------------------------------------ many models
def run_bench(models: Sequence[str | ModelSpec], config: BenchConfig | None = None, *,
              emit: Callable[[str], None] | None = None):
    """Benchmark ``models`` (paths/URLs or :class:`ModelSpec`) in order; returns a :class:`BenchReport`.

    Missing files and unknown model kinds fail before anything runs.  A model that
    cannot be opened (backend not installed, bad option) raises, or with
    ``config.keep_going`` is recorded as not run with the reason.  Batch sizes a model
    cannot take are recorded as skipped; if nothing at all could run, the reasons are
    raised as one :class:`FcnEdgeError`.
    """
    from fcn_edge.bench.report import BenchReport

    config = config or BenchConfig()
    emit = emit or (lambda line: log.info("%s", line))
    specs = as_model_specs(models)
    if not specs:
        raise FcnEdgeError("give at least one model to benchmark")
    backends = [check_model_argument(spec.model) for spec in specs]
    report = BenchReport(config=config)
    if config.check_agreement and len(specs) < 2:
        report.notes.append("--check-agreement compares each model with the first: it needs two or more models")
    reference_labels: dict | None = {} if config.check_agreement and len(specs) > 1 else None
    labels_seen = set()
    shared = dict(config.options)
    used_shared: set[str] = set()

    for index, (spec, backend) in enumerate(zip(specs, backends)):
        label = spec.name
        if label in labels_seen:
            label = f"{label} #{index + 1}"
        labels_seen.add(label)
        result = ModelResult(label=label, model=str(spec.model), index=index, backend=backend)
        report.models.append(result)
        model_config = config.for_model(spec)
        rss_before = current_rss_bytes()
        sampler = RssSampler()
        emit(f"opening {label} ({backend})")
        started = time.perf_counter()
        try:
            runner, options, ignored = open_with_options(spec, shared, backend)
        except FcnEdgeError as exc:
            if not config.keep_going:
                raise
            result.error = str(exc)
            report.rows += [BenchRow(label, index, backend, b, skipped=f"could not open: {exc}")
                            for b in (model_config.batches or (1,))]
            continue
        result.open_s = time.perf_counter() - started
        result.options = options
        result.ignored_options = ignored
        used_shared |= set(shared) - set(ignored)
        if ignored and len(specs) == 1:
            runner.close()
            raise FcnEdgeError(f"the {backend} backend takes no option(s) {', '.join(ignored)} ({spec.model}); "
                               "drop them or see the backend's options in fcn-edge bench --help")
        if ignored:
            log.warning("warning: the %s backend takes no option(s) %s: ignored for %s", backend, ", ".join(ignored), label)
            result.notes.append(f"the {backend} backend takes no option(s) {', '.join(ignored)}: ignored for {label}")
        sampler.sample()
        try:
            result.backend = getattr(runner, "backend", backend)
            result.describe = runner.describe()
            result.timing_notes = dict(getattr(runner, "timing_notes", {}) or {})
            result.max_in_flight = int(getattr(runner, "max_in_flight", 1) or 1)
            rows = bench_runner(runner, model_config, label=label, index=index, result=result, sampler=sampler,
                                rss_before=rss_before, reference_labels=reference_labels,
                                reference_label=report.models[0].label)
        except FcnEdgeError as exc:
            if not config.keep_going:
                raise
            result.error = str(exc)
            rows = [BenchRow(label, index, result.backend, b, skipped=f"failed: {exc}")
                    for b in (model_config.batches or (1,))]
        finally:
            runner.close()
        report.rows += rows
        for row in rows:
            if row.ran:
                emit(f"{label}: batch {row.batch} {row.mode}: p50 {row.latency_ms.get('p50')} ms, "
                     f"{row.fps:.1f} FPS" if row.fps is not None else f"{label}: batch {row.batch} {row.mode}")

    unused = sorted(set(shared) - used_shared)
    if unused and any(m.error is None for m in report.models):
        report.notes.append(f"no model's backend took the option(s) {', '.join(unused)}: they had no effect")
    if config.compare:
        report.compute_ratios()
    if not any(row.ran for row in report.rows):
        reasons = list(dict.fromkeys(row.skipped for row in report.rows if row.skipped))
        raise FcnEdgeError("nothing could be benchmarked: " + "; ".join(reasons[:3]))
    return report


__all__ = ["BenchRow", "ModelResult", "bench_runner", "run_bench", "batch_problem", "check_model_argument",
           "open_with_options", "SYNC", "PIPELINED"]
