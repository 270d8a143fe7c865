"""From (TensorRT version, requested options, ONNX facts) to the exact build to run.

:func:`resolve_build_plan` is a pure function: no TensorRT, no GPU, no file I/O.  It
decides, per TensorRT version, which network-creation flags, builder flags and API
calls the thin TensorRT module (:mod:`fcn_edge.engine.trt_build`) makes, which ONNX
variant it parses (as exported, converted to FP16 for TensorRT 11, calibrated to Q/DQ
now, deconvolutions unpadded for DLA), and what is refused and why, in one sentence.

The version facts it relies on are in :mod:`fcn_edge.artifacts.trt_versions`.  Summary:

* 8.5 / 8.6 (JetPack 5 / 6.0): EXPLICIT_BATCH network; FP16/INT8 builder flags; the
  implicit INT8 calibrator reads a calibration cache; no progress monitor.
* 10.x (JetPack 6.1/6.2 has 10.3): no network flags (weakly typed); FP16/INT8 flags;
  calibrators deprecated from 10.1 but working; IProgressMonitor; DLA up to 10.7.
* 11.x: strongly typed always: no precision flags, no calibrators.  FP16 comes from an
  FP16 ONNX (fcn-edge converts the FP32 export), INT8 from a Q/DQ ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.engine.onnx_info import OnnxFacts, TensorFacts
from fcn_edge.engine.options import BuildOptions
from fcn_edge.artifacts.sidecar import engine_load_settings
from fcn_edge.artifacts.trt_versions import TrtFeatures, TrtVersion, calibrate_target_for, features_for, parse_trt_version
from fcn_edge.errors import FcnEdgeError


class BuildRefused(FcnEdgeError):
    """The requested build cannot be done with this TensorRT/ONNX; the message says why and what to do."""


# Calibration-cache header algorithm -> TensorRT calibrator class that reads it.
CALIBRATORS = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
}

# ONNX transformations build-engine may apply before parsing (in this order).
TRANSFORM_CALIBRATE = "calibrate-qdq"     # fcn-edge calibrate, now (--calib SOURCE)
TRANSFORM_UNPAD_DECONV = "unpad-deconv"   # DLA: padded ConvTranspose -> unpadded + crop
TRANSFORM_FP16 = "fp16"                   # TensorRT 11: weights and compute in half


@dataclass(frozen=True)
class ProfileShape:
    """min/opt/max of one dynamic input (one optimisation profile entry)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def pinned(self) -> bool:
        return self.min == self.opt == self.max

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class BuildPlan:
    """Everything the TensorRT module does, decided before TensorRT is touched."""

    trt_version: TrtVersion
    requested_precision: str
    precision: str                          # fp32 | fp16 | int8 (best resolved)
    int8_source: str | None                 # qdq-onnx | calibrate-now | calibration-cache
    transforms: tuple[str, ...]             # ONNX transformations, in order
    network_flags: tuple[str, ...]          # NetworkDefinitionCreationFlag names
    strongly_typed: bool
    builder_flags: tuple[str, ...]          # BuilderFlag names, in the order they are set
    workspace_bytes: int
    dla_core: int | None
    gpu_fallback: bool
    hardware_compat: str                    # none | ampere+
    version_compatible: bool
    exclude_lean_runtime: bool
    profile: tuple[ProfileShape, ...]       # empty for a static network
    calibrator: str | None                  # TensorRT calibrator class (implicit INT8)
    calib_cache: str | None
    calibrate_target: str | None            # fcn-edge calibrate --target for calibrate-now
    calib_source: str | None
    timing_cache: str | None
    progress: str                           # "monitor" (IProgressMonitor) | "phases"
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def onnx_variant(self) -> str:
        """Human name of the ONNX the builder parses."""
        if not self.transforms:
            return "as exported"
        names = {TRANSFORM_CALIBRATE: "Q/DQ INT8 calibrated now", TRANSFORM_UNPAD_DECONV: "DLA-friendly deconvolutions",
                 TRANSFORM_FP16: "converted to FP16"}
        return ", ".join(names[t] for t in self.transforms)

    @property
    def uses_calibrator(self) -> bool:
        return self.calibrator is not None

    def api_calls(self) -> list[str]:
        """The TensorRT calls :func:`fcn_edge.engine.trt_build.build_engine` makes, in order.

        Tests run the TensorRT module against a recording test double of ``tensorrt``
        and compare what it called with this list, for each TensorRT version.
        """
        calls = ["Builder(logger)",
                 f"create_network({' | '.join(self.network_flags) if self.network_flags else '0'})",
                 "OnnxParser(network, logger)", "parse_from_file(onnx)", "create_builder_config()",
                 f"set_memory_pool_limit(WORKSPACE, {self.workspace_bytes})"]
        calls += [f"set_flag({flag})" for flag in self.builder_flags]
        if self.dla_core is not None:
            calls += ["default_device_type = DLA", f"DLA_core = {self.dla_core}"]
        if self.hardware_compat == "ampere+":
            calls.append("hardware_compatibility_level = AMPERE_PLUS")
        if self.profile:
            calls.append("create_optimization_profile()")
            calls += [f"set_shape({p.name}, {list(p.min)}, {list(p.opt)}, {list(p.max)})" for p in self.profile]
            calls.append("add_optimization_profile(profile)")
        if self.calibrator:
            calls.append(f"int8_calibrator = {self.calibrator}(cache)")
            if self.profile:
                calls.append("set_calibration_profile(profile)")
        if self.timing_cache:
            calls += ["create_timing_cache(cache)", "set_timing_cache(cache, ignore_mismatch=False)"]
        if self.progress == "monitor":
            calls.append("progress_monitor = IProgressMonitor")
        calls.append("build_serialized_network(network, config)")
        if self.timing_cache:
            calls.append("get_timing_cache().serialize()")
        calls.append("Runtime(logger)")
        load = engine_load_settings(version_compatible=self.version_compatible,
                                    exclude_lean_runtime=self.exclude_lean_runtime, dla_core=self.dla_core)
        if load.engine_host_code_allowed:
            calls.append("engine_host_code_allowed = True")
        if load.dla_core is not None:
            calls.append(f"runtime.DLA_core = {load.dla_core}")
        calls.append("deserialize_cuda_engine(plan)")
        return calls

    def cache_fields(self) -> dict[str, Any]:
        """What, besides the ONNX, TensorRT and GPU, makes two engines differ (cache key)."""
        return {
            "precision": self.precision, "int8_source": self.int8_source, "transforms": list(self.transforms),
            "network_flags": list(self.network_flags), "builder_flags": list(self.builder_flags),
            "workspace_bytes": self.workspace_bytes, "dla_core": self.dla_core, "gpu_fallback": self.gpu_fallback,
            "hardware_compat": self.hardware_compat, "version_compatible": self.version_compatible,
            "exclude_lean_runtime": self.exclude_lean_runtime, "profile": [p.to_dict() for p in self.profile],
            "calibrator": self.calibrator, "calibrate_target": self.calibrate_target,
        }

    def describe(self) -> list[str]:
        """Lines for the terminal (``--dry-run`` and the start of a build)."""
        lines = [
            f"TensorRT {self.trt_version}: precision {self.precision}"
            + (f" (from --precision {self.requested_precision})" if self.requested_precision != self.precision else ""),
            f"  ONNX parsed: {self.onnx_variant}",
            f"  network: {'strongly typed' if self.strongly_typed else 'weakly typed'}; creation flags: "
            + (", ".join(self.network_flags) or "none"),
            "  builder flags: " + (", ".join(self.builder_flags) or "none"),
            f"  workspace: {self.workspace_bytes >> 20} MiB",
        ]
        if self.int8_source:
            lines.append(f"  INT8 scales from: {self.int8_source}"
                         + (f" ({self.calibrator} reading {self.calib_cache})" if self.calibrator else ""))
        if self.dla_core is not None:
            lines.append(f"  DLA core {self.dla_core}, GPU fallback {'on' if self.gpu_fallback else 'off'}")
        if self.hardware_compat != "none" or self.version_compatible:
            lines.append(f"  compatibility: hardware {self.hardware_compat}, version-compatible {self.version_compatible}"
                         + (" (lean runtime excluded)" if self.exclude_lean_runtime else ""))
        for p in self.profile:
            lines.append(f"  profile {p.name}: min {_fmt(p.min)} opt {_fmt(p.opt)} max {_fmt(p.max)}")
        if self.timing_cache:
            lines.append(f"  timing cache: {self.timing_cache}")
        lines.append("  progress: " + ("TensorRT's progress monitor" if self.progress == "monitor"
                                       else "phases and elapsed time (TensorRT < 10 reports no progress)"))
        lines += [f"  note: {n}" for n in self.notes]
        return lines


