"""Rebuild the generated tables of benchmarks/RESULTS.md from the JSON files in benchmarks/results/.

    python benchmarks/update_results.py            # rewrite RESULTS.md in place
    python benchmarks/update_results.py --check    # exit 1 if RESULTS.md is out of date (CI)

Each benchmark's block sits between marker comments, and only that text is replaced::

    <!-- results:gpu_compare -->
    ...generated...
    <!-- /results:gpu_compare -->

Everything outside the markers (hand-written prose, interpretation) is kept as it is.
A results file whose benchmark has a formatter but no markers yet gets a new section
appended at the end (move it where it belongs; later runs update it in place).  A
formatter whose results file is missing leaves its block untouched.

How a benchmark plugs in (either way):

* define ``RESULTS_TITLE = "..."`` and ``results_markdown(data: dict) -> list[str]`` in
  ``benchmarks/<name>.py`` (the script that writes ``results/<name>.json``), or
* add ``@formatter("<name>", "Section title")`` on a function below.

Any result holding an ``fcn-edge bench`` report under ``"bench"`` gets the bench table
without a formatter of its own.  Every block starts with the machine line (from the
``machine`` block :func:`benchmarks._machine.write_result` adds).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fcn_edge.bench.report import SCHEMA as BENCH_SCHEMA, format_number  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"

Render = Callable[[dict], list[str]]


@dataclass(frozen=True)
class Formatter:
    name: str
    title: str
    render: Render


FORMATTERS: dict[str, Formatter] = {}


def formatter(name: str, title: str) -> Callable[[Render], Render]:
    """Register ``render(data) -> lines`` for ``results/<name>.json``."""
    def register(render: Render) -> Render:
        FORMATTERS[name] = Formatter(name, title, render)
        return render
    return register


def find_formatter(name: str, data: dict) -> Formatter | None:
    """The registered formatter, else the script's own ``results_markdown``, else the bench table."""
    if name in FORMATTERS:
        return FORMATTERS[name]
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and (HERE / f"{name}.py").exists():
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except Exception as exc:  # noqa: BLE001 - a broken script must not stop the others
            print(f"update_results: cannot import benchmarks/{name}.py ({type(exc).__name__}: {exc})", file=sys.stderr)
            module = None
        render = getattr(module, "results_markdown", None)
        if callable(render):
            return Formatter(name, getattr(module, "RESULTS_TITLE", name), render)
    if _bench_block(data) is not None:
        return Formatter(name, name, lambda d: bench_table(_bench_block(d)))
    return None


# ------------------------------------------------------------------ shared pieces
def machine_line(name: str, data: dict) -> str:
    """"`command` -> `results/name.json` (CPU, cores, memory, GPU, libraries, date; note)."."""
    machine = data.get("machine") or {}
    libs = machine.get("libraries") or {}
    parts = [machine.get("processor") or "unknown CPU"]
    if machine.get("logical_cpus"):
        parts.append(f"{machine['logical_cpus']} logical CPUs")
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB")
    parts.append(f"GPU: {machine['gpu']}" if machine.get("gpu") else "no GPU")
    for lib in ("torch", "onnx", "onnxruntime", "tensorrt"):
        if libs.get(lib):
            parts.append(f"{lib} {libs[lib]}")
    if machine.get("date"):
        parts.append(str(machine["date"])[:10])
    if machine.get("load_average"):
        parts.append("load average at the end {:.2f} / {:.2f} / {:.2f} (1 / 5 / 15 min)".format(*machine["load_average"]))
    command = data.get("command")
    head = f"`{command.strip()}` -> " if isinstance(command, str) and command.strip() else ""
    note = data.get("note")
    tail = f" *{note}*" if note else ""
    return f"{head}`results/{name}.json` ({', '.join(parts)}).{tail}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return lines


def _bench_block(data: dict) -> dict | None:
    if data.get("schema") == BENCH_SCHEMA:
        return data
    bench = data.get("bench")
    return bench if isinstance(bench, dict) and bench.get("schema") == BENCH_SCHEMA else None


