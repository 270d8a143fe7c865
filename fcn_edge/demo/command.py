"""``fcn-edge demo``: the whole pipeline on built-in synthetic data, with a report."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline on synthetic data and write a report",
        description="Generate data, train a tiny FCN-8s, evaluate, export ONNX, calibrate INT8, build TensorRT "
                    "engines where possible, stream a video through every backend and write a report. "
                    "Re-running reuses what is already built.")
    parser.add_argument("--workdir", default="demo_out", help="where everything goes (default: ./demo_out)")
    parser.add_argument("--fresh", action="store_true", help="start over: delete the previous demo's files first")
    parser.add_argument("--device", default="cpu", help="PyTorch device for training and the .pt backend (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and ONNX Runtime")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (default: the demo preset's)")
    parser.add_argument("--video-frames", type=int, default=150, help="frames of the synthetic video (default 150)")
    parser.add_argument("--no-engines", action="store_true", help="do not try to build TensorRT engines")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fcn_edge.demo.pipeline import DemoConfig, run_demo
    from fcn_edge.errors import FcnEdgeError

    if args.video_frames < 1:
        raise FcnEdgeError("--video-frames must be at least 1")
    if args.iterations is not None and args.iterations < 1:
        raise FcnEdgeError("--iterations must be at least 1")
    run_demo(DemoConfig(workdir=Path(args.workdir), fresh=args.fresh, device=args.device, threads=args.threads,
                        iterations=args.iterations, video_frames=args.video_frames, engines=not args.no_engines))
    return 0
