"""INT8 within an accuracy budget: keep the most harmful layers float until the budget holds.

``fcn-edge calibrate MODEL.onnx --images SRC --val DATA --max-drop 0.5`` (mean IU points
lost against FP32 on a labelled set) or ``--min-agreement 99.5`` (% of pixels whose
INT8 label equals the FP32 label, on held-out images when there are no labels):

1. calibrate once (ranges computed once, :class:`~fcn_edge.calib.calibrate.CalibrationRun`);
2. quantize with the configured keep-float set and measure it (step 0);
3. rank the quantized layers by the existing per-layer sensitivity
   (:func:`fcn_edge.calib.accuracy.layer_sensitivity`: agreement recovered when only that
   layer stays float, mean IU breaking ties);
4. keep the ranked layers float **one at a time**, re-quantizing with the same ranges
   and measuring, until the budget holds; write that model (atomically, with its
   keep-float set and measured accuracy in the ``calibration`` facts).

Why one at a time and not bisection over the ranking: the ranking front-loads the harmful
layers, so the budget usually holds after one to three steps, where bisection would
spend log2(layers) ~ 4-5 steps whatever the answer; accuracy is not monotone in the
number of float layers (INT8 noise can make a longer prefix worse than a shorter one),
which bisection assumes and one-at-a-time does not need (it returns the *shortest*
prefix that meets the budget); and each step is a row of the printed table that says
what one more float layer bought.  The ranking itself already costs one evaluation per
layer, so even in the worst case bisection would save less than half of the work.

Each step also times the model on this machine's ONNX Runtime CPU provider in the
``onnxruntime`` Q/DQ placement (the one its CPU kernels run in INT8), so the table
shows what keeping a layer float costs in speed on a CPU; TensorRT's speed differs.

A model with no quantized layer is no INT8 model: the search stops before keeping every
layer float (and at ``max_keep_float`` layers when given).  When no step meets the
budget, :class:`BudgetNotMet` carries the table and nothing is written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fcn_edge.calib.config import CalibrationConfig, CalibrationConfigError
from fcn_edge.errors import FcnEdgeError

log = logging.getLogger("fcn_edge.calib")

LATENCY_RUNS = 5


class BudgetNotMet(FcnEdgeError):
    """No keep-float set within the search's limits meets the accuracy budget (nothing was written)."""

    def __init__(self, message: str, search: "BudgetSearch") -> None:
        super().__init__(message)
        self.search = search


@dataclass(frozen=True)
class Budget:
    """What INT8 may cost: ``max_drop`` mean IU points (labels needed) and/or ``min_agreement`` % of pixels."""

    max_drop: float | None = None
    min_agreement: float | None = None

    def __post_init__(self) -> None:
        if self.max_drop is None and self.min_agreement is None:
            raise CalibrationConfigError("an accuracy budget needs --max-drop POINTS (with --val) or --min-agreement PERCENT")
        if self.max_drop is not None and not 0.0 <= self.max_drop <= 100.0:
            raise CalibrationConfigError(f"--max-drop is mean IU points between 0 and 100, got {self.max_drop:g}")
        if self.min_agreement is not None and not 0.0 < self.min_agreement <= 100.0:
            raise CalibrationConfigError(f"--min-agreement is a percentage above 0 and at most 100, got {self.min_agreement:g}")

    def met_by(self, step: "SearchStep") -> bool:
        if self.max_drop is not None and (step.mean_iu_drop is None or step.mean_iu_drop > self.max_drop):
            return False
        return self.min_agreement is None or 100.0 * step.agreement >= self.min_agreement

    def describe(self) -> str:
        parts = []
        if self.max_drop is not None:
            parts.append(f"mean IU drop <= {self.max_drop:g} points")
        if self.min_agreement is not None:
            parts.append(f"agreement >= {self.min_agreement:g}%")
        return " and ".join(parts)

    def to_dict(self) -> dict[str, float | None]:
        return {"max_drop": self.max_drop, "min_agreement": self.min_agreement}