def _fmt(dims: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in dims)


def resolve_build_plan(trt_version: "TrtVersion | str | tuple", options: BuildOptions, facts: OnnxFacts,
                       gpu: GpuInfo | None = None, calib_cache_algorithm: str | None = None) -> BuildPlan:
    """Decide the build (or raise :class:`BuildRefused` with a one-sentence reason).

    ``gpu`` (when known) lets hardware-compatibility requests be checked against the
    build GPU; ``calib_cache_algorithm`` is the algorithm named in the calibration
    cache's header (``EntropyCalibration2`` when not given).
    """
    version = parse_trt_version(trt_version)
    feats = features_for(version)
    onnx_name = facts.path.name
    warnings: list[str] = []
    notes: list[str] = []

    # ---- ONNX opset -----------------------------------------------------------------
    if facts.opset > feats.max_onnx_opset:
        text = (f"{onnx_name} uses ONNX opset {facts.opset} but TensorRT {version.short} parses opset <= {feats.max_onnx_opset}")
        if feats.opset_limit_is_hard:
            raise BuildRefused(f"{text}: re-export with `fcn-edge export --opset {feats.max_onnx_opset}`")
        warnings.append(f"{text} as far as fcn-edge knows; if parsing fails, re-export with --opset {feats.max_onnx_opset}")

    # ---- precision ------------------------------------------------------------------
    dla = options.dla_core is not None
    int8_source = _int8_source(options, facts)
    requested = options.precision
    if requested == "best":
        precision = "int8" if int8_source else "fp16"
        notes.append(f"--precision best: {precision} ("
                     + ("INT8 scales are available" if int8_source else
                        "no INT8 scales given: pass a Q/DQ ONNX, --calib or --calib-cache for INT8") + ")")
    else:
        precision = requested
    _check_precision_against_onnx(precision, int8_source, options, facts, onnx_name)

    # ---- per-version precision mechanics ----------------------------------------------
    transforms: list[str] = []
    builder_flags: list[str] = []
    calibrator = None
    calibrate_target = None
    if int8_source == "calibrate-now" and precision == "int8":
        transforms.append(TRANSFORM_CALIBRATE)
        calibrate_target = calibrate_target_for(version)

    if precision == "int8":
        if int8_source == "calibration-cache":
            if not feats.calibrators:
                raise BuildRefused(f"TensorRT {version} has no INT8 calibrators (removed in 11.0), so --calib-cache cannot be used: "
                                   f"make a Q/DQ ONNX with `fcn-edge calibrate {onnx_name} --target trt11` (or pass --calib SOURCE)")
            algorithm = calib_cache_algorithm or "EntropyCalibration2"
            if algorithm not in CALIBRATORS:
                raise BuildRefused(f"calibration cache {options.calib_cache} was written by the {algorithm} algorithm, which fcn-edge "
                                   f"cannot replay; use a cache from EntropyCalibration2 (fcn-edge calibrate writes one)")
            calibrator = CALIBRATORS[algorithm]
            if feats.calibrators_deprecated:
                warnings.append(f"TensorRT {version.short} deprecates the implicit INT8 calibrator (it still works); "
                                "a Q/DQ ONNX from `fcn-edge calibrate` is the road that TensorRT 11 keeps")
        if feats.precision_flags:
            builder_flags.append("INT8")
            # best: float layers may run in FP16 (trtexec --best).  DLA INT8: layers DLA
            # cannot run in INT8 fall back to FP16 on the DLA instead of failing.
            if requested == "best" or dla:
                builder_flags.append("FP16")
        else:
            notes.append("TensorRT 11 is strongly typed: Q/DQ layers run in INT8, the rest in the ONNX's float type (FP32)")
    elif precision == "fp16":
        if feats.precision_flags:
            builder_flags.append("FP16")
        elif facts.is_fp16:
            notes.append(f"{onnx_name} is already FP16; TensorRT {version.short} builds it strongly typed as it is")
        else:
            transforms.append(TRANSFORM_FP16)
            notes.append(f"TensorRT {version.short} has no FP16 builder flag: fcn-edge converts {onnx_name} to FP16 "
                         "(weights and compute in half, pre/post-processing and I/O as exported) and builds it strongly typed")

    # ---- DLA ----------------------------------------------------------------------------
    if dla:
        _check_dla(version, feats, precision, int8_source, options, onnx_name)
        if facts.padded_deconvs:
            transforms.insert(0 if TRANSFORM_CALIBRATE not in transforms else 1, TRANSFORM_UNPAD_DECONV)
            notes.append("DLA takes deconvolutions only with padding 0; fcn-edge rewrites the padded ones ("
                         + ", ".join(facts.padded_deconvs) + ") as unpadded deconvolution + crop, which computes the same output")
        if options.gpu_fallback:
            builder_flags.append("GPU_FALLBACK")

    # ---- compatibility ------------------------------------------------------------------
    if options.version_compatible:
        if not feats.version_compatible:
            raise BuildRefused(f"version-compatible engines need TensorRT 8.6 or newer (this is {version}); drop --version-compatible "
                               "or build with 8.6+")
        builder_flags.append("VERSION_COMPATIBLE")
        if options.exclude_lean_runtime:
            builder_flags.append("EXCLUDE_LEAN_RUNTIME")
            notes.append("the lean runtime is excluded: the loading machine must provide it (IRuntime.load_runtime)")
        notes.append("version-compatible engines can run on newer TensorRT (same major, or 8 -> 10, 10 -> 11) but may be slower")
    if options.hardware_compat == "ampere+":
        if not feats.hardware_compat:
            raise BuildRefused(f"hardware-compatible (ampere+) engines need TensorRT 8.6 or newer (this is {version}); "
                               "drop --hardware-compat")
        if dla:
            raise BuildRefused("--hardware-compat ampere+ is for GPU engines; it cannot be combined with --dla")
        if gpu is not None and gpu.compute_capability < (8, 0):
            raise BuildRefused(f"ampere+ engines must be built on an Ampere or newer GPU (sm 8.0+), but {gpu.name} is sm {gpu.sm}; "
                               "build on an Ampere+ GPU or drop --hardware-compat")
        if gpu is not None and gpu.integrated:
            warnings.append(f"hardware compatibility targets discrete Ampere+ GPUs; {gpu.name} is a Jetson-class GPU, "
                            "where engines are normally built on the device itself")
        notes.append("ampere+ engines run on any GPU with sm >= 8.0 but may be slower than a GPU-specific engine")

    # ---- shapes -------------------------------------------------------------------------
    profile = resolve_profile(options, facts)
    if dla and any(not p.pinned for p in profile):
        raise BuildRefused(f"DLA needs static shapes but {onnx_name} gets a dynamic profile "
                           f"({'; '.join(f'{p.name} {_fmt(p.min)}..{_fmt(p.max)}' for p in profile if not p.pinned)}): "
                           "give equal --min-shape/--opt-shape/--max-shape or export with a fixed size and batch")

    return BuildPlan(
        trt_version=version, requested_precision=requested, precision=precision,
        int8_source=int8_source if precision == "int8" else None, transforms=tuple(transforms),
        network_flags=("EXPLICIT_BATCH",) if feats.explicit_batch_flag == "required" else (),
        strongly_typed=feats.strongly_typed_only, builder_flags=tuple(builder_flags),
        workspace_bytes=options.workspace_bytes, dla_core=options.dla_core, gpu_fallback=options.gpu_fallback,
        hardware_compat=options.hardware_compat, version_compatible=options.version_compatible,
        exclude_lean_runtime=options.exclude_lean_runtime, profile=profile, calibrator=calibrator,
        calib_cache=options.calib_cache if calibrator else None, calibrate_target=calibrate_target,
        calib_source=options.calib if TRANSFORM_CALIBRATE in transforms else None,
        timing_cache=options.timing_cache, progress="monitor" if feats.progress_monitor else "phases",
        warnings=tuple(warnings), notes=tuple(notes),
    )


