"""``export_onnx``: checkpoint -> verified, self-describing ONNX with pre/post-processing inside.

Pipeline (each step is a function below):

1. load the checkpoint, settle size/geometry/channel order (:func:`resolve_export`);
2. wrap the FCN in :class:`~fcn_edge.export.graph.DeployableFCN` and run torch.onnx;
3. graph passes: node names after their modules, opset 18 -> requested opset, INT32
   index constants, I/O shapes declared exactly, optional FP16 weight storage
   (:mod:`.passes`);
4. ``onnx.checker`` (full check), then ONNX Runtime vs PyTorch (:mod:`.verify`), both on
   the very ModelProto that is then written (ORT loads a temporary copy of it);
5. metadata (:mod:`.metadata`) and the TensorRT lint (:mod:`.lint`);
6. write to a temporary file beside OUT, re-read its metadata, rename over OUT.
   A failure anywhere leaves an existing OUT untouched (:func:`fcn_edge.fileio.atomic_path`).

Exporter choice: torch.onnx's dynamo path (``dynamo=True``), measured on torch 2.13.0,
onnxscript 0.7.2, CPU, 2 shared cores (noisy).  FCN-8s + in-graph pre/post-processing,
outputs labels+confidence+logits, opset 17 requested:

=====================================  ==============================  ==============================
                                       TorchScript (dynamo=False)       dynamo (dynamo=True)
=====================================  ==============================  ==============================
tiny, aligned 64x96 (multiple of 32)   75 nodes: +13 Identity (deduped  57 nodes, no Identity/Constant
                                       equal initialisers), 5 Constant
tiny, aligned 100x130 (not multiple)   125 nodes: Shape, Mod, Concat,   59 nodes: pad folded into
                                       ConstantOfShape, Reshape, Pad,   conv1_1's pads, 2 constant
                                       Unsqueeze -- int64 shape math    Slices, no shape math
                                       at run time, outputs get
                                       symbolic dims
tiny, paper 100x130                    105 nodes (29 Constant)          63 nodes
dynamic H/W, aligned                   trace bakes in the pad branch    exact (with AlignedAnySize)
                                       of the example: wrong sizes
                                       silently
Dropout                                none (eval)                      none (eval)
full size, 512x512, labels only        63 nodes (11 Identity, 2         50 nodes
(benchmarks/export_fullsize.py)        Constant)
full size export + save, two runs      10.6 s / 12.0 s,                 8.2 s / 5.9 s,
                                       peak RSS 2.7 / 2.9 GB            peak RSS 2.5 / 3.0 GB
tiny export time                       0.2 s                            3-5 s (torch.export tracing)
=====================================  ==============================  ==============================

(TorchScript's Identity nodes come from de-duplicating equal initialisers -- the zero
biases of a freshly initialised model -- and vanish with trained weights; the shape
arithmetic and the baked-in branch do not.)  Memory is the same within noise; the
whole ``fcn-edge export`` of full-size FCN-8s peaks at about 3.0 GB RSS (5.5x the
weights), most of it during the ONNX Runtime check.

So: dynamo, for the cleaner graph and because static shapes are fully specialised
(no run-time shape arithmetic) and dynamic ones are traced symbolically.  Two
wrinkles are handled here: its down-conversion to opset 17 fails on Pad (no ONNX
adapter) and then silently keeps opset 18, so we export at 18 and rewrite
(:func:`~fcn_edge.export.passes.downgrade_opset`); and it stores Gather/Slice constants
as INT64, which we narrow to INT32 for TensorRT 8.x.  onnxsim/onnxslim are not used:
the dynamo graph already has no foldable constants or redundant nodes for them to
remove (and neither is installed here).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import io
import logging
import os
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_edge import __version__
from fcn_edge.checkpoint import Checkpoint, load_checkpoint
from fcn_edge.errors import FcnEdgeError
from fcn_edge.export.config import DEFAULT_SIZE, ExportConfig, ExportConfigError, ResolvedShapes, resolve_shapes
from fcn_edge.export.lint import LintReport, lint_onnx
from fcn_edge.artifacts.onnx_metadata import ExportFacts, read_onnx_metadata, utc_now
from fcn_edge.export.metadata import apply_metadata
from fcn_edge.artifacts.protowire import ELEM_TYPES
from fcn_edge.export.trt_ops import DEFAULT_TARGETS
from fcn_edge.export.verify import VerificationError, VerificationReport, verify_graph
from fcn_edge.fileio import atomic_path, check_writable_destination, sha256_file
from fcn_edge.lazy import require
from fcn_edge.artifacts.modelinfo import CONFIDENCE_UINT8_MAX, ModelInfo, label_dtype

log = logging.getLogger("fcn_edge.export")

EXPORT_DIR = Path("export")
_ONNX_DTYPE = {name: number for number, name in ELEM_TYPES.items()}  # "uint8" -> TensorProto.UINT8 ...


class ExportError(FcnEdgeError):
    """torch.onnx could not export the model, or a graph pass failed."""


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and the figures it measured."""

    path: Path
    info: ModelInfo
    facts: ExportFacts
    verification: VerificationReport | None
    lint: list[LintReport]
    op_counts: dict[str, int]
    file_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    fp16_weights_saved_bytes: int = 0

    @property
    def node_count(self) -> int:
        return sum(self.op_counts.values())

    def lines(self) -> list[str]:
        f = self.facts
        shape = ",".join(str(d) for d in f.input_shape())
        out = [f"wrote {self.path} ({self.file_bytes / 1e6:.1f} MB, {self.node_count} nodes, opset {f.opset}, "
               f"{f.geometry} geometry, weights {f.weights_dtype}) in {self.seconds.get('total', 0):.1f} s"]
        out.append(f"  input   {f.input} {f.input_dtype} [{shape}]"
                   + (f" ({f.input_channel_order} frames, pre-processing in the graph)" if f.io == "frames"
                      else " (normalised by the caller)"))
        for name in f.outputs:
            dtype = f.output_dtypes.get(name, "?")
            extra = f" (probability = value x {f.confidence_scale:.6g})" if name == "confidence" and \
                f.confidence_scale not in (None, 1.0) else ""
            out.append(f"  output  {name} {dtype}{extra}")
        if f.dynamic:
            out.append("  dynamic " + ", ".join(f"{axis} {r[0]}/{r[1]}/{r[2]}" for axis, r in f.dynamic.items()
                                                if len(set(r)) > 1) + " (min/opt/max, for the engine profile)")
        if self.verification is not None:
            out.append(f"  verified: {self.verification.summary()}")
        else:
            out.append("  not verified (--no-verify)")
        for report in self.lint:
            out.append(f"  lint {report.summary()}")
            out.extend(f"    {line}" for line in report.lines())
        return out


