"""Activation ranges with ONNX Runtime's calibrators (entropy, max, percentile), in bounded memory.

ONNX Runtime's calibrators run an "augmented" copy of the model whose every float
tensor is also a graph output, and keep all those outputs of every image they are fed
before reducing them (to a histogram or a min/max).  At 512x512 a full FCN-8s produces
about half a gigabyte of activations per image, so feeding 300 images at once would
need >100 GB.  Here the images go to the calibrator in chunks sized to a memory budget:
min/max merges exactly across chunks, and the histogram calibrators merge their
histograms chunk by chunk (their documented incremental use), so memory stays at one
chunk's activations whatever the number of images.  The chunk size depends only on the
model and the budget, so the same inputs give the same ranges.

The result, :class:`TensorRanges`, is what both outputs are made of: the Q/DQ graph
(given to ``quantize_static`` as its calibration cache) and TensorRT's calibration
cache.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require

log = logging.getLogger("fcn_edge.calib")

ORT_METHODS = {"entropy": "Entropy", "max": "MinMax", "percentile": "Percentile"}


@dataclass
class TensorRanges:
    """``{tensor: (low, high)}`` from one calibration, plus how it was computed."""

    method: str
    ranges: dict[str, tuple[float, float]]
    options: dict
    images: int
    chunk: int

    def amax(self, name: str) -> float:
        low, high = self.ranges[name]
        return max(abs(low), abs(high))

    def to_ort(self):
        """The ``TensorsData`` ONNX Runtime's quantizer reads (symmetric ranges are made by the quantizer)."""
        calibrate = require("onnxruntime.quantization.calibrate", purpose="to calibrate ONNX models")
        method = getattr(calibrate.CalibrationMethod, ORT_METHODS[self.method])
        data = {name: calibrate.TensorData(lowest=np.array(low, dtype=np.float32), highest=np.array(high, dtype=np.float32))
                for name, (low, high) in self.ranges.items()}
        return calibrate.TensorsData(method, data)

    def save_ort_cache(self, path: Path) -> Path:
        calibrate = require("onnxruntime.quantization.calibrate", purpose="to calibrate ONNX models")
        calibrate.save_tensors_data(self.to_ort(), path)
        return path


