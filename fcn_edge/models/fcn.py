"""FCN-32s, FCN-16s, FCN-8s and FCN-8s at-once on a VGG16 trunk (Long et al., CVPR 2015).

Layer names follow the widely used PyTorch port of the reference Caffe nets (conv1_1 ...
conv5_3, fc6, fc7, score_fr, score_pool3, score_pool4, upscore2, upscore_pool4,
upscore8; upscore for 32s, upscore16 for 16s) so its converted checkpoints
(fcn8s_from_caffe.pth and siblings) load with ``strict=True``.

Two geometries share one set of weights and differ only in paddings and crops:

``paper``
    The reference nets: conv1_1 padded by 100, ceil-mode pooling, fc6 unpadded, each
    fused map cropped at the Caffe offsets (8s: 5, 9, 31; 16s: 5, 27; 32s: 19).  Any
    input size works and the output equals the input size.
``aligned``
    The deployment geometry: conv1_1 padded by 1 like every other 3x3 conv, fc6 padded
    by 3 so the score map is exactly 1/32 of the input, and each transposed conv padded
    by a quarter of its kernel (stride/2) so a 2x/8x/16x/32x upsampling lands exactly
    on 1/16, 1/8 and full size: no crops at all.  That needs H and W to be multiples of
    32; other sizes are padded at the bottom/right up to the next multiple of 32 (zeros
    in normalised space, i.e. the mean colour) and the output is cropped back, so every
    size works and the output still equals the input size (``forward_padded`` does
    the same as graph ops without a Python branch, for dynamic-size ONNX export).
    At 500x500 the aligned net does about half the work of the paper net, whose
    100-pixel pad inflates every map.

The models take normalised float input ``[N, 3, H, W]`` (see
:class:`fcn_edge.artifacts.modelinfo.Preprocessing`) and return logits ``[N, C, H, W]``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from fcn_edge.models.upsampling import bilinear_kernel

# VGG16's conv blocks: (number of 3x3 convs, output channels at width 1.0)
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
FC_CHANNELS = 4096
ALIGN = 32  # total stride of the trunk


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier; never below 1."""
    return max(1, int(round(channels * width)))


