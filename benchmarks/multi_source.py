#!/usr/bin/env python3
"""Several sources through one runner: total FPS and end-to-end latency at batch 1 vs batched.

On this machine's CPU with ONNX Runtime, a fixed model (FCN-8s aligned, width 1/4, 21
classes, 128x128, random weights: speed does not depend on them) exported twice:
with a static batch of 1 (sources run one after another) and with a dynamic batch
1..8 (one frame per source per call).  For 1, 2 and 4 video-file sources
(:class:`fcn_edge.stream.multi.MultiStreamRunner`, sink none) two runs each:

* ``throughput``: files read as fast as they decode, every frame processed: total
  frames per second over all sources, and the end-to-end latency (capture -> labels
  at frame size) that includes the wait in each source's 4-frame queue;
* ``camera``: files read at 30 FPS each with the latest-frame policy (``--realtime``,
  like cameras): processed FPS, drops, and end-to-end latency as a robot sees it
  (batch_wait = the time a frame waited for the other sources' frames).

``backend_batch_scaling`` first measures the model alone (``runner.infer``, no
pipeline): milliseconds per frame at batch 1, 2 and 4, which bounds what batching can
gain on this device.

Usage::

    python benchmarks/multi_source.py [--frames 150] [--threads 2] [--camera-seconds 4] [--repeats 2]

Writes benchmarks/results/multi_source.json (with the machine description).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._machine import write_result  # noqa: E402
from benchmarks._models import export_random_models, fcn8s_info  # noqa: E402


def export_models(folder: Path, width: float, size: tuple[int, int], classes: int) -> tuple[Path, Path, object]:
    """Static batch-1 and dynamic-batch (1..8) exports of the same weights, in a child process (no torch here)."""
    info = fcn8s_info(width, size, classes)
    h, w = size
    b1, dyn = folder / "b1.onnx", folder / "dynamic.onnx"
    export_random_models(info, [(b1, {"size": size, "outputs": ["labels"]}),
                                (dyn, {"size": size, "outputs": ["labels"], "dynamic": ["batch"], "batch": 4,
                                       "min_shape": [1, h, w], "max_shape": [8, h, w]})])
    return b1, dyn, info


def one_run(model: Path, videos: list[Path], threads: int, camera: bool, seconds: float) -> dict:
    from fcn_edge.runtime import open_runner
    from fcn_edge.stream import RunConfig, SourceOptions
    from fcn_edge.stream.multi import BatchConfig, MultiStreamRunner

    options = SourceOptions(fps=30.0, loop=True) if camera else SourceOptions()
    config = RunConfig(realtime=camera, warmup=2, max_frames=int(30 * seconds) if camera else None)
    with open_runner(model, intra_op_threads=threads, allow_spinning=False) as runner:
        stream = MultiStreamRunner(runner, [str(v) for v in videos], source_options=options, config=config,
                                   batch=BatchConfig(timeout_ms=10.0))
        stats = stream.run()
    total = stats.total
    data = stats.to_dict()
    lat = data["total"]["latency_ms"]
    return {
        "sources": len(videos),
        "mode": stats.plan.mode,
        "frames_processed": total.frames_processed,
        "frames_captured": total.frames_captured,
        "frames_dropped": total.frames_dropped,
        "elapsed_s": round(total.elapsed, 3),
        "total_fps": round(total.throughput, 2),
        "per_source_fps": [round(lane.throughput, 2) for lane in stats.lanes],
        "mean_batch": round(stats.mean_batch, 3),
        "inference_calls": stats.batches,
        "e2e_ms": {k: lat["end_to_end"].get(k) for k in ("p50", "p95", "mean")},
        "inference_ms": {k: lat["inference"].get(k) for k in ("p50", "p95")},
        "batch_wait_ms": {k: lat["batch_wait"].get(k) for k in ("p50", "p95")},
    }


def backend_scaling(model: Path, threads: int, size: tuple[int, int], seconds: float = 3.0) -> list[dict]:
    """ms per frame of the model alone at batch 1, 2, 4 (median of interleaved rounds)."""
    from fcn_edge.runtime import open_runner

    rng = np.random.default_rng(0)
    batches = {n: rng.integers(0, 256, (n, *size, 3), dtype=np.uint8) for n in (1, 2, 4)}
    per_frame: dict[int, list[float]] = {n: [] for n in batches}
    with open_runner(model, intra_op_threads=threads, allow_spinning=False) as runner:
        for batch in batches.values():
            runner.infer(batch)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for n, batch in batches.items():
                t0 = time.perf_counter()
                runner.infer(batch)
                per_frame[n].append((time.perf_counter() - t0) * 1000.0 / n)
    base = float(np.median(per_frame[1]))
    return [{"batch": n, "ms_per_frame": round(float(np.median(v)), 3),
             "speedup_per_frame_vs_batch1": round(base / float(np.median(v)), 3)} for n, v in per_frame.items()]


def median_run(runs: list[dict]) -> dict:
    """The run with the median total FPS (its latency figures belong to it)."""
    ordered = sorted(runs, key=lambda r: r["total_fps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["total_fps_all_repeats"] = [r["total_fps"] for r in runs]
    return chosen


RESULTS_TITLE = "Several sources through one runner (`fcn-edge run --source A --source B ...`)"


def results_markdown(data: dict) -> list[str]:
    """The RESULTS.md block (benchmarks/update_results.py)."""
    def ms(d: dict, digits: int = 0) -> str:
        return f"{d.get('p50', 0):.{digits}f} / {d.get('p95', 0):.{digits}f}" if d else "-"

    model = data.get("model") or {}
    lines = [f"FCN-8s width {model.get('width')}, {model.get('classes')} classes, "
             f"{'x'.join(map(str, model.get('input_hw') or []))}, ONNX Runtime CPU "
             f"({(data.get('backend') or {}).get('intra_op_threads')} threads); batch 1 = static-batch-1 export "
             "(sources one after another), batched = dynamic batch 1..8 (one frame per source per call); "
             "batch timeout 10 ms; median of the repeats.", ""]
    scaling = data.get("backend_batch_scaling") or []
    if scaling:
        lines += ["Model alone, ms per frame: " + ", ".join(f"batch {r['batch']}: {r['ms_per_frame']:.1f}"
                                                           for r in scaling) + ".", ""]
    for kind, title in (("throughput", "Throughput (files decoded as fast as possible, every frame; latency "
                                       "includes each source's 4-frame queue)"),
                        ("camera", "Camera-like (each source read at 30 FPS, latest-frame policy)")):
        rows = {}
        for r in data.get(kind) or []:
            rows.setdefault(r["sources"], {})[r["model"]] = r
        table_rows = []
        for n, pair in sorted(rows.items()):
            a, b = pair.get("batch1") or {}, pair.get("batched") or {}
            table_rows.append(f"| {n} | {a.get('total_fps', '-')} | {a.get('frames_dropped', '-')} | "
                              f"{ms(a.get('e2e_ms') or {})} | {b.get('total_fps', '-')} | {b.get('mean_batch', '-')} | "
                              f"{b.get('frames_dropped', '-')} | {ms(b.get('e2e_ms') or {})} | "
                              f"{ms(b.get('batch_wait_ms') or {}, 1)} |")
        lines += [f"{title}:", "",
                  "| sources | batch 1: total FPS | dropped | e2e p50 / p95 ms | batched: total FPS | mean batch | "
                  "dropped | e2e p50 / p95 ms | batch_wait p50 / p95 ms |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *table_rows, ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per source video (default 150)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--camera-seconds", type=float, default=4.0, help="length of each camera-like run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the median is kept")
    parser.add_argument("--sources", default="1,2,4")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--video-size", default="240x320")
    parser.add_argument("--name", default="multi_source")
    args = parser.parse_args(argv)

    from fcn_edge.artifacts.modelinfo import parse_size
    from tests.onnx_models import write_video

    size, video_size = parse_size(args.size), parse_size(args.video_size)
    counts = [int(c) for c in args.sources.split(",")]
    results = {"throughput": [], "camera": []}
    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-") as tmp:
        folder = Path(tmp)
        b1, dynamic, info = export_models(folder, args.width, size, 21)
        videos = [write_video(folder / f"cam{i}.mp4", count=args.frames, size=video_size, fps=30.0)
                  for i in range(max(counts))]
        scaling = backend_scaling(dynamic, args.threads, size)
        print("backend alone, ms per frame: " + ", ".join(f"batch {r['batch']}: {r['ms_per_frame']}" for r in scaling),
              flush=True)
        for kind in ("throughput", "camera"):
            for n in counts:
                for label, model in (("batch1", b1), ("batched", dynamic)):
                    runs = [one_run(model, videos[:n], args.threads, kind == "camera", args.camera_seconds)
                            for _ in range(max(1, args.repeats))]
                    row = {"model": label, **median_run(runs)}
                    results[kind].append(row)
                    print(f"{kind:10s} {n} source(s) {label:8s}: {row['total_fps']:6.1f} FPS total "
                          f"(mean batch {row['mean_batch']:.2f}, dropped {row['frames_dropped']}), e2e p50 "
                          f"{row['e2e_ms']['p50']} ms p95 {row['e2e_ms']['p95']} ms", flush=True)
    payload = {
        "command": "python benchmarks/multi_source.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "shared 2-core machine (other sessions may run beside it; the load average at the end is in the machine block): re-run before quoting small differences",
        "model": {"arch": info.arch, "width": info.width, "classes": info.num_classes, "input_hw": list(size),
                  "io": "frames", "outputs": ["labels"], "exports": {"batch1": "static batch 1",
                                                                    "batched": "dynamic batch 1..8"},
                  "weights": "random (speed does not depend on them)"},
        "backend": {"name": "onnxruntime", "providers": ["CPUExecutionProvider"], "intra_op_threads": args.threads},
        "sources": {"kind": "video file (mp4v)", "frames_each": args.frames, "frame_hw": list(video_size),
                    "sink": "none", "batch_timeout_ms": 10.0,
                    "camera_runs": f"--realtime at 30 FPS per source, latest-frame policy, {args.camera_seconds} s"},
        "backend_batch_scaling": scaling,
        "throughput": results["throughput"],
        "camera": results["camera"],
    }
    path = write_result(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
