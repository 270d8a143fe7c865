"""Where a run's weights start, and the model description that goes with them.

* from scratch: Kaiming convs, zero score layers, bilinear upsampling (any width);
* ``--vgg16 FILE``: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``), fc6/fc7
  convolutionalised; ImageNet preprocessing (RGB, mean/std);
* ``--init-from CKPT``: an earlier stage (FCN-32s -> 16s -> 8s, the paper's staged
  training), or any FCN checkpoint of ours or the PyTorch port's bare state_dicts:
  every tensor whose name and shape match is copied, layers the source lacks keep
  their initialisation (zero scores, bilinear upsampling), and the preprocessing is
  the source's (Caffe's BGR mean for the converted weights).

Classes come from the dataset.  A checkpoint trained for another number of classes is
refused, unless ``--reinit-classifier`` is given: then only the trunk (conv1_1 to
fc7) is copied and every class-dependent layer (``score_*`` and the ``upscore*``
upsampling) starts afresh: zero scores and bilinear upsampling, as for a new stage.
This is the way to fine-tune VOC weights on one's own classes.  With the same class
count ``--reinit-classifier`` also re-initialises those layers (new classes that
happen to be as many as the old).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.errors import ArtifactError
from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing, voc_palette
from fcn_edge.models import build_model, init_from_vgg16, transfer_from
from fcn_edge.train.config import ResolvedConfig

log = logging.getLogger("fcn_edge.train")

CLASS_LAYER_PREFIXES = ("score", "upscore")


@dataclass
class ClassFacts:
    """Class count, names, palette (RGB) and ignore label of the training data."""

    num_classes: int
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    ignore_index: int = 255

    @classmethod
    def from_dataset(cls, dataset) -> "ClassFacts":
        n = int(dataset.num_classes)
        names = list(dataset.class_names) if dataset.class_names else []
        palette = list(dataset.palette) if dataset.palette else voc_palette(n)
        return cls(n, names, [tuple(int(c) for c in colour) for colour in palette[:n]], int(dataset.ignore_index))


@dataclass
class ModelStart:
    model: nn.Module
    info: ModelInfo
    source: dict[str, Any] = field(default_factory=dict)


def preprocessing_named(name: str) -> Preprocessing:
    return Preprocessing.caffe() if name == "caffe" else Preprocessing.imagenet()


def is_class_layer(key: str) -> bool:
    return key.startswith(CLASS_LAYER_PREFIXES)


def initial_model(resolved: ResolvedConfig, facts: ClassFacts) -> ModelStart:
    """Build the model for a new run (not a resume) and describe it."""
    cfg = resolved.config
    geometry = resolved.geometry
    if cfg.init_from:
        return _from_checkpoint(resolved, facts)
    width = 1.0 if cfg.width is None else float(cfg.width)
    model = build_model(cfg.arch, facts.num_classes, geometry, width)
    if cfg.vgg16:
        loaded = init_from_vgg16(model, cfg.vgg16)
        source = {"kind": "vgg16", "path": str(cfg.vgg16), "tensors": len(loaded)}
        default_pp = "imagenet"
        if cfg.preprocessing == "caffe":
            log.warning("torchvision's VGG16 expects ImageNet preprocessing (RGB, mean/std); --preprocessing caffe "
                        "was asked for and is used")
    else:
        source = {"kind": "scratch"}
        default_pp = "imagenet"
    pp = preprocessing_named(cfg.preprocessing or default_pp)
    info = _info(cfg.arch, facts, geometry, width, pp, resolved.deploy_size)
    return ModelStart(model, info, source)


def _from_checkpoint(resolved: ResolvedConfig, facts: ClassFacts) -> ModelStart:
    cfg = resolved.config
    ckpt = load_checkpoint(cfg.init_from)
    src = ckpt.info
    if cfg.width is not None and float(cfg.width) != src.width:
        raise ArtifactError(f"--init-from {cfg.init_from} has width {src.width:g} but --width {cfg.width:g} was "
                            "given: drop --width (the width follows the weights)")
    if src.num_classes != facts.num_classes and not cfg.reinit_classifier:
        raise ArtifactError(
            f"--init-from {cfg.init_from} was trained for {src.num_classes} classes but the data has "
            f"{facts.num_classes}: add --reinit-classifier to keep its trunk and start the class layers afresh")
    model = build_model(cfg.arch, facts.num_classes, resolved.geometry, src.width)
    state = ckpt.state_dict
    if cfg.reinit_classifier:
        state = {k: v for k, v in state.items() if not is_class_layer(k)}
    copied = transfer_from(model, state)
    target_keys = list(model.state_dict())
    fresh = [k for k in target_keys if k not in copied]
    ignored = [k for k in state if k not in copied]
    if not copied:
        raise ArtifactError(f"--init-from {cfg.init_from}: no tensor fits a {cfg.arch} of width {src.width:g}")
    log.info("initialised %d of %d tensors from %s (%s, %d classes)%s", len(copied), len(target_keys),
             cfg.init_from, src.arch, src.num_classes,
             f"; starting afresh: {', '.join(fresh)}" if fresh else "")
    if ignored:
        log.info("not used from %s: %s", cfg.init_from, ", ".join(ignored))
    pp = preprocessing_named(cfg.preprocessing) if cfg.preprocessing else src.preprocessing
    info = _info(cfg.arch, facts, resolved.geometry, src.width, pp, resolved.deploy_size)
    source = {"kind": "checkpoint", "path": str(cfg.init_from), "arch": src.arch, "num_classes": src.num_classes,
              "copied": len(copied), "fresh": fresh, "reinit_classifier": bool(cfg.reinit_classifier),
              "source_training": {k: v for k, v in ckpt.training.items() if k in ("source", "iteration", "best")}}
    return ModelStart(model, info, source)


def _info(arch: str, facts: ClassFacts, geometry: str, width: float, pp: Preprocessing,
          deploy_size: tuple[int, int] | None) -> ModelInfo:
    return ModelInfo(arch=arch, num_classes=facts.num_classes, geometry=geometry, width=width,
                     class_names=facts.class_names, palette=facts.palette, preprocessing=pp,
                     input_size=deploy_size, ignore_index=facts.ignore_index)
