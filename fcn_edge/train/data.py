"""Training data: datasets, augmentation, and a data order that survives interruption.

The order of an epoch is ``DistributedSampler``'s: a permutation drawn from a
generator seeded with ``seed + epoch``, of which process ``rank`` takes every
``world``-th index.  One process (world 1) takes all of them, so a single-process run
and a multi-process run see the same images per step when the effective batch
(per-process batch x processes) matches.  :class:`ResumableSampler` adds one thing:
it can start an epoch part-way (``skip`` samples), so a resumed run continues with
exactly the batch an uninterrupted run would have drawn next, without decoding the
skipped images.

Augmentation is seeded per sample with ``(seed, epoch, index)``
(:class:`fcn_edge.data.torch_adapter.TorchSegmentationDataset`), so it does not depend
on worker count or scheduling, and each DataLoader gets its own generator (seeded per
epoch) so building one never consumes the global torch generator that dropout uses.
"""

from __future__ import annotations

import signal
from typing import Iterator

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from fcn_edge.data import TrainTransform, mean_fill_colour, open_dataset
from fcn_edge.data.base import SegmentationDataset
from fcn_edge.data.torch_adapter import TorchSegmentationDataset, collate_segmentation
from fcn_edge.artifacts.modelinfo import Preprocessing


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can begin an epoch after ``skip`` of this rank's samples."""

    def __init__(self, dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def open_split(path: str, split: str, *, skip_bad_data: bool, num_classes: int | None) -> SegmentationDataset:
    return open_dataset(path, split, on_error="skip" if skip_bad_data else "raise", num_classes=num_classes)


def train_transform(crop: tuple[int, int] | None, scale_range: tuple[float, float], flip: bool,
                    preprocessing: Preprocessing, ignore_index: int) -> TrainTransform | None:
    """The recipe's augmentation; None when it would change nothing (the paper's whole images)."""
    if crop is None and tuple(scale_range) == (1.0, 1.0) and not flip:
        return None
    return TrainTransform(crop_size=crop, scale_range=tuple(scale_range), flip=flip,
                          fill=mean_fill_colour(preprocessing), ignore_index=ignore_index)


def _ignore_stop_signals_in_worker(worker_id: int) -> None:
    """Leave SIGINT/SIGTERM to the main process.

    Ctrl-C, ``timeout``, systemd (KillMode=control-group) and most supervisors signal
    the whole process group: the main process finishes its step, saves a resumable
    checkpoint and shuts the workers down itself; a worker dying of the signal first
    would only turn that into "DataLoader worker is killed by signal".
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def epoch_loader(dataset: TorchSegmentationDataset, sampler: ResumableSampler, *, batch_size: int, workers: int,
                 seed: int, epoch: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader for one epoch (from the sampler's position), with its own seeded generator."""
    dataset.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(int(seed) * 1_000_003 + int(epoch))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_segmentation, drop_last=True, pin_memory=pin_memory,
                      worker_init_fn=_ignore_stop_signals_in_worker if workers else None, generator=generator,
                      persistent_workers=False)
