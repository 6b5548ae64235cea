"""Semantic forecasting: the single-level SwiftNet and the F2F feature forecaster (DeformF2F).

Facts: Saric et al., "Single level feature-to-feature forecasting with deformable convolutions", GCPR 2019.

- ``swiftnet-rn18-sl``: ResNet-18 + the same SPP, then three upsampling steps **without
  skips** (bilinear x2, ``blend_conv`` BN-ReLU-Conv3x3 128->128) and BN-ReLU-Conv3x3(128->19)
  logits without bias. ``encode`` gives the SPP output (128 ch at 1/32: 8x16 at 256x512),
  the features that are forecast; ``decode`` turns such features into logits. It loads
  ``swiftnet-rn18`` checkpoints (their skip ``bottleneck`` convs are dropped), a start that
  keeps the encoder and SPP.
- ``f2f-8``: N pre-activation units on the standardized features of the past frames
  (t-9, t-6, t-3, t concatenated, 512 ch): unit 1 BN-ReLU-Conv3x3 512->128, units 2..N
  BN-ReLU-DeformConv3x3 128->128 whose offsets come from a regular 3x3 conv initialised to
  zero (so training starts from a plain convolution). The stack predicts the *change* of
  the newest frame's features: output = features(t) + F2F(...), so an untrained
  forecaster starts as copy-last. ``f2f-8-conv``: the same with plain 3x3 convs (ablation).
"""
from typing import Sequence

from torch import Tensor, nn

from . import register
from .blocks import BNReluConv, SpatialPyramidPooling, UpsampleBlend, spatial_size, upsample_to
from .deform import DeformConv2d
from .resnet import resnet18
from .swiftnet import IMAGENET_NORMALIZATION

__all__ = ["SwiftNetSingleLevel", "F2F", "PAST_OFFSETS"]

PAST_OFFSETS = (-9, -6, -3, 0)


class SwiftNetSingleLevel(nn.Module):
    """Single-level SwiftNet: ``forward(x) = decode(encode(x), size of x)``.

    Key layout follows swiftnet-rn18's (``backbone.spp``, ``backbone.upsample.{i}.blend_conv``,
    ``logits``), minus the skip bottlenecks, so the shared weights load from its checkpoints.
    """

    base_arch = "swiftnet-rn18"
    new_heads = ()
    # Keys of a swiftnet-rn18 checkpoint this model has no place for.
    base_extra_prefixes = ("backbone.upsample.0.bottleneck.", "backbone.upsample.1.bottleneck.",
                           "backbone.upsample.2.bottleneck.")

    def __init__(self, backbone: nn.Module, num_classes: int = 19, num_features: int = 128,
                 spp_grids: Sequence[int] = (8, 4, 2), spp_bn_momentum: float = 0.005):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.num_features = num_features
        self.normalization = dict(IMAGENET_NORMALIZATION)
        backbone.spp = SpatialPyramidPooling(backbone.stage_channels[3], num_features, num_features,
                                             grids=spp_grids, bn_momentum=spp_bn_momentum)
        backbone.upsample = nn.ModuleList([UpsampleBlend(num_features) for _ in range(3)])
        self.logits = BNReluConv(num_features, num_classes, k=3, bias=False)
        for module in (backbone.spp, backbone.upsample, self.logits):
            for sub in module.modules():
                if isinstance(sub, nn.Conv2d):
                    nn.init.kaiming_normal_(sub.weight, mode="fan_in", nonlinearity="relu")

    def encode(self, x: Tensor) -> Tensor:
        """Normalized image (N, 3, H, W) -> SPP features (N, 128, H/32, W/32)."""
        return self.backbone.spp(self.backbone(x)[-1])

    def decode(self, features: Tensor, size=None) -> Tensor:
        """Features at 1/32 -> logits at ``size`` (default 32 x the feature size)."""
        x = features
        for up in self.backbone.upsample:
            x = up(x)  # bilinear x2, blend_conv
        h, w = spatial_size(features)
        return upsample_to(self.logits(x), size or (32 * h, 32 * w))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x), spatial_size(x))


class F2FUnit(nn.Module):
    """Pre-activation unit: BN-ReLU then a 3x3 conv, deformable (offsets from a zero-init conv) or not."""

    def __init__(self, in_channels: int, out_channels: int, deformable: bool):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=False)
        self.deformable = bool(deformable)
        if deformable:
            self.offset = nn.Conv2d(in_channels, 2 * 9, 3, padding=1, bias=True)
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
            self.conv = DeformConv2d(in_channels, out_channels, 3, padding=1, bias=False)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
            nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.norm(x))
        if self.deformable:
            return self.conv(x, self.offset(x))
        return self.conv(x)


class F2F(nn.Module):
    """Forecasts standardized features at t + horizon from those of the past frames.

    Input (N, P * C, h, w): the P past frames' features concatenated oldest first (the
    newest, frame t, is the last C channels). Output (N, C, h, w).
    """

    def __init__(self, num_features: int = 128, num_past: int = 4, depth: int = 8, width: int = 128,
                 deformable: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError("F2F depth must be at least 2")
        self.num_features, self.num_past, self.depth = num_features, num_past, depth
        self.deformable = bool(deformable)
        units = [F2FUnit(num_past * num_features, width, deformable=False)]
        units += [F2FUnit(width, width, deformable) for _ in range(depth - 2)]
        units.append(F2FUnit(width, num_features, deformable))
        self.units = nn.Sequential(*units)
        # The last conv starts at zero: an untrained forecaster is exactly copy-last.
        nn.init.zeros_(units[-1].conv.weight)

    def forward(self, past: Tensor) -> Tensor:
        newest = past[:, (self.num_past - 1) * self.num_features:]
        return newest + self.units(past)


@register("swiftnet-rn18-sl", base="swiftnet-rn18")
def swiftnet_rn18_sl(num_classes: int = 19, **kwargs) -> SwiftNetSingleLevel:
    """Single-level SwiftNet (no skips) whose SPP features are forecast."""
    return SwiftNetSingleLevel(resnet18(pre_relu_skips=False), num_classes=num_classes, **kwargs)


@register("f2f-8")
def f2f_8(num_classes: int = 19, depth: int = 8, **kwargs) -> F2F:
    """DeformF2F-N (N = depth, default 8) on 4 past frames of 128-ch SPP features."""
    return F2F(depth=depth, deformable=True, **kwargs)


@register("f2f-8-conv")
def f2f_8_conv(num_classes: int = 19, depth: int = 8, **kwargs) -> F2F:
    """The ablation: F2F-N with plain 3x3 convolutions instead of deformable ones."""
    return F2F(depth=depth, deformable=False, **kwargs)

