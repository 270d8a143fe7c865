"""``fcn-edge synth``: write the built-in synthetic dataset (and optionally a video and a calibration set)."""

from __future__ import annotations

import argparse
import logging

from fcn_edge import cliargs

log = logging.getLogger("fcn_edge.data")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="write the synthetic dataset (textured shapes) for tests, calibration and the demo",
        description="Write deterministic scenes of textured shapes in the folder layout "
                    "(OUT/train/images, OUT/train/masks, OUT/val/..., OUT/dataset.json). "
                    "The same seed gives byte-identical files.",
    )
    parser.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite)")
    parser.add_argument("--train", type=cliargs.non_negative_int, default=400, metavar="N",
                        help="training images (default 400)")
    parser.add_argument("--val", type=cliargs.non_negative_int, default=100, metavar="M",
                        help="validation images (default 100)")
    parser.add_argument("--size", type=cliargs.size, default=(128, 128), metavar="HxW",
                        help="image size (default 128x128)")
    parser.add_argument("--classes", type=int, default=5, metavar="K",
                        help="classes including background, 2-17 (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format (default jpg)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty --out folder")
    parser.add_argument("--calib", type=cliargs.non_negative_int, default=0, metavar="N",
                        help="also write N calibration images to OUT/calib/ listed in OUT/calib.txt")
    parser.add_argument("--video", metavar="FILE", help="also write a clip of moving shapes (.mp4 or .avi) and its "
                                                         "label maps (FILE.labels.npz)")
    parser.add_argument("--video-frames", type=cliargs.non_negative_int, default=90, metavar="N",
                        help="frames in --video (default 90)")
    parser.add_argument("--video-size", type=cliargs.size, default=(256, 256), metavar="HxW",
                        help="frame size of --video (default 256x256)")
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate of --video (default 15)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fcn_edge.data.synth import (
        VIDEO_CODECS,
        SynthConfig,
        write_calibration_set,
        write_synthetic_dataset,
        write_synthetic_video,
    )
    from fcn_edge.errors import DataError

    if args.video and Path(args.video).suffix.lower() not in VIDEO_CODECS:  # fail before writing anything
        raise DataError(f"cannot write video {args.video}: use a .mp4 (mp4v) or .avi (MJPG) file name")
    if args.video and (args.video_frames < 1 or args.fps <= 0):
        raise DataError("--video needs --video-frames of at least 1 and a positive --fps")
    config = SynthConfig(train=args.train, val=args.val, size=args.size, num_classes=args.classes,
                         seed=args.seed, image_format=args.format)
    summary = write_synthetic_dataset(args.out, config, overwrite=args.overwrite)
    h, w = config.size
    print(f"wrote {config.train} train + {config.val} val images ({h}x{w}, {config.num_classes} classes, "
          f"seed {config.seed}) to {summary.root} in {summary.seconds:.1f} s")
    if args.calib:
        out = Path(args.out)
        listed = write_calibration_set(out / "calib", args.calib, size=config.size, num_classes=config.num_classes,
                                       seed=config.seed, list_file=out / "calib.txt")
        print(f"wrote {args.calib} calibration images to {out / 'calib'} listed in {listed}")
    if args.video:
        video = Path(args.video)
        info = write_synthetic_video(video, args.video_frames, args.video_size, args.fps, config.seed,
                                     num_classes=config.num_classes,
                                     labels_path=video.with_name(video.name + ".labels.npz"))
        print(f"wrote {info.frames} frames ({info.size[0]}x{info.size[1]}, {info.fps:g} fps, {info.fourcc}) "
              f"to {info.path}; labels in {info.labels_path}")
    return 0
