"""The TensorRT runner's buffer logic, kept free of TensorRT and CUDA so it is tested with numpy.

What lives here: TensorRT dtypes -> numpy dtypes; the I/O description of an
engine (which tensor is the image input, frames or raw, fixed or dynamic size and
batch, from the engine's shapes and optimisation-profile ranges); input-shape checks
against a profile; byte sizes of every buffer for the largest shape the engine accepts
(allocated once, never during streaming); and the rotation of two (or more) buffer
sets, so frame N+1 is uploaded into one set while frame N computes in the other, with
results collected in submission order.  The thin TensorRT/CUDA part is in
:mod:`fcn_edge.runtime.tensorrt_backend`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from fcn_edge.artifacts.trt_tables import HOST_DTYPES, TRT_DTYPES, EngineIO, trt_type_member
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.runtime.base import CONFIDENCE, IOSpec, LABELS, LOGITS, TensorSpec


def numpy_dtype(dtype: object) -> np.dtype:
    """A TensorRT dtype -> its numpy dtype; one-line error for types numpy lacks.

    Takes ``trt.DataType.HALF``, its name (``"HALF"``, ``"DataType.HALF"``) or the dtype
    name :func:`fcn_edge.runtime.trt_load.read_engine_io` reports (``"float16"``): the
    table is the engine builder's (:data:`fcn_edge.artifacts.trt_tables.TRT_DTYPES`), so the
    sidecar and the runtime never disagree on a type.
    """
    if isinstance(dtype, str) and dtype in TRT_DTYPES.values():
        name = dtype
    else:
        member = trt_type_member(dtype)
        if member not in TRT_DTYPES:
            raise ArtifactError(f"engine tensor type {member} is unknown to fcn-edge")
        name = TRT_DTYPES[member]
    if name not in HOST_DTYPES:
        raise ArtifactError(f"engine I/O tensor type {name} has no numpy equivalent; rebuild the engine with "
                            "float32/float16/uint8/int32 inputs and outputs")
    return np.dtype(name)


def volume(shape: Iterable[int]) -> int:
    total = 1
    for dim in shape:
        if dim < 0:
            raise ValueError(f"shape {tuple(shape)} still has a dynamic dimension")
        total *= int(dim)
    return total


def nbytes(shape: Iterable[int], dtype: np.dtype | str) -> int:
    return volume(shape) * np.dtype(dtype).itemsize


@dataclass(frozen=True)
class EngineTensor:
    """One I/O tensor as the engine reports it; ``-1`` marks dynamic dims.

    ``profile`` is ``(min, opt, max)`` from the optimisation profile for dynamic inputs.
    """

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

    @classmethod
    def from_engine(cls, tensor: EngineIO) -> "EngineTensor":
        """From what :func:`fcn_edge.runtime.trt_load.read_engine_io` read (numpy dtype checked here)."""
        return cls(tensor.name, tensor.is_input, numpy_dtype(tensor.dtype), tensor.shape, tensor.profile)

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)

    @property
    def max_shape(self) -> tuple[int, ...]:
        if not self.is_dynamic:
            return self.shape
        if self.profile is None:
            raise ArtifactError(f"engine input {self.name!r} has dynamic shape {self.shape} but no optimisation profile")
        return tuple(self.profile[2])

    @property
    def min_shape(self) -> tuple[int, ...]:
        if not self.is_dynamic:
            return self.shape
        if self.profile is None:
            raise ArtifactError(f"engine input {self.name!r} has dynamic shape {self.shape} but no optimisation profile")
        return tuple(self.profile[0])


def check_input_shape(tensor: EngineTensor, shape: Sequence[int]) -> tuple[int, ...]:
    """The shape to set for ``tensor``: static dims must match, dynamic ones lie within the profile."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(tensor.shape):
        raise FcnEdgeError(f"engine input {tensor.name!r} has rank {len(tensor.shape)}, got shape {shape}")
    lo = tensor.min_shape
    hi = tensor.max_shape
    for axis, (dim, want, a, b) in enumerate(zip(shape, tensor.shape, lo, hi)):
        if want >= 0 and dim != want:
            raise FcnEdgeError(f"engine input {tensor.name!r} needs {tensor.shape} (axis {axis} = {want}), got {shape}")
        if not a <= dim <= b:
            raise FcnEdgeError(f"engine input {tensor.name!r} accepts {tuple(lo)} .. {tuple(hi)} "
                               f"(its optimisation profile), got {shape}; rebuild the engine with a wider profile")
    return shape


