"""CUDA with mixed precision: a few real iterations, a resumable checkpoint, eval on the GPU.

Run on a GPU machine with:  python -m pytest -q -m gpu tests/train tests/eval
"""

from __future__ import annotations

import pytest

from fcn_edge.checkpoint import load_checkpoint
from fcn_edge.train import train

from .conftest import quick_config


@pytest.mark.gpu
def test_cuda_amp_trains_and_resumes(synth_small, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    out = tmp_path / "cuda"
    first = train(quick_config(synth_small, out, device="cuda", amp=True, iterations=8, stop_at=4, workers=1))
    assert first.interrupted and first.iterations == 4
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.training["amp"] is True and ckpt.training["device"].startswith("cuda")
    assert ckpt.resume["scaler"] is not None and "cuda" in ckpt.resume["rng"][0]
    result = train(quick_config(None, None, resume=str(out / "last.pt"), device="cuda"))
    assert result.iterations == 8 and all(loss == loss for _, loss in result.losses)
    assert result.best_mean_iu is not None

    from fcn_edge.eval import EvalConfig, evaluate

    on_gpu = evaluate(result.model_path, synth_small, EvalConfig(device="cuda", progress=False))
    on_cpu = evaluate(result.model_path, synth_small, EvalConfig(device="cpu", progress=False))
    assert on_gpu.first.scores["mean_iu"] == pytest.approx(on_cpu.first.scores["mean_iu"], abs=0.02)
