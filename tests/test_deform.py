"""Deformable convolution: every form equals torchvision's semantics, in PyTorch and exported.

The reference below is a direct per-output-pixel transcription of torchvision's
``deform_conv2d`` (bilinear sampling, a corner outside the image contributes zero,
(dy, dx) per tap in row-major tap order); torchvision itself cannot be installed beside
the CPU torch build, so this independent implementation is what all forms must match.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.models.deform import FORM_MIN_OPSET, FORMS, DeformConv2d, set_form


def _bilinear(img, y, x):
    """torchvision's bilinear_interpolate for one channel plane."""
    h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    ly, lx = y - y0, x - x0
    value = 0.0
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                value += wy * wx * img[yy, xx]
    return value


def reference_deform_conv(x, offset, weight, bias=None, padding=1):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = offset.shape[2], offset.shape[3]
    out = np.zeros((n, o, ho, wo), dtype=np.float64)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                cols = np.zeros((c, kh * kw))
                for ki in range(kh):
                    for kj in range(kw):
                        k = ki * kw + kj
                        y = i - padding + ki + offset[b, 2 * k, i, j]
                        xx = j - padding + kj + offset[b, 2 * k + 1, i, j]
                        for ch in range(c):
                            cols[ch, k] = _bilinear(x[b, ch], y, xx)
                out[b, :, i, j] = np.tensordot(weight.reshape(o, c, kh * kw), cols, axes=([1, 2], [0, 1]))
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def _case(seed=0, n=2, c=3, o=4, h=5, w=7, scale=2.5, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    # Large offsets so that many taps fall between pixels, on borders and outside the image.
    offset = torch.randn(n, 18, h, w, generator=g) * scale
    offset[0, 0, 0, 0] = -1.0  # exactly on the y = -1 boundary
    offset[0, 3, 1, 1] = 0.0   # an integer position
    conv = DeformConv2d(c, o, 3, padding=1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        if bias:
            conv.bias.copy_(torch.randn(o, generator=g))
    return conv, x, offset


@pytest.mark.parametrize("form", FORMS)
def test_every_form_matches_torchvision_semantics_in_pytorch(form):
    conv, x, offset = _case()
    expected = reference_deform_conv(x.double().numpy(), offset.double().numpy(),
                                     conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy())
    conv.form = form
    with torch.no_grad():
        got = conv(x, offset).numpy()
    assert np.abs(got - expected).max() < 1e-4


def test_zero_offsets_equal_a_plain_convolution():
    conv, x, _ = _case(bias=False)
    with torch.no_grad():
        plain = torch.nn.functional.conv2d(x, conv.weight, padding=1)
        got = conv(x, torch.zeros(2, 18, 5, 7))
    assert torch.allclose(got, plain, atol=1e-5)


def test_gradients_flow_to_offsets_and_weights():
    conv, x, offset = _case()
    offset = offset.clone().requires_grad_(True)
    conv(x, offset).sum().backward()
    assert offset.grad.abs().sum() > 0 and conv.weight.grad.abs().sum() > 0


class _Wrapper(torch.nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, offset):
        return self.conv(x, offset)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_exports_and_runs_in_onnx_runtime(form, tmp_path):
    conv, x, offset = _case(seed=1, n=1, c=4, o=5, h=6, w=8)
    expected = reference_deform_conv(x.double().numpy(), offset.double().numpy(),
                                     conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy())
    module = _Wrapper(set_form(conv, form)).eval()
    path = str(tmp_path / "deform_{}.onnx".format(form))
    opset = FORM_MIN_OPSET[form]
    torch.onnx.export(module, (x, offset), path, input_names=["x", "offset"], output_names=["y"],
                      opset_version=opset, dynamo=False)
    model = onnx.load(path)
    ops = {node.op_type for node in model.graph.node}
    assert model.opset_import[0].version == opset
    if form == "onnx":
        assert "DeformConv" in ops
    elif form == "grid_sample":
        assert "GridSample" in ops and "DeformConv" not in ops
    elif form == "matmul":
        assert "MatMul" in ops and not ops & {"GridSample", "DeformConv", "GatherElements", "GatherND"}
    else:  # TensorRT 8.2 has neither GridSample nor DeformConv
        assert not ops & {"GridSample", "DeformConv", "GatherElements", "GatherND"}
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy(), "offset": offset.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4
