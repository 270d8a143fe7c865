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

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    config = config or CalibrationConfig()
    overrides = dict(options)
    if target is not None:
        overrides["target"] = target
    if overrides:
        config = config.replace(**overrides)
    say = emit or log.info
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

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
    cache_path, json_path = sidecar_paths(output_path)
    if config.quantizer == "modelopt":
        from fcn_edge.calib.modelopt_backend import require_modelopt

        require_modelopt()
    if config.val is not None and not Path(config.val).exists():
        raise FcnEdgeError(f"--val {config.val} does not exist; give a labelled dataset folder")

    onnx = require("onnx", purpose="to calibrate ONNX models")
    require("onnxruntime.quantization", purpose="to calibrate ONNX models")
    from fcn_edge.calib import graph as G

    with scratch_directory("calibrate", scratch) as tmp:
        # ---------------------------------------------------------------- 1. prepare the FP32 graph
        try:
            model = onnx.load(str(source))
        except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
            raise ArtifactError(f"cannot load {source} as ONNX: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        G.check_quantizable(model, source)
        G.ensure_node_names(model)
        folded = G.fold_half_weights(model)
        if folded:
            say(f"  {folded} FP16-stored weights restored to FP32 before quantization")
        opset = _fit_opset(model, config, source)
        model = onnx.shape_inference.infer_shapes(model)
        prepared = tmp / "fp32.onnx"
        onnx.save(model, str(prepared))
        regions = G.find_regions(model)
        if regions.logits is None:
            raise ArtifactError(f"{source}: cannot find the logits tensor the outputs are computed from; "
                                "re-export it with fcn-edge export")
        keep_nodes, keep_by_item = G.resolve_keep_float(model, regions, config.resolved_keep_float)
        excluded = list(dict.fromkeys(regions.protected + keep_nodes))
        op_types = sorted({n.op_type for n in model.graph.node})
        lap("prepare")

        # ---------------------------------------------------------------- 3. images
        from fcn_edge.calib.sources import FrameMaker, collect_images, frames_as_batches

        order = facts.input_channel_order if facts.io == "frames" else info.preprocessing.input_channel_order
        size = tuple(facts.size)
        maker = FrameMaker(size, order)
        accuracy_on = config.accuracy is True or config.accuracy == "auto"
        held_out = config.eval_images if accuracy_on and config.val is None else 0
        labelled = None
        if accuracy_on and config.val is not None:
            from fcn_edge.calib.accuracy import load_labelled

            labelled = load_labelled(config.val, maker, split=config.val_split, limit=config.max_val_images,
                                     num_classes=info.num_classes, show_progress=show_progress)
        calib_set = collect_images(images, config.num_images, maker, split=config.split, held_out=held_out,
                                   show_progress=show_progress)
        warnings: list[str] = []
        if len(calib_set) < FEW_IMAGES:
            warnings.append(f"only {len(calib_set)} calibration images (fewer than {FEW_IMAGES}): ranges from so few "
                            "images are unreliable; give a few hundred representative images")
            log.warning("WARNING: %s", warnings[-1])
        if calib_set.report.count:
            warnings.append(f"{calib_set.report.count} bad image(s) in {images} were skipped (see the log)")
        batch = facts.batch or 1
        batches = frames_as_batches(calib_set.frames, batch)
        prepare = None
        if facts.io == "raw":
            from fcn_edge.runtime.preprocess import frames_to_raw

            def prepare(frames: np.ndarray) -> np.ndarray:
                return frames_to_raw(frames, info.preprocessing)
        lap("collect")

        # ---------------------------------------------------------------- 4-5. ranges and Q/DQ
        qdq_path = tmp / "int8.onnx"
        ranges = None
        if config.quantizer == "ort":
            from fcn_edge.calib.quantize import quantize_with_ranges
            from fcn_edge.calib.ranges import compute_ranges

            ranges = compute_ranges(prepared, facts.input, batches, method=config.method,
                                    percentile=config.percentile, histogram_bins=config.resolved_histogram_bins,
                                    quantized_bins=config.quantized_bins, budget_mib=config.memory_budget_mib,
                                    shape_model=model, show_progress=show_progress, images=len(calib_set),
                                    scratch=tmp, prepare=prepare,
                                    tensors=G.float_activation_tensors(model, regions.body),
                                    label=f"{output_path.name} ({config.placement} Q/DQ placement)")
            lap("calibrate")
            say(f"  quantizing with ONNX Runtime quantize_static ({len(regions.protected)} pre/post-processing nodes "
                f"and {len(keep_nodes)} kept-float layers left out)")
            overrides = {"OpTypesToExcludeOutputQuantization": []} if config.placement == "onnxruntime" else None
            quantize_with_ranges(prepared, qdq_path, ranges, nodes_to_exclude=excluded, op_types_in_graph=op_types,
                                 scratch=tmp, option_overrides=overrides)
        else:
            from fcn_edge.calib.modelopt_backend import quantize_with_modelopt

            feed = [prepare(b) if prepare else b for b in batches]
            quantize_with_modelopt(prepared, qdq_path, input_name=facts.input, batches=feed, method=config.method,
                                   nodes_to_exclude=excluded, op_types_to_quantize=QUANTIZED_OP_TYPES, opset=opset)
            lap("calibrate")
        qdq = onnx.load(str(qdq_path))
        from fcn_edge.calib.qdq import check_qdq_graph, fix_qdq_graph

        fixes = fix_qdq_graph(qdq, protected=regions.protected)
        protected_ops = {n.name: n.op_type for n in model.graph.node if n.name in set(regions.protected)}
        must_quantize = [layer.node for layer in regions.layers
                         if layer.node not in set(keep_nodes) and layer.op_type in ("Conv", "ConvTranspose")]
        summary = check_qdq_graph(qdq, max_opset=config.max_opset, protected=regions.protected,
                                  protected_ops=protected_ops, require_quantized=must_quantize)
        if not summary.ok:
            shown = "; ".join(str(i) for i in summary.issues[:3])
            more = f" (and {len(summary.issues) - 3} more)" if len(summary.issues) > 3 else ""
            raise ArtifactError(f"the quantized graph breaks TensorRT's Q/DQ rules: {shown}{more}; nothing was written "
                                "(please report this with the model's export command)")
        if ranges is None:
            ranges = _ranges_from_qdq(qdq, config.method)
        lap("quantize")

        # ---------------------------------------------------------------- 5. metadata, verify, write
        calibration_facts = {
            "method": config.method, "percentile": config.percentile if config.method == "percentile" else None,
            "target": config.target, "quantizer": config.quantizer, "placement": config.placement,
            "images": len(calib_set),
            "images_source": str(images), "images_sha256": calib_set.sha256,
            "keep_float": {k: [regions.layer_of(n) for n in v] for k, v in keep_by_item.items()},
            "excluded_nodes": excluded, "source_onnx_sha256": sha256_file(source), "source_onnx_name": source.name,
            "ranges_json": json_path.name, "cache": cache_path.name if config.writes_cache else None,
            "fixes": fixes,
        }
        from fcn_edge.export import apply_metadata
        from fcn_edge.export.passes import pin_ir_version

        pin_ir_version(qdq)  # the lowest IR the opset needs, as the export does (older runtimes refuse new IRs)
        apply_metadata(qdq, info, facts.replace(precision="int8-qdq", opset=G.default_opset(qdq),
                                                calibration=calibration_facts))
        with atomic_path(output_path) as tmp_out:
            onnx.save(qdq, str(tmp_out))
            _verify_runs(tmp_out, facts.input, batches[0], prepare)
        lap("write")

        # ---------------------------------------------------------------- 6. cache and ranges JSON
        cache_tensors = _cache_tensors(model, qdq, regions, excluded, ranges)
        written_cache = None
        if config.writes_cache:
            from fcn_edge.calib.trt_cache import write_cache

            written_cache = write_cache(cache_path, {t: ranges.amax(t) for t in cache_tensors},
                                        trt_version=config.cache_version, method=config.method)

        report = CalibrationReport(
            output=output_path, source_onnx=source, cache=written_cache, ranges_json=json_path,
            method=config.method, target=config.target, opset=G.default_opset(qdq), quantizer=config.quantizer,
            images=len(calib_set), images_available=calib_set.available, images_skipped=calib_set.report.count,
            images_sha256=calib_set.sha256, keep_float={k: [regions.layer_of(n) for n in v] for k, v in keep_by_item.items()},
            excluded_nodes=excluded, quantized_nodes=summary.quantized_nodes,
            activation_qdq=summary.activation_qdq, weight_qdq=summary.weight_qdq, placement=config.placement,
            fixes=fixes + ([f"{folded} FP16-stored weights restored to FP32"] if folded else []),
            warnings=warnings, seconds=timings)

        def write_json() -> None:
            atomic_write_text(json_path, json.dumps(_ranges_document(report, config, calib_set, ranges, cache_tensors,
                                                                     summary, regions), indent=1) + "\n")

        write_json()  # now, so an interrupted accuracy check leaves the ranges on disk; again with its figures
        lap("write")

        # ---------------------------------------------------------------- 7. accuracy
        if accuracy_on:
            report.accuracy = accuracy = _accuracy(source, output_path, qdq, regions, keep_nodes, calib_set, labelled,
                                                   config, show_progress, tmp)
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
            lap("accuracy")
            write_json()
            lap("write")
        report.seconds = timings
        return report


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
