"""MobileNetV2 encoder with torchvision's key names and no classifier.

The module tree mirrors ``torchvision.models.mobilenet_v2`` (``features.0`` ...
``features.18``; inverted residuals under ``conv.*``) so a user's ImageNet weights load
after dropping ``classifier.*``. ``forward`` returns the features SwiftNet needs: at
1/4 (after ``features.3``, 24 ch), 1/8 (``features.6``, 32 ch), 1/16 (``features.13``,
96 ch) and 1/32 (``features.18``, 1280 ch).
"""
from typing import List

from torch import Tensor, nn

__all__ = ["ConvBNReLU6", "InvertedResidual", "MobileNetV2", "mobilenet_v2"]


class ConvBNReLU6(nn.Sequential):
    """Conv -> BN -> ReLU6, children ``0``, ``1``, ``2`` (torchvision's Conv2dNormActivation)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), residual when shapes allow.

    Without expansion (t = 1) ``conv`` is [dw ConvBNReLU6, Conv1x1, BN]; otherwise
    [pw ConvBNReLU6, dw ConvBNReLU6, Conv1x1, BN], exactly torchvision's indices.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) feature extractor returning four pyramid levels."""

    # t (expansion), c (channels), n (repeats), s (stride of the first repeat)
    SETTING = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    # Indices into ``features`` whose outputs are returned (1/4, 1/8, 1/16, 1/32).
    OUT_INDICES = (3, 6, 13, 18)

    def __init__(self, last_channel: int = 1280):
        super().__init__()
        features: List[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        inp = 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(ConvBNReLU6(inp, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.stage_channels = [24, 32, 96, last_channel]

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> List[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.OUT_INDICES:
                out.append(x)
        return out


def mobilenet_v2() -> MobileNetV2:
    """MobileNetV2 encoder (2,223,872 parameters: torchvision's minus ``classifier``)."""
    return MobileNetV2()
