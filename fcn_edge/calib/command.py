"""``fcn-edge calibrate``: FP32 ONNX + images -> Q/DQ INT8 ONNX, TensorRT calibration cache, ranges JSON, accuracy."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("fcn_edge.calib")

EPILOG = """examples:
  fcn-edge calibrate export/fcn8s.onnx --images calib/synth.txt              # -> export/fcn8s.int8.onnx (+ .calib.cache, .int8.calib.json)
  fcn-edge calibrate export/fcn8s.onnx --images data/synth --val data/synth  # dataset source, accuracy on its val split
  fcn-edge calibrate export/fcn8s.onnx --images drive.mp4 --num 200 --method percentile --percentile 99.9
  fcn-edge calibrate export/fcn8s.onnx --images imgs/ --target trt10 --keep-float score_fr,upscore8
  fcn-edge calibrate export/fcn8s.onnx --images imgs/ --keep-float ConvTranspose --sensitivity
  fcn-edge calibrate export/fcn8s.onnx --images data/synth --val data/synth --max-drop 0.5   # INT8 within a budget
  fcn-edge calibrate export/fcn8s.onnx --images drive.mp4 --min-agreement 99.5             # no labels: agreement

outputs (next to -o): MODEL.int8.onnx (Q/DQ, TensorRT explicit INT8 on 8.5+, 10.x, 11.x), MODEL.calib.cache
(TensorRT's implicit calibrator / DLA on TensorRT <= 10; from the same ranges), MODEL.int8.calib.json
(every tensor's range, the method, the images used and their hashes, the accuracy report).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="INT8-calibrate an exported ONNX into a Q/DQ ONNX (+ TensorRT cache), accuracy measured",
        description="Calibrate an FP32 ONNX from fcn-edge export on representative images with ONNX Runtime's "
                    "quantizer: writes a Q/DQ INT8 ONNX that follows TensorRT's rules (symmetric, per-channel "
                    "weights, float pre/post-processing), TensorRT's calibration cache from the same ranges, and a "
                    "JSON of every range; then measures FP32 vs INT8 with ONNX Runtime on this CPU.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL.onnx", help="FP32 ONNX written by fcn-edge export")
    p.add_argument("--images", required=True, metavar="SOURCE",
                   help="calibration images: a folder, a .txt list, a video file (frames sampled evenly) or a dataset "
                        "(VOC, SBD, images/+masks/ folder)")
    p.add_argument("-o", "--output", metavar="OUT.int8.onnx", help="Q/DQ ONNX to write (default: MODEL.int8.onnx beside MODEL)")
    cal = p.add_argument_group("calibration")
    cal.add_argument("--num", type=int, default=300, metavar="N",
                     help="images to use, spread evenly over the source (default 300, or all if fewer)")
    cal.add_argument("--split", metavar="NAME", help="dataset split of --images (default: train)")
    cal.add_argument("--method", choices=("entropy", "max", "percentile"), default="entropy",
                     help="range method (default entropy: ONNX Runtime's KL-divergence calibrator; with its default "
                          "128-bin histogram it keeps the observed |max|, see --histogram-bins)")
    cal.add_argument("--percentile", type=float, default=99.99, metavar="P",
                     help="percentile of |x| kept by --method percentile (default 99.99)")
    cal.add_argument("--target", choices=("trt8", "trt10", "trt11"), default="trt8",
                     help="TensorRT family the graph is for: trt8 = opset <= 17 (JetPack 5.1/6.0, and newer "
                          "TensorRT too; default), trt10 = opset <= 20, trt11 = opset <= 24")
    cal.add_argument("--keep-float", metavar="LIST",
                     help="layers (score_fr,upscore8), node names or op types (ConvTranspose) to keep float; "
                          "'none' quantizes every layer (default: ConvTranspose, i.e. the three upsampling layers, "
                          "measured best on the demo data)")
    cal.add_argument("--histogram-bins", type=int, metavar="N",
                     help="histogram size of the entropy/percentile calibrators (default: ONNX Runtime's, 128 for "
                          "entropy, 2048 for percentile; more entropy bins let the KL search clip activations)")
    cal.add_argument("--placement", choices=("tensorrt", "onnxruntime"), default="tensorrt",
                     help="where Q/DQ go: tensorrt = inputs of quantized ops only (TensorRT's layout, default); "
                          "onnxruntime = also their outputs, which ONNX Runtime's CPU kernels need to run INT8 "
                          "(QLinearConv; ~2.5x FP32 speed for full-size FCN-8s here, vs 0.8x with the tensorrt layout)")
    cal.add_argument("--quantizer", choices=("ort", "modelopt"), default="ort",
                     help="ort: ONNX Runtime quantize_static (default); modelopt: NVIDIA ModelOpt when installed")
    out = p.add_argument_group("outputs")
    out.add_argument("--no-cache", action="store_true", help="do not write the TensorRT calibration cache")
    out.add_argument("--cache", action="store_true", help="write the cache even for --target trt11 (which cannot use it)")
    out.add_argument("--cache-trt-version", metavar="X.Y.Z",
                     help="TensorRT version in the cache header (default 8.5.2 for trt8, 10.3.0 for trt10)")
    out.add_argument("--json", metavar="FILE", help="also write this run's report as JSON")
    acc = p.add_argument_group("accuracy report (ONNX Runtime, CPU)")
    acc.add_argument("--val", metavar="DIR", help="labelled dataset: FP32 vs INT8 pixel acc., mean acc., mean IU, f.w. IU")
    acc.add_argument("--val-split", metavar="NAME", help="split of --val (default: val when present)")
    acc.add_argument("--max-val-images", type=int, metavar="N", help="use at most N --val images, spread evenly")
    acc.add_argument("--eval-images", type=int, default=20, metavar="N",
                     help="without --val: held-out images for the agreement check (default 20)")
    acc.add_argument("--no-accuracy", action="store_true", help="skip the FP32 vs INT8 check")
    sens = acc.add_mutually_exclusive_group()
    sens.add_argument("--sensitivity", action="store_true",
                      help="per-layer sensitivity even for large models (default: only for small ones)")
    sens.add_argument("--no-sensitivity", action="store_true", help="never run the per-layer sensitivity")
    acc.add_argument("--sensitivity-budget", type=float, default=120.0, metavar="SECONDS",
                     help="stop the sensitivity analysis after this long (default 120)")
    bud = p.add_argument_group("accuracy budget (keeps the most harmful layers float until it holds)")
    bud.add_argument("--max-drop", type=float, metavar="POINTS",
                     help="most mean IU points INT8 may lose against FP32 on --val (labels needed)")
    bud.add_argument("--min-agreement", type=float, metavar="PERCENT",
                     help="least %% of pixels whose INT8 label equals FP32's (on --val, or held-out images)")
    bud.add_argument("--max-keep-float", type=int, metavar="N",
                     help="keep at most N more layers float in the search (default: all but one)")
    acc.add_argument("--strict", action="store_true",
                     help="exit with status 1 when the accuracy check warns (mean IU drop > 1 point, agreement < 98%%)")
    p.set_defaults(func=main)


def config_from_args(args):
    from fcn_edge.calib.config import CalibrationConfig, parse_keep_float

    if args.no_cache and args.cache:
        from fcn_edge.errors import FcnEdgeError

        raise FcnEdgeError("give --cache or --no-cache, not both")
    return CalibrationConfig(
        method=args.method, percentile=args.percentile, num_images=args.num, target=args.target,
        keep_float=parse_keep_float(args.keep_float), quantizer=args.quantizer, placement=args.placement,
        split=args.split,
        cache=False if args.no_cache else (True if args.cache else None), cache_trt_version=args.cache_trt_version,
        val=args.val, val_split=args.val_split, max_val_images=args.max_val_images,
        accuracy=False if args.no_accuracy else "auto", eval_images=args.eval_images,
        sensitivity=True if args.sensitivity else (False if args.no_sensitivity else "auto"),
        sensitivity_budget_s=args.sensitivity_budget, histogram_bins=args.histogram_bins,
    )


def main(args) -> int:
    from fcn_edge.calib.calibrate import calibrate_onnx

    config = config_from_args(args)
    if args.max_drop is not None or args.min_agreement is not None or args.max_keep_float is not None:
        return _main_budget(args, config)
    report = calibrate_onnx(args.model, args.images, args.output, config=config)
    for line in report.lines():
        print(line)
    return _finish(args, report)


def _main_budget(args, config) -> int:
    """--max-drop / --min-agreement: the budget search; its table, then the written model (or exit 1)."""
    from fcn_edge.calib.budget import BudgetNotMet, calibrate_within_budget
    from fcn_edge.errors import FcnEdgeError

    if args.no_accuracy:
        raise FcnEdgeError("--max-drop/--min-agreement measure accuracy; drop --no-accuracy")
    if args.max_drop is None and args.min_agreement is None:
        raise FcnEdgeError("--max-keep-float limits the budget search: give --max-drop POINTS or --min-agreement PERCENT")
    try:
        search = calibrate_within_budget(args.model, args.images, args.output, max_drop=args.max_drop,
                                         min_agreement=args.min_agreement, max_keep_float=args.max_keep_float,
                                         config=config, emit=lambda line: None, on_step=print)
    except BudgetNotMet as exc:
        if exc.search.note:
            print(f"  {exc.search.note}")
        if args.json:
            from fcn_edge.fileio import atomic_write_text

            failed = {"budget": exc.search.budget.to_dict(), "met": False, "ranking": exc.search.ranking,
                      "steps": [s.to_dict() for s in exc.search.steps], "fp32_latency_ms": exc.search.fp32_latency_ms,
                      "search_seconds": round(exc.search.seconds, 1), "table": exc.search.table()}
            atomic_write_text(args.json, json.dumps({"budget_search": failed}, indent=1) + "\n")
        log.error("error: no keep-float set meets the budget (%s); nothing was written", exc.search.budget.describe())
        return 1
    for line in search.report.lines():
        print(line)
    print(f"search: {len(search.steps)} step(s) in {search.seconds:.1f} s")
    return _finish(args, search.report, {"budget_search": {**search.facts(), "table": search.table()}})


def _finish(args, report, extra: dict | None = None) -> int:
    if args.json:
        from fcn_edge.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps({**report.to_dict(), **(extra or {})}, indent=1) + "\n")
    if args.strict and not report.ok:
        log.error("accuracy check failed (--strict)")
        return 1
    return 0
