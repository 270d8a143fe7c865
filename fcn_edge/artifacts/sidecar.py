"""The engine's JSON sidecar: what an engine is, and whether this machine can run it.

A TensorRT engine is opaque and tied to the TensorRT version and GPU that built it.
``model.fp16.engine`` is always written with ``model.fp16.engine.json`` beside it
(schema below) so that loading can say *exactly* what differs ("built with TensorRT
8.6.2 on Orin (sm 8.7); this is TensorRT 10.3.0 on ... ") instead of failing deep
inside ``deserialize_cuda_engine``.

Schema (``schema_version`` 1)::

    {
      "format": "fcn-edge engine sidecar", "schema_version": 1,
      "fcn_edge_version": "0.1.0", "created": "2026-...Z",
      "engine": {"file": "model.fp16.engine", "sha256": "...", "size_bytes": 123},
      "tensorrt": {"version": "10.3.0", "version_compatible": false,
                   "exclude_lean_runtime": false, "hardware_compatibility": "none"},
      "gpu": {"name": "Orin", "compute_capability": "8.7", "integrated": true,
              "index": 0, "driver_version": 12020},
      "dla": {"core": null, "gpu_fallback": false},
      "precision": "fp16",
      "io": {"inputs": [{"name": "frames", "shape": [1, 512, 512, 3], "dtype": "uint8",
                         "profile": {"min": [...], "opt": [...], "max": [...]} | null}],
             "outputs": [{"name": "labels", "shape": [1, 512, 512], "dtype": "uint8"}, ...]},
      "source_onnx": {"name": "model.onnx", "sha256": "...", "opset": 17},
      "build": {"options": {...BuildOptions...}, "plan": {...BuildPlan.cache_fields()...},
                "onnx_variant": "as exported", "strongly_typed": false,
                "network_flags": [...], "builder_flags": [...], "profile": [...],
                "build_seconds": 312.5, "cache_key": "..." | null, "warnings": [...]},
      "model": {...ModelInfo.to_dict(): arch, classes, palette, preprocessing...} | null,
      "export": {...the ONNX's fcn_edge.export facts...},
      "int8": {"keep_float": {"ConvTranspose": [...], ...}, "keep_float_searched": ["conv3_2"],
               "onnx_accuracy": {...measured by fcn-edge calibrate, ONNX Runtime CPU...} | null,
               "budget": {"max_drop": 0.5, "min_agreement": null} | null,
               "engine_accuracy": {...this engine vs the FP32 ONNX, build-engine --verify...} | null}
    }                                 # "int8" only in INT8 engines' sidecars

Writing is atomic *as a pair* (:func:`write_engine_and_sidecar`): the engine and the
sidecar are both written to temporary files in the destination folder and fsynced,
then the engine is renamed into place, then the sidecar.  The only crash window is
between the two renames: the new engine then sits next to the old sidecar (or none).
The sidecar records the engine's size and SHA-256, so :func:`check_sidecar` reports
such a pair as mismatched ("rebuild") instead of trusting it, and the engine cache
treats it as a miss.  The sidecar is the commit marker: a pair is valid only when the
sidecar's hash matches the engine next to it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_edge import __version__
from fcn_edge.artifacts.gpu import GpuInfo, parse_compute_capability
from fcn_edge.artifacts.trt_versions import TrtVersion, parse_trt_version
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.fileio import atomic_path, check_writable_destination, require_file

FORMAT = "fcn-edge engine sidecar"
SCHEMA_VERSION = 1
# TensorRT major -> the older majors whose version-compatible engines it can run.
CROSS_MAJOR_COMPAT = {10: (8,), 11: (10,)}


def sidecar_path_for(engine_path: "str | Path") -> Path:
    """``model.fp16.engine`` -> ``model.fp16.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_sidecar(*, engine_bytes: bytes, engine_name: str, trt_version: "TrtVersion | str", gpu: GpuInfo,
                 precision: str, io: dict[str, list[dict[str, Any]]], source_name: str, source_sha256: str,
                 source_opset: int, build: dict[str, Any], version_compatible: bool, exclude_lean_runtime: bool,
                 hardware_compat: str, dla_core: int | None, gpu_fallback: bool,
                 model: dict[str, Any] | None, export: dict[str, Any] | None,
                 int8: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar dictionary (see the module docstring for the schema)."""
    extra = {} if int8 is None else {"int8": int8}
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "fcn_edge_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engine": {"file": engine_name, "sha256": sha256_bytes(engine_bytes), "size_bytes": len(engine_bytes)},
        "tensorrt": {"version": str(parse_trt_version(trt_version)), "version_compatible": bool(version_compatible),
                     "exclude_lean_runtime": bool(exclude_lean_runtime), "hardware_compatibility": hardware_compat},
        "gpu": gpu.to_dict(),
        "dla": {"core": dla_core, "gpu_fallback": bool(gpu_fallback)},
        "precision": precision,
        "io": io,
        "source_onnx": {"name": source_name, "sha256": source_sha256, "opset": source_opset},
        "build": build,
        "model": model,
        "export": export or {},
        **extra,
    }


@dataclass(frozen=True)
class EngineSidecar:
    """A parsed, schema-checked sidecar with typed accessors (``data`` keeps everything)."""

    data: dict[str, Any]
    path: Path | None = None

    @property
    def trt_version(self) -> TrtVersion:
        return parse_trt_version(self.data["tensorrt"]["version"])

    @property
    def version_compatible(self) -> bool:
        return bool(self.data["tensorrt"].get("version_compatible", False))

    @property
    def exclude_lean_runtime(self) -> bool:
        return bool(self.data["tensorrt"].get("exclude_lean_runtime", False))

    @property
    def hardware_compat(self) -> str:
        return str(self.data["tensorrt"].get("hardware_compatibility", "none"))

    @property
    def gpu(self) -> GpuInfo:
        return GpuInfo.from_dict(self.data["gpu"])

    @property
    def dla_core(self) -> int | None:
        core = (self.data.get("dla") or {}).get("core")
        return None if core is None else int(core)

    @property
    def precision(self) -> str:
        return str(self.data["precision"])

    @property
    def engine_sha256(self) -> str:
        return str(self.data["engine"]["sha256"])

    @property
    def engine_size(self) -> int:
        return int(self.data["engine"]["size_bytes"])

    @property
    def model(self) -> dict[str, Any] | None:
        return self.data.get("model")

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return list(self.data["io"]["inputs"])

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return list(self.data["io"]["outputs"])

    @property
    def int8(self) -> dict[str, Any] | None:
        """Keep-float set and accuracy of an INT8 engine (calibrate's facts, build-engine --verify's figures)."""
        return self.data.get("int8")

    @property
    def cache_key(self) -> str | None:
        return (self.data.get("build") or {}).get("cache_key")

    def describe(self) -> str:
        gpu = self.gpu
        return (f"{self.precision} engine built with TensorRT {self.trt_version} on {gpu.name} (sm {gpu.sm})"
                + (f", DLA core {self.dla_core}" if self.dla_core is not None else ""))


REQUIRED = {"engine": ("file", "sha256", "size_bytes"), "tensorrt": ("version",), "gpu": ("name", "compute_capability"),
            "io": ("inputs", "outputs"), "precision": None}


def parse_sidecar(data: Any, path: Path | None = None) -> EngineSidecar:
    """Check the schema of a sidecar dictionary; one-sentence errors naming the file."""
    where = str(path) if path else "engine sidecar"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"{where} is not an fcn-edge engine sidecar (no 'format: {FORMAT}')")
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{where} has no valid schema_version")
    if version > SCHEMA_VERSION:
        raise ArtifactError(f"{where} uses sidecar schema {version}, newer than this fcn-edge reads ({SCHEMA_VERSION}): "
                            "upgrade fcn-edge")
    for key, fields in REQUIRED.items():
        if key not in data:
            raise ArtifactError(f"{where} lacks '{key}'; rebuild the engine with fcn-edge build-engine")
        for sub in fields or ():
            if not isinstance(data[key], dict) or sub not in data[key]:
                raise ArtifactError(f"{where} lacks '{key}.{sub}'; rebuild the engine with fcn-edge build-engine")
    try:
        parse_trt_version(data["tensorrt"]["version"])
        parse_compute_capability(data["gpu"]["compute_capability"])
    except (FcnEdgeError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{where} has a malformed TensorRT version or compute capability ({exc})") from exc
    problem = _schema_problem(data)
    if problem:
        raise ArtifactError(f"{where}: {problem}; rebuild the engine with fcn-edge build-engine")
    sidecar = EngineSidecar(data, path)
    try:  # every typed accessor the loaders use must work on a sidecar that parsed
        sidecar.gpu, sidecar.trt_version, sidecar.dla_core, sidecar.engine_size, sidecar.describe()
    except (FcnEdgeError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ArtifactError(f"{where} has a malformed entry ({exc}); rebuild the engine with fcn-edge build-engine") from exc
    return sidecar


def _schema_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with the types of a sidecar's entries (None when nothing is)."""
    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    engine, trt, gpu = data["engine"], data["tensorrt"], data["gpu"]
    if not isinstance(engine["file"], str) or not isinstance(engine["sha256"], str):
        return "engine.file and engine.sha256 must be text"
    if not is_int(engine["size_bytes"]) or engine["size_bytes"] < 0:
        return f"engine.size_bytes must be a byte count, not {engine['size_bytes']!r}"
    for key in ("version_compatible", "exclude_lean_runtime"):
        if key in trt and not isinstance(trt[key], bool):
            return f"tensorrt.{key} must be true or false"
    if trt.get("hardware_compatibility", "none") not in ("none", "ampere+"):
        return f"tensorrt.hardware_compatibility {trt.get('hardware_compatibility')!r} is not none or ampere+"
    if not isinstance(gpu["name"], str):
        return "gpu.name must be text"
    if not isinstance(gpu.get("integrated", False), bool) or not is_int(gpu.get("index", 0) or 0):
        return "gpu.integrated must be true or false and gpu.index a number"
    dla = data.get("dla")
    if dla is not None and (not isinstance(dla, dict) or not (dla.get("core") is None or
                                                              (is_int(dla["core"]) and dla["core"] >= 0))):
        return "dla.core must be null or a DLA core number"
    if not isinstance(data["precision"], str):
        return "precision must be text"
    io = data["io"]
    for key in ("inputs", "outputs"):
        if not isinstance(io[key], list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                                    for t in io[key]):
            return f"io.{key} must be a list of tensors with names"
    for key in ("model", "export", "build"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} must be null or a mapping"
    return _int8_problem(data.get("int8"))


def _int8_problem(int8: Any) -> str | None:
    """What is wrong with the optional ``int8`` entry (keep-float set, accuracy figures), or None."""
    if int8 is None:
        return None
    if not isinstance(int8, dict):
        return "int8 must be null or a mapping"
    keep = int8.get("keep_float", {})
    if not isinstance(keep, dict) or not all(isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
                                             for k, v in keep.items()):
        return "int8.keep_float must map keep-float items to lists of layer names"
    searched = int8.get("keep_float_searched", [])
    if not isinstance(searched, list) or not all(isinstance(x, str) for x in searched):
        return "int8.keep_float_searched must be a list of layer names"
    for key in ("onnx_accuracy", "engine_accuracy", "budget"):
        value = int8.get(key)
        if value is not None and not isinstance(value, dict):
            return f"int8.{key} must be null or a mapping"
    for key in ("onnx_accuracy", "engine_accuracy"):
        figures = int8.get(key) or {}
        agreement = figures.get("agreement")
        if agreement is not None and (not _is_number(agreement) or not 0.0 <= agreement <= 1.0):
            return f"int8.{key}.agreement must be a fraction between 0 and 1, not {agreement!r}"
        for name in ("mean_iu_fp32", "mean_iu_int8", "mean_iu_drop"):
            if figures.get(name) is not None and not _is_number(figures[name]):
                return f"int8.{key}.{name} must be a number or null, not {figures[name]!r}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def read_sidecar(path: "str | Path") -> EngineSidecar:
    """Read the sidecar at ``path``, or the one beside the engine when given ``x.engine``."""
    path = Path(path)
    if path.suffix != ".json":
        side = sidecar_path_for(path)
        if not side.exists():
            raise ArtifactError(f"{path} has no sidecar {side.name}: it was not built by fcn-edge build-engine (or the "
                                "sidecar was not copied with it); rebuild it, or copy the .engine.json next to it")
        path = side
    require_file(path, "engine sidecar", ArtifactError)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); rebuild the engine with fcn-edge build-engine") from exc
    return parse_sidecar(data, path)


