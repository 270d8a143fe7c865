"""A small check of an engine's JSON sidecar before TensorRT tries to deserialise it.

A TensorRT engine runs only with the TensorRT version and GPU architecture it was built
for (unless built version- or hardware-compatible).  Deserialising a mismatched engine
fails deep inside TensorRT with a message that does not say what to do; reading
``<engine>.json`` first turns that into one sentence: built with X for Y, this machine
has Z, rebuild here.  The engine stage owns the sidecar format and a fuller checker;
this reader accepts the field spellings likely to appear (``tensorrt_version`` or
``tensorrt.version``; ``gpu`` as a name or ``{name, compute_capability}``) and skips
what is absent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_edge.errors import ArtifactError
from fcn_edge.modelinfo import ModelInfo

log = logging.getLogger(__name__)


def sidecar_path(engine_path: str | Path) -> Path:
    return Path(str(engine_path) + ".json")


def read_sidecar(engine_path: str | Path) -> dict[str, Any] | None:
    """The sidecar as a dict, ``None`` when there is none; a corrupt one is an error."""
    path = sidecar_path(engine_path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"engine sidecar {path} cannot be read ({exc}); rebuild the engine or delete the sidecar") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"engine sidecar {path} is not a JSON object; rebuild the engine")
    return data


@dataclass
class SidecarFacts:
    tensorrt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    version_compatible: bool = False
    hardware_compatibility: str | None = None  # None/"none", "ampere+", "same_compute_capability"
    model: ModelInfo | None = None


def sidecar_facts(data: dict[str, Any]) -> SidecarFacts:
    facts = SidecarFacts()
    trt = data.get("tensorrt_version", data.get("tensorrt"))
    if isinstance(trt, dict):
        trt = trt.get("version")
    facts.tensorrt_version = str(trt) if trt else None
    gpu = data.get("gpu")
    cc: Any = data.get("compute_capability")
    if isinstance(gpu, dict):
        facts.gpu_name = gpu.get("name")
        cc = gpu.get("compute_capability", cc)
    elif isinstance(gpu, str):
        facts.gpu_name = gpu
    facts.compute_capability = _parse_cc(cc)
    build = data.get("build") if isinstance(data.get("build"), dict) else {}
    facts.version_compatible = bool(data.get("version_compatible", build.get("version_compatible", False)))
    hw = data.get("hardware_compatibility", data.get("hardware_compatibility_level",
                                                    build.get("hardware_compatibility")))
    facts.hardware_compatibility = str(hw).lower() if hw not in (None, False) else None
    if isinstance(data.get("model"), dict):
        try:
            facts.model = ModelInfo.from_dict(data["model"])
        except ArtifactError as exc:
            raise ArtifactError(f"engine sidecar: its model description is invalid ({exc}); rebuild the engine") from exc
    return facts


def _parse_cc(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).lower().replace("sm_", "").replace("sm", "").strip()
    if "." in text:
        major, minor = text.split(".", 1)
        return int(major), int(minor)
    if text.isdigit() and len(text) >= 2:
        return int(text[:-1]), int(text[-1])
    return None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_compatibility(facts: SidecarFacts, engine_path: str | Path, *, tensorrt_version: str,
                        gpu_name: str | None, compute_capability: tuple[int, int] | None) -> list[str]:
    """Raise :class:`ArtifactError` (one sentence) when this machine cannot run the engine; return warnings."""
    warnings: list[str] = []
    built_trt = facts.tensorrt_version
    built_gpu = facts.gpu_name or "an unknown GPU"
    built_cc = facts.compute_capability
    here_gpu = gpu_name or "an unknown GPU"

    def describe(trt: str | None, gpu: str, cc: tuple[int, int] | None) -> str:
        arch = f" (sm_{cc[0]}{cc[1]})" if cc else ""
        return f"TensorRT {trt or '?'} and {gpu}{arch}"

    problem = None
    if built_trt:
        built, here = _version_tuple(built_trt), _version_tuple(tensorrt_version)
        if facts.version_compatible:
            allowed = here >= built and (here[0] == built[0] or (built[0], here[0]) in ((8, 10), (10, 11)))
            if not allowed:
                problem = "TensorRT version"
        elif built != here:
            problem = "TensorRT version"
    if problem is None and built_cc and compute_capability:
        level = facts.hardware_compatibility
        if level in (None, "none", "false", "0"):
            if tuple(built_cc) != tuple(compute_capability):
                problem = "GPU architecture"
        elif "ampere" in level:
            if compute_capability[0] < 8:
                problem = "GPU architecture (hardware-compatible engines need Ampere or newer)"
        elif "same_compute" in level and tuple(built_cc) != tuple(compute_capability):
            problem = "GPU architecture"
    if problem:
        raise ArtifactError(f"engine {engine_path} was built with {describe(built_trt, built_gpu, built_cc)}; "
                            f"this machine has {describe(tensorrt_version, here_gpu, compute_capability)} "
                            f"({problem} differs): rebuild it here with fcn-edge build-engine")
    if facts.gpu_name and gpu_name and facts.gpu_name != gpu_name:
        warnings.append(f"engine {engine_path} was built on {facts.gpu_name} and runs on {gpu_name} "
                        "(same architecture): tactics were tuned for the other GPU, rebuild for best speed")
    return warnings
