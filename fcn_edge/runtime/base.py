"""The one interface every backend implements: :class:`Runner`.

Like NVIDIA Polygraphy's runners: a loader turns an artifact into something runnable
(``.onnx`` -> ONNX Runtime session, ``.engine`` -> TensorRT engine, ``.pt`` -> torch
module) and the runner on top of it has the same surface whatever the backend, so the
streaming runner, the Python API, eval and bench never branch on the backend.

A runner takes a *batch*: ``uint8 [N, H, W, 3]`` camera frames (channel order as the
camera delivers it, BGR for OpenCV) for models with ``io == "frames"``, or normalised
``float32 [N, 3, H, W]`` for ``io == "raw"`` models (those also accept uint8 frames and
normalise them on the host).  It returns an :class:`InferenceResult` with class labels
at network resolution, confidence and logits when the model has them, and the
backend's own timings.

Backends that can overlap work (TensorRT with two buffer sets, a remote server) expose
that through :meth:`Runner.submit`, which returns a :class:`PendingInference`; up to
:attr:`Runner.max_in_flight` submissions may be outstanding.  :meth:`Runner.infer` is
``submit(batch).result()``.  A runner is not thread-safe: use one thread per runner, or
a lock (as :class:`fcn_edge.api.Segmenter` does).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import CONFIDENCE_UINT8_MAX, ModelInfo, label_dtype

IO_KINDS = ("frames", "raw")
LABELS, CONFIDENCE, LOGITS = "labels", "confidence", "logits"


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype, shape and layout of one model input or output.

    ``shape`` holds ``None`` for dynamic dimensions.  ``min_shape``/``max_shape`` give
    the range a dynamic input accepts when the artifact says so (TensorRT profiles,
    the export's ``dynamic`` block); they equal ``shape`` for static tensors.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    layout: str = ""
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def is_dynamic(self) -> bool:
        return any(d is None for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "dtype": self.dtype, "shape": list(self.shape), "layout": self.layout,
            "min_shape": list(self.min_shape) if self.min_shape else None,
            "max_shape": list(self.max_shape) if self.max_shape else None,
        }


@dataclass(frozen=True)
class IOSpec:
    """What a runner takes and returns.

    ``kind`` is ``frames`` (uint8 NHWC in, labels out: pre/post-processing in the
    graph) or ``raw`` (float NCHW normalised in, logits out).  ``size`` is the fixed
    ``(H, W)`` the model requires, ``None`` when any size in ``size_range`` works;
    ``preferred_size`` is the size the model was meant to run at (export size or
    ModelInfo.input_size), what the stream runner resizes to when nothing else is asked.
    ``batch`` is the fixed batch size or ``None`` when dynamic (up to ``max_batch``).
    """

    kind: str
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    size: tuple[int, int] | None = None
    preferred_size: tuple[int, int] | None = None
    batch: int | None = 1
    max_batch: int | None = None
    size_range: tuple[tuple[int, int], tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in IO_KINDS:
            raise ValueError(f"io kind must be one of {IO_KINDS}, got {self.kind!r}")

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def has_output(self, name: str) -> bool:
        return name in self.output_names

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def dynamic_batch(self) -> bool:
        return self.batch is None

    def network_size(self, requested: tuple[int, int] | None = None,
                     frame_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """The ``(H, W)`` to feed: the model's fixed size, else the request, the preferred size or the frame's."""
        if self.size is not None:
            if requested is not None and tuple(requested) != tuple(self.size):
                raise FcnEdgeError(f"this model takes a fixed input size of {self.size[0]}x{self.size[1]}; "
                                   f"the requested size {requested[0]}x{requested[1]} cannot be used "
                                   "(export the model with a dynamic size or at the size you need)")
            return self.size
        chosen = requested or self.preferred_size or frame_size
        if chosen is None:
            raise FcnEdgeError("this model accepts any input size and none was given: pass size=(H, W) / --size HxW")
        if self.size_range is not None:
            (hmin, wmin), (hmax, wmax) = self.size_range
            if not (hmin <= chosen[0] <= hmax and wmin <= chosen[1] <= wmax):
                raise FcnEdgeError(f"input size {chosen[0]}x{chosen[1]} is outside the model's range "
                                   f"{hmin}x{wmin} .. {hmax}x{wmax}: pass --size within it")
        return int(chosen[0]), int(chosen[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "input": self.input.to_dict(), "outputs": [o.to_dict() for o in self.outputs],
            "size": list(self.size) if self.size else None,
            "preferred_size": list(self.preferred_size) if self.preferred_size else None,
            "batch": self.batch, "max_batch": self.max_batch,
            "size_range": [list(s) for s in self.size_range] if self.size_range else None,
        }


@dataclass
class InferenceResult:
    """One batch's outputs at network resolution, plus how long it took.

    ``labels``: ``[N, H, W]`` uint8 class ids (int32 when the model has more than 255
    classes: :func:`fcn_edge.artifacts.modelinfo.label_dtype`).  ``confidence``: ``[N, H, W]``
    float32 probability of the winning class (0-1) when the model outputs it, whatever
    the graph stores (uint8 x ``confidence_scale``, float16).
    ``logits``: ``[N, C, H, W]`` float32 when the model outputs them (raw models).
    ``timings``: milliseconds; ``infer`` is the host wall time from submission to the
    result being on the host; backends add their own stages (``h2d``, ``compute``,
    ``d2h`` measured with CUDA events on TensorRT; ``run`` for ONNX Runtime).
    ``extra``: any other model outputs by name.
    """

    labels: np.ndarray
    confidence: np.ndarray | None = None
    logits: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def item(self, index: int) -> "InferenceResult":
        """The result for one frame of the batch (arrays keep their leading dimension of 1)."""
        sl = slice(index, index + 1)
        return InferenceResult(
            labels=self.labels[sl],
            confidence=None if self.confidence is None else self.confidence[sl],
            logits=None if self.logits is None else self.logits[sl],
            timings=dict(self.timings),
            extra={k: v[sl] for k, v in self.extra.items()},
        )


class PendingInference:
    """A submitted batch whose result can be collected once with :meth:`result`."""

    def __init__(self, collect: Callable[[], InferenceResult]) -> None:
        self._collect: Callable[[], InferenceResult] | None = collect
        self._result: InferenceResult | None = None

    @classmethod
    def done(cls, result: InferenceResult) -> "PendingInference":
        pending = cls(lambda: result)
        return pending

    def result(self) -> InferenceResult:
        if self._result is None:
            if self._collect is None:
                raise RuntimeError("result already collected")
            collect, self._collect = self._collect, None
            self._result = collect()
        return self._result


class Runner(abc.ABC):
    """Base of every backend runner; see the module docstring for the contract.

    Subclasses set ``backend``, ``model_path``, ``info`` and ``io`` in ``__init__`` and
    implement :meth:`_run` (and :meth:`_close`); backends that overlap work override
    :meth:`submit` and ``max_in_flight``.
    """

    backend: str = "?"
    max_in_flight: int = 1
    #: What each key of ``InferenceResult.timings`` measures, for reports that must say
    #: what their numbers include (``fcn-edge bench``).  Backends extend it.
    timing_notes: dict[str, str] = {
        "infer": "host wall time from the start of the run (input already checked) to the outputs on the host",
    }

    model_path: str
    info: ModelInfo
    io: IOSpec

    def __init__(self) -> None:
        self._closed = False

    # ---------------------------------------------------------------- public API
    def infer(self, batch: np.ndarray | Sequence[np.ndarray]) -> InferenceResult:
        """Run one batch to completion."""
        return self.submit(batch).result()

    def submit(self, batch: np.ndarray | Sequence[np.ndarray]) -> PendingInference:
        """Start a batch; the default runs it synchronously."""
        self._check_open()
        prepared = self.prepare_input(batch)
        start = time.perf_counter()
        result = self._run(prepared)
        result.timings.setdefault("infer", (time.perf_counter() - start) * 1000.0)
        return PendingInference.done(result)

    def warmup(self, size: tuple[int, int] | None = None, batch: int = 1, iterations: int = 1) -> None:
        """Run dummy batches so the first real frame does not pay for lazy initialisation."""
        size = self.io.network_size(size)
        if self.io.batch is not None:
            batch = self.io.batch
        frames = np.zeros((batch, size[0], size[1], 3), np.uint8)
        for _ in range(iterations):
            self.infer(frames)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def device_memory(self) -> dict[str, Any]:
        """GPU memory this runner can account for, or ``{}`` when the backend cannot tell.

        ``{"bytes": total, "parts": {name: bytes}, "source": "what was counted"}``;
        backends on the CPU or on a remote server return ``{}``.
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """Facts for logs and stats JSON: backend, model, io, backend options."""
        return {"backend": self.backend, "model": str(self.model_path), "io": self.io.to_dict(), **self._describe()}

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort on garbage collection
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend} {Path(str(self.model_path)).name} io={self.io.kind}>"

    # --------------------------------------------------------------- input checks
    def prepare_input(self, batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Validate a batch and turn it into exactly what the model's input wants.

        A single ``HxWx3`` frame (or ``3xHxW`` float tensor for raw models) counts as a
        batch of one; a list of equally sized frames is stacked.  uint8 frames given to a
        raw model are normalised here with the model's preprocessing.
        """
        array = _as_array(batch)
        if self.io.kind == "frames":
            array = check_frames(array, self.io, self.model_path)
        else:
            if array.dtype == np.uint8:
                from fcn_edge.runtime.preprocess import frames_to_raw

                array = frames_to_raw(check_frames(array, self.io, self.model_path), self.info.preprocessing)
            array = check_raw(array, self.io, self.model_path)
        return array

    # ---------------------------------------------------------------- subclasses
    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> InferenceResult:
        """Run a prepared batch synchronously."""

    def _close(self) -> None:
        """Release backend resources."""

    def _describe(self) -> dict[str, Any]:
        return {}

    def _check_open(self) -> None:
        if self._closed:
            raise FcnEdgeError(f"the {self.backend} runner for {self.model_path} is closed")


# ------------------------------------------------------------------ helpers
def _as_array(batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(batch, np.ndarray):
        return batch
    if isinstance(batch, (list, tuple)):
        if not batch:
            raise FcnEdgeError("empty batch: give at least one frame")
        shapes = {np.asarray(b).shape for b in batch}
        if len(shapes) != 1:
            raise FcnEdgeError(f"frames of one batch must have the same size, got {sorted(shapes)}; resize them first")
        return np.stack([np.asarray(b) for b in batch])
    raise FcnEdgeError(f"a batch must be a numpy array or a list of arrays, got {type(batch).__name__}")


def check_frames(array: np.ndarray, io: IOSpec, where: Any = "model") -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` frames fitting the model's size and batch range."""
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise FcnEdgeError(f"{where}: frames must be HxWx3 or NxHxWx3 colour images, got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        raise FcnEdgeError(f"{where}: frames must be uint8 (0-255), got {array.dtype}; "
                           "convert with frame.astype(np.uint8) or give float NCHW input to a raw-I/O model")
    _check_batch_and_size(array.shape[0], (array.shape[1], array.shape[2]), io, where)
    return np.ascontiguousarray(array)


def check_raw(array: np.ndarray, io: IOSpec, where: Any = "model") -> np.ndarray:
    """float32 ``[N, 3, H, W]`` normalised input for a raw-I/O model."""
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1] != 3:
        raise FcnEdgeError(f"{where}: raw input must be 3xHxW or Nx3xHxW normalised floats, got shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise FcnEdgeError(f"{where}: raw input must be floating point, got {array.dtype}")
    _check_batch_and_size(array.shape[0], (array.shape[2], array.shape[3]), io, where)
    return np.ascontiguousarray(array, dtype=io.input.np_dtype if io.input.np_dtype.kind == "f" else np.float32)


def _check_batch_and_size(n: int, size: tuple[int, int], io: IOSpec, where: Any) -> None:
    if io.batch is not None and n != io.batch:
        raise FcnEdgeError(f"{where} takes batches of exactly {io.batch} frame(s), got {n}"
                           + ("; split the batch" if n > io.batch else "; pad the batch"))
    if io.max_batch is not None and n > io.max_batch:
        raise FcnEdgeError(f"{where} takes at most {io.max_batch} frames per batch, got {n}; split the batch")
    if n < 1:
        raise FcnEdgeError(f"{where}: empty batch")
    if io.size is not None and tuple(size) != tuple(io.size):
        raise FcnEdgeError(f"{where} takes {io.size[0]}x{io.size[1]} (HxW) input, got {size[0]}x{size[1]}; "
                           "resize the frames first (the stream runner and Segmenter do it for you)")


def normalise_label_array(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class ids as ``[N, H, W]`` uint8 (int32 beyond 255 classes), whatever the backend returned.

    TensorRT's ArgMax comes back int32 (8.x) or int64 (10.x) unless the graph casts it,
    sometimes with a kept channel axis ``[N, 1, H, W]``; float class ids appear when
    the graph casts through float.  All of them become the same thing here.
    """
    array = np.asarray(labels)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise FcnEdgeError(f"label output has shape {tuple(array.shape)}; expected [N, H, W]")
    target = np.dtype(label_dtype(num_classes))
    if array.dtype == target:
        return array
    if array.dtype.kind == "f":
        array = np.rint(array)
    return array.astype(target, copy=False)


def labels_from_logits(logits: np.ndarray, num_classes: int) -> np.ndarray:
    """Host-side argmax for raw models (ties go to the lower class, as ONNX/torch argmax)."""
    return normalise_label_array(np.argmax(logits, axis=1), num_classes)


def confidence_from_logits(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of the winning class, ``[N, H, W]`` float32."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted, dtype=np.float32)
    return (1.0 / exp.sum(axis=1)).astype(np.float32)


def build_result(outputs: Mapping[str, np.ndarray], io: IOSpec, info: ModelInfo,
                 timings: dict[str, float] | None = None, *, want_confidence: bool = False,
                 confidence_scale: float | None = None) -> InferenceResult:
    """Turn named model outputs into an :class:`InferenceResult` (labels always present).

    ``confidence_scale`` is the export facts' (probability = stored value x scale); when
    the model does not say, uint8 confidence is read as fcn-edge stores it (x 1/255).
    """
    outputs = dict(outputs)
    logits = outputs.pop(LOGITS, None)
    labels = outputs.pop(LABELS, None)
    confidence = outputs.pop(CONFIDENCE, None)
    if labels is None and logits is None and len(outputs) == 1 and io.kind == "raw":
        # a raw export whose single output is not named 'logits'
        logits = outputs.pop(next(iter(outputs)))
    if labels is None:
        if logits is None:
            raise FcnEdgeError(f"the model's outputs {sorted(io.output_names)} include neither 'labels' nor 'logits'")
        labels = labels_from_logits(logits, info.num_classes)
        if want_confidence and confidence is None:
            confidence = confidence_from_logits(logits)
    else:
        labels = normalise_label_array(labels, info.num_classes)
    if confidence is not None:
        confidence = np.asarray(confidence)
        scale = confidence_scale if confidence_scale is not None else (
            1.0 / CONFIDENCE_UINT8_MAX if confidence.dtype == np.uint8 else 1.0)
        confidence = confidence.astype(np.float32)
        if scale != 1.0:
            confidence *= np.float32(scale)
        if confidence.ndim == 4 and confidence.shape[1] == 1:
            confidence = confidence[:, 0]
    if logits is not None:
        logits = np.asarray(logits, dtype=np.float32)
    return InferenceResult(labels=labels, confidence=confidence, logits=logits,
                           timings=dict(timings or {}), extra=outputs)
