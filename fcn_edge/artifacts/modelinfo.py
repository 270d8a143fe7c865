"""What a model is, carried by every artifact: checkpoint, ONNX metadata, engine sidecar.

:class:`ModelInfo` is the one description of a model that every stage reads, so each
command needs only the file before it.  It is plain data (JSON-serialisable dicts,
lists, strings and numbers) so it fits in a weights-only checkpoint, in ONNX
``metadata_props`` and in an engine's JSON sidecar alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

from fcn_edge.errors import ArtifactError

ARCHITECTURES = ("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce")
GEOMETRIES = ("paper", "aligned")
CHANNEL_ORDERS = ("BGR", "RGB")
# Bounds on what a description read from a file may claim: generous for any real model, small
# enough that a hostile or corrupt one cannot make a reader build gigabyte class lists.
MAX_CLASSES = 65536
MAX_SIDE = 65536

# Mean of the Caffe-converted VGG16/FCN weights, in BGR order, 0-255 pixel scale.
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)
# torchvision's ImageNet statistics, RGB order, 0-1 pixel scale.
IMAGENET_RGB_MEAN = (0.485, 0.456, 0.406)
IMAGENET_RGB_STD = (0.229, 0.224, 0.225)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def voc_palette(num_classes: int = 256) -> list[tuple[int, int, int]]:
    """PASCAL VOC's colour map (RGB): the bit-interleaving scheme its PNG masks use."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        cid = index
        for shift in range(7, -1, -1):
            r |= ((cid >> 0) & 1) << shift
            g |= ((cid >> 1) & 1) << shift
            b |= ((cid >> 2) & 1) << shift
            cid >>= 3
        palette.append((r, g, b))
    return palette


