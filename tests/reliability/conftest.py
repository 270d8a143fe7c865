"""Fixtures of the reliability suite: broken artifacts of every kind, tiny data, hostile folders.

Everything is session-scoped and tiny (the shared 1/16-width checkpoint and its export,
a dataset of a few 64x80 scenes) so the whole suite adds well under two minutes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_CLASSES

KINDS = ("missing", "empty", "truncated", "random")


def random_bytes(count: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> SHA-256): compared before/after to prove nothing was damaged."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            result[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of an atomic write that a failed or killed writer left behind."""
    return sorted(folder.rglob(".fcn-edge-tmp-*"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """fcn-edge synth's folder layout, 5 classes (the tiny model's), 4 train + 3 val scenes of 64x80."""
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("rel-data") / "synth"
    write_synthetic_dataset(root, SynthConfig(train=4, val=3, size=(64, 80), num_classes=TINY_CLASSES, seed=1),
                            show_progress=False)
    return root


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory):
    from tests.onnx_models import write_images

    return write_images(tmp_path_factory.mktemp("rel-image"), count=1)[0]


def orin_gpu():
    """The GPU the test engine's sidecar names (Jetson Orin, sm 8.7)."""
    from fcn_edge.artifacts.gpu import GpuInfo

    return GpuInfo("Orin", (8, 7), integrated=True)


@pytest.fixture(scope="session")
def tiny_engine_pair(tmp_path_factory, tiny_info):
    """Test double for a TensorRT engine: opaque bytes with a real sidecar (TensorRT 8.6.2, Orin sm 8.7).

    Nothing here deserialises it; the checks under test run before TensorRT sees the bytes.
    """
    from fcn_edge.artifacts.sidecar import make_sidecar, write_engine_and_sidecar

    engine = tmp_path_factory.mktemp("rel-engine") / "tiny.fp16.engine"
    data = b"TENSORRT-PLAN-TEST-DOUBLE" * 40
    io = {"inputs": [{"name": "frames", "shape": [1, 64, 96, 3], "dtype": "uint8", "profile": None}],
          "outputs": [{"name": "labels", "shape": [1, 64, 96], "dtype": "uint8"}]}
    sidecar = make_sidecar(engine_bytes=data, engine_name=engine.name, trt_version="8.6.2",
                           gpu=orin_gpu(), precision="fp16", io=io,
                           source_name="tiny.onnx", source_sha256="0" * 64, source_opset=17, build={},
                           version_compatible=False, exclude_lean_runtime=False, hardware_compat="none",
                           dla_core=None, gpu_fallback=False, model=tiny_info.to_dict(),
                           export={"io": "frames", "input": "frames", "outputs": ["labels"], "size": [64, 96],
                                   "opset": 17, "geometry": "aligned", "batch": 1})
    write_engine_and_sidecar(engine, data, sidecar)
    return engine


@pytest.fixture(scope="session")
def bad_artifacts(tmp_path_factory, tiny_checkpoint, tiny_onnx, tiny_engine_pair):
    """``{(artifact, kind): path}`` for artifact in ckpt/onnx/engine and kind in KINDS.

    truncated = the first half of a good file; random = 4 KB of random bytes.  Engines
    keep their (good) sidecar, as a half-copied engine would: the pair no longer matches.
    """
    folder = tmp_path_factory.mktemp("rel-bad")
    sources = {"ckpt": (tiny_checkpoint, ".pt"), "onnx": (tiny_onnx, ".onnx"), "engine": (tiny_engine_pair, ".engine")}
    paths = {}
    for artifact, (good, suffix) in sources.items():
        data = Path(good).read_bytes()
        for kind in KINDS:
            path = folder / f"{kind}_{artifact}{suffix}"
            if kind == "empty":
                path.write_bytes(b"")
            elif kind == "truncated":
                path.write_bytes(data[: len(data) // 2])
            elif kind == "random":
                path.write_bytes(random_bytes(4096, seed=len(artifact)))
            if artifact == "engine" and kind != "missing":
                sidecar = Path(str(good) + ".json").read_text()
                Path(str(path) + ".json").write_text(sidecar.replace(Path(good).name, path.name))
            paths[(artifact, kind)] = path
    return paths


@pytest.fixture(scope="session")
def stub_tensorrt(tmp_path_factory):
    """A folder to put first on PYTHONPATH holding a *test double* ``tensorrt`` package.

    It has only ``__version__`` (10.3.0): enough for the runtime to run its sidecar check,
    which happens before TensorRT is asked to do anything.  Any real use of it fails.
    """
    folder = tmp_path_factory.mktemp("rel-stub-trt")
    package = folder / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text('"""Test double: only the version string of TensorRT."""\n'
                                         '__version__ = "10.3.0"\n')
    return folder


def _try_mount(args: list[str]) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    try:
        return subprocess.run(args, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=20)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nobody can write to: chmod 555 for a normal user, a read-only tmpfs for root (root ignores modes)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    (folder / "previous.txt").write_text("old\n")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not _try_mount(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]):
        pytest.skip("running as root and mounting a read-only tmpfs is not permitted: no way to make a read-only folder")
    try:
        yield folder
    finally:
        _umount(folder)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KB tmpfs (needs root and mount permission; skips otherwise) for real ENOSPC."""
    folder = tmp_path / "tiny_disk"
    folder.mkdir()
    if not _try_mount(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)]):
        pytest.skip("mounting a tmpfs needs root and mount permission (ENOSPC is simulated in-process elsewhere)")
    try:
        yield folder
    finally:
        _umount(folder)
