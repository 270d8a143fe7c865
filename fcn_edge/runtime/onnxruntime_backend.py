"""ONNX Runtime backend for ``.onnx`` models (CPU by default; CUDA / TensorRT execution providers on request).

The loader reads the graph's real inputs/outputs and the fcn-edge metadata through the
exporter's parser (:func:`fcn_edge.export.parse_metadata_props`); a model without any
runs on stated assumptions (:mod:`fcn_edge.runtime.fallback`), one with a broken
description is refused.  The runner binds the batch and returns labels/confidence/logits.
Thread settings are exposed because on a small CPU the intra-op pool decides whether the
capture and drawing threads of the stream runner get a core at all.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Sequence

import numpy as np

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.artifacts.onnx_metadata import (ExportFacts, check_onnx_file_external_data, parse_metadata_props,
                                              read_onnx_header)
from fcn_edge.fileio import require_file
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.runtime.base import LABELS, LOGITS, IOSpec, InferenceResult, Runner, TensorSpec, build_result
from fcn_edge.runtime.fallback import assume_model_info

log = logging.getLogger(__name__)

# short names users type -> ONNX Runtime provider names
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
_ORT_DTYPES = {
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(float)": "float32", "tensor(float16)": "float16",
    "tensor(double)": "float64", "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
}


def resolve_providers(requested: str | Sequence[Any] | None, available: Sequence[str],
                      *, device_id: int = 0, trt_fp16: bool = False,
                      trt_cache_dir: str | None = None) -> list[Any]:
    """Turn ``"cuda"`` / ``["tensorrt", "cuda"]`` / None into ONNX Runtime's provider list.

    CPU is always appended as the fallback.  A provider that was asked for but is not in
    this onnxruntime build is an error naming the package that has it (never a silent
    fall back to CPU, which would make every figure wrong).
    """
    if requested is None:
        names: list[Any] = ["cpu"]
    elif isinstance(requested, str):
        names = [p.strip() for p in requested.split(",") if p.strip()]
    else:
        names = list(requested)
    providers: list[Any] = []
    for item in names:
        options: dict[str, Any] = {}
        if isinstance(item, tuple):
            item, options = item[0], dict(item[1])
        full = PROVIDER_ALIASES.get(str(item).lower(), str(item))
        if full not in available:
            hint = "pip install onnxruntime-gpu (and the matching CUDA/cuDNN)" if full in (
                "CUDAExecutionProvider", "TensorrtExecutionProvider") else "install an onnxruntime build that has it"
            raise FcnEdgeError(f"the ONNX Runtime provider {full} was asked for but this onnxruntime has only "
                               f"{', '.join(available)}: {hint}")
        if full == "CUDAExecutionProvider":
            options.setdefault("device_id", device_id)
        elif full == "TensorrtExecutionProvider":
            options.setdefault("device_id", device_id)
            if trt_fp16:
                options.setdefault("trt_fp16_enable", True)
            if trt_cache_dir:
                options.setdefault("trt_engine_cache_enable", True)
                options.setdefault("trt_engine_cache_path", str(trt_cache_dir))
        if any((p[0] if isinstance(p, tuple) else p) == full for p in providers):
            continue
        providers.append((full, options) if options else full)
    if not any((p[0] if isinstance(p, tuple) else p) == "CPUExecutionProvider" for p in providers):
        providers.append("CPUExecutionProvider")
    return providers


def _load_error(path: str, exc: Exception) -> ArtifactError:
    """ONNX Runtime's load failure as one sentence; a file that is not ONNX at all gets the
    sentence info, export --lint-only and calibrate use (from :func:`read_onnx_header`),
    not "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF"."""
    text = str(exc)
    if "INVALID_PROTOBUF" in text or "Protobuf parsing failed" in text:
        try:
            read_onnx_header(path)  # raises the shared "is not an ONNX model (...)" sentence
        except ArtifactError as shared:
            return shared
        # the header parses but the rest does not: a truncated or damaged file all the same
        return ArtifactError(f"{path} is not an ONNX model (it is corrupt, truncated or another format); "
                             "give the .onnx written by fcn-edge export")
    first = (text.strip().splitlines() or [type(exc).__name__])[0][:300]
    return ArtifactError(f"ONNX Runtime cannot load {path}: {first}")


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(int(d) if isinstance(d, int) and d > 0 else None for d in shape)


class OnnxRuntimeRunner(Runner):
    """Runs an ``.onnx`` model with an ``onnxruntime.InferenceSession``."""

    backend = "onnxruntime"
    timing_notes = {
        **Runner.timing_notes,
        "run": "host wall time of session.run (with an I/O binding on GPU providers: upload, compute and "
               "the copy of the outputs to the host)",
    }

    def __init__(self, model_path: str | os.PathLike, *, providers: str | Sequence[Any] | None = None,
                 intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 parallel_execution: bool = False, allow_spinning: bool | None = None,
                 io_binding: bool | None = None, device_id: int = 0, outputs: Sequence[str] | None = None,
                 confidence: bool = False, trt_fp16: bool = False, trt_cache_dir: str | None = None,
                 graph_optimization: str = "all", info: ModelInfo | None = None, threads: int | None = None) -> None:
        super().__init__()
        if threads is not None:
            # ``threads`` is the name every backend understands (torch: set_num_threads)
            if intra_op_threads is not None and int(intra_op_threads) != int(threads):
                raise FcnEdgeError(f"threads={threads} and intra_op_threads={intra_op_threads} disagree; give one")
            intra_op_threads = threads
        ort = require("onnxruntime", purpose="to run .onnx models")
        path = require_file(model_path, "ONNX model", ArtifactError)
        check_onnx_file_external_data(path)  # weights beside the model only, never ../../etc/...
        self.model_path = str(path)
        self._want_confidence = confidence

        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = int(intra_op_threads)
        if inter_op_threads is not None:
            options.inter_op_num_threads = int(inter_op_threads)
        options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if parallel_execution
                                  else ort.ExecutionMode.ORT_SEQUENTIAL)
        if allow_spinning is not None:
            # A spinning pool burns the cores the capture/drawing threads need between runs.
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "1" if allow_spinning else "0")
        levels = {"none": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                  "all": "ORT_ENABLE_ALL"}
        if graph_optimization not in levels:
            raise FcnEdgeError(f"graph_optimization must be one of {', '.join(levels)}, got {graph_optimization!r}")
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, levels[graph_optimization])
        options.log_severity_level = 3

        self._providers_requested = resolve_providers(providers, ort.get_available_providers(), device_id=device_id,
                                                      trt_fp16=trt_fp16, trt_cache_dir=trt_cache_dir)
        try:
            self._session = ort.InferenceSession(self.model_path, sess_options=options,
                                                 providers=self._providers_requested)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind exception types
            raise _load_error(self.model_path, exc) from exc
        self.providers = list(self._session.get_providers())
        self._threads = (intra_op_threads, inter_op_threads)

        meta = self._session.get_modelmeta()
        described, self.facts = parse_metadata_props(dict(meta.custom_metadata_map or {}), self.model_path)
        self.io = self._build_io(self.facts, info or described)
        self.info = info or described or assume_model_info(self.model_path, io_kind=self.io.kind,
                                                           num_classes=self._classes_from_graph())
        self._confidence_scale = self.facts.confidence_scale if self.facts else None
        self._input_name = self.io.input.name

        wanted = list(outputs) if outputs else list(self.io.output_names)
        unknown = [n for n in wanted if n not in self.io.output_names]
        if unknown:
            raise FcnEdgeError(f"{self.model_path} has no output(s) {unknown}; it has {list(self.io.output_names)}")
        self._output_names = wanted
        gpu = any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in self.providers)
        self._use_binding = gpu if io_binding is None else bool(io_binding)
        self._binding_device = ("cuda", device_id) if gpu else ("cpu", 0)

    # ----------------------------------------------------------------- loading
    def _build_io(self, facts: ExportFacts | None, info: ModelInfo | None) -> IOSpec:
        """The I/O from the graph itself; the export facts add the kind and the dynamic ranges."""
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ArtifactError(f"{self.model_path} has {len(inputs)} inputs; fcn-edge runs models with one image input")
        inp = inputs[0]
        dtype = _ORT_DTYPES.get(inp.type)
        if dtype is None:
            raise ArtifactError(f"{self.model_path}: input {inp.name!r} has type {inp.type}, which fcn-edge cannot feed")
        shape = _dims(inp.shape)
        kind = facts.io if facts else ("frames" if dtype == "uint8" else "raw")
        if len(shape) != 4:
            raise ArtifactError(f"{self.model_path}: input {inp.name!r} has rank {len(shape)}; expected a 4-D image batch")
        if kind == "frames":
            layout, (h, w) = "NHWC", (shape[1], shape[2])
        else:
            layout, (h, w) = "NCHW", (shape[2], shape[3])
        size = (h, w) if h is not None and w is not None else None
        batch = shape[0]
        size_range = max_batch = min_shape = max_shape = None
        if facts is not None and facts.dynamic:
            (n_lo, h_lo, w_lo), (n_hi, h_hi, w_hi) = facts.profile("min"), facts.profile("max")
            if size is None:
                size_range = ((h_lo, w_lo), (h_hi, w_hi))
            if batch is None:
                max_batch = n_hi
            if kind == "frames":
                min_shape, max_shape = (n_lo, h_lo, w_lo, 3), (n_hi, h_hi, w_hi, 3)
            else:
                min_shape, max_shape = (n_lo, 3, h_lo, w_lo), (n_hi, 3, h_hi, w_hi)
        if batch is not None:
            max_batch = batch
        in_spec = TensorSpec(inp.name, dtype, shape, layout, min_shape, max_shape)
        out_specs = []
        for out in self._session.get_outputs():
            odims = _dims(out.shape)
            layout = "NCHW" if out.name == LOGITS or len(odims) == 4 else ("NHW" if len(odims) == 3 else "")
            out_specs.append(TensorSpec(out.name, _ORT_DTYPES.get(out.type, out.type), odims, layout))
        names = [spec.name for spec in out_specs]
        if facts is not None and (facts.input != inp.name or list(facts.outputs) != names):
            raise ArtifactError(f"{self.model_path}: its fcn-edge description names input '{facts.input}' and outputs "
                                f"{list(facts.outputs)} but the graph has input '{inp.name}' and outputs {names}: the "
                                "description does not belong to this graph; re-export it with fcn-edge export")
        if LABELS not in names and LOGITS not in names and not (kind == "raw" and len(names) == 1):
            raise ArtifactError(f"{self.model_path}: its outputs {names} include neither '{LABELS}' nor '{LOGITS}': "
                                "not a segmentation model fcn-edge can run; export one with fcn-edge export")
        preferred = (facts.size if facts else None) or (info.input_size if info and info.input_size else None) or size
        return IOSpec(kind=kind, input=in_spec, outputs=tuple(out_specs), size=size, preferred_size=preferred,
                      batch=batch, max_batch=max_batch, size_range=size_range)

    def _classes_from_graph(self) -> int | None:
        for spec in self.io.outputs:
            if spec.name == LOGITS and len(spec.shape) == 4 and spec.shape[1]:
                return int(spec.shape[1])
        return None

    # ------------------------------------------------------------------ running
    def _run(self, batch: np.ndarray) -> InferenceResult:
        start = time.perf_counter()
        if self._use_binding:
            binding = self._session.io_binding()
            binding.bind_cpu_input(self._input_name, batch)
            device, device_id = self._binding_device
            for name in self._output_names:
                binding.bind_output(name, device, device_id)
            self._session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        else:
            values = self._session.run(self._output_names, {self._input_name: batch})
        run_ms = (time.perf_counter() - start) * 1000.0
        outputs = dict(zip(self._output_names, values))
        return build_result(outputs, self.io, self.info, {"run": run_ms}, want_confidence=self._want_confidence,
                            confidence_scale=self._confidence_scale)

    def _close(self) -> None:
        self._session = None  # type: ignore[assignment]

    def _describe(self) -> dict[str, Any]:
        return {"providers": self.providers, "intra_op_threads": self._threads[0],
                "inter_op_threads": self._threads[1], "io_binding": self._use_binding,
                "precision": self.facts.precision if self.facts else None, "outputs": list(self._output_names)}


def open_onnxruntime(model_path: str | os.PathLike, **options: Any) -> OnnxRuntimeRunner:
    """Loader + runner for ``.onnx`` (see :class:`OnnxRuntimeRunner` for the options)."""
    return OnnxRuntimeRunner(model_path, **options)


__all__ = ["OnnxRuntimeRunner", "open_onnxruntime", "resolve_providers", "PROVIDER_ALIASES"]
