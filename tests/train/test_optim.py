"""Parameter groups (bias lr x2, frozen upsampling), schedules and the two losses."""

from __future__ import annotations

import math

import pytest
import torch

from fcn_edge.models import build_model
from fcn_edge.train import recipe
from fcn_edge.train.loss import segmentation_loss
from fcn_edge.train.optim import Schedule, build_optimizer

from tests.conftest import TINY_WIDTH


def test_paper_groups_biases_double_lr_no_decay_and_frozen_upsampling():
    model = build_model("fcn8s", 3, "paper", TINY_WIDTH)
    optimizer = build_optimizer(model, recipe("paper", "fcn8s"))
    weights, biases = optimizer.param_groups
    assert weights["lr"] == 1e-14 and weights["weight_decay"] == 5e-4
    assert biases["lr"] == 2e-14 and biases["weight_decay"] == 0.0
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.99
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name, param in model.named_parameters():
        if name.startswith("upscore"):
            assert not param.requires_grad and id(param) not in in_optimizer, name
        else:
            assert param.requires_grad and id(param) in in_optimizer, name


def test_schedule_warmup_poly_cosine_fixed():
    poly = Schedule("poly", 1.0, total=100, warmup=10, power=0.9)
    assert poly.factor(0) == pytest.approx(1 / 11)
    assert poly.factor(50) == pytest.approx(0.5 ** 0.9)
    assert poly.factor(100) == 0.0
    cosine = Schedule("cosine", 2.0, total=110, warmup=10, min_ratio=0.1)
    assert cosine.lr(10) == pytest.approx(2.0) and cosine.lr(110) == pytest.approx(0.2)
    assert cosine.lr(60) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert Schedule("fixed", 1e-10, total=5).lr(4) == 1e-10
    model = build_model("fcn32s", 2, "aligned", TINY_WIDTH)
    optimizer = build_optimizer(model, recipe("paper", "fcn32s"))
    Schedule("fixed", 1e-10, total=5).apply(optimizer, 0)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-10, 2e-10]


def test_losses_mean_sum_and_all_ignored():
    logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
    target = torch.zeros(2, 4, 4, dtype=torch.int64)
    target[0, 0, 0] = 255
    mean = segmentation_loss(logits, target, reduction="mean")
    assert mean.item() == pytest.approx(math.log(3))
    summed = segmentation_loss(logits, target, reduction="sum")
    assert summed.item() == pytest.approx(31 * math.log(3) / 2)  # Caffe: summed over pixels, / batch size
    void = torch.full_like(target, 255)
    loss = segmentation_loss(logits, void)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()
