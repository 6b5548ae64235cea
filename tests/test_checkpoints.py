"""Checkpoint loading: published March/December-2019 layouts, wrappers, one-line errors,
and our own format (incl. fp16 storage)."""
import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from export.checkpoints import FORMAT, load_checkpoint, save_checkpoint
from export.models import create
from runtime.errors import UserError

# Every key and shape of the published state_dicts (swiftnet_ss_cs.pt, swiftnet_pyr_cs.pt).
REF_KEYS = Path(__file__).resolve().parent / "data" / "swiftnet_reference_keys.json"
PUBLISHED = {"swiftnet-rn18": "swiftnet_ss_cs", "swiftnet-pyr-rn18": "swiftnet_pyr_cs"}
CITYSCAPES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
              "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
              "motorcycle", "bicycle"]


def published_state_dict(arch, seed=0):
    """A stand-in for the published file: every reference key with a random tensor."""
    with open(REF_KEYS) as f:
        keys = json.load(f)[PUBLISHED[arch]]
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in keys:
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 4:
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        else:
            sd[k] = 0.1 * torch.randn(shape, generator=g) + (1.0 if k.endswith("norm.weight") else 0.0)
    return sd


def dec2019_state_dict(seed=0):
    sd = published_state_dict("swiftnet-rn18", seed)
    sd["backbone.img_mean"] = torch.tensor([73.15, 82.90, 72.3]).view(1, 3, 1, 1)
    sd["backbone.img_std"] = torch.tensor([47.67, 48.49, 47.73]).view(1, 3, 1, 1)
    sd["logits.conv.weight"] = 0.1 * torch.randn(19, 128, 1, 1)
    sd["logits.conv.bias"] = 0.1 * torch.randn(19)
    return sd


def assert_loaded(model, sd):
    got = model.state_dict()
    assert set(got) == set(sd)
    for k, v in sd.items():
        assert torch.equal(got[k], v.to(got[k].dtype)), k


def one_line_error(fn):
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- published layouts

@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_march2019_loads_strictly(arch, tmp_path):
    sd = published_state_dict(arch)
    path = tmp_path / "published.pt"
    torch.save(sd, str(path))
    model, info = load_checkpoint(arch, path)
    assert_loaded(model, sd)
    assert not model.training
    assert info["layout"] == "march2019"
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["classes"] is None and info["input_size"] is None and info["metadata"] == {}
    assert info["normalization"]["scale"] == pytest.approx(1 / 255)
    assert info["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert info["normalization"]["std"] == [0.229, 0.224, 0.225]


@pytest.mark.parametrize("wrap", [
    lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}},
    lambda sd: {"model": sd, "epoch": 3},
    lambda sd: {"module." + k: v for k, v in sd.items()},
])
def test_wrapped_and_dataparallel(wrap, tmp_path):
    sd = published_state_dict("swiftnet-rn18")
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(sd), str(path))
    model, info = load_checkpoint("swiftnet-rn18", path)
    assert_loaded(model, sd)
    assert info["layout"] == "march2019"


