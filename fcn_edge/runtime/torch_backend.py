"""PyTorch backend for ``.pt`` checkpoints: for comparisons and for users without an export yet.

It runs the very torch modules ``fcn-edge export`` turns into the ONNX graph
(:class:`fcn_edge.export.graph.DeployableFCN`: uint8 NHWC frames -> float, channel
reorder, ``(x * scale - mean) / std``, the FCN, argmax -> labels through float, softmax
confidence, logits), so ``.pt``, ``.onnx`` and ``.engine`` runners return the same thing
for the same frames by construction.  Confidence stays float32 here (the reference in
precision comparisons); the export stores it as uint8 or float16.  torch is imported
only when this module is (that is, when a ``.pt`` model is opened).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import ModelInfo, label_dtype
from fcn_edge.runtime.base import (CONFIDENCE, IOSpec, InferenceResult, LABELS, LOGITS, Runner, TensorSpec,
                                   build_result)

torch = require("torch", purpose="to run .pt checkpoints")


class TorchRunner(Runner):
    """Runs a self-describing checkpoint (or a bare FCN state_dict) with PyTorch."""

    backend = "torch"
    timing_notes = {
        **Runner.timing_notes,
        "run": "host wall time of the PyTorch call: frames to the device, forward pass with the in-graph "
               "pre/post-processing, and .cpu() copies of the outputs (which wait for the GPU to finish)",
    }

    def __init__(self, model_path: str | os.PathLike, *, device: str = "cpu", threads: int | None = None,
                 confidence: bool = False, logits: bool = False, io: str = "frames",
                 geometry: str | None = None, info: ModelInfo | None = None,
                 size: tuple[int, int] | None = None, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "fp16"):
            raise FcnEdgeError(f"precision must be fp32 or fp16 for the PyTorch backend, got {precision!r}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise FcnEdgeError("precision fp16 needs device='cuda' (half-precision convolutions on the CPU are slow "
                               "or unsupported); use fp32 on the CPU")
        # fp16 runs the FCN under autocast, like a user's own mixed-precision inference;
        # pre/post-processing stay in float32 so labels are comparable with the exports.
        self.precision = precision
        # The build half's model code, imported here only: the one place the device half
        # reaches it (a .pt checkpoint is a torch model; tests/test_layers.py lists this).
        from fcn_edge.checkpoint import load_checkpoint
        from fcn_edge.export.graph import DeployableFCN

        self.model_path = str(model_path)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise FcnEdgeError(f"device {device!r} was asked for but this torch has no CUDA "
                               f"(torch {torch.__version__}): use device='cpu' or install a CUDA build of torch")
        self.device = torch.device(device)
        if threads is not None:
            torch.set_num_threads(int(threads))
        if self.device.type == "cuda":
            # peak device memory is reported from here on (weights, activations, outputs)
            torch.cuda.reset_peak_memory_stats(self.device)
        checkpoint = load_checkpoint(model_path, info=info)
        self.info = checkpoint.info
        model = checkpoint.build_model(geometry=geometry).eval().to(self.device)
        outputs = [LABELS] + ([CONFIDENCE] if confidence else []) + ([LOGITS] if logits else [])
        if io not in ("frames", "raw"):
            raise FcnEdgeError(f"io must be 'frames' or 'raw', got {io!r}")
        self._module = DeployableFCN(model, self.info.preprocessing, self.info.num_classes, io=io, outputs=outputs,
                                     confidence_dtype="float32").eval().to(self.device)
        self._outputs = tuple(outputs)
        if io == "raw":
            in_spec = TensorSpec("input", "float32", (None, 3, None, None), "NCHW")
        else:
            in_spec = TensorSpec("frames", "uint8", (None, None, None, 3), "NHWC")
        specs = {LABELS: TensorSpec(LABELS, label_dtype(self.info.num_classes), (None, None, None), "NHW"),
                 CONFIDENCE: TensorSpec(CONFIDENCE, "float32", (None, None, None), "NHW"),
                 LOGITS: TensorSpec(LOGITS, "float32", (None, self.info.num_classes, None, None), "NCHW")}
        preferred = tuple(size) if size else self.info.input_size
        self.io = IOSpec(kind=io, input=in_spec, outputs=tuple(specs[o] for o in outputs), size=None,
                         preferred_size=preferred, batch=None, max_batch=None)

    def _run(self, batch: np.ndarray) -> InferenceResult:
        start = time.perf_counter()
        module = self._module
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            if module.pre is not None:
                x = module.pre(x)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.precision == "fp16"):
                logits = module.fcn(x)
            values = module.post(logits.float())  # post-processing in float32, as in the exported graph
            arrays = [v.cpu().numpy() for v in values]
        run_ms = (time.perf_counter() - start) * 1000.0
        return build_result(dict(zip(self._outputs, arrays)), self.io, self.info, {"run": run_ms})

    def _close(self) -> None:
        self._module = None  # type: ignore[assignment]

    def device_memory(self) -> dict[str, Any]:
        if self.device.type != "cuda":
            return {}
        allocated = int(torch.cuda.max_memory_allocated(self.device))
        reserved = int(torch.cuda.max_memory_reserved(self.device))
        return {"bytes": allocated, "parts": {"peak_allocated": allocated, "peak_reserved": reserved},
                "source": "torch.cuda.max_memory_allocated since the runner opened (weights, activations, "
                          "outputs; the caching allocator's reserve and the CUDA context are not included)"}

    def _describe(self) -> dict[str, Any]:
        return {"device": str(self.device), "precision": self.precision, "torch": torch.__version__,
                "threads": torch.get_num_threads()}


def open_torch(model_path: str | os.PathLike, **options: Any) -> TorchRunner:
    """Loader + runner for ``.pt``/``.pth`` (see :class:`TorchRunner` for the options)."""
    return TorchRunner(model_path, **options)
