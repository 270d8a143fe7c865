"""Bilinear initialisation of FCN's transposed-convolution upsampling layers."""

from __future__ import annotations

import torch


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """A ``[channels, channels, k, k]`` ConvTranspose2d weight that upsamples bilinearly.

    Each channel maps only onto itself (a diagonal filter bank), as in the reference
    Caffe nets' ``bilinear`` filler and the PyTorch port's ``get_upsampling_weight``.
    With stride ``f`` and kernel ``2f`` it reproduces bilinear interpolation; with
    padding ``f/2`` its output is aligned like ``F.interpolate(align_corners=False)``
    away from the borders.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    coords = torch.arange(kernel_size, dtype=torch.float64)
    profile = 1 - (coords - center).abs() / factor
    filt = (profile[:, None] * profile[None, :]).to(torch.float32)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    index = torch.arange(channels)
    weight[index, index] = filt
    return weight
