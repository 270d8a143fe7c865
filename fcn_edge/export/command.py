"""``fcn-edge export``: checkpoint -> ONNX with pre/post-processing in the graph; ``--lint-only`` for any ONNX."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("fcn_edge.export")

EPILOG = """examples:
  fcn-edge export runs/voc/best.pt                        # -> export/best.onnx, 512x512 (or the checkpoint's size)
  fcn-edge export best.pt -o export/cam.onnx --size 720x1280 --outputs labels,confidence
  fcn-edge export best.pt --dynamic batch,height,width --min-shape 1x256x256 --max-shape 8x1024x1024
  fcn-edge export best.pt --io raw --outputs logits        # float NCHW in, float logits out
  fcn-edge export --lint-only some_model.onnx --target trt8,trt10
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX (pre/post-processing inside), verified against PyTorch",
        description="Export a checkpoint to ONNX with the pre- and post-processing in the graph: uint8 camera "
                    "frames in, uint8 class maps out. The ONNX is checked (onnx.checker, then ONNX Runtime vs "
                    "PyTorch) before it replaces OUT, carries its classes/palette/preprocessing as metadata, and "
                    "is linted for TensorRT.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT", help="fcn-edge checkpoint or bare FCN state_dict (.pt/.pth)")
    p.add_argument("-o", "--output", metavar="OUT.onnx", help="output file (default: export/<checkpoint name>.onnx)")
    shape = p.add_argument_group("shapes")
    shape.add_argument("--size", metavar="HxW", help="network input size (default: the checkpoint's, else 512x512)")
    shape.add_argument("--batch", type=int, default=1, metavar="N", help="batch size; the optimal one with --dynamic batch (default 1)")
    shape.add_argument("--dynamic", metavar="AXES", help="dynamic axes: any of batch,height,width (or 'all')")
    shape.add_argument("--min-shape", metavar="NxHxW", help="smallest shape of the dynamic axes (default: batch 1, half the size)")
    shape.add_argument("--max-shape", metavar="NxHxW", help="largest shape of the dynamic axes (default: batch max(4,N), twice the size)")
    graph = p.add_argument_group("graph")
    graph.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17: TensorRT 8.5/8.6 parse <= 17)")
    graph.add_argument("--geometry", choices=("aligned", "paper"), default="aligned",
                       help="aligned (deployment, default) or paper (reference 100-px pad and crops)")
    graph.add_argument("--io", choices=("frames", "raw"), default="frames",
                       help="frames: uint8 [N,H,W,3] in, normalised in the graph (default); raw: float32 [N,3,H,W] normalised")
    graph.add_argument("--outputs", default="labels", metavar="LIST",
                       help="labels[,confidence][,logits] (default labels)")
    graph.add_argument("--confidence", choices=("uint8", "float16"), default="uint8",
                       help="confidence dtype: uint8 = round(p*255) (default), float16 = p")
    graph.add_argument("--input-order", choices=("BGR", "RGB"), type=str.upper,
                       help="channel order of the camera frames (default: the checkpoint's, normally BGR)")
    graph.add_argument("--fp16-weights", action="store_true",
                       help="store weights as float16 (half the file; Casts to float32 in the graph)")
    graph.add_argument("--keep-debug-metadata", action="store_true",
                       help="keep torch.onnx's per-node debug metadata (stack traces with this machine's source paths, "
                            "FX dumps); stripped by default")
    check = p.add_argument_group("checks")
    check.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    check.add_argument("--verify-frames", type=int, default=3, metavar="N", help="synthetic frames to check (default 3)")
    check.add_argument("--target", default="trt8,trt10", metavar="LIST",
                       help="TensorRT families to lint for: trt8, trt10, trt11 or all (default trt8,trt10)")
    check.add_argument("--lint-only", metavar="FILE.onnx", help="only lint FILE.onnx for TensorRT (any ONNX) and exit")
    check.add_argument("--json", metavar="FILE", help="also write the export report (or lint results) as JSON")
    p.set_defaults(func=main)


def _targets(text: str) -> tuple[str, ...]:
    from fcn_edge.export.config import ExportConfigError
    from fcn_edge.export.trt_ops import TARGETS

    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if items == ["all"]:
        return tuple(TARGETS)
    bad = [t for t in items if t not in TARGETS]
    if bad or not items:
        raise ExportConfigError(f"--target takes {', '.join(TARGETS)} or all (comma-separated), got {text!r}")
    return tuple(dict.fromkeys(items))


def _config(args):
    from fcn_edge.export.config import (
        ExportConfig, parse_dynamic, parse_outputs, parse_shape3, parse_size_option,
    )

    return ExportConfig(
        size=parse_size_option(args.size) if args.size else None,
        batch=args.batch,
        dynamic=parse_dynamic(args.dynamic) if args.dynamic else (),
        min_shape=parse_shape3(args.min_shape, "--min-shape") if args.min_shape else None,
        max_shape=parse_shape3(args.max_shape, "--max-shape") if args.max_shape else None,
        opset=args.opset, geometry=args.geometry, io=args.io, outputs=parse_outputs(args.outputs),
        confidence_dtype=args.confidence, input_channel_order=args.input_order, fp16_weights=args.fp16_weights,
        keep_debug_metadata=args.keep_debug_metadata,
        verify=not args.no_verify, verify_frames=args.verify_frames,
    )


def _write_json(path: str, data) -> None:
    from fcn_edge.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def main(args) -> int:
    from fcn_edge.export.config import ExportConfigError

    targets = _targets(args.target)
    if args.lint_only:
        if args.checkpoint:
            raise ExportConfigError("--lint-only takes the ONNX file itself; drop CHECKPOINT")
        return _lint_only(args.lint_only, targets, args)
    if not args.checkpoint:
        raise ExportConfigError("give a CHECKPOINT to export (or --lint-only FILE.onnx)")
    config = _config(args)

    from fcn_edge.export.exporter import describe_report, export_onnx

    report = export_onnx(args.checkpoint, args.output, config, lint_targets=targets)
    for line in report.lines():
        print(line)
    if args.json:
        _write_json(args.json, describe_report(report))
    return 0


def _lint_only(path: str, targets, args) -> int:
    from fcn_edge.export.lint import lint_onnx

    reports = lint_onnx(path, targets)
    verbose = getattr(args, "verbose", 0) > 0
    for report in reports:
        print(report.summary())
        for line in report.lines(include_info=verbose):
            print(f"  {line}")
    if args.json:
        _write_json(args.json, {"file": path, "reports": [r.to_dict() for r in reports]})
    return 0 if all(r.ok for r in reports) else 1
