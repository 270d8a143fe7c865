"""Recipes, overrides, resolution and the command line's mapping onto TrainConfig."""

from __future__ import annotations

import argparse

import pytest

from fcn_edge.train import PAPER_LR, ConfigError, TrainConfig, recipe, resolve_config
from fcn_edge.train.command import config_from_args, register
from fcn_edge.train.config import RECIPE_FIELDS, ResolvedConfig, finish_resolution


def _parse(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_paper_recipe_is_the_reference_solver():
    for arch, lr in (("fcn32s", 1e-10), ("fcn16s", 1e-12), ("fcn8s", 1e-14), ("fcn8s-atonce", 1e-10)):
        rec = recipe("paper", arch)
        assert rec.lr == lr == PAPER_LR[arch]
    rec = recipe("paper", "fcn8s")
    assert (rec.optimizer, rec.momentum, rec.weight_decay) == ("sgd", 0.99, 5e-4)
    assert (rec.bias_lr_mult, rec.bias_weight_decay, rec.loss, rec.schedule) == (2.0, False, "sum", "fixed")
    assert (rec.batch_size, rec.crop, rec.flip, rec.geometry, rec.freeze_upsampling) == (1, None, False, "paper", True)


def test_modern_is_default_and_overrides_win():
    resolved = resolve_config(TrainConfig(data="d", lr=3e-4, batch_size=2, crop=(96, 64)))
    assert resolved.recipe.name == "modern"
    assert (resolved.lr, resolved.batch_size, resolved.crop, resolved.optimizer) == (3e-4, 2, (96, 64), "adamw")
    assert resolved.loss == "mean" and resolved.epochs == 50 and resolved.iterations is None
    # --iterations alone replaces the recipe's epochs
    assert resolve_config(TrainConfig(data="d", iterations=7)).epochs is None


def test_every_recipe_field_is_a_config_field_and_an_option():
    config_fields = set(TrainConfig.__dataclass_fields__)
    assert set(RECIPE_FIELDS) <= config_fields
    args = _parse("--data", "d", "--recipe", "paper", "--lr", "1e-9", "--crop", "none", "--scale-range", "0.5,1.5",
                  "--no-flip", "--warmup", "5", "--width", "1/8", "--val-split", "none", "--no-freeze-upsampling")
    config = config_from_args(args)
    assert config.recipe == "paper" and config.lr == 1e-9 and config.no_crop and config.width == 0.125
    assert config.val_split is None and config.freeze_upsampling is False and config.warmup_iterations == 5
    assert config.momentum is None  # not given: stays with the recipe
    resolved = resolve_config(config)
    assert resolved.crop is None and resolved.scale_range == (0.5, 1.5) and resolved.momentum == 0.99


@pytest.mark.parametrize("changes,needle", [
    ({"lr": -1.0}, "--lr"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"iterations": 5, "epochs": 2.0}, "not both"),
    ({"vgg16": "v.pth", "width": 0.5}, "full width"),
    ({"vgg16": "v.pth", "init_from": "x.pt"}, "only one"),
    ({"scale_range": (2.0, 1.0)}, "scale-range"),
    ({"data": None}, "--data"),
])
def test_bad_values_are_one_sentence_errors(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve_config(TrainConfig(**{"data": "d", **changes}))


def test_epochs_become_iterations_and_config_round_trips():
    resolved = resolve_config(TrainConfig(data="d", epochs=2.5, batch_size=4))
    finish_resolution(resolved, 40, 10)
    assert resolved.total_iterations == 25 and resolved.val_interval == 10 and resolved.deploy_size == (320, 320)
    again = ResolvedConfig.from_dict(resolved.to_dict())
    assert again.recipe == resolved.recipe and again.total_iterations == 25
    assert again.config.data == "d" and again.crop == (320, 320)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        finish_resolution(resolve_config(TrainConfig(data="d", batch_size=8)), 5, 0)
