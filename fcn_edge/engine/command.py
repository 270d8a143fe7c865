"""``fcn-edge build-engine MODEL.onnx``: compile an ONNX into a TensorRT engine + sidecar.

Only the standard library is imported here; the work is in :mod:`fcn_edge.engine.build`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcn_edge.cliargs import add_switch

HELP = "compile an ONNX model into a TensorRT engine (fp32/fp16/int8, Jetson DLA) with a JSON sidecar"
EPILOG = """\
examples:
  fcn-edge build-engine export/fcn8s.onnx --precision fp16
  fcn-edge build-engine export/fcn8s.int8.onnx --precision int8 --timing-cache export/orin.timing
  fcn-edge build-engine export/fcn8s.onnx --profile xavier-dla-int8 --calib-cache calib/fcn8s.calib.cache
  fcn-edge build-engine export/fcn8s.onnx --precision fp16 --dry-run --trt-version 11.4   # plan only
  fcn-edge build-engine export/fcn8s.int8.onnx --precision int8 --verify data/synth --max-drop 0.5

Options given on the command line override the --profile's.  Without TensorRT or a GPU
the command exits with one line saying what to install; --dry-run works anywhere.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("build-engine", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL.onnx", help="ONNX from fcn-edge export (or fcn-edge calibrate for Q/DQ INT8)")
    p.add_argument("-o", "--output", metavar="OUT.engine",
                   help="engine path (default: next to the ONNX as <stem>.<precision>.engine); the sidecar is OUT.engine.json")
    p.add_argument("--profile", metavar="NAME|PATH",
                   help="build profile: a name in ./export/profiles or shipped with fcn-edge (desktop-fp16, desktop-int8, orin-int8, orin-nano-fp16, "
                        "xavier-dla-int8) or a .toml path")
    g = p.add_argument_group("precision")
    g.add_argument("--precision", choices=("fp32", "fp16", "int8", "best"), default=None,
                   help="fp16 by default; best = int8 when INT8 scales are available, else fp16")
    g.add_argument("--calib", metavar="SOURCE", default=None,
                   help="calibrate now from images (folder, list, video) into a Q/DQ ONNX, then build INT8")
    g.add_argument("--calib-cache", metavar="FILE", default=None,
                   help="TensorRT calibration cache for the implicit INT8 calibrator (TensorRT <= 10; required for DLA INT8)")
    g = p.add_argument_group("INT8 accuracy of the built engine (against the FP32 ONNX)")
    g.add_argument("--verify", metavar="DATA", default=None,
                   help="run the built INT8 engine and the FP32 ONNX on DATA (labelled dataset: mean IU and agreement; "
                        "images: agreement) and record the figures in the sidecar")
    g.add_argument("--max-drop", type=float, metavar="POINTS", default=None,
                   help="with --verify: fail the build (nothing written) when the engine loses more mean IU points")
    g.add_argument("--min-agreement", type=float, metavar="PERCENT", default=None,
                   help="with --verify: fail the build when fewer pixels' labels agree with the FP32 ONNX")
    g.add_argument("--verify-images", type=int, metavar="N", default=None,
                   help="with --verify: use at most N images, spread evenly (default 50)")
    g = p.add_argument_group("builder")
    g.add_argument("--workspace", dest="workspace_mib", type=int, metavar="MiB", default=None,
                   help="builder workspace limit in MiB (default 1024)")
    g.add_argument("--timing-cache", metavar="FILE", default=None,
                   help="load, update and save TensorRT's kernel timing cache (makes rebuilds much faster)")
    g.add_argument("--min-shape", metavar="[NAME:]DIMS", default=None, help="e.g. 1x256x256x3 (dynamic ONNX only)")
    g.add_argument("--opt-shape", metavar="[NAME:]DIMS", default=None, help="the shape TensorRT tunes for")
    g.add_argument("--max-shape", metavar="[NAME:]DIMS", default=None,
                   help="largest shape; without the three, the ONNX's recorded profile is used")
    g = p.add_argument_group("targets and compatibility")
    g.add_argument("--dla", dest="dla_core", type=int, metavar="N", default=None,
                   help="build for DLA core N (Jetson Xavier/AGX Orin); the ONNX is pre-checked for DLA first")
    add_switch(g, "--gpu-fallback", default=None,
               help="let layers DLA cannot run fall back to the GPU")
    add_switch(g, "--version-compatible", default=None,
               help="engine loadable by newer TensorRT (8.6+; 8->10 and 10->11 across majors)")
    add_switch(g, "--exclude-lean-runtime", default=None,
               help="with --version-compatible: smaller engine, the loader must provide the lean runtime")
    g.add_argument("--hardware-compat", choices=("none", "ampere+"), default=None,
                   help="ampere+: engine runs on any GPU with sm >= 8.0 (built on one)")
    g = p.add_argument_group("caching and planning")
    g.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="reuse an engine built from the same ONNX, TensorRT, GPU and options; store new ones there")
    g.add_argument("--dry-run", action="store_true",
                   help="print the build plan (and DLA pre-check) without building; works without TensorRT")
    g.add_argument("--trt-version", metavar="X.Y[.Z]", default=None,
                   help="with --dry-run: plan for this TensorRT version (e.g. 8.5, 8.6, 10.3, 11.4)")
    p.set_defaults(func=main)


OPTION_ARGS = ("precision", "calib", "calib_cache", "workspace_mib", "timing_cache", "min_shape", "opt_shape", "max_shape",
               "dla_core", "gpu_fallback", "version_compatible", "exclude_lean_runtime", "hardware_compat")


def main(args: argparse.Namespace) -> int:
    from fcn_edge.engine.build import BuildRequest, run_build
    from fcn_edge.engine.profiles import load_profile, merge_options
    from fcn_edge.engine.verify import check_verify_options

    profile = load_profile(args.profile) if args.profile else None
    cli = {name: getattr(args, name) for name in OPTION_ARGS}
    options = merge_options(profile, cli)
    verify = check_verify_options(args.verify, args.max_drop, args.min_agreement, args.verify_images,
                                  getattr(options, "precision", None))
    request = BuildRequest(
        onnx=Path(args.model), options=options, output=Path(args.output) if args.output else None,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None, dry_run=args.dry_run, trt_version=args.trt_version,
        verify=verify,
    )
    if profile is not None:
        print(f"profile {profile.name} ({profile.path}): {profile.description}")
    run_build(request)
    return 0