def _int8_source(options: BuildOptions, facts: OnnxFacts) -> str | None:
    if facts.has_qdq:
        return "qdq-onnx"
    if options.calib:
        return "calibrate-now"
    if options.calib_cache:
        return "calibration-cache"
    return None


def _check_precision_against_onnx(precision: str, int8_source: str | None, options: BuildOptions,
                                  facts: OnnxFacts, onnx_name: str) -> None:
    if facts.has_qdq and precision != "int8":
        raise BuildRefused(f"{onnx_name} has Q/DQ nodes (an INT8 model); build it with --precision int8 (or best), "
                           f"or give the FP32 ONNX for {precision}")
    if facts.has_qdq and options.calib_cache:
        raise BuildRefused(f"{onnx_name} is already quantized (Q/DQ); --calib-cache is for the FP32 ONNX: drop one of them")
    if facts.has_qdq and options.calib:
        raise BuildRefused(f"{onnx_name} is already quantized (Q/DQ); drop --calib or give the FP32 ONNX")
    if precision == "int8" and not int8_source:
        raise BuildRefused(f"--precision int8 needs INT8 scales: give a Q/DQ ONNX (`fcn-edge calibrate {onnx_name} --images DIR`), "
                           "--calib SOURCE to calibrate now, or --calib-cache FILE (TensorRT <= 10)")
    if precision == "fp32" and facts.is_fp16:
        raise BuildRefused(f"{onnx_name} is an FP16 ONNX; an fp32 engine needs the FP32 export")
    if precision in ("fp32", "fp16") and (options.calib or options.calib_cache):
        raise BuildRefused(f"--calib/--calib-cache only make sense for --precision int8 or best, not {precision}")


