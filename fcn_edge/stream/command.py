"""fcn-edge run MODEL --source SRC [--source SRC2 ...] [--sink SINK ...]: live segmentation of cameras, streams or files.

Examples:

    fcn-edge run model.fp16.engine --source csi://0 --width 1280 --height 720 --sink display
    fcn-edge run model.onnx --source rtsp://cam/stream --sink none --stats-interval 5
    fcn-edge run model.onnx --source video.mp4 --sink out.mp4 --stats-json stats.json
    fcn-edge run model.b4.onnx --source csi://0 --source csi://1 --sink 'cam{i}.mp4' --batch-timeout-ms 10
    fcn-edge run triton://gpu-server:8000/fcn8s --source 0 --sink display
    fcn-edge run model.onnx --source bag:recording/ --topic /camera/image_raw --sink out.mcap
    fcn-edge run model.onnx --source drive.mcap --realtime --sink foxglove

Several --source options share one model: their frames are batched into one inference
call (models exported with a dynamic batch or --batch N; a batch-1 model runs them one
after another), each source keeping its own frame policy, reconnects, sinks and
statistics.  A batch goes when every running source has a frame or after
--batch-timeout-ms; a source that ends or is lost does not stop the others.  With
several sources a sink name may contain {i} (source number from 0) or {name} (the
source's file/device name): out_{i}.mp4 writes one video per source; display opens a
window per source; an image folder is shared (files are prefixed src1_, src2_, ...).

SIGINT (Ctrl-C) or SIGTERM stops cleanly: the video is finalised and playable, the
stats are printed and written; a second Ctrl-C aborts.  Exit status 0 for a run that
ended (source finished, signal, --max-frames, window closed); non-zero when the model or
source cannot be opened or a live source is lost beyond --reconnect attempts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from typing import Any

from fcn_edge.runtime.cuda_memory import CUDA_CHOICES

log = logging.getLogger("fcn_edge.run")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _attempts(text: str) -> int | None:
    if text.lower() in ("inf", "infinite", "forever", "-1"):
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, or 'inf'")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="segment a camera, stream, video or images in real time",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model: .onnx (ONNX Runtime), .engine/.plan (TensorRT), .pt (PyTorch), "
                                 "triton://HOST:PORT/NAME (a Triton server; triton+grpc:// for gRPC)")
    p.add_argument("--source", "-s", required=True, action="append",
                   help="0 | /dev/videoN | v4l2:///dev/videoN | csi://N | rtsp://... | http(s)://... | "
                        "gst:PIPELINE | video file | image | folder | glob | bag:PATH | x.mcap; repeat for several "
                        "sources")
    p.add_argument("--sink", "-o", action="append", default=None,
                   help="display | none | out.mp4 (.avi .mkv .mov .webm) | FOLDER/ | labels:FOLDER | out.mcap | "
                        "out.db3 | bag:FOLDER | foxglove[://HOST:PORT]; repeatable (default: none)")
    g = p.add_argument_group("model")
    g.add_argument("--backend", help="force a backend instead of choosing by suffix")
    g.add_argument("--size", help="network input HxW for models that accept several sizes")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (PyTorch device; GPU index for ONNX Runtime/TensorRT)")
    g.add_argument("--provider", help="ONNX Runtime execution providers, e.g. cuda or tensorrt,cuda (default cpu)")
    g.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads / PyTorch threads")
    g.add_argument("--inter-op-threads", type=int, help="ONNX Runtime inter-op threads")
    g.add_argument("--cuda", choices=CUDA_CHOICES, default="auto",
                   help="CUDA for TensorRT engines (default auto: cuda-python if installed, else pycuda, else libcudart through ctypes)")
    g.add_argument("--no-sidecar-check", action="store_true", help="skip the engine sidecar's TensorRT/GPU check")
    g.add_argument("--lean-runtime", metavar="LIB", help="TensorRT lean runtime library (libnvinfer_lean.so.N) for "
                   "engines built with --exclude-lean-runtime")
    g.add_argument("--warmup", type=int, default=1, help="warm-up inferences before the stream starts (default 1)")
    g.add_argument("--max-batch", type=int,
                   help="several sources: most frames per inference call (default: one per source, within the model's "
                        "batch)")
    g.add_argument("--batch-timeout-ms", type=float, default=10.0,
                   help="several sources: longest a batch waits for the other sources' frames (default 10)")
    g = p.add_argument_group("source")
    g.add_argument("--width", type=int, help="camera width request (or output width with --resize-input)")
    g.add_argument("--height", type=int, help="camera height request")
    g.add_argument("--fps", type=_positive_float, help="camera frame-rate request; pace for --realtime files")
    g.add_argument("--resize-input", action="store_true", help="resize every source frame to --width x --height")
    g.add_argument("--flip", choices=("h", "v", "both"), help="flip frames horizontally, vertically or both")
    g.add_argument("--rotate", type=int, choices=(0, 90, 180, 270), default=0, help="rotate frames clockwise")
    g.add_argument("--loop", action="store_true", help="replay files and image sets forever")
    policy = g.add_mutually_exclusive_group()
    policy.add_argument("--every-frame", action="store_true",
                        help="process every frame even from a live source (may lag)")
    policy.add_argument("--realtime", action="store_true",
                        help="read files at their frame rate and keep only the latest frame, like a camera")
    g.add_argument("--live", action="store_true",
                   help="treat the sources as live even if they end (a gst: pipeline without a camera or network "
                        "element, a file): keep the newest frame and reopen them when they end")
    g.add_argument("--rtsp-backend", choices=("auto", "gstreamer", "ffmpeg"), default="auto",
                   help="how rtsp:// streams are read: GStreamer (latency=0, newest frame only) where OpenCV has it, "
                        "else FFmpeg (default auto)")
    g.add_argument("--topic", help="bags: the image topic to read (default: the bag's only image topic)")
    g.add_argument("--stall-timeout", type=_positive_float, default=5.0,
                   help="seconds without a frame before a live source counts as stalled (default 5)")
    g.add_argument("--reconnect", type=_attempts, default=10,
                   help="reconnect attempts per loss of a live source, or 'inf' (default 10)")
    g.add_argument("--reconnect-delay", type=_positive_float, default=0.5,
                   help="first reconnect delay in seconds, doubled each attempt up to 10 s (default 0.5)")
    g = p.add_argument_group("output")
    g.add_argument("--view", choices=("overlay", "mask", "side-by-side", "frame"), default="overlay",
                   help="what windows, videos and image folders show (default overlay)")
    g.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0-1 (default 0.5)")
    g.add_argument("--legend", action="store_true", help="draw the names of the classes in view")
    g.add_argument("--no-text", action="store_true", help="do not draw FPS/latency")
    g.add_argument("--codec", help="FOURCC for video sinks (default by extension)")
    g.add_argument("--bag-storage", choices=("mcap", "sqlite3"),
                   help="bag:FOLDER sinks: rosbag2 storage (default mcap)")
    g.add_argument("--bag-topics", metavar="LIST",
                   help="bag sinks: topics beside /fcn_edge/class_mask, comma-separated from overlay, confidence, "
                        "class_info, image (or all)")
    g.add_argument("--output-fps", type=_positive_float, help="frame rate written to video sinks (default: the source's)")
    g = p.add_argument_group("run")
    g.add_argument("--max-frames", type=int, help="stop after this many frames (per source with several sources)")
    g.add_argument("--stats-interval", type=_positive_float, help="print a stats line every N seconds")
    g.add_argument("--stats-json", help="write the run's statistics to this JSON file")
    p.set_defaults(func=main)


def backend_options(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Translate the command's flags into the chosen backend's options."""
    device = args.device or "cpu"
    gpu_index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
    options: dict[str, Any] = {}
    if backend == "onnxruntime":
        providers = args.provider or ("cuda" if device.startswith("cuda") else None)
        options.update(providers=providers, device_id=gpu_index, intra_op_threads=args.threads,
                       inter_op_threads=args.inter_op_threads, allow_spinning=False)
    elif backend == "torch":
        options.update(device=device, threads=args.threads)
    elif backend == "tensorrt":
        options.update(cuda=args.cuda, device_id=gpu_index, check_sidecar=not args.no_sidecar_check,
                       lean_runtime=getattr(args, "lean_runtime", None))  # serve has no --lean-runtime
    return options


