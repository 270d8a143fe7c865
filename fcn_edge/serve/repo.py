"""``fcn-edge triton-repo``: a standard Triton model repository for the official containers.

::

    REPO/
      README.md                      the container command, the models, what each needs
      fcn8s/config.pbtxt             derived from the model itself, parsed back with Triton's protobuf
      fcn8s/1/model.onnx             platform onnxruntime_onnx (optionally ORT's TensorRT accelerator)
      fcn8s_fp16/config.pbtxt
      fcn8s_fp16/1/model.plan        platform tensorrt_plan
      fcn8s_fp16/1/model.plan.json   the engine's sidecar (what TensorRT/GPU it needs)

Every ``config.pbtxt`` states the tensors exactly as the artifact has them (names,
dtypes, dims; ``max_batch_size`` and dynamic batching only when the model has a dynamic
batch axis, with its TensorRT profile's optimal and largest batch as preferred sizes),
instance groups, a version policy, and the model's description in ``parameters``
(``fcn_edge.model``, ``fcn_edge.export``) for ``triton://`` clients.

An engine runs only on the TensorRT release and GPU architecture that built it (unless
built version/hardware compatible): the copy is checked against its sidecar (hash), and
against the server's TensorRT and GPU when they are given (``--server-trt``,
``--server-gpu-sm``); the README states the requirement either way.

Each model folder is written beside its final place and renamed into it when complete
and checked; an existing folder is replaced only with ``--force`` and only by a
complete new one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.fileio import atomic_write_text
from fcn_edge.serve.model_config import (BatchPlan, ConfigSpec, ModelConfigError, check_config_text, model_parameters,
                                         plan_repo_batching, render_config, tensor_configs)

log = logging.getLogger(__name__)

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
INSTANCE_KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU", "auto": "KIND_AUTO"}
DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:<YY.MM>-py3"


@dataclass
class RepoConfig:
    """Options shared by every model written into one repository."""

    output: Path
    names: Sequence[str | None] = ()          # per model; None -> from the file name
    max_batch: int | None = None
    max_queue_delay_us: int = 2000
    instances: int = 1
    instance_kind: str | None = None          # gpu | cpu | auto; None: gpu for engines, auto for ONNX
    gpus: tuple[int, ...] = ()
    version: int = 1
    keep_versions: int = 1
    ort_tensorrt: str | None = None           # None | fp16 | fp32
    server_trt: str | None = None             # TensorRT version of the target Triton (engines)
    server_gpu_sm: str | None = None          # compute capability of the target GPU (engines)
    image: str | None = None                  # container image for the README
    force: bool = False

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.instances < 1:
            raise FcnEdgeError(f"--instances must be at least 1, got {self.instances}")
        if self.version < 1:
            raise FcnEdgeError(f"--version must be at least 1, got {self.version}")
        if self.keep_versions < 1:
            raise FcnEdgeError(f"--keep-versions must be at least 1, got {self.keep_versions}")
        if self.instance_kind is not None and self.instance_kind not in INSTANCE_KINDS:
            raise FcnEdgeError(f"--kind must be one of {', '.join(INSTANCE_KINDS)}, got {self.instance_kind!r}")
        if self.ort_tensorrt is not None and self.ort_tensorrt.lower() not in ("fp16", "fp32"):
            raise FcnEdgeError(f"--ort-tensorrt takes fp16 or fp32, got {self.ort_tensorrt!r}")


@dataclass
class RepoModel:
    """One model written into the repository, and what the README says about it."""

    name: str
    source: Path
    platform: str
    folder: Path
    config_text: str
    spec: ConfigSpec
    requirements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def model_name_for(path: Path) -> str:
    """``fcn8s.fp16.engine`` -> ``fcn8s_fp16`` (Triton names: letters, digits, '_', '-')."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_-")
    return name or "fcn_edge"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name or "") or name in (".", ".."):
        raise FcnEdgeError(f"model name {name!r} may use only letters, digits, '.', '_' and '-'")
    return name