class _VGGTrunk(nn.Module):
    """VGG16 conv1_1 ... fc7 with FCN's names; subclasses add the score/upsample head.

    Attributes are flat (``self.conv3_2``, not ``self.features[12]``) because the
    converted reference checkpoints are keyed that way.
    """

    # (crop offsets) for paper geometry, set by subclasses
    def __init__(self, num_classes: int = 21, width: float = 1.0, geometry: str = "paper") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        in_ch = 3
        for block, (n_convs, out) in enumerate(VGG16_BLOCKS, start=1):
            out_ch = scaled(out, width)
            for i in range(1, n_convs + 1):
                setattr(self, f"conv{block}_{i}", nn.Conv2d(in_ch, out_ch, 3, padding=1))
                setattr(self, f"relu{block}_{i}", nn.ReLU(inplace=True))
                in_ch = out_ch
            setattr(self, f"pool{block}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
        self.pool3_channels = scaled(256, width)
        self.pool4_channels = scaled(512, width)
        fc = scaled(FC_CHANNELS, width)
        self.fc6 = nn.Conv2d(in_ch, fc, 7)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(0.5)  # Caffe's element-wise dropout
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(0.5)
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        self.geometry = geometry

    # ------------------------------------------------------------------ geometry
    def set_geometry(self, geometry: str) -> "_VGGTrunk":
        """Switch paddings/crops between ``paper`` and ``aligned`` in place (weights unchanged)."""
        if geometry not in ("paper", "aligned"):
            raise ValueError(f"geometry must be 'paper' or 'aligned', got {geometry!r}")
        self.geometry = geometry
        paper = geometry == "paper"
        self.conv1_1.padding = (100, 100) if paper else (1, 1)
        self.fc6.padding = (0, 0) if paper else (3, 3)
        for block in range(1, 6):
            # Aligned inputs are always multiples of 32, so ceil mode changes nothing
            # there; floor mode keeps the exported MaxPool plain.
            getattr(self, f"pool{block}").ceil_mode = paper
        for module in self.upsampling_layers():
            stride = module.stride[0]
            module.padding = (0, 0) if paper else (stride // 2, stride // 2)
        return self

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        return [m for m in self.modules() if isinstance(m, nn.ConvTranspose2d)]

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """Kaiming convs (trainable from scratch), zero score layers, bilinear upsampling.

        Score layers start at zero as in the paper; transposed convs start as bilinear
        interpolation, like the reference nets.
        """
        for name, module in self.named_modules():
            if isinstance(module, nn.ConvTranspose2d):
                module.weight.data.copy_(bilinear_kernel(module.in_channels, module.kernel_size[0]))
            elif isinstance(module, nn.Conv2d):
                if name.startswith("score"):
                    nn.init.zeros_(module.weight)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ forward
    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (pool3, pool4, score_fr) for the input ``x``."""
        h = x
        pools = []
        for block, (n_convs, _) in enumerate(VGG16_BLOCKS, start=1):
            for i in range(1, n_convs + 1):
                h = getattr(self, f"relu{block}_{i}")(getattr(self, f"conv{block}_{i}")(h))
            h = getattr(self, f"pool{block}")(h)
            pools.append(h)
        h = self.drop6(self.relu6(self.fc6(h)))
        h = self.drop7(self.relu7(self.fc7(h)))
        return pools[2], pools[3], self.score_fr(h)

    def _head(self, x: torch.Tensor, pool3: torch.Tensor, pool4: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.geometry == "aligned":
            height, width = x.shape[-2:]
            if height % ALIGN or width % ALIGN:
                # Pad bottom/right to a multiple of 32, run, crop back: sizes stay H x W.
                return self.forward_padded(x)
        pool3, pool4, score = self._features(x)
        return self._head(x, pool3, pool4, score)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Aligned geometry at any size, as graph ops: pad to a multiple of 32, run, crop.

        The padding is ``ceil(H/32)*32 - H`` rows at the bottom and the same rule for
        columns at the right (zeros: the mean colour after normalisation), so it is zero
        at multiples of 32 and the result always equals :meth:`forward`'s.  Unlike
        :meth:`forward`, which skips the pad with a Python ``if`` when none is needed (no
        copy in eager mode; a static export folds the pad away), this has no branch on
        the input's size, so a graph traced with a dynamic height/width
        (``fcn-edge export --dynamic height,width``) is right for every size in its
        range instead of baking in the branch the example input took.
        """
        if self.geometry != "aligned":
            raise ValueError("forward_padded is for aligned geometry; paper-geometry nets take any size as they are")
        height, width = x.shape[-2], x.shape[-1]
        pad_h = (height + ALIGN - 1) // ALIGN * ALIGN - height
        pad_w = (width + ALIGN - 1) // ALIGN * ALIGN - width
        padded = F.pad(x, (0, pad_w, 0, pad_h))
        pool3, pool4, score = self._features(padded)
        out = self._head(padded, pool3, pool4, score)
        return out[:, :, :height, :width]

    @staticmethod
    def _crop(t: torch.Tensor, offset: int, like_h: int, like_w: int) -> torch.Tensor:
        return t[:, :, offset : offset + like_h, offset : offset + like_w]


class FCN32s(_VGGTrunk):
    """FCN-32s: score_fr upsampled 32x in one step (kernel 64, stride 32)."""

    arch = "fcn32s"

    def __init__(self, num_classes: int = 21, width: float = 1.0, geometry: str = "paper") -> None:
        super().__init__(num_classes, width, geometry)
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 64, stride=32, bias=False)
        self.reset_parameters()
        self.set_geometry(geometry)

    def _head(self, x, pool3, pool4, score):
        h = self.upscore(score)
        if self.geometry == "paper":
            h = self._crop(h, 19, x.shape[2], x.shape[3])
        return h


class FCN16s(_VGGTrunk):
    """FCN-16s: 2x upsampled score_fr + score of pool4, then 16x (kernel 32, stride 16)."""

    arch = "fcn16s"

    def __init__(self, num_classes: int = 21, width: float = 1.0, geometry: str = "paper") -> None:
        super().__init__(num_classes, width, geometry)
        self.score_pool4 = nn.Conv2d(self.pool4_channels, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore16 = nn.ConvTranspose2d(num_classes, num_classes, 32, stride=16, bias=False)
        self.reset_parameters()
        self.set_geometry(geometry)

    def _head(self, x, pool3, pool4, score):
        paper = self.geometry == "paper"
        up2 = self.upscore2(score)  # 1/16
        s4 = self.score_pool4(pool4)
        if paper:
            s4 = self._crop(s4, 5, up2.shape[2], up2.shape[3])
        h = self.upscore16(up2 + s4)
        if paper:
            h = self._crop(h, 27, x.shape[2], x.shape[3])
        return h


class FCN8s(_VGGTrunk):
    """FCN-8s: as 16s, then fused with the score of pool3 and upsampled 8x (kernel 16)."""

    arch = "fcn8s"
    # FCN-8s at-once scales the skip inputs so they start small next to score_fr.
    pool4_scale: float | None = None
    pool3_scale: float | None = None

    def __init__(self, num_classes: int = 21, width: float = 1.0, geometry: str = "paper") -> None:
        super().__init__(num_classes, width, geometry)
        self.score_pool3 = nn.Conv2d(self.pool3_channels, num_classes, 1)
        self.score_pool4 = nn.Conv2d(self.pool4_channels, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        self.reset_parameters()
        self.set_geometry(geometry)

    def _head(self, x, pool3, pool4, score):
        paper = self.geometry == "paper"
        up2 = self.upscore2(score)  # 1/16
        if self.pool4_scale is not None:
            pool4 = pool4 * self.pool4_scale
        s4 = self.score_pool4(pool4)
        if paper:
            s4 = self._crop(s4, 5, up2.shape[2], up2.shape[3])
        up4 = self.upscore_pool4(up2 + s4)  # 1/8
        if self.pool3_scale is not None:
            pool3 = pool3 * self.pool3_scale
        s3 = self.score_pool3(pool3)
        if paper:
            s3 = self._crop(s3, 9, up4.shape[2], up4.shape[3])
        h = self.upscore8(up4 + s3)
        if paper:
            h = self._crop(h, 31, x.shape[2], x.shape[3])
        return h


class FCN8sAtOnce(FCN8s):
    """FCN-8s trained all at once: pool4 scaled by 0.01 and pool3 by 0.0001 before scoring."""

    arch = "fcn8s-atonce"
    pool4_scale = 0.01
    pool3_scale = 0.0001


MODEL_CLASSES: dict[str, type[_VGGTrunk]] = {
    "fcn32s": FCN32s,
    "fcn16s": FCN16s,
    "fcn8s": FCN8s,
    "fcn8s-atonce": FCN8sAtOnce,
}