@dataclass
class SearchStep:
    """One candidate: the layers the search kept float (on top of the configured set) and what it measured."""

    keep_float: list[str]
    agreement: float                      # fraction of pixels equal to FP32's labels
    worst_image_agreement: float
    metrics: dict | None                  # INT8's four metrics (labelled set only)
    mean_iu_drop: float | None            # points, FP32 minus INT8
    latency_ms: float | None              # ONNX Runtime CPU, onnxruntime placement
    met: bool = False

    @property
    def mean_iu(self) -> float | None:
        return None if self.metrics is None else self.metrics["mean_iu"]

    def to_dict(self) -> dict[str, Any]:
        return {"keep_float": list(self.keep_float), "agreement": round(self.agreement, 6),
                "worst_image_agreement": round(self.worst_image_agreement, 6),
                "mean_iu": None if self.mean_iu is None else round(self.mean_iu, 6),
                "mean_iu_drop": None if self.mean_iu_drop is None else round(self.mean_iu_drop, 4),
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3), "met": self.met}


@dataclass
class BudgetSearch:
    """The search's table, its choice (``chosen`` indexes ``steps``) and the written report."""

    budget: Budget
    base_keep_float: list[str]
    ranking: list[str]
    eval_kind: str
    eval_images: int
    fp32_metrics: dict | None
    fp32_latency_ms: float | None
    steps: list[SearchStep] = field(default_factory=list)
    chosen: int | None = None
    report: Any = None                    # CalibrationReport of the written model
    seconds: float = 0.0
    note: str = ""

    @property
    def chosen_step(self) -> SearchStep | None:
        return None if self.chosen is None else self.steps[self.chosen]

    def table(self) -> list[str]:
        base = ",".join(self.base_keep_float) or "none"
        fp32_miou = "" if self.fp32_metrics is None else f"{100 * self.fp32_metrics['mean_iu']:7.2f}"
        lines = [f"INT8 budget search ({self.budget.describe()}; {self.eval_images} {self.eval_kind} images; "
                 f"configured keep-float: {base}; latency: ONNX Runtime CPU, onnxruntime Q/DQ placement):",
                 "  step  layers kept float: +the one added      mean IU   drop pt  agreement %  latency ms  budget",
                 f"  fp32  {'(everything float)':<36} {fp32_miou:>7}  {'':>7}  {100.0:11.3f}  "
                 f"{_ms(self.fp32_latency_ms):>10}"]
        for index, step in enumerate(self.steps):
            kept = f"{len(step.keep_float)}: +{step.keep_float[-1]}" if step.keep_float else "-"
            miou = "" if step.mean_iu is None else f"{100 * step.mean_iu:7.2f}"
            drop = "" if step.mean_iu_drop is None else f"{step.mean_iu_drop:+7.2f}"
            mark = "met" + (" <- chosen" if index == self.chosen else "") if step.met else "missed"
            lines.append(f"  {index:>4}  {kept:<36} {miou:>7}  {drop:>7}  {100 * step.agreement:11.3f}  "
                         f"{_ms(step.latency_ms):>10}  {mark}")
        if self.note:
            lines.append(f"  {self.note}")
        return lines

    def facts(self) -> dict[str, Any]:
        """What goes into the INT8 ONNX's ``calibration`` facts (and the engine's sidecar)."""
        step = self.chosen_step
        assert step is not None
        return {
            "keep_float_searched": list(step.keep_float),
            "accuracy": accuracy_facts(self.eval_kind, self.eval_images, step, self.fp32_metrics),
            "budget": {**self.budget.to_dict(), "met": True, "ranking": list(self.ranking),
                       "steps": [s.to_dict() for s in self.steps], "fp32_latency_ms": self.fp32_latency_ms,
                       "search_seconds": round(self.seconds, 1)},
        }


