"""What ``fcn-edge bench`` reports: the markdown table(s), the JSON, and what every number includes.

The JSON (``schema: fcn-edge.bench/1``)::

    {"schema", "fcn_edge_version", "created", "command", "environment": {python, platform, cpu, ...},
     "config": {iterations | seconds, warmup, batches, size, in_flight, seed, options, ...},
     "definitions": {field: what it includes},                 # printed under the table too
     "models": [{label, model, index, backend, options, ignored_options, open_s,
                 runner: Runner.describe(), timing_notes: {key: meaning}, size, max_in_flight, error, notes}],
     "rows": [{model, model_index, backend, batch, mode: sync|pipelined, in_flight, size: [H, W],
               skipped: null | reason, iterations, warmup_iterations, wall_s,
               latency_ms: {count, mean, p50, p95, p99, min, max, std}, fps, batches_per_s,
               timings_ms: {backend key: same summary}, host_memory: {rss_peak_mb, rss_before_open_mb,
               process_max_rss_mb}, device_memory: {bytes, mb, parts, source} | {},
               io_bytes_per_frame: {input: {name: B}, outputs: {name: B}, in, out, total},
               agreement: null | {reference, pixel_agreement, pixels, frames (what it was measured on)},
               vs_first: null | {reference, latency_p50, fps}}],
     "notes": [...]}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

from fcn_edge import __version__
from fcn_edge.bench.config import BenchConfig
from fcn_edge.bench.core import PIPELINED, BenchRow, ModelResult
from fcn_edge.bench.io_bytes import format_megabytes
from fcn_edge.bench.stats import ratio

SCHEMA = "fcn-edge.bench/1"

DEFINITIONS: dict[str, str] = {
    "latency_ms": "host wall time of one runner.infer(batch) call, per batch (not per frame), measured by fcn-edge "
                  "bench: input checks (and host-side normalisation for raw-I/O models), host->device copy, compute, "
                  "device->host copy and the outputs as numpy labels on the host; warm-up batches excluded",
    "latency_ms (pipelined)": "time from submit() to result() of one batch while IN_FLIGHT batches are outstanding "
                              "(includes waiting behind the other batches in flight)",
    "fps": "frames per second = batch size x timed batches / wall time of the timed loop",
    "timings_ms": "the backend's own timings per batch (InferenceResult.timings), with their meaning per backend "
                  "under timing_notes",
    "host_memory": "rss_peak_mb: largest resident set size of this process sampled from just before the model was "
                   "opened to the end of the row (sampled about every 0.1 s, so short spikes inside a run can be "
                   "missed); process_max_rss_mb: the kernel's high-water mark for the whole process, which includes "
                   "models benchmarked earlier in the same run",
    "device_memory": "GPU memory as the backend accounts for it (source says what is counted); empty when the "
                     "backend cannot tell (CPU, ONNX Runtime, remote servers)",
    "io_bytes_per_frame": "bytes of the model's declared input and outputs per frame at the network size: what "
                          "crosses host<->device on a GPU backend (uint8 frames in and labels out vs float input "
                          "and logits for raw I/O); 1 MB = 10^6 bytes",
    "agreement": "fraction of label pixels equal to the first model's labels on the same frames at the same batch "
                 "size and input size: synthetic noise frames (one batch) unless --images gives real ones (every "
                 "frame read, up to --max-images); noise frames give lower figures than eval and calibrate report, "
                 "which measure on real images",
    "vs_first": "ratios to the first model at the same batch size, mode and input size: latency_p50 = p50 / first "
                "p50 (below 1 is faster), fps = FPS / first FPS (above 1 is faster)",
    "frames": "deterministic synthetic frames (fcn_edge.runtime.synthetic.synthetic_frames with the run's seed), one fixed "
              "batch per batch size, the same for every model",
}


def environment() -> dict[str, Any]:
    """Where the run happened (the backends' own versions are in each model's ``runner``)."""
    import numpy

    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "logical_cpus": os.cpu_count(), "numpy": numpy.__version__,
            "fcn_edge": __version__}


@dataclass
class BenchReport:
    """Everything one ``fcn-edge bench`` run measured; see the module docstring for the JSON."""

    config: BenchConfig
    models: list[ModelResult] = field(default_factory=list)
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: list[str] | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    # ------------------------------------------------------------ comparison
    def compute_ratios(self) -> None:
        """Fill ``vs_first`` of every row run by a model after the first."""
        if not self.models:
            return
        first = self.models[0].label
        reference = {row.key: row for row in self.rows if row.model_index == 0 and row.ran}
        for row in self.rows:
            if not row.ran or row.model_index == 0:
                continue
            ref = reference.get(row.key)
            if ref is None:
                row.vs_first = {"reference": first, "latency_p50": None, "fps": None,
                                "note": "the first model has no result at this batch size, mode and input size"}
                continue
            row.vs_first = {"reference": first, "latency_p50": ratio(row.latency_ms.get("p50"), ref.latency_ms.get("p50")),
                            "fps": ratio(row.fps, ref.fps)}

    # ------------------------------------------------------------------ JSON
    def definitions(self) -> dict[str, Any]:
        definitions: dict[str, Any] = dict(DEFINITIONS)
        definitions["timing_notes"] = {m.label: m.timing_notes for m in self.models if m.timing_notes}
        return definitions

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "fcn_edge_version": __version__, "created": self.created, "command": self.command,
                "environment": environment(), "config": self.config.to_dict(), "definitions": self.definitions(),
                "models": [m.to_dict() for m in self.models], "rows": [r.to_dict() for r in self.rows],
                "notes": self.all_notes()}

    def write_json(self, path) -> None:
        from fcn_edge.fileio import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def all_notes(self) -> list[str]:
        notes = list(self.notes)
        for model in self.models:
            notes += [f"{model.label}: {n}" if not n.startswith(model.label) else n for n in model.notes]
        return list(dict.fromkeys(notes))

    def add_unavailable(self, label: str, reason: str, *, backend: str | None = None,
                        batches: tuple[int, ...] | None = None, model: str = "") -> None:
        """Record a variant that could not even be made (an engine without TensorRT): listed as not run."""
        index = len(self.models)
        self.models.append(ModelResult(label=label, model=model, index=index, backend=backend, error=reason))
        for batch in batches or self.config.batches or (1,):
            self.rows.append(BenchRow(label, index, backend, batch, skipped=reason))

    # -------------------------------------------------------------- markdown
    def markdown(self) -> str:
        """The table(s) with what the numbers include underneath (what ``fcn-edge bench`` prints)."""
        lines: list[str] = []
        show_agreement = self.config.check_agreement and len(self.models) > 1
        agreement_on = "real frames" if self.config.images else "synthetic frames"
        if self.config.compare:
            lines += _table([r for r in self.rows if r.ran], self.models, with_model=True,
                            agreement=show_agreement, ratios=True, agreement_on=agreement_on)
        else:
            for model in self.models:
                rows = [r for r in self.rows if r.model_index == model.index and r.ran]
                lines.append(f"### {model.label}")
                lines.append("")
                lines.append(_model_line(model))
                lines.append("")
                if rows:
                    lines += _table(rows, self.models, with_model=False, agreement=show_agreement and model.index > 0,
                                    ratios=False, agreement_on=agreement_on)
                else:
                    lines.append("(nothing ran)")
                lines.append("")
        if self.config.compare:
            lines.append("")
            lines += [f"- {_model_line(m)}" for m in self.models]
        skipped = self.skipped_lines()
        if skipped:
            lines.append("")
            lines.append("Not run:")
            lines += [f"- {line}" for line in skipped]
        lines.append("")
        lines += self._includes()
        notes = self.all_notes()
        if notes:
            lines.append("")
            lines.append("Notes:")
            lines += [f"- {n}" for n in notes]
        return "\n".join(lines).rstrip() + "\n"

    def skipped_lines(self) -> list[str]:
        """One line per (model, reason): which batch sizes / modes were not run and why."""
        groups: dict[tuple[str, str], list[str]] = {}
        for row in self.rows:
            if row.ran:
                continue
            what = f"batch {row.batch}" + (f" pipelined x{row.in_flight}" if row.mode == PIPELINED else "")
            groups.setdefault((row.model, row.skipped or "?"), []).append(what)
        lines = []
        for (model, reason), whats in groups.items():
            batches = sorted({int(w.split()[1]) for w in whats})
            modes = {"pipelined" if "pipelined" in w else "sync" for w in whats}
            scope = ("batch " if len(batches) == 1 else "batches ") + ", ".join(map(str, batches))
            if modes == {"pipelined"}:
                scope = "pipelined, " + scope
            lines.append(f"{model} ({scope}): {reason}")
        return lines

    def _overrides(self) -> str:
        """Models run with their own counts (ModelSpec overrides), said next to the run's counts."""
        if self.config.iterations is None:
            return ""
        own = []
        for model in self.models:
            rows = [r for r in self.rows if r.model_index == model.index and r.ran and r.mode != PIPELINED]
            counts = {(r.iterations, r.warmup_iterations) for r in rows}
            expected = (self.config.iterations, None if self.config.warmup_seconds is not None else self.config.warmup)
            for iterations, warmup in counts:
                if iterations != expected[0] or (expected[1] is not None and warmup != expected[1]):
                    own.append(f"{model.label}: {iterations} after {warmup} warm-up")
        return f" (own counts: {'; '.join(dict.fromkeys(own))})" if own else ""

    def _includes(self) -> list[str]:
        cfg = self.config
        amount = (f"{cfg.iterations} timed batches" if cfg.iterations else
                  f"{cfg.effective_seconds:g} s of timed batches (at least {cfg.min_iterations})")
        warm = (f"{cfg.warmup_seconds:g} s" if cfg.warmup_seconds is not None else
                f"{cfg.warmup} batch{'es' if cfg.warmup != 1 else ''}")
        lines = ["What the numbers include:",
                 f"- run: {amount} per row after {warm} of warm-up; {DEFINITIONS['frames']} (seed {cfg.seed})"
                 + self._overrides(),
                 f"- p50/p95/p99 ms: {DEFINITIONS['latency_ms']}"]
        if any(r.mode == PIPELINED and r.ran for r in self.rows):
            lines.append(f"- pipelined rows: {DEFINITIONS['latency_ms (pipelined)'].replace('IN_FLIGHT', 'N')}")
        lines.append(f"- FPS: {DEFINITIONS['fps']}")
        seen: dict[tuple[str, str], list[str]] = {}
        for model in self.models:
            for key, note in model.timing_notes.items():
                seen.setdefault((key, note), []).append(model.backend or "?")
        if seen:
            lines.append("- backend timings per batch (timings_ms in the JSON; all but infer in the 'backend p50 ms' "
                         "column):")
            for (key, note), backends in seen.items():
                lines.append(f"  - {key} ({', '.join(dict.fromkeys(backends))}): {note}")
        lines.append(f"- host RSS: {DEFINITIONS['host_memory']}")
        lines.append(f"- GPU mem: {DEFINITIONS['device_memory']}")
        sources = list(dict.fromkeys(r.device_memory.get("source") for r in self.rows if r.ran and r.device_memory.get("source")))
        lines += [f"  - {s}" for s in sources]
        lines.append(f"- I/O per frame (in + out): {DEFINITIONS['io_bytes_per_frame']}")
        if self.config.check_agreement and len(self.models) > 1:
            lines.append(f"- agreement: {DEFINITIONS['agreement']}")
            measured = dict.fromkeys(r.agreement["frames"] for r in self.rows if (r.agreement or {}).get("frames"))
            lines += [f"  - measured on {text}" for text in measured]
        if self.config.compare and len(self.models) > 1:
            lines.append(f"- vs first: {DEFINITIONS['vs_first']}")
        return lines


