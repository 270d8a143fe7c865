"""A thin bridge from a :class:`~fcn_edge.data.base.SegmentationDataset` to PyTorch.

torch is imported when a sample is turned into tensors, never when this module is
imported.  Randomness is per sample: the generator of sample ``i`` in epoch ``e`` is
seeded with ``(seed, e, i)``, so the augmentation is the same whatever the number of
DataLoader workers and whichever worker gets the sample.

Bad samples under ``on_error="skip"`` come through as ``None``;
:func:`collate_segmentation` drops them, and returns ``None`` when a whole batch was
bad (the training loop skips it).  Each worker process keeps its own copy of the data
report; a DataLoader with ``num_workers=0`` keeps the dataset's report complete.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fcn_edge.data.base import SegmentationDataset
from fcn_edge.data.transforms import to_network_input
from fcn_edge.errors import DataError
from fcn_edge.lazy import require

Transform = Callable[[np.ndarray, "np.ndarray | None", np.random.Generator], tuple]


class TorchSegmentationDataset:
    """``dataset[i]`` -> ``{"image": float32 [3,H,W], "mask": int64 [H,W], "index": i, "id": str}`` or None.

    ``preprocessing`` (a :class:`fcn_edge.artifacts.modelinfo.Preprocessing`) normalises the image as
    the model expects; without it the image is float32 0-255 in BGR order.  Samples
    without a mask (image-only sets) have no ``"mask"`` key.
    """

    def __init__(self, dataset: SegmentationDataset, transform: Transform | None = None,
                 preprocessing=None, seed: int = 0) -> None:
        self.dataset = dataset
        self.transform = transform
        self.preprocessing = preprocessing
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call once per epoch, before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict | None:
        torch = require("torch", purpose="to feed datasets to PyTorch")
        sample = self.dataset[index]
        if sample is None:
            return None
        image, mask = sample.image, sample.mask
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            image, mask = self.transform(image, mask, rng)
        if self.preprocessing is not None:
            array = to_network_input(image, self.preprocessing)
        else:
            array = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        item = {"image": torch.from_numpy(array), "index": int(index), "id": sample.id}
        if mask is not None:
            item["mask"] = torch.from_numpy(mask.astype(np.int64))
        return item


def collate_segmentation(batch: Sequence[dict | None]) -> dict | None:
    """Stack a batch, dropping skipped (None) samples; None when nothing is left.

    Images in one batch must share a size (crop them in training, or use batch size 1
    in evaluation); a mismatch is a DataError that says so.
    """
    torch = require("torch", purpose="to feed datasets to PyTorch")
    items = [item for item in batch if item is not None]
    if not items:
        return None
    shapes = {tuple(item["image"].shape) for item in items}
    if len(shapes) > 1:
        raise DataError(f"images of different sizes in one batch ({sorted(shapes)}); crop them to one size "
                        "(training) or use batch size 1 (evaluation)")
    out = {
        "image": torch.stack([item["image"] for item in items]),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.int64),
        "id": [item["id"] for item in items],
    }
    if all("mask" in item for item in items):
        out["mask"] = torch.stack([item["mask"] for item in items])
    return out
