"""Model definitions: key layouts of the published weights, forward shapes, an independent
functional forward written from the spec (models.md §1, §2), and ONNX export."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from export.models import available, create
from export.models.mobilenetv2 import mobilenet_v2
from export.models.resnet import resnet18
from runtime.errors import UserError

# Every key and shape of the published state_dicts (swiftnet_ss_cs.pt, swiftnet_pyr_cs.pt).
REF_KEYS = Path(__file__).resolve().parent / "data" / "swiftnet_reference_keys.json"
PUBLISHED = {"swiftnet-rn18": "swiftnet_ss_cs", "swiftnet-pyr-rn18": "swiftnet_pyr_cs"}
ARCHS = ["swiftnet-rn18", "swiftnet-pyr-rn18", "swiftnet-mn2"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def reference_keys(name):
    with open(REF_KEYS) as f:
        return [(k, list(s)) for k, s in json.load(f)[name]]


def random_state_dict(keys, seed=0):
    """Random tensors for a key list: convs He-scaled, BN stats non-trivial, running_var > 0."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in keys:
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(100, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith("running_mean") or k.endswith(".bias"):
            sd[k] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        else:  # BN weight
            sd[k] = torch.rand(shape, generator=g) + 0.5
    return sd


def randomize_bn(model, seed=0):
    """Random BN affine and running stats so eval-mode tests are not trivial."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = torch.rand(n, generator=g) + 0.5
    return model.eval()


# --------------------------------------------------------------------------- registry

def test_registry_lists_archs_and_rejects_unknown():
    assert set(ARCHS) <= set(available())
    with pytest.raises(UserError) as e:
        create("swiftnet-rn1000")
    assert "swiftnet-rn18" in str(e.value) and "swiftnet-mn2" in str(e.value)


def test_create_records_arch_and_kwargs():
    m = create("swiftnet-rn18", num_classes=7, logits_kernel=1)
    assert m.arch == "swiftnet-rn18"
    assert m.model_kwargs == {"num_classes": 7, "logits_kernel": 1}
    assert m.logits.conv.weight.shape == (7, 128, 1, 1)


# --------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_state_dict_equals_published_layout(arch):
    ref = reference_keys(PUBLISHED[arch])
    got = [(k, list(v.shape)) for k, v in create(arch).state_dict().items()]
    assert dict(got) == dict(ref)
    assert got == ref  # even the order is the same


@pytest.mark.parametrize("arch,expected", [("swiftnet-rn18", 11816508), ("swiftnet-pyr-rn18", 13045056)])
def test_parameter_count(arch, expected):
    # models.md's counts are trainable parameters only (conv weights, BN weight/bias);
    # BN running stats and num_batches_tracked are buffers and are not counted.
    model = create(arch)
    assert sum(p.numel() for p in model.parameters()) == expected
    if REF_KEYS.is_file():
        ref = reference_keys(PUBLISHED[arch])
        params = sum(math.prod(s) for k, s in ref
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        assert params == expected


def test_encoder_parameter_counts_match_torchvision():
    # torchvision resnet18: 11,689,512 incl. fc (513,000); mobilenet_v2: 3,504,872 incl. classifier (1,281,000)
    assert sum(p.numel() for p in resnet18().parameters()) == 11689512 - 513000
    assert sum(p.numel() for p in mobilenet_v2().parameters()) == 3504872 - 1281000


def test_mobilenetv2_torchvision_key_names():
    sd = {k: list(v.shape) for k, v in mobilenet_v2().state_dict().items()}
    expected = {
        "features.0.0.weight": [32, 3, 3, 3],            # stem conv
        "features.0.1.running_var": [32],                 # stem BN
        "features.1.conv.0.0.weight": [32, 1, 3, 3],      # t=1: depthwise first
        "features.1.conv.0.1.weight": [32],
        "features.1.conv.1.weight": [16, 32, 1, 1],       # project
        "features.1.conv.2.bias": [16],                   # project BN
        "features.2.conv.0.0.weight": [96, 16, 1, 1],     # t=6: expand
        "features.2.conv.0.1.weight": [96],
        "features.2.conv.1.0.weight": [96, 1, 3, 3],      # depthwise
        "features.2.conv.1.1.num_batches_tracked": [],
        "features.2.conv.2.weight": [24, 96, 1, 1],       # project
        "features.2.conv.3.running_mean": [24],
        "features.13.conv.2.weight": [96, 576, 1, 1],
        "features.17.conv.2.weight": [320, 960, 1, 1],
        "features.18.0.weight": [1280, 320, 1, 1],        # last 1x1 conv
        "features.18.1.weight": [1280],
    }
    for k, shape in expected.items():
        assert sd.get(k) == shape, k
    assert not any(k.startswith("classifier") for k in sd)
    assert len([k for k in sd if k.startswith("features.") and k.endswith(".weight")]) == 104
    assert max(int(k.split(".")[1]) for k in sd) == 18


def test_mobilenetv2_feature_strides_and_channels():
    with torch.no_grad():
        feats = mobilenet_v2().eval()(torch.randn(1, 3, 64, 128))
    assert [tuple(f.shape[1:]) for f in feats] == [(24, 16, 32), (32, 8, 16), (96, 4, 8), (1280, 2, 4)]


def test_swiftnet_mn2_keys():
    keys = create("swiftnet-mn2").state_dict().keys()
    assert "backbone.features.18.0.weight" in keys
    assert "backbone.spp.spp.spp_bn.conv.weight" in keys
    assert "backbone.upsample.2.bottleneck.conv.weight" in keys  # 24-ch skip at 1/4
    assert "logits.conv.weight" in keys
    sd = create("swiftnet-mn2").state_dict()
    assert sd["backbone.spp.spp.spp_bn.norm.weight"].shape == (1280,)
    assert [sd["backbone.upsample.{}.bottleneck.norm.weight".format(i)].shape[0] for i in range(3)] == [96, 32, 24]


def test_resnet_pre_and_post_relu_skips():
    torch.manual_seed(0)
    post_net = randomize_bn(resnet18(pre_relu_skips=False))
    pre_net = resnet18(pre_relu_skips=True).eval()
    pre_net.load_state_dict(post_net.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        post, pre = post_net(x), pre_net(x)
    for a, b in zip(post, pre):
        assert (b < 0).any()  # really pre-ReLU
        assert torch.equal(a, F.relu(b))  # and the next stage saw the same ReLU'd tensor


def test_spp_momentum_and_grids():
    spp = create("swiftnet-rn18").backbone.spp
    assert spp.spp["spp_bn"].norm.momentum == 0.005
    assert spp.grid_sizes(8, 16) == [(8, 16), (4, 8), (2, 4)]
    assert spp.grid_sizes(16, 32) == [(8, 16), (4, 8), (2, 4)]
    assert spp.grid_sizes(16, 16) == [(8, 8), (4, 4), (2, 2)]
    assert spp.grid_sizes(32, 8) == [(8, 2), (4, 1), (2, 1)]  # max(1, ...) floor


def test_dec2019_variant_normalizes_inside():
    march = randomize_bn(create("swiftnet-rn18"))
    dec = create("swiftnet-rn18", normalize_in_model=True, logits_kernel=1, logits_bias=True).eval()
    sd = dec.state_dict()
    assert sd["backbone.img_mean"].shape == (1, 3, 1, 1) and sd["backbone.img_std"].shape == (1, 3, 1, 1)
    assert torch.allclose(sd["backbone.img_mean"].flatten(), torch.tensor([73.15, 82.90, 72.3]))
    assert sd["logits.conv.weight"].shape == (19, 128, 1, 1) and sd["logits.conv.bias"].shape == (19,)
    assert set(sd) - set(march.state_dict()) == {"backbone.img_mean", "backbone.img_std", "logits.conv.bias"}
    assert dec.normalization == {"scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    assert march.normalization["scale"] == pytest.approx(1 / 255)
    assert march.normalization["mean"] == IMAGENET_MEAN and march.normalization["std"] == IMAGENET_STD
    # Same weights + ImageNet stats on the 0-255 scale inside == normalizing outside.
    shared = {k: v for k, v in march.state_dict().items() if not k.startswith("logits.conv")}
    dec.load_state_dict(shared, strict=False)
    dec.backbone.img_mean.copy_(torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
    dec.backbone.img_std.copy_(torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)
    rgb = torch.rand(1, 3, 64, 128) * 255
    normed = (rgb / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(dec.forward_features(rgb), march.forward_features(normed), atol=1e-4)


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(256, 512), (512, 1024)])
def test_forward_shapes(arch, size):
    model = create(arch).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.logits(feats)
        out = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    assert feats.shape == (1, 128, size[0] // 4, size[1] // 4)
    assert out.shape == (1, 19, *size)
    if size == (256, 512):
        with torch.no_grad():
            assert torch.equal(model(x), out)


def test_pyramid_odd_size():
    # ceil-consistent pyramid sizes: sums line up even when H, W are not multiples of 128
    model = create("swiftnet-pyr-rn18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 100, 150)).shape == (1, 19, 100, 150)


# --------------------------------------------------------------------------- functional reference
# Written directly from models.md, on the raw state_dict, sharing no code with export.models.

def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], training=False, momentum=0.0, eps=1e-5)


def _bn_relu_conv(x, sd, p):
    w = sd[p + ".conv.weight"]
    return F.conv2d(F.relu(_bn(x, sd, p + ".norm")), w, sd.get(p + ".conv.bias"), padding=w.shape[-1] // 2)


def _resnet18(x, sd, pre_relu):
    x = F.conv2d(x, sd["backbone.conv1.weight"], stride=2, padding=3)
    x = F.max_pool2d(F.relu(_bn(x, sd, "backbone.bn1")), 3, 2, 1)
    outs = []
    for layer in range(1, 5):
        for block in range(2):
            p = "backbone.layer{}.{}".format(layer, block)
            stride = 2 if layer > 1 and block == 0 else 1
            y = F.relu(_bn(F.conv2d(x, sd[p + ".conv1.weight"], stride=stride, padding=1), sd, p + ".bn1"))
            y = _bn(F.conv2d(y, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2")
            if p + ".downsample.0.weight" in sd:
                x = _bn(F.conv2d(x, sd[p + ".downsample.0.weight"], stride=stride), sd, p + ".downsample.1")
            pre = y + x
            x = F.relu(pre)
        outs.append(pre if pre_relu else x)
    return outs


def _up(x, hw):
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)


def reference_swiftnet_ss(x, sd):
    l1, l2, l3, l4 = _resnet18(x, sd, pre_relu=False)
    H, W = l4.shape[2:]
    s = "backbone.spp.spp."
    y = _bn_relu_conv(l4, sd, s + "spp_bn")
    levels = [y]
    for i, g in enumerate([8, 4, 2]):
        pooled = F.adaptive_avg_pool2d(y, (g, max(1, round(g * W / H))))
        levels.append(_up(_bn_relu_conv(pooled, sd, s + "spp{}".format(i)), (H, W)))
    y = _bn_relu_conv(torch.cat(levels, 1), sd, s + "spp_fuse")
    for i, skip in enumerate([l3, l2, l1]):
        p = "backbone.upsample.{}".format(i)
        skip = _bn_relu_conv(skip, sd, p + ".bottleneck")
        y = _bn_relu_conv(_up(y, skip.shape[2:]) + skip, sd, p + ".blend_conv")
    return _up(_bn_relu_conv(y, sd, "logits"), x.shape[2:])


def reference_swiftnet_pyr(x, sd):
    H, W = x.shape[2:]
    by_size = {}  # (h, w) -> summed projected features
    for scale in (1, 2, 4):
        img = x if scale == 1 else F.interpolate(x, size=(H // scale, W // scale), mode="bicubic",
                                                 align_corners=False)
        for k, f in enumerate(_resnet18(img, sd, pre_relu=True)):  # k = 0 for layer1
            f = _bn_relu_conv(f, sd, "backbone.upsample_bottlenecks.{}".format(3 - k))
            key = tuple(f.shape[2:])
            by_size[key] = by_size[key] + f if key in by_size else f
    sizes = sorted(by_size)  # coarsest first
    assert len(sizes) == 6
    y = by_size[sizes[0]]
    for i, size in enumerate(sizes[1:]):
        y = _bn_relu_conv(_up(y, size) + by_size[size], sd, "backbone.upsample_blends.{}.blend_conv".format(i))
    return _up(_bn_relu_conv(y, sd, "logits"), x.shape[2:])


@pytest.mark.parametrize("arch,reference,size", [
    ("swiftnet-rn18", reference_swiftnet_ss, (256, 512)),
    ("swiftnet-pyr-rn18", reference_swiftnet_pyr, (128, 256)),
])
def test_matches_functional_reference(arch, reference, size):
    ref_keys = reference_keys(PUBLISHED[arch])
    sd = random_state_dict(ref_keys, seed=1)
    model = create(arch)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x, sd)
        got = model(x)
    assert expected.abs().max() > 0.1  # not a degenerate all-zero comparison
    # float rounding only (the pyramid's bicubic steps are depthwise convs: another summation order)
    assert (got - expected).abs().max().item() < 1e-4 * max(1.0, expected.abs().max().item() / 10)


# --------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_export_matches_onnxruntime(arch, opset, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import warnings

    torch.manual_seed(3)
    model = randomize_bn(create(arch), seed=4)
    x = torch.randn(1, 3, 256, 512)
    path = tmp_path / "{}.onnx".format(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["logits"])
    graph = onnx.load(str(path)).graph
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in (graph.input[0], graph.output[0])]
    assert dims == [[1, 3, 256, 512], [1, 19, 256, 512]]
    # Static graph: every intermediate shape resolves to numbers (sizes were Python ints;
    # Resize's N,C still come from a Shape op, which shape inference folds).
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True, data_prop=True)
    dynamic = [v.name for v in inferred.graph.value_info
               if not all(d.HasField("dim_value") for d in v.type.tensor_type.shape.dim)]
    assert dynamic == []
    if arch == "swiftnet-pyr-rn18":
        modes = {a.s for n in graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"}
        assert b"cubic" not in modes  # TensorRT's Resize has no cubic mode: depthwise convs instead
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert abs(expected).max() > 0.1
    assert abs(got - expected).max() < 1e-3


@pytest.mark.parametrize("h, w, grid", [(4, 8, (8, 16)), (12, 24, (8, 16)), (5, 7, (2, 3)),
                                        (8, 16, (4, 8))])
def test_adaptive_pool_equals_pytorch_at_any_size(h, w, grid):
    """SPP pooling that exports at sizes the grid does not divide (e.g. 384x768)."""
    from export.models.blocks import adaptive_avg_pool
    x = torch.randn(2, 5, h, w)
    assert torch.allclose(adaptive_avg_pool(x, grid), F.adaptive_avg_pool2d(x, grid), atol=1e-6)
