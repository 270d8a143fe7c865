"""The evaluation loop: the same images, the same resize, every model.

For each image (decoded by a few threads ahead of the models):

1. the network size is chosen by :func:`network_size` (a fixed-size model's size; else
   ``--size``; else the image's own size for paper-geometry models, which take any
   size; else the model's preferred/deployment size; else the image's size);
2. the frame is resized with :func:`fcn_edge.data.resize_for_network` (bilinear), the
   one resize the runner and calibration use too;
3. the model's labels are mapped back to the label's size with nearest-neighbour
   (:func:`fcn_edge.data.labels_to_size`) and scored against the *original* mask, so
   resizing never changes the ground truth;
4. with several models, each one's labels are compared with the first model's
   (pixel agreement, over every pixel of the image).

Only numpy and OpenCV are needed here: ``.onnx`` and ``.engine`` models are evaluated
on machines without torch.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from fcn_edge.data import labels_to_size, resize_for_network
from fcn_edge.data.base import Sample, SegmentationDataset
from fcn_edge.errors import FcnEdgeError
from fcn_edge.eval.predict import Predictor
from fcn_edge.metrics import ConfusionMatrix


def network_size(predictor: Predictor, frame_size: tuple[int, int],
                 requested: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (H, W) a frame of ``frame_size`` is resized to before ``predictor`` sees it."""
    fixed = predictor.fixed_size
    if fixed is not None:
        if requested is not None and tuple(requested) != tuple(fixed):
            raise FcnEdgeError(f"{predictor.name} takes a fixed input size of {fixed[0]}x{fixed[1]}; --size "
                               f"{requested[0]}x{requested[1]} cannot be used with it (drop --size, or export the "
                               "model with a dynamic size)")
        return int(fixed[0]), int(fixed[1])
    if requested is not None:
        size = (int(requested[0]), int(requested[1]))
    elif predictor.info.geometry == "paper":
        size = (int(frame_size[0]), int(frame_size[1]))
    elif predictor.preferred_size is not None:
        size = (int(predictor.preferred_size[0]), int(predictor.preferred_size[1]))
    else:
        size = (int(frame_size[0]), int(frame_size[1]))
    size_range = getattr(predictor, "size_range", None)
    if size_range is not None:
        (hmin, wmin), (hmax, wmax) = size_range
        if not (hmin <= size[0] <= hmax and wmin <= size[1] <= wmax):
            raise FcnEdgeError(f"{predictor.name} accepts sizes {hmin}x{wmin} to {hmax}x{wmax}; {size[0]}x{size[1]} "
                               "is outside that range: pass --size within it")
    return size


@dataclass
class ModelTally:
    """What one model accumulated over the images."""

    matrix: ConfusionMatrix
    seconds: float = 0.0
    sizes: Counter = field(default_factory=Counter)
    agree_pixels: int = 0
    total_pixels: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agree_pixels / self.total_pixels if self.total_pixels else None


@dataclass
class LoopResult:
    tallies: list[ModelTally]
    images: int
    seconds: float


