"""A short CPU run learns the synthetic task: far above the untrained model, on the eval code path."""

from __future__ import annotations

import numpy as np
import pytest

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.data import open_dataset
from fcn_edge.eval import EvalConfig, evaluate
from fcn_edge.train import train
from fcn_edge.train.logs import read_log

from .conftest import quick_config


def _all_background_mean_iu(root) -> float:
    """Mean IU of the untrained model: zero score layers predict class 0 everywhere."""
    dataset = open_dataset(root, "val")
    masks = np.stack([s.mask for s in dataset])
    valid = masks != 255
    present = {int(c) for c in np.unique(masks[valid])}
    return float((masks[valid] == 0).mean()) / len(present)


def test_short_run_learns_and_checkpoints_describe_themselves(synth_small, tmp_path):
    out = tmp_path / "run"
    # whole 128x128 images, 200 steps: a tiny net from scratch leaves the all-background plateau after
    # 20-80 steps depending on the seed and reaches 0.37-0.43 mean IU by 200 (seeds 0-2)
    result = train(quick_config(synth_small, out, iterations=200, lr=2e-3, warmup_iterations=5, val_interval=100,
                                val_limit=None, crop=None, no_crop=True, scale_range=(1.0, 1.0)))
    baseline = _all_background_mean_iu(synth_small)
    assert baseline < 0.2
    assert result.best_mean_iu > baseline + 0.15, (result.best_mean_iu, baseline)
    losses = [loss for _, loss in result.losses]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])

    best = load_checkpoint(result.best_path)
    assert best.resume is None and load_checkpoint(result.last_path).resume is not None
    assert best.info.class_names == ["background", "disc", "box", "triangle", "blob"]
    assert best.info.input_size is None and best.info.geometry == "aligned"  # whole images: no crop size
    assert best.training["config"]["recipe"]["lr"] == 2e-3 and best.training["best"]["mean_iu"] == result.best_mean_iu
    # what training reported for best.pt is what `fcn-edge eval best.pt` measures
    report = evaluate(result.best_path, synth_small, EvalConfig(progress=False))
    assert abs(report.first.scores["mean_iu"] - result.best_mean_iu) < 1e-6

    rows = read_log(out / "log.csv")
    assert [r["iteration"] for r in rows if r["phase"] == "val"] == ["100", "200"]
    assert (out / "config.json").is_file()


def test_existing_run_is_not_overwritten_by_accident(synth_small, tmp_path):
    from fcn_edge.errors import FcnEdgeError

    out = tmp_path / "run"
    train(quick_config(synth_small, out, iterations=2, val_split=None))
    before = (out / "last.pt").read_bytes()
    try:
        train(quick_config(synth_small, out, iterations=2, val_split=None))
    except FcnEdgeError as exc:
        assert "--resume" in str(exc) and "--overwrite" in str(exc)
    else:
        raise AssertionError("a second run into the same --out must be refused")
    assert (out / "last.pt").read_bytes() == before


def test_paper_recipe_trains_whole_images_in_paper_geometry(synth_small, tmp_path):
    result = train(quick_config(synth_small, tmp_path / "paper", recipe="paper", arch="fcn32s", iterations=3,
                                val_interval=3, val_limit=2, crop=None, scale_range=None, batch_size=None,
                                warmup_iterations=None))
    ckpt = load_checkpoint(result.best_path)
    recipe = ckpt.training["config"]["recipe"]
    assert (recipe["optimizer"], recipe["lr"], recipe["loss"], recipe["batch_size"]) == ("sgd", 1e-10, "sum", 1)
    assert ckpt.info.geometry == "paper" and ckpt.info.input_size is None
    # summed per-image loss: about log(5) per pixel over the whole 128x128 image at the start
    assert result.losses[0][1] == pytest.approx(128 * 128 * np.log(5), rel=0.05)
    assert load_checkpoint(result.last_path).resume["optimizer"]["param_groups"][1]["lr"] == 2e-10