# ------------------------------------------------------------------ helpers
def _model_line(model: ModelResult) -> str:
    describe = model.describe or {}
    facts = [f"backend {model.backend}"]
    for key in ("device", "providers", "precision", "threads", "intra_op_threads", "tensorrt", "gpu", "cuda_binding"):
        value = describe.get(key)
        if value not in (None, "", []):
            facts.append(f"{key} {','.join(map(str, value)) if isinstance(value, list) else value}")
    if model.open_s is not None:
        facts.append(f"opened in {model.open_s:.2f} s")
    if model.error:
        facts.append(f"not run: {model.error}")
    return f"{model.label}: " + "; ".join(facts)


def format_number(value: Any, digits: int = 2) -> str:
    """A table cell: '-' for a missing value, floats with ``digits`` decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if 0.1 <= abs(value) < 1000 else f"{value:.3g}"


def _backend_cell(row: BenchRow) -> str:
    parts = [f"{key} {format_number(summary.get('p50'))}" for key, summary in row.timings_ms.items()
             if key != "infer" and summary.get("count")]
    return ", ".join(parts) or "-"


def _io_cell(row: BenchRow) -> str:
    io = row.io_bytes_per_frame
    if not io or "in" not in io:
        return "-"
    return f"{format_megabytes(io['in'])[:-3]} + {format_megabytes(io['out'])}"


def _gpu_cell(row: BenchRow) -> str:
    mb = row.device_memory.get("mb") if row.device_memory else None
    return "-" if mb is None else f"{mb:.0f} MB"


def _table(rows: list[BenchRow], models: list[ModelResult], *, with_model: bool, agreement: bool, ratios: bool,
           agreement_on: str = "synthetic frames") -> list[str]:
    header = (["model", "backend"] if with_model else []) + [
        "batch", "mode", "size", "iters", "p50 ms", "p95 ms", "p99 ms", "FPS", "backend p50 ms", "host RSS peak",
        "GPU mem", "I/O per frame"]
    if agreement:
        header.append(f"agreement ({agreement_on})")
    if ratios:
        header += ["p50 vs first", "FPS vs first"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        lat = row.latency_ms
        mode = row.mode if row.mode != PIPELINED else f"pipelined x{row.in_flight}"
        rss = row.host_memory.get("rss_peak_mb")
        cells = ([row.model, row.backend or "-"] if with_model else []) + [
            str(row.batch), mode, f"{row.size[0]}x{row.size[1]}" if row.size else "-", str(row.iterations),
            format_number(lat.get("p50")), format_number(lat.get("p95")), format_number(lat.get("p99")), format_number(row.fps, 1), _backend_cell(row),
            "-" if rss is None else f"{rss:.0f} MB", _gpu_cell(row), _io_cell(row)]
        if agreement:
            if row.model_index == 0:
                cells.append("reference")
            else:
                value = (row.agreement or {}).get("pixel_agreement")
                cells.append("-" if value is None else f"{100 * value:.3f}%")
        if ratios:
            vs = row.vs_first or {}
            if row.model_index == 0:
                cells += ["1.00", "1.00"]
            else:
                cells += [_fmt_ratio(vs.get("latency_p50")), _fmt_ratio(vs.get("fps"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


__all__ = ["BenchReport", "DEFINITIONS", "SCHEMA", "environment", "format_number"]
