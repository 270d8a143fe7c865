"""Which NVIDIA GPU is here, from the CUDA driver itself (no torch, no pycuda, no TensorRT).

Engines are tied to a GPU architecture, so the builder records the GPU in the sidecar
and the loader compares it.  The facts come from the CUDA *driver* API (libcuda, which
every NVIDIA driver and every JetPack installs) through ctypes: it works on a Jetson
where nvidia-smi is missing or partial, honours CUDA_VISIBLE_DEVICES like TensorRT
does, and needs no Python package.  It has not been run on a real GPU from this
project yet; the missing-driver path is tested here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from dataclasses import dataclass
from typing import Any, Callable

# CUdevice_attribute values from cuda.h (stable since CUDA 2.x/3.x).
_ATTR_INTEGRATED = 18
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
_CUDA_SUCCESS = 0
_CUDA_ERROR_NO_DEVICE = 100


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as TensorRT will see it."""

    name: str
    compute_capability: tuple[int, int]
    integrated: bool = False          # True on Jetson (shared memory with the CPU)
    index: int = 0
    driver_version: int | None = None  # e.g. 12040 for CUDA 12.4

    @property
    def sm(self) -> str:
        """``"8.7"``: how NVIDIA writes compute capabilities."""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "compute_capability": self.sm, "integrated": self.integrated,
                "index": self.index, "driver_version": self.driver_version}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GpuInfo":
        return cls(name=str(data.get("name", "?")), compute_capability=parse_compute_capability(data.get("compute_capability", "0.0")),
                   integrated=bool(data.get("integrated", False)), index=int(data.get("index", 0) or 0),
                   driver_version=data.get("driver_version"))


def parse_compute_capability(value: Any) -> tuple[int, int]:
    """``"8.6"``, ``[8, 6]`` or ``86`` -> ``(8, 6)``."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).strip()
    if "." in text:
        major, minor = text.split(".", 1)
        return int(major), int(minor)
    number = int(text)
    return number // 10, number % 10


class GpuUnavailable(Exception):
    """No usable CUDA device; ``str()`` is one sentence saying why and what to do."""


def _default_loader() -> Any:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    found = ctypes.util.find_library("cuda")
    if found:
        names.append(found)
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name) if sys.platform != "win32" else ctypes.WinDLL(name)  # type: ignore[attr-defined]
        except OSError as exc:
            errors.append(str(exc))
    raise GpuUnavailable(f"no NVIDIA driver found ({names[0]} cannot be loaded): install the NVIDIA driver (on a Jetson it comes with JetPack)")


def probe_gpu(index: int = 0, loader: Callable[[], Any] = _default_loader) -> GpuInfo:
    """Describe CUDA device ``index`` or raise :class:`GpuUnavailable` (one sentence).

    ``loader`` returns the driver library (a ctypes CDLL); tests pass a test double.
    """
    lib = loader()
    status = lib.cuInit(0)
    if status == _CUDA_ERROR_NO_DEVICE:
        raise GpuUnavailable("the NVIDIA driver is installed but reports no CUDA device (check CUDA_VISIBLE_DEVICES and `nvidia-smi`)")
    if status != _CUDA_SUCCESS:
        raise GpuUnavailable(f"the CUDA driver failed to initialise (cuInit error {status}); check the driver install with `nvidia-smi` (or `tegrastats` on a Jetson)")
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != _CUDA_SUCCESS or count.value < 1:
        raise GpuUnavailable("the CUDA driver reports no device (check CUDA_VISIBLE_DEVICES)")
    if index >= count.value:
        raise GpuUnavailable(f"CUDA device {index} does not exist (this machine has {count.value})")
    device = ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(device), index) != _CUDA_SUCCESS:
        raise GpuUnavailable(f"cannot open CUDA device {index}")
    name_buf = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name_buf, 256, device)

    def attribute(attr: int) -> int:
        value = ctypes.c_int(0)
        if lib.cuDeviceGetAttribute(ctypes.byref(value), attr, device) != _CUDA_SUCCESS:
            raise GpuUnavailable(f"cannot query CUDA device {index} (attribute {attr})")
        return int(value.value)

    driver = ctypes.c_int(0)
    driver_version = int(driver.value) if lib.cuDriverGetVersion(ctypes.byref(driver)) == _CUDA_SUCCESS else None
    return GpuInfo(
        name=name_buf.value.decode("utf-8", "replace").strip() or "unknown NVIDIA GPU",
        compute_capability=(attribute(_ATTR_CC_MAJOR), attribute(_ATTR_CC_MINOR)),
        integrated=bool(attribute(_ATTR_INTEGRATED)),
        index=index,
        driver_version=driver_version,
    )


def is_jetson() -> bool:
    """True on an NVIDIA Jetson (L4T), where TensorRT comes from JetPack, not pip."""
    from pathlib import Path

    return Path("/etc/nv_tegra_release").exists() or Path("/sys/module/tegra_fuse").exists()
