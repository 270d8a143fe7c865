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

ROS2_HINT = ("ROS 2: on a Jetson install Humble or Jazzy from apt (ros-<distro>-ros-base), "
             "`source /opt/ros/<distro>/setup.bash` and use a venv made with --system-site-packages; "
             "on an x86_64 desktop (Python 3.10-3.12) pip install 'fcn-edge[ros2]'")

# module name -> how to get it.  Kept in one place so every message agrees.
INSTALL_HINTS: dict[str, str] = {
    "torch": "pip install torch==2.13.0 (CPU) or the CUDA build for your platform (https://pytorch.org)",
    "onnx": "pip install onnx",
    "onnxruntime": "pip install 'fcn-edge[onnx]' (onnxruntime; or onnxruntime-gpu on a CUDA machine)",
    "onnxruntime.quantization": "pip install onnxruntime",
    "onnxscript": "pip install onnxscript",
    "onnxconverter_common": "pip install onnxconverter-common (or fcn-edge[engine])",
    "tensorrt": "JetPack on a Jetson, or `pip install tensorrt` on a desktop with an NVIDIA driver",
    "pycuda": "pip install pycuda (needs the CUDA toolkit) or `pip install cuda-python`",
    "cuda": "pip install cuda-python",
    "cv2": ("install the system's OpenCV (sudo apt install python3-opencv; on a Jetson it comes with JetPack) and "
            "use a venv made with --system-site-packages, or `pip install 'fcn-edge[opencv]'` (pip's OpenCV has no "
            "GStreamer)"),
    "matplotlib": "pip install matplotlib",
    "scipy": "pip install scipy",
    "tritonclient": "pip install 'tritonclient[http,grpc]'",
    "pytriton": "pip install 'fcn-edge[serve]' (nvidia-pytriton: Linux x86_64/aarch64 with glibc 2.35+ only)",
    "modelopt": "pip install nvidia-modelopt",
    "psutil": "pip install psutil",
    "rclpy": ROS2_HINT,
    "sensor_msgs": ROS2_HINT,
    "std_msgs": ROS2_HINT,
    "diagnostic_msgs": ROS2_HINT,
    "rcl_interfaces": ROS2_HINT,
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
    try:
        return require("cv2", purpose="to read, draw and write images and video")
    except MissingDependencyError as exc:
        mismatch = numpy_mismatch(exc.__cause__)
        if mismatch:
            raise MissingDependencyError(mismatch) from exc.__cause__
        raise


def numpy_mismatch(error: BaseException | str | None) -> str | None:
    """One sentence when ``cv2`` failed to import because it was built against numpy 1.x and numpy 2 is installed.

    That is what a pip numpy 2 in a ``--system-site-packages`` venv does to a system cv2
    (Debian's python3-opencv, JetPack's): the fix is numpy < 2 in that venv, not another OpenCV.
    """
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}" if error is not None else ""
    if not any(marker in text for marker in ("numpy.core.multiarray", "_ARRAY_API", "numpy.core._multiarray_umath",
                                             "compiled using NumPy 1.x")):
        return None
    try:
        import numpy

        version = numpy.__version__
    except Exception:  # noqa: BLE001 - numpy itself broken: say so below without its version
        version = "?"
    return (f"OpenCV (cv2) fails to import with numpy {version} ({text.splitlines()[0][:120]}): this cv2 was built "
            "against numpy 1.x; in this venv run `pip install 'numpy<2'` (a system OpenCV needs the system's numpy)")


# OpenCV's cv::utils::logging::LogLevel values, for builds without cv2.utils.logging.
_NUMERIC_LOG_LEVELS = {"LOG_LEVEL_SILENT": 0, "LOG_LEVEL_FATAL": 1, "LOG_LEVEL_ERROR": 2, "LOG_LEVEL_WARNING": 3,
                       "LOG_LEVEL_INFO": 4, "LOG_LEVEL_DEBUG": 5, "LOG_LEVEL_VERBOSE": 6}


@contextlib.contextmanager
def opencv_log_level(level: str) -> Iterator[None]:
    """OpenCV's own log at ``level`` (e.g. ``"LOG_LEVEL_ERROR"``) for a block, restored after.

    OpenCV prints a warning on stderr for every backend it tries and every image it cannot
    decode; where fcn-edge reports the problem itself in one sentence, those lines are noise.
    Builds without ``cv2.utils.logging`` are left as they are.
    """
    cv2 = opencv()
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is not None:
        previous = logging_api.getLogLevel()
        logging_api.setLogLevel(getattr(logging_api, level))
    elif hasattr(cv2, "setLogLevel") and hasattr(cv2, "getLogLevel"):
        # Older system builds (Debian 12's OpenCV 4.6) have only the numeric top-level calls.
        logging_api = cv2
        previous = cv2.getLogLevel()
        cv2.setLogLevel(_NUMERIC_LOG_LEVELS[level])
    else:
        yield
        return
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