def test_dec2019_detected(tmp_path):
    sd = dec2019_state_dict()
    path = tmp_path / "dec.pt"
    torch.save(sd, str(path))
    model, info = load_checkpoint("swiftnet-rn18", path)
    assert info["layout"] == "dec2019"
    assert_loaded(model, sd)
    assert model.logits.conv.kernel_size == (1, 1) and model.logits.conv.bias is not None
    assert info["normalization"] == {"scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    # The model takes RGB 0-255 and normalizes itself.
    rgb = torch.full((1, 3, 64, 128), 128.0)
    assert torch.allclose(model.normalize(rgb)[0, :, 0, 0],
                          (128 - torch.tensor([73.15, 82.90, 72.3])) / torch.tensor([47.67, 48.49, 47.73]))


# --------------------------------------------------------------------------- errors

def test_wrong_layout_is_one_line_naming_keys(tmp_path):
    path = tmp_path / "pyr.pt"
    torch.save(published_state_dict("swiftnet-pyr-rn18"), str(path))
    msg = one_line_error(lambda: load_checkpoint("swiftnet-rn18", path))
    assert "'swiftnet-rn18'" in msg
    assert "missing" in msg and "backbone.spp.spp.spp_bn" in msg
    assert "unexpected" in msg and "backbone.upsample_bottlenecks" in msg
    assert "fits arch 'swiftnet-pyr-rn18'" in msg


def test_wrong_num_classes_names_shape(tmp_path):
    path = tmp_path / "ss.pt"
    torch.save(published_state_dict("swiftnet-rn18"), str(path))
    msg = one_line_error(lambda: load_checkpoint("swiftnet-rn18", path, num_classes=20))
    assert "logits.conv.weight" in msg and "[19, 128, 3, 3]" in msg


def test_missing_and_corrupt_files(tmp_path):
    assert "not found" in one_line_error(lambda: load_checkpoint("swiftnet-rn18", tmp_path / "nope.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "corrupt" in one_line_error(lambda: load_checkpoint("swiftnet-rn18", garbage))
    good = tmp_path / "good.pt"
    torch.save(published_state_dict("swiftnet-rn18"), str(good))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "corrupt" in one_line_error(lambda: load_checkpoint("swiftnet-rn18", truncated))
    listed = tmp_path / "list.pt"
    torch.save([1, 2, 3], str(listed))
    assert "not a state_dict" in one_line_error(lambda: load_checkpoint("swiftnet-rn18", listed))


def test_unknown_arch(tmp_path):
    path = tmp_path / "ss.pt"
    torch.save(published_state_dict("swiftnet-rn18"), str(path))
    assert "available" in one_line_error(lambda: load_checkpoint("swiftnet-rn99", path))


def test_pickled_objects_need_trust(tmp_path):
    sd = published_state_dict("swiftnet-rn18")
    path = tmp_path / "with_args.pt"
    torch.save({"state_dict": sd, "args": argparse.Namespace(lr=0.1)}, str(path))
    assert "trusted=True" in one_line_error(lambda: load_checkpoint("swiftnet-rn18", path))
    model, info = load_checkpoint("swiftnet-rn18", path, trusted=True)
    assert_loaded(model, sd)


# --------------------------------------------------------------------------- our format

def _trained_like(arch, **kwargs):
    torch.manual_seed(0)
    model = create(arch, **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


def _meta():
    return {
        "classes": CITYSCAPES,
        "input_size": (256, 512),                          # tuple -> list
        "ignore_id": 255,
        "metrics": {"miou": np.float32(0.5), "epochs": np.int64(3)},  # numpy -> Python
        "dataset": "synthetic",
    }


@pytest.mark.parametrize("half", [False, True])
def test_own_format_round_trip(half, tmp_path):
    model = _trained_like("swiftnet-rn18")
    path = tmp_path / "ours.pt"
    digest = save_checkpoint(path, model, "swiftnet-rn18", _meta(), half=half)
    raw = torch.load(str(path), map_location="cpu", weights_only=True)  # plain data only
    assert raw["format"] == FORMAT and raw["format_version"] == 1 and raw["arch"] == "swiftnet-rn18"
    assert raw["model_kwargs"] == {"num_classes": 19}
    assert raw["state_dict"]["logits.conv.weight"].dtype == (torch.float16 if half else torch.float32)

    loaded, info = load_checkpoint("swiftnet-rn18", path)
    assert info["layout"] == "swiftrt" and info["sha256"] == digest
    assert info["classes"] == CITYSCAPES and info["input_size"] == [256, 512]
    assert info["metadata"]["ignore_id"] == 255
    assert info["metadata"]["metrics"]["miou"] == pytest.approx(0.5)
    assert info["normalization"] == model.normalization
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    if half:
        assert (a - b).abs().max() < 0.05 * a.abs().max()
    else:
        assert torch.equal(a, b)
        assert_loaded(loaded, model.state_dict())


def test_half_checkpoint_is_smaller(tmp_path):
    model = create("swiftnet-rn18")
    full = tmp_path / "full.pt"
    half = tmp_path / "half.pt"
    save_checkpoint(full, model, "swiftnet-rn18", {})
    save_checkpoint(half, model, "swiftnet-rn18", {}, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size


def test_own_format_keeps_model_kwargs(tmp_path):
    model = _trained_like("swiftnet-rn18", num_classes=5, normalize_in_model=True,
                          logits_kernel=1, logits_bias=True)
    path = tmp_path / "dec_own.pt"
    save_checkpoint(path, model, "swiftnet-rn18", {"classes": list("abcde")})
    loaded, info = load_checkpoint("swiftnet-rn18", path)
    assert info["layout"] == "swiftrt"
    assert loaded.logits.conv.weight.shape == (5, 128, 1, 1)
    assert info["normalization"] == {"scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    assert "5 classes" in one_line_error(lambda: load_checkpoint("swiftnet-rn18", path, num_classes=19))


def test_own_format_mismatches(tmp_path):
    model = create("swiftnet-mn2")
    path = tmp_path / "mn2.pt"
    save_checkpoint(path, model, "swiftnet-mn2", {})
    msg = one_line_error(lambda: load_checkpoint("swiftnet-rn18", path))
    assert "'swiftnet-mn2'" in msg and "'swiftnet-rn18'" in msg
    assert "not a 'swiftnet-rn18'" in one_line_error(
        lambda: save_checkpoint(tmp_path / "x.pt", model, "swiftnet-rn18", {}))
    raw = torch.load(str(path), weights_only=True)
    raw["format_version"] = 2
    torch.save(raw, str(path))
    assert "format_version" in one_line_error(lambda: load_checkpoint("swiftnet-mn2", path))


def test_meta_must_be_plain_data(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "bad.pt", create("swiftnet-mn2"), "swiftnet-mn2", {"obj": object()})
