"""Validation during training: the eval loop, with the model still in memory.

The model being trained is wrapped in a :class:`ModulePredictor` and scored by
:func:`fcn_edge.eval.run_evaluation`, the loop ``fcn-edge eval`` uses: same decoding,
same resize rule (the deployment size for aligned models, the image's own size for
paper-geometry ones), predictions mapped back to the label size, one confusion
matrix.  So the mean IU a run reports for ``best.pt`` is what ``fcn-edge eval best.pt``
reports on the same split.

With several processes each one scores a shard of the images (``rank::world``, no
duplicates) and the confusion matrices are summed with ``all_reduce``.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from fcn_edge.data.base import SegmentationDataset
from fcn_edge.eval.loop import run_evaluation
from fcn_edge.eval.predict import Predictor
from fcn_edge.metrics import ConfusionMatrix
from fcn_edge.artifacts.modelinfo import ModelInfo
from fcn_edge.train.distributed import DistContext


class ModulePredictor(Predictor):
    """An ``nn.Module`` taking normalised NCHW floats, seen as a frames-in, labels-out predictor.

    Normalisation is :func:`fcn_edge.data.to_network_input`'s, done in torch on the
    model's device: optional BGR->RGB swap, ``x * scale - mean``, ``/ std``.
    """

    backend = "torch (in training)"

    def __init__(self, module: nn.Module, info: ModelInfo, device: torch.device, amp: bool = False,
                 name: str = "model") -> None:
        self.module = module
        self.info = info
        self.device = device
        self.amp = amp
        self.name = name
        self.preferred_size = info.input_size
        pp = info.preprocessing
        self._swap = pp.needs_channel_swap
        std = torch.tensor(pp.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(pp.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._scale = float(pp.scale)
        self._mean = mean
        self._std = std

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        if self._swap:
            x = x.flip(1)
        return (x * self._scale - self._mean) / self._std

    def predict(self, frames: np.ndarray) -> np.ndarray:
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp and self.device.type == "cuda" \
            else nullcontext()
        with torch.inference_mode(), autocast:
            x = self.normalise(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
            labels = self.module(x).argmax(1)
        dtype = torch.uint8 if self.info.num_classes <= 256 else torch.int32
        return labels.to(dtype).cpu().numpy()


def validate(module: nn.Module, info: ModelInfo, dataset: SegmentationDataset, context: DistContext, *,
             amp: bool = False, batch_size: int = 8, workers: int = 2, limit: int | None = None) -> ConfusionMatrix:
    """Score ``module`` on ``dataset`` (this rank's shard), summed over ranks; restores train mode."""
    was_training = module.training
    module.eval()
    try:
        count = len(dataset) if limit is None else min(limit, len(dataset))
        shard = list(range(context.rank, count, context.world_size))
        predictor = ModulePredictor(module, info, context.device, amp)
        result = run_evaluation([predictor], dataset, indices=shard, batch_size=batch_size, workers=workers,
                                num_classes=info.num_classes)
        matrix = result.tallies[0].matrix
        if context.distributed:
            summed = torch.from_numpy(matrix.matrix.copy())
            context.all_reduce_sum(summed)
            matrix.matrix[:] = summed.numpy()
        return matrix
    finally:
        module.train(was_training)
