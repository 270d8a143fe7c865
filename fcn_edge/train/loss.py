"""Per-pixel softmax cross-entropy, normalised (modern) or summed (the paper's).

``mean``: the average over the valid pixels of the batch (label 255 ignored), the
usual choice with Adam-style optimisers and learning rates around 1e-3.

``sum``: the reference Caffe nets' ``SoftmaxWithLoss`` with ``normalize: false``: the
loss summed over an image's pixels (divided by the batch size, as Caffe does).  Its
gradients are as large as the image has pixels, which is why the paper's learning
rates are 1e-10 to 1e-14.

A batch whose pixels are all ignored gives a loss of 0 (with a gradient of 0), never
the NaN of 0/0, so a fully void crop cannot stop a run.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                      ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy of ``logits [N, C, H, W]`` against ``target [N, H, W]`` (int64)."""
    summed = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    if reduction == "sum":
        return summed / logits.shape[0]
    if reduction == "mean":
        valid = (target != ignore_index).sum()
        return summed / valid.clamp(min=1)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
