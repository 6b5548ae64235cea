"""SwiftNet semantic segmentation networks (Oršić et al., CVPR 2019).

Three registered architectures:

- ``swiftnet-rn18``: ResNet-18 + SPP + three ladder upsampling steps (single scale).
- ``swiftnet-pyr-rn18``: the same ResNet-18 run on a 3-level image pyramid, features
  of equal resolution summed, blended from the coarsest map (pyramidal fusion).
- ``swiftnet-mn2``: the single-scale decoder on a MobileNetV2 encoder.
- ``swiftnet-rn18-ood``: ``swiftnet-rn18`` plus a dense outlier head ``logits_conf``
  (BN-ReLU-Conv1x1 128->2 on the same 1/4 features); ``forward`` returns
  ``(logits, conf_logits)``, channel 0 of ``softmax(conf_logits)`` is P(inlier) and the
  outlier score is ``1 - P(inlier)`` (:func:`outlier_score`).

The decoder modules are attached *under* ``backbone`` (``backbone.spp``,
``backbone.upsample``, ...) only because the published checkpoints name them so;
``forward`` keeps encoder and decoder apart. Every model exposes ``forward(x)`` (logits
at input resolution), ``forward_features(x)`` (128-ch features at 1/4, where extra
heads attach) and ``normalization`` (how to turn RGB 0-255 into its input:
``(x * scale - mean) / std``).
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import register
from .blocks import (BNReluConv, SpatialPyramidPooling, UpsampleBlend, bicubic_downsample, spatial_size,
                     upsample_to)
from .mobilenetv2 import mobilenet_v2
from .resnet import resnet18

__all__ = ["SwiftNet", "SwiftNetPyramid", "SwiftNetOOD", "outlier_score", "IMAGENET_NORMALIZATION", "DEC2019_MEAN", "DEC2019_STD"]

# Input convention of the March-2019 weights and of our own models.
IMAGENET_NORMALIZATION = dict(scale=1.0 / 255, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
# In-model normalization of the December-2019 reference code (RGB 0-255).
DEC2019_MEAN = [73.15, 82.90, 72.3]
DEC2019_STD = [47.67, 48.49, 47.73]
IDENTITY_NORMALIZATION = dict(scale=1.0, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])


class _SwiftNetBase(nn.Module):
    """What all variants share: optional in-model normalization and the logits head."""

    def __init__(self, backbone: nn.Module, num_classes: int, num_features: int,
                 logits_kernel: int, logits_bias: bool, normalize_in_model: bool,
                 img_mean: Optional[Sequence[float]], img_std: Optional[Sequence[float]]):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.num_features = num_features
        self.normalize_in_model = normalize_in_model
        if normalize_in_model:
            # Dec-2019 layout: buffers live in backbone's state_dict (backbone.img_mean).
            mean = torch.tensor(img_mean or DEC2019_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
            std = torch.tensor(img_std or DEC2019_STD, dtype=torch.float32).view(1, 3, 1, 1)
            backbone.register_buffer("img_mean", mean)
            backbone.register_buffer("img_std", std)
            self.normalization = dict(IDENTITY_NORMALIZATION)
        else:
            self.normalization = dict(IMAGENET_NORMALIZATION)
        self.logits = BNReluConv(num_features, num_classes, k=logits_kernel, bias=logits_bias)

    def _init_decoder(self, modules: List[nn.Module]) -> None:
        for m in modules:
            for sub in m.modules():
                if isinstance(sub, nn.Conv2d):
                    nn.init.kaiming_normal_(sub.weight, mode="fan_in", nonlinearity="relu")
                    if sub.bias is not None:
                        nn.init.zeros_(sub.bias)

    def normalize(self, x: Tensor) -> Tensor:
        if self.normalize_in_model:
            return (x - self.backbone.img_mean) / self.backbone.img_std
        return x

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (N, num_classes, H, W) at the input resolution."""
        size = spatial_size(x)
        return upsample_to(self.logits(self.forward_features(x)), size)