@dataclass
class Preprocessing:
    """How camera pixels become the network's float input.

    ``normalised = (pixel * scale - mean) / std`` per channel, where ``pixel`` is the
    0-255 value in ``model_channel_order`` and ``mean``/``std`` are given in that
    order.  ``input_channel_order`` is the order frames arrive in (OpenCV and most
    cameras deliver BGR); the exported graph reorders channels when the two differ.
    """

    model_channel_order: str = "BGR"
    input_channel_order: str = "BGR"
    mean: tuple[float, float, float] = CAFFE_BGR_MEAN
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        self.scale = float(self.scale)
        for name in ("model_channel_order", "input_channel_order"):
            value = str(getattr(self, name)).upper()
            if value not in CHANNEL_ORDERS:
                raise ArtifactError(f"preprocessing {name} must be BGR or RGB, got {value!r}")
            setattr(self, name, value)
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ArtifactError("preprocessing mean and std need three values (one per channel)")
        if any(s == 0 for s in self.std) or self.scale == 0:
            raise ArtifactError("preprocessing std and scale must be non-zero")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std, self.scale)):
            raise ArtifactError("preprocessing mean, std and scale must be finite numbers")

    @classmethod
    def caffe(cls) -> "Preprocessing":
        """The converted Caffe FCN/VGG weights: BGR, Caffe mean, no std scaling."""
        return cls()

    @classmethod
    def imagenet(cls) -> "Preprocessing":
        """torchvision's VGG16 weights: RGB, pixels/255, ImageNet mean and std."""
        return cls("RGB", "BGR", IMAGENET_RGB_MEAN, IMAGENET_RGB_STD, 1.0 / 255.0)

    @property
    def needs_channel_swap(self) -> bool:
        return self.model_channel_order != self.input_channel_order

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        if not isinstance(data, dict):
            raise ArtifactError("preprocessing is not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if key in kwargs and (isinstance(kwargs[key], (str, bytes)) or not isinstance(kwargs[key], (list, tuple))):
                raise ArtifactError(f"preprocessing {key} must be three numbers")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ArtifactError(f"invalid preprocessing: {exc}") from exc


@dataclass
class ModelInfo:
    """Architecture, geometry, classes and preprocessing of one trained model."""

    arch: str = "fcn8s"
    num_classes: int = 21
    geometry: str = "paper"
    width: float = 1.0
    class_names: list[str] = field(default_factory=list)
    palette: list[tuple[int, int, int]] = field(default_factory=list)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    input_size: tuple[int, int] | None = None  # (H, W) the model is meant to be deployed at
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ArtifactError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
        if self.geometry not in GEOMETRIES:
            raise ArtifactError(f"unknown geometry {self.geometry!r}; expected paper or aligned")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, numbers.Real) or \
                int(self.num_classes) != self.num_classes:
            raise ArtifactError(f"num_classes must be a whole number, got {self.num_classes!r}")
        self.num_classes = int(self.num_classes)
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise ArtifactError(f"num_classes must be 1 to {MAX_CLASSES}, got {self.num_classes}")
        self.width = float(self.width)
        if not (0 < self.width <= 64):
            raise ArtifactError(f"width must be a positive multiplier (e.g. 1 or 0.125), got {self.width}")
        if isinstance(self.class_names, (str, bytes)) or not isinstance(self.class_names, (list, tuple)):
            raise ArtifactError("class_names must be a list of names")
        if isinstance(self.palette, (str, bytes)) or not isinstance(self.palette, (list, tuple)):
            raise ArtifactError("palette must be a list of [R, G, B] colours")
        if not self.class_names:
            self.class_names = default_class_names(self.num_classes)
        if len(self.class_names) != self.num_classes:
            raise ArtifactError(f"{len(self.class_names)} class names given for {self.num_classes} classes")
        self.class_names = [str(n) for n in self.class_names]
        if not self.palette:
            self.palette = voc_palette(self.num_classes)
        self.palette = [tuple(int(c) for c in colour) for colour in self.palette[: self.num_classes]]  # type: ignore[misc]
        if len(self.palette) < self.num_classes:
            raise ArtifactError(f"palette has {len(self.palette)} colours for {self.num_classes} classes")
        if any(len(colour) != 3 or not all(0 <= c <= 255 for c in colour) for colour in self.palette):
            raise ArtifactError("palette colours must be three values 0-255 (R, G, B)")
        if isinstance(self.preprocessing, dict):
            self.preprocessing = Preprocessing.from_dict(self.preprocessing)
        if not isinstance(self.preprocessing, Preprocessing):
            raise ArtifactError("preprocessing must be a mapping (model_channel_order, mean, std, ...)")
        if self.input_size is not None:
            if isinstance(self.input_size, (str, bytes)) or len(self.input_size) != 2:
                raise ArtifactError(f"input_size must be [H, W], got {self.input_size!r}")
            self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
            if not all(1 <= v <= MAX_SIDE for v in self.input_size):
                raise ArtifactError(f"input_size must be two sides of 1 to {MAX_SIDE} pixels, got {self.input_size}")
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, numbers.Integral):
            raise ArtifactError(f"ignore_index must be a whole number, got {self.ignore_index!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "geometry": self.geometry,
            "width": self.width,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "preprocessing": self.preprocessing.to_dict(),
            "input_size": list(self.input_size) if self.input_size else None,
            "ignore_index": self.ignore_index,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        if not isinstance(data, dict):
            raise ArtifactError("model description is not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            if isinstance(kwargs.get("preprocessing"), dict):
                kwargs["preprocessing"] = Preprocessing.from_dict(kwargs["preprocessing"])
            return cls(**kwargs)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError) as exc:
            raise ArtifactError(f"invalid model description: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelInfo":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"model description is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "ModelInfo":
        return dataclasses.replace(self, **changes)


# Labels travel as uint8 up to 255 classes (ids 0..254), int32 beyond.  Not 256: 255 is
# the "ignore" value of VOC-style masks (ModelInfo.ignore_index), so a 256-class uint8 map
# could not tell class 255 from "no label" in eval, sinks or a robot's own code.
MAX_UINT8_CLASSES = 255


def label_dtype(num_classes: int) -> str:
    """The dtype name of class-id maps for a model with ``num_classes`` classes.

    The one rule for every stage: the exported graph's ``labels`` output, the runtime's
    :class:`~fcn_edge.runtime.base.InferenceResult`, the PyTorch backend and the engine.
    """
    return "uint8" if int(num_classes) <= MAX_UINT8_CLASSES else "int32"


# Confidence stored as uint8 (the export default): round(probability x 255), so
# probability = value / 255 (the export facts' ``confidence_scale``).
CONFIDENCE_UINT8_MAX = 255


def default_class_names(num_classes: int) -> list[str]:
    """VOC names for 21 classes, ``class_<i>`` otherwise."""
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """Parse ``"512x1024"`` / ``"512"`` / ``(512, 1024)`` into ``(H, W)``."""
    if not isinstance(text, str):
        h, w = (int(v) for v in text)
        return h, w
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise ValueError(f"size must look like HxW (e.g. 512x512), got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"size must look like HxW with positive numbers, got {text!r}")
    return values[0], values[1]