def _check_dla(version: TrtVersion, feats: TrtFeatures, precision: str, int8_source: str | None,
               options: BuildOptions, onnx_name: str) -> None:
    if not feats.dla:
        raise BuildRefused(f"TensorRT {version} cannot build for DLA (DLA is absent from TensorRT 10.8 to 11.4.0): "
                           "build on JetPack 6 with TensorRT 10.3 (<= 10.7), on JetPack 5 (8.5), or drop --dla")
    if precision == "fp32":
        raise BuildRefused("DLA runs FP16 or INT8 only: use --precision fp16 or int8 with --dla")
    if precision == "int8":
        if feats.calibrators and int8_source != "calibration-cache":
            raise BuildRefused(f"DLA INT8 on TensorRT {version.short} needs TensorRT's implicit entropy calibrator: give the FP32 "
                               f"ONNX with --calib-cache FILE (written by `fcn-edge calibrate`), not a Q/DQ model")
    if options.version_compatible:
        raise BuildRefused("TensorRT does not build version-compatible DLA engines: drop --version-compatible or --dla")


def resolve_profile(options: BuildOptions, facts: OnnxFacts) -> tuple[ProfileShape, ...]:
    """Optimisation-profile shapes: from --min/--opt/--max-shape, else the ONNX's recorded ranges.

    A static network gets no profile.  Shapes given for a static network must equal it.
    """
    onnx_name = facts.path.name
    if options.shapes_given:
        target = _input_for_shapes(options, facts)
        shapes = (options.min_shape.dims, options.opt_shape.dims, options.max_shape.dims)  # type: ignore[union-attr]
        for label, dims in zip(("min", "opt", "max"), shapes):
            if len(dims) != len(target.shape):
                raise BuildRefused(f"--{label}-shape {_fmt(dims)} has {len(dims)} dimensions but input '{target.name}' of "
                                   f"{onnx_name} has {len(target.shape)} ({_fmt_dims(target.shape)})")
            for axis, (given, fixed) in enumerate(zip(dims, target.shape)):
                if isinstance(fixed, int) and given != fixed:
                    raise BuildRefused(f"--{label}-shape {_fmt(dims)}: axis {axis} of '{target.name}' is fixed at {fixed} "
                                       f"in {onnx_name} ({_fmt_dims(target.shape)})")
        for axis in range(len(target.shape)):
            if not shapes[0][axis] <= shapes[1][axis] <= shapes[2][axis]:
                raise BuildRefused(f"shapes must satisfy min <= opt <= max on every axis; axis {axis} has "
                                   f"{shapes[0][axis]}, {shapes[1][axis]}, {shapes[2][axis]}")
        if not target.is_dynamic:
            return ()  # static input, shapes equal to it: nothing to configure
        others = [t for t in facts.inputs if t.is_dynamic and t.name != target.name]
        if others:
            raise BuildRefused(f"{onnx_name} has more than one dynamic input ({', '.join(t.name for t in [target, *others])}); "
                               "fcn-edge builds single-input models")
        return (ProfileShape(target.name, *shapes),)

    profile = []
    for tensor in facts.inputs:
        if not tensor.is_dynamic:
            continue
        recorded = facts.recorded_dynamic
        if not recorded:
            raise BuildRefused(f"input '{tensor.name}' of {onnx_name} is dynamic ({_fmt_dims(tensor.shape)}) and the ONNX records "
                               "no shape ranges: give --min-shape, --opt-shape and --max-shape")
        profile.append(_profile_from_recorded(tensor, recorded, onnx_name))
    return tuple(profile)