class SwiftNet(_SwiftNetBase):
    """Single-scale SwiftNet: encoder -> SPP at 1/32 -> 3 ladder steps to 1/4.

    Args:
        backbone: encoder returning 4 feature maps (1/4 ... 1/32) and listing their
            widths in ``stage_channels``.
        logits_kernel, logits_bias: 3 / False for the March-2019 weights,
            1 / True for the December-2019 code.
        normalize_in_model: take RGB 0-255 and normalize with ``img_mean``/``img_std``
            buffers (December-2019 layout) instead of expecting normalized input.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 19, num_features: int = 128,
                 spp_grids: Sequence[int] = (8, 4, 2), spp_bn_momentum: float = 0.005,
                 logits_kernel: int = 3, logits_bias: bool = False, normalize_in_model: bool = False,
                 img_mean: Optional[Sequence[float]] = None, img_std: Optional[Sequence[float]] = None):
        super().__init__(backbone, num_classes, num_features, logits_kernel, logits_bias,
                         normalize_in_model, img_mean, img_std)
        channels = list(backbone.stage_channels)
        backbone.spp = SpatialPyramidPooling(channels[3], num_features, num_features,
                                             grids=spp_grids, bn_momentum=spp_bn_momentum)
        # Coarse to fine: skips from stage 3 (1/16), 2 (1/8), 1 (1/4).
        backbone.upsample = nn.ModuleList(
            [UpsampleBlend(num_features, skip_channels=c) for c in reversed(channels[:3])])
        self._init_decoder([backbone.spp, backbone.upsample, self.logits])

    def forward_features(self, x: Tensor) -> Tensor:
        """128-channel features at 1/4 resolution, before ``logits``."""
        *skips, x = self.backbone(self.normalize(x))
        x = self.backbone.spp(x)
        for up, skip in zip(self.backbone.upsample, reversed(skips)):
            x = up(x, skip)
        return x


class SwiftNetPyramid(_SwiftNetBase):
    """SwiftNet with pyramidal fusion: one shared encoder on an image pyramid, no SPP.

    Level ``i`` (image scale 1/2^i) has its stage ``k`` output (k = 0 for layer1) at
    resolution 1/(4 * 2^(k+i)); each output goes through the stage's shared
    ``upsample_bottlenecks`` (BN-ReLU-Conv3x3 to 128), outputs of equal resolution are
    summed, and the sums are blended from the coarsest upward by ``upsample_blends``.
    Pyramid levels are ceil(H / 2^i) x ceil(W / 2^i): the encoder's stride-2 layers
    all produce ceil(n / 2), so these sizes line up exactly across levels.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 19, num_features: int = 128,
                 pyramid_levels: int = 3, logits_kernel: int = 3, logits_bias: bool = False,
                 normalize_in_model: bool = False, img_mean: Optional[Sequence[float]] = None,
                 img_std: Optional[Sequence[float]] = None):
        super().__init__(backbone, num_classes, num_features, logits_kernel, logits_bias,
                         normalize_in_model, img_mean, img_std)
        self.pyramid_levels = int(pyramid_levels)
        channels = list(backbone.stage_channels)
        # Index 0 projects the deepest stage (layer4), as in the published keys.
        backbone.upsample_bottlenecks = nn.ModuleList(
            [BNReluConv(c, num_features, k=3) for c in reversed(channels)])
        num_resolutions = len(channels) + self.pyramid_levels - 1
        backbone.upsample_blends = nn.ModuleList(
            [UpsampleBlend(num_features) for _ in range(num_resolutions - 1)])
        self._init_decoder([backbone.upsample_bottlenecks, backbone.upsample_blends, self.logits])

    def image_pyramid(self, x: Tensor) -> List[Tensor]:
        """[x, x at 1/2, x at 1/4, ...] by bicubic resizing (inside the exported graph; exact 2x/4x
        steps as depthwise convolutions, which TensorRT builds: see bicubic_downsample)."""
        h, w = spatial_size(x)
        levels = [x]
        for i in range(1, self.pyramid_levels):
            f = 2 ** i
            if h % f == 0 and w % f == 0 and f in (2, 4):
                levels.append(bicubic_downsample(x, f))
                continue
            size = ((h + f - 1) // f, (w + f - 1) // f)
            levels.append(F.interpolate(x, size=size, mode="bicubic", align_corners=False))
        return levels

    def forward_features(self, x: Tensor) -> Tensor:
        """128-channel features at 1/4 resolution, before ``logits``."""
        bottlenecks = self.backbone.upsample_bottlenecks
        num_stages = len(bottlenecks)
        # sums[r]: summed projected features at resolution 1/(4 * 2^r).
        sums: List[Optional[Tensor]] = [None] * len(self.backbone.upsample_blends) + [None]
        for level, image in enumerate(self.image_pyramid(self.normalize(x))):
            for stage, feature in enumerate(self.backbone(image)):
                feature = bottlenecks[num_stages - 1 - stage](feature)
                r = level + stage
                sums[r] = feature if sums[r] is None else sums[r] + feature
        x = sums[-1]
        for blend, skip in zip(self.backbone.upsample_blends, reversed(sums[:-1])):
            x = blend(x, skip)
        return x


def outlier_score(conf_logits: Tensor) -> Tensor:
    """(N, 2, H, W) outlier-head logits -> (N, H, W) score 1 - P(inlier) in [0, 1].

    Computed as sigmoid(c1 - c0), which equals 1 - softmax(c)[:, 0] exactly but keeps
    its precision for scores near 0 (and is one op fewer in the exported graph).
    """
    return torch.sigmoid(conf_logits[:, 1] - conf_logits[:, 0])


class SwiftNetOOD(SwiftNet):
    """Single-scale SwiftNet with a dense outlier head beside the class head.

    ``logits_conf`` (BN-ReLU-Conv1x1, 128 -> 2, biased) reads the same 1/4-resolution
    features as ``logits``; ``forward`` returns ``(logits, conf_logits)``, both bilinearly
    upsampled to the input size. ``new_heads`` lists the modules that a plain
    ``base_arch`` checkpoint does not have (they start freshly initialised).
    """

    outlier_head = True
    base_arch = "swiftnet-rn18"
    new_heads = ("logits_conf",)

    def __init__(self, backbone: nn.Module, num_classes: int = 19, **kwargs):
        super().__init__(backbone, num_classes=num_classes, **kwargs)
        self.logits_conf = BNReluConv(self.num_features, 2, k=1, bias=True)
        self._init_decoder([self.logits_conf])

    def forward(self, x: Tensor):  # type: ignore[override]
        """(class logits (N, C, H, W), outlier-head logits (N, 2, H, W)) at the input size."""
        size = spatial_size(x)
        features = self.forward_features(x)
        return (upsample_to(self.logits(features), size),
                upsample_to(self.logits_conf(features), size))


@register("swiftnet-rn18")
def swiftnet_rn18(num_classes: int = 19, **kwargs) -> SwiftNet:
    """Single-scale SwiftNet on ResNet-18; post-ReLU skips as the published weights expect."""
    return SwiftNet(resnet18(pre_relu_skips=False), num_classes=num_classes, **kwargs)


@register("swiftnet-pyr-rn18")
def swiftnet_pyr_rn18(num_classes: int = 19, **kwargs) -> SwiftNetPyramid:
    """Pyramid-fusion SwiftNet on ResNet-18; pre-ReLU skips as the published weights expect."""
    return SwiftNetPyramid(resnet18(pre_relu_skips=True), num_classes=num_classes, **kwargs)


@register("swiftnet-mn2")
def swiftnet_mn2(num_classes: int = 19, **kwargs) -> SwiftNet:
    """Single-scale SwiftNet on MobileNetV2 (skips 24/32/96 ch, SPP on 1280 ch)."""
    return SwiftNet(mobilenet_v2(), num_classes=num_classes, **kwargs)


@register("swiftnet-rn18-ood", base="swiftnet-rn18")
def swiftnet_rn18_ood(num_classes: int = 19, **kwargs) -> SwiftNetOOD:
    """swiftnet-rn18 + dense outlier head (loads swiftnet-rn18 weights with a new head)."""
    return SwiftNetOOD(resnet18(pre_relu_skips=False), num_classes=num_classes, **kwargs)
