"""Lazy imports of heavy or platform-bound packages.

torch, onnx, onnxruntime, tensorrt, pycuda, cuda-python and tritonclient are imported
only by the code path that needs them, through :func:`require`, which turns an
ImportError into one sentence naming the package to install.  This keeps the
on-device side (``fcn_edge.runtime``, ``fcn_edge.stream``) importable on a Jetson that
has only numpy, OpenCV and TensorRT.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType

from fcn_edge.errors import MissingDependencyError

# module name -> how to get it.  Kept in one place so every message agrees.
INSTALL_HINTS: dict[str, str] = {
    "torch": "pip install torch==2.13.0 (CPU) or the CUDA build for your platform (https://pytorch.org)",
    "onnx": "pip install onnx",
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu on a CUDA machine)",
    "onnxruntime.quantization": "pip install onnxruntime",
    "onnxscript": "pip install onnxscript",
    "tensorrt": "JetPack on a Jetson, or `pip install tensorrt` on a desktop with an NVIDIA driver",
    "pycuda": "pip install pycuda (needs the CUDA toolkit) or `pip install cuda-python`",
    "cuda": "pip install cuda-python",
    "cv2": "pip install opencv-python-headless (on a Jetson use JetPack's system OpenCV: sudo apt install python3-opencv)",
    "matplotlib": "pip install matplotlib",
    "scipy": "pip install scipy",
    "tritonclient": "pip install 'tritonclient[http,grpc]'",
    "pytriton": "pip install 'fcn-edge[serve]' (nvidia-pytriton: Linux x86_64/aarch64 with glibc 2.35+ only)",
    "modelopt": "pip install nvidia-modelopt",
    "psutil": "pip install psutil",
    "rosbags": "pip install 'fcn-edge[robotics]' (rosbags needs Python 3.10+)",
    "mcap": "pip install 'fcn-edge[robotics]'",
    "mcap_ros2": "pip install 'fcn-edge[robotics]'",
    "foxglove": "pip install 'fcn-edge[robotics]' (foxglove-sdk: CPython 3.10+ wheels for Linux x86_64/aarch64)",
}


def require(module: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying what to install.

    ``purpose`` completes the sentence, e.g. ``purpose="to read .onnx models"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        hint = INSTALL_HINTS.get(module) or INSTALL_HINTS.get(top) or f"pip install {top}"
        why = f" {purpose}" if purpose else ""
        detail = "" if exc.name in (module, top) else f" ({exc})"
        raise MissingDependencyError(f"the Python package '{top}' is needed{why} but is not installed{detail}: {hint}") from exc


def opencv() -> ModuleType:
    """OpenCV's ``cv2``, imported when first needed (data, stream and calib all go through this one message).

    Importing fcn_edge.data or fcn_edge.stream must not need OpenCV, and must never make
    pip pull its own OpenCV over a Jetson's system build (see the hint in INSTALL_HINTS).
    """
    return require("cv2", purpose="to read, draw and write images and video")


@contextlib.contextmanager
def opencv_log_level(level: str) -> Iterator[None]:
    """OpenCV's own log at ``level`` (e.g. ``"LOG_LEVEL_ERROR"``) for a block, restored after.

    OpenCV prints a warning on stderr for every backend it tries and every image it cannot
    decode; where fcn-edge reports the problem itself in one sentence, those lines are noise.
    Builds without ``cv2.utils.logging`` are left as they are.
    """
    logging_api = getattr(getattr(opencv(), "utils", None), "logging", None)
    if logging_api is None:
        yield
        return
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(getattr(logging_api, level))
    try:
        yield
    finally:
        logging_api.setLogLevel(previous)


def available(module: str) -> bool:
    """True when ``module`` can be imported (without raising on failure)."""
    try:
        importlib.import_module(module)
        return True
    except Exception:  # noqa: BLE001 - a broken install counts as unavailable
        return False
