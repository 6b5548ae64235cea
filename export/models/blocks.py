"""Building blocks of the SwiftNet decoders.

Module and child names follow the published SwiftNet checkpoints
(``norm``/``relu``/``conv``, ``spp.spp_bn``, ``bottleneck``/``blend_conv``) so that
their state_dicts load with ``strict=True``.

Every spatial size is computed as a Python ``int`` from the tensor shapes: under
``torch.onnx.export`` tracing this bakes them in as constants, so the exported
graphs have static shapes (TensorRT builds them best).
"""
import contextlib
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BNReluConv", "SpatialPyramidPooling", "UpsampleBlend", "adaptive_avg_pool", "bicubic_downsample",
           "spatial_size", "upsample_to"]


def spatial_size(x: Tensor) -> Tuple[int, int]:
    """(H, W) of an NCHW tensor as Python ints (constants in a traced graph)."""
    return int(x.shape[2]), int(x.shape[3])


def _pool_matrix(size_in: int, size_out: int) -> Tensor:
    """(size_out, size_in) matrix averaging the bins of PyTorch's adaptive pooling.

    Bin i covers [floor(i * n / m), ceil((i + 1) * n / m)), exactly as
    ``adaptive_avg_pool2d`` does, so results are identical.
    Built in numpy, so that a traced export records one constant instead of the slice
    assignments (ScatterND chains that TensorRT 8.x's parser types differently).
    """
    matrix = np.zeros((size_out, size_in), dtype=np.float32)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return torch.from_numpy(matrix)


def adaptive_avg_pool(x: Tensor, grid: Tuple[int, int]) -> Tensor:
    """Adaptive average pooling that exports to ONNX at any input size.

    When the grid divides the map this is ``adaptive_avg_pool2d`` (exported as
    AveragePool). Otherwise the ONNX exporter refuses adaptive pooling, so the
    same averages are computed as two MatMuls with constant pooling matrices,
    which every ONNX Runtime and TensorRT version runs.
    """
    h, w = spatial_size(x)
    if h % grid[0] == 0 and w % grid[1] == 0:
        return F.adaptive_avg_pool2d(x, grid)
    rows = _pool_matrix(h, grid[0]).to(x.dtype).to(x.device)
    cols = _pool_matrix(w, grid[1]).to(x.dtype).to(x.device)
    return torch.matmul(torch.matmul(rows, x), cols.t())


# Bicubic (a = -0.75, PyTorch's and ONNX's coefficient) weights of the 4 taps at distances
# 1.5, 0.5, 0.5, 1.5: where every output pixel of an exact 2x / 4x downsampling falls.
_BICUBIC_HALF_TAPS = (-0.09375, 0.59375, 0.59375, -0.09375)


def bicubic_downsample(x: Tensor, factor: int) -> Tensor:
    """``F.interpolate(x, size // factor, mode="bicubic", align_corners=False)`` for factor 2 or 4
    as a depthwise strided 4x4 convolution (edge padding 1 for factor 2: PyTorch clamps at the
    border). The same numbers (to float rounding), and an ONNX graph TensorRT can build: its
    Resize has no cubic mode on any version (onnx-tensorrt operators.md)."""
    if factor not in (2, 4):
        raise ValueError("bicubic_downsample: factor 2 or 4, got {}".format(factor))
    taps = torch.tensor(_BICUBIC_HALF_TAPS, dtype=x.dtype, device=x.device)
    channels = int(x.shape[1])
    kernel = (taps[:, None] * taps[None, :]).expand(channels, 1, 4, 4).contiguous()
    if factor == 2:  # edge padding by 1, as slices and concats (F.pad exports shape arithmetic)
        x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
        x = torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)
    return F.conv2d(x, kernel, stride=factor, groups=channels)


_CONSTANT_SCALES = [False]


@contextlib.contextmanager
def constant_scale_resizes():
    """Within it, integral upsampling is traced with constant scales (ONNX Resize scales
    [1, 1, s, s]) instead of sizes computed from Shape: the form TensorRT's DLA places on
    the DLA (runtime/plan/dla.py). The same numbers: with align_corners=False both map output
    pixel i to (i + 0.5) / s - 0.5."""
    _CONSTANT_SCALES[0] = True
    try:
        yield
    finally:
        _CONSTANT_SCALES[0] = False


