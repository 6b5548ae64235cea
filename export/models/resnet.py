"""ResNet-18 encoder with torchvision's key names and no classifier.

Same names as ``torchvision.models.resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ...) so ImageNet weights and the published SwiftNet
checkpoints load unchanged. ``forward`` returns the four stage outputs (1/4 ... 1/32)
instead of class scores.

Which tensor a stage "outputs" matters for the published weights: single-scale SwiftNet
was trained on the post-ReLU stage outputs, pyramid SwiftNet on the pre-ReLU residual
sums of each stage's last block (the next stage still gets the ReLU'd tensor).
"""
from typing import List, Sequence, Tuple

from torch import Tensor, nn

__all__ = ["BasicBlock", "ResNet", "resnet18"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1/2 projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        # Not in-place: the pre-ReLU sum must survive for pyramid skips.
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward_with_pre_relu(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (residual sum before the final ReLU, block output)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + identity
        return out, self.relu(out)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_pre_relu(x)[1]


class ResNet(nn.Module):
    """ResNet stem + four stages; returns the stage outputs at strides 4, 8, 16, 32.

    Args:
        layers: number of BasicBlocks per stage ([2, 2, 2, 2] for ResNet-18).
        pre_relu_skips: return each stage's pre-ReLU residual sum instead of its
            post-ReLU output (pyramid SwiftNet).
    """

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), pre_relu_skips: bool = False):
        super().__init__()
        self.pre_relu_skips = pre_relu_skips
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.stage_channels = [64, 128, 256, 512]

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _run_stage(self, stage: nn.Sequential, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (skip tensor, input of the next stage)."""
        for block in stage[:-1]:
            x = block(x)
        pre, post = stage[-1].forward_with_pre_relu(x)
        return (pre if self.pre_relu_skips else post), post

    def forward(self, x: Tensor) -> List[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            skip, x = self._run_stage(stage, x)
            features.append(skip)
        return features


def resnet18(pre_relu_skips: bool = False) -> ResNet:
    """ResNet-18 encoder (11,176,512 parameters: torchvision's minus ``fc``)."""
    return ResNet([2, 2, 2, 2], pre_relu_skips=pre_relu_skips)
