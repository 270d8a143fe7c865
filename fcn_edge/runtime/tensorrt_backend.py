"""TensorRT backend for ``.engine``/``.plan`` files: name-based I/O, two buffer sets, three streams.

One code path for TensorRT 8.5 through 11: ``num_io_tensors``,
``get_tensor_name/mode/dtype/shape``, ``get_tensor_profile_shape``, ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` (binding indices, ``execute_async_v2``
and implicit batch are gone since 10.0).

How a batch flows (``submit``): the frames are copied into the page-locked input buffer
of the next free buffer set, uploaded on the *copy-in* stream, computed on the
*compute* stream once the upload's event has fired, and downloaded on the *copy-out*
stream once the compute event has fired.  With two buffer sets the upload of frame N+1
runs while frame N computes, and frame N's download while N+1 computes; the host is
blocked only when it collects a result (``PendingInference.result``).  GPU time of each
stage is measured with CUDA events.  Output dtypes are whatever the engine says
(ArgMax is int32 on 8.x, int64 on 10.x unless the graph casts it to uint8) and are
normalised to uint8 labels on the host.

Loading goes through the engine stage's own code: the sidecar (``<engine>.json``) is
read and checked against this TensorRT and GPU by
:func:`fcn_edge.artifacts.sidecar.prepare_engine_load` (one sentence naming every
difference, before TensorRT sees the bytes), the GPU comes from
:func:`fcn_edge.artifacts.gpu.probe_gpu`, and the ``trt.Runtime`` is prepared and the
engine's I/O read by :mod:`fcn_edge.runtime.trt_load`, exactly as build-engine did when
it verified the engine.  An engine with no sidecar (built by ``trtexec`` or another
tool) still runs, unchecked and undescribed, with a warning saying so.

All buffer arithmetic lives in :mod:`fcn_edge.runtime.trt_buffers` and all CUDA calls
in :mod:`fcn_edge.runtime.cuda_memory`; this module only talks to TensorRT.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fcn_edge.artifacts.gpu import GpuInfo, GpuUnavailable, probe_gpu
from fcn_edge.artifacts.sidecar import (EngineLoadSettings, EngineSidecar, engine_load_settings, load_settings,
                                     prepare_engine_load, read_sidecar, sidecar_path_for)
from fcn_edge.runtime.trt_load import prepare_runtime, read_engine_io
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.artifacts.onnx_metadata import ExportFacts
from fcn_edge.fileio import require_file
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.runtime.base import LOGITS, InferenceResult, PendingInference, Runner, build_result
from fcn_edge.runtime.cuda_memory import CudaMemory, DeviceBuffer, Event, check_binding, open_cuda
from fcn_edge.runtime.fallback import assume_model_info
from fcn_edge.runtime.trt_buffers import BufferPlan, BufferRing, EngineTensor, check_input_shape, engine_io_spec

log = logging.getLogger(__name__)


@dataclass
class _BufferSet:
    device: dict[str, DeviceBuffer]
    host: dict[str, np.ndarray]
    events: dict[str, Event] = field(default_factory=dict)
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    submitted_at: float = 0.0


# What an engine without a sidecar is loaded with: built plainly, as far as anyone can tell.
PLAIN_LOAD = engine_load_settings(version_compatible=False, exclude_lean_runtime=False, dla_core=None)


def describe_engine_tensors(trt: Any, engine: Any, profile: int = 0) -> list[EngineTensor]:
    """The engine's I/O tensors (read as build-engine reads them), with numpy dtypes for the buffers."""
    return [EngineTensor.from_engine(t) for t in read_engine_io(trt, engine, profile)]


def _gpu_here(device_id: int) -> GpuInfo | None:
    """This machine's GPU for the sidecar check; None (the check then warns) if the driver cannot say."""
    try:
        return probe_gpu(device_id)
    except GpuUnavailable as exc:
        log.warning("cannot query CUDA device %d for the engine check: %s", device_id, exc)
        return None