# ------------------------------------------------------------------- ONNX
def describe_onnx(path: Path, config: RepoConfig, name: str) -> tuple[ConfigSpec, list[str], list[str]]:
    from fcn_edge.artifacts.onnx_metadata import read_onnx_header, read_onnx_metadata

    header = read_onnx_header(path)
    notes: list[str] = []
    info = facts = None
    try:
        info, facts = read_onnx_metadata(path)
    except ArtifactError as exc:
        notes.append(f"{path.name} carries no fcn-edge description ({exc}); clients will use generic class names")
    if len(header.inputs) != 1:
        raise ArtifactError(f"{path} has {len(header.inputs)} inputs; fcn-edge serves models with one image input")
    graph_outputs = [t.name for t in header.outputs]
    if facts is not None and (facts.input != header.inputs[0].name or list(facts.outputs) != graph_outputs):
        raise ArtifactError(f"{path}'s fcn-edge description names input '{facts.input}' and outputs {list(facts.outputs)} "
                            f"but the graph has input '{header.inputs[0].name}' and outputs {graph_outputs}: the "
                            "description does not belong to this graph; re-export it with fcn-edge export")
    first = header.inputs[0]
    if not first.shape or len(first.shape) != 4:
        raise ArtifactError(f"{path}: input {first.name!r} is not a 4-D image batch ({first.shape})")
    batch_dim = first.shape[0]
    batch_axis = None
    fixed = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
    if facts is not None and facts.dynamic and "batch" in facts.dynamic and len(set(facts.dynamic["batch"])) > 1:
        batch_axis = tuple(int(v) for v in facts.dynamic["batch"])
    elif fixed is None:
        top = config.max_batch or 8
        batch_axis = (1, top, top)
        notes.append(f"the batch axis is dynamic without a recorded range: max_batch_size {top} assumed")
    plan = plan_repo_batching(batch_axis, fixed, config.max_batch)
    tensors_in = [(t.name, _dtype(t.dtype, path), t.shape or []) for t in header.inputs]
    tensors_out = [(t.name, _dtype(t.dtype, path), t.shape or []) for t in header.outputs]
    batching = plan.max_batch_size > 0
    kind = INSTANCE_KINDS[config.instance_kind or ("gpu" if config.ort_tensorrt else "auto")]
    if config.ort_tensorrt and kind == "KIND_CPU":
        raise FcnEdgeError("--ort-tensorrt needs GPU instances; drop --kind cpu")
    spec = ConfigSpec(name=name, platform="onnxruntime_onnx", inputs=tensor_configs(tensors_in, batching),
                      outputs=tensor_configs(tensors_out, batching), batch=plan,
                      max_queue_delay_us=config.max_queue_delay_us, instances=config.instances, instance_kind=kind,
                      gpus=config.gpus, versions=config.keep_versions,
                      parameters=model_parameters(info, facts.to_dict() if facts else None),
                      ort_tensorrt=config.ort_tensorrt.upper() if config.ort_tensorrt else None)
    requirements = [f"any Triton release whose ONNX Runtime reads opset {header.opsets.get('', '?')} "
                    "(22.xx or newer)"]
    if config.ort_tensorrt:
        requirements.append(f"a GPU: ONNX Runtime's TensorRT accelerator builds {config.ort_tensorrt.upper()} engines "
                            "on the server at load time (the first load takes minutes)")
    return spec, requirements, notes + list(plan.notes)


def _dtype(dtype: str | None, where: Path) -> str:
    if dtype is None or dtype.startswith("type") or dtype in ("string", "bfloat16"):
        raise ArtifactError(f"{where}: a tensor has type {dtype}, which Triton's model config cannot state here")
    return dtype


