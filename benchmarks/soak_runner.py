#!/usr/bin/env python3
"""Soak: the streaming runner on a looping video for 20,000 frames, watching for growth.

An unattended camera box runs for weeks; a leak of a few KB per frame ends it in days.
This runs ``fcn-edge run``'s pipeline (:class:`fcn_edge.stream.StreamRunner`: capture
thread, inference thread, main thread) on a short video file replayed with ``loop``
(every frame, no drops) through a tiny model on ONNX Runtime's CPU provider, and samples
every ``--every`` frames:

* resident memory (RSS, psutil) and the Python heap's live object count (gc);
* threads: Python's (``threading``) and the process's native ones (OpenCV's and ONNX
  Runtime's pools included);
* open file descriptors (``/proc/self/fd``).

Each series gets a least-squares slope per 1,000 frames over the samples after warm-up
(the first ``--warmup-frames``) and over the second half of that window; the verdict is
"flat" when the second half's fitted change is within three residual standard
deviations plus one unit (a thread, a descriptor, an object, 0.5 MiB of heap): a leak
keeps growing, a one-off allocator step does not.  After the runner stops, the thread
and descriptor counts are compared with those before it started.

Usage::

    nice python benchmarks/soak_runner.py [--frames 20000] [--every 500] [--sink none|video]

Writes benchmarks/results/soak_runner.json (with the machine description).  The model
is exported in a child process so torch never enters this one (the figures are those
of the on-device side: numpy, OpenCV, ONNX Runtime).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._machine import write_result  # noqa: E402

SERIES = ("rss_mib", "python_objects", "python_threads", "native_threads", "open_fds")


def export_tiny(path: Path, size: tuple[int, int], classes: int, width: float):
    """A random-weight tiny FCN-8s exported by ``fcn-edge export`` (frames in, labels + confidence out), in a child."""
    import subprocess

    from fcn_edge.artifacts.modelinfo import ModelInfo

    info = ModelInfo(arch="fcn8s", num_classes=classes, geometry="aligned", width=width, input_size=size)
    code = ("import sys; from fcn_edge.artifacts.modelinfo import ModelInfo; from tests.onnx_models import export_random_model; "
            "info = ModelInfo.from_json(sys.argv[2]); "
            "export_random_model(sys.argv[1], info, size=tuple(info.input_size), outputs=('labels', 'confidence'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code, str(path), info.to_json()], check=True, env=env)
    return info


def sample() -> dict:
    import psutil

    process = psutil.Process()
    return {"rss_mib": process.memory_info().rss / 2**20, "python_objects": len(gc.get_objects()),
            "python_threads": threading.active_count(), "native_threads": process.num_threads(),
            "open_fds": len(os.listdir("/proc/self/fd"))}


# What one step of each series is: a thread, a descriptor, an object; for RSS, the 0.5 MiB a
# glibc heap grows by at once (a one-off step, e.g. a bigger buffer, is not a leak).
UNITS = {"rss_mib": 0.5, "python_objects": 1.0, "python_threads": 1.0, "native_threads": 1.0, "open_fds": 1.0}


def _fit(frames: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    slope, intercept = np.polyfit(frames, values, 1)
    residuals = values - (slope * frames + intercept)
    return float(slope), float(residuals.std()), float(slope * (frames[-1] - frames[0]))


def analyse(frames: np.ndarray, values: np.ndarray, unit: float) -> dict:
    """Slopes per 1,000 frames (whole window after warm-up, and its second half) and the verdict.

    A leak keeps growing; an allocator step or a late pool start happens once.  So the
    verdict looks at the second half of the window: flat when its fitted change is
    within three residual standard deviations plus one unit of the series.
    """
    if len(frames) < 6:
        return {"slope_per_1000_frames": None, "flat": None}
    slope, noise, change = _fit(frames, values)
    half = frames >= frames[len(frames) // 2]
    tail_slope, tail_noise, tail_change = _fit(frames[half], values[half])
    allowed = 3.0 * tail_noise + unit
    return {"slope_per_1000_frames": round(slope * 1000, 6), "residual_std": round(noise, 4),
            "fitted_change_over_window": round(change, 4),
            "second_half_slope_per_1000_frames": round(tail_slope * 1000, 6),
            "second_half_fitted_change": round(tail_change, 4), "allowed_change": round(allowed, 4),
            "first": round(float(values[0]), 3), "last": round(float(values[-1]), 3),
            "min": round(float(values.min()), 3), "max": round(float(values.max()), 3),
            "flat": bool(abs(tail_change) <= allowed)}


def make_sink(kind: str, folder: Path):
    from fcn_edge.stream import parse_sink

    return [] if kind == "none" else [parse_sink(str(folder / "soak.avi"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20000, help="frames to process (default 20000)")
    parser.add_argument("--every", type=int, default=500, help="sample every N frames (default 500)")
    parser.add_argument("--warmup-frames", type=int, default=2000, help="samples before this are not fitted")
    parser.add_argument("--video-frames", type=int, default=120, help="frames in the looped video (default 120)")
    parser.add_argument("--video-size", default="120x160", help="video HxW (default 120x160)")
    parser.add_argument("--size", default="64x96", help="network input HxW (default 64x96)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    parser.add_argument("--sink", choices=("none", "video"), default="none",
                        help="video: also draw overlays and encode them into an .avi (MJPG) in a temporary folder")
    parser.add_argument("--name", default="soak_runner")
    parser.add_argument("--note", default="run with nice on a shared 2-core machine (other engineers' builds and "
                                          "tests running): absolute figures are noisy, the slopes are what matters")
    args = parser.parse_args(argv)

    import psutil  # noqa: F401 - fail now if missing, not after the export

    from fcn_edge.artifacts.modelinfo import parse_size
    from fcn_edge.runtime import open_runner
    from fcn_edge.stream import RunConfig, SourceOptions, StreamRunner
    from tests.onnx_models import write_video

    size, video_size = parse_size(args.size), parse_size(args.video_size)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fcn-edge-soak-") as tmp:
        folder = Path(tmp)
        info = export_tiny(folder / "tiny.onnx", size, 5, 1 / 16)
        video = write_video(folder / "loop.mp4", count=args.video_frames, size=video_size, fps=30.0)
        with open_runner(folder / "tiny.onnx", intra_op_threads=args.threads, allow_spinning=False) as runner:
            gc.collect()
            before = sample()
            started = time.perf_counter()

            def on_result(result) -> None:
                done = result.index + 1
                if done % args.every == 0:
                    rows.append({"frame": done, "seconds": round(time.perf_counter() - started, 2), **sample()})
                    if done % (args.every * 8) == 0:
                        print(f"{done} frames, RSS {rows[-1]['rss_mib']:.1f} MiB, threads "
                              f"{rows[-1]['native_threads']}, fds {rows[-1]['open_fds']}", flush=True)

            sinks = make_sink(args.sink, folder)
            stream = StreamRunner(runner, str(video), source_options=SourceOptions(loop=True),
                                  config=RunConfig(max_frames=args.frames, warmup=1), on_result=on_result, sinks=sinks)
            stats = stream.run()
            elapsed = time.perf_counter() - started
            time.sleep(1.0)  # threads end and sockets close asynchronously after stop()
            gc.collect()
            after = sample()
    frames = np.array([r["frame"] for r in rows], float)
    fitted = frames >= args.warmup_frames
    last = frames < frames.max() if len(frames) else fitted  # the final sample is taken while the run winds down
    analysis = {name: analyse(frames[fitted & last], np.array([r[name] for r in rows], float)[fitted & last],
                              UNITS[name]) for name in SERIES}
    payload = {
        "command": "python benchmarks/soak_runner.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": args.note,
        "model": {"arch": info.arch, "width": info.width, "classes": info.num_classes, "input_hw": list(size),
                  "outputs": ["labels", "confidence"], "weights": "random"},
        "backend": {"name": "onnxruntime", "providers": ["CPUExecutionProvider"], "intra_op_threads": args.threads},
        "source": {"kind": "video file, looped", "video_frames": args.video_frames, "frame_hw": list(video_size),
                   "policy": stream.policy, "sink": args.sink},
        "frames_processed": stats.frames_processed,
        "frames_dropped": stats.frames_dropped,
        "bad_frames": stats.frames_bad,
        "stop_reason": stats.stop_reason,
        "seconds": round(elapsed, 1),
        "throughput_fps": round(stats.throughput, 1),
        "latency_ms": {k: stats.to_dict()["latency_ms"].get(k) for k in ("inference", "end_to_end")},
        "sample_every_frames": args.every,
        "fit_from_frame": args.warmup_frames,
        "samples": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        "analysis": analysis,
        "before_run": before,
        "after_stop": after,
        "threads_back_to_baseline": after["python_threads"] == before["python_threads"],
        "fds_back_to_baseline": after["open_fds"] <= before["open_fds"],
        "flat": all(a.get("flat") for a in analysis.values()),
        "torch_imported": "torch" in sys.modules,
    }
    for name, a in analysis.items():
        print(f"{name}: slope {a['slope_per_1000_frames']} per 1000 frames (change {a['fitted_change_over_window']}); "
              f"second half {a['second_half_slope_per_1000_frames']} (change {a['second_half_fitted_change']}, "
              f"allowed {a['allowed_change']}): {'flat' if a['flat'] else 'GROWING'}")
    path = write_result(args.name, payload)
    print(f"wrote {path}")
    return 0


RESULTS_TITLE = "Soak: 20,000 frames through the streaming runner (`benchmarks/soak_runner.py`)"


def results_markdown(data: dict) -> list[str]:
    """The RESULTS.md block (benchmarks/update_results.py)."""
    model = data.get("model") or {}
    source = data.get("source") or {}
    lat = data.get("latency_ms") or {}
    head = (f"FCN-8s width {model.get('width')}, {model.get('classes')} classes, "
            f"{'x'.join(map(str, model.get('input_hw') or []))}, ONNX Runtime CPU "
            f"({(data.get('backend') or {}).get('intra_op_threads')} thread); a {source.get('video_frames')}-frame "
            f"{'x'.join(map(str, source.get('frame_hw') or []))} video looped, {source.get('policy')} policy, sink "
            f"{source.get('sink')}: {data.get('frames_processed')} frames in {data.get('seconds')} s "
            f"({data.get('throughput_fps')} FPS), {data.get('frames_dropped')} dropped, "
            f"{data.get('bad_frames')} bad; end-to-end p50/p99 "
            f"{(lat.get('end_to_end') or {}).get('p50', '-')} / {(lat.get('end_to_end') or {}).get('p99', '-')} ms. "
            f"Sampled every {data.get('sample_every_frames')} frames; slopes fitted from frame "
            f"{data.get('fit_from_frame')} (the last sample, taken as the run winds down, left out).")
    labels = {"rss_mib": "resident memory (MiB)", "python_objects": "Python objects (gc)",
              "python_threads": "Python threads", "native_threads": "native threads", "open_fds": "open files"}
    rows = ["| series | first | last | min | max | slope / 1,000 frames | second-half slope | second-half change "
            "| allowed (3 sd + 1 unit) | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    def num(value, digits: int) -> str:
        return "-" if value is None else f"{float(value) + 0.0:.{digits}f}"  # + 0.0: no "-0.0"

    for name, label in labels.items():
        a = (data.get("analysis") or {}).get(name) or {}
        d = 2 if name == "rss_mib" else 0
        rows.append(f"| {label} | {num(a.get('first'), d)} | {num(a.get('last'), d)} | {num(a.get('min'), d)} | "
                    f"{num(a.get('max'), d)} | {num(a.get('slope_per_1000_frames'), 4)} | "
                    f"{num(a.get('second_half_slope_per_1000_frames'), 4)} | "
                    f"{num(a.get('second_half_fitted_change'), 3)} | {num(a.get('allowed_change'), 3)} | "
                    f"{'flat' if a.get('flat') else 'GROWING'} |")
    before, after = data.get("before_run") or {}, data.get("after_stop") or {}
    tail = (f"After the runner stopped: Python threads {after.get('python_threads')} (before the run: "
            f"{before.get('python_threads')}), open files {after.get('open_fds')} (before: {before.get('open_fds')}); "
            f"torch imported: {data.get('torch_imported')}.")
    return [head, ""] + rows + ["", tail]


if __name__ == "__main__":
    sys.exit(main())