def upsample_to(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bilinear resize with align_corners=False, the only upsampling SwiftNet uses."""
    h, w = spatial_size(x)
    if _CONSTANT_SCALES[0] and size[0] % h == 0 and size[1] % w == 0:
        return F.interpolate(x, scale_factor=(float(size[0] // h), float(size[1] // w)), mode="bilinear",
                             align_corners=False, recompute_scale_factor=False)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BNReluConv(nn.Sequential):
    """Pre-activation unit BN -> ReLU -> Conv (the reference's ``_BNReluConv``).

    A Sequential with children ``norm``, ``relu``, ``conv`` so keys read
    ``*.norm.weight`` and ``*.conv.weight`` as in the published weights.
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 3, bias: bool = False,
                 bn_momentum: float = 0.1, dilation: int = 1):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels, momentum=bn_momentum))
        # The ReLU acts on the fresh BN output, so in-place is safe.
        self.add_module("relu", nn.ReLU(inplace=True))
        padding = (k // 2) * dilation
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, k, padding=padding,
                                          dilation=dilation, bias=bias))


class SpatialPyramidPooling(nn.Module):
    """SwiftNet's SPP on the 1/32 features: widens the receptive field to the whole image.

    ``spp_bn`` squeezes the input to ``num_features`` channels; each level average-pools
    to a grid of ``(g, max(1, round(g * W / H)))`` cells (aspect-ratio aware), projects to
    ``num_features // len(grids)`` channels and is upsampled back; ``spp_fuse`` mixes
    the concatenation ``[spp_bn, level0, level1, ...]`` back to ``out_features``.

    The children live in a ModuleDict named ``spp`` because the published keys are
    ``backbone.spp.spp.*``.
    """

    def __init__(self, in_channels: int, num_features: int = 128, out_features: int = 128,
                 grids: Sequence[int] = (8, 4, 2), bn_momentum: float = 0.005):
        super().__init__()
        self.grids = tuple(int(g) for g in grids)
        level_features = num_features // len(self.grids)
        self.spp = nn.ModuleDict()
        self.spp["spp_bn"] = BNReluConv(in_channels, num_features, k=1, bn_momentum=bn_momentum)
        for i in range(len(self.grids)):
            self.spp["spp{}".format(i)] = BNReluConv(num_features, level_features, k=1,
                                                     bn_momentum=bn_momentum)
        fuse_in = num_features + len(self.grids) * level_features
        self.spp["spp_fuse"] = BNReluConv(fuse_in, out_features, k=1, bn_momentum=bn_momentum)

    def grid_sizes(self, h: int, w: int) -> List[Tuple[int, int]]:
        """Pooling grids for an h x w map; Python ints so export sees constants."""
        return [(g, max(1, int(round(g * w / h)))) for g in self.grids]

    def forward(self, x: Tensor) -> Tensor:
        size = spatial_size(x)
        x = self.spp["spp_bn"](x)
        levels = [x]
        for i, grid in enumerate(self.grid_sizes(*size)):
            level = adaptive_avg_pool(x, grid)
            level = self.spp["spp{}".format(i)](level)
            levels.append(upsample_to(level, size))
        return self.spp["spp_fuse"](torch.cat(levels, dim=1))


class UpsampleBlend(nn.Module):
    """One ladder step: upsample the coarse features, add a skip, blend with a 3x3 conv.

    With ``skip_channels`` set, the raw encoder skip first goes through ``bottleneck``
    (BN-ReLU-Conv1x1 to ``num_features``), as in single-scale SwiftNet. Without it the
    skip must already have ``num_features`` channels (pyramid SwiftNet sums projected
    features) or be omitted, in which case ``x`` is upsampled by ``scale``.
    """

    def __init__(self, num_features: int = 128, skip_channels: Optional[int] = None, k: int = 3,
                 bottleneck_k: int = 1, scale: int = 2):
        super().__init__()
        self.scale = int(scale)
        if skip_channels is not None:
            self.bottleneck = BNReluConv(skip_channels, num_features, k=bottleneck_k)
        else:
            self.bottleneck = None
        self.blend_conv = BNReluConv(num_features, num_features, k=k)

    def forward(self, x: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        if skip is None:
            h, w = spatial_size(x)
            return self.blend_conv(upsample_to(x, (h * self.scale, w * self.scale)))
        if self.bottleneck is not None:
            skip = self.bottleneck(skip)
        x = upsample_to(x, spatial_size(skip))
        return self.blend_conv(x + skip)
