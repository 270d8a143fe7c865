"""Bytes a model moves per frame, from its declared input and output tensors.

This is the traffic between host and device memory on a GPU backend (PCIe on a
desktop, the shared DRAM on a Jetson): with the pre/post-processing in the graph a
512x512 frame is 786,432 B of uint8 in and 262,144 B of uint8 labels out (1.05 MB),
against 3,145,728 B of float32 input and 22,020,096 B of float32 logits (21 classes)
for raw I/O (25.2 MB).  On CPU backends nothing crosses a bus, but the same buffers
are written and read.

Dynamic dimensions are filled from the network size and the class count; the batch
dimension is left out (per frame).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fcn_edge.runtime.base import IOSpec, TensorSpec


def _frame_elements(spec: TensorSpec, size: tuple[int, int], channels: int) -> int:
    """Elements of one frame's slice of ``spec`` at network size ``size`` (``channels`` fills a dynamic C)."""
    dims = list(spec.shape[1:])  # drop the batch dimension
    layout = spec.layout.upper()[1:] if spec.layout else ""
    if len(layout) != len(dims):
        # no usable layout: 3-D per-frame tensors are images, 2-D ones label maps
        layout = ("HWC" if dims[-1] == 3 else "CHW") if len(dims) == 3 else ("HW" if len(dims) == 2 else "")
    fill = {"H": size[0], "W": size[1], "C": channels}
    filled = []
    for axis, dim in enumerate(dims):
        if dim is None:
            name = layout[axis] if axis < len(layout) else "?"
            if name not in fill:
                raise ValueError(f"cannot tell the size of dimension {axis + 1} of {spec.name} {spec.shape}")
            dim = fill[name]
        filled.append(int(dim))
    return int(np.prod(filled, dtype=np.int64)) if filled else 1


def tensor_bytes_per_frame(spec: TensorSpec, size: tuple[int, int], channels: int) -> int:
    """Bytes of one frame's slice of ``spec``; ``channels``: 3 for image inputs, the class count for logits."""
    return _frame_elements(spec, size, channels) * np.dtype(spec.dtype).itemsize


def io_bytes_per_frame(io: IOSpec, size: tuple[int, int], num_classes: int) -> dict[str, Any]:
    """``{"input": {name: bytes}, "outputs": {name: bytes}, "in": B, "out": B, "total": B}`` for one frame."""
    inputs = {io.input.name: tensor_bytes_per_frame(io.input, size, 3)}
    outputs = {spec.name: tensor_bytes_per_frame(spec, size, num_classes) for spec in io.outputs}
    total_in, total_out = sum(inputs.values()), sum(outputs.values())
    return {"input": inputs, "outputs": outputs, "in": total_in, "out": total_out, "total": total_in + total_out}


def format_megabytes(nbytes: int | float | None) -> str:
    """Decimal megabytes with two decimals (0.79 MB), the unit the design notes use."""
    if nbytes is None:
        return "-"
    return f"{nbytes / 1e6:.2f} MB"


__all__ = ["io_bytes_per_frame", "tensor_bytes_per_frame", "format_megabytes"]