# ----------------------------------------------------------------- engines
def describe_engine(path: Path, config: RepoConfig, name: str) -> tuple[ConfigSpec, list[str], list[str]]:
    from fcn_edge.artifacts.sidecar import read_sidecar
    from fcn_edge.artifacts.modelinfo import ModelInfo

    sidecar = read_sidecar(path)
    notes: list[str] = []
    if sidecar.dla_core is not None:
        raise ArtifactError(f"{path.name} runs on DLA core {sidecar.dla_core}; Triton's TensorRT backend runs GPU "
                            "engines: build one without --dla for the server")
    inputs = sidecar.inputs
    if len(inputs) != 1:
        raise ArtifactError(f"{path.name} has {len(inputs)} inputs; fcn-edge serves models with one image input")
    first = inputs[0]
    shape = [int(d) for d in first.get("shape", [])]
    profile = first.get("profile") or None
    batch_axis = None
    fixed = shape[0] if shape and shape[0] > 0 else None
    if profile and all(k in profile for k in ("min", "opt", "max")):
        lo, opt, hi = int(profile["min"][0]), int(profile["opt"][0]), int(profile["max"][0])
        if hi > lo or (shape and shape[0] < 0):
            batch_axis = (lo, opt, hi)
    plan = plan_repo_batching(batch_axis, fixed, config.max_batch)
    batching = plan.max_batch_size > 0
    kind = INSTANCE_KINDS[config.instance_kind or "gpu"]
    if kind == "KIND_CPU":
        raise FcnEdgeError("TensorRT engines run on GPU instances only; drop --kind cpu")

    def tensors(entries: list[dict[str, Any]]) -> list[tuple[str, str, list[int]]]:
        return [(e["name"], str(e["dtype"]), [int(d) for d in e.get("shape", [])]) for e in entries]

    info = None
    if sidecar.model:
        try:
            info = ModelInfo.from_dict(sidecar.model)
        except ArtifactError as exc:
            notes.append(f"the sidecar's model description is unreadable ({exc})")
    spec = ConfigSpec(name=name, platform="tensorrt_plan", inputs=tensor_configs(tensors(inputs), batching),
                      outputs=tensor_configs(tensors(sidecar.outputs), batching), batch=plan,
                      max_queue_delay_us=config.max_queue_delay_us, instances=config.instances, instance_kind=kind,
                      gpus=config.gpus, versions=config.keep_versions,
                      parameters=model_parameters(info, sidecar.data.get("export") or None))
    built = sidecar.trt_version
    gpu = sidecar.gpu
    trt_rule = (f"TensorRT {built} or a newer {built.major}.x (version-compatible engine)" if sidecar.version_compatible
                else f"exactly TensorRT {built}")
    gpu_rule = ("any GPU of compute capability 8.0 or newer (ampere+ engine)" if sidecar.hardware_compat == "ampere+"
                else f"a GPU of compute capability {gpu.sm} (built on {gpu.name})")
    requirements = [f"a Triton release whose TensorRT is {trt_rule} (see NVIDIA's Frameworks Support Matrix)",
                    gpu_rule]
    notes.extend(_check_engine_for_server(sidecar, path, config))
    return spec, requirements, notes + list(plan.notes)


def _check_engine_for_server(sidecar, path: Path, config: RepoConfig) -> list[str]:
    """The engine against the target server's TensorRT/GPU when given; raises on a mismatch."""
    from fcn_edge.artifacts.gpu import GpuInfo, parse_compute_capability
    from fcn_edge.artifacts.sidecar import RuntimeEnvironment, check_sidecar
    from fcn_edge.artifacts.trt_versions import parse_trt_version

    data = path.read_bytes()
    if config.server_trt is None:
        report = check_sidecar(sidecar, RuntimeEnvironment(sidecar.trt_version, sidecar.gpu), engine_bytes=data)
        report.raise_for_errors(path.name)  # the pair itself (size, hash)
        return ["the target server's TensorRT and GPU were not given (--server-trt, --server-gpu-sm): "
                "make sure they match the requirement below"]
    try:
        gpu = (GpuInfo(name=f"server GPU (sm {config.server_gpu_sm})",
                       compute_capability=parse_compute_capability(config.server_gpu_sm))
               if config.server_gpu_sm else None)
        env = RuntimeEnvironment(parse_trt_version(config.server_trt), gpu)
    except (ValueError, FcnEdgeError) as exc:
        raise FcnEdgeError(f"--server-trt/--server-gpu-sm: {exc}") from None
    report = check_sidecar(sidecar, env, engine_bytes=data)
    report.raise_for_errors(path.name)
    return list(report.warnings)