def accuracy_facts(kind: str, images: int, step: SearchStep, fp32_metrics: dict | None) -> dict[str, Any]:
    """The measured FP32-vs-INT8 accuracy as it travels in the facts (mean IU as fractions, drop in points)."""
    return {"kind": kind, "images": images, "agreement": round(step.agreement, 6),
            "worst_image_agreement": round(step.worst_image_agreement, 6),
            "mean_iu_fp32": None if fp32_metrics is None else round(fp32_metrics["mean_iu"], 6),
            "mean_iu_int8": None if step.mean_iu is None else round(step.mean_iu, 6),
            "mean_iu_drop": None if step.mean_iu_drop is None else round(step.mean_iu_drop, 4),
            "measured_with": "ONNX Runtime CPU"}


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def calibrate_within_budget(onnx_path: str | Path, images: str | Path, output: str | Path | None = None, *,
                            max_drop: float | None = None, min_agreement: float | None = None,
                            max_keep_float: int | None = None, target: str | None = None,
                            config: CalibrationConfig | None = None, show_progress: bool = True,
                            emit: Callable[[str], None] | None = None, scratch: str | Path | None = None,
                            time_latency: bool = True, on_step: Callable[[str], None] | None = None,
                            **options: Any) -> BudgetSearch:
    """Calibrate ``onnx_path`` keeping the most harmful layers float until the budget holds (see the module doc).

    ``max_drop``: mean IU points (needs ``val=`` labelled data); ``min_agreement``: % of
    pixels.  ``max_keep_float`` caps the layers the search adds.  ``on_step`` receives the
    table's lines as they are measured (default: the ``fcn_edge.calib`` logger).  Returns the
    :class:`BudgetSearch` (``.report.output`` is the written INT8 ONNX); raises
    :class:`BudgetNotMet` (with ``.search``) when no step meets the budget.
    """
    from fcn_edge.calib.calibrate import open_run, resolve_config

    budget = Budget(max_drop, min_agreement)
    config = resolve_config(config, target, options)
    if max_drop is not None and config.val is None:
        raise CalibrationConfigError("--max-drop is in mean IU points, which need labels: give --val DATA, or use "
                                     "--min-agreement PERCENT without labels")
    if max_keep_float is not None and max_keep_float < 0:
        raise CalibrationConfigError(f"--max-keep-float must be 0 or more, got {max_keep_float}")
    config = config.replace(accuracy=True)
    started = time.perf_counter()
    with open_run(onnx_path, images, output, config, show_progress=show_progress, emit=emit, scratch=scratch) as run:
        search = _search(run, budget, max_keep_float, time_latency, on_step or log.info)
        search.seconds = time.perf_counter() - started
        if search.chosen is None:
            raise BudgetNotMet(f"no keep-float set meets the budget ({budget.describe()}); nothing was written:\n"
                               + "\n".join(search.table()), search)
        search.seconds = time.perf_counter() - started
        search.report = _write_chosen(run, search)
        search.seconds = time.perf_counter() - started
        return search


def _search(run, budget: Budget, max_keep_float: int | None, time_latency: bool,
            on_step: Callable[[str], None]) -> BudgetSearch:
    """Steps 0..n of the module doc; ``search.chosen`` is the first that meets the budget (or None)."""
    from fcn_edge.calib.accuracy import predict

    eval_set = _eval_set(run)
    fp32_labels = predict(run.source, eval_set.frames)
    fp32_metrics = _score(eval_set, fp32_labels)
    base = list(run.config.resolved_keep_float)
    frames = _timing_batch(run, eval_set)
    search = BudgetSearch(budget, base, [], eval_set.kind, len(eval_set), fp32_metrics,
                          _latency_ms(run.source, run, frames) if time_latency else None)
    step, quantized = _measure(run, base, [], eval_set, fp32_labels, fp32_metrics, frames, time_latency)
    _record(search, step, on_step)
    if step.met:
        return search
    if max_keep_float != 0:
        search.ranking = _ranking(run, quantized, eval_set, fp32_labels, step, on_step)
    limit = len(search.ranking) if max_keep_float is None else min(max_keep_float, len(search.ranking))
    quantized_layers = len(run.regions.layers) - len(quantized.keep_nodes)
    limit = min(limit, quantized_layers - 1)  # at least one layer stays INT8
    for count in range(1, limit + 1):
        added = search.ranking[:count]
        step, _ = _measure(run, base, added, eval_set, fp32_labels, fp32_metrics, frames, time_latency)
        _record(search, step, on_step)
        if step.met:
            return search
    search.note = (f"stopped after keeping {limit} ranked layer(s) float"
                   + (f" (--max-keep-float {max_keep_float})" if max_keep_float is not None and limit == max_keep_float
                      else " (at least one layer must stay INT8)" if limit == quantized_layers - 1 else ""))
    return search


def _record(search: BudgetSearch, step: SearchStep, on_step: Callable[[str], None]) -> None:
    step.met = search.budget.met_by(step)
    search.steps.append(step)
    if step.met and search.chosen is None:
        search.chosen = len(search.steps) - 1
    for line in search.table()[-1:] if len(search.steps) > 1 else search.table():
        on_step(line)


def _eval_set(run):
    """The labelled --val set, else held-out images of the source (else the calibration images, said so)."""
    from fcn_edge.calib.accuracy import EvalSet

    if run.labelled is not None:
        return run.labelled
    held = run.calib_set.held_out
    if held:
        return EvalSet("held-out", [im.frame for im in held], None, [im.name for im in held], run.calib_set.source)
    picks = run.calib_set.images[: run.config.eval_images]
    return EvalSet("calibration", [im.frame for im in picks], None, [im.name for im in picks], run.calib_set.source)


