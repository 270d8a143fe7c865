"""PyTorch backend for ``.pt`` checkpoints: for comparisons and for users without an export yet.

It applies, in torch, the same pre- and post-processing the exported graph carries
(:class:`FramesModule`): uint8 NHWC frames -> float, channel reorder, ``(x * scale -
mean) / std``, the FCN, argmax -> uint8 labels (through float, as the exported graph
does for TensorRT), optional softmax confidence and logits.  So ``.pt``, ``.onnx`` and
``.engine`` runners return the same thing for the same frames.  torch is imported
only when this module is (that is, when a ``.pt`` model is opened).
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np

from fcn_edge.errors import FcnEdgeError
from fcn_edge.lazy import require
from fcn_edge.modelinfo import ModelInfo, Preprocessing
from fcn_edge.runtime.base import (CONFIDENCE, IOSpec, InferenceResult, LABELS, LOGITS, Runner, TensorSpec,
                                   build_result)

torch = require("torch", purpose="to run .pt checkpoints")
nn = torch.nn


class FramesModule(nn.Module):
    """FCN with the deployed graph's pre/post-processing: uint8 NHWC frames in, labels out.

    ``outputs`` picks and orders the outputs among ``labels``, ``confidence``, ``logits``.
    """

    def __init__(self, model: "nn.Module", preprocessing: Preprocessing, num_classes: int,
                 outputs: Sequence[str] = (LABELS,)) -> None:
        super().__init__()
        unknown = [o for o in outputs if o not in (LABELS, CONFIDENCE, LOGITS)]
        if unknown or not outputs:
            raise ValueError(f"outputs must be among labels/confidence/logits, got {list(outputs)}")
        self.model = model
        self.outputs = tuple(outputs)
        self.swap = preprocessing.needs_channel_swap
        self.register_buffer("order", torch.tensor([2, 1, 0], dtype=torch.long), persistent=False)
        scale = float(preprocessing.scale)
        std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1)
        # (x * scale - mean) / std == x * (scale / std) - mean / std: one mul, one sub
        self.register_buffer("mul", scale / std, persistent=False)
        self.register_buffer("sub", mean / std, persistent=False)
        self.label_dtype = torch.uint8 if num_classes <= 256 else torch.int32

    def normalise(self, frames: "torch.Tensor") -> "torch.Tensor":
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        if self.swap:
            x = torch.index_select(x, 1, self.order)
        return x * self.mul - self.sub

    def forward(self, frames: "torch.Tensor"):
        logits = self.model(self.normalise(frames)).float()
        return self.head(logits)

    def head(self, logits: "torch.Tensor"):
        results = []
        for name in self.outputs:
            if name == LABELS:
                # ArgMax -> float -> uint8: the cast chain TensorRT accepts for a uint8 output
                results.append(logits.argmax(1).to(torch.float32).to(self.label_dtype))
            elif name == CONFIDENCE:
                results.append(torch.softmax(logits, 1).amax(1))
            else:
                results.append(logits)
        return tuple(results) if len(results) > 1 else results[0]


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
        from fcn_edge.checkpoint import load_checkpoint

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
        self._module = FramesModule(model, self.info.preprocessing, self.info.num_classes, outputs).eval().to(self.device)
        self._outputs = tuple(outputs)
        if io not in ("frames", "raw"):
            raise FcnEdgeError(f"io must be 'frames' or 'raw', got {io!r}")
        if io == "raw":
            in_spec = TensorSpec("input", "float32", (None, 3, None, None), "NCHW")
        else:
            in_spec = TensorSpec("frames", "uint8", (None, None, None, 3), "NHWC")
        label_dtype = "uint8" if self.info.num_classes <= 256 else "int32"
        specs = {LABELS: TensorSpec(LABELS, label_dtype, (None, None, None), "NHW"),
                 CONFIDENCE: TensorSpec(CONFIDENCE, "float32", (None, None, None), "NHW"),
                 LOGITS: TensorSpec(LOGITS, "float32", (None, self.info.num_classes, None, None), "NCHW")}
        preferred = tuple(size) if size else self.info.input_size
        self.io = IOSpec(kind=io, input=in_spec, outputs=tuple(specs[o] for o in outputs), size=None,
                         preferred_size=preferred, batch=None, max_batch=None)

    def _run(self, batch: np.ndarray) -> InferenceResult:
        start = time.perf_counter()
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.precision == "fp16"):
                if self.io.kind == "raw":
                    values = self._module.head(self._module.model(tensor).float())
                else:
                    values = self._module(tensor)
            if not isinstance(values, tuple):
                values = (values,)
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
