"""What an evaluation found: per-model metrics, per-class IU, agreement; as text and JSON."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_edge.fileio import atomic_write_text

METRICS = ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu")
METRIC_TITLES = {"pixel_accuracy": "pixel acc", "mean_accuracy": "mean acc", "mean_iu": "mean IU", "fw_iu": "f.w. IU"}


@dataclass
class ModelResult:
    """One model's scores on the evaluated images."""

    name: str
    backend: str
    scores: dict[str, Any]                 # ConfusionMatrix.scores(): the four metrics, "iu", "pixels"
    matrix: list[list[int]]
    images: int
    seconds: float                         # time inside the model (resize and decode excluded)
    sizes: dict[str, int] = field(default_factory=dict)   # network size -> images
    agreement: float | None = None         # pixel agreement with the first model (None for the first)
    facts: dict[str, Any] = field(default_factory=dict)   # arch, geometry, precision, ...

    @property
    def ms_per_image(self) -> float | None:
        return 1000.0 * self.seconds / self.images if self.images else None

    def to_dict(self, class_names: list[str]) -> dict[str, Any]:
        iu = self.scores.get("iu", [])
        return {
            "name": self.name,
            "backend": self.backend,
            **{metric: _finite(self.scores.get(metric)) for metric in METRICS},
            "per_class_iu": {name: _finite(value) for name, value in zip(class_names, iu)},
            "pixels": self.scores.get("pixels"),
            "images": self.images,
            "agreement_with_first": _finite(self.agreement),
            "network_sizes": dict(self.sizes),
            "inference_seconds": round(self.seconds, 4),
            "ms_per_image": None if self.ms_per_image is None else round(self.ms_per_image, 3),
            "confusion_matrix": self.matrix,
            "model": self.facts,
        }


@dataclass
class EvalReport:
    """Every model's result on one dataset split (the first model is the reference)."""

    dataset: dict[str, Any]
    class_names: list[str]
    models: list[ModelResult]
    images: int
    skipped: int = 0
    seconds: float = 0.0
    skipped_items: list[dict[str, str]] = field(default_factory=list)

    @property
    def first(self) -> ModelResult:
        return self.models[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "fcn-edge-eval",
            "format_version": 1,
            "dataset": self.dataset,
            "images": self.images,
            "skipped": self.skipped,
            "skipped_items": self.skipped_items,
            "seconds": round(self.seconds, 3),
            "class_names": list(self.class_names),
            "models": [m.to_dict(self.class_names) for m in self.models],
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report atomically (an existing file is replaced only by a complete one)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def format_text(self) -> str:
        """The four metrics per model, then per-class IU (one column per model)."""
        lines = []
        ds = self.dataset
        where = f"{ds.get('layout', 'dataset')} {ds.get('root', '')}" + (f" [{ds['split']}]" if ds.get("split") else "")
        skipped = f", {self.skipped} skipped as bad" if self.skipped else ""
        lines.append(f"{where}: {self.images} images{skipped}, {len(self.class_names)} classes")
        names = [m.name for m in self.models]
        width = max(12, *(len(n) for n in names))
        header = f"{'model':<{width}}  {'backend':<11} {'size':<11}" + "".join(
            f" {METRIC_TITLES[m]:>9}" for m in METRICS) + f" {'ms/img':>8}"
        if len(self.models) > 1:
            header += f" {'agree':>7}"
        lines.append(header)
        for model in self.models:
            sizes = ",".join(model.sizes) if len(model.sizes) <= 1 else f"{len(model.sizes)} sizes"
            row = f"{model.name:<{width}}  {model.backend:<11} {sizes or '-':<11}" + "".join(
                f" {_fmt(model.scores.get(m)):>9}" for m in METRICS) + f" {_fmt(model.ms_per_image, 1):>8}"
            if len(self.models) > 1:
                row += f" {'(ref)' if model.agreement is None else _fmt(model.agreement):>7}"
            lines.append(row)
        lines.append("")
        cls_width = max(10, *(len(n) for n in self.class_names))
        col = max(9, *(min(len(n), 24) for n in names))
        lines.append(f"{'per-class IU':<{cls_width}}" + "".join(f" {n[-col:]:>{col}}" for n in names))
        for index, class_name in enumerate(self.class_names):
            values = [m.scores.get("iu", [None] * (index + 1))[index] for m in self.models]
            lines.append(f"{class_name:<{cls_width}}" + "".join(f" {_fmt(v):>{col}}" for v in values))
        return "\n".join(lines)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
