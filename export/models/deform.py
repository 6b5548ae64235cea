"""Deformable 3x3 convolution written for export, in four interchangeable forms.

Semantics are those of ``torchvision.ops.deform_conv2d`` (Dai et al. 2017, v1, one offset
group, no mask): output pixel p sums ``w[k] * x(p * stride - pad + dilation * k + offset_k(p))``
over the kernel taps k (row-major), where ``x(.)`` samples bilinearly and a corner outside
the image contributes zero. ``offset`` is (N, 2 * kh * kw, Ho, Wo) with (dy, dx) per tap.
torchvision itself is not a dependency (it breaks beside the CPU torch build we use); the
tests check every form against a direct per-pixel implementation of those semantics.

Forms (``DeformConv2d.form``), all numerically the same function:

- ``grid_sample``: ``grid_sample(x, p + offset, bilinear, zeros, align_corners=True)`` for all
  taps at once (their grids stacked along the height), then one Conv1x1 with the weight
  reshaped to (O, C * kh * kw). ONNX opset >= 16 (GridSample): ONNX Runtime, OpenVINO,
  TensorRT >= 8.5. Also the form we train with.
- ``matmul``: the same bilinear sampling as one MatMul: each sampling point's weight on input
  pixel (i, j) is ``relu(1 - |y - i|) * relu(1 - |x - j|)``, which is exactly the bilinear
  corner weight (and zero for pixels that are not corners; corners outside the image do not
  exist, hence zero padding). Sub, Abs, Relu, Mul, MatMul: ONNX opset 13, every target. The
  sampling matrix has ``H * W * kh * kw * Ho * Wo`` entries, so it suits small maps like the
  forecaster's 8x16 (147k entries; ONNX Runtime 1.32's CPU kernels ran the F2F-8 stage in
  4.1 ms this way against 10.4 ms as GridSample, 2 threads); at 32x64 it would be 38M entries
  per layer. The export default (EXPORT_DEFAULT_FORM).
- ``gather``: the same bilinear sampling from Floor, Gather (axis 0) and arithmetic, ONNX
  opset 13: for TensorRT 8.2 (Jetson TX2, JetPack 4), which has no GridSample.
- ``onnx``: the ONNX ``DeformConv`` operator (opset 19): TensorRT >= 10.1 and ONNX Runtime
  >= 1.25 run it natively. In PyTorch it is an opaque custom op (``swiftrt::deform_conv2d``,
  computed like ``grid_sample``, no autograd: for export) that the exporter maps to DeformConv.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DeformConv2d", "EXPORT_DEFAULT_FORM", "FORMS", "FORM_MIN_OPSET", "set_form", "sampling_positions"]

FORMS = ("matmul", "grid_sample", "gather", "onnx")
FORM_MIN_OPSET = {"matmul": 13, "grid_sample": 16, "gather": 13, "onnx": 19}
EXPORT_DEFAULT_FORM = "matmul"  # exact, opset 13, the fastest form every target runs (DeformConv: ORT/TRT 10 only)


def sampling_positions(offset: Tensor, in_size: Tuple[int, int], kernel: int, stride: int,
                       padding: int, dilation: int) -> Tuple[Tensor, Tensor]:
    """Absolute (y, x) sampling positions in input pixels, each (N, K, Ho, Wo), K = kernel^2."""
    n, _, ho, wo = offset.shape
    k = kernel * kernel
    offset = offset.reshape(n, k, 2, ho, wo)
    dtype, device = offset.dtype, offset.device
    base_y = torch.arange(ho, dtype=dtype, device=device) * stride - padding
    base_x = torch.arange(wo, dtype=dtype, device=device) * stride - padding
    tap = torch.arange(kernel, dtype=dtype, device=device) * dilation
    tap_y = tap.view(kernel, 1).expand(kernel, kernel).reshape(1, k, 1, 1)
    tap_x = tap.view(1, kernel).expand(kernel, kernel).reshape(1, k, 1, 1)
    y = base_y.view(1, 1, ho, 1) + tap_y + offset[:, :, 0]
    x = base_x.view(1, 1, 1, wo) + tap_x + offset[:, :, 1]
    return y, x


def _sample_grid_sample(x: Tensor, y: Tensor, xs: Tensor) -> Tensor:
    """Bilinear samples (N, C, K, Ho, Wo) by one GridSample for all taps (zeros outside).

    The K taps' grids are stacked along the output height, (N, K * Ho, Wo, 2): one op per
    deformable conv instead of K, fewer layers for TensorRT (on ONNX Runtime's CPU the F2F-8
    stage took about the same either way: 9.4 vs 9.9 ms).
    """
    h, w = int(x.shape[2]), int(x.shape[3])
    n, k, ho, wo = (int(s) for s in y.shape)
    # align_corners=True maps pixel centres 0 and size-1 to -1 and +1 exactly.
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0
    gy = y * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(n, k * ho, wo, 2)  # (x, y) order
    samples = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return samples.reshape(n, int(x.shape[1]), k, ho, wo)


def _sample_matmul(x: Tensor, y: Tensor, xs: Tensor) -> Tensor:
    """Bilinear samples (N, C, K, Ho, Wo) as x (N, C, H*W) @ tent weights (N, H*W, K*Ho*Wo)."""
    n, c, h, w = (int(s) for s in x.shape)
    _, k, ho, wo = (int(s) for s in y.shape)
    points = k * ho * wo
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, w, 1)
    weight_y = torch.relu(1.0 - torch.abs(y.reshape(n, 1, points) - rows))   # (N, H, P)
    weight_x = torch.relu(1.0 - torch.abs(xs.reshape(n, 1, points) - cols))  # (N, W, P)
    weights = (weight_y.unsqueeze(2) * weight_x.unsqueeze(1)).reshape(n, h * w, points)
    return torch.matmul(x.reshape(n, c, h * w), weights).reshape(n, c, k, ho, wo)


def _sample_gather(x: Tensor, y: Tensor, xs: Tensor) -> Tensor:
    """Bilinear samples (N, C, K, Ho, Wo) from Floor + Gather (axis 0) only: opset 13.

    The image is laid out as rows of channels, (N * H * W, C); each of the four corners
    is one Gather of flat indices clamped into the image, times its bilinear weight and a
    0/1 mask that zeroes corners outside (as torchvision and GridSample's zeros padding).
    """
    n, c, h, w = (int(s) for s in x.shape)
    _, k, ho, wo = (int(s) for s in y.shape)
    table = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    y0, x0 = torch.floor(y), torch.floor(xs)
    wy1, wx1 = y - y0, xs - x0
    wy0, wx0 = 1.0 - wy1, 1.0 - wx1
    batch = (torch.arange(n, device=x.device) * (h * w)).view(n, 1, 1, 1)
    out = None
    for cy, wy in ((y0, wy0), (y0 + 1.0, wy1)):
        inside_y = (cy >= 0) & (cy <= h - 1)
        row = cy.clamp(0, h - 1).to(torch.int64) * w
        for cx, wx in ((x0, wx0), (x0 + 1.0, wx1)):
            inside = inside_y & (cx >= 0) & (cx <= w - 1)
            index = batch + row + cx.clamp(0, w - 1).to(torch.int64)
            values = table[index.reshape(-1)].reshape(n, k, ho, wo, c)
            weight = (wy * wx * inside.to(x.dtype)).unsqueeze(-1)
            term = values * weight
            out = term if out is None else out + term
    return out.permute(0, 4, 1, 2, 3)  # (N, C, K, Ho, Wo)


@torch.library.custom_op("swiftrt::deform_conv2d", mutates_args=())
def _deform_conv2d_op(x: Tensor, weight: Tensor, offset: Tensor, bias: Optional[Tensor], stride: int,
                      padding: int, dilation: int) -> Tensor:
    """An opaque op that the TorchScript exporter turns into one ONNX DeformConv node."""
    kernel = int(weight.shape[-1])
    y, xs = sampling_positions(offset, (x.shape[2], x.shape[3]), kernel, stride, padding, dilation)
    return _project(_sample_grid_sample(x, y, xs), weight, bias)


@_deform_conv2d_op.register_fake
def _(x, weight, offset, bias, stride, padding, dilation):
    return x.new_empty((x.shape[0], weight.shape[0], offset.shape[2], offset.shape[3]))


def _deform_conv2d_symbolic(g, x, weight, offset, bias, stride, padding, dilation):
    from torch.onnx import symbolic_helper as sym
    stride, padding, dilation = (sym._get_const(v, "i", name) for v, name in
                                 ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    sizes = sym._get_tensor_sizes(weight)
    kernel = [int(sizes[2]), int(sizes[3])] if sizes and None not in sizes else [3, 3]
    inputs = [x, weight, offset] + ([] if sym._is_none(bias) else [bias])
    return g.op("DeformConv", *inputs, kernel_shape_i=kernel, strides_i=[stride, stride],
                pads_i=[padding] * 4, dilations_i=[dilation, dilation], group_i=1, offset_group_i=1)


def register_onnx_symbolic(opset: int = 19) -> None:
    """Teach the TorchScript ONNX exporter to write ``swiftrt::deform_conv2d`` as DeformConv."""
    torch.onnx.register_custom_op_symbolic("swiftrt::deform_conv2d", _deform_conv2d_symbolic, opset)


def _project(samples: Tensor, weight: Tensor, bias) -> Tensor:
    """(N, C, K, Ho, Wo) samples x weight (O, C, kh, kw) -> (N, O, Ho, Wo): one Conv1x1."""
    n, c, k, ho, wo = samples.shape
    out_channels = weight.shape[0]
    return F.conv2d(samples.reshape(n, c * k, ho, wo), weight.reshape(out_channels, c * k, 1, 1), bias)


class DeformConv2d(nn.Module):
    """Deformable convolution (torchvision semantics) whose exported form is selectable.

    ``weight`` (O, C, k, k) and optional ``bias`` are laid out like ``nn.Conv2d``'s (and
    torchvision's ``DeformConv2d``), so checkpoints do not depend on the form.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, bias: bool = False, form: str = "grid_sample"):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        self.form = form

    @property
    def form(self) -> str:
        return self._form

    @form.setter
    def form(self, value: str) -> None:
        if value not in FORMS:
            raise ValueError("deformable convolution form {!r} not one of {}".format(value, FORMS))
        self._form = value

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        if self.form == "onnx":
            register_onnx_symbolic()
            return _deform_conv2d_op(x, self.weight, offset, self.bias, self.stride, self.padding,
                                     self.dilation)
        y, xs = sampling_positions(offset, (x.shape[2], x.shape[3]), self.kernel_size, self.stride,
                                   self.padding, self.dilation)
        sample = {"gather": _sample_gather, "matmul": _sample_matmul}.get(self.form, _sample_grid_sample)
        return _project(sample(x, y, xs), self.weight, self.bias)

    def extra_repr(self) -> str:
        return "{}, {}, kernel_size={}, padding={}, form={}".format(
            self.weight.shape[1], self.weight.shape[0], self.kernel_size, self.padding, self.form)


def set_form(model: nn.Module, form: str) -> nn.Module:
    """Switch every DeformConv2d in ``model`` to ``form`` (before export); returns the model."""
    if form not in FORMS:
        raise ValueError("deformable convolution form {!r} not one of {}".format(form, FORMS))
    for module in model.modules():
        if isinstance(module, DeformConv2d):
            module.form = form
    return model
