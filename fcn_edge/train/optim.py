"""Optimiser, parameter groups and learning-rate schedule.

Parameter groups follow the reference Caffe nets: weights learn at ``lr`` with weight
decay, biases at ``lr * bias_lr_mult`` (2 in the paper) without weight decay (Caffe's
``decay_mult: 0``), and the bilinear upsampling layers are frozen (Caffe's
``lr_mult: 0``; the PyTorch port leaves them out of the optimiser) unless
``freeze_upsampling`` is off.

The schedule is a pure function of the iteration (:class:`Schedule`), applied before
every step.  Resuming therefore needs only the iteration number, and a resumed run
follows exactly the learning rates of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fcn_edge.train.config import Recipe


@dataclass
class ParameterGroups:
    weights: list[nn.Parameter]
    biases: list[nn.Parameter]
    frozen: list[str]


def split_parameters(model: nn.Module, freeze_upsampling: bool) -> ParameterGroups:
    """Weights, biases, and the names of the parameters that will not be trained."""
    frozen_modules = set()
    if freeze_upsampling:
        frozen_modules = {name for name, module in model.named_modules() if isinstance(module, nn.ConvTranspose2d)}
    weights, biases, frozen = [], [], []
    for name, param in model.named_parameters():
        owner = name.rsplit(".", 1)[0]
        if owner in frozen_modules:
            param.requires_grad_(False)
            frozen.append(name)
            continue
        param.requires_grad_(True)
        (biases if name.endswith("bias") else weights).append(param)
    return ParameterGroups(weights, biases, frozen)


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over two groups (weights, biases); each group keeps an ``lr_mult``."""
    groups = split_parameters(model, recipe.freeze_upsampling)
    bias_decay = recipe.weight_decay if recipe.bias_weight_decay else 0.0
    param_groups: list[dict[str, Any]] = [
        {"params": groups.weights, "lr": recipe.lr, "weight_decay": recipe.weight_decay, "lr_mult": 1.0,
         "name": "weights"},
        {"params": groups.biases, "lr": recipe.lr * recipe.bias_lr_mult, "weight_decay": bias_decay,
         "lr_mult": recipe.bias_lr_mult, "name": "biases"},
    ]
    param_groups = [g for g in param_groups if g["params"]]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=recipe.lr, momentum=recipe.momentum)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=recipe.lr, betas=(recipe.momentum, 0.999))
    if recipe.optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=recipe.lr, betas=(recipe.momentum, 0.999))
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


@dataclass
class Schedule:
    """Learning rate at an iteration: linear warm-up, then fixed / poly / cosine decay.

    ``factor(i)`` multiplies the base learning rate for the step that follows iteration
    ``i`` (0-based).  Poly is ``(1 - i/total) ** power`` (DeepLab's), cosine goes from 1
    to ``min_ratio`` over the iterations after the warm-up.
    """

    kind: str
    base_lr: float
    total: int
    warmup: int = 0
    power: float = 0.9
    min_ratio: float = 0.0

    @classmethod
    def from_recipe(cls, recipe: Recipe, total: int) -> "Schedule":
        return cls(recipe.schedule, recipe.lr, total, recipe.warmup_iterations, recipe.poly_power,
                   recipe.min_lr_ratio)

    def factor(self, iteration: int) -> float:
        warm = 1.0
        if self.warmup and iteration < self.warmup:
            warm = (iteration + 1) / (self.warmup + 1)
        if self.kind == "fixed":
            decay = 1.0
        elif self.kind == "poly":
            progress = min(1.0, iteration / max(1, self.total))
            decay = (1.0 - progress) ** self.power
        elif self.kind == "cosine":
            span = max(1, self.total - self.warmup)
            progress = min(1.0, max(0.0, (iteration - self.warmup) / span))
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            raise ValueError(f"unknown schedule {self.kind!r}")
        decay = self.min_ratio + (1.0 - self.min_ratio) * decay
        return warm * decay

    def lr(self, iteration: int) -> float:
        return self.base_lr * self.factor(iteration)

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> float:
        """Set every group's lr for the coming step; returns the base lr used."""
        lr = self.lr(iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_lr": self.base_lr, "total": self.total, "warmup": self.warmup,
                "power": self.power, "min_ratio": self.min_ratio}