class _FrameFeeder:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over prepared input batches.

    ``set_range`` (the reader protocol's chunking hook) selects which batches the next
    ``collect_data`` call sees; ``on_batch`` advances the progress bar.
    """

    def __init__(self, input_name: str, batches: Sequence[np.ndarray], on_batch: Callable[[int], None],
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.input_name = input_name
        self.batches = batches
        self.on_batch = on_batch
        self.prepare = prepare
        self._start, self._end, self._next = 0, len(batches), 0

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end = start_index, min(end_index, len(self.batches))
        self._next = self._start

    def get_next(self) -> dict | None:
        if self._next >= self._end:
            return None
        batch = self.batches[self._next]
        self._next += 1
        self.on_batch(int(batch.shape[0]))
        return {self.input_name: self.prepare(batch) if self.prepare is not None else batch}

    def __iter__(self) -> Iterator[dict]:
        while (item := self.get_next()) is not None:
            yield item


def activation_bytes_per_image(model, tensors: Sequence[str] | None = None) -> int:
    """float32 bytes of the tensors the calibrator would collect for one image (from shape inference)."""
    sizes = 0
    wanted = set(tensors) if tensors is not None else None
    for vi in list(model.graph.value_info) + list(model.graph.output):
        if wanted is not None and vi.name not in wanted:
            continue
        if not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type != 1:
            continue
        numel = 1
        for axis, dim in enumerate(vi.type.tensor_type.shape.dim):
            if axis == 0:
                continue  # per image
            numel *= dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else 64
        sizes += numel * 4
    return max(sizes, 1)


def chunk_size(model, budget_mib: int, images_per_batch: int) -> int:
    """Batches per calibrator call so that one call's activations fit ``budget_mib``.

    Each collected output is held in float32, and the histogram collector makes a
    flattened copy of it while reducing, hence the factor 2.
    """
    per_image = activation_bytes_per_image(model) * 2
    return max(1, int(budget_mib * 2 ** 20 // (per_image * max(1, images_per_batch))))


def compute_ranges(model_path: Path, input_name: str, batches: Sequence[np.ndarray], *, method: str,
                   percentile: float = 99.99, histogram_bins: int = 1024, quantized_bins: int = 128,
                   budget_mib: int = 1024, shape_model=None, show_progress: bool = True,
                   images: int | None = None, scratch: Path | None = None,
                   prepare: Callable[[np.ndarray], np.ndarray] | None = None,
                   tensors: Sequence[str] | None = None, label: str | None = None) -> TensorRanges:
    """Run ONNX Runtime's calibrator for ``method`` over ``batches``; ranges of every float tensor.

    ``model_path`` is the (shape-inferred) FP32 graph; ``shape_model`` its loaded proto
    for sizing chunks; ``label`` names the model being made in the log (the demo makes two
    INT8 models in a row).  ONNX Runtime prints its progress to stdout: that is captured and
    sent to the debug log so the command's own output stays parseable.  ``prepare`` turns
    a stored uint8 batch into the model input when it is fed (raw-I/O normalisation), so
    only uint8 frames are held in memory.  ``tensors`` limits the histogram methods to
    the tensors that will be quantized or cached (the entropy search costs about 0.1 s
    per tensor; pre/post-processing tensors need no range).
    """
    quant = require("onnxruntime.quantization", purpose="to calibrate ONNX models")
    from fcn_edge.progress import progress

    if method not in ORT_METHODS:
        raise FcnEdgeError(f"unknown calibration method {method!r}; choose entropy, max or percentile")
    per_batch = int(batches[0].shape[0]) if batches else 1
    chunk = chunk_size(shape_model, budget_mib, per_batch) if shape_model is not None else 8
    options: dict[str, Any] = {}
    if method == "entropy":
        options = {"num_bins": int(histogram_bins), "num_quantized_bins": int(quantized_bins), "symmetric": False}
    elif method == "percentile":
        options = {"num_bins": int(histogram_bins), "percentile": float(percentile), "symmetric": True}
    else:
        options = {"symmetric": False}
    total_images = images if images is not None else sum(int(b.shape[0]) for b in batches)
    with tempfile.TemporaryDirectory(prefix="fcn-edge-calib-", dir=scratch) as tmp:
        augmented = Path(tmp) / "augmented.onnx"
        with _quiet_stdout():
            calibrator = quant.create_calibrator(
                Path(model_path), None, augmented_model_path=str(augmented),
                calibrate_method=getattr(quant.CalibrationMethod, ORT_METHODS[method]),
                providers=["CPUExecutionProvider"], extra_options=options)
        if tensors is not None and isinstance(getattr(calibrator, "tensors_to_calibrate", None), set):
            # HistogramCalibrater filters what it histograms by this set (ORT >= 1.13)
            calibrator.tensors_to_calibrate &= set(tensors)
        with progress(total=total_images, desc=f"calibrating ({method})", unit="img",
                      disable=not show_progress) as bar:
            feeder = _FrameFeeder(input_name, batches, bar.update, prepare)
            for start in range(0, len(batches), chunk):
                feeder.set_range(start, start + chunk)
                with _quiet_stdout():
                    calibrator.collect_data(feeder)
        log.info("computing %s ranges%s", method, f" for {label}" if label else "")
        with _quiet_stdout():
            data = calibrator.compute_data()
        del calibrator
    ranges: dict[str, tuple[float, float]] = {}
    for name, value in data.items():
        low, high = value.range_value
        low, high = float(np.asarray(low).min()), float(np.asarray(high).max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise FcnEdgeError(f"calibration produced a non-finite range for tensor {name!r} ({low}, {high}); "
                               "the model outputs NaN/Inf on the calibration images")
        ranges[name] = (low, high)
    recorded = dict(options, method=method)
    if method == "percentile":
        recorded["percentile"] = float(percentile)
    return TensorRanges(method, ranges, recorded, total_images, chunk)


@contextlib.contextmanager
def _quiet_stdout():
    """Keep ONNX Runtime's quantization chatter (print() and root-logger warnings) out of the output.

    It prints progress to stdout and logs advice such as "consider running
    pre-processing" through the root logger, which would otherwise configure a root
    handler on first use.  Both go to fcn_edge's debug log instead.
    """
    buffer = io.StringIO()
    root = logging.getLogger()
    handler = _ListHandler()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        text = buffer.getvalue().strip()
        if text:
            log.debug("onnxruntime: %s", " | ".join(text.splitlines()))
        for record in handler.records:
            log.debug("onnxruntime: %s", record.getMessage())


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