def _input_for_shapes(options: BuildOptions, facts: OnnxFacts) -> TensorFacts:
    names = {s.name for s in (options.min_shape, options.opt_shape, options.max_shape) if s and s.name}
    if len(names) > 1:
        raise BuildRefused(f"--min/--opt/--max-shape name different inputs ({', '.join(sorted(names))}); name one input")
    if names:
        name = names.pop()
        tensor = facts.input_named(name)
        if tensor is None:
            raise BuildRefused(f"{facts.path.name} has no input named '{name}' (inputs: {', '.join(t.name for t in facts.inputs)})")
        return tensor
    dynamic = [t for t in facts.inputs if t.is_dynamic] or list(facts.inputs)
    if len(dynamic) != 1:
        raise BuildRefused(f"{facts.path.name} has several inputs; name the one the shapes are for, e.g. --min-shape "
                           f"{dynamic[0].name}:1x512x512x3")
    return dynamic[0]


def _layout_axes(tensor: TensorFacts) -> dict[str, int]:
    """Which axis is batch/height/width: NHWC for ``frames`` (channels last == 3), else NCHW."""
    if len(tensor.shape) != 4:
        raise BuildRefused(f"input '{tensor.name}' has rank {len(tensor.shape)}; fcn-edge models take 4-D images")
    if tensor.shape[-1] == 3 or tensor.name == "frames":
        return {"batch": 0, "height": 1, "width": 2}
    return {"batch": 0, "height": 2, "width": 3}


