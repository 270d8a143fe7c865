"""Initialising an FCN from ImageNet VGG16 weights and from an earlier FCN stage.

VGG16 weights come as a local file in torchvision's layout (``features.N`` /
``classifier.N``, e.g. ``vgg16-397923af.pth``); nothing is downloaded at run time.
fc6 and fc7 are VGG16's first two Linear layers reshaped into 7x7 and 1x1 convs, as
in the paper ("convolutionalization").
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from fcn_edge.errors import ArtifactError
from fcn_edge.models.fcn import VGG16_BLOCKS

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"

# torchvision's vgg16 `features` indices of the 13 convs, in order.
_FEATURE_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def vgg16_key_map() -> dict[str, str]:
    """torchvision key -> FCN key for every VGG16 parameter FCN uses (fc8 is dropped)."""
    names = [f"conv{b}_{i}" for b, (n, _) in enumerate(VGG16_BLOCKS, start=1) for i in range(1, n + 1)]
    mapping: dict[str, str] = {}
    for index, name in zip(_FEATURE_CONV_INDICES, names):
        mapping[f"features.{index}.weight"] = f"{name}.weight"
        mapping[f"features.{index}.bias"] = f"{name}.bias"
    mapping["classifier.0.weight"] = "fc6.weight"
    mapping["classifier.0.bias"] = "fc6.bias"
    mapping["classifier.3.weight"] = "fc7.weight"
    mapping["classifier.3.bias"] = "fc7.bias"
    return mapping


def load_vgg16_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a torchvision-layout VGG16 state_dict from a local file, weights only."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"VGG16 weights {path} not found; download them once with "
            f"`curl -LO {VGG16_URL}` (torchvision's vgg16-397923af.pth) and pass the file's path"
        )
    if path.stat().st_size == 0:
        raise ArtifactError(f"VGG16 weights {path} are empty (0 bytes); download them again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        from fcn_edge.checkpoint import describe_load_failure

        raise ArtifactError(f"{path} is not a readable PyTorch weights file: {describe_load_failure(exc, path)}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "features.0.weight" not in state:
        raise ArtifactError(f"{path} is not a VGG16 state_dict in torchvision's layout (no features.0.weight)")
    return state


def init_from_vgg16(model: nn.Module, vgg_state: dict[str, torch.Tensor] | str | os.PathLike) -> list[str]:
    """Copy VGG16's convs and fc6/fc7 into ``model``; return the FCN keys that were set."""
    if not isinstance(vgg_state, dict):
        vgg_state = load_vgg16_state_dict(vgg_state)
    target = model.state_dict()
    loaded: list[str] = []
    with torch.no_grad():
        for src_key, dst_key in vgg16_key_map().items():
            if src_key not in vgg_state:
                raise ArtifactError(f"VGG16 weights lack {src_key}: not a complete torchvision vgg16 state_dict")
            value = vgg_state[src_key]
            dst = target[dst_key]
            if value.numel() != dst.numel():
                raise ArtifactError(
                    f"VGG16 {src_key} has shape {tuple(value.shape)} but the model's {dst_key} needs "
                    f"{tuple(dst.shape)}: the weights do not match this model's width"
                )
            # Linear [out, in*7*7] -> Conv [out, in, 7, 7]: a reshape, same memory order.
            dst.copy_(value.reshape(dst.shape))
            loaded.append(dst_key)
    return loaded


def transfer_from(model: nn.Module, source: nn.Module | dict[str, torch.Tensor]) -> list[str]:
    """Staged training (32s -> 16s -> 8s): copy every parameter whose name and shape match.

    Layers the source lacks (e.g. score_pool3 when coming from 16s) keep their
    initialisation (zero scores, bilinear upsampling), as in the paper.
    """
    src = source.state_dict() if isinstance(source, nn.Module) else source
    target = model.state_dict()
    copied = []
    with torch.no_grad():
        for key, value in src.items():
            if key in target and target[key].shape == value.shape:
                target[key].copy_(value)
                copied.append(key)
    return copied
