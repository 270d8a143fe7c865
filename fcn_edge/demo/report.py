"""The demo's report: report.md, a self-contained report.html, a latency/accuracy plot, summary.json.

The numbers come from one ``summary`` dict (the same one written to summary.json), so
the Markdown, the HTML and the JSON can never disagree.  Layout of ``summary``::

    {"fcn_edge_version", "created", "machine": {...}, "workdir",
     "dataset": {...}, "training": {...},
     "variants": [{"name", "backend", "precision", "model", "file_bytes",
                   "metrics": {"pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu", "iu"},
                   "agreement", "latency_ms": {"p50", "p95"}, "fps", "stream": {...}}],
     "skipped": [{"name", "reason"}], "overlays": ["overlays/....png"],
     "steps": [{"name", "seconds", "reused"}]}
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from fcn_edge.fileio import atomic_path, atomic_write_text

METRIC_COLUMNS = (("mean_iu", "mean IU"), ("pixel_accuracy", "pixel acc."), ("mean_accuracy", "mean acc."),
                  ("fw_iu", "f.w. IU"))


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100.0 * float(value):.2f}"


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def variant_rows(summary: dict) -> list[list[str]]:
    """The main table as rows of strings (shared by Markdown and HTML)."""
    rows = []
    for v in summary.get("variants", []):
        metrics = v.get("metrics") or {}
        latency = v.get("latency_ms") or {}
        size = v.get("file_bytes")
        rows.append([
            v["name"], v.get("backend", ""), v.get("precision", ""),
            *(_pct(metrics.get(key)) for key, _ in METRIC_COLUMNS),
            _pct(v.get("agreement")),
            _num(latency.get("p50"), 2), _num(latency.get("p95"), 2), _num(v.get("fps"), 1),
            _num(size / 1e6, 2) if size else "n/a",
        ])
    return rows


HEADERS = ["variant", "backend", "precision", *(label for _, label in METRIC_COLUMNS),
           "agreement with FP32 (%)", "p50 ms", "p95 ms", "FPS", "file MB"]


def render_markdown(summary: dict, plot_name: str | None) -> str:
    lines = ["# fcn-edge demo report", ""]
    lines.append(f"fcn-edge {summary.get('fcn_edge_version', '?')}, {summary.get('created', '')}. "
                 f"Everything below was produced by `fcn-edge demo` on this machine from data it generated itself.")
    lines.append("")
    ds = summary.get("dataset") or {}
    tr = summary.get("training") or {}
    if ds:
        lines.append(f"- **Data**: synthetic, {ds.get('train', '?')} train / {ds.get('val', '?')} val images of "
                     f"{ds.get('size', '?')}, {ds.get('num_classes', '?')} classes ({', '.join(ds.get('class_names', []))}).")
    if tr:
        lines.append(f"- **Model**: {tr.get('arch', 'fcn8s')} width {tr.get('width', '?')}, "
                     f"{tr.get('parameters', '?')} parameters, trained {tr.get('iterations', '?')} iterations in "
                     f"{_num(tr.get('seconds'), 0)} s ({tr.get('device', 'cpu')}).")
    lines.append("- **Metrics**: the paper's four (percent), on the val split, every variant fed the same "
                 "images through the same resize; agreement = share of pixels whose label equals PyTorch FP32's.")
    lines.append("- **Speed**: the streaming runner on a synthetic video, batch 1; latency is the backend's "
                 "inference time per frame (p50/p95), FPS the runner's end-to-end throughput.")
    if any(v.get("name") == "ONNX INT8 (CPU layout)" for v in summary.get("variants", [])):
        lines.append("- **Two INT8 files**: `ONNX INT8` has its Q/DQ nodes where TensorRT wants them (INT8 engines "
                     "are built from it); ONNX Runtime on a CPU only emulates that layout, so it is slower than FP32 "
                     "there. `ONNX INT8 (CPU layout)` is calibrated on the same images with Q/DQ placed for ONNX "
                     "Runtime's integer kernels: the INT8 to deploy on a CPU.")
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in variant_rows(summary):
        lines.append("| " + " | ".join(row) + " |")
    skipped = summary.get("skipped") or []
    if skipped:
        lines += ["", "Not run here:", ""]
        lines += [f"- **{s['name']}**: {s['reason']}" for s in skipped]
    if plot_name:
        lines += ["", f"![latency vs accuracy]({plot_name})"]
    overlays = summary.get("overlays") or []
    if overlays:
        lines += ["", "## Overlays (val images: input, ground truth, PyTorch FP32, ONNX INT8)", ""]
        lines += [f"![overlay]({o})" for o in overlays]
    steps = summary.get("steps") or []
    if steps:
        lines += ["", "## Steps", "", "| step | seconds | reused |", "|---|---|---|"]
        lines += [f"| {s['name']} | {_num(s.get('seconds'), 1)} | {'yes' if s.get('reused') else 'no'} |" for s in steps]
    machine = summary.get("machine") or {}
    if machine:
        lines += ["", "## Machine", "", "```", json.dumps(machine, indent=2), "```"]
    return "\n".join(lines) + "\n"


def render_html(summary: dict, folder: Path, plot_name: str | None) -> str:
    """One file people can open anywhere: images are embedded as data URIs."""

    def img(name: str, alt: str) -> str:
        path = folder / name
        if not path.is_file():
            return ""
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in variant_rows(summary))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fcn-edge demo report</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%;margin:.5em 0}",
        ".skip{color:#8a5a00}</style></head><body>",
        "<h1>fcn-edge demo report</h1>",
        f"<p>fcn-edge {html.escape(str(summary.get('fcn_edge_version', '?')))}, "
        f"{html.escape(str(summary.get('created', '')))}. Produced by <code>fcn-edge demo</code> from data it generated itself.</p>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
    ]
    for s in summary.get("skipped") or []:
        parts.append(f"<p class='skip'><b>{html.escape(s['name'])}</b> not run: {html.escape(s['reason'])}</p>")
    if plot_name:
        parts.append(img(plot_name, "latency vs accuracy"))
    if summary.get("overlays"):
        parts.append("<h2>Overlays</h2><p>val images: input, ground truth, PyTorch FP32, ONNX INT8</p>")
        parts += [img(o, "overlay") for o in summary["overlays"]]
    parts.append("<h2>Summary JSON</h2><pre>" + html.escape(json.dumps(summary, indent=2)) + "</pre></body></html>")
    return "\n".join(parts)


def plot_latency_accuracy(summary: dict, path: Path) -> bool:
    """Scatter of p50 latency (x, log) against mean IU (y), one point per variant; False if no matplotlib."""
    points = [(v["name"], (v.get("latency_ms") or {}).get("p50"), (v.get("metrics") or {}).get("mean_iu"))
              for v in summary.get("variants", [])]
    points = [(n, x, y) for n, x, y in points if x and y is not None and not math.isnan(y)]
    if not points:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        return False
    fig, _ = latency_accuracy_figure(plt, points)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def latency_axis(latencies: list[float]) -> tuple[tuple[float, float], list[float]]:
    """x limits and labelled ticks for the latency axis (log scale) that hold every point.

    Limits are set, not left to autoscale, with a margin on each side, and the ticks are
    "nice" values (1, 1.5, 2, 3, 5, 7 x 10^k) inside them, so a point at 13.8 ms sits
    between labelled ticks instead of past the last label (the axis used to end at 10).
    """
    low, high = min(latencies) / 1.3, max(latencies) * 1.3
    ticks = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 1.5, 2, 3, 5, 7):
            value = mantissa * 10.0 ** exponent
            if low <= value <= high:
                ticks.append(round(value, 10))
    return (low, high), ticks


def latency_accuracy_figure(plt, points: list[tuple[str, float, float]]):
    """The scatter itself (figure, axes): one labelled point per variant, every point inside the axes."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for name, x, y in points:
        ax.scatter([x], [100 * y], s=40)
        ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    limits, ticks = latency_axis([x for _, x, _ in points])
    ax.set_xlim(*limits)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    values = [100 * y for _, _, y in points]
    middle = (max(values) + min(values)) / 2
    half = max(1.0, (max(values) - min(values)) * 0.6)  # at least a 2-point window: no exaggerated gaps
    ax.set_ylim(middle - half, middle + half)
    ax.set_xlabel("p50 inference latency per frame (ms, log scale)")
    ax.set_ylabel("mean IU (%)")
    ax.set_title("Accuracy vs latency per variant")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig, ax


def write_report(summary: dict, folder: str | Path) -> dict[str, Path]:
    """Write summary.json, report.md, report.html and latency_accuracy.png into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_name = "latency_accuracy.png" if plot_latency_accuracy(summary, folder / "latency_accuracy.png") else None
    paths = {
        "summary": atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2) + "\n"),
        "markdown": atomic_write_text(folder / "report.md", render_markdown(summary, plot_name)),
        "html": atomic_write_text(folder / "report.html", render_html(summary, folder, plot_name)),
    }
    if plot_name:
        paths["plot"] = folder / plot_name
    return paths