# ------------------------------------------------------------------ writing
def write_repository(models: Sequence[str | os.PathLike], config: RepoConfig) -> list[RepoModel]:
    """Write (or add to) a Triton model repository; returns what was written."""
    if not models:
        raise FcnEdgeError("give at least one model (.onnx or .engine)")
    names = list(config.names or [])
    if names and len(names) != len(models):
        raise FcnEdgeError(f"--name was given {len(names)} time(s) for {len(models)} model(s): give one per model or none")
    output = config.output
    if output.exists() and not output.is_dir():
        raise FcnEdgeError(f"{output} exists and is not a folder")
    if not output.parent.exists():
        raise FcnEdgeError(f"cannot create {output}: the folder {output.parent} does not exist")
    writable = output if output.exists() else output.parent
    if not os.access(writable, os.W_OK | os.X_OK):
        raise FcnEdgeError(f"cannot write the repository {output}: the folder {writable} is not writable")
    planned: list[tuple[Path, str]] = []
    for index, model in enumerate(models):
        path = Path(model)
        if not path.exists():
            raise ArtifactError(f"model {path} does not exist")
        if path.suffix.lower() not in ONNX_SUFFIXES + ENGINE_SUFFIXES:
            raise ArtifactError(f"{path}: triton-repo takes .onnx models and TensorRT engines (.engine/.plan); "
                                "export a checkpoint first with fcn-edge export")
        name = _check_name(names[index] if names and names[index] else model_name_for(path))
        planned.append((path, name))
    seen = [n for _, n in planned]
    duplicates = sorted({n for n in seen if seen.count(n) > 1})
    if duplicates:
        raise FcnEdgeError(f"two models would be named {', '.join(duplicates)}: pass --name for each")
    for _, name in planned:
        if (output / name).exists() and not config.force:
            raise FcnEdgeError(f"{output / name} already exists: pass --force to replace it")

    described = []
    for path, name in planned:
        engine = path.suffix.lower() in ENGINE_SUFFIXES
        spec, requirements, notes = (describe_engine if engine else describe_onnx)(path, config, name)
        described.append((path, name, engine, spec, requirements, notes))

    try:
        output.mkdir(exist_ok=True)
    except OSError as exc:
        raise FcnEdgeError(f"cannot create the repository folder {output}: {exc.strerror or exc}") from None
    written = []
    for path, name, engine, spec, requirements, notes in described:
        written.append(_write_model(path, name, engine, spec, requirements, notes, config))
    _write_readme(output, config)
    return written


def _write_model(path: Path, name: str, engine: bool, spec: ConfigSpec, requirements: list[str], notes: list[str],
                 config: RepoConfig) -> RepoModel:
    output = config.output
    staging = Path(tempfile.mkdtemp(prefix=f".fcn-edge-tmp-{name}-", dir=output))
    try:
        version_dir = staging / str(config.version)
        version_dir.mkdir()
        text = render_config(spec)
        problems = check_config_text(text, spec, f"{name}/config.pbtxt")
        if problems:
            raise ModelConfigError("; ".join(problems))
        atomic_write_text(staging / "config.pbtxt", text)
        if engine:
            from fcn_edge.artifacts.sidecar import copy_engine_pair

            copy_engine_pair(path, version_dir / "model.plan")
        else:
            target = version_dir / "model.onnx"
            shutil.copyfile(path, target)
            if target.stat().st_size != path.stat().st_size:
                raise ArtifactError(f"copying {path} into the repository was incomplete")
            _copy_external_data(path, version_dir)
        # read back what is on disk: the file Triton will parse
        problems = check_config_text((staging / "config.pbtxt").read_text(), spec, f"{name}/config.pbtxt")
        if problems:
            raise ModelConfigError("; ".join(problems))
        final = output / name
        if final.exists():
            old = output / f".fcn-edge-old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for note in notes:
        log.warning("%s: %s", name, note)
    model = RepoModel(name, path, spec.platform, output / name, text, spec, requirements, notes)
    _write_model_facts(model)
    return model


