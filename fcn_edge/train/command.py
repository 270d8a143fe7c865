"""``fcn-edge train``: train or fine-tune an FCN (see :mod:`fcn_edge.train`).

Only the standard library is imported here; the work is in :mod:`fcn_edge.train.trainer`.
Every option maps to one :class:`fcn_edge.train.config.TrainConfig` field; options not
given keep the recipe's value (and, with ``--resume``, the checkpoint's).
"""

from __future__ import annotations

import argparse
import json
import sys

from fcn_edge import cliargs

HELP = "train or fine-tune FCN-32s/16s/8s (paper or modern recipe; CPU, CUDA, multi-GPU via torchrun)"
EPILOG = """\
examples:
  fcn-edge train --data data/synth --out runs/tiny --width 0.125 --crop 128x128 --iterations 500
  fcn-edge train --data VOCdevkit --arch fcn32s --recipe paper --vgg16 vgg16-397923af.pth --out runs/32s
  fcn-edge train --data VOCdevkit --arch fcn16s --recipe paper --init-from runs/32s/best.pt --out runs/16s
  fcn-edge train --data my_data --init-from fcn8s_from_caffe.pth --reinit-classifier --out runs/mine
  fcn-edge train --resume runs/mine/last.pt
  torchrun --nproc-per-node 4 -m fcn_edge train --data VOCdevkit --device cuda --out runs/ddp

recipes (every value can be overridden by its option):
  modern  AdamW lr 1e-3, wd 1e-4, warm-up 100 + poly 0.9, mean loss, batch 8 of 320x320 crops,
          scale 0.5-2.0 and flips, aligned geometry, 50 epochs, mixed precision on CUDA
  paper   SGD momentum 0.99, wd 5e-4, fixed lr 1e-10 (32s, 8s at-once) / 1e-12 (16s) / 1e-14 (8s),
          bias lr x2, summed loss, batch 1 whole images, paper geometry, 100000 iterations

outputs in --out: best.pt (best validation mean IU), last.pt (resumable), log.csv, config.json.
Ctrl-C saves a resumable last.pt; --batch-size is per process under torchrun.
"""


def _crop(text: str):
    if text.lower() in ("none", "full", "0"):
        return "none"
    return cliargs.size(text)


def _range(text: str):
    try:
        values = [float(v) for v in text.replace(":", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 0.5,2.0), got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 0.5,2.0), got {text!r}")
    return tuple(values)


def _width(text: str) -> float:
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a width such as 1, 0.125 or 1/8, got {text!r}") from None


def _split(text: str):
    return None if text.lower() in ("none", "") else text