def bench_table(bench: dict) -> list[str]:
    """A compact table of an ``fcn-edge bench`` report (JSON form), with its not-run rows and notes."""
    rows = [r for r in bench.get("rows", []) if not r.get("skipped")]
    compare = any(r.get("vs_first") for r in rows)
    agreement = any(r.get("agreement") for r in rows)
    header = ["model", "batch", "mode", "size", "iters", "p50 ms", "p95 ms", "p99 ms", "FPS", "backend p50 ms",
              "GPU mem", "host RSS peak"]
    if agreement:
        header.append("agreement")
    if compare:
        header += ["p50 vs first", "FPS vs first"]
    body = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        mode = r["mode"] if r["mode"] != "pipelined" else f"pipelined x{r.get('in_flight')}"
        backend = ", ".join(f"{k} {format_number(v.get('p50'))}" for k, v in (r.get("timings_ms") or {}).items()
                            if k != "infer" and v.get("count")) or "-"
        mem = (r.get("device_memory") or {}).get("mb")
        rss = (r.get("host_memory") or {}).get("rss_peak_mb")
        cells = [r["model"], r["batch"], mode, "x".join(map(str, r["size"])) if r.get("size") else "-",
                 r.get("iterations"), format_number(lat.get("p50")), format_number(lat.get("p95")), format_number(lat.get("p99")),
                 format_number(r.get("fps"), 1), backend, "-" if mem is None else f"{mem:.0f} MB",
                 "-" if rss is None else f"{rss:.0f} MB"]
        if agreement:
            value = (r.get("agreement") or {}).get("pixel_agreement")
            cells.append("reference" if r.get("model_index") == 0 else ("-" if value is None else f"{100 * value:.3f}%"))
        if compare:
            vs = r.get("vs_first") or {}
            cells += (["1.00", "1.00"] if r.get("model_index") == 0 else
                      [format_number(vs.get("latency_p50")), format_number(vs.get("fps"))])
        body.append(cells)
    lines = table(header, body)
    skipped: dict[tuple[str, str], list[str]] = {}
    for r in bench.get("rows", []):
        if r.get("skipped"):
            what = f"{r['batch']}" + (" pipelined" if r.get("mode") == "pipelined" else "")
            skipped.setdefault((r["model"], r["skipped"]), []).append(what)
    if skipped:
        lines += ["", "Not run:"]
        lines += [f"- {model} (batch {', '.join(dict.fromkeys(w))}): {reason}" for (model, reason), w in skipped.items()]
    notes = [n for n in bench.get("notes", []) if n]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    definitions = bench.get("definitions") or {}
    if definitions.get("latency_ms"):
        lines += ["", f"Latency: {definitions['latency_ms']}. FPS: {definitions.get('fps', '')}."]
    return lines


# ------------------------------------------------------------------ formatters
@formatter("gpu_compare", "GPU comparison: TensorRT vs PyTorch eager vs ONNX Runtime (`benchmarks/gpu_compare.py`)")
def _gpu_compare(data: dict) -> list[str]:
    model = data.get("model") or {}
    size = "x".join(map(str, model.get("size") or [])) or "?"
    lines = []
    if not data.get("full_run", True):
        lines += [f"**Reduced run** (device {data.get('device')}, {size}, width {model.get('width')}): it shows the "
                  "script works end to end; the GPU figures come from the full run on a GPU machine.", ""]
    ort = data.get("onnxruntime") or {}
    trt = data.get("tensorrt") or {}
    lines.append(f"FCN-8s ({model.get('geometry', 'aligned')}, {model.get('classes')} classes, width "
                 f"{model.get('width')}, weights: {model.get('weights', 'random')}) at {size}, frames in / labels out; "
                 f"device {data.get('device')}, torch {data.get('torch')}, onnxruntime {ort.get('version')} "
                 f"({', '.join(ort.get('providers') or [])}), TensorRT: {trt.get('tensorrt') or trt.get('status')}.")
    lines.append("")
    return lines + bench_table(data.get("bench") or {})


