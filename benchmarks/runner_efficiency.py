#!/usr/bin/env python3
"""How much of the backend's speed the streaming runner keeps, and whether its memory stays flat.

Measures, on this machine's CPU with ONNX Runtime and a fixed model (FCN-8s aligned,
width 1/4, 21 classes, 128x128 input, random weights: the speed does not depend on
them):

* ``backend_fps``: ``runner.infer`` alone on the already decoded and resized frames of
  the test video, one frame per call (the backend's own throughput);
* ``runner_fps``: ``fcn-edge run``'s pipeline (:class:`StreamRunner`) on the same
  video file, file source (every frame), no sink: decode + resize + inference +
  labels mapped back to the frame size, with the stages on their own threads;
* ``efficiency = runner_fps / backend_fps`` (goal >= 0.90): the median over
  ``--repeats`` back-to-back pairs (backend run, then runner run), so each ratio
  compares two measurements taken under the same background load;
* resident memory (RSS) sampled every 250 frames over a 5,000-frame run (the video
  looped): growth after warm-up and the fitted slope per 1,000 frames.

Usage::

    python benchmarks/runner_efficiency.py [--frames 600] [--memory-frames 5000] [--threads 2]

Writes benchmarks/results/runner_efficiency.json (with the machine description).
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


def export_model(path: Path, width: float, size: tuple[int, int], classes: int):
    """The fixed benchmark model (frames in, labels out), exported without torch in this process."""
    info = fcn8s_info(width, size, classes)
    export_random_models(info, [(path, {"size": size, "outputs": ["labels"]})])
    return path, info


def decoded_frames(video: Path, size: tuple[int, int]) -> list[np.ndarray]:
    from fcn_edge.runtime.resize import resize_frame
    from fcn_edge.stream.sources import open_source

    source = open_source(str(video))
    frames = []
    while (frame := source.read()) is not None:
        frames.append(np.ascontiguousarray(resize_frame(frame.image, size))[None])
    source.close()
    return frames


def backend_fps(runner, frames: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for batch in frames:
        runner.infer(batch)
    return len(frames) / (time.perf_counter() - start)


def runner_fps(runner, video: Path) -> tuple[float, dict]:
    from fcn_edge.stream import RunConfig, StreamRunner

    stream = StreamRunner(runner, str(video), config=RunConfig(warmup=1))
    stats = stream.run()
    return stats.throughput, stats.to_dict()


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def memory_run(runner, video: Path, frames: int, every: int = 250) -> dict:
    from fcn_edge.stream import RunConfig, SourceOptions, StreamRunner

    samples: list[tuple[int, float]] = [(0, rss_mib())]

    def sample(result) -> None:
        processed = result.index + 1
        if processed % every == 0:
            samples.append((processed, rss_mib()))

    stream = StreamRunner(runner, str(video), source_options=SourceOptions(loop=True),
                          config=RunConfig(max_frames=frames, warmup=1), on_result=sample)
    stats = stream.run()
    x = np.array([s[0] for s in samples], float)
    y = np.array([s[1] for s in samples], float)
    warm = x >= min(1000, frames // 5)
    slope = float(np.polyfit(x[warm], y[warm], 1)[0] * 1000) if warm.sum() >= 3 else float("nan")
    after_warmup = y[warm]
    return {
        "frames": stats.frames_processed,
        "samples": [{"frame": int(f), "rss_mib": round(m, 2)} for f, m in samples],
        "rss_start_mib": round(float(y[0]), 2),
        "rss_after_warmup_mib": round(float(after_warmup[0]), 2),
        "rss_end_mib": round(float(y[-1]), 2),
        "rss_max_mib": round(float(y.max()), 2),
        "growth_after_warmup_mib": round(float(y[-1] - after_warmup[0]), 2),
        "slope_mib_per_1000_frames": round(slope, 3),
        "throughput_fps": round(stats.throughput, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200, help="frames in the test video (default 200)")
    parser.add_argument("--memory-frames", type=int, default=5000, help="frames for the memory run (default 5000)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="back-to-back backend/runner pairs (default 7)")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", default="128x128", help="network input HxW (default 128x128)")
    parser.add_argument("--video-size", default="240x320", help="source video HxW (default 240x320)")
    parser.add_argument("--name", default="runner_efficiency")
    args = parser.parse_args(argv)

    from fcn_edge.artifacts.modelinfo import parse_size
    from fcn_edge.runtime import open_runner
    from tests.onnx_models import write_video

    size = parse_size(args.size)
    video_size = parse_size(args.video_size)
    with tempfile.TemporaryDirectory(prefix="fcn-edge-bench-") as tmp:
        tmp_path = Path(tmp)
        model, info = export_model(tmp_path / "bench.onnx", args.width, size, 21)
        video = write_video(tmp_path / "bench.mp4", count=args.frames, size=video_size, fps=30.0)
        frames = decoded_frames(video, size)
        options = dict(intra_op_threads=args.threads, allow_spinning=False)  # what fcn-edge run uses
        with open_runner(model, **options) as runner:
            runner.warmup(size, iterations=3)
            backend, pipeline, last_stats = [], [], {}
            for _ in range(max(1, args.repeats)):
                backend.append(backend_fps(runner, frames))
                fps, last_stats = runner_fps(runner, video)
                pipeline.append(fps)
            ratios = [p / b for p, b in zip(pipeline, backend)]
            efficiency = float(np.median(ratios))
            median_backend, median_runner = float(np.median(backend)), float(np.median(pipeline))
            print(f"backend {median_backend:.1f} FPS, runner {median_runner:.1f} FPS (medians); efficiency "
                  f"{efficiency:.3f} (median of pair ratios {[round(r, 3) for r in ratios]})", flush=True)
            memory = memory_run(runner, video, args.memory_frames)
            print(f"memory over {memory['frames']} frames: {memory['rss_after_warmup_mib']} -> {memory['rss_end_mib']} MiB "
                  f"(slope {memory['slope_mib_per_1000_frames']} MiB / 1000 frames)", flush=True)
            describe = runner.describe()
    payload = {
        "command": "python benchmarks/runner_efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "shared 2-core machine (other sessions may run beside it): each ratio pairs a backend and a runner run taken back to back; the load average is in the machine block",
        "model": {"arch": info.arch, "width": info.width, "classes": info.num_classes, "input_hw": list(size),
                  "io": "frames", "outputs": ["labels"], "weights": "random (speed does not depend on them)"},
        "backend": {"name": "onnxruntime", "providers": describe.get("providers"), "intra_op_threads": args.threads,
                    "allow_spinning": False},
        "source": {"kind": "video file (mp4v)", "frames": args.frames, "frame_hw": list(video_size), "sink": "none"},
        "backend_fps": round(median_backend, 2),
        "runner_fps": round(median_runner, 2),
        "efficiency": round(efficiency, 4),
        "efficiency_of_medians": round(median_runner / median_backend, 4),
        "goal_efficiency": 0.90,
        "pairs": [{"backend_fps": round(b, 2), "runner_fps": round(p, 2), "ratio": round(p / b, 4)}
                  for b, p in zip(backend, pipeline)],
        "runner_latency_ms": last_stats.get("latency_ms"),
        "memory": memory,
        "torch_imported": "torch" in sys.modules,
    }
    path = write_result(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
