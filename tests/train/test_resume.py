"""Resume equals an uninterrupted run: same seed, same data order, same weights and losses."""

from __future__ import annotations

import torch

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.train import train

from .conftest import quick_config


def _weights(path):
    return load_checkpoint(path).state_dict


def test_resumed_run_repeats_the_uninterrupted_one(synth_small, tmp_path):
    # 12 iterations over an 8-step epoch: the stop at 6 is mid-epoch, and the rest crosses an epoch boundary.
    common = dict(iterations=12, val_interval=5)
    whole = train(quick_config(synth_small, tmp_path / "whole", **common))
    assert not whole.interrupted and whole.iterations == 12

    first = train(quick_config(synth_small, tmp_path / "split", stop_at=6, **common))
    assert first.interrupted and first.iterations == 6
    resume_state = load_checkpoint(tmp_path / "split" / "last.pt").resume
    assert resume_state["iteration"] == 6 and len(resume_state["rng"]) == 1

    second = train(quick_config(None, None, resume=str(tmp_path / "split" / "last.pt")))
    assert not second.interrupted and second.iterations == 12

    losses_whole = dict(whole.losses)
    losses_split = {**dict(first.losses), **dict(second.losses)}
    assert sorted(losses_split) == list(range(1, 13))
    for it in range(1, 13):
        assert abs(losses_whole[it] - losses_split[it]) <= 1e-5 * max(1.0, abs(losses_whole[it])), it
    a, b = _weights(tmp_path / "whole" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert whole.best_mean_iu == second.best_mean_iu
    # the log reads as one run: no duplicated iterations after the resume
    rows = (tmp_path / "split" / "log.csv").read_text().splitlines()[1:]
    keys = [tuple(r.split(",")[:3:2]) for r in rows]
    assert len(keys) == len(set(keys))
