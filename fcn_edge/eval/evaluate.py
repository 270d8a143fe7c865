"""``evaluate(models, dataset, EvalConfig) -> EvalReport``: the Python API of ``fcn-edge eval``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from fcn_edge.data.base import SegmentationDataset
from fcn_edge.errors import DataError, FcnEdgeError
from fcn_edge.eval.loop import run_evaluation
from fcn_edge.eval.predict import Predictor, open_predictor
from fcn_edge.eval.report import EvalReport, ModelResult
from fcn_edge.progress import progress

log = logging.getLogger("fcn_edge.eval")

ModelLike = Union[str, os.PathLike, Predictor]


@dataclass
class EvalConfig:
    """How to evaluate.

    ``size``: the network input (H, W) for models that accept several sizes (default:
    the image's own size for paper-geometry models, the model's deployment size for
    the others; fixed-size models always use theirs).  ``batch_size``: images per
    model call (equal network sizes only).  ``workers``: image-decoding threads.
    ``device``: ``cpu`` or ``cuda[:N]`` for backends that can use either (.pt, .onnx).
    """

    split: str | None = "val"
    size: tuple[int, int] | None = None
    limit: int | None = None
    batch_size: int = 1
    workers: int = 2
    skip_bad_data: bool = False
    device: str = "cpu"
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.size is not None:
            self.size = (int(self.size[0]), int(self.size[1]))
            if min(self.size) < 1:
                raise FcnEdgeError(f"--size must be positive (HxW), got {self.size}")
        if self.limit is not None and self.limit < 1:
            raise FcnEdgeError(f"--limit must be at least 1, got {self.limit}")
        if self.batch_size < 1:
            raise FcnEdgeError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise FcnEdgeError(f"--workers must be 0 or more, got {self.workers}")


def evaluate(models: ModelLike | Sequence[ModelLike], dataset: SegmentationDataset | str | os.PathLike,
             config: EvalConfig | None = None) -> EvalReport:
    """Evaluate one model, or compare several on the same images (the first is the reference).

    ``models``: paths (``.pt``, ``.onnx``, ``.engine``, ``triton://``) opened through the
    runtime backends, or :class:`Predictor` objects.  ``dataset``: an opened dataset or
    a folder (opened with ``config.split``).  Raises :class:`FcnEdgeError` (one line)
    for a missing model, a class-count mismatch or unreadable data.
    """
    config = config or EvalConfig()
    items = [models] if isinstance(models, (str, os.PathLike, Predictor)) else list(models)
    if not items:
        raise FcnEdgeError("no model to evaluate")
    predictors: list[Predictor] = []
    opened: list[Predictor] = []
    try:
        for item in items:
            if isinstance(item, Predictor):
                predictors.append(item)
            else:
                predictor = open_predictor(item, device=config.device, threads=config.threads,
                                           name=_display_name(item, items))
                opened.append(predictor)
                predictors.append(predictor)
        if not isinstance(dataset, SegmentationDataset):
            dataset = open_eval_dataset(dataset, config, predictors[0].info.num_classes)
        check_classes(predictors, dataset)
        return evaluate_predictors(predictors, dataset, config)
    finally:
        for predictor in opened:
            predictor.close()


def open_eval_dataset(path: str | os.PathLike, config: EvalConfig, model_classes: int) -> SegmentationDataset:
    """Open ``path``'s split; a folder without class facts takes the model's class count."""
    from fcn_edge.data import open_dataset

    on_error = "skip" if config.skip_bad_data else "raise"
    dataset = open_dataset(path, config.split, on_error=on_error)
    if dataset.num_classes is None:
        dataset = open_dataset(path, config.split, on_error=on_error, num_classes=model_classes)
    if not dataset.has_masks:
        raise DataError(f"{dataset.name} has no masks: evaluation needs ground-truth masks")
    return dataset


def check_classes(predictors: Sequence[Predictor], dataset: SegmentationDataset) -> None:
    for predictor in predictors:
        model_classes = predictor.info.num_classes
        if dataset.num_classes is not None and model_classes != dataset.num_classes:
            raise FcnEdgeError(
                f"{predictor.name} predicts {model_classes} classes but {dataset.name} has {dataset.num_classes}: "
                "evaluate on data with the model's classes, or fine-tune it on these with "
                f"`fcn-edge train --init-from {predictor.name} --reinit-classifier`")


def _progress_label(predictors: Sequence[Predictor], width: int = 60) -> str:
    """``eval A, B, C`` shortened by whole names (``eval A, B +1 more``); a name is cut only when it alone is too long."""
    names = [p.name for p in predictors]
    for shown in range(len(names), 0, -1):
        rest = len(names) - shown
        label = "eval " + ", ".join(names[:shown]) + (f" +{rest} more" if rest else "")
        if len(label) <= width:
            return label
    return f"eval {names[0]}"[:width - 3] + "..."  # one name longer than the line


def evaluate_predictors(predictors: Sequence[Predictor], dataset: SegmentationDataset,
                        config: EvalConfig) -> EvalReport:
    """The loop with a progress bar; the dataset is already checked against the models."""
    count = len(dataset) if config.limit is None else min(config.limit, len(dataset))
    indices = list(range(count))
    with progress(total=count, desc=_progress_label(predictors), unit="img", disable=not config.progress) as bar:
        result = run_evaluation(predictors, dataset, indices=indices, size=config.size,
                                batch_size=config.batch_size, workers=config.workers,
                                num_classes=predictors[0].info.num_classes, on_image=bar.update)
    if result.images == 0:
        raise DataError(f"no image of {dataset.name} could be evaluated ({dataset.report.count} skipped as bad)")
    class_names = list(predictors[0].info.class_names)
    if dataset.class_names and len(dataset.class_names) == len(class_names) and \
            not all(n.startswith("class_") for n in dataset.class_names):
        class_names = list(dataset.class_names)
    models = []
    for predictor, tally in zip(predictors, result.tallies):
        info = predictor.info
        facts = {"arch": info.arch, "geometry": info.geometry, "width": info.width,
                 "num_classes": info.num_classes, **predictor.describe()}
        models.append(ModelResult(
            name=predictor.name, backend=predictor.backend, scores=tally.matrix.scores(),
            matrix=tally.matrix.matrix.tolist(), images=result.images, seconds=tally.seconds,
            sizes=dict(tally.sizes), agreement=tally.agreement if predictor is not predictors[0] else None,
            facts=facts))
    skipped = [{"id": item.id, "path": item.path, "reason": item.reason} for item in dataset.report.skipped.values()]
    if skipped:
        dataset.report.log_summary(log)
    return EvalReport(dataset=dataset.describe(), class_names=class_names, models=models, images=result.images,
                      skipped=len(skipped), seconds=result.seconds, skipped_items=skipped)


def _display_name(item: ModelLike, items: Sequence[ModelLike]) -> str:
    """The file name, or the whole path when two compared models share a file name."""
    text = str(item)
    name = Path(text).name if "://" not in text else text
    others = [Path(str(i)).name for i in items if not isinstance(i, Predictor)]
    return text if others.count(name) > 1 else name
