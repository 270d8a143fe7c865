"""Is this a machine that can build TensorRT engines?  One sentence when it is not.

Building needs two things: TensorRT's Python bindings and an NVIDIA GPU with its
driver.  When either is missing, ``fcn-edge build-engine`` exits with one line naming
what is missing and how to get it (JetPack on a Jetson, ``pip install tensorrt`` on a
desktop with an NVIDIA driver), never a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from fcn_edge.artifacts.gpu import GpuInfo, GpuUnavailable, is_jetson, probe_gpu
from fcn_edge.artifacts.trt_versions import TrtVersion, parse_trt_version
from fcn_edge.errors import MissingDependencyError


@dataclass(frozen=True)
class BuildEnvironment:
    trt: ModuleType
    trt_version: TrtVersion
    gpu: GpuInfo


def tensorrt_install_hint(jetson: bool) -> str:
    if jetson:
        return ("on a Jetson TensorRT comes with JetPack (`sudo apt install nvidia-jetpack`); use the system python3 "
                "or a venv created with --system-site-packages")
    return "`pip install tensorrt` on a desktop with an NVIDIA driver"


def import_tensorrt(importer: Callable[[str], ModuleType] = importlib.import_module) -> tuple[ModuleType | None, str | None]:
    """(module, None) or (None, why-not)."""
    try:
        module = importer("tensorrt")
    except ImportError as exc:
        detail = "" if getattr(exc, "name", None) == "tensorrt" else f" ({str(exc)[:120]})"
        return None, f"TensorRT's Python bindings are not installed{detail}"
    except Exception as exc:  # noqa: BLE001 - a half-installed wheel can raise anything
        return None, f"TensorRT's Python bindings fail to import ({type(exc).__name__}: {str(exc)[:120]})"
    if not hasattr(module, "Builder") or not hasattr(module, "__version__"):
        return None, "the installed 'tensorrt' package is incomplete (no Builder); reinstall it"
    return module, None


def detect_build_environment(device: int = 0,
                             importer: Callable[[str], ModuleType] = importlib.import_module,
                             probe: Callable[[int], GpuInfo] = probe_gpu,
                             jetson: bool | None = None) -> BuildEnvironment:
    """TensorRT + GPU, or :class:`MissingDependencyError` naming everything that is missing."""
    jetson = is_jetson() if jetson is None else jetson
    trt, trt_problem = import_tensorrt(importer)
    gpu = None
    gpu_problem = None
    try:
        gpu = probe(device)
    except GpuUnavailable as exc:
        gpu_problem = str(exc)
    problems = []
    if trt_problem:
        problems.append(f"{trt_problem}: {tensorrt_install_hint(jetson)}")
    if gpu_problem:
        problems.append(f"no usable NVIDIA GPU: {gpu_problem}")
    if problems:
        raise MissingDependencyError("cannot build TensorRT engines on this machine: " + "; and ".join(problems))
    assert trt is not None and gpu is not None
    return BuildEnvironment(trt=trt, trt_version=parse_trt_version(trt.__version__), gpu=gpu)
