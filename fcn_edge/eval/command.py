"""``fcn-edge eval``: the four metrics and per-class IU of a model (or several) on a dataset split.

Only the standard library is imported here; the work is in :mod:`fcn_edge.eval.evaluate`.
"""

from __future__ import annotations

import argparse

from fcn_edge import cliargs

HELP = "score a .pt / .onnx / .engine model on a dataset: pixel acc, mean acc, mean IU, f.w. IU, per-class IU"
EPILOG = """\
examples:
  fcn-edge eval runs/tiny/best.pt --data data/synth
  fcn-edge eval export/fcn8s.onnx --data VOCdevkit --split val --json results/onnx.json
  fcn-edge eval runs/tiny/best.pt --compare export/fcn8s.onnx export/fcn8s.int8.onnx export/fcn8s.fp16.engine --data data/synth

network input size: a fixed-size model (static ONNX, engine) always gets its own size; other
models get --size, else the image's own size (paper geometry) or their deployment size
(aligned).  Frames are resized bilinearly, predictions mapped back to the mask's size with
nearest-neighbour, and every model sees the same pixels.  Agreement = fraction of pixels
whose label equals the first model's.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a .pt checkpoint, .onnx model or .engine (the reference model)")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (VOC, SBD, folder layout) or list file")
    p.add_argument("--split", default="val", metavar="NAME", help="split to evaluate (default val)")
    p.add_argument("--compare", nargs="+", default=[], metavar="MODEL",
                   help="more models scored on the same images; each also gets its pixel agreement with MODEL")
    p.add_argument("--size", type=cliargs.size, metavar="HxW",
                   help="network input size for models that accept any size")
    p.add_argument("--limit", type=cliargs.positive_int, metavar="N", help="evaluate the first N images only")
    p.add_argument("--batch-size", type=cliargs.positive_int, default=1, metavar="N",
                   help="images per model call (default 1)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="image-decoding threads (default 2)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu (default) or cuda[:N] for .pt and .onnx models")
    p.add_argument("--threads", type=cliargs.positive_int, metavar="N", help="CPU threads for torch / ONNX Runtime")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (written atomically)")
    p.add_argument("--skip-bad-data", action="store_true",
                   help="skip and count unreadable images/masks instead of stopping")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from fcn_edge.eval import EvalConfig, evaluate
    from fcn_edge.fileio import check_writable_destination

    if args.json:
        check_writable_destination(args.json)  # fail before minutes of evaluation, not after
    config = EvalConfig(split=args.split, size=args.size, limit=args.limit, batch_size=args.batch_size,
                        workers=args.workers, skip_bad_data=args.skip_bad_data, device=args.device,
                        threads=args.threads)
    report = evaluate([args.model, *args.compare], args.data, config)
    print(report.format_text())
    if args.json:
        path = report.write_json(args.json)
        print(f"wrote {path}")
    return 0
