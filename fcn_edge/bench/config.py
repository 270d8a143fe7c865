"""What to benchmark and how: :class:`ModelSpec` (one model + its backend options) and :class:`BenchConfig`.

Models are any path or URL :func:`fcn_edge.runtime.open_runner` accepts.  On the
command line a model may carry its own backend options after ``::``, e.g.
``model.pt::device=cuda,precision=fp16`` (values are parsed as int, float, true/false,
none or text; a value may contain commas when the next item has no ``=``:
``model.onnx::providers=tensorrt,cuda,threads=4``).  Shared options (``--device``,
``--threads``, ...) go to every model whose backend takes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from fcn_edge.errors import FcnEdgeError

MODEL_OPTION_SEPARATOR = "::"
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 2


class BenchConfigError(FcnEdgeError):
    """A bench option has a value that cannot work."""


@dataclass(frozen=True)
class ModelSpec:
    """One model to benchmark.

    ``options`` are backend options for this model only (they win over the shared ones
    and are never dropped).  ``batches``/``iterations``/``seconds``/``warmup`` override the run's
    for this model (e.g. fewer iterations for a slow CPU row of a GPU comparison).
    """

    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None
    batches: tuple[int, ...] | None = None
    iterations: int | None = None
    seconds: float | None = None
    warmup: int | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        text = str(self.model)
        if "://" not in text:
            text = text.replace("\\", "/").rsplit("/", 1)[-1]
        if self.options:
            text += " (" + ", ".join(f"{k}={_format_value(v)}" for k, v in self.options.items()) + ")"
        return text


@dataclass(frozen=True)
class BenchConfig:
    """How every model is run.

    Exactly one of ``iterations`` (timed batches) and ``seconds`` (timed duration, at
    least ``min_iterations`` batches) applies; neither means ``seconds=5``.  Warm-up is
    ``warmup`` batches, or ``warmup_seconds`` of batches when given.  ``batches=None``
    runs each model at its static batch (1 for dynamic-batch models).  ``size`` is for
    models that accept any size (fixed-size models run at theirs).  ``in_flight > 1``
    adds a pipelined run (``submit`` with that many batches outstanding) on backends
    that overlap work.
    """

    iterations: int | None = None
    seconds: float | None = None
    min_iterations: int = 3
    warmup: int = DEFAULT_WARMUP
    warmup_seconds: float | None = None
    batches: tuple[int, ...] | None = None
    size: tuple[int, int] | None = None
    in_flight: int = 1
    seed: int = 0
    check_agreement: bool = False
    images: str | None = None           # real frames (anything run --source reads) instead of synthetic ones
    max_images: int = 100               # how many of them agreement is measured on
    compare: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    keep_going: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.iterations is not None and self.seconds is not None:
            raise BenchConfigError("give either --iterations or --seconds, not both")
        if self.iterations is not None and self.iterations < 1:
            raise BenchConfigError(f"--iterations must be at least 1, got {self.iterations}")
        if self.seconds is not None and not self.seconds > 0:
            raise BenchConfigError(f"--seconds must be positive, got {self.seconds}")
        if self.min_iterations < 1:
            raise BenchConfigError(f"min_iterations must be at least 1, got {self.min_iterations}")
        if self.warmup < 0:
            raise BenchConfigError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.warmup_seconds is not None and self.warmup_seconds < 0:
            raise BenchConfigError(f"--warmup-seconds must be 0 or more, got {self.warmup_seconds}")
        if self.batches is not None:
            object.__setattr__(self, "batches", tuple(int(b) for b in self.batches))
            if not self.batches or any(b < 1 for b in self.batches):
                raise BenchConfigError(f"batch sizes must be positive integers, got {list(self.batches)}")
        if self.size is not None:
            object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
            if min(self.size) < 1:
                raise BenchConfigError(f"--size must be positive, got {self.size[0]}x{self.size[1]}")
        if self.in_flight < 1:
            raise BenchConfigError(f"--in-flight must be at least 1, got {self.in_flight}")
        if self.max_images < 1:
            raise BenchConfigError(f"--max-images must be at least 1, got {self.max_images}")

    @property
    def duration_mode(self) -> bool:
        return self.iterations is None

    @property
    def effective_seconds(self) -> float:
        return self.seconds if self.seconds is not None else DEFAULT_SECONDS

    def for_model(self, spec: ModelSpec) -> "BenchConfig":
        """This config with the model's own batches/iterations/seconds applied."""
        changes: dict[str, Any] = {}
        if spec.batches is not None:
            changes["batches"] = spec.batches
        if spec.iterations is not None:
            changes.update(iterations=spec.iterations, seconds=None)
        elif spec.seconds is not None:
            changes.update(seconds=spec.seconds, iterations=None)
        if spec.warmup is not None:
            changes.update(warmup=spec.warmup, warmup_seconds=None)
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations, "seconds": None if self.iterations else self.effective_seconds,
            "min_iterations": self.min_iterations, "warmup": self.warmup, "warmup_seconds": self.warmup_seconds,
            "batches": list(self.batches) if self.batches else None, "size": list(self.size) if self.size else None,
            "in_flight": self.in_flight, "seed": self.seed, "check_agreement": self.check_agreement,
            "images": self.images, "max_images": self.max_images if self.images else None,
            "compare": self.compare, "options": {k: _jsonable(v) for k, v in self.options.items()},
        }


