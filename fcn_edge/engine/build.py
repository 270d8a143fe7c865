"""``fcn-edge build-engine``'s work, step by step (the command module only parses arguments).

1. Check the machine can build (TensorRT + GPU), else one line saying what to install.
2. Read the ONNX's facts and the calibration cache's header, resolve the build plan.
3. Prepare the ONNX variant the plan names (calibrated now, DLA-friendly, FP16) and,
   for DLA, run the pre-check on it.
4. ``--cache-dir``: reuse a matching engine.  Otherwise build with progress, verify,
   and write engine + sidecar as an atomic pair; update the timing cache.

``--dry-run`` stops after step 3 and prints the plan (for the TensorRT found here, or
for ``--trt-version``): the way to see, on any machine, what a Jetson will be asked to do.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fcn_edge.calib.trt_cache import read_cache
from fcn_edge.engine.cache import EngineCache, cache_key, cache_key_fields
from fcn_edge.engine.dla import dla_precheck, unpad_deconvolutions
from fcn_edge.engine.environment import BuildEnvironment, detect_build_environment, import_tensorrt
from fcn_edge.engine.fp16 import convert_to_fp16
from fcn_edge.artifacts.gpu import GpuInfo, GpuUnavailable, probe_gpu
from fcn_edge.engine.onnx_info import OnnxFacts, check_segmentation_graph, facts_from_model, load_onnx
from fcn_edge.engine.options import BuildOptions
from fcn_edge.engine.plan import (TRANSFORM_CALIBRATE, TRANSFORM_FP16, TRANSFORM_UNPAD_DECONV, BuildPlan, BuildRefused,
                                  resolve_build_plan)
from fcn_edge.artifacts.sidecar import copy_engine_pair, make_sidecar, sidecar_path_for, write_engine_and_sidecar
from fcn_edge.artifacts.trt_versions import TrtVersion, parse_trt_version
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.fileio import atomic_write_bytes, require_file, scratch_directory, sha256_file
from fcn_edge.lazy import require

log = logging.getLogger("fcn_edge.engine")

SLOW_BUILD_WARNING = ("building a TensorRT engine takes minutes (5-20 on a Jetson, longer for INT8 and DLA); "
                      "pass --timing-cache FILE so later builds reuse the kernel timings")


@dataclass(frozen=True)
class BuildRequest:
    onnx: Path
    options: BuildOptions
    output: Path | None = None
    cache_dir: Path | None = None
    dry_run: bool = False
    trt_version: str | None = None   # --trt-version: plan for this TensorRT (dry run)
    verify: Any = None               # fcn_edge.engine.verify.VerifyRequest (--verify DATA) or None


@dataclass(frozen=True)
class BuildOutcome:
    engine_path: Path | None
    plan: BuildPlan
    cache_hit: bool = False
    seconds: float = 0.0


def default_engine_path(onnx_path: Path, precision: str) -> Path:
    """``export/model.onnx`` -> ``export/model.fp16.engine`` (a ``.int8`` in the stem is not doubled)."""
    stem = re.sub(r"\.(fp32|fp16|int8)$", "", onnx_path.stem)
    return onnx_path.with_name(f"{stem}.{precision}.engine")


def read_calibration_cache_header(path: "str | Path") -> tuple[str, str, set[str]]:
    """(TensorRT version number, algorithm, tensor names) of a TensorRT calibration cache (parsed by calib's reader)."""
    cache = read_cache(path)
    return str(cache.version), cache.algorithm, set(cache.scales)


def _tensor_names(model: Any) -> set[str]:
    names = {vi.name for vi in model.graph.input} | {vi.name for vi in model.graph.output}
    for node in model.graph.node:
        names.update(node.output)
    return names


def _dry_run_target(request: BuildRequest) -> tuple[TrtVersion, GpuInfo | None]:
    gpu = None
    try:
        gpu = probe_gpu()
    except GpuUnavailable:
        pass
    if request.trt_version:
        return parse_trt_version(request.trt_version), gpu
    trt, problem = import_tensorrt()
    if trt is None:
        raise FcnEdgeError(f"--dry-run needs a TensorRT version to plan for: {problem}; pass --trt-version "
                           "(e.g. 8.5 for JetPack 5, 10.3 for JetPack 6.1/6.2, 11.4 for a current desktop)")
    return parse_trt_version(trt.__version__), gpu


def run_build(request: BuildRequest, *, emit: Callable[[str], None] = print,
              environment: Callable[[], BuildEnvironment] = detect_build_environment) -> BuildOutcome:
    """Do the whole build-engine job (see the module docstring)."""
    onnx_path = require_file(request.onnx, "ONNX model", ArtifactError)
    if request.output is not None and not request.dry_run:
        # before minutes of checks and building (and before saying TensorRT is missing): -o must be writable
        from fcn_edge.fileio import check_writable_destination

        check_writable_destination(request.output)
        check_writable_destination(sidecar_path_for(request.output))
    if request.trt_version and not request.dry_run:
        raise FcnEdgeError("--trt-version only plans (--dry-run); a real build uses the TensorRT installed here")
    # the ONNX first: a corrupt or foreign file is the error to report, wherever TensorRT is missing
    model = load_onnx(onnx_path, load_weights=False)
    facts = facts_from_model(model, onnx_path, sha256_file(onnx_path))
    check_segmentation_graph(facts)
    env: BuildEnvironment | None = None
    if request.dry_run:
        trt_version, gpu = _dry_run_target(request)
    else:
        env = environment()
        trt_version, gpu = env.trt_version, env.gpu
    options = request.options

    calib_algorithm = None
    calib_bytes = None
    if options.calib_cache:
        _, calib_algorithm, cached_names = read_calibration_cache_header(options.calib_cache)
        calib_bytes = Path(options.calib_cache).read_bytes()
        if not cached_names & _tensor_names(model):
            raise ArtifactError(f"calibration cache {options.calib_cache} names none of {onnx_path.name}'s tensors: "
                                "it was made for another model; recalibrate with fcn-edge calibrate")

    plan = resolve_build_plan(trt_version, options, facts, gpu, calib_algorithm)
    output = Path(request.output) if request.output else default_engine_path(onnx_path, plan.precision)
    for line in plan.describe():
        emit(line)
    for warning in plan.warnings:
        log.warning("warning: %s", warning)

    with scratch_directory("build") as scratch:
        variant_path, dla_warnings = _prepare_variant(plan, onnx_path, facts, scratch, emit,
                                                      dry_run=request.dry_run)
        for warning in dla_warnings:
            log.warning("warning: %s", warning)

        key = None
        cache = EngineCache(request.cache_dir) if request.cache_dir else None
        if gpu is not None:
            key = cache_key(cache_key_fields(
                onnx_sha256=facts.sha256, trt_version=trt_version, gpu=gpu, plan=plan,
                calib_cache_sha256=sha256_file(options.calib_cache) if options.calib_cache else None,
                calib_source=options.calib))

        if request.dry_run:
            emit(f"would write {output} and {sidecar_path_for(output).name}" + (f" (cache key {key[:16]})" if key else ""))
            return BuildOutcome(None, plan)

        assert env is not None and key is not None
        if cache is not None:
            hit = cache.lookup(key)
            if hit is not None:
                copy_engine_pair(hit.engine_path, output)
                emit(f"cache hit: reused {hit.engine_path} (built {hit.sidecar.data.get('created', '?')}) -> {output}")
                if request.verify is not None:
                    log.warning("warning: --verify is not rerun on a cached engine; its sidecar keeps the figures "
                                "measured when it was built (int8.engine_accuracy), if any")
                return BuildOutcome(output, plan, cache_hit=True)
            emit(f"cache miss (key {key[:16]}): building")

        if request.verify is not None and plan.precision != "int8":
            raise FcnEdgeError(f"--verify measures INT8 engines; this plan builds {plan.precision}")
        outcome = _build_and_write(plan, env, variant_path, output, facts, options, calib_bytes, key, emit,
                                   verify=request.verify)
        if cache is not None:
            cache.store(key, output)
        return outcome


def _prepare_variant(plan: BuildPlan, onnx_path: Path, facts: OnnxFacts, scratch: Path, emit: Callable[[str], None],
                     *, dry_run: bool) -> tuple[Path, list[str]]:
    """Apply the plan's ONNX transformations; run the DLA pre-check.  Returns (path to parse, warnings)."""
    path = onnx_path
    needs_model = bool(plan.transforms) or plan.dla_core is not None
    if not needs_model:
        return path, []
    onnx = require("onnx", purpose="to prepare the ONNX model for TensorRT")
    model = None
    if TRANSFORM_CALIBRATE in plan.transforms and not dry_run:
        path = _calibrate_now(onnx_path, plan, scratch)
    if (set(plan.transforms) - {TRANSFORM_CALIBRATE} or plan.dla_core is not None):
        model = load_onnx(path, load_weights=not dry_run)
    warnings: list[str] = []
    if TRANSFORM_UNPAD_DECONV in plan.transforms:
        model, rewritten = unpad_deconvolutions(model)
        emit(f"  DLA: rewrote {len(rewritten)} padded deconvolutions as unpadded deconvolution + crop")
    if plan.dla_core is not None:
        report = dla_precheck(model, static_shapes=all(p.pinned for p in plan.profile) if plan.profile else None)
        for line in report.lines():
            emit(line)
        warnings += report.enforce(plan.gpu_fallback, onnx_path.name)
    if TRANSFORM_FP16 in plan.transforms and not dry_run:
        model, fp16_report = convert_to_fp16(model)
        emit(f"  FP16 ONNX: {fp16_report.fp16_nodes} nodes in half, {fp16_report.float32_nodes} pre/post nodes kept FP32, "
             f"{fp16_report.casts_inserted} casts" + (f", {fp16_report.clipped_values} weights clipped to +-65504"
                                                       if fp16_report.clipped_values else ""))
    if dry_run or set(plan.transforms) <= {TRANSFORM_CALIBRATE}:
        return path, warnings
    variant = scratch / f"{onnx_path.stem}.variant.onnx"
    onnx.save(model, str(variant))
    return variant, warnings


def _calibrate_now(onnx_path: Path, plan: BuildPlan, scratch: Path) -> Path:
    """--calib SOURCE: make the Q/DQ ONNX with the calibrate stage (fcn_edge.calib.calibrate_onnx)."""
    try:
        from fcn_edge import calib  # type: ignore[attr-defined]

        calibrate_onnx = calib.calibrate_onnx
    except (ImportError, AttributeError) as exc:
        raise FcnEdgeError("on-the-fly calibration (--calib) needs the calibrate stage (fcn_edge.calib.calibrate_onnx), "
                           f"which this install lacks; run `fcn-edge calibrate {onnx_path.name} --images SOURCE "
                           f"--target {plan.calibrate_target}` and build the .int8.onnx it writes") from exc
    output = scratch / f"{onnx_path.stem}.int8.onnx"
    # The FP32-vs-INT8 accuracy report runs ONNX Runtime on the CPU: minutes on a Jetson's cores, so it is
    # left to `fcn-edge calibrate` on a desktop; the Q/DQ rules are still checked before the graph is used.
    report = calibrate_onnx(onnx_path, images=plan.calib_source, output=output, target=plan.calibrate_target,
                            accuracy=False)
    return Path(getattr(report, "output", None) or output)


def _build_and_write(plan: BuildPlan, env: BuildEnvironment, variant: Path, output: Path, facts: OnnxFacts,
                     options: BuildOptions, calib_bytes: bytes | None, key: str, emit: Callable[[str], None], *,
                     verify: Any = None) -> BuildOutcome:
    from fcn_edge.engine.build_progress import MonitorBars, PhaseTicker
    from fcn_edge.engine.trt_build import build_engine
    from fcn_edge.fileio import check_writable_destination

    check_writable_destination(output)
    timing_bytes = None
    if plan.timing_cache and Path(plan.timing_cache).exists():
        timing_bytes = Path(plan.timing_cache).read_bytes()
        emit(f"  timing cache: loaded {len(timing_bytes) >> 10} KiB from {plan.timing_cache}")
    log.warning("note: %s", SLOW_BUILD_WARNING)
    started = time.monotonic()
    if plan.progress == "monitor":
        bars = MonitorBars()
        built = build_engine(plan, variant, trt=env.trt, calib_cache=calib_bytes, timing_cache=timing_bytes,
                             on_phase=lambda name: log.info("%s", name), monitor_bars=bars)
    else:
        with PhaseTicker() as ticker:
            built = build_engine(plan, variant, trt=env.trt, calib_cache=calib_bytes, timing_cache=timing_bytes,
                                 on_phase=ticker.phase)
    seconds = time.monotonic() - started

    build_info = {
        "options": options.to_dict(), "plan": plan.cache_fields(), "onnx_variant": plan.onnx_variant,
        "strongly_typed": plan.strongly_typed, "network_flags": list(plan.network_flags),
        "builder_flags": list(plan.builder_flags), "profile": [p.to_dict() for p in plan.profile],
        "build_seconds": round(seconds, 1), "cache_key": key,
        "warnings": list(plan.warnings), "notes": list(plan.notes),
        "calib_cache_sha256": sha256_file(options.calib_cache) if options.calib_cache else None,
    }
    sidecar = make_sidecar(
        engine_bytes=built.engine_bytes, engine_name=output.name, trt_version=env.trt_version, gpu=env.gpu,
        precision=plan.precision, io=built.io, source_name=facts.path.name, source_sha256=facts.sha256,
        source_opset=facts.opset, build=build_info, version_compatible=plan.version_compatible,
        exclude_lean_runtime=plan.exclude_lean_runtime, hardware_compat=plan.hardware_compat,
        dla_core=plan.dla_core, gpu_fallback=plan.gpu_fallback, model=facts.model_info, export=facts.export_info)
    if plan.precision == "int8":
        sidecar["int8"] = int8_entry(facts, variant, built.engine_bytes, sidecar, verify, emit)
    write_engine_and_sidecar(output, built.engine_bytes, sidecar)
    if plan.timing_cache and built.timing_cache:
        atomic_write_bytes(plan.timing_cache, built.timing_cache)
    emit(f"wrote {output} ({len(built.engine_bytes) / 1e6:.1f} MB, {plan.precision}, TensorRT {env.trt_version}, "
         f"{env.gpu.name} sm {env.gpu.sm}) in {seconds:.0f} s, with {sidecar_path_for(output).name}")
    return BuildOutcome(output, plan, seconds=seconds)


def int8_entry(facts: OnnxFacts, variant: Path, engine_bytes: bytes, sidecar: dict[str, Any], verify: Any,
               emit: Callable[[str], None], *, opener: Callable[[Path], Any] | None = None) -> dict[str, Any]:
    """The sidecar's ``int8`` entry: the Q/DQ ONNX's calibration facts, and ``--verify``'s engine figures.

    With ``verify``, the engine (with its sidecar, in a scratch folder) and the FP32 ONNX
    run on the data first (:mod:`fcn_edge.engine.verify`); a missed budget raises before
    anything is written.  ``opener`` replaces the TensorRT runner (tests, without TensorRT).
    """
    from fcn_edge.engine.verify import check_budget, int8_sidecar_entry, measure_engine, reference_onnx

    export_info = facts.export_info
    if variant != facts.path and variant.exists():  # calibrated now: the variant carries the calibration facts
        export_info = facts_from_model(load_onnx(variant, load_weights=False), variant, "").export_info or export_info
    figures = None
    if verify is not None:
        reference = reference_onnx(facts.path, facts.export_info)
        from fcn_edge.export import read_onnx_metadata

        info, export = read_onnx_metadata(reference)
        with scratch_directory("verify") as tmp:
            engine = Path(tmp) / sidecar["engine"]["file"]
            write_engine_and_sidecar(engine, engine_bytes, sidecar)
            figures = measure_engine(engine, reference, verify, info=info, facts=export, opener=opener)
        drop = figures["mean_iu_drop"]
        emit(f"  verify: engine vs {reference.name} on {figures['images']} {figures['kind']} images: agreement "
             f"{100 * figures['agreement']:.2f}%" + (f", mean IU drop {drop:.2f} points" if drop is not None else ""))
        check_budget(figures, verify)
    return int8_sidecar_entry(export_info, figures)


__all__ = ["BuildRequest", "BuildOutcome", "run_build", "default_engine_path", "read_calibration_cache_header",
           "BuildRefused"]
