"""What evaluation runs: a :class:`Predictor`, whatever the model's backend.

Evaluation needs, from a model, its description (classes, geometry, preferred size),
the input sizes and batch sizes it accepts, and class labels for a batch of uint8 BGR
frames.  :class:`RunnerPredictor` gets all of that from a runtime runner
(:func:`fcn_edge.runtime.open_runner`: ``.pt`` PyTorch, ``.onnx`` ONNX Runtime,
``.engine`` TensorRT, ``triton://``), so every backend goes through the one runtime
interface and the same data pipeline.  Training's validation wraps its in-memory
model in a predictor of its own (:class:`fcn_edge.train.validate.ModulePredictor`).

Nothing here imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.artifacts.modelinfo import ModelInfo


class Predictor:
    """Labels for batches of frames, plus the facts that decide how frames are sized.

    ``fixed_size``: the only (H, W) the model accepts (a static export or engine), or
    None.  ``preferred_size``: the size it was meant to run at (``ModelInfo.input_size``
    or the export size).  ``fixed_batch``: the only batch size it accepts, or None;
    ``max_batch``: the largest, or None.
    """

    name: str = "model"
    backend: str = "?"
    info: ModelInfo
    fixed_size: tuple[int, int] | None = None
    preferred_size: tuple[int, int] | None = None
    fixed_batch: int | None = None
    max_batch: int | None = None

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``[N, H, W, 3]`` BGR frames -> class labels ``[N, H, W]`` (uint8, int32 past 255 classes)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend}

    def close(self) -> None:
        """Release the model."""

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunnerPredictor(Predictor):
    """A runtime :class:`~fcn_edge.runtime.base.Runner` seen as a predictor."""

    def __init__(self, runner, name: str | None = None) -> None:
        self.runner = runner
        self.name = name or Path(str(runner.model_path)).name
        self.backend = getattr(runner, "backend", "?")
        self.info = runner.info
        io = runner.io
        self.fixed_size = tuple(io.size) if io.size else None
        self.preferred_size = tuple(io.preferred_size) if io.preferred_size else None
        self.fixed_batch = io.batch
        self.max_batch = io.max_batch
        self.size_range = io.size_range

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.infer(frames).labels)

    def describe(self) -> dict[str, Any]:
        try:
            facts = dict(self.runner.describe())
        except Exception:  # noqa: BLE001 - a description is a nicety, never a failure
            facts = {}
        facts.pop("io", None)
        return {"name": self.name, "backend": self.backend, **{k: v for k, v in facts.items()
                                                                if isinstance(v, (str, int, float, bool)) or v is None}}

    def close(self) -> None:
        self.runner.close()


def runner_options(model: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The runtime options that put ``model`` on ``device`` (``cpu`` / ``cuda`` / ``cuda:N``), per backend."""
    suffix = Path(str(model)).suffix.lower()
    gpu = device.startswith("cuda")
    device_id = int(device.split(":", 1)[1]) if gpu and ":" in device else 0
    if suffix in (".pt", ".pth"):
        options: dict[str, Any] = {"device": device}
        if threads:
            options["threads"] = threads
        return options
    if suffix == ".onnx":
        options = {"providers": "cuda" if gpu else "cpu", "device_id": device_id}
        if threads:
            options["intra_op_threads"] = threads
        return options
    if suffix in (".engine", ".plan", ".trt"):
        return {"device_id": device_id}
    return {}


def open_predictor(model: str | os.PathLike, *, device: str = "cpu", threads: int | None = None,
                   name: str | None = None, **options: Any) -> RunnerPredictor:
    """Open ``model`` (.pt / .onnx / .engine / URL) through :func:`fcn_edge.runtime.open_runner`."""
    try:
        from fcn_edge.runtime import open_runner
    except ImportError as exc:  # the runtime package is part of fcn-edge; only a broken install lacks it
        raise FcnEdgeError(f"the runtime backends (fcn_edge.runtime) cannot be imported: {exc}") from exc
    text = str(model)
    if "://" not in text:
        path = Path(text)
        if not path.exists():
            raise ArtifactError(f"model {path} does not exist")
        if path.is_dir():
            raise ArtifactError(f"model {path} is a folder; give a .pt, .onnx or .engine file")
    merged = {**runner_options(model, device, threads), **options}
    runner = open_runner(model, **merged)
    return RunnerPredictor(runner, name=name)