@formatter("export_fullsize", "Export (`fcn-edge export`)")
def _export_fullsize(data: dict) -> list[str]:
    stage_names = (("torch_export", "torch.onnx"), ("check", "checker"), ("verify", "ORT vs PyTorch"), ("write", "write"))
    rows = []
    exports = data.get("exports", [])
    base_casts = next((e["op_counts"].get("Cast", 0) for e in exports if e.get("op_counts")), None)
    for e in exports:
        stages = e.get("stages_s") or {}
        detail = ", ".join(f"{label} {stages[key]:.1f} s" for key, label in stage_names if stages.get(key))
        wall = f"{e['wall_s']:.0f} s" + (f" ({detail})" if detail else "") if e.get("wall_s") is not None else "-"
        rss = e.get("peak_rss_mb")
        nodes = e.get("nodes")
        casts = (e.get("op_counts") or {}).get("Cast")
        if nodes is not None and base_casts is not None and casts is not None and casts > base_casts:
            nodes = f"{nodes} (+{casts - base_casts} Casts)"
        variant = str(e.get("variant"))
        rows.append([f"`{variant}`" if variant.startswith("fcn-edge") else variant, wall,
                     "-" if rss is None else f"{rss / 1000:.2f} GB", f"{e['file_mb']:.0f} MB" if e.get("file_mb") else "-",
                     nodes])
    lines = table(["run", "wall time", "peak RSS", "file", "nodes"], rows)
    per_frame = data.get("bytes_per_frame") or []
    if per_frame:
        def tensors(specs: dict) -> str:
            return ", ".join(f"`{name}` {spec}" for name, spec in specs.items())

        lines += ["", "Bytes moved per frame, read from the exported graphs' declared I/O:", ""]
        lines += table(["I/O mode", "in", "out", "total"], [
            [f"`--io {b['io']}`, `{','.join(b['outputs'])}`", f"{tensors(b.get('in') or {})}: {b['in_bytes']:,} B",
             f"{tensors(b.get('out') or {})}: {b['out_bytes']:,} B", f"{b['total_mb']:.2f} MB"] for b in per_frame])
    return lines


@formatter("model_fullsize", "Full-size models (`benchmarks/model_fullsize.py`)")
def _model_fullsize(data: dict) -> list[str]:
    lines = table(["model", "parameters"], [[k, f"{v:,}"] for k, v in (data.get("parameters") or {}).items()])
    forward = data.get("forward") or []
    if forward:
        lines += ["", "CPU forward pass (median of the runs):", ""]
        lines += table(["model", "geometry", "size", "threads", "GMACs", "median"], [
            [f["model"], f["geometry"], f["size"], f.get("threads"), f.get("gmacs"), f"{f['median_s']:.2f} s"]
            for f in forward])
    return lines


@formatter("runner_efficiency", "Streaming runner efficiency (`fcn-edge run`, `benchmarks/runner_efficiency.py`)")
def _runner_efficiency(data: dict) -> list[str]:
    model = data.get("model") or {}
    backend = data.get("backend") or {}
    lat = (data.get("runner_latency_ms") or {}).get("inference") or {}
    e2e = (data.get("runner_latency_ms") or {}).get("end_to_end") or {}
    memory = data.get("memory") or {}
    samples = memory.get("samples") or []
    pairs = len(data.get("pairs") or []) or "the"
    rows = [["backend alone (FPS, median of the runs)", format_number(data.get("backend_fps"), 1)],
            ["runner, video file -> no sink (FPS, median of the runs)", format_number(data.get("runner_fps"), 1)],
            ["ratio of those two medians", format_number(data.get("efficiency_of_medians"), 3)],
            [f"efficiency: median of the {pairs} back-to-back pair ratios (runner / backend)",
             f"{format_number(data.get('efficiency'), 3)} (goal {data.get('goal_efficiency')})"],
            ["inference p50 / p95 / p99", f"{format_number(lat.get('p50'))} / {format_number(lat.get('p95'))} / {format_number(lat.get('p99'))} ms"],
            ["end to end p50 / p95 / p99", f"{format_number(e2e.get('p50'))} / {format_number(e2e.get('p95'))} / {format_number(e2e.get('p99'))} ms"]]
    if samples:
        rows.append([f"RSS over {memory.get('frames')} frames",
                     f"{samples[0]['rss_mib']:.1f} -> {samples[-1]['rss_mib']:.1f} MiB"])
    head = (f"FCN-8s width {model.get('width')}, {model.get('classes')} classes, "
            f"{'x'.join(map(str, model.get('input_hw') or []))}, {backend.get('name')} "
            f"({', '.join(backend.get('providers') or [])}, {backend.get('intra_op_threads')} threads).")
    return [head, ""] + table(["figure", "value"], rows)


