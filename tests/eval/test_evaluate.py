"""fcn-edge eval: the metrics match an independent computation, every backend sees the same pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcn_edge.data import open_dataset
from fcn_edge.errors import FcnEdgeError
from fcn_edge.eval import EvalConfig, evaluate
from fcn_edge.metrics import ConfusionMatrix

from tests.conftest import assert_one_line_error

from .conftest import save_tiny


def _independent_scores(checkpoint_path, data_root, network_size):
    """Torch forward by hand: resize (bilinear), normalise, argmax, back to label size (nearest)."""
    import cv2
    import torch

    from fcn_edge.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint_path)
    model = ckpt.build_model().eval()
    pp = ckpt.info.preprocessing
    matrix = ConfusionMatrix(ckpt.info.num_classes)
    for sample in open_dataset(data_root, "val"):
        h, w = network_size or sample.size
        image = cv2.resize(sample.image, (w, h), interpolation=cv2.INTER_LINEAR)
        x = image.astype(np.float32)
        if pp.needs_channel_swap:
            x = x[:, :, ::-1]
        x = (x * pp.scale - np.array(pp.mean, np.float32)) / np.array(pp.std, np.float32)
        with torch.no_grad():
            labels = model(torch.from_numpy(x.transpose(2, 0, 1).copy())[None]).argmax(1)[0].numpy().astype(np.uint8)
        labels = cv2.resize(labels, (sample.size[1], sample.size[0]), interpolation=cv2.INTER_NEAREST)
        matrix.update(sample.mask, labels)
    return matrix.scores()


def test_aligned_model_runs_at_its_deployment_size_and_matches_by_hand(tiny_checkpoint, synth_val):
    report = evaluate(tiny_checkpoint, synth_val, EvalConfig(progress=False, workers=2, batch_size=3))
    result = report.first
    assert report.images == 8 and result.images == 8
    assert result.sizes == {"64x96": 8}  # ModelInfo.input_size, not the 64x80 images
    expected = _independent_scores(tiny_checkpoint, synth_val, (64, 96))
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu"):
        assert result.scores[key] == pytest.approx(expected[key], abs=1e-9)
    assert result.scores["pixels"] == expected["pixels"]


def test_paper_geometry_takes_each_image_as_it_is_and_size_overrides(tmp_path, synth_val):
    paper = save_tiny(tmp_path / "paper.pt", geometry="paper", input_size=None, seed=4)
    native = evaluate(paper, synth_val, EvalConfig(progress=False))
    assert native.first.sizes == {"64x80": 8}
    expected = _independent_scores(paper, synth_val, None)
    assert native.first.scores["mean_iu"] == pytest.approx(expected["mean_iu"], abs=1e-9)
    resized = evaluate(paper, synth_val, EvalConfig(progress=False, size=(96, 96), limit=3))
    assert resized.first.sizes == {"96x96": 3} and resized.images == 3


def test_compare_pt_with_its_onnx_exports_and_with_another_model(tiny_checkpoint, tiny_onnx, tiny_onnx_raw,
                                                                   tiny_onnx_dynamic, synth_val, tmp_path):
    other = save_tiny(tmp_path / "other.pt", seed=9)
    models = [tiny_checkpoint, tiny_onnx, tiny_onnx_raw, tiny_onnx_dynamic, other]
    report = evaluate(models, synth_val, EvalConfig(progress=False, batch_size=3))
    pt, onnx, raw, dynamic, different = report.models
    assert pt.backend == "torch" and {onnx.backend, raw.backend, dynamic.backend} == {"onnxruntime"}
    for exported in (onnx, raw, dynamic):  # frames or raw I/O, static batch 1 or dynamic batch: same pixels in
        assert exported.sizes == pt.sizes == {"64x96": 8}
        assert exported.agreement >= 0.999
        assert exported.scores["mean_iu"] == pytest.approx(pt.scores["mean_iu"], abs=0.01)
    assert different.agreement < 0.9
    text = report.format_text()
    assert "agree" in text and "per-class IU" in text and "tiny.onnx" in text
    # a fixed-size model refuses another --size instead of silently running at its own
    with pytest.raises(FcnEdgeError, match="fixed input size of 64x96"):
        evaluate(tiny_onnx, synth_val, EvalConfig(progress=False, size=(64, 64)))


def test_cli_prints_metrics_and_writes_json(run_cli, tiny_checkpoint, synth_val, tmp_path):
    out = tmp_path / "report.json"
    completed = run_cli("eval", tiny_checkpoint, "--data", synth_val, "--compare", tiny_checkpoint, "--json", out,
                        "--limit", 4, check=True)
    assert "mean IU" in completed.stdout and "background" in completed.stdout
    data = json.loads(out.read_text())
    assert data["images"] == 4 and len(data["models"]) == 2
    first, second = data["models"]
    assert second["agreement_with_first"] == 1.0 and first["mean_iu"] == second["mean_iu"]
    assert set(first["per_class_iu"]) == {"background", "disc", "box", "triangle", "blob"}


def test_errors_are_one_line(run_cli, tmp_path, synth_val, tiny_checkpoint):
    assert_one_line_error(run_cli("eval", tmp_path / "missing.pt", "--data", synth_val), "missing.pt", "does not exist")
    three = save_tiny(tmp_path / "three.pt", classes=3)
    assert_one_line_error(run_cli("eval", three, "--data", synth_val), "predicts 3 classes", "has 5",
                          "--reinit-classifier")
    with pytest.raises(FcnEdgeError, match="nowhere"):
        evaluate(tiny_checkpoint, tmp_path / "nowhere", EvalConfig(progress=False))


def test_bad_images_stop_evaluation_or_are_skipped(tmp_path, tiny_checkpoint):
    from fcn_edge.data.synth import SynthConfig, write_synthetic_dataset

    root = tmp_path / "data"
    write_synthetic_dataset(root, SynthConfig(train=1, val=4, size=(64, 64), num_classes=5, seed=1))
    victim = sorted((root / "val" / "images").iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(FcnEdgeError, match=victim.name):
        evaluate(tiny_checkpoint, root, EvalConfig(progress=False))
    report = evaluate(tiny_checkpoint, root, EvalConfig(progress=False, skip_bad_data=True))
    assert report.images == 3 and report.skipped == 1 and report.skipped_items[0]["path"].endswith(victim.name)


def test_evaluating_an_onnx_model_never_imports_torch(tiny_onnx, synth_val):
    import subprocess
    import sys

    from tests.conftest import cli_env

    code = (f"import sys\nfrom fcn_edge.eval import EvalConfig, evaluate\n"
            f"r = evaluate({str(tiny_onnx)!r}, {str(synth_val)!r}, EvalConfig(progress=False))\n"
            f"print('IMAGES', r.images, 'TORCH', 'torch' in sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "IMAGES 8 TORCH False" in completed.stdout


def test_progress_label_drops_whole_names_not_letters():
    """The demo's four variants used to read 'eval PyTorch FP32, ONNX FP32, ONNX INT8, ONNX INT8 (CPU layo'."""
    from types import SimpleNamespace

    from fcn_edge.eval.evaluate import _progress_label

    four = [SimpleNamespace(name=n) for n in ("PyTorch FP32", "ONNX FP32", "ONNX INT8", "ONNX INT8 (CPU layout)")]
    assert _progress_label(four) == "eval PyTorch FP32, ONNX FP32, ONNX INT8 +1 more"
    assert _progress_label(four[:2]) == "eval PyTorch FP32, ONNX FP32"
    long = _progress_label([SimpleNamespace(name="m" * 80)])
    assert len(long) == 60 and long.endswith("...")