def default_output_path(checkpoint_path: str | os.PathLike) -> Path:
    """``export/<checkpoint stem>.onnx`` under the current folder (the project's artifact folder)."""
    return EXPORT_DIR / f"{Path(checkpoint_path).stem}.onnx"


def resolve_export(ckpt: Checkpoint, config: ExportConfig) -> tuple[ModelInfo, ResolvedShapes]:
    """The ModelInfo the ONNX will carry and its concrete shapes."""
    info = ckpt.info
    size = config.size or (tuple(info.input_size) if info.input_size else DEFAULT_SIZE)
    shapes = resolve_shapes(config, size)  # type: ignore[arg-type]
    pre = info.preprocessing
    if config.input_channel_order and config.input_channel_order != pre.input_channel_order:
        pre = dataclasses.replace(pre, input_channel_order=config.input_channel_order)
    return info.replace(geometry=config.geometry, input_size=(shapes.height, shapes.width), preprocessing=pre), shapes


def export_onnx(checkpoint: Checkpoint | str | os.PathLike, out_path: str | os.PathLike | None = None,
                config: ExportConfig | None = None, *, lint_targets=DEFAULT_TARGETS) -> ExportReport:
    """Export ``checkpoint`` (a path or a loaded :class:`Checkpoint`) to ``out_path``.

    ``out_path`` defaults to ``export/<checkpoint stem>.onnx`` (the folder is created).
    Raises :class:`FcnEdgeError` subclasses with one sentence on bad input, a failed
    export or a failed verification; in every failure case an existing ``out_path`` is
    left as it was.
    """
    config = config or ExportConfig()
    if not isinstance(checkpoint, Checkpoint):
        from fcn_edge.errors import ArtifactError
        from fcn_edge.fileio import require_file

        require_file(checkpoint, "checkpoint", ArtifactError)  # before seconds of importing torch and onnx
    torch = require("torch", purpose="to export checkpoints")
    onnx = require("onnx", purpose="to write ONNX models")
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    loaded_here = not isinstance(checkpoint, Checkpoint)
    ckpt = load_checkpoint(checkpoint) if loaded_here else checkpoint
    if out_path is None:
        if ckpt.path is None:
            raise ExportConfigError("give an output path: the checkpoint was not loaded from a file")
        out_path = default_output_path(ckpt.path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path = check_writable_destination(out_path)
    info, shapes = resolve_export(ckpt, config)
    source_sha = sha256_file(ckpt.path) if ckpt.path else None

    from fcn_edge.progress import progress

    steps = 6 if config.verify else 5
    with progress(total=steps, desc=f"export {out_path.name}", unit="step") as bar:
        bar.set_postfix_str("building the model")
        module = _build_module(ckpt, info, config, shapes)
        if loaded_here:
            ckpt.state_dict = {}  # the module has its own copy: 540 MB less at full size
        bar.update()

        bar.set_postfix_str("torch.onnx (dynamo)")
        t0 = time.perf_counter()
        model = _torch_export(module, info, config, shapes)
        timings["torch_export"] = time.perf_counter() - t0
        bar.update()

        bar.set_postfix_str("graph passes")
        t0 = time.perf_counter()
        saved = _apply_passes(model, info, config, shapes)
        facts = _make_facts(info, config, shapes, ckpt, source_sha, torch, weights_fp16=saved > 0)
        _declare_io(model, facts, info.num_classes)
        timings["passes"] = time.perf_counter() - t0
        bar.update()

        bar.set_postfix_str("onnx.checker")
        t0 = time.perf_counter()
        apply_metadata(model, info, facts)
        _check(model, onnx)
        timings["check"] = time.perf_counter() - t0
        bar.update()

        verification = None
        if config.verify:
            bar.set_postfix_str("ONNX Runtime vs PyTorch")
            t0 = time.perf_counter()
            verification = _verify(model, module, info, config, shapes, facts, saved > 0, out_path.parent)
            timings["verify"] = time.perf_counter() - t0
            if not verification.passed:
                raise VerificationError(f"verification failed, {out_path} was not written"
                                        f"{' (the previous file is intact)' if out_path.exists() else ''}: "
                                        + "; ".join(verification.problems))
            facts = facts.replace(verification=verification.to_dict())
            apply_metadata(model, info, facts)
            bar.update()

        bar.set_postfix_str("writing")
        t0 = time.perf_counter()
        lint = lint_onnx(model, lint_targets) if lint_targets else []
        op_counts = dict(sorted(_count_ops(model).items()))
        with atomic_path(out_path) as tmp:
            onnx.save(model, str(tmp))
            read_onnx_metadata(tmp)  # the file on disk describes itself
        timings["write"] = time.perf_counter() - t0
        bar.update()

    del model, module
    gc.collect()
    timings["total"] = time.perf_counter() - t_start
    return ExportReport(path=out_path, info=info, facts=facts, verification=verification, lint=lint,
                        op_counts=op_counts, file_bytes=out_path.stat().st_size,
                        seconds={k: round(v, 3) for k, v in timings.items()}, peak_rss_mb=_peak_rss_mb(),
                        fp16_weights_saved_bytes=saved)


# ---------------------------------------------------------------------------- steps
def _build_module(ckpt: Checkpoint, info: ModelInfo, config: ExportConfig, shapes: ResolvedShapes):
    from fcn_edge.export.graph import AlignedAnySize, DeployableFCN

    fcn = ckpt.build_model(geometry=config.geometry).eval()
    if config.geometry == "aligned" and ({"height", "width"} & set(shapes.ranges)):
        fcn = AlignedAnySize(fcn)
    module = DeployableFCN(fcn, info.preprocessing, info.num_classes, io=config.io, outputs=config.outputs,
                           confidence_dtype=config.confidence_dtype).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _torch_export(module, info: ModelInfo, config: ExportConfig, shapes: ResolvedShapes):
    torch = require("torch")
    n, h, w = shapes.batch, shapes.height, shapes.width
    if config.io == "frames":
        example = torch.zeros((n, h, w, 3), dtype=torch.uint8)
        axes = {"batch": 0, "height": 1, "width": 2}
        input_name = "frames"
    else:
        example = torch.zeros((n, 3, h, w), dtype=torch.float32)
        axes = {"batch": 0, "height": 2, "width": 3}
        input_name = "input"
    dynamic_shapes = None
    if shapes.ranges:
        from torch.export import Dim

        dynamic_shapes = {"x": {axes[axis]: Dim(axis, min=r.min, max=r.max) for axis, r in shapes.ranges.items()}}
    chatter = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter), warnings.catch_warnings(), _quiet_loggers():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=max(config.opset, 18),
                                        input_names=[input_name], output_names=list(config.outputs),
                                        dynamic_shapes=dynamic_shapes, optimize=True, verbose=False)
            model = program.model_proto
    except FcnEdgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; the user needs one line
        log.debug("torch.onnx output:\n%s", chatter.getvalue())
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"torch.onnx could not export {info.arch} at {n}x{h}x{w}"
                          f"{' with dynamic ' + ','.join(shapes.ranges) if shapes.ranges else ''}: {first}") from exc
    del program
    gc.collect()
    return model