def source_sinks(texts: list[str], specs: list, *, fps: float | None = None, codec: str | None = None,
                 **sink_options: Any) -> list[list]:
    """One sink list per source: {i}/{name} templates expand per source; with several sources a video file
    needs one of them, a window opens per source and other sinks are created once per source."""
    import re
    from pathlib import Path

    from fcn_edge.stream import parse_sink
    from fcn_edge.stream.bagsink import BagSink
    from fcn_edge.stream.foxglove import FoxgloveSink
    from fcn_edge.stream.sinks import DisplaySink, NullSink, SinkError, VideoFileSink

    lists: list[list] = [[] for _ in specs]
    names = [re.sub(r"[^A-Za-z0-9._-]+", "_", Path(spec.target.rstrip("/")).stem or spec.kind).strip("_") or f"src{i}"
             for i, spec in enumerate(specs)]
    for text in texts:
        templated = "{i}" in text or "{name}" in text
        if templated:
            for i, _ in enumerate(specs):
                lists[i].append(parse_sink(text.replace("{i}", str(i)).replace("{name}", names[i]), fps=fps,
                                           codec=codec, **sink_options))
            continue
        probe = parse_sink(text, fps=fps, codec=codec, **sink_options)
        if len(specs) == 1:
            lists[0].append(probe)
            continue
        if isinstance(probe, (VideoFileSink, BagSink)):
            raise SinkError(f"--sink {text}: with several sources a video or bag sink needs {{i}} or {{name}} in its name "
                            f"(e.g. {Path(text).stem}_{{i}}{Path(text).suffix}) so each source gets its own file")
        for i, _ in enumerate(specs):
            if isinstance(probe, DisplaySink):
                lists[i].append(DisplaySink(title=f"fcn-edge [{i}] {specs[i].display_name}"))
            elif isinstance(probe, NullSink):
                lists[i].append(NullSink())
            elif isinstance(probe, FoxgloveSink):  # one server, one channel set per source
                lists[i].append(probe.for_source(i, specs[i].display_name))
            else:
                lists[i].append(parse_sink(text, fps=fps, codec=codec, **sink_options))
    return lists


