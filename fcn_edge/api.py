"""The Python API for robots: ``Segmenter.open(model).segment(frame)`` and ``.stream(source)``.

::

    from fcn_edge import Segmenter

    with Segmenter.open("model.fp16.engine") as seg:       # or .onnx / .pt
        result = seg.segment(bgr_frame)                      # any size; resized for the network
        result.labels        # HxW uint8 class ids at the frame's size (mono8-ready)
        result.confidence    # HxW float32 if the model outputs it, else None
        result.timings       # ms: preprocess, inference, postprocess, total (+ backend's own)

        for result in seg.stream("csi://0", width=1280, height=720, sinks=["display"]):
            publish(result.labels, stamp=result.wall_time)   # newest frame each time, never lagging

Threading.  One :class:`Segmenter` owns one backend runner and serialises access to it
with a lock, so ``segment()`` may be called from several threads (e.g. two ROS
callbacks) safely; the calls then run one after another.  For parallel throughput open
one Segmenter per thread (a TensorRT engine file may be opened several times; each
gets its own execution context and buffers).  ``stream()`` runs capture and inference
on background threads and yields results in the calling thread; do not call
``segment()`` on the same Segmenter from inside a ``stream()`` loop body if latency
matters (it waits for the stream's inference).  Callbacks (``on_frame``,
``on_event``) run on the calling thread (``on_frame``) and on the capture thread
(``on_event`` for source events): keep them short.

Frames are BGR ``uint8`` ``HxWx3`` (OpenCV's and most ROS camera drivers' ``bgr8``);
pass ``rgb=True`` to :meth:`Segmenter.segment` for RGB frames.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import ModelInfo


@dataclass
class Result:
    """Segmentation of one frame at the frame's size.

    ``labels``: ``HxW`` class ids (uint8; int32 for models with more than 255 classes).
    ``confidence``: ``HxW`` float32 probability of the chosen class, when available.
    ``timings``: milliseconds per stage.  ``timestamp`` (``time.perf_counter``) and
    ``wall_time`` (``time.time``) say when the frame arrived; ``index`` is its sequence
    number in a stream (gaps = frames skipped by the latest-frame policy).  ``source`` and
    ``source_id`` (0, 1, ... in the order given) say which stream it came from.
    """

    labels: np.ndarray
    confidence: np.ndarray | None
    timings: dict[str, float]
    class_names: list[str]
    index: int = 0
    timestamp: float | None = None
    wall_time: float | None = None
    source: str | None = None
    frame: np.ndarray | None = field(default=None, repr=False)
    source_id: int = 0

    def mask(self, cls: int | str) -> np.ndarray:
        """Boolean ``HxW`` mask of one class, by id or name."""
        if isinstance(cls, str):
            if cls not in self.class_names:
                raise FcnEdgeError(f"unknown class {cls!r}; the model has {', '.join(self.class_names)}")
            cls = self.class_names.index(cls)
        return self.labels == cls

    def class_fractions(self) -> dict[str, float]:
        """Share of the image each present class covers, largest first."""
        counts = np.bincount(self.labels.ravel().astype(np.int64), minlength=len(self.class_names))
        total = float(self.labels.size) or 1.0
        order = np.argsort(-counts)
        return {(self.class_names[i] if i < len(self.class_names) else str(i)): float(counts[i]) / total
                for i in order if counts[i] > 0}

    def to_mono8(self) -> np.ndarray:
        """The class map as a contiguous mono8 image (ROS ``sensor_msgs/Image``, encoding ``mono8``)."""
        if self.labels.dtype != np.uint8:
            if int(self.labels.max(initial=0)) > 255:
                raise FcnEdgeError("class ids above 255 do not fit mono8: publish mono16 instead")
            return np.ascontiguousarray(self.labels.astype(np.uint8))
        return np.ascontiguousarray(self.labels)


class Segmenter:
    """A model ready to segment frames; thread-safe (see the module docstring)."""

    def __init__(self, runner: Any, *, size: tuple[int, int] | None = None) -> None:
        self._runner = runner
        self._lock = threading.Lock()
        self._size = size
        self._fixed = runner.io.network_size(size) if (size or runner.io.size or runner.io.preferred_size) else None
        self._visualizer = None
        self.last_stats = None

    @classmethod
    def open(cls, model_path: str, *, size: tuple[int, int] | None = None, backend: str | None = None,
             warmup: bool = True, **backend_options: Any) -> "Segmenter":
        """Open ``.onnx`` / ``.engine`` / ``.pt`` (or a registered URL scheme) with its backend.

        ``size`` is the network input (H, W) for models that accept several sizes;
        ``backend_options`` go to the backend (e.g. ``providers=["cuda"]``,
        ``intra_op_threads=2`` for ONNX Runtime; ``device="cuda"`` for PyTorch).
        """
        from fcn_edge.runtime import open_runner

        runner = open_runner(model_path, backend=backend, **backend_options)
        try:
            segmenter = cls(runner, size=tuple(size) if size else None)
            if warmup and segmenter._fixed is not None:
                runner.warmup(segmenter._fixed)
        except BaseException:
            runner.close()
            raise
        return segmenter

    # ------------------------------------------------------------- properties
    @property
    def info(self) -> ModelInfo:
        return self._runner.info

    @property
    def io(self):
        return self._runner.io

    @property
    def runner(self):
        """The backend runner (for batch inference with :meth:`Runner.infer`)."""
        return self._runner

    @property
    def class_names(self) -> list[str]:
        return list(self._runner.info.class_names)

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        """RGB colour per class."""
        return list(self._runner.info.palette)

    @property
    def network_size(self) -> tuple[int, int] | None:
        """(H, W) frames are resized to; None when it follows each frame's size."""
        return self._fixed

    # -------------------------------------------------------------- one frame
    def segment(self, frame: np.ndarray, *, rgb: bool = False, keep_frame: bool = False) -> Result:
        """Segment one ``HxWx3`` uint8 frame (BGR, or RGB with ``rgb=True``) of any size."""
        return self.segment_batch([frame], rgb=rgb, keep_frame=keep_frame)[0]

    def segment_batch(self, frames: Sequence[np.ndarray], *, rgb: bool = False,
                      keep_frame: bool = False) -> list[Result]:
        """Segment several frames; one inference call when the model takes that batch size."""
        from fcn_edge.runtime.preprocess import frames_to_raw
        from fcn_edge.runtime.resize import resize_confidence, resize_frame, resize_labels

        wall = time.time()
        start = time.perf_counter()
        if not len(frames):
            return []
        checked = []
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise FcnEdgeError(f"a frame must be an HxWx3 uint8 image, got shape {frame.shape} dtype {frame.dtype}")
            checked.append(frame[..., ::-1] if rgb else frame)
        size = self._fixed or self._runner.io.network_size(None, checked[0].shape[:2])
        batch = np.stack([resize_frame(np.ascontiguousarray(f), size) for f in checked])
        if self._runner.io.kind == "raw":
            batch = frames_to_raw(batch, self._runner.info.preprocessing)
        prepared = time.perf_counter()
        io = self._runner.io
        chunk = io.batch or io.max_batch or len(batch)
        outputs = []
        with self._lock:
            for begin in range(0, len(batch), chunk):
                part = batch[begin:begin + chunk]
                if io.batch is not None and len(part) < io.batch:
                    part = np.concatenate([part, np.repeat(part[-1:], io.batch - len(part), axis=0)])
                outputs.append((begin, self._runner.infer(part)))
        inferred = time.perf_counter()
        results = []
        for begin, inference in outputs:
            for offset in range(len(inference)):
                i = begin + offset
                if i >= len(checked):
                    break
                h, w = checked[i].shape[:2]
                labels = resize_labels(inference.labels[offset], (h, w))
                confidence = None if inference.confidence is None else resize_confidence(inference.confidence[offset], (h, w))
                results.append((i, labels, confidence, inference.timings))
        done = time.perf_counter()
        per_frame = 1.0 / len(checked)
        out = []
        for i, labels, confidence, backend_timings in results:
            timings = {"preprocess": (prepared - start) * 1000.0 * per_frame,
                       "inference": (inferred - prepared) * 1000.0 * per_frame,
                       "postprocess": (done - inferred) * 1000.0 * per_frame,
                       "total": (done - start) * 1000.0}
            timings.update({f"backend_{k}": v for k, v in backend_timings.items()})
            out.append(Result(labels=labels, confidence=confidence, timings=timings, class_names=self.class_names,
                              index=i, timestamp=start, wall_time=wall,
                              frame=frames[i] if keep_frame else None))
        return out

    # ----------------------------------------------------------------- streams
    def stream(self, source: str | int | Sequence[str | int], *, sinks: Sequence[Any] = (),
               on_frame: Callable[[Result], None] | None = None,
               on_event: Callable[[Any], None] | None = None, every_frame: bool | None = None,
               realtime: bool = False, max_frames: int | None = None, stats_interval: float | None = None,
               reconnect: int | None = 10, stall_timeout: float = 5.0, view: str = "overlay",
               keep_frame: bool = True, max_batch: int | None = None, batch_timeout_ms: float = 10.0,
               **source_options: Any) -> Iterator[Result]:
        """Yield a :class:`Result` per processed frame of ``source`` (camera, URL, file, folder...).

        Live sources give the newest frame each time (older ones are dropped and
        counted); files give every frame unless ``realtime``.  ``sinks`` are strings as
        for ``fcn-edge run --sink`` (``"display"``, ``"out.mp4"``, ``"labels:dir"``) or
        :class:`fcn_edge.stream.Sink` objects.  ``source_options`` are
        :class:`fcn_edge.stream.SourceOptions` fields (width, height, fps, flip, rotate,
        loop, ``topic`` for a bag's image topic, ...).  ``reconnect`` attempts per loss (None:
        forever).  Leaving the loop (break) stops capture; the run's statistics are then in ``self.last_stats``.

        A list of sources (``["csi://0", "csi://1"]``) runs them together: their frames
        are batched into one inference call (see :mod:`fcn_edge.stream.multi`: at most
        ``max_batch`` frames, a batch waits at most ``batch_timeout_ms`` for slower
        sources), each result says its ``source_id``, ``sinks`` apply to every source
        (``"cam{i}.mp4"`` expands per source) and ``self.last_stats`` is a
        :class:`fcn_edge.stream.multi.MultiStreamStats` with per-source and total figures.
        """
        from fcn_edge.stream import ReconnectPolicy, RunConfig, SourceOptions, StreamRunner, ViewOptions, parse_source

        config = RunConfig(size=self._size, every_frame=every_frame, realtime=realtime, max_frames=max_frames,
                           stats_interval=stats_interval, warmup=0, view=ViewOptions(mode=view),
                           reconnect=ReconnectPolicy(max_attempts=reconnect, stall_timeout=stall_timeout))
        options = SourceOptions(read_timeout=stall_timeout, **source_options)
        several = isinstance(source, (list, tuple))
        sources = [_source_text(s) for s in source] if several else [_source_text(source)]
        if not sources:
            raise FcnEdgeError("give at least one source")
        specs = [parse_source(s) for s in sources]
        sink_lists = _sinks_per_source(sinks, specs)
        if len(specs) == 1:
            runner: Any = StreamRunner(self._runner, specs[0], source_options=options, config=config,
                                       sinks=sink_lists[0], on_event=on_event, lock=self._lock)
        else:
            from fcn_edge.stream.multi import BatchConfig, MultiStreamRunner

            runner = MultiStreamRunner(self._runner, specs, source_options=options, config=config,
                                       batch=BatchConfig(max_batch=max_batch, timeout_ms=batch_timeout_ms),
                                       sinks=sink_lists, on_event=on_event, lock=self._lock)
        self.last_stats = runner.stats
        for item in runner.results():
            result = Result(labels=item.labels, confidence=item.confidence, timings=item.timings,
                            class_names=item.class_names, index=item.index, timestamp=item.frame.timestamp,
                            wall_time=item.frame.wall_time, source=specs[item.source_id].display_name,
                            frame=item.frame.image if keep_frame else None, source_id=item.source_id)
            if on_frame is not None:
                on_frame(result)
            yield result

    # ----------------------------------------------------------------- drawing
    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """BGR colour image of a class map, in the model's palette."""
        return self._visualizer_for().colorize(labels)

    def overlay(self, frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The frame with the class colours blended in."""
        return self._visualizer_for().overlay(frame, labels, alpha)

    def _visualizer_for(self):
        if self._visualizer is None:
            from fcn_edge.stream.visualize import Visualizer

            self._visualizer = Visualizer(self.info)
        return self._visualizer

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        with self._lock:
            self._runner.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segmenter({self._runner!r})"


def _source_text(source: Any) -> str:
    """A source as ``parse_source`` takes it; anything else (an image array, None) is a one-line error."""
    if isinstance(source, bool) or not isinstance(source, (str, int, os.PathLike)):
        raise FcnEdgeError(f"a source is a camera index, a path or a URL, not {type(source).__name__}; "
                           "to segment images already in memory call segment(frame)")
    return os.fspath(source) if isinstance(source, os.PathLike) else str(source)


def _sinks_per_source(sinks: Sequence[Any], specs: Sequence[Any]) -> list[list[Any]]:
    """Sink strings expand per source (as ``fcn-edge run --sink``); Sink objects are shared only by one source."""
    from fcn_edge.stream.command import source_sinks

    texts = [s for s in sinks if isinstance(s, str)]
    objects = [s for s in sinks if not isinstance(s, str)]
    lists = source_sinks(texts, list(specs)) if texts else [[] for _ in specs]
    if objects:
        if len(specs) > 1:
            raise FcnEdgeError("with several sources give sinks as strings ('out_{i}.mp4', 'display', 'labels:dir'), "
                               "or use on_frame and result.source_id; one Sink object cannot serve several sources")
        lists[0].extend(objects)
    return lists