def _score(eval_set, labels) -> dict | None:
    from fcn_edge.calib.accuracy import score

    metrics = score(eval_set, labels)
    return None if metrics is None else {k: v for k, v in metrics.items() if k != "iu"}


def _measure(run, base: list[str], added: list[str], eval_set, fp32_labels, fp32_metrics, frames,
             time_latency: bool):
    """Quantize with ``base + added`` float, measure agreement/mean IU (tensorrt layout) and CPU latency."""
    from fcn_edge.calib.accuracy import agreement, predict
    from fcn_edge.calib.calibrate import quantize

    path = run.tmp / f"search-{len(added)}.onnx"
    quantized = quantize(run, base + added, path)
    labels = predict(path, eval_set.frames)
    agree, worst = agreement(fp32_labels, labels)
    metrics = _score(eval_set, labels)
    drop = None if metrics is None or fp32_metrics is None else 100.0 * (fp32_metrics["mean_iu"] - metrics["mean_iu"])
    latency = None
    if time_latency:
        cpu_path = path if run.config.placement == "onnxruntime" else run.tmp / f"search-{len(added)}.cpu.onnx"
        if cpu_path != path:
            quantize(run, base + added, cpu_path, placement="onnxruntime")
        latency = _latency_ms(cpu_path, run, frames)
    run.lap("search")
    return SearchStep(list(added), agree, worst, metrics, drop, latency), quantized


def _ranking(run, quantized, eval_set, fp32_labels, step: SearchStep, on_step: Callable[[str], None]) -> list[str]:
    """Layer names, most harmful first: the calibrate command's per-layer sensitivity on the step-0 graph."""
    from fcn_edge.calib.accuracy import AccuracyReport, layer_sensitivity
    from fcn_edge.calib.graph import producers

    report = AccuracyReport(eval_set.kind, len(eval_set), eval_set.source, step.agreement, step.worst_image_agreement,
                            None, step.metrics)
    prod = producers(quantized.qdq)
    inputs_dq = {n.name for n in quantized.qdq.graph.node
                 if any(prod.get(t) is not None and prod[t].op_type == "DequantizeLinear" for t in n.input)}
    kept = set(quantized.keep_nodes)
    candidates = [(layer.node, layer.name, layer.op_type) for layer in run.regions.layers
                  if layer.node in inputs_dq and layer.node not in kept]
    layer_sensitivity(quantized.qdq, candidates, eval_set, fp32_labels, report,
                      budget_s=run.config.sensitivity_budget_s, scratch=run.tmp, show_progress=run.show_progress)
    on_step(f"  ranking (most harmful first): {', '.join(s.layer for s in report.sensitivity)} "
            f"({report.sensitivity_note})")
    run.lap("ranking")
    return [s.layer for s in report.sensitivity]


def _timing_batch(run, eval_set) -> np.ndarray:
    """One input batch at the model's batch size, as the deployed model takes it."""
    from fcn_edge.calib.sources import frames_as_batches

    batch = frames_as_batches(list(eval_set.frames[: run.facts.batch or 1]), run.facts.batch or 1)[0]
    return run.prepare(batch) if run.prepare else batch


def _latency_ms(path: Path, run, batch: np.ndarray) -> float:
    """Median of a few timed runs (after one warm-up) on ONNX Runtime's CPU provider."""
    from fcn_edge.lazy import require

    ort = require("onnxruntime", purpose="to time the quantized model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    feed = {run.facts.input: batch}
    session.run(None, feed)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _write_chosen(run, search: BudgetSearch):
    """Re-quantize the chosen set (tensorrt or configured placement) and write it with the search's facts."""
    from fcn_edge.calib.accuracy import AccuracyReport
    from fcn_edge.calib.calibrate import quantize, write_outputs

    step = search.chosen_step
    quantized = quantize(run, search.base_keep_float + step.keep_float, run.tmp / "chosen.onnx")
    report = write_outputs(run, quantized, search.facts())
    report.accuracy = AccuracyReport(search.eval_kind, search.eval_images, str(run.config.val or run.images),
                                     step.agreement, step.worst_image_agreement, search.fp32_metrics, step.metrics)
    from fcn_edge.calib.calibrate import write_ranges_json

    write_ranges_json(run, report)
    report.seconds = run.timings
    return report


__all__ = ["Budget", "BudgetNotMet", "BudgetSearch", "SearchStep", "calibrate_within_budget"]
