"""The machine a benchmark ran on, recorded beside every figure, and JSON result writing."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    """CPU, cores, memory, OS, Python and the versions of the libraries that set speed."""
    info = {
        "hostname_hash": hex(abs(hash(platform.node())) % (1 << 32)),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "libraries": {},
        "gpu": _gpu_name(),
        # How busy the (possibly shared) machine was when the result was written: the
        # 1-minute figure covers the end of the run, so a reader can judge the noise.
        "load_average": load_average(),
    }
    for name in ("numpy", "torch", "onnx", "onnxruntime", "cv2", "tensorrt"):
        try:
            module = __import__(name)
            info["libraries"][name] = getattr(module, "__version__", "?")
        except Exception:  # noqa: BLE001
            info["libraries"][name] = None
    return info


def write_result(name: str, payload: dict, results_dir: Path | None = None) -> Path:
    """Write ``results/<name>.json`` with the machine block added; returns the path."""
    folder = results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    data = {"benchmark": name, "machine": machine_info(), **payload}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages, rounded (None where the OS has none): how quiet the machine was."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None