@formatter("demo", "`fcn-edge demo` from nothing (`benchmarks/demo_summary.py`)")
def _demo(data: dict) -> list[str]:
    """results/demo.json is written by benchmarks/demo_summary.py (the result keeps README's name for it)."""
    from benchmarks.demo_summary import results_markdown

    return results_markdown(data)


@formatter("metrics_update", "Metrics update speed (`benchmarks/metrics_update.py`)")
def _metrics_update(data: dict) -> list[str]:
    shape = "x".join(map(str, data.get("shape") or []))
    rows = [[dtype, format_number(v.get("median_ms"), 2), format_number(v.get("min_ms"), 2), format_number(v.get("max_ms"), 2), v.get("runs")]
            for dtype, v in (data.get("by_dtype") or {}).items()]
    return [f"{data.get('what', 'ConfusionMatrix.update')}: {shape} labels, {data.get('classes')} classes, goal "
            f"{data.get('goal_ms')} ms.", ""] + table(["labels dtype", "median ms", "min ms", "max ms", "runs"], rows)


# ------------------------------------------------------------------ RESULTS.md
def _markers(name: str) -> tuple[str, str]:
    return f"<!-- results:{name} -->", f"<!-- /results:{name} -->"


def render_block(name: str, data: dict, fmt: Formatter) -> str:
    lines = [machine_line(name, data), ""] + fmt.render(data)
    return "\n".join(lines).rstrip() + "\n"


def update_text(text: str, results: dict[str, dict]) -> tuple[str, list[str]]:
    """``text`` with every known block regenerated; returns (new text, what happened per benchmark)."""
    log: list[str] = []
    for name, data in results.items():
        fmt = find_formatter(name, data)
        if fmt is None:
            log.append(f"{name}: no formatter (add one to benchmarks/update_results.py or results_markdown to "
                       f"benchmarks/{name}.py); skipped")
            continue
        try:
            block = render_block(name, data, fmt)
        except (KeyError, TypeError, ValueError) as exc:
            log.append(f"{name}: formatter failed ({type(exc).__name__}: {exc}); block left as it was")
            continue
        begin, end = _markers(name)
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
        replacement = f"{begin}\n{block}{end}"
        if pattern.search(text):
            text = pattern.sub(lambda _: replacement, text, count=1)
            log.append(f"{name}: updated")
        else:
            text = text.rstrip("\n") + f"\n\n## {fmt.title}\n\n{replacement}\n"
            log.append(f"{name}: new section appended")
    return text, log


def load_results(folder: Path) -> dict[str, dict]:
    results = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"update_results: skipping {path.name}: {exc}", file=sys.stderr)
            continue
        if isinstance(data, dict):
            results[path.stem] = data
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the generated tables of benchmarks/RESULTS.md.")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of <benchmark>.json files")
    parser.add_argument("--file", type=Path, default=RESULTS_MD, help="the markdown file to update")
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date (exit 1 if not)")
    args = parser.parse_args(argv)

    old = args.file.read_text() if args.file.exists() else "# Benchmark results\n"
    new, log = update_text(old, load_results(args.results))
    for line in log:
        print(line, file=sys.stderr)
    if args.check:
        if new != old:
            print(f"{args.file} is out of date: run python benchmarks/update_results.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        from fcn_edge.fileio import atomic_write_text

        atomic_write_text(args.file, new)
        print(f"wrote {args.file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