def _copy_external_data(path: Path, version_dir: Path) -> None:
    """Weights kept beside the ONNX (external data) travel with it; their locations were checked to stay inside."""
    from fcn_edge.artifacts.onnx_metadata import check_external_data, read_onnx_header

    header = read_onnx_header(path)
    check_external_data(path, header, require_present=True)
    for location in dict.fromkeys(location for _, location in header.external_data):
        target = version_dir / location
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path.parent / location, target)


def _write_model_facts(model: RepoModel) -> None:
    """A small per-model note the README is rebuilt from (Triton ignores unknown files in a model folder)."""
    import json

    facts = {"name": model.name, "source": model.source.name, "platform": model.platform,
             "max_batch_size": model.spec.batch.max_batch_size, "preferred_batch_size": list(model.spec.batch.preferred),
             "inputs": [t.to_dict() for t in model.spec.inputs], "outputs": [t.to_dict() for t in model.spec.outputs],
             "instances": model.spec.instances, "instance_kind": model.spec.instance_kind,
             "requirements": model.requirements, "notes": model.notes}
    atomic_write_text(model.folder / "fcn_edge_model.json", json.dumps(facts, indent=2) + "\n")


def _write_readme(output: Path, config: RepoConfig) -> None:
    import json

    models = []
    for folder in sorted(p for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")):
        facts_file = folder / "fcn_edge_model.json"
        if (folder / "config.pbtxt").exists() and facts_file.exists():
            try:
                models.append(json.loads(facts_file.read_text()))
            except (OSError, ValueError):
                continue
    image = config.image or DEFAULT_IMAGE
    gpu = any(m["instance_kind"] != "KIND_CPU" for m in models)
    lines = [
        "# Triton model repository (written by fcn-edge triton-repo)",
        "",
        "Serve it with NVIDIA's official container:",
        "",
        "```",
        f"docker run --rm {'--gpus all ' if gpu else ''}-p 8000:8000 -p 8001:8001 -p 8002:8002 \\",
        f"    -v \"$PWD/{output.name}\":/models {image} \\",
        "    tritonserver --model-repository=/models",
        "```",
        "",
        ("Replace `<YY.MM>` with a Triton release that meets the requirements below "
         "(NVIDIA's Frameworks Support Matrix lists each release's TensorRT and ONNX Runtime)."
         if "<YY.MM>" in image else f"Image: `{image}`."),
        "",
        "Check it: `curl -s localhost:8000/v2/health/ready -o /dev/null -w '%{http_code}\\n'` prints 200; "
        "metrics are on `localhost:8002/metrics`.",
        "",
        "Use a model from any machine with fcn-edge (class names and palette come from the config's `parameters`):",
        "",
        "```",
    ]
    for m in models:
        lines.append(f"fcn-edge run triton://SERVER:8000/{m['name']} --source 0 --sink display")
    lines += ["```", "", "## Models", ""]
    for m in models:
        ins = ", ".join(f"{t['name']} {t['data_type'][5:]} {t['dims']}" for t in m["inputs"])
        outs = ", ".join(f"{t['name']} {t['data_type'][5:]} {t['dims']}" for t in m["outputs"])
        batching = (f"dynamic batching up to {m['max_batch_size']}"
                    + (f" (preferred {m['preferred_batch_size']})" if m["preferred_batch_size"] else "")
                    if m["max_batch_size"] else "no batching (static batch in the dims)")
        lines += [f"### {m['name']}", "",
                  f"- from `{m['source']}`, platform `{m['platform']}`, {m['instances']} instance(s) "
                  f"{m['instance_kind']}, {batching}",
                  f"- in: {ins}", f"- out: {outs}"]
        lines += [f"- needs {r}" for r in m["requirements"]]
        lines += [f"- note: {n}" for n in m["notes"]]
        lines.append("")
    atomic_write_text(output / "README.md", "\n".join(lines).rstrip() + "\n")


__all__ = ["RepoConfig", "RepoModel", "write_repository", "describe_onnx", "describe_engine", "model_name_for",
           "INSTANCE_KINDS", "DEFAULT_IMAGE"]
