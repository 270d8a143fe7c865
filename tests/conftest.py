"""Shared fixtures: tiny models, a CLI runner, and clean skips for GPU/TensorRT tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tiny models everywhere: 1/16 width (conv1 has 4 channels, fc6/fc7 256) and few classes.
TINY_WIDTH = 1 / 16
TINY_CLASSES = 5

os.environ.setdefault("FCN_EDGE_PROGRESS", "0")


def _has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def _has_cuda_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config, items):
    gpu = _has_cuda_gpu()
    trt = _has_tensorrt() and gpu
    for item in items:
        if "tensorrt" in item.keywords and not trt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT's Python bindings and an NVIDIA GPU"))
        elif "gpu" in item.keywords and not gpu:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU (nvidia-smi found none)"))


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Keep torch to 2 threads so parallel work on a small CI machine stays predictable."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _same_random_draws_every_run():
    """Seed torch's and numpy's global generators before each test: a tolerance that holds once holds in CI.

    torch is seeded only when a test module has already imported it, so tests that prove
    the on-device side runs without torch are not changed by this fixture.
    """
    import numpy as np

    np.random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["FCN_EDGE_PROGRESS"] = "0"
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


@pytest.fixture
def run_cli():
    """Run ``python -m fcn_edge ARGS...`` in a subprocess; returns CompletedProcess (text)."""

    def _run(*args, cwd=None, timeout=600, check=False, env=None):
        completed = subprocess.run(
            [sys.executable, "-m", "fcn_edge", *map(str, args)],
            cwd=cwd, env={**cli_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"fcn-edge {' '.join(map(str, args))} failed ({completed.returncode}):\n"
                                 f"{completed.stdout}\n{completed.stderr}")
        return completed

    return _run


def assert_one_line_error(completed, *needles: str) -> None:
    """A user error: non-zero exit, no traceback, one 'error:' line naming the culprit."""
    assert completed.returncode != 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert lines, completed.stderr
    for needle in needles:
        assert needle in completed.stderr, (needle, completed.stderr)


def require_torch():
    """torch, or a skip: tests/compat runs the device half's tests under Python 3.8 / 3.10 without torch."""
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed in this environment (the device half runs without it)")
    return torch


@pytest.fixture(scope="session")
def tiny_info():
    from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing

    return ModelInfo(arch="fcn8s", num_classes=TINY_CLASSES, geometry="aligned", width=TINY_WIDTH,
                     preprocessing=Preprocessing.imagenet(), input_size=(64, 96))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_info):
    """A saved tiny FCN-8s (random weights, non-zero score layers so outputs vary)."""
    torch = require_torch()

    from fcn_edge.checkpoint import save_model
    from fcn_edge.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn8s", TINY_CLASSES, "aligned", TINY_WIDTH)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_fcn8s.pt"
    save_model(path, model, tiny_info, training={"note": "random tiny model for tests"})
    return path


# The exported tiny models and the sample video, shared by tests/runtime, tests/stream and
# tests/test_api.py.  Registered here, once: a session fixture imported into several
# conftest files is a separate fixture in each, and each export costs about 1.5 s.
from tests.onnx_models import sample_video, tiny_onnx, tiny_onnx_dynamic, tiny_onnx_raw  # noqa: E402,F401
