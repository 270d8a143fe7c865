"""The deployable graph: camera frames in, class maps out, the FCN in between.

These torch modules wrap an FCN so that ``torch.onnx.export`` writes the pre- and
post-processing into the ONNX graph (design decision 1): the GPU casts, reorders,
normalises and takes the argmax, and the host moves uint8 frames in and uint8 label
maps out (0.79 MB + 0.26 MB per 512x512 frame instead of 3.1 MB + 22 MB of floats).

Every op is chosen for what TensorRT's ONNX parser accepts:

* ``frames`` (uint8) goes straight into a Cast to float32: TensorRT allows UINT8 only
  as a network input/output cast to or from FP32/FP16.
* The channel reorder is a Gather with a constant INT32 index (no INT64 initialiser
  for TensorRT 8.x to cast down), normalisation one Mul and one Add with per-channel
  constants folded from :class:`~fcn_edge.artifacts.modelinfo.Preprocessing`.
* ``labels``: ArgMax -> Cast(float32) -> Cast(uint8).  TensorRT turns ArgMax into
  TopK whose indices are INT32 on 8.x and INT64 on 10.x, and casts to UINT8 only
  from floats, so the float hop is what makes one graph valid on both.
* ``confidence`` (max softmax probability) defaults to uint8 scaled by 255: one byte
  per pixel like the labels, resolution 1/255 is finer than any threshold a robot
  uses, and it travels the same UINT8 output path.  ``float16`` is available.  The
  uint8 value is ``floor(p * 255 + 0.5)``, so the final Cast only ever sees whole
  numbers and TensorRT's and ONNX Runtime's float-to-int rounding cannot differ.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fcn_edge.artifacts.modelinfo import CONFIDENCE_UINT8_MAX, Preprocessing, label_dtype

OUTPUT_NAMES = ("labels", "confidence", "logits")
# uint8 and float16 are what ``fcn-edge export`` offers; float32 is for the PyTorch
# runtime backend (fcn_edge.runtime.torch_backend), which runs this same module as the
# reference in precision comparisons.
CONFIDENCE_DTYPES = ("uint8", "float16", "float32")


class FramesToInput(nn.Module):
    """uint8 ``[N, H, W, 3]`` frames in camera channel order -> normalised float ``[N, 3, H, W]``.

    ``normalised = (pixel * scale - mean) / std`` is computed as ``pixel * gain + offset``
    with ``gain = scale / std`` and ``offset = -mean / std`` (two ops, exact to float
    rounding), after reordering channels from the camera's order to the weights'.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.swap = preprocessing.needs_channel_swap
        gain = [preprocessing.scale / s for s in preprocessing.std]
        offset = [-m / s for m, s in zip(preprocessing.mean, preprocessing.std)]
        self.register_buffer("gain", torch.tensor(gain, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        # BGR <-> RGB is the only reorder two 3-channel orders can need.
        self.register_buffer("order", torch.tensor([2, 1, 0], dtype=torch.int32), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(torch.float32).permute(0, 3, 1, 2)
        if self.swap:
            x = torch.index_select(x, 1, self.order)
        return x * self.gain + self.offset


class SegmentationOutputs(nn.Module):
    """Logits ``[N, C, H, W]`` -> the requested outputs, in the order given."""

    def __init__(self, outputs: Sequence[str], num_classes: int, confidence_dtype: str = "uint8") -> None:
        super().__init__()
        unknown = [o for o in outputs if o not in OUTPUT_NAMES]
        if unknown or not outputs:
            raise ValueError(f"outputs must be a non-empty subset of {', '.join(OUTPUT_NAMES)}, got {list(outputs)}")
        if confidence_dtype not in CONFIDENCE_DTYPES:
            raise ValueError(f"confidence dtype must be one of {', '.join(CONFIDENCE_DTYPES)}, got {confidence_dtype!r}")
        self.outputs = tuple(outputs)
        self.labels_dtype = torch.uint8 if label_dtype(num_classes) == "uint8" else torch.int32
        self.confidence_dtype = confidence_dtype

    def forward(self, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        results = []
        for name in self.outputs:
            if name == "labels":
                index = torch.argmax(logits, dim=1)
                if self.labels_dtype == torch.uint8:
                    # ArgMax -> Cast(float) -> Cast(uint8): see the module docstring.
                    results.append(index.to(torch.float32).to(torch.uint8))
                else:
                    results.append(index.to(torch.int32))
            elif name == "confidence":
                prob = torch.amax(torch.softmax(logits, dim=1), dim=1)
                if self.confidence_dtype == "uint8":
                    results.append(torch.floor(prob * float(CONFIDENCE_UINT8_MAX) + 0.5).to(torch.uint8))
                else:
                    results.append(prob.to(getattr(torch, self.confidence_dtype)))
            else:
                results.append(logits)
        return tuple(results)


class DeployableFCN(nn.Module):
    """An FCN with in-graph pre-processing (``io="frames"``) and post-processing."""

    def __init__(self, fcn: nn.Module, preprocessing: Preprocessing, num_classes: int, *, io: str = "frames",
                 outputs: Sequence[str] = ("labels",), confidence_dtype: str = "uint8") -> None:
        super().__init__()
        if io not in ("frames", "raw"):
            raise ValueError(f"io must be 'frames' or 'raw', got {io!r}")
        self.io = io
        self.pre = FramesToInput(preprocessing) if io == "frames" else None
        self.fcn = fcn
        self.post = SegmentationOutputs(outputs, num_classes, confidence_dtype)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.pre is not None:
            x = self.pre(x)
        return self.post(self.fcn(x))


def preprocess_frames(frames: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """The same pre-processing written plainly (reference for checks): uint8 NHWC -> NCHW float."""
    x = frames.to(torch.float64)
    if preprocessing.needs_channel_swap:
        x = x.flip(-1)
    mean = torch.tensor(preprocessing.mean, dtype=torch.float64)
    std = torch.tensor(preprocessing.std, dtype=torch.float64)
    x = (x * preprocessing.scale - mean) / std
    return x.permute(0, 3, 1, 2).to(torch.float32).contiguous()


class AlignedAnySize(nn.Module):
    """Exports an aligned-geometry FCN through :meth:`forward_padded` instead of ``forward``.

    ``FCN.forward`` pads only ``if`` H or W is not a multiple of 32.  A static export
    resolves that branch at export time (and the exporter folds the pad into conv1_1's
    pads), but with dynamic H/W both exporters bake in the branch taken by the example
    input (dynamo: output dims ``32*(height//32)``; TorchScript: silently).  The model's
    public ``forward_padded`` always pads by ``ceil(h/32)*32 - h`` (zero at multiples of
    32) and crops, so one graph is right for every size in the profile; torch.onnx
    exports a module's ``forward``, hence this wrapper.
    """

    def __init__(self, fcn: nn.Module) -> None:
        super().__init__()
        if getattr(fcn, "geometry", None) != "aligned":
            raise ValueError("AlignedAnySize wraps aligned-geometry models only")
        self.fcn = fcn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fcn.forward_padded(x)
