"""On a GPU machine: PyTorch on CUDA reports device memory, FP16 agrees with FP32 (skipped without a GPU)."""

from __future__ import annotations

import pytest

from fcn_edge.bench import BenchConfig, ModelSpec, run_bench


@pytest.mark.gpu
def test_pytorch_cuda_rows_report_device_memory_and_fp16_agreement(tiny_checkpoint):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"torch {torch.__version__} has no CUDA")
    report = run_bench([ModelSpec(str(tiny_checkpoint), {"device": "cuda"}, label="fp32"),
                        ModelSpec(str(tiny_checkpoint), {"device": "cuda", "precision": "fp16"}, label="fp16")],
                       BenchConfig(iterations=5, batches=(1, 4), compare=True, check_agreement=True, progress=False))
    rows = [r for r in report.rows if r.ran]
    assert len(rows) == 4
    for row in rows:
        assert row.device_memory["bytes"] > 0 and "max_memory_allocated" in row.device_memory["source"]
    fp16 = [r for r in rows if r.model == "fp16"]
    assert all(r.agreement["pixel_agreement"] > 0.98 for r in fp16)
    assert all(r.vs_first["fps"] is not None for r in fp16)