class TensorRTRunner(Runner):
    """Runs a serialised TensorRT engine; see the module docstring for the data flow.

    ``check_sidecar=False`` loads an engine whose sidecar disagrees with this machine
    (the sidecar is still read for the model description); ``lean_runtime`` is the path
    of TensorRT's lean runtime library for engines built with ``--exclude-lean-runtime``;
    ``cuda`` is the CUDA layer: ``auto`` (cuda-python, else pycuda, else libcudart through
    ctypes), ``cuda-python``, ``pycuda`` or ``ctypes`` (see :mod:`fcn_edge.runtime.cuda_memory`).
    """

    backend = "tensorrt"
    timing_notes = {
        "infer": "host wall time from submit() (frames copied into page-locked memory) to the outputs on the "
                 "host: staging copy, upload, compute, download and waiting for the GPU",
        "h2d": "GPU time of the input upload (CUDA events on the copy-in stream)",
        "compute": "GPU time of execute_async_v3 (CUDA events on the compute stream, after the upload)",
        "d2h": "GPU time of the output download (CUDA events on the copy-out stream)",
    }

    def __init__(self, model_path: str | os.PathLike, *, cuda: str = "auto", device_id: int = 0,
                 buffer_sets: int = 2, check_sidecar: bool = True, info: ModelInfo | None = None,
                 profile: int = 0, confidence: bool = False, lean_runtime: str | os.PathLike | None = None) -> None:
        super().__init__()
        try:
            self._open(model_path, cuda, device_id, buffer_sets, check_sidecar, info, profile, confidence, lean_runtime)
        except BaseException:
            self._closed = True
            self._close()
            raise

    def _open(self, model_path: str | os.PathLike, cuda: str, device_id: int, buffer_sets: int, check_sidecar: bool,
              info: ModelInfo | None, profile: int, confidence: bool, lean_runtime: str | os.PathLike | None) -> None:
        check_binding(cuda)  # a mistyped --cuda/cuda= is one sentence even where TensorRT is absent
        path = require_file(model_path, "TensorRT engine", ArtifactError)
        self.trt = require("tensorrt", purpose="to run TensorRT engines")
        self.model_path = str(path)
        self._want_confidence = confidence
        # The sidecar check first: an engine for another TensorRT or GPU, or a mismatched pair, is one
        # sentence before any CUDA context exists (and without a CUDA binding installed).
        self.sidecar, data, settings = self._read_engine(path, device_id, check_sidecar)
        self.cuda: CudaMemory = open_cuda(cuda, device_id)
        gpu, cc = self.cuda.device_name(), self.cuda.compute_capability()

        self._logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._runtime = prepare_runtime(self.trt.Runtime(self._logger), settings,
                                        str(lean_runtime) if lean_runtime else None)
        self._engine_bytes = len(data)
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            built = f" (built with TensorRT {self.sidecar.trt_version})" if self.sidecar else ""
            lean = ("; it excludes TensorRT's lean runtime: pass lean_runtime=PATH (--lean-runtime) to the "
                    "libnvinfer_lean library of that TensorRT version"
                    if settings.load_lean_runtime and not lean_runtime else "")
            raise ArtifactError(f"TensorRT {self.trt.__version__} cannot load the engine {path}{built} on {gpu} "
                                f"(sm_{cc[0]}{cc[1]}): it was built for another TensorRT version or GPU, or is "
                                f"corrupt{lean}; rebuild it here with fcn-edge build-engine")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise FcnEdgeError(f"TensorRT could not create an execution context for {path} (out of GPU memory?)")
        if profile:
            self._profile_stream = self.cuda.stream()
            self.context.set_optimization_profile_async(profile, self._profile_stream.handle)
            self._profile_stream.synchronize()

        self.tensors = describe_engine_tensors(self.trt, self.engine, profile)
        described, self.facts = self._description(path)
        if not (info or described):
            described = assume_model_info(path, io_kind=engine_io_spec(self.tensors).kind, num_classes=self._classes())
        self.info = info or described
        self.io = engine_io_spec(self.tensors, self.info.input_size)
        self._input = next(t for t in self.tensors if t.is_input)
        self._confidence_scale = self.facts.confidence_scale if self.facts else None

        # Output sizes at the largest accepted input shape: allocate once, never while streaming.
        if self._input.is_dynamic:
            self._set_shape(self._input.max_shape)
        self.plan = BufferPlan(self.tensors, {t.name: tuple(self.context.get_tensor_shape(t.name))
                                              for t in self.tensors if not t.is_input})
        self.max_in_flight = int(buffer_sets)
        self.ring = BufferRing(buffer_sets)
        self._copy_in = self.cuda.stream()
        self._compute = self.cuda.stream()
        self._copy_out = self.cuda.stream()
        self._sets = [self._allocate_set() for _ in range(buffer_sets)]
        self._current_shape: tuple[int, ...] | None = None
        log.info("TensorRT %s engine %s on %s via %s: %d buffer sets, %.1f MiB each", self.trt.__version__,
                 path.name, gpu, self.cuda.name, buffer_sets, self.plan.total_bytes() / 2**20)

    # ------------------------------------------------------------------ loading
    def _read_engine(self, path, device_id: int, check: bool) -> tuple[EngineSidecar | None, bytes, EngineLoadSettings]:
        """The sidecar (checked against this machine unless ``check`` is off), the engine bytes, how to load them."""
        if not sidecar_path_for(path).exists():
            log.warning("%s has no sidecar %s (not built by fcn-edge build-engine, or copied without it): its "
                        "TensorRT version and GPU cannot be checked before loading", path, sidecar_path_for(path).name)
            return None, path.read_bytes(), PLAIN_LOAD
        if not check:
            sidecar = read_sidecar(path)
            log.warning("not checking %s against this TensorRT and GPU (sidecar check turned off): %s",
                        path.name, sidecar.describe())
            return sidecar, path.read_bytes(), load_settings(sidecar)
        sidecar, data, settings, warnings = prepare_engine_load(path, self.trt.__version__, _gpu_here(device_id))
        for warning in warnings:
            log.warning("%s: %s", path.name, warning)
        return sidecar, data, settings

    def _description(self, path) -> tuple[ModelInfo | None, ExportFacts | None]:
        """The model description and export facts the sidecar carries (copied from the ONNX by build-engine)."""
        if self.sidecar is None:
            return None, None
        where = sidecar_path_for(path)
        model, export = self.sidecar.model, self.sidecar.data.get("export")
        try:
            info = ModelInfo.from_dict(model) if model else None
            facts = ExportFacts.from_dict(export) if export else None
        except ArtifactError as exc:
            raise ArtifactError(f"{where}: {exc}; rebuild the engine with fcn-edge build-engine") from None
        return info, facts

    def _classes(self) -> int | None:
        logits = next((t for t in self.tensors if t.name == LOGITS and not t.is_input), None)
        return int(logits.shape[1]) if logits is not None and len(logits.shape) == 4 and logits.shape[1] > 0 else None

    # ------------------------------------------------------------------ buffers
    def _allocate_set(self) -> _BufferSet:
        device = {name: self.cuda.malloc(size) for name, size in self.plan.sizes.items()}
        host = {name: self.cuda.pinned_empty(size, np.uint8) for name, size in self.plan.sizes.items()}
        events = {key: self.cuda.event() for key in
                  ("start", "uploaded", "compute_start", "computed", "download_start", "downloaded")}
        return _BufferSet(device, host, events)

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if not self.context.set_input_shape(self._input.name, tuple(int(d) for d in shape)):
            raise FcnEdgeError(f"TensorRT rejected input shape {tuple(shape)} for {self._input.name!r}")

    # ------------------------------------------------------------------- running
    def submit(self, batch: Any) -> PendingInference:
        self._check_open()
        prepared = self.prepare_input(batch)
        shape = check_input_shape(self._input, prepared.shape)
        self.cuda.make_current()
        index = self.ring.acquire()
        buffers = self._sets[index]
        events = buffers.events
        buffers.submitted_at = time.perf_counter()
        try:
            staged = self.plan.host_view(buffers.host[self._input.name], self._input.name, shape)
            np.copyto(staged, prepared, casting="same_kind")

            events["start"].record(self._copy_in)
            self.cuda.copy_htod_async(buffers.device[self._input.name], staged, self._copy_in)
            events["uploaded"].record(self._copy_in)

            self._compute.wait_event(events["uploaded"])
            events["compute_start"].record(self._compute)  # after the wait: measures compute only
            if self._input.is_dynamic and shape != self._current_shape:
                self._set_shape(shape)
                self._current_shape = shape
            for name, buffer in buffers.device.items():
                self.context.set_tensor_address(name, buffer.ptr)
            buffers.output_shapes = {t.name: tuple(int(d) for d in self.context.get_tensor_shape(t.name))
                                     for t in self.plan.outputs}
            if not self.context.execute_async_v3(self._compute.handle):
                raise FcnEdgeError(f"TensorRT failed to enqueue {self.model_path} (see the TensorRT log above)")
            events["computed"].record(self._compute)

            self._copy_out.wait_event(events["computed"])
            events["download_start"].record(self._copy_out)
            for name, out_shape in buffers.output_shapes.items():
                view = self.plan.host_view(buffers.host[name], name, out_shape)
                self.cuda.copy_dtoh_async(view, buffers.device[name], self._copy_out)
            events["downloaded"].record(self._copy_out)
        except BaseException:
            self._compute.synchronize()
            self._copy_out.synchronize()
            self.ring.release(index)
            raise
        return PendingInference(lambda: self._collect(index))

    def _collect(self, index: int) -> InferenceResult:
        buffers = self._sets[index]
        events = buffers.events
        try:
            self.cuda.make_current()
            events["downloaded"].synchronize()
            outputs = {name: self.plan.host_view(buffers.host[name], name, shape).copy()
                       for name, shape in buffers.output_shapes.items()}
            timings = {
                "h2d": events["uploaded"].elapsed_ms(events["start"]),
                "compute": events["computed"].elapsed_ms(events["compute_start"]),
                "d2h": events["downloaded"].elapsed_ms(events["download_start"]),
                "infer": (time.perf_counter() - buffers.submitted_at) * 1000.0,
            }
        finally:
            self.ring.release(index)
        return build_result(outputs, self.io, self.info, timings, want_confidence=self._want_confidence,
                            confidence_scale=self._confidence_scale)

    def _run(self, batch: np.ndarray) -> InferenceResult:  # pragma: no cover - submit() is overridden
        return self.submit(batch).result()

    def _close(self) -> None:
        cuda = getattr(self, "cuda", None)
        if cuda is None:
            return
        streams = [getattr(self, name, None) for name in ("_copy_in", "_compute", "_copy_out", "_profile_stream")]
        streams = [stream for stream in streams if stream is not None]
        try:
            cuda.make_current()
            for stream in streams:
                stream.synchronize()
        except Exception:  # noqa: BLE001 - closing must not raise over the original error
            pass
        for buffers in getattr(self, "_sets", []):
            for buffer in buffers.device.values():
                buffer.free()
            for event in buffers.events.values():
                event.close()
        for stream in streams:
            stream.close()
        self._sets = []
        self.context = None
        self.engine = None
        cuda.close()

    def device_memory(self) -> dict[str, Any]:
        engine = getattr(self, "engine", None)
        if engine is None:
            return {}
        parts: dict[str, int] = {}
        # TensorRT 10.1 deprecated device_memory_size for device_memory_size_v2
        for attribute in ("device_memory_size_v2", "device_memory_size"):
            value = getattr(engine, attribute, None)
            if isinstance(value, (int, np.integer)):
                parts["activations"] = int(value)
                break
        parts["io_buffers"] = int(self.plan.total_bytes(self.ring.sets))
        parts["engine_file"] = int(self._engine_bytes)
        return {"bytes": sum(parts.values()), "parts": parts,
                "source": "TensorRT: the execution context's activation memory (engine.device_memory_size) + the "
                          "runner's device I/O buffers + the serialised engine size (about the weights); the CUDA "
                          "context and TensorRT's own workspace outside the engine are not included"}

    def _describe(self) -> dict[str, Any]:
        return {"tensorrt": self.trt.__version__, "cuda_binding": self.cuda.name, "gpu": self.cuda.device_name(),
                "buffer_sets": self.ring.sets, "buffer_bytes": self.plan.total_bytes(self.ring.sets),
                "engine": self.sidecar.describe() if self.sidecar else "no sidecar"}


def open_tensorrt(model_path: str | os.PathLike, **options: Any) -> TensorRTRunner:
    """Loader + runner for ``.engine``/``.plan`` (see :class:`TensorRTRunner` for the options)."""
    return TensorRTRunner(model_path, **options)
