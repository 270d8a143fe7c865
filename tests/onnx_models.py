"""Test helpers: tiny ONNX models following the export contract, test videos and images.

Until the exporter (fcn_edge/export) lands, the runtime's tests make their own ONNX
files: the tiny FCN wrapped with the deployed pre/post-processing
(:class:`fcn_edge.runtime.torch_backend.FramesModule`), exported with
``torch.onnx.export`` (TorchScript exporter: fast and needs nothing else), with the
``fcn_edge.model`` / ``fcn_edge.export`` metadata_props of DEVELOPING.md's contract.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

TINY_SIZE = (64, 96)


def tiny_model(info, seed: int = 0):
    import torch

    from fcn_edge.models import build_model

    torch.manual_seed(seed)
    model = build_model(info.arch, info.num_classes, info.geometry, info.width)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.5)
    return model.eval()


def export_tiny_onnx(path: str | Path, info, *, model=None, size: tuple[int, int] | None = TINY_SIZE,
                     batch: int | None = 1, outputs: Sequence[str] = ("labels",), io: str = "frames",
                     max_batch: int = 8, opset: int = 17, metadata: bool = True, seed: int = 0) -> Path:
    """Export a tiny FCN to ``path``; ``batch=None`` makes the batch dynamic (1..max_batch)."""
    import onnx
    import torch

    from fcn_edge import __version__
    from fcn_edge.runtime.torch_backend import FramesModule

    path = Path(path)
    model = model if model is not None else tiny_model(info, seed)
    h, w = size
    n = batch or 1
    if io == "frames":
        module = FramesModule(model, info.preprocessing, info.num_classes, tuple(outputs)).eval()
        example = torch.zeros((n, h, w, 3), dtype=torch.uint8)
        input_name = "frames"
    else:
        outputs = ("logits",)
        module = model
        example = torch.zeros((n, 3, h, w), dtype=torch.float32)
        input_name = "input"
    dynamic_axes = None
    if batch is None:
        dynamic_axes = {input_name: {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=[input_name], output_names=list(outputs),
                          opset_version=opset, dynamo=False, dynamic_axes=dynamic_axes)
    if metadata:
        proto = onnx.load(str(path))
        export_facts = {
            "io": io, "input": input_name, "outputs": list(outputs), "size": [h, w], "batch": batch,
            "dynamic": None if batch is not None else {"batch": [1, min(4, max_batch), max_batch]},
            "opset": opset, "geometry": info.geometry, "precision": "fp32", "source_sha256": None,
            "source_name": "tiny test model", "fcn_edge_version": __version__,
        }
        props = {"fcn_edge.model": info.to_json(), "fcn_edge.export": json.dumps(export_facts),
                 "fcn_edge.class_names": json.dumps(info.class_names)}
        del proto.metadata_props[:]
        for key, value in props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
    return path


def moving_frames(count: int, size: tuple[int, int] = (120, 160), seed: int = 0) -> list[np.ndarray]:
    """Frames with a bright square moving across a gradient, so each frame differs."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(0, 200, w, dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(0, 200, h, dtype=np.uint8)[:, None]
    base[..., 2] = rng.integers(0, 60, (h, w), dtype=np.uint8)
    frames = []
    for i in range(count):
        frame = base.copy()
        x = (i * 7) % max(1, w - 20)
        y = (i * 3) % max(1, h - 20)
        frame[y:y + 20, x:x + 20] = (255, 255, 255)
        frames.append(frame)
    return frames


def write_video(path: str | Path, count: int = 12, size: tuple[int, int] = (120, 160), fps: float = 25.0) -> Path:
    import cv2

    path = Path(path)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (size[1], size[0]))
    assert writer.isOpened(), path
    for frame in moving_frames(count, size):
        writer.write(frame)
    writer.release()
    return path


def write_images(folder: str | Path, count: int = 5, size: tuple[int, int] = (120, 160), ext: str = ".png") -> list[Path]:
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(moving_frames(count, size)):
        path = folder / f"img_{i:03d}{ext}"
        assert cv2.imwrite(str(path), frame)
        paths.append(path)
    return paths


def count_video_frames(path: str | Path) -> int:
    """Frames actually decodable from a video file (not the container's claim)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        return -1
    n = 0
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        n += 1
    capture.release()
    return n


# ------------------------------------------------------------------ fixtures
# Imported by tests/runtime/conftest.py, tests/stream/conftest.py and tests/test_api.py.
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_torch_model(tiny_checkpoint):
    from fcn_edge.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint).build_model().eval()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_info, tiny_torch_model):
    """frames in (uint8 1x64x96x3), labels + confidence out, with the contract's metadata."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_tiny_onnx(path, tiny_info, model=tiny_torch_model, outputs=("labels", "confidence"))


@pytest.fixture(scope="session")
def tiny_onnx_dynamic(tmp_path_factory, tiny_info, tiny_torch_model):
    """As tiny_onnx with a dynamic batch (1..8), labels only."""
    path = tmp_path_factory.mktemp("onnx") / "tiny_dynamic.onnx"
    return export_tiny_onnx(path, tiny_info, model=tiny_torch_model, batch=None)


@pytest.fixture(scope="session")
def tiny_onnx_raw(tmp_path_factory, tiny_info, tiny_torch_model):
    """Raw I/O: float32 1x3x64x96 normalised in, logits out."""
    path = tmp_path_factory.mktemp("onnx") / "tiny_raw.onnx"
    return export_tiny_onnx(path, tiny_info, model=tiny_torch_model, io="raw")


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory):
    """A 12-frame 120x160 mp4."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", count=12)
