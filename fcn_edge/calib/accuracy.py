"""What INT8 costs: FP32 vs INT8 with ONNX Runtime on the CPU, and which layers cost the most.

Two kinds of check, both run the FP32 and the Q/DQ ONNX through
:func:`fcn_edge.runtime.open_runner` (the deployed runner, CPU provider), on frames made
by the same resize as calibration:

* **labelled** (``--val DIR``): the paper's four metrics (pixel accuracy, mean accuracy,
  mean IU, frequency-weighted IU) of each model against the masks, plus the pixel
  agreement of the two label maps;
* **agreement** (no labels): only the agreement with the FP32 model's labels, on images
  of the source that calibration did not use (or, when it used them all, on the
  calibration images themselves, which the report says).

Per-layer sensitivity keeps one quantized layer float at a time (its Q/DQ inputs
bypassed in the finished graph, :func:`fcn_edge.calib.quantize.bypass_qdq`; no new
calibration) and measures how much agreement (and mean IU) comes back: the layers whose
float copy recovers the most are the ones whose quantization hurts most.  It stops at a
time budget and says how many layers it got through.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fcn_edge.errors import DataError
from fcn_edge.metrics import ConfusionMatrix

log = logging.getLogger("fcn_edge.calib")

METRIC_KEYS = ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu")


@dataclass
class EvalSet:
    """Frames (network size, model channel order) and, when labelled, their masks (label size)."""

    kind: str                          # "labelled" | "held-out" | "calibration"
    frames: list[np.ndarray]
    masks: list[np.ndarray] | None
    names: list[str]
    source: str
    num_classes: int | None = None
    ignore_index: int = 255

    def __len__(self) -> int:
        return len(self.frames)


def load_labelled(path: str | Path, maker, *, split: str | None, limit: int | None, num_classes: int,
                  show_progress: bool = True) -> EvalSet:
    """The ``--val`` dataset: every sample (or ``limit`` spread over it), bad files skipped and counted."""
    from fcn_edge.calib.sources import spread_indices
    from fcn_edge.data.detect import open_dataset
    from fcn_edge.data.folder import folder_splits
    from fcn_edge.progress import progress

    path = Path(path)
    if path.is_dir() and split is None and not (path / "images").is_dir():
        splits = folder_splits(path)
        if splits:
            split = "val" if "val" in splits else splits[-1]
    try:
        dataset = open_dataset(path, split, on_error="skip", num_classes=num_classes)
    except DataError as exc:
        raise DataError(f"--val {path} is not a labelled dataset fcn-edge can read ({exc}); leave --val out to check "
                        "agreement with the FP32 model instead") from None
    if not dataset.has_masks:
        raise DataError(f"--val {path} has no masks; give a labelled dataset (images/ + masks/, VOC, SBD), "
                        "or leave --val out to check agreement with the FP32 model instead")
    indices = spread_indices(len(dataset), limit) if limit else list(range(len(dataset)))
    frames, masks, names = [], [], []
    for index in progress(indices, desc="loading --val images", unit="img", disable=not show_progress):
        sample = dataset.get(index)
        if sample is None:
            continue
        frames.append(maker(sample.image))
        masks.append(sample.mask)
        names.append(str(sample.image_path))
    if dataset.report.count:
        dataset.report.log_summary(log)
    if not frames:
        raise DataError(f"--val {path}: no usable labelled images ({dataset.report.count} bad)")
    return EvalSet("labelled", frames, masks, names, str(path), num_classes, dataset.ignore_index)


# --------------------------------------------------------------------------- running

def predict(model_path: str | Path, frames: Sequence[np.ndarray], *, threads: int | None = None,
            opener: Callable[[Path], Any] | None = None) -> list[np.ndarray]:
    """Label maps ``[H, W]`` of each frame through the deployed ONNX Runtime runner (CPU).

    ``opener(path)`` returns another runner (build-engine --verify passes TensorRT's).
    """
    from fcn_edge.calib.sources import frames_as_batches
    from fcn_edge.runtime import open_runner

    opened = opener(Path(model_path)) if opener else open_runner(model_path, providers="cpu", intra_op_threads=threads)
    with opened as runner:
        batch = runner.io.batch or 1
        labels: list[np.ndarray] = []
        for stacked in frames_as_batches(list(frames), batch):
            result = runner.infer(stacked)
            labels.extend(np.asarray(result.labels[i]) for i in range(result.labels.shape[0]))
    return labels[: len(frames)]


def score(eval_set: EvalSet, labels: Sequence[np.ndarray]) -> dict | None:
    """The four metrics of ``labels`` (network size) against the masks (label size), or None."""
    if eval_set.masks is None or eval_set.num_classes is None:
        return None
    from fcn_edge.data.transforms import labels_to_size

    cm = ConfusionMatrix(eval_set.num_classes, eval_set.ignore_index)
    for mask, prediction in zip(eval_set.masks, labels):
        cm.update(mask, labels_to_size(prediction, mask.shape[:2]))
    scores = cm.scores()
    return {key: scores[key] for key in METRIC_KEYS} | {"iu": scores["iu"]}


def agreement(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> tuple[float, float]:
    """(pixel agreement over all images, worst single image)."""
    same = total = 0
    worst = 1.0
    for x, y in zip(a, b):
        equal = int(np.count_nonzero(np.asarray(x) == np.asarray(y)))
        same += equal
        total += x.size
        worst = min(worst, equal / x.size if x.size else 1.0)
    return (same / total if total else float("nan")), worst


# --------------------------------------------------------------------------- report

@dataclass
class LayerSensitivity:
    layer: str
    node: str
    op_type: str
    agreement: float                 # with this layer float (everything else INT8)
    gain: float                      # agreement recovered vs the full INT8 graph (fraction of pixels)
    mean_iu: float | None = None
    mean_iu_gain: float | None = None  # points

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class AccuracyReport:
    """FP32 vs INT8 on one evaluation set (see the module doc)."""

    kind: str
    images: int
    source: str
    agreement: float
    worst_image_agreement: float
    fp32: dict | None = None
    int8: dict | None = None
    warnings: list[str] = field(default_factory=list)
    sensitivity: list[LayerSensitivity] = field(default_factory=list)
    sensitivity_note: str = ""
    seconds: float = 0.0

    @property
    def mean_iu_drop(self) -> float | None:
        """FP32 minus INT8 mean IU, in points (positive = INT8 is worse)."""
        if not self.fp32 or not self.int8:
            return None
        return 100.0 * (self.fp32["mean_iu"] - self.int8["mean_iu"])

    @property
    def ok(self) -> bool:
        return not self.warnings

    def hurting_layers(self, count: int = 3) -> list[LayerSensitivity]:
        """The layers whose float copy brings back the most agreement with FP32 (best first)."""
        return [s for s in self.sensitivity if s.gain > 0][:count]

    def lines(self) -> list[str]:
        out = []
        what = {"labelled": f"labelled set {self.source}", "held-out": f"held-out images of {self.source}",
                "calibration": f"the calibration images of {self.source} (none held out)"}[self.kind]
        out.append(f"accuracy (ONNX Runtime CPU, {self.images} images, {what}):")
        if self.fp32 and self.int8:
            out.append("  metric            FP32     INT8    change")
            for key in METRIC_KEYS:
                a, b = 100 * self.fp32[key], 100 * self.int8[key]
                out.append(f"  {key:<16} {a:7.2f}  {b:7.2f}  {b - a:+7.2f}")
        out.append(f"  pixel agreement INT8 vs FP32: {100 * self.agreement:.2f}% (worst image "
                   f"{100 * self.worst_image_agreement:.2f}%)")
        if self.sensitivity:
            out.append("  per-layer sensitivity (agreement recovered when only that layer stays float):")
            for s in self.sensitivity[:5]:
                extra = f", mean IU {s.mean_iu_gain:+.2f} pt" if s.mean_iu_gain is not None else ""
                out.append(f"    {s.layer:<16} {s.op_type:<13} {100 * s.gain:+.3f}% agreement{extra}")
        if self.sensitivity_note:
            out.append(f"  {self.sensitivity_note}")
        return out

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "images": self.images, "source": self.source,
            "agreement": self.agreement, "worst_image_agreement": self.worst_image_agreement,
            "fp32": self.fp32, "int8": self.int8, "mean_iu_drop_points": self.mean_iu_drop,
            "warnings": list(self.warnings), "sensitivity": [s.to_dict() for s in self.sensitivity],
            "sensitivity_note": self.sensitivity_note, "seconds": round(self.seconds, 2),
        }


def compare(fp32_path: Path, int8_path: Path, eval_set: EvalSet, *, miou_warn: float = 1.0,
            agreement_warn: float = 0.98) -> tuple[AccuracyReport, list[np.ndarray]]:
    """FP32 vs INT8 on ``eval_set``; also returns the FP32 labels (the sensitivity baseline)."""
    start = time.perf_counter()
    fp32_labels = predict(fp32_path, eval_set.frames)
    int8_labels = predict(int8_path, eval_set.frames)
    agree, worst = agreement(fp32_labels, int8_labels)
    report = AccuracyReport(eval_set.kind, len(eval_set), eval_set.source, agree, worst,
                            score(eval_set, fp32_labels), score(eval_set, int8_labels))
    drop = report.mean_iu_drop
    if drop is not None and drop > miou_warn:
        report.warnings.append(f"INT8 loses {drop:.2f} points of mean IU against FP32 (limit {miou_warn:g})")
    if agree < agreement_warn:
        report.warnings.append(f"INT8 labels agree with FP32 on only {100 * agree:.2f}% of pixels "
                               f"(limit {100 * agreement_warn:g}%)")
    report.seconds = time.perf_counter() - start
    return report, fp32_labels


def layer_sensitivity(qdq_model, candidates: Sequence[tuple[str, str, str]], eval_set: EvalSet,
                      fp32_labels: Sequence[np.ndarray], report: AccuracyReport, *, budget_s: float,
                      scratch: Path | None = None, show_progress: bool = True,
                      bypass: Callable[[Any, Sequence[str]], Any] | None = None) -> None:
    """Fill ``report.sensitivity`` with one entry per layer (node, layer name, op type) within ``budget_s``."""
    import onnx

    from fcn_edge.calib.quantize import bypass_qdq
    from fcn_edge.progress import progress

    bypass = bypass or bypass_qdq
    start = time.perf_counter()
    results: list[LayerSensitivity] = []
    base_miou = report.int8["mean_iu"] if report.int8 else None
    done = 0
    with tempfile.TemporaryDirectory(prefix="fcn-edge-sens-", dir=scratch) as tmp:
        path = Path(tmp) / "variant.onnx"
        for node, layer, op_type in progress(candidates, desc="per-layer sensitivity", unit="layer",
                                             disable=not show_progress):
            if time.perf_counter() - start > budget_s:
                break
            onnx.save(bypass(qdq_model, [node]), str(path))
            labels = predict(path, eval_set.frames)
            agree, _ = agreement(fp32_labels, labels)
            metrics = score(eval_set, labels)
            miou = metrics["mean_iu"] if metrics else None
            results.append(LayerSensitivity(layer, node, op_type, agree, agree - report.agreement,
                                            miou, None if miou is None or base_miou is None else 100 * (miou - base_miou)))
            done += 1
    # closeness to FP32 is what quantization changes; mean IU (with labels) breaks ties
    results.sort(key=lambda s: (-s.gain, -(s.mean_iu_gain or 0.0)))
    report.sensitivity = results
    elapsed = time.perf_counter() - start
    if done < len(candidates):
        report.sensitivity_note = (f"sensitivity stopped at its {budget_s:g} s budget after {done} of {len(candidates)} "
                                   "layers (raise --sensitivity-budget for all)")
    else:
        report.sensitivity_note = f"sensitivity: {done} layers in {elapsed:.1f} s"