def register(subparsers) -> None:
    s = argparse.SUPPRESS
    p = subparsers.add_parser("train", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=s)
    g = p.add_argument_group("data and outputs")
    g.add_argument("--data", metavar="DIR", help="dataset folder: PASCAL VOC, SBD or the folder layout (fcn-edge synth)")
    g.add_argument("--out", metavar="DIR", help="output folder (default runs/train; with --resume: the checkpoint's folder)")
    g.add_argument("--train-split", metavar="NAME", help="training split (default train)")
    g.add_argument("--val-split", metavar="NAME", type=_split, help="validation split (default val; none to skip)")
    g.add_argument("--num-classes", type=int, metavar="K",
                   help="class count for datasets that do not state it (no dataset.json/classes.txt)")
    g.add_argument("--skip-bad-data", action="store_true", help="skip and count unreadable images/masks instead of stopping")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier run's best.pt/last.pt in --out")
    g = p.add_argument_group("model and initial weights")
    g.add_argument("--arch", choices=("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce"), help="network (default fcn8s)")
    g.add_argument("--width", type=_width, metavar="W", help="channel width multiplier, e.g. 1/8 for a tiny CPU model (default 1)")
    g.add_argument("--geometry", choices=("paper", "aligned"), help="paddings/crops (recipe default)")
    g.add_argument("--vgg16", metavar="FILE", help="start from torchvision's ImageNet VGG16 weights (vgg16-397923af.pth)")
    g.add_argument("--init-from", metavar="CKPT",
                   help="start from an earlier stage or any FCN checkpoint (ours, or the PyTorch port's .pth)")
    g.add_argument("--reinit-classifier", action="store_true",
                   help="with --init-from: keep the trunk, start the class layers afresh (fine-tuning on new classes)")
    g.add_argument("--resume", metavar="LAST.pt", help="continue an interrupted run from its last.pt")
    g.add_argument("--preprocessing", choices=("imagenet", "caffe"),
                   help="input normalisation (default: what the initial weights expect)")
    g.add_argument("--deploy-size", type=cliargs.size, metavar="HxW",
                   help="input size stored in the model for export/run (default: the crop size)")
    g = p.add_argument_group("recipe")
    g.add_argument("--recipe", choices=("modern", "paper"), help="defaults for everything below (default modern)")
    g.add_argument("--optimizer", choices=("sgd", "adamw", "adam"))
    g.add_argument("--lr", type=float, metavar="LR", help="base learning rate")
    g.add_argument("--momentum", type=float, help="SGD momentum / Adam beta1")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--bias-lr-mult", type=float, metavar="X", help="bias learning-rate multiplier (paper: 2)")
    cliargs.add_switch(g, "--bias-weight-decay", help="apply weight decay to biases too")
    g.add_argument("--schedule", choices=("fixed", "poly", "cosine"))
    g.add_argument("--poly-power", type=float)
    g.add_argument("--warmup", dest="warmup_iterations", type=int, metavar="N", help="linear warm-up iterations")
    g.add_argument("--min-lr-ratio", type=float, metavar="R", help="schedule floor as a fraction of --lr")
    g.add_argument("--loss", choices=("mean", "sum"), help="mean over valid pixels, or summed per image (paper)")
    cliargs.add_switch(g, "--freeze-upsampling", help="keep the bilinear upsampling fixed (default on, as in the paper)")
    g.add_argument("--batch-size", type=int, metavar="N", help="images per step per process")
    g.add_argument("--iterations", type=int, metavar="N", help="optimiser steps in total")
    g.add_argument("--epochs", type=float, metavar="E", help="passes over the training set (instead of --iterations)")
    g.add_argument("--crop", type=_crop, metavar="HxW", help="random crop size, or none for whole images")
    g.add_argument("--scale-range", type=_range, metavar="LOW,HIGH", help="random scaling range (1,1 disables)")
    cliargs.add_switch(g, "--flip", help="random horizontal flips")
    cliargs.add_switch(g, "--amp", help="mixed precision (CUDA only; default on with CUDA in the modern recipe)")
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm")
    g = p.add_argument_group("validation, logging and machinery")
    g.add_argument("--val-interval", type=int, metavar="N", help="validate every N iterations (default: each epoch)")
    g.add_argument("--val-batch-size", type=int, metavar="N", help="images per validation batch (default 8)")
    g.add_argument("--val-limit", type=int, metavar="N", help="validate on the first N images only")
    g.add_argument("--log-interval", type=int, metavar="N", help="iterations per log.csv row (default 10)")
    g.add_argument("--workers", type=int, metavar="N", help="data-loading processes (default 2)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda or cuda:N")
    g.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    cliargs.add_switch(g, "--tensorboard", help="also log to OUT/tensorboard (default: when torch.utils.tensorboard imports)")
    g.add_argument("--stop-at", type=int, metavar="N", help="stop resumably after iteration N (time-limited jobs)")
    g.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.set_defaults(func=main)


def config_from_args(args: argparse.Namespace):
    """A TrainConfig from the options actually given (the rest keep their defaults)."""
    import dataclasses

    from fcn_edge.train.config import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in known}
    if given.get("crop") == "none":
        given.pop("crop")
        given["no_crop"] = True
    return TrainConfig(**given)


def main(args: argparse.Namespace) -> int:
    from fcn_edge.train import train

    config = config_from_args(args)
    if getattr(args, "print_config", False):
        from fcn_edge.train.trainer import resolve_run

        print(json.dumps(resolve_run(config)[0].to_dict(), indent=2))
        return 0
    result = train(config)
    if result.world_size > 1 and not _is_rank_zero():
        return 130 if result.interrupted else 0
    if result.interrupted:
        print(f"stopped at iteration {result.iterations} of {result.total_iterations}; resume with: "
              f"fcn-edge train --resume {result.last_path}", file=sys.stderr)
        return 130
    if result.best_mean_iu is not None:
        print(f"best val mean IU {result.best_mean_iu:.4f} at iteration {result.best_iteration} "
              f"({result.iterations} iterations, {result.seconds:.0f} s): {result.best_path}")
    else:
        print(f"trained {result.iterations} iterations in {result.seconds:.0f} s: {result.last_path}")
    return 0


def _is_rank_zero() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"
