"""``fcn-edge calibrate``'s work, step by step (the command module only parses arguments).

1. Read the ONNX's fcn-edge facts (refuse a foreign, FP16 or already quantized model),
   prepare the FP32 graph: named nodes, fp16-stored weights folded back to float32, the
   opset brought within the target's limit, shapes inferred.
2. Find the graph's regions (pre-processing / FCN body / post-processing) and resolve
   ``--keep-float``; pre/post-processing and the kept layers are excluded from quantization.
3. Collect the calibration images exactly as the deployed model sees them.
4. Compute every float tensor's range with ONNX Runtime's calibrator (entropy / max /
   percentile), chunked to a memory budget.
5. Insert Q/DQ with ``quantize_static`` (or ModelOpt), repair and check TensorRT's Q/DQ
   rules, record the calibration facts in the metadata, verify the graph runs, write it
   atomically.
6. Write TensorRT's calibration cache (same ranges) and the ranges JSON.
7. Accuracy: FP32 vs INT8 with ONNX Runtime on the CPU (four metrics with ``--val``, else
   label agreement on held-out images), per-layer sensitivity for small models, loud
   warnings past 1 point of mean IU or under 98 % agreement.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from fcn_edge.calib.config import (FEW_IMAGES, MIN_QDQ_OPSET, QUANTIZED_OP_TYPES, CalibrationConfig,
                                   default_output_path, sidecar_paths)
from fcn_edge.errors import ArtifactError, FcnEdgeError
from fcn_edge.fileio import (atomic_path, atomic_write_text, check_writable_destination, require_file, scratch_directory,
                             sha256_file)
from fcn_edge.lazy import require

log = logging.getLogger("fcn_edge.calib")

RANGES_FORMAT = "fcn-edge-calibration-ranges"
RANGES_FORMAT_VERSION = 1


@dataclass
class CalibrationReport:
    """What ``calibrate_onnx`` did and measured; ``output`` is the Q/DQ ONNX."""

    output: Path
    source_onnx: Path
    cache: Path | None
    ranges_json: Path
    method: str
    target: str
    opset: int
    quantizer: str
    images: int
    images_available: int
    images_skipped: int
    images_sha256: str
    keep_float: dict[str, list[str]]
    excluded_nodes: list[str]
    quantized_nodes: list[str]
    activation_qdq: int
    weight_qdq: int
    placement: str = "tensorrt"
    fixes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    accuracy: Any = None               # fcn_edge.calib.accuracy.AccuracyReport or None
    seconds: dict[str, float] = field(default_factory=dict)
    extra_json: dict = field(default_factory=dict, repr=False)  # what the ranges JSON is written from

    def __fspath__(self) -> str:
        return str(self.output)

    @property
    def ok(self) -> bool:
        return not self.warnings and (self.accuracy is None or self.accuracy.ok)

    def lines(self) -> list[str]:
        layout = "" if self.placement == "tensorrt" else f", {self.placement} Q/DQ placement"
        out = [f"wrote {self.output} (Q/DQ INT8, opset {self.opset}, target {self.target}{layout}, {self.method} ranges from "
               f"{self.images} images, {len(self.quantized_nodes)} quantized nodes, "
               f"{self.activation_qdq} activation + {self.weight_qdq} weight Q/DQ)"]
        if self.keep_float:
            out.append("  kept float: " + "; ".join(
                item if layers == [item] else f"{item} ({', '.join(layers)})" for item, layers in self.keep_float.items()))
        if self.cache is not None:
            out.append(f"wrote {self.cache} (TensorRT calibration cache for the implicit INT8 calibrator / DLA)")
        out.append(f"wrote {self.ranges_json} (every tensor's range, method, images and their hash)")
        for fix in self.fixes:
            out.append(f"  fixed: {fix}")
        if self.accuracy is not None:
            out.extend(self.accuracy.lines())
        total = sum(self.seconds.values())
        out.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()) + f" (total {total:.1f} s)")
        return out

    def to_dict(self) -> dict:
        return {
            "output": str(self.output), "source_onnx": str(self.source_onnx),
            "cache": str(self.cache) if self.cache else None, "ranges_json": str(self.ranges_json),
            "method": self.method, "target": self.target, "opset": self.opset, "quantizer": self.quantizer,
            "placement": self.placement, "images": self.images, "images_available": self.images_available,
            "images_skipped": self.images_skipped,
            "images_sha256": self.images_sha256, "keep_float": self.keep_float,
            "excluded_nodes": self.excluded_nodes, "quantized_nodes": self.quantized_nodes,
            "activation_qdq": self.activation_qdq, "weight_qdq": self.weight_qdq, "fixes": self.fixes,
            "warnings": self.warnings, "accuracy": self.accuracy.to_dict() if self.accuracy is not None else None,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def calibrate_onnx(onnx_path: str | Path, images: str | Path, output: str | Path | None = None, *,
                   target: str | None = None, config: CalibrationConfig | None = None, show_progress: bool = True,
                   emit: Callable[[str], None] | None = None, scratch: str | Path | None = None,
                   **options: Any) -> CalibrationReport:
    """Calibrate ``onnx_path`` (an FP32 ONNX from fcn-edge export) on ``images``; write the Q/DQ ONNX.

    ``images``: an image folder, a .txt list, a video or a dataset folder.  ``output``
    defaults to ``<stem>.int8.onnx`` next to the input.  ``target`` (trt8|trt10|trt11) and
    any :class:`CalibrationConfig` field given as a keyword override ``config``.
    ``emit`` receives progress lines (default: the ``fcn_edge.calib`` logger).
    Returns a :class:`CalibrationReport` (``report.output`` is the written path).
    """
    config = resolve_config(config, target, options)
    with open_run(onnx_path, images, output, config, show_progress=show_progress, emit=emit, scratch=scratch) as run:
        quantized = quantize(run, config.resolved_keep_float, run.tmp / "int8.onnx")
        report = write_outputs(run, quantized)
        if run.accuracy_on:
            measure_accuracy(run, quantized, report)
        report.seconds = run.timings
        return report


def resolve_config(config: CalibrationConfig | None, target: str | None, options: dict[str, Any]) -> CalibrationConfig:
    """``config`` with ``target`` and keyword overrides applied (the API's calling convention)."""
    config = config or CalibrationConfig()
    overrides = dict(options)
    if target is not None:
        overrides["target"] = target
    return config.replace(**overrides) if overrides else config


@dataclass
class CalibrationRun:
    """What every quantization of one model on one image set shares: the prepared graph, images, ranges.

    Made by :func:`open_run`; :func:`quantize` turns it into Q/DQ graphs for any keep-float
    set (cheap: the ranges are computed once), :func:`write_outputs` writes one of them.
    The INT8 budget search (:mod:`fcn_edge.calib.budget`) quantizes it many times.
    """

    source: Path
    info: Any
    facts: Any
    config: CalibrationConfig
    images: str | Path
    output: Path
    cache_path: Path
    json_path: Path
    tmp: Path
    say: Callable[[str], None]
    show_progress: bool
    model: Any = None                  # the prepared FP32 ModelProto (shapes inferred)
    prepared: Path | None = None       # ... saved for the quantizer
    regions: Any = None
    opset: int = 0
    folded: int = 0
    calib_set: Any = None
    labelled: Any = None
    batches: list = field(default_factory=list)
    prepare: Callable[[np.ndarray], np.ndarray] | None = None
    ranges: Any = None                 # TensorRanges (ONNX Runtime quantizer) once computed
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _clock: float = field(default_factory=time.perf_counter)

    @property
    def accuracy_on(self) -> bool:
        return self.config.accuracy is True or self.config.accuracy == "auto"

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self._clock
        self._clock = now


@dataclass
class Quantized:
    """One Q/DQ graph of a run: which layers stayed float and what TensorRT's rules checker found."""

    path: Path
    qdq: Any
    keep_nodes: list[str]
    keep_by_item: dict[str, list[str]]
    excluded: list[str]
    fixes: list[str]
    summary: Any


@contextlib.contextmanager
def open_run(onnx_path: str | Path, images: str | Path, output: str | Path | None, config: CalibrationConfig, *,
             show_progress: bool = True, emit: Callable[[str], None] | None = None,
             scratch: str | Path | None = None) -> Iterator[CalibrationRun]:
    """Check the request, prepare the graph, collect the images and compute the ranges (steps 1-4)."""
    source, info, facts, output_path = _check_request(onnx_path, output, config)
    cache_path, json_path = sidecar_paths(output_path)
    require("onnx", purpose="to calibrate ONNX models")
    require("onnxruntime.quantization", purpose="to calibrate ONNX models")
    with scratch_directory("calibrate", scratch) as tmp:
        run = CalibrationRun(source, info, facts, config, images, output_path, cache_path, json_path, Path(tmp),
                             emit or log.info, show_progress)
        _prepare_graph(run)
        run.lap("prepare")
        _collect_images(run)
        run.lap("collect")
        if config.quantizer == "ort":
            _compute_ranges(run)
            run.lap("calibrate")
        yield run


def _check_request(onnx_path: str | Path, output: str | Path | None, config: CalibrationConfig):
    """(source, ModelInfo, export facts, output path) after refusing what cannot be calibrated or written."""
    source = require_file(onnx_path, "ONNX model", ArtifactError)
    from fcn_edge.export import read_onnx_metadata

    info, facts = read_onnx_metadata(source)
    if facts.precision == "int8-qdq":
        raise ArtifactError(f"{source} is already quantized (precision int8-qdq); calibrate the FP32 ONNX from "
                            "fcn-edge export instead")
    if facts.precision == "fp16":
        raise ArtifactError(f"{source} is an FP16 ONNX; INT8 calibration needs the FP32 ONNX from fcn-edge export")
    output_path = Path(output) if output is not None else default_output_path(source)
    if output_path.resolve() == source.resolve():
        raise FcnEdgeError(f"-o {output_path} is the input model; give another file name for the INT8 ONNX")
    check_writable_destination(output_path)
    if config.quantizer == "modelopt":
        from fcn_edge.calib.modelopt_backend import require_modelopt

        require_modelopt()
    if config.val is not None and not Path(config.val).exists():
        raise FcnEdgeError(f"--val {config.val} does not exist; give a labelled dataset folder")
    return source, info, facts, output_path


def _prepare_graph(run: CalibrationRun) -> None:
    """Step 1-2: named nodes, FP32 weights, the target's opset, shapes inferred, regions found."""
    onnx = require("onnx", purpose="to calibrate ONNX models")
    from fcn_edge.calib import graph as G

    try:
        model = onnx.load(str(run.source))
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise ArtifactError(f"cannot load {run.source} as ONNX: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    G.check_quantizable(model, run.source)
    G.ensure_node_names(model)
    run.folded = G.fold_half_weights(model)
    if run.folded:
        run.say(f"  {run.folded} FP16-stored weights restored to FP32 before quantization")
    run.opset = _fit_opset(model, run.config, run.source)
    run.model = onnx.shape_inference.infer_shapes(model)
    run.prepared = run.tmp / "fp32.onnx"
    onnx.save(run.model, str(run.prepared))
    run.regions = G.find_regions(run.model)
    if run.regions.logits is None:
        raise ArtifactError(f"{run.source}: cannot find the logits tensor the outputs are computed from; "
                            "re-export it with fcn-edge export")


def _collect_images(run: CalibrationRun) -> None:
    """Step 3: the calibration images (and the labelled --val set) exactly as the deployed model sees them."""
    from fcn_edge.calib.sources import FrameMaker, collect_images, frames_as_batches

    config, facts, info = run.config, run.facts, run.info
    order = facts.input_channel_order if facts.io == "frames" else info.preprocessing.input_channel_order
    maker = FrameMaker(tuple(facts.size), order)
    held_out = config.eval_images if run.accuracy_on and config.val is None else 0
    if run.accuracy_on and config.val is not None:
        from fcn_edge.calib.accuracy import load_labelled

        run.labelled = load_labelled(config.val, maker, split=config.val_split, limit=config.max_val_images,
                                     num_classes=info.num_classes, show_progress=run.show_progress)
    run.calib_set = calib_set = collect_images(run.images, config.num_images, maker, split=config.split,
                                               held_out=held_out, show_progress=run.show_progress)
    if len(calib_set) < FEW_IMAGES:
        run.warnings.append(f"only {len(calib_set)} calibration images (fewer than {FEW_IMAGES}): ranges from so few "
                            "images are unreliable; give a few hundred representative images")
        log.warning("WARNING: %s", run.warnings[-1])
    if calib_set.report.count:
        run.warnings.append(f"{calib_set.report.count} bad image(s) in {run.images} were skipped (see the log)")
    run.batches = frames_as_batches(calib_set.frames, facts.batch or 1)
    if facts.io == "raw":
        from fcn_edge.runtime.preprocess import frames_to_raw

        def prepare(frames: np.ndarray) -> np.ndarray:
            return frames_to_raw(frames, info.preprocessing)

        run.prepare = prepare


def _compute_ranges(run: CalibrationRun) -> None:
    """Step 4: every float activation's range with ONNX Runtime's calibrator, once per run."""
    from fcn_edge.calib import graph as G
    from fcn_edge.calib.ranges import compute_ranges

    config = run.config
    run.ranges = compute_ranges(run.prepared, run.facts.input, run.batches, method=config.method,
                                percentile=config.percentile, histogram_bins=config.resolved_histogram_bins,
                                quantized_bins=config.quantized_bins, budget_mib=config.memory_budget_mib,
                                shape_model=run.model, show_progress=run.show_progress, images=len(run.calib_set),
                                scratch=run.tmp, prepare=run.prepare,
                                tensors=G.float_activation_tensors(run.model, run.regions.body),
                                label=f"{run.output.name} ({config.placement} Q/DQ placement)")


def quantize(run: CalibrationRun, keep_float: Sequence[str], qdq_path: Path, *, placement: str | None = None) -> Quantized:
    """Step 5: the Q/DQ graph with ``keep_float`` (layers, nodes, op types) left float, checked against TensorRT's rules.

    ``placement`` overrides the config's (the budget search times the ``onnxruntime``
    placement, the one ONNX Runtime's CPU kernels run in INT8).
    """
    from fcn_edge.calib import graph as G

    onnx = require("onnx", purpose="to calibrate ONNX models")
    config, regions = run.config, run.regions
    placement = placement or config.placement
    keep_nodes, keep_by_item = G.resolve_keep_float(run.model, regions, keep_float)
    excluded = list(dict.fromkeys(regions.protected + keep_nodes))
    if config.quantizer == "ort":
        from fcn_edge.calib.quantize import quantize_with_ranges

        run.say(f"  quantizing with ONNX Runtime quantize_static ({len(regions.protected)} pre/post-processing nodes "
                f"and {len(keep_nodes)} kept-float layers left out)")
        overrides = {"OpTypesToExcludeOutputQuantization": []} if placement == "onnxruntime" else None
        quantize_with_ranges(run.prepared, qdq_path, run.ranges, nodes_to_exclude=excluded,
                             op_types_in_graph=sorted({n.op_type for n in run.model.graph.node}), scratch=run.tmp,
                             option_overrides=overrides)
    else:
        from fcn_edge.calib.modelopt_backend import quantize_with_modelopt

        feed = [run.prepare(b) if run.prepare else b for b in run.batches]
        quantize_with_modelopt(run.prepared, qdq_path, input_name=run.facts.input, batches=feed, method=config.method,
                               nodes_to_exclude=excluded, op_types_to_quantize=QUANTIZED_OP_TYPES, opset=run.opset)
    qdq = onnx.load(str(qdq_path))
    fixes, summary = _check_rules(run, qdq, keep_nodes)
    if run.ranges is None:
        run.ranges = _ranges_from_qdq(qdq, config.method)
    run.lap("quantize")
    return Quantized(qdq_path, qdq, keep_nodes, keep_by_item, excluded, fixes, summary)


def _check_rules(run: CalibrationRun, qdq, keep_nodes: list[str]):
    """Repair what the quantizer gets wrong for TensorRT, then refuse a graph that still breaks its Q/DQ rules."""
    from fcn_edge.calib.qdq import check_qdq_graph, fix_qdq_graph

    regions = run.regions
    fixes = fix_qdq_graph(qdq, protected=regions.protected)
    protected_ops = {n.name: n.op_type for n in run.model.graph.node if n.name in set(regions.protected)}
    must_quantize = [layer.node for layer in regions.layers
                     if layer.node not in set(keep_nodes) and layer.op_type in ("Conv", "ConvTranspose")]
    summary = check_qdq_graph(qdq, max_opset=run.config.max_opset, protected=regions.protected,
                              protected_ops=protected_ops, require_quantized=must_quantize)
    if not summary.ok:
        shown = "; ".join(str(i) for i in summary.issues[:3])
        more = f" (and {len(summary.issues) - 3} more)" if len(summary.issues) > 3 else ""
        raise ArtifactError(f"the quantized graph breaks TensorRT's Q/DQ rules: {shown}{more}; nothing was written "
                            "(please report this with the model's export command)")
    return fixes, summary


def calibration_facts(run: CalibrationRun, quantized: Quantized) -> dict[str, Any]:
    """The ``calibration`` entry of the INT8 ONNX's export facts (the budget search adds to it)."""
    config, regions = run.config, run.regions
    return {
        "method": config.method, "percentile": config.percentile if config.method == "percentile" else None,
        "target": config.target, "quantizer": config.quantizer, "placement": config.placement,
        "images": len(run.calib_set),
        "images_source": str(run.images), "images_sha256": run.calib_set.sha256,
        "keep_float": {k: [regions.layer_of(n) for n in v] for k, v in quantized.keep_by_item.items()},
        "excluded_nodes": quantized.excluded, "source_onnx_sha256": sha256_file(run.source),
        "source_onnx_name": run.source.name,
        "ranges_json": run.json_path.name, "cache": run.cache_path.name if config.writes_cache else None,
        "fixes": quantized.fixes,
    }


def write_outputs(run: CalibrationRun, quantized: Quantized, extra_facts: dict[str, Any] | None = None) -> CalibrationReport:
    """Steps 5-6: metadata (``extra_facts`` added to the calibration facts), verify, write ONNX, cache, ranges JSON."""
    onnx = require("onnx", purpose="to calibrate ONNX models")
    from fcn_edge.calib import graph as G
    from fcn_edge.export import apply_metadata
    from fcn_edge.export.passes import pin_ir_version

    qdq, config = quantized.qdq, run.config
    facts = {**calibration_facts(run, quantized), **(extra_facts or {})}
    pin_ir_version(qdq)  # the lowest IR the opset needs, as the export does (older runtimes refuse new IRs)
    apply_metadata(qdq, run.info, run.facts.replace(precision="int8-qdq", opset=G.default_opset(qdq), calibration=facts))
    with atomic_path(run.output) as tmp_out:
        onnx.save(qdq, str(tmp_out))
        _verify_runs(tmp_out, run.facts.input, run.batches[0], run.prepare)
    run.lap("write")
    cache_tensors = _cache_tensors(run.model, qdq, run.regions, quantized.excluded, run.ranges)
    written_cache = None
    if config.writes_cache:
        from fcn_edge.calib.trt_cache import write_cache

        written_cache = write_cache(run.cache_path, {t: run.ranges.amax(t) for t in cache_tensors},
                                    trt_version=config.cache_version, method=config.method)
    report = _report(run, quantized, written_cache)
    report.extra_json = {"cache_tensors": cache_tensors, "summary": quantized.summary}
    write_ranges_json(run, report)  # now, so an interrupted accuracy check leaves the ranges on disk
    run.lap("write")
    return report


def _report(run: CalibrationRun, quantized: Quantized, written_cache: Path | None) -> CalibrationReport:
    from fcn_edge.calib.graph import default_opset

    calib_set, config, regions = run.calib_set, run.config, run.regions
    return CalibrationReport(
        output=run.output, source_onnx=run.source, cache=written_cache, ranges_json=run.json_path,
        method=config.method, target=config.target, opset=default_opset(quantized.qdq), quantizer=config.quantizer,
        images=len(calib_set), images_available=calib_set.available, images_skipped=calib_set.report.count,
        images_sha256=calib_set.sha256,
        keep_float={k: [regions.layer_of(n) for n in v] for k, v in quantized.keep_by_item.items()},
        excluded_nodes=quantized.excluded, quantized_nodes=quantized.summary.quantized_nodes,
        activation_qdq=quantized.summary.activation_qdq, weight_qdq=quantized.summary.weight_qdq,
        placement=config.placement,
        fixes=quantized.fixes + ([f"{run.folded} FP16-stored weights restored to FP32"] if run.folded else []),
        warnings=list(run.warnings), seconds=run.timings)


def write_ranges_json(run: CalibrationRun, report: CalibrationReport) -> None:
    """The ranges JSON next to the INT8 ONNX (rewritten once the accuracy figures are in)."""
    extra = report.extra_json
    atomic_write_text(run.json_path, json.dumps(_ranges_document(report, run.config, run.calib_set, run.ranges,
                                                                 extra["cache_tensors"], extra["summary"], run.regions),
                                                indent=1) + "\n")


def measure_accuracy(run: CalibrationRun, quantized: Quantized, report: CalibrationReport) -> None:
    """Step 7: FP32 vs INT8 (and per-layer sensitivity) into ``report.accuracy``; loud warnings; JSON rewritten."""
    report.accuracy = accuracy = _accuracy(run.source, run.output, quantized.qdq, run.regions, quantized.keep_nodes,
                                           run.calib_set, run.labelled, run.config, run.show_progress, run.tmp)
    for line in accuracy.warnings:
        log.warning("WARNING: %s", line)
    if accuracy.warnings:
        worst = accuracy.hurting_layers()
        if worst:
            names = ", ".join(s.layer for s in worst)
            log.warning("WARNING: the layers whose quantization hurts most: %s; try --keep-float %s", names,
                        ",".join(s.layer for s in worst[:2]))
        elif not accuracy.sensitivity:
            log.warning("WARNING: rerun with --sensitivity to find the layers whose quantization hurts most")
    run.lap("accuracy")
    write_ranges_json(run, report)
    run.lap("write")


# --------------------------------------------------------------------------- helpers

def _fit_opset(model, config: CalibrationConfig, source: Path) -> int:
    """Bring the default opset within the target's limit (the export's own downgrade pass)."""
    from fcn_edge.calib.graph import default_opset

    opset = default_opset(model)
    if opset > config.max_opset:
        from fcn_edge.export.passes import GraphPassError, downgrade_opset

        try:
            downgrade_opset(model, config.max_opset)
        except GraphPassError as exc:
            raise ArtifactError(f"{source} has opset {opset}, above what --target {config.target} parses "
                                f"({config.max_opset}), and cannot be rewritten: {exc}") from None
        log.info("opset %d -> %d for --target %s", opset, config.max_opset, config.target)
        opset = config.max_opset
    if opset < MIN_QDQ_OPSET:
        raise ArtifactError(f"{source} has opset {opset}; per-channel Q/DQ needs opset 13 or newer: re-export it "
                            "with fcn-edge export (opset 17 by default)")
    return opset


def _verify_runs(path: Path, input_name: str, batch: np.ndarray, prepare) -> None:
    """The written Q/DQ graph loads and runs in ONNX Runtime on one calibration batch (else nothing is replaced)."""
    ort = require("onnxruntime", purpose="to check the quantized model")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        outputs = session.run(None, {input_name: prepare(batch) if prepare else batch})
    except Exception as exc:  # noqa: BLE001 - ORT's own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ArtifactError(f"the quantized model does not run in ONNX Runtime ({first}); nothing was written") from None
    for value in outputs:
        if np.asarray(value).dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ArtifactError("the quantized model outputs NaN/Inf on a calibration image; nothing was written")


def _cache_tensors(fp32, qdq, regions, excluded: list[str], ranges) -> list[str]:
    """The tensors whose scales go into TensorRT's cache (see fcn_edge.calib.trt_cache).

    Every tensor the Q/DQ graph quantizes, plus each output of a quantized-region node
    whose readers are all in the quantized region (e.g. a Conv output fused with its
    ReLU), so the implicit path runs the same layers in INT8 as the explicit one.
    Graph outputs, pre/post-processing tensors and kept-float layers' inputs have none.
    """
    from fcn_edge.calib.graph import consumers

    excluded_set = set(excluded)
    outputs = {o.name for o in fp32.graph.output}
    inits = {i.name for i in fp32.graph.initializer}
    quantized: list[str] = []
    qusers = consumers(qdq)
    for node in qdq.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and node.input[0] in ranges.ranges \
                and qusers.get(node.output[0]):
            quantized.append(node.input[0])
    users = consumers(fp32)
    body = set(regions.body) - excluded_set
    fused: list[str] = []
    for node in fp32.graph.node:
        if node.name not in body:
            continue
        for out in node.output:
            readers = users.get(out, [])
            if out in outputs or out in inits or out not in ranges.ranges or not readers:
                continue
            if all(r.name in body for r in readers):
                fused.append(out)
    return list(dict.fromkeys(quantized + fused))


def _ranges_from_qdq(qdq, method: str):
    """Ranges read back from a Q/DQ graph's activation scales (ModelOpt path): ``+-scale*127``."""
    from fcn_edge.calib.graph import consumers
    from fcn_edge.calib.qdq import _const
    from fcn_edge.calib.ranges import TensorRanges

    inits = {i.name for i in qdq.graph.initializer}
    users = consumers(qdq)
    found: dict[str, tuple[float, float]] = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or not users.get(node.output[0]):
            continue
        scale = _const(qdq, node.input[1])
        if scale is None or scale.size != 1:
            continue
        amax = float(scale.reshape(-1)[0]) * 127.0
        found[node.input[0]] = (-amax, amax)
    return TensorRanges(method, found, {"from": "modelopt Q/DQ scales"}, 0, 0)


def _accuracy(source: Path, output: Path, qdq, regions, keep_nodes, calib_set, labelled, config, show_progress,
              tmp: Path):
    from fcn_edge.calib.accuracy import EvalSet, compare, layer_sensitivity

    if labelled is not None:
        eval_set = labelled
    elif calib_set.held_out:
        eval_set = EvalSet("held-out", [im.frame for im in calib_set.held_out], None,
                           [im.name for im in calib_set.held_out], calib_set.source)
    else:
        picks = calib_set.images[: config.eval_images]
        eval_set = EvalSet("calibration", [im.frame for im in picks], None, [im.name for im in picks],
                           calib_set.source)
    log.info("checking INT8 against FP32 with ONNX Runtime (CPU) on %d images", len(eval_set))
    report, fp32_labels = compare(source, output, eval_set, miou_warn=config.mean_iu_drop_warn,
                                  agreement_warn=config.agreement_warn)
    run_sensitivity = config.sensitivity is True or (
        config.sensitivity == "auto" and _parameter_count(qdq) <= config.sensitivity_auto_params)
    if run_sensitivity:
        kept = set(keep_nodes)
        quantized = set()
        from fcn_edge.calib.graph import producers

        prod = producers(qdq)
        for node in qdq.graph.node:
            if any(prod.get(t) is not None and prod[t].op_type == "DequantizeLinear" for t in node.input):
                quantized.add(node.name)
        candidates = [(layer.node, layer.name, layer.op_type) for layer in regions.layers
                      if layer.node in quantized and layer.node not in kept]
        layer_sensitivity(qdq, candidates, eval_set, fp32_labels, report, budget_s=config.sensitivity_budget_s,
                          scratch=tmp, show_progress=show_progress)
    elif config.sensitivity == "auto":
        report.sensitivity_note = "per-layer sensitivity skipped for a model this size (--sensitivity to run it)"
    return report


def _parameter_count(model) -> int:
    total = 0
    for init in model.graph.initializer:
        if init.data_type == 1:
            count = 1
            for d in init.dims:
                count *= int(d)
            total += count
    return total


def _ranges_document(report: CalibrationReport, config: CalibrationConfig, calib_set, ranges, cache_tensors,
                     summary, regions) -> dict:
    from fcn_edge import __version__

    cached = set(cache_tensors)
    tensors = {}
    for name, (low, high) in sorted(ranges.ranges.items()):
        amax = max(abs(low), abs(high))
        tensors[name] = {"min": low, "max": high, "amax": amax, "scale": amax / 127.0, "in_cache": name in cached}
    return {
        "format": RANGES_FORMAT, "format_version": RANGES_FORMAT_VERSION, "fcn_edge_version": __version__,
        "model": str(report.source_onnx), "model_sha256": sha256_file(report.source_onnx),
        "output": str(report.output), "cache": str(report.cache) if report.cache else None,
        "method": ranges.method, "calibrator_options": ranges.options, "chunk_batches": ranges.chunk,
        "target": config.target, "opset": report.opset, "quantizer": config.quantizer,
        "config": config.to_dict(),
        "images": calib_set.describe(),
        "regions": {"pre": regions.pre, "post": regions.post, "logits": regions.logits,
                    "layers": {layer.name: layer.node for layer in regions.layers}},
        "keep_float": report.keep_float, "excluded_nodes": report.excluded_nodes,
        "quantized_nodes": summary.quantized_nodes, "fixes": report.fixes,
        "tensors": tensors,
        "accuracy": report.accuracy.to_dict() if report.accuracy is not None else None,
        "warnings": report.warnings,
    }