def main(args: argparse.Namespace) -> int:
    from fcn_edge.errors import FcnEdgeError, SourceError
    from fcn_edge.fileio import atomic_write_text, check_writable_destination
    from fcn_edge.artifacts.modelinfo import parse_size
    from fcn_edge.runtime import open_runner, resolve_backend
    from fcn_edge.stream import ReconnectPolicy, RunConfig, SourceOptions, StreamRunner, ViewOptions, parse_source

    try:
        size = parse_size(args.size) if args.size else None
    except ValueError as exc:
        raise FcnEdgeError(str(exc)) from None
    if args.max_frames is not None and args.max_frames < 1:
        raise FcnEdgeError("--max-frames must be at least 1")
    if args.stats_json:
        check_writable_destination(args.stats_json)
    if args.max_batch is not None and args.max_batch < 1:
        raise FcnEdgeError("--max-batch must be at least 1")
    specs = [parse_source(text) for text in args.source]
    if args.live:
        specs = [dataclasses.replace(spec, forced_live=True) for spec in specs]
    spec = specs[0]
    source_options = SourceOptions(width=args.width, height=args.height, fps=args.fps, flip=args.flip,
                                   rotate=args.rotate, loop=args.loop, resize=args.resize_input,
                                   read_timeout=args.stall_timeout, rtsp_backend=args.rtsp_backend,
                                   topic=args.topic)  # realtime: from RunConfig (StreamRunner passes it on)
    sink_lists = source_sinks(args.sink or ["none"], specs, fps=args.output_fps, codec=args.codec,
                              bag_storage=args.bag_storage, bag_topics=args.bag_topics)
    config = RunConfig(
        size=size, every_frame=True if args.every_frame else None, realtime=args.realtime,
        max_frames=args.max_frames, stats_interval=args.stats_interval, warmup=max(0, args.warmup),
        reconnect=ReconnectPolicy(max_attempts=args.reconnect, initial_delay=args.reconnect_delay,
                                  stall_timeout=args.stall_timeout),
        view=ViewOptions(mode=args.view, alpha=args.alpha, legend=args.legend, text=not args.no_text))

    backend = resolve_backend(args.model, args.backend).name
    runner = open_runner(args.model, backend=args.backend, **backend_options(backend, args))
    if len(specs) == 1:
        stream = StreamRunner(runner, spec, source_options=source_options, config=config, sinks=sink_lists[0])
    else:
        from fcn_edge.stream.multi import BatchConfig, MultiStreamRunner

        try:
            stream = MultiStreamRunner(runner, specs, source_options=source_options, config=config,
                                       batch=BatchConfig(max_batch=args.max_batch, timeout_ms=args.batch_timeout_ms),
                                       sinks=sink_lists)
        except BaseException:
            runner.close()
            raise

    def on_signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stream.stopping:  # second signal: give up on a clean stop
            raise KeyboardInterrupt
        log.warning("%s received: stopping (finishing outputs; press Ctrl-C again to abort)", name)
        stream.stop("signal")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    failure: FcnEdgeError | None = None
    try:
        stream.run()
    except SourceError as exc:  # a live source lost for good: outputs are finalised, stats still written
        failure = exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runner.close()
        stats = stream.stats
        started = (stats.total if len(specs) > 1 else stats).started_at is not None
        if args.stats_json and started:
            atomic_write_text(args.stats_json, json.dumps(stats.to_dict(), indent=2) + "\n")
    if started:
        for line in stats.summary_lines():
            print(line, file=sys.stdout)
        sys.stdout.flush()
    if failure is not None:
        raise failure
    return 0
