"""``fcn-edge doctor``: what this machine has for each stage, and what is missing for which command.

Robotics users meet fcn-edge on machines they did not set up (a Jetson flashed by
someone else, a CI box, a laptop).  Doctor answers "can I run X here, and if not, what
do I install?" without importing anything that could crash: every probe is guarded.
It also says which OpenCV is in use (a Jetson's system OpenCV has GStreamer; a pip
wheel that shadows it loses CSI cameras).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field


@dataclass
class Probe:
    name: str
    ok: bool
    detail: str
    hint: str = ""


@dataclass
class Report:
    probes: list[Probe] = field(default_factory=list)
    commands: dict[str, list[str]] = field(default_factory=dict)  # command -> missing probes

    def to_dict(self) -> dict:
        return {"probes": [asdict(p) for p in self.probes], "commands": self.commands}


# Which probes each command needs (all of them), or any one of a group (tuple).
REQUIREMENTS: dict[str, list] = {
    "synth": ["numpy", "opencv"],
    "train": ["torch", "opencv"],
    "eval": ["opencv", ("torch", "onnxruntime", "tensorrt")],
    "export": ["torch", "onnx", "onnxruntime"],
    "calibrate": ["onnx", "onnxruntime", "opencv"],
    "build-engine": ["onnx", "tensorrt", "gpu"],
    "run (.onnx)": ["onnxruntime", "opencv"],
    "run (.engine)": ["tensorrt", ("cuda-python", "pycuda", "libcudart"), "gpu", "opencv"],
    "run (csi:// camera)": ["opencv-gstreamer"],
    "bench": [("torch", "onnxruntime", "tensorrt")],
    "serve": ["pytriton"],
    "triton:// models": ["tritonclient"],
}


def _version_of(module_name: str) -> tuple[bool, str]:
    if importlib.util.find_spec(module_name.split(".")[0]) is None:
        return False, "not installed"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return False, f"installed but fails to import: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    version = getattr(module, "__version__", None) or getattr(module, "VERSION", None) or "?"
    return True, str(version)


def probe_python() -> Probe:
    ok = sys.version_info >= (3, 10)
    return Probe("python", ok, f"{platform.python_version()} at {sys.executable}",
                 "" if ok else "fcn-edge needs Python 3.10 or newer")


def probe_module(name: str, module: str, hint: str) -> Probe:
    ok, detail = _version_of(module)
    return Probe(name, ok, detail, "" if ok else hint)


def probe_torch() -> Probe:
    ok, detail = _version_of("torch")
    if ok:
        import torch

        cuda = torch.cuda.is_available()
        detail += f" (CUDA {'available: ' + torch.cuda.get_device_name(0) if cuda else 'not available'})"
    return Probe("torch", ok, detail, "" if ok else "pip install torch==2.13.0 (CPU) or your platform's CUDA build")


def probe_onnxruntime() -> Probe:
    ok, detail = _version_of("onnxruntime")
    if ok:
        import onnxruntime

        detail += f", providers: {', '.join(onnxruntime.get_available_providers())}"
    return Probe("onnxruntime", ok, detail, "" if ok else "pip install onnxruntime (onnxruntime-gpu for CUDA)")


def probe_tensorrt() -> Probe:
    ok, detail = _version_of("tensorrt")
    hint = ("on a Jetson install JetPack (sudo apt install nvidia-jetpack); on a desktop `pip install tensorrt` "
            "with an NVIDIA driver")
    return Probe("tensorrt", ok, detail, "" if ok else hint)


def probe_cuda_python() -> Probe:
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        ok, detail = _version_of(module)
        if ok:
            return Probe("cuda-python", True, f"{module} importable")
    return Probe("cuda-python", False, "not installed", "pip install cuda-python")


def probe_libcudart() -> Probe:
    """The CUDA runtime library the TensorRT runner calls through ctypes when no Python binding is installed."""
    from fcn_edge.errors import FcnEdgeError
    from fcn_edge.runtime.cuda_ctypes import INSTALL_HINT, load_cudart, version_text

    try:
        cudart = load_cudart()
    except FcnEdgeError:
        return Probe("libcudart", False, "no CUDA runtime library found", INSTALL_HINT)
    return Probe("libcudart", True,
                 f"{cudart.path} (CUDA runtime {version_text(cudart.version('cudaRuntimeGetVersion'))})")


def probe_gpu() -> Probe:
    tegra = _read_first("/etc/nv_tegra_release")
    model = _read_first("/proc/device-tree/model")
    if tegra or (model and "jetson" in model.lower()):
        return Probe("gpu", True, f"Jetson: {model or 'unknown model'} ({(tegra or '').strip()[:80]})")
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                return Probe("gpu", True, "; ".join(line.strip() for line in out.stdout.splitlines()))
        except (OSError, subprocess.TimeoutExpired):
            pass
    return Probe("gpu", False, "no NVIDIA GPU found (no nvidia-smi answer, not a Jetson)",
                 "TensorRT engines need an NVIDIA GPU; ONNX Runtime on the CPU works without one")


# Run in a child interpreter: a cv2 built against numpy 1.x under numpy 2 prints a page of
# warnings and fails to import; doctor reports that in one line instead of crashing or printing it.
_CV2_PROBE = r"""
import json, sys
out = {}
try:
    import numpy
    out["numpy"] = [numpy.__version__, numpy.__file__]
