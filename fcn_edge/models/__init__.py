"""The FCN model family: ``build_model(name, num_classes, geometry, width)``."""

from __future__ import annotations

from fcn_edge.models.fcn import FCN8s, FCN8sAtOnce, FCN16s, FCN32s, MODEL_CLASSES
from fcn_edge.models.vgg import init_from_vgg16, transfer_from

__all__ = [
    "FCN32s", "FCN16s", "FCN8s", "FCN8sAtOnce", "MODEL_NAMES",
    "build_model", "init_from_vgg16", "transfer_from", "count_parameters",
]

MODEL_NAMES = tuple(MODEL_CLASSES)


def build_model(name: str, num_classes: int = 21, geometry: str = "paper", width: float = 1.0):
    """Build an FCN by name: ``fcn32s``, ``fcn16s``, ``fcn8s`` or ``fcn8s-atonce``.

    ``geometry`` is ``paper`` (reference Caffe paddings and crops) or ``aligned``
    (deployment geometry, no 100-pixel pad); ``width`` scales every channel count,
    fc6/fc7 included, for tiny test and demo models.
    """
    key = name.lower().replace("_", "-")
    if key not in MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if geometry not in ("paper", "aligned"):
        raise ValueError(f"geometry must be 'paper' or 'aligned', got {geometry!r}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return MODEL_CLASSES[key](num_classes=int(num_classes), width=float(width), geometry=geometry)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
