"""Test helpers: tiny ONNX models made by the real exporter, test videos and images.

The runtime, stream and API tests run on graphs written by ``fcn-edge export``
(:func:`fcn_edge.export.export_onnx`), with the metadata it writes, so what they check
is what users deploy.  Fixtures are session-scoped and skip the exporter's own ONNX
Runtime-vs-PyTorch verification and TensorRT lint (tests/export covers both): an
export then costs about 1.5 s (the first one in a session pays 3-4 s of torch.export
warm-up).  The one special graph is :func:`foreign_copy`: an export with fcn-edge's
metadata removed, which is what an ONNX from someone else's export script looks like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_SIZE = (64, 96)


def export_config(**options):
    """ExportConfig for test fixtures: unverified and unlinted unless asked (the exporter's tests do both)."""
    from fcn_edge.export import ExportConfig

    return ExportConfig(**{"verify": False, **options})


def export_checkpoint(checkpoint, path: str | Path, **options) -> Path:
    """``fcn-edge export`` of ``checkpoint`` to ``path`` (ExportConfig ``options``), without the TensorRT lint."""
    from fcn_edge.export import export_onnx

    return export_onnx(checkpoint, path, export_config(**options), lint_targets=()).path


def export_random_model(path: str | Path, info, *, seed: int = 0, **options) -> Path:
    """A random-weight FCN described by ``info`` (score layers non-zero so labels vary), exported to ``path``.

    The checkpoint is written next to it (``.pt``).  For benchmarks and tests that need a
    model of a given width, class count or size rather than the session's tiny one.
    """
    from tests.conftest import require_torch

    torch = require_torch()

    from fcn_edge.checkpoint import save_model
    from fcn_edge.models import build_model

    torch.manual_seed(seed)
    model = build_model(info.arch, info.num_classes, info.geometry, info.width)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.5)
    checkpoint = Path(path).with_suffix(".pt")
    save_model(checkpoint, model.eval(), info)
    options.setdefault("geometry", info.geometry)
    return export_checkpoint(checkpoint, path, **options)


def foreign_copy(source: str | Path, path: str | Path) -> Path:
    """``source`` as another tool would have written it: the same graph, no fcn-edge metadata."""
    import onnx

    model = onnx.load(str(source))
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("fcn_edge.")]
    del model.metadata_props[:]
    for key, value in kept:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.doc_string = "someone else's export script", ""
    onnx.save(model, str(path))
    return Path(path)


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


# ------------------------------------------------------------------ fixtures
# Imported by tests/runtime/conftest.py, tests/stream/conftest.py and tests/test_api.py.
import pytest  # noqa: E402


# tests/compat runs the device half's tests under Python 3.8 and 3.10 in environments without
# torch: it exports these models once with this interpreter and names the folder here.
PREBUILT_MODELS_ENV = "FCN_EDGE_TEST_MODELS"
PREBUILT_NAMES = {"tiny_onnx": "tiny.onnx", "tiny_onnx_dynamic": "tiny_dynamic.onnx", "tiny_onnx_raw": "tiny_raw.onnx"}


def _prebuilt(fixture: str):
    """The model the parent run exported for ``fixture``, or None (then this run exports it)."""
    import os

    folder = os.environ.get(PREBUILT_MODELS_ENV)
    if not folder:
        return None
    path = Path(folder) / PREBUILT_NAMES[fixture]
    assert path.is_file(), f"{PREBUILT_MODELS_ENV}={folder} lacks {path.name}"
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, request):
    """frames in (uint8 1x64x96x3), labels + confidence (uint8, x 1/255) out: ``fcn-edge export`` of the tiny checkpoint."""
    return _prebuilt("tiny_onnx") or export_checkpoint(
        request.getfixturevalue("tiny_checkpoint"), tmp_path_factory.mktemp("onnx") / "tiny.onnx",
        outputs=("labels", "confidence"))


@pytest.fixture(scope="session")
def tiny_onnx_dynamic(tmp_path_factory, request):
    """As tiny_onnx with a dynamic batch (1..8, optimum 4), labels only."""
    return _prebuilt("tiny_onnx_dynamic") or export_checkpoint(
        request.getfixturevalue("tiny_checkpoint"), tmp_path_factory.mktemp("onnx") / "tiny_dynamic.onnx",
        dynamic=("batch",), batch=4, min_shape=(1, 64, 96), max_shape=(8, 64, 96))


@pytest.fixture(scope="session")
def tiny_onnx_raw(tmp_path_factory, request):
    """Raw I/O: float32 1x3x64x96 normalised in, logits out."""
    return _prebuilt("tiny_onnx_raw") or export_checkpoint(
        request.getfixturevalue("tiny_checkpoint"), tmp_path_factory.mktemp("onnx") / "tiny_raw.onnx",
        io="raw", outputs=("logits",))


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory):
    """A 12-frame 120x160 mp4."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", count=12)