except Exception as exc:
    out["numpy_error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    import cv2
    out["cv2"] = [cv2.__version__, getattr(cv2, "__file__", None) or "?", cv2.getBuildInformation()]
except BaseException as exc:
    out["cv2_error"] = "%s: %s" % (type(exc).__name__, exc)
sys.stdout.write("\n" + json.dumps(out))
"""

SYSTEM_SITE = ("dist-packages", "/usr/lib/python3", "/usr/local/lib/python3")


def python_origin(path: str) -> str:
    """``system`` for apt/JetPack packages (dist-packages), ``pip`` for a venv's or user's site-packages."""
    return "system" if any(marker in path for marker in SYSTEM_SITE) and "site-packages" not in path else "pip"


def _probe_cv2_in_child() -> dict:
    """What ``import cv2`` and ``import numpy`` give in a fresh interpreter (this one's), as a dict."""
    try:
        done = subprocess.run([sys.executable, "-c", _CV2_PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"cv2_error": f"could not start {sys.executable}: {exc}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"cv2_error": (done.stderr.strip().splitlines() or ["the check crashed"])[-1][:200]}


def build_value(info: str, name: str) -> str | None:
    """The value of one ``name:`` line of ``cv2.getBuildInformation()`` (e.g. ``GStreamer`` -> ``YES (1.22.0)``)."""
    for line in info.splitlines():
        if line.strip().startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _backend(info: str, name: str) -> tuple[bool, str]:
    value = build_value(info, name) or "NO"
    version = value[value.find("(") + 1:value.find(")")] if "(" in value else ""
    return value.upper().startswith("YES"), version


def probe_numpy(found: dict) -> Probe:
    if "numpy" not in found:
        return Probe("numpy", False, found.get("numpy_error", "not installed"), "pip install numpy")
    version, path = found["numpy"]
    return Probe("numpy", True, f"{version} ({python_origin(path)}) at {path}")


def _numpy_fit(found: dict, info: str) -> str:
    """How cv2's numpy and the installed numpy agree: the build's numpy (when the build says) and the outcome."""
    built = build_value(info, "numpy") or ""
    built_version = built[built.rfind("(ver ") + 5:built.rfind(")")] if "(ver " in built else "not stated"
    installed = found.get("numpy", ["?"])[0]
    return f"built against numpy {built_version}, imports with numpy {installed}: fit"


def _system_cv2_shadowed(location: str) -> bool:
    """True when the cv2 in use is pip's and a system cv2 sits further down this interpreter's path."""
    if python_origin(location) != "pip":
        return False
    return any(python_origin(entry) == "system" and glob.glob(os.path.join(entry, "cv2*")) for entry in sys.path if entry)


def probe_opencv() -> list[Probe]:
    """Which cv2 (path, version, system or pip), whether it fits numpy, and whether it has GStreamer."""
    found = _probe_cv2_in_child()
    probes = [probe_numpy(found)]
    if "cv2" not in found:
        from fcn_edge.lazy import INSTALL_HINTS, numpy_mismatch

        error = found.get("cv2_error", "not installed")
        missing = error.startswith("ModuleNotFoundError") and "'cv2'" in error
        mismatch = None if missing else numpy_mismatch(error)
        detail = "not installed" if missing else f"installed but fails to import: {error.splitlines()[0][:160]}"
        probes += [Probe("opencv", False, detail, mismatch or INSTALL_HINTS["cv2"]),
                   Probe("opencv-gstreamer", False, "no OpenCV", "")]
        return probes
    version, location, info = found["cv2"]
    gst, gst_version = _backend(info, "GStreamer")
    ffmpeg, _ = _backend(info, "FFMPEG")
    gui = "headless" if "headless" in location.lower() or not (_backend(info, "GTK")[0] or _backend(info, "QT")[0]) \
        else "with GUI"
    origin = python_origin(location)
    shadow_hint = ("a pip OpenCV shadows the system's (which may have GStreamer): pip uninstall "
                   "opencv-python-headless opencv-python" if _system_cv2_shadowed(location) else "")
    probes.append(Probe("opencv", True, f"{version} ({origin}, {gui}) at {location}; {_numpy_fit(found, info)}; "
                        f"FFmpeg: {'yes' if ffmpeg else 'no'}; GStreamer: {'yes ' + gst_version if gst else 'no'}",
                        shadow_hint))
    gst_hint = ("csi:// and gst: sources need OpenCV built with GStreamer: use the system OpenCV (JetPack's, or "
                "sudo apt install python3-opencv) in a venv made with --system-site-packages, without pip's opencv-python*")
    probes.append(Probe("opencv-gstreamer", gst, f"GStreamer {gst_version} backend present" if gst
                        else "GStreamer backend absent", "" if gst else gst_hint))
    return probes


def probe_cameras() -> Probe:
    devices = sorted(glob.glob("/dev/video*"))
    csi = os.path.exists("/dev/nvhost-vi") or bool(glob.glob("/dev/v4l-subdev*"))
    detail = ", ".join(devices) if devices else "no /dev/video* devices"
    if csi:
        detail += "; CSI camera hardware present"
    return Probe("cameras", bool(devices), detail, "" if devices else "live sources need a camera; files and URLs work anyway")


def collect() -> Report:
    report = Report()
    report.probes.append(probe_python())
    report.probes.append(probe_torch())
    report.probes.append(probe_module("onnx", "onnx", "pip install onnx"))
    report.probes.append(probe_onnxruntime())
    report.probes.append(probe_tensorrt())
    report.probes.append(probe_cuda_python())
    report.probes.append(probe_module("pycuda", "pycuda", "pip install pycuda (builds from source; needs the CUDA toolkit)"))
    report.probes.append(probe_libcudart())
    report.probes.append(probe_gpu())
    report.probes.extend(probe_opencv())  # numpy, opencv, opencv-gstreamer
    report.probes.append(probe_cameras())
    report.probes.append(probe_module("pytriton", "pytriton", "pip install 'fcn-edge[serve]' (nvidia-pytriton)"))
    report.probes.append(probe_module("tritonclient", "tritonclient", "pip install 'tritonclient[http,grpc]'"))
    status = {p.name: p.ok for p in report.probes}
    for command, needs in REQUIREMENTS.items():
        missing = []
        for need in needs:
            if isinstance(need, tuple):
                if not any(status.get(n) for n in need):
                    missing.append(" or ".join(need))
            elif not status.get(need):
                missing.append(need)
        report.commands[command] = missing
    return report


def format_report(report: Report) -> str:
    lines = ["fcn-edge doctor", ""]
    width = max(len(p.name) for p in report.probes)
    for p in report.probes:
        mark = "ok " if p.ok else "-- "
        lines.append(f"  {mark}{p.name:<{width}}  {p.detail}")
        if p.hint:
            lines.append(f"     {'':<{width}}  -> {p.hint}")
    lines += ["", "Commands:"]
    for command, missing in report.commands.items():
        lines.append(f"  {'ok ' if not missing else '-- '}{command:<22}" + ("ready" if not missing else "needs " + ", ".join(missing)))
    return "\n".join(lines)


def _read_first(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(200).decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="what this machine has for each stage and what is missing",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="also write the findings as JSON ('-' for stdout)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    report = collect()
    if getattr(args, "json", None) == "-":
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(format_report(report))
    if getattr(args, "json", None):
        from fcn_edge.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2) + "\n")
    return 0