class BufferPlan:
    """Bytes to allocate per tensor (device and pinned host), for the largest accepted shapes.

    ``output_max_shapes`` are the output shapes TensorRT reports once every input is set
    to its profile maximum (the runner asks the execution context); with them no buffer
    is ever reallocated while streaming.
    """

    def __init__(self, tensors: Sequence[EngineTensor], output_max_shapes: Mapping[str, Sequence[int]]) -> None:
        self.tensors = list(tensors)
        self.max_shapes: dict[str, tuple[int, ...]] = {}
        for tensor in self.tensors:
            if tensor.is_input:
                self.max_shapes[tensor.name] = tensor.max_shape
            else:
                shape = output_max_shapes.get(tensor.name, tensor.shape)
                if any(d < 0 for d in shape):
                    raise ArtifactError(f"engine output {tensor.name!r} has unresolved shape {tuple(shape)}")
                self.max_shapes[tensor.name] = tuple(int(d) for d in shape)
        self.sizes = {t.name: nbytes(self.max_shapes[t.name], t.dtype) for t in self.tensors}

    @property
    def inputs(self) -> list[EngineTensor]:
        return [t for t in self.tensors if t.is_input]

    @property
    def outputs(self) -> list[EngineTensor]:
        return [t for t in self.tensors if not t.is_input]

    def tensor(self, name: str) -> EngineTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def total_bytes(self, sets: int = 1) -> int:
        return sum(self.sizes.values()) * sets

    def host_view(self, buffer: np.ndarray, name: str, shape: Sequence[int]) -> np.ndarray:
        """The part of a tensor's flat (max-sized) host buffer that holds ``shape``, typed and shaped."""
        tensor = self.tensor(name)
        count = volume(shape)
        flat = buffer.view(np.uint8)[: count * tensor.dtype.itemsize].view(tensor.dtype)
        return flat.reshape(tuple(shape))


class BufferRing:
    """Round-robin over ``n`` buffer sets, results collected in submission order.

    ``acquire()`` hands out the next set; it is busy until ``release()``d, which must
    happen oldest first.  Asking for a set that is still busy is a programming error
    (the caller submitted more than ``n`` batches without collecting), reported as such.
    """

    def __init__(self, sets: int = 2) -> None:
        if sets < 1:
            raise ValueError("at least one buffer set is needed")
        self.sets = sets
        self._next = 0
        self._in_flight: deque[int] = deque()

    def acquire(self) -> int:
        index = self._next
        if index in self._in_flight:
            raise RuntimeError(f"all {self.sets} buffer sets are in flight: collect the oldest result before submitting")
        self._in_flight.append(index)
        self._next = (index + 1) % self.sets
        return index

    def release(self, index: int) -> None:
        if not self._in_flight or self._in_flight[0] != index:
            raise RuntimeError(f"buffer set {index} released out of order (in flight: {list(self._in_flight)})")
        self._in_flight.popleft()

    @property
    def in_flight(self) -> list[int]:
        return list(self._in_flight)

    @property
    def free(self) -> int:
        return self.sets - len(self._in_flight)


def engine_io_spec(tensors: Sequence[EngineTensor], preferred_size: tuple[int, int] | None = None) -> IOSpec:
    """Describe an engine's I/O in the runtime's terms (frames or raw, sizes, batch range)."""
    inputs = [t for t in tensors if t.is_input]
    outputs = [t for t in tensors if not t.is_input]
    if len(inputs) != 1:
        raise ArtifactError(f"the engine has {len(inputs)} inputs; fcn-edge runs engines with one image input")
    if not outputs:
        raise ArtifactError("the engine has no outputs")
    inp = inputs[0]
    if len(inp.shape) != 4:
        raise ArtifactError(f"engine input {inp.name!r} has rank {len(inp.shape)}; expected a 4-D image batch")
    frames = inp.dtype == np.uint8 and inp.shape[3] == 3
    kind = "frames" if frames else "raw"
    hw_axes = (1, 2) if frames else (2, 3)
    shape = tuple(None if d < 0 else int(d) for d in inp.shape)
    h, w = shape[hw_axes[0]], shape[hw_axes[1]]
    size = (h, w) if h is not None and w is not None else None
    lo, hi = inp.min_shape, inp.max_shape
    size_range = None if size else ((lo[hw_axes[0]], lo[hw_axes[1]]), (hi[hw_axes[0]], hi[hw_axes[1]]))
    batch = shape[0]
    max_batch = batch if batch is not None else hi[0]
    in_spec = TensorSpec(inp.name, inp.dtype.name, shape, "NHWC" if frames else "NCHW",
                         tuple(lo) if inp.is_dynamic else None, tuple(hi) if inp.is_dynamic else None)
    out_specs = []
    for out in outputs:
        oshape = tuple(None if d < 0 else int(d) for d in out.shape)
        layout = "NCHW" if out.name == LOGITS else ("NHW" if out.name in (LABELS, CONFIDENCE) else "")
        out_specs.append(TensorSpec(out.name, out.dtype.name, oshape, layout))
    preferred = size or preferred_size
    if preferred is None and inp.profile is not None:  # the profile's optimum is what it was tuned for
        opt = inp.profile[1]
        preferred = (int(opt[hw_axes[0]]), int(opt[hw_axes[1]]))
    return IOSpec(kind=kind, input=in_spec, outputs=tuple(out_specs), size=size, preferred_size=preferred,
                  batch=batch, max_batch=max_batch, size_range=size_range)