@contextlib.contextmanager
def _quiet_loggers():
    names = ("torch.onnx", "onnxscript", "torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _apply_passes(model, info: ModelInfo, config: ExportConfig, shapes: ResolvedShapes) -> int:
    from fcn_edge.export import passes

    try:
        passes.name_nodes_by_module(model)
        if not config.keep_debug_metadata:
            passes.strip_debug_metadata(model)
        passes.downgrade_opset(model, config.opset)
        passes.narrow_index_constants(model)
        passes.shapes_after_input_cast(model)
        saved = passes.store_weights_fp16(model)[1] if config.fp16_weights else 0
        passes.pin_ir_version(model)
    except passes.GraphPassError as exc:
        raise ExportError(str(exc)) from None
    return saved


def _make_facts(info: ModelInfo, config: ExportConfig, shapes: ResolvedShapes, ckpt: Checkpoint,
                source_sha: str | None, torch, weights_fp16: bool) -> ExportFacts:
    frames = config.io == "frames"
    dtypes = {"labels": label_dtype(info.num_classes), "confidence": config.confidence_dtype, "logits": "float32"}
    onnxscript = require("onnxscript")
    return ExportFacts(
        io=config.io, input="frames" if frames else "input", outputs=list(config.outputs),
        size=(shapes.height, shapes.width), batch=None if "batch" in shapes.ranges else shapes.batch,
        dynamic=shapes.facts(), opset=config.opset, geometry=config.geometry, precision="fp32",
        source_sha256=source_sha, source_name=ckpt.path.name if ckpt.path else None, fcn_edge_version=__version__,
        input_dtype="uint8" if frames else "float32", input_layout="NHWC" if frames else "NCHW",
        input_channel_order=(info.preprocessing.input_channel_order if frames
                             else info.preprocessing.model_channel_order),
        output_dtypes={name: dtypes[name] for name in config.outputs},
        confidence_scale=(1.0 / CONFIDENCE_UINT8_MAX if config.confidence_dtype == "uint8" else 1.0)
        if "confidence" in config.outputs else None,
        weights_dtype="float16" if weights_fp16 else "float32",
        exporter=f"torch.onnx dynamo (torch {torch.__version__}, onnxscript {getattr(onnxscript, '__version__', '?')})",
        created_utc=utc_now(),
    )


def _declare_io(model, facts: ExportFacts, num_classes: int) -> None:
    """State the contract's names, dtypes and shapes on the graph's inputs and outputs.

    The exporter names dynamic output dims after its own symbolic expressions; here
    every dynamic axis is ``batch``/``height``/``width`` and every static one a number.
    """
    onnx = require("onnx")
    n, h, w = (facts.input_shape()[i] for i in ((0, 1, 2) if facts.input_layout == "NHWC" else (0, 2, 3)))
    graph = model.graph
    if [i.name for i in graph.input] != [facts.input] or [o.name for o in graph.output] != facts.outputs:
        raise ExportError(f"exported graph has inputs {[i.name for i in graph.input]} and outputs "
                          f"{[o.name for o in graph.output]}, expected {facts.input} -> {facts.outputs}")
    expected = {"labels": [n, h, w], "confidence": [n, h, w], "logits": [n, num_classes, h, w]}
    in_shape = facts.input_shape()
    _set_type(graph.input[0], _ONNX_DTYPE[facts.input_dtype], in_shape, onnx)
    for out in graph.output:
        declared = out.type.tensor_type.elem_type
        want = _ONNX_DTYPE[facts.output_dtypes[out.name]]
        if declared and declared != want:
            raise ExportError(f"output {out.name} came out as ONNX type {declared}, expected {facts.output_dtypes[out.name]}")
        _set_type(out, want, expected[out.name], onnx)


def _set_type(value_info, elem_type: int, dims: list, onnx) -> None:
    value_info.type.CopyFrom(onnx.helper.make_tensor_type_proto(elem_type, dims))


def _check(model, onnx) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError / InferenceError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ExportError(f"the exported graph fails onnx.checker: {first}") from exc


def _verify(model, module, info: ModelInfo, config: ExportConfig, shapes: ResolvedShapes, facts: ExportFacts,
            weights_fp16: bool, workdir: Path) -> VerificationReport:
    reference, fp32_module = "PyTorch", None
    if weights_fp16:
        fp32_module = module
        module = _with_fp16_rounded_weights(module, model)
        reference = "PyTorch (weights rounded to float16)"
    checks = [facts.profile("opt")]
    if shapes.ranges:
        second = _second_shape(shapes)
        if second != checks[0]:
            checks.append(second)
    try:
        return verify_graph(model, module, io=config.io, preprocessing=info.preprocessing, shapes=checks,
                            frames=config.verify_frames, rtol=config.logits_rtol,
                            min_label_agreement=config.min_label_agreement, reference=reference,
                            fp32_module=fp32_module, input_name=facts.input, workdir=workdir)
    finally:
        if fp32_module is not None:
            del module


def _second_shape(shapes: ResolvedShapes) -> tuple[int, int, int]:
    """A second profile shape to run: a different batch and an odd size (not a multiple of 32) in range."""
    def pick(axis: str, opt: int) -> int:
        r = shapes.ranges.get(axis)
        if r is None:
            return opt
        if axis == "batch":
            return r.min if r.min != opt else min(r.max, opt + 1)
        candidate = max(r.min, (opt * 3) // 4 + 3)  # smaller than opt: cheap; +3: exercises pad and crop
        return candidate if candidate != opt else (r.max if r.max != opt else r.min)
    return pick("batch", shapes.batch), pick("height", shapes.height), pick("width", shapes.width)


def _with_fp16_rounded_weights(module, model):
    """A copy of ``module`` whose parameters stored as FP16 in ``model`` are rounded the same way."""
    torch = require("torch")
    stored = {init.name[: -len("__fp16")] for init in model.graph.initializer if init.name.endswith("__fp16")}
    rounded = copy.deepcopy(module)
    matched = 0
    with torch.no_grad():
        for name, param in rounded.named_parameters():
            if name in stored:
                param.copy_(param.half().float())
                matched += 1
    if matched != len(stored):
        raise ExportError(f"fp16 weights: {len(stored) - matched} stored tensors have no matching torch parameter")
    return rounded


def _count_ops(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _peak_rss_mb() -> float | None:
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    except (OSError, ValueError):
        return None


def describe_report(report: ExportReport) -> dict[str, Any]:
    """A JSON-friendly summary (benchmarks, --json)."""
    return {"path": str(report.path), "file_bytes": report.file_bytes, "node_count": report.node_count,
            "op_counts": report.op_counts, "seconds": report.seconds, "peak_rss_mb": report.peak_rss_mb,
            "facts": report.facts.to_dict(), "lint": [r.to_dict() for r in report.lint]}