def prefetch(dataset: SegmentationDataset, indices: Sequence[int], workers: int) -> Iterator[Sample | None]:
    """``dataset.get(i)`` for each index, in order, decoded by ``workers`` threads ahead of use.

    OpenCV's decoders release the GIL, so threads overlap decoding with inference
    without the cost (and the torch dependency) of worker processes.
    """
    if workers <= 0:
        for index in indices:
            yield dataset.get(index)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fcn-edge-eval-read")
    try:
        pending: deque = deque()
        feed = iter(indices)
        for index in islice(feed, workers * 4):
            pending.append(pool.submit(dataset.get, index))
        while pending:
            future = pending.popleft()
            following = next(feed, None)
            if following is not None:
                pending.append(pool.submit(dataset.get, following))
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunks(samples: Iterable[Sample | None], size: int) -> Iterator[list[Sample]]:
    chunk: list[Sample] = []
    for sample in samples:
        if sample is None:
            continue
        chunk.append(sample)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run_batches(predictor: Predictor, frames: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Labels for equally sized frames, in sub-batches the model accepts (padding a fixed batch)."""
    step = predictor.fixed_batch or min(batch_size, predictor.max_batch or batch_size)
    out: list[np.ndarray] = []
    for start in range(0, len(frames), step):
        group = frames[start:start + step]
        count = len(group)
        if predictor.fixed_batch and count < predictor.fixed_batch:
            group = group + [group[-1]] * (predictor.fixed_batch - count)  # pad; extra outputs are dropped
        labels = np.asarray(predictor.predict(np.stack(group)))
        if labels.ndim != 3 or labels.shape[0] != len(group):
            raise FcnEdgeError(f"{predictor.name} returned labels of shape {labels.shape} for {len(group)} frames")
        out.extend(labels[:count])
    return out


def run_evaluation(predictors: Sequence[Predictor], dataset: SegmentationDataset, *,
                   indices: Sequence[int] | None = None, size: tuple[int, int] | None = None,
                   batch_size: int = 1, workers: int = 2, num_classes: int | None = None,
                   on_image: Callable[[int], None] | None = None) -> LoopResult:
    """Score every predictor on the same images; see the module doc for the steps."""
    if not predictors:
        raise FcnEdgeError("no model to evaluate")
    classes = num_classes or predictors[0].info.num_classes
    ignore = dataset.ignore_index
    tallies = [ModelTally(ConfusionMatrix(classes, ignore)) for _ in predictors]
    order = list(range(len(dataset))) if indices is None else list(indices)
    images = 0
    start = time.perf_counter()
    for chunk in _chunks(prefetch(dataset, order, workers), max(1, batch_size)):
        for sample in chunk:
            if sample.mask is None:
                raise FcnEdgeError(f"{sample.image_path} has no mask: evaluation needs a dataset with masks")
        reference: list[np.ndarray] | None = None
        for predictor, tally in zip(predictors, tallies):
            predictions = _predict_chunk(predictor, chunk, size, batch_size, tally)
            for sample, labels in zip(chunk, predictions):
                tally.matrix.update(sample.mask, _as_uint8(labels, sample.mask))
            if reference is None:
                reference = predictions
            else:
                for ref, labels in zip(reference, predictions):
                    tally.agree_pixels += int(np.count_nonzero(ref == labels))
                    tally.total_pixels += int(labels.size)
        images += len(chunk)
        if on_image is not None:
            on_image(len(chunk))
    return LoopResult(tallies, images, time.perf_counter() - start)


def _predict_chunk(predictor: Predictor, chunk: list[Sample], requested: tuple[int, int] | None,
                   batch_size: int, tally: ModelTally) -> list[np.ndarray]:
    """The predictor's labels for each sample of ``chunk``, at each sample's label size."""
    sizes = [network_size(predictor, sample.size, requested) for sample in chunk]
    results: list[np.ndarray | None] = [None] * len(chunk)
    for net_size in dict.fromkeys(sizes):  # group equal sizes, keep first-seen order
        members = [i for i, s in enumerate(sizes) if s == net_size]
        frames = [resize_for_network(chunk[i].image, net_size) for i in members]
        began = time.perf_counter()
        labels = _run_batches(predictor, frames, batch_size)
        tally.seconds += time.perf_counter() - began
        tally.sizes[f"{net_size[0]}x{net_size[1]}"] += len(members)
        for i, label_map in zip(members, labels):
            target = chunk[i].mask.shape if chunk[i].mask is not None else chunk[i].size
            results[i] = labels_to_size(label_map, target)
    return results  # type: ignore[return-value]


def _as_uint8(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Labels in the mask's dtype when they fit (ConfusionMatrix's fast uint8 path)."""
    if mask.dtype == np.uint8 and labels.dtype != np.uint8 and labels.size and int(labels.max()) < 256 \
            and int(labels.min()) >= 0:
        return labels.astype(np.uint8)
    return labels
