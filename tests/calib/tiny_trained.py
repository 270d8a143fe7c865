"""A tiny FCN-8s trained on the synthetic data, in seconds: the demo model the INT8 checks are measured on.

A random network makes accuracy checks meaningless (its labels are noise, so any
quantization error flips them).  This trains the conftest's tiny FCN-8s (width 1/16,
5 classes, aligned geometry) with Adam for a few hundred steps on synthetic scenes
rendered in memory (:func:`fcn_edge.data.synth.render_scene`), which reaches a mean IU
of about 0.6-0.7 on the val stream (chance, all background, is about 0.17).

One torch thread on purpose: with layers this small, two threads on a busy 2-core
machine spend more time synchronising than computing (0.06 s vs 0.4 s per step
measured here).  Deterministic: fixed seeds, fixed data.

Also used by benchmarks/calibrate_keep_float.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_SIZE = (64, 64)
DEPLOY_SIZE = (64, 96)
CLASSES = 5
WIDTH = 1 / 16


def synthetic_arrays(stream: str, count: int, size=TRAIN_SIZE, seed: int = 0):
    from fcn_edge.data.synth import render_scene, scene_rng

    images, masks = [], []
    for index in range(count):
        image, mask = render_scene(scene_rng(seed, stream, index), size, CLASSES)
        images.append(image)
        masks.append(mask)
    return images, masks


def train_tiny_fcn8s(path: str | Path, *, iterations: int = 300, batch: int = 8, lr: float = 2e-3,
                     train_images: int = 200, seed: int = 0) -> Path:
    """Train and save the tiny FCN-8s as an fcn-edge checkpoint at ``path``; returns the path."""
    import torch

    from fcn_edge.checkpoint import save_model
    from fcn_edge.data.synth import class_names, class_palette
    from fcn_edge.data.transforms import to_network_input
    from fcn_edge.artifacts.modelinfo import ModelInfo, Preprocessing
    from fcn_edge.models import build_model

    info = ModelInfo(arch="fcn8s", num_classes=CLASSES, geometry="aligned", width=WIDTH,
                     class_names=class_names(CLASSES), palette=class_palette(CLASSES),
                     preprocessing=Preprocessing.imagenet(), input_size=DEPLOY_SIZE)
    images, masks = synthetic_arrays("train", train_images, seed=seed)
    x = torch.from_numpy(np.stack([to_network_input(im, info.preprocessing) for im in images]))
    y = torch.from_numpy(np.stack(masks)).long()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = build_model("fcn8s", CLASSES, "aligned", WIDTH)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(iterations):
            pick = torch.randint(0, len(x), (batch,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(x[pick]), y[pick], ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    path = Path(path)
    save_model(path, model, info, training={"note": "tiny FCN-8s trained on synthetic scenes for calibration checks",
                                            "iterations": iterations, "batch": batch, "lr": lr,
                                            "final_loss": float(loss.detach())})
    return path


def export_tiny(checkpoint: str | Path, onnx_path: str | Path, **config) -> Path:
    """Export with fcn-edge export (frames I/O, labels by default) at the deploy size, no PyTorch check."""
    from fcn_edge.export import ExportConfig, export_onnx

    options = {"size": DEPLOY_SIZE, "verify": False}
    options.update(config)
    export_onnx(str(checkpoint), str(onnx_path), ExportConfig(**options))
    return Path(onnx_path)


def plant_activation_outlier(checkpoint: str | Path, path: str | Path, *, layer: str = "conv3_1",
                             consumer: str = "conv3_2", value: float = 4000.0) -> Path:
    """The same function with one activation that per-tensor INT8 serves badly: a checkpoint at ``path``.

    One output channel of ``layer`` becomes the constant ``value`` (zero weights, bias
    ``value``; ReLU keeps it) and ``consumer`` ignores that channel (zero weights), so
    the FP32 labels are exactly the trained model's.  But the calibrated range of the
    tensor between them is now [0, value]: one INT8 step is ``value / 127``, far above
    the other channels' activations, which all round to a step or two.  Keeping
    ``consumer`` float (no Q/DQ on its input) repairs it; no other layer does.
    """
    import torch

    from fcn_edge.checkpoint import load_checkpoint, save_model

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model()
    with torch.no_grad():
        source, target = getattr(model, layer), getattr(model, consumer)
        channel = source.out_channels - 1
        source.weight[channel].zero_()
        source.bias[channel] = value
        target.weight[:, channel].zero_()
    return save_model(path, model.eval(), ckpt.info, training={"note": f"activation outlier planted in {layer}"})