def write_engine_and_sidecar(engine_path: "str | Path", engine_bytes: bytes, sidecar: dict[str, Any]) -> Path:
    """Write the engine and its sidecar atomically as a pair (engine renamed first).

    The sidecar's ``engine`` block is (re)stamped from ``engine_bytes`` so the two can
    never disagree when both renames happen.  See the module docstring for the crash
    window between the renames and how readers detect it.
    """
    engine_path = check_writable_destination(engine_path)
    side_path = check_writable_destination(sidecar_path_for(engine_path))
    sidecar = dict(sidecar)
    sidecar["engine"] = {"file": engine_path.name, "sha256": sha256_bytes(engine_bytes), "size_bytes": len(engine_bytes)}
    text = json.dumps(sidecar, indent=2, sort_keys=False) + "\n"
    parse_sidecar(json.loads(text), side_path)  # never write a sidecar we would refuse to read
    # Outer context = sidecar, inner = engine: the inner block exits (renames) first.
    with atomic_path(side_path) as side_tmp:
        with atomic_path(engine_path) as engine_tmp:
            engine_tmp.write_bytes(engine_bytes)
            side_tmp.write_text(text, encoding="utf-8")
    return engine_path


@dataclass(frozen=True)
class RuntimeEnvironment:
    """The TensorRT and GPU an engine is about to be loaded with."""

    trt_version: TrtVersion
    gpu: GpuInfo | None   # None when the GPU could not be queried