def _profile_from_recorded(tensor: TensorFacts, recorded: dict[str, Any], onnx_name: str) -> ProfileShape:
    axes = _layout_axes(tensor)
    lows, opts, highs = [], [], []
    by_axis = {axis: key for key, axis in axes.items()}
    for axis, dim in enumerate(tensor.shape):
        if isinstance(dim, int) and dim > 0:
            triple = [dim, dim, dim]
        else:
            key = by_axis.get(axis)
            triple = recorded.get(key) if key else None
            if not (isinstance(triple, (list, tuple)) and len(triple) == 3
                    and all(isinstance(v, int) and v > 0 for v in triple)):
                raise BuildRefused(f"axis {axis} of input '{tensor.name}' in {onnx_name} is dynamic but its recorded range "
                                   f"({key or 'unnamed'}: {triple!r}) is missing or malformed: give --min/--opt/--max-shape")
        lows.append(triple[0])
        opts.append(triple[1])
        highs.append(triple[2])
    if not all(a <= b <= c for a, b, c in zip(lows, opts, highs)):
        raise BuildRefused(f"the recorded shape ranges of '{tensor.name}' in {onnx_name} are not min <= opt <= max: "
                           "give --min/--opt/--max-shape")
    return ProfileShape(tensor.name, tuple(lows), tuple(opts), tuple(highs))


def _fmt_dims(shape: tuple[Any, ...]) -> str:
    return "x".join(str(d) for d in shape)
