"""What a training run does: :class:`TrainConfig`, the two recipes, and their resolution.

A run is described by one :class:`TrainConfig`.  Its optimisation and data fields
default to ``None``, meaning "what the recipe says"; :func:`resolve_config` fills them
from the chosen :class:`Recipe` and checks everything, so a command line only names
what it changes (``--recipe paper --lr 1e-9``) and the resolved config, stored in every
checkpoint's ``training["config"]``, says exactly what ran.

Two recipes:

``paper``  (Long et al., CVPR 2015; the reference Caffe solvers)
    SGD, momentum 0.99, weight decay 5e-4, a fixed learning rate of 1e-10 (FCN-32s,
    FCN-8s at-once), 1e-12 (FCN-16s) or 1e-14 (FCN-8s), biases at twice the learning
    rate and without weight decay, an *unnormalised* loss (summed over the pixels of an
    image: the tiny learning rates only make sense with it), frozen bilinear upsampling,
    one whole image per iteration, no augmentation, paper geometry (100-pixel pad, any
    image size), 100 000 iterations.
``modern``  (the default; converges in minutes on small data)
    AdamW (lr 1e-3, weight decay 1e-4), per-pixel mean loss (label 255 ignored), linear
    warm-up then poly decay (power 0.9), batches of 8 random crops (scale 0.5-2.0,
    mirrored), aligned geometry, mixed precision on CUDA, 50 epochs.

Preprocessing follows the weights a run starts from, not the recipe: torchvision
VGG16 and from-scratch runs use ImageNet's RGB mean/std, the Caffe-converted weights
(the PyTorch port's ``fcn*_from_caffe.pth``) their BGR Caffe mean, and a checkpoint of
ours whatever it was trained with.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_edge.errors import FcnEdgeError
from fcn_edge.artifacts.modelinfo import ARCHITECTURES, GEOMETRIES

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("fixed", "poly", "cosine")
LOSSES = ("mean", "sum")
PREPROCESSINGS = ("imagenet", "caffe")
RECIPE_NAMES = ("modern", "paper")

# The reference solvers' learning rates (fcn.berkeleyvision.org voc-fcn*/solver.prototxt).
PAPER_LR = {"fcn32s": 1e-10, "fcn16s": 1e-12, "fcn8s": 1e-14, "fcn8s-atonce": 1e-10}


class ConfigError(FcnEdgeError):
    """A training or evaluation option has an impossible value."""


@dataclass
class Recipe:
    """The optimisation and data-side choices of a training recipe (every field overridable)."""

    name: str
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    bias_lr_mult: float            # biases learn this many times faster (Caffe: 2)
    bias_weight_decay: bool        # Caffe's decay_mult 0 for biases -> False
    schedule: str                  # fixed | poly | cosine
    poly_power: float
    warmup_iterations: int
    min_lr_ratio: float            # the schedule's floor, as a fraction of lr
    loss: str                      # mean (per valid pixel) | sum (per image, Caffe's normalize: false)
    freeze_upsampling: bool        # keep the bilinear transposed convs fixed
    batch_size: int
    iterations: int | None
    epochs: float | None
    crop: tuple[int, int] | None   # random crops (H, W); None = whole images
    scale_range: tuple[float, float]
    flip: bool
    geometry: str
    amp: bool | None               # None = on where it exists (CUDA)
    grad_clip: float | None


def modern_recipe(arch: str = "fcn8s") -> Recipe:
    return Recipe(
        name="modern", optimizer="adamw", lr=1e-3, momentum=0.9, weight_decay=1e-4,
        bias_lr_mult=1.0, bias_weight_decay=False, schedule="poly", poly_power=0.9,
        warmup_iterations=100, min_lr_ratio=0.0, loss="mean", freeze_upsampling=True,
        batch_size=8, iterations=None, epochs=50.0, crop=(320, 320), scale_range=(0.5, 2.0), flip=True,
        geometry="aligned", amp=None, grad_clip=None,
    )


def paper_recipe(arch: str = "fcn8s") -> Recipe:
    return Recipe(
        name="paper", optimizer="sgd", lr=PAPER_LR.get(arch, 1e-10), momentum=0.99, weight_decay=5e-4,
        bias_lr_mult=2.0, bias_weight_decay=False, schedule="fixed", poly_power=0.9,
        warmup_iterations=0, min_lr_ratio=0.0, loss="sum", freeze_upsampling=True,
        batch_size=1, iterations=100_000, epochs=None, crop=None, scale_range=(1.0, 1.0), flip=False,
        geometry="paper", amp=False, grad_clip=None,
    )


def recipe(name: str, arch: str = "fcn8s") -> Recipe:
    """The named recipe's defaults for ``arch`` (the paper's learning rate depends on the net)."""
    if name == "modern":
        return modern_recipe(arch)
    if name == "paper":
        return paper_recipe(arch)
    raise ConfigError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPE_NAMES)}")


RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "name")


@dataclass
class TrainConfig:
    """One training run.  ``None`` in a recipe field means "the recipe's value".

    Data: ``data`` is a dataset folder (VOC, SBD or the folder layout, see
    :func:`fcn_edge.data.open_dataset`); class names, palette and count come from it.
    Start: ``vgg16`` (torchvision VGG16 file), ``init_from`` (an earlier stage or any
    FCN checkpoint, ours or the PyTorch port's), ``resume`` (a ``last.pt`` of ours), or
    none of them (from scratch).  Output: ``out`` receives ``best.pt``, ``last.pt``,
    ``log.csv`` and ``config.json``.
    """

    data: str | None = None
    out: str | None = None               # None: runs/train
    arch: str = "fcn8s"
    recipe: str = "modern"
    width: float | None = None           # None: 1.0, or the --init-from checkpoint's
    train_split: str = "train"
    val_split: str | None = "val"
    num_classes: int | None = None
    skip_bad_data: bool = False

    # where the weights start
    vgg16: str | None = None
    init_from: str | None = None
    reinit_classifier: bool = False
    resume: str | None = None
    preprocessing: str | None = None     # imagenet | caffe; default: follows the initial weights

    # recipe fields (None = recipe default)
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    bias_lr_mult: float | None = None
    bias_weight_decay: bool | None = None
    schedule: str | None = None
    poly_power: float | None = None
    warmup_iterations: int | None = None
    min_lr_ratio: float | None = None
    loss: str | None = None
    freeze_upsampling: bool | None = None
    batch_size: int | None = None
    iterations: int | None = None
    epochs: float | None = None
    crop: tuple[int, int] | None = None
    no_crop: bool = False                # explicit "whole images" (crop=None means recipe default)
    scale_range: tuple[float, float] | None = None
    flip: bool | None = None
    geometry: str | None = None
    amp: bool | None = None
    grad_clip: float | None = None

    # deployment size stored in the checkpoint (default: the crop size)
    deploy_size: tuple[int, int] | None = None

    # validation, logging, machinery
    val_interval: int | None = None      # iterations between validations (default: one epoch)
    val_batch_size: int = 8
    val_limit: int | None = None         # validate on the first N images only
    log_interval: int = 10
    workers: int = 2
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    threads: int | None = None           # torch CPU threads
    tensorboard: bool | None = None      # None = when torch.utils.tensorboard imports
    stop_at: int | None = None           # stop (resumably) after this iteration, e.g. for time-limited jobs
    overwrite: bool = False              # replace the outputs of an earlier run in ``out``
    progress: bool = True

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class ResolvedConfig:
    """A :class:`TrainConfig` with every recipe field decided and checked."""

    config: TrainConfig
    recipe: Recipe
    total_iterations: int = 0            # set once the dataset size is known (epochs -> iterations)
    steps_per_epoch: int = 0
    val_interval: int = 0
    deploy_size: tuple[int, int] | None = None

    def __getattr__(self, name: str) -> Any:
        # recipe fields first (already merged with the overrides), then the run's own fields
        recipe = self.__dict__.get("recipe")
        if recipe is not None and name in RECIPE_FIELDS:
            return getattr(recipe, name)
        config = self.__dict__.get("config")
        if config is not None and hasattr(config, name):
            return getattr(config, name)
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints and config.json: the run, the recipe, the derived numbers."""
        run = {k: _plain(v) for k, v in dataclasses.asdict(self.config).items() if k not in RECIPE_FIELDS}
        return {
            "run": run,
            "recipe": {k: _plain(v) for k, v in dataclasses.asdict(self.recipe).items()},
            "total_iterations": self.total_iterations,
            "steps_per_epoch": self.steps_per_epoch,
            "val_interval": self.val_interval,
            "deploy_size": list(self.deploy_size) if self.deploy_size else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResolvedConfig":
        """Rebuild the config a checkpoint was trained with (for --resume)."""
        try:
            run = dict(data["run"])
            recipe_data = dict(data["recipe"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"the checkpoint's training config is incomplete ({exc})") from None
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: _tuple_fields(k, v) for k, v in run.items() if k in known})
        recipe_known = {f.name for f in dataclasses.fields(Recipe)}
        rec = Recipe(**{k: _tuple_fields(k, v) for k, v in recipe_data.items() if k in recipe_known})
        for name in RECIPE_FIELDS:
            setattr(config, name, getattr(rec, name))
        deploy = data.get("deploy_size")
        return cls(config, rec, int(data.get("total_iterations", 0)), int(data.get("steps_per_epoch", 0)),
                   int(data.get("val_interval", 0)), tuple(deploy) if deploy else None)


def resolve_config(config: TrainConfig) -> ResolvedConfig:
    """Merge ``config`` over its recipe and check every value (one-line errors)."""
    if config.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {config.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    base = recipe(config.recipe, config.arch)
    merged = dataclasses.replace(base)
    for name in RECIPE_FIELDS:
        value = getattr(config, name)
        if value is not None:
            setattr(merged, name, value)
    if config.no_crop:
        merged.crop = None
    if config.iterations is not None and config.epochs is None:
        merged.epochs = None           # --iterations given alone wins over the recipe's epochs
    elif config.epochs is not None and config.iterations is None:
        merged.iterations = None
    _check(config, merged)
    return ResolvedConfig(config, merged)


def finish_resolution(resolved: ResolvedConfig, samples_per_process: int, steps_per_epoch: int) -> None:
    """Turn epochs into iterations and pick the validation interval once the data is known."""
    if steps_per_epoch < 1:
        raise ConfigError(f"the training set gives each process {samples_per_process} images, fewer than one "
                          f"batch ({resolved.batch_size}); lower --batch-size")
    resolved.steps_per_epoch = steps_per_epoch
    rec = resolved.recipe
    if rec.iterations is not None:
        total = int(rec.iterations)
    else:
        total = max(1, int(math.ceil(float(rec.epochs or 1) * steps_per_epoch)))
    resolved.total_iterations = total
    interval = resolved.config.val_interval
    resolved.val_interval = int(interval) if interval else min(steps_per_epoch, total)
    deploy = resolved.config.deploy_size or rec.crop
    resolved.deploy_size = tuple(int(v) for v in deploy) if deploy else None  # type: ignore[assignment]


def _check(config: TrainConfig, rec: Recipe) -> None:
    def bad(text: str) -> None:
        raise ConfigError(text)

    if config.data is None and config.resume is None:
        bad("no training data: pass --data DIR (a VOC, SBD or folder-layout dataset)")
    if sum(x is not None for x in (config.vgg16, config.init_from, config.resume)) > 1:
        bad("give only one of --vgg16, --init-from and --resume")
    if config.width is not None and not config.width > 0:
        bad(f"--width must be positive, got {config.width}")
    if rec.optimizer not in OPTIMIZERS:
        bad(f"unknown optimizer {rec.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if rec.schedule not in SCHEDULES:
        bad(f"unknown schedule {rec.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if rec.loss not in LOSSES:
        bad(f"unknown loss {rec.loss!r}; choose mean or sum")
    if rec.geometry not in GEOMETRIES:
        bad(f"unknown geometry {rec.geometry!r}; choose paper or aligned")
    if config.preprocessing is not None and config.preprocessing not in PREPROCESSINGS:
        bad(f"unknown preprocessing {config.preprocessing!r}; choose imagenet or caffe")
    if not (rec.lr > 0 and math.isfinite(rec.lr)):
        bad(f"--lr must be a positive number, got {rec.lr}")
    if rec.momentum < 0 or rec.momentum >= 1:
        bad(f"--momentum must be in [0, 1), got {rec.momentum}")
    if rec.weight_decay < 0:
        bad(f"--weight-decay must be 0 or more, got {rec.weight_decay}")
    if rec.bias_lr_mult < 0:
        bad(f"--bias-lr-mult must be 0 or more, got {rec.bias_lr_mult}")
    if rec.warmup_iterations < 0:
        bad(f"--warmup must be 0 or more iterations, got {rec.warmup_iterations}")
    if not 0 <= rec.min_lr_ratio <= 1:
        bad(f"--min-lr-ratio must be between 0 and 1, got {rec.min_lr_ratio}")
    if rec.batch_size < 1:
        bad(f"--batch-size must be at least 1, got {rec.batch_size}")
    if rec.iterations is not None and rec.iterations < 1:
        bad(f"--iterations must be at least 1, got {rec.iterations}")
    if rec.epochs is not None and not rec.epochs > 0:
        bad(f"--epochs must be positive, got {rec.epochs}")
    if rec.iterations is not None and rec.epochs is not None:
        bad("give --iterations or --epochs, not both")
    if rec.crop is not None and min(rec.crop) < 1:
        bad(f"--crop must be positive (HxW), got {rec.crop}")
    low, high = rec.scale_range
    if not 0 < low <= high:
        bad(f"--scale-range must be 0 < low <= high, got {low},{high}")
    if rec.grad_clip is not None and not rec.grad_clip > 0:
        bad(f"--grad-clip must be positive, got {rec.grad_clip}")
    if config.val_interval is not None and config.val_interval < 1:
        bad(f"--val-interval must be at least 1 iteration, got {config.val_interval}")
    if config.val_batch_size < 1:
        bad("--val-batch-size must be at least 1")
    if config.val_limit is not None and config.val_limit < 1:
        bad("--val-limit must be at least 1")
    if config.log_interval < 1:
        bad("--log-interval must be at least 1")
    if config.workers < 0:
        bad("--workers must be 0 or more")
    if config.stop_at is not None and config.stop_at < 1:
        bad("--stop-at must be at least 1")
    if config.num_classes is not None and not 1 <= config.num_classes <= 255:
        bad(f"--num-classes must be 1-255, got {config.num_classes}")
    if config.deploy_size is not None and min(config.deploy_size) < 1:
        bad(f"--deploy-size must be positive (HxW), got {config.deploy_size}")
    if config.vgg16 is not None and config.width not in (None, 1.0):
        bad(f"--vgg16 weights are full width: drop --width {config.width:g} (or train from scratch)")
    # Files last: a wrong combination of options is reported as such even when a path is
    # also wrong, and both come before minutes of data loading, not after.
    for option, value in (("--vgg16", config.vgg16), ("--init-from", config.init_from), ("--resume", config.resume)):
        if value is not None and not Path(value).is_file():
            bad(f"{option} {value} does not exist" if not Path(value).exists() else f"{option} {value} is not a file")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


_TUPLE_FIELDS = {"crop", "scale_range", "deploy_size"}


def _tuple_fields(name: str, value: Any) -> Any:
    if name in _TUPLE_FIELDS and isinstance(value, list):
        return tuple(value)
    return value


def config_field_names() -> list[str]:
    """Every TrainConfig field (the command line maps one option to each)."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


__all__ = [
    "TrainConfig", "ResolvedConfig", "Recipe", "ConfigError", "recipe", "modern_recipe", "paper_recipe",
    "resolve_config", "finish_resolution", "PAPER_LR", "RECIPE_FIELDS", "OPTIMIZERS", "SCHEDULES", "LOSSES",
    "config_field_names",
]