@dataclass
class CompatibilityReport:
    """Differences between a sidecar and the running machine."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self, engine_name: str) -> None:
        if self.errors:
            raise ArtifactError(f"cannot load {engine_name}: " + "; ".join(self.errors))


def check_sidecar(sidecar: EngineSidecar, env: RuntimeEnvironment, *, engine_bytes: bytes | None = None,
                  engine_size: int | None = None) -> CompatibilityReport:
    """Compare a sidecar with the running TensorRT and GPU (and the engine's bytes, if given).

    Rules (design.md, TensorRT's compatibility docs):
    * Without version compatibility an engine runs only on the exact TensorRT release
      that built it.  With it: on the same or a newer minor of the same major, and
      across majors only 8 -> 10 and 10 -> 11.  Never on an older TensorRT.
    * Without hardware compatibility an engine runs only on the compute capability that
      built it (same sm, another GPU model: works, warned).  ``ampere+``: any sm >= 8.0.
    """
    report = CompatibilityReport()
    built = sidecar.trt_version
    here = env.trt_version
    rebuild = "rebuild it here with fcn-edge build-engine"

    # ---- the engine file itself --------------------------------------------------------
    size = len(engine_bytes) if engine_bytes is not None else engine_size
    if size is not None and size != sidecar.engine_size:
        report.errors.append(f"the engine file has {size} bytes but its sidecar describes one of {sidecar.engine_size} "
                             "(the pair is mismatched, e.g. a copy without its sidecar or an interrupted build); " + rebuild)
    elif engine_bytes is not None and sha256_bytes(engine_bytes) != sidecar.engine_sha256:
        report.errors.append("the engine's SHA-256 differs from the one in its sidecar (the pair is mismatched); " + rebuild)

    # ---- TensorRT version ---------------------------------------------------------------
    if not sidecar.version_compatible:
        same = built.release == here.release and (not built.build or not here.build or built.build == here.build)
        if not same:
            report.errors.append(f"it was built with TensorRT {built} but this is TensorRT {here} (engines run only on the "
                                 f"TensorRT release that built them unless built with --version-compatible); {rebuild}")
    else:
        if here.release < built.release:
            report.errors.append(f"it was built with TensorRT {built}, newer than this TensorRT {here}; "
                                 f"upgrade TensorRT or {rebuild}")
        elif here.major != built.major and built.major not in CROSS_MAJOR_COMPAT.get(here.major, ()):
            report.errors.append(f"it is a version-compatible TensorRT {built} engine, but TensorRT {here.major} runs "
                                 f"version-compatible engines only from "
                                 f"{', '.join(str(m) for m in CROSS_MAJOR_COMPAT.get(here.major, ())) or 'its own major'}; "
                                 + rebuild)
        elif here.release != built.release:
            report.warnings.append(f"version-compatible engine from TensorRT {built} running on {here}: it works, "
                                   "but an engine built here may be faster")
        if sidecar.exclude_lean_runtime:
            report.warnings.append("the engine excludes TensorRT's lean runtime: load one with IRuntime.load_runtime "
                                   "before deserializing")

    # ---- GPU ----------------------------------------------------------------------------
    built_gpu = sidecar.gpu
    gpu = env.gpu
    if gpu is None:
        report.warnings.append(f"could not query this machine's GPU to compare with {built_gpu.name} (sm {built_gpu.sm})")
    elif sidecar.hardware_compat == "ampere+":
        if gpu.compute_capability < (8, 0):
            report.errors.append(f"it is an ampere+ engine (needs sm 8.0 or newer) but {gpu.name} is sm {gpu.sm}; {rebuild}")
    elif gpu.compute_capability != built_gpu.compute_capability:
        report.errors.append(f"it was built for {built_gpu.name} (sm {built_gpu.sm}) but this GPU is {gpu.name} "
                             f"(sm {gpu.sm}); engines are tied to the GPU architecture unless built with "
                             f"--hardware-compat ampere+; {rebuild}")
    elif gpu.name != built_gpu.name:
        report.warnings.append(f"built on {built_gpu.name}, running on {gpu.name} (same sm {gpu.sm}): it works, but its "
                               "kernels were tuned for the other GPU; rebuild here for the best speed")
    if sidecar.dla_core is not None and gpu is not None and not gpu.integrated:
        report.errors.append(f"it runs on DLA core {sidecar.dla_core}, which only Jetson Xavier/Orin have; "
                             f"this is {gpu.name}")
    return report


@dataclass(frozen=True)
class EngineLoadSettings:
    """What the TensorRT runtime must be told before ``deserialize_cuda_engine``."""

    engine_host_code_allowed: bool   # runtime.engine_host_code_allowed = True (version-compatible engines)
    dla_core: int | None             # runtime.DLA_core = N (DLA engines)
    load_lean_runtime: bool          # the engine excludes the lean runtime


def engine_load_settings(*, version_compatible: bool, exclude_lean_runtime: bool,
                         dla_core: int | None) -> EngineLoadSettings:
    """The rule, from how an engine was built (the builder's check and the device's load share it).

    A version-compatible engine carries TensorRT's lean runtime as host code, which the
    runtime runs only when allowed; built with ``--exclude-lean-runtime`` it carries
    none, and the loader must provide one instead.
    """
    return EngineLoadSettings(
        engine_host_code_allowed=version_compatible and not exclude_lean_runtime,
        dla_core=dla_core,
        load_lean_runtime=version_compatible and exclude_lean_runtime,
    )


def load_settings(sidecar: EngineSidecar) -> EngineLoadSettings:
    return engine_load_settings(version_compatible=sidecar.version_compatible,
                                exclude_lean_runtime=sidecar.exclude_lean_runtime, dla_core=sidecar.dla_core)


def prepare_engine_load(engine_path: "str | Path", trt_version: "TrtVersion | str", gpu: GpuInfo | None, *,
                        verify_hash: bool = True) -> tuple[EngineSidecar, bytes, EngineLoadSettings, list[str]]:
    """Everything a TensorRT runtime backend does before deserializing an engine.

    Reads the engine and its sidecar, checks them against the running TensorRT
    (``trt.__version__``) and GPU (:func:`fcn_edge.artifacts.gpu.probe_gpu`), raises
    :class:`ArtifactError` naming every difference, and returns (sidecar, engine bytes,
    load settings, warnings).  ``verify_hash=False`` skips the SHA-256 (size is still
    compared) for very large engines on slow storage.
    """
    engine_path = require_file(engine_path, "TensorRT engine", ArtifactError)
    sidecar = read_sidecar(engine_path)
    data = engine_path.read_bytes()
    env = RuntimeEnvironment(parse_trt_version(trt_version), gpu)
    report = check_sidecar(sidecar, env, engine_bytes=data if verify_hash else None,
                           engine_size=None if verify_hash else len(data))
    report.raise_for_errors(engine_path.name)
    return sidecar, data, load_settings(sidecar), report.warnings


def copy_engine_pair(source_engine: Path, destination: Path) -> Path:
    """Copy an engine and its sidecar to ``destination`` as a verified, atomic pair."""
    sidecar = read_sidecar(source_engine)
    data = Path(source_engine).read_bytes()
    if sha256_bytes(data) != sidecar.engine_sha256:
        raise ArtifactError(f"{source_engine} does not match its sidecar; it cannot be copied as a pair")
    if Path(destination).resolve() == Path(source_engine).resolve():
        return Path(destination)
    write_engine_and_sidecar(destination, data, sidecar.data)
    return Path(destination)


__all__ = [
    "EngineSidecar", "EngineLoadSettings", "RuntimeEnvironment", "CompatibilityReport", "check_sidecar", "copy_engine_pair",
    "engine_load_settings", "load_settings", "make_sidecar", "parse_sidecar", "prepare_engine_load", "read_sidecar", "sidecar_path_for",
    "write_engine_and_sidecar",
]