# ------------------------------------------------------------------ parsing
def parse_value(text: str) -> Any:
    """``2`` -> 2, ``0.5`` -> 0.5, ``true``/``false`` -> bool, ``none`` -> None, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_options(text: str, where: str = "option") -> dict[str, Any]:
    """``key=value,key=value`` (a comma-item without ``=`` continues the previous value)."""
    options: dict[str, str] = {}
    last: str | None = None
    for item in text.split(","):
        if "=" in item:
            key, _, value = item.partition("=")
            key = key.strip()
            if not _KEY.match(key):
                raise BenchConfigError(f"{where} {text!r}: {key!r} is not an option name (give key=value)")
            options[key] = value
            last = key
        elif last is not None:
            options[last] += "," + item
        elif item.strip():
            raise BenchConfigError(f"{where} {text!r} must be key=value[,key=value...]")
    return {key: parse_value(value) for key, value in options.items()}


def parse_model_argument(text: str) -> ModelSpec:
    """``MODEL`` or ``MODEL::key=value,...`` (see the module docstring)."""
    head, sep, tail = text.rpartition(MODEL_OPTION_SEPARATOR)
    if sep and "=" in tail and head:
        return ModelSpec(head, parse_options(tail, f"model options of {head}"))
    return ModelSpec(text)


def parse_batches(text: str) -> tuple[int, ...]:
    """``1,8`` -> (1, 8): positive integers, duplicates dropped, order kept."""
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) < 1:
            raise BenchConfigError(f"--batch takes positive integers separated by commas (e.g. 1,8), got {text!r}")
        values.append(int(item))
    if not values:
        raise BenchConfigError(f"--batch takes positive integers separated by commas (e.g. 1,8), got {text!r}")
    return tuple(dict.fromkeys(values))


def parse_size(text: str) -> tuple[int, int]:
    """``512x512`` or ``512`` (square)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) is not None and int(match.group(2)) < 1):
        raise BenchConfigError(f"--size must be HxW (e.g. 512x512) or one number for a square, got {text!r}")
    h = int(match.group(1))
    return h, int(match.group(2) or h)


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def as_model_specs(models: Sequence[str | ModelSpec]) -> list[ModelSpec]:
    return [m if isinstance(m, ModelSpec) else ModelSpec(str(m)) for m in models]


__all__ = ["ModelSpec", "BenchConfig", "BenchConfigError", "parse_model_argument", "parse_options", "parse_value",
           "parse_batches", "parse_size", "as_model_specs"]
