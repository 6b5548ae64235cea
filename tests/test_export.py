"""rt-export: real exports of every architecture, the manifest contract and the parity gate."""
import json
import os

import numpy as np
import onnx
import pytest

from runtime import manifest as manifest_mod

pytest.importorskip("torch")

from export.api import export, parse_size  # noqa: E402
from export.onnx_export import written_opset  # noqa: E402
from runtime.errors import UserError  # noqa: E402


def quiet(_message):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["swiftnet-rn18", "swiftnet-pyr-rn18", "swiftnet-mn2"])
def test_export_every_arch_at_256x512_passes_parity(tmp_path, arch):
    out = str(tmp_path / "{}.onnx".format(arch))
    data = export(arch, None, (256, 512), out, parity_images=2, log=quiet).to_dict()
    assert os.path.exists(out) and os.path.exists(out + ".json")
    assert written_opset(out) == 17
    assert data["parity"]["argmax_agreement"] >= 0.999
    assert data["parity"]["max_abs_error"] < 1e-2
    on_disk = manifest_mod.Manifest.load(out).to_dict()
    assert on_disk == json.loads(json.dumps(data))
    assert on_disk["input"]["shape"] == [1, 256, 512, 3]
    assert on_disk["outputs"][0]["shape"] == [1, 256, 512]
    assert on_disk["artifact"]["sha256"] == manifest_mod.sha256_file(out)


def test_opset_13_for_tensorrt_8_2(tmp_path):
    out = str(tmp_path / "rn18_op13.onnx")
    data = export("swiftnet-rn18", None, (128, 256), out, opset=13, parity_images=1, log=quiet).to_dict()
    assert written_opset(out) == 13 and data["opset"] == 13
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert "ArgMax" in ops and "Resize" in ops


def test_manifest_describes_the_graph(rn18_engine):
    data = manifest_mod.Manifest.load(rn18_engine).to_dict()
    model = onnx.load(rn18_engine)
    graph_in = model.graph.input[0]
    assert graph_in.name == data["input"]["name"]
    dims = [d.dim_value for d in graph_in.type.tensor_type.shape.dim]
    assert dims == data["input"]["shape"]
    assert graph_in.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [o.name for o in model.graph.output] == [o["name"] for o in data["outputs"]]
    assert data["schema_version"] == manifest_mod.SCHEMA_VERSION
    assert data["input"]["layout"] == "NHWC" and data["input"]["color_order"] == "BGR"
    assert data["input"]["normalization"]["in_graph"] is True
    assert len(data["classes"]) == 19 and data["classes"][0]["name"] == "road"
    assert data["ignore_id"] == 255
    for key in ("torch", "onnx", "onnxruntime", "python"):
        assert key in data["toolchain"]
    assert data["source_checkpoint"]["trained"] is False


def test_in_graph_and_host_normalization_agree(rn18_engine, rn18_logits_engine):
    """A uint8 frame normalized in the graph == the same frame normalized on the host."""
    from export.scenes import render_scene
    from runtime import open_engine
    frame_engine, tensor_engine = open_engine(rn18_engine), open_engine(rn18_logits_engine)
    assert tensor_engine.manifest.input.dtype == "float32"
    for index in range(2):
        frame = render_scene(seed=3, index=index, size=(200, 400))[0]
        a = frame_engine.segment(frame).class_map
        b = tensor_engine.segment(frame).class_map
        assert a.shape == b.shape == (128, 256)
        assert (a == b).mean() >= 0.999


def test_parity_gate_catches_a_model_that_drifted(tmp_path):
    import torch
    from export import models, onnx_export, parity
    torch.manual_seed(0)
    model = models.create("swiftnet-rn18").eval()
    wrapper = onnx_export.DeployWrapper(model, model.normalization)
    out = str(tmp_path / "m.onnx")
    onnx_export.export_onnx(wrapper, (128, 256), out)
    frames = [np.random.RandomState(0).randint(0, 256, (1, 128, 256, 3)).astype(np.uint8)]
    assert parity.run_parity(wrapper, out, frames)["argmax_agreement"] >= 0.999
    with torch.no_grad():  # the PyTorch side changes after export: the gate must notice
        model.logits.conv.weight.mul_(-1.0)
    with pytest.raises(parity.ParityError, match="agreement"):
        parity.run_parity(wrapper, out, frames)


@pytest.mark.parametrize("text", ["256", "256x", "axb", "256x500", "0x0", "16x32"])
def test_malformed_size_is_a_user_error(text):
    with pytest.raises(UserError, match="--size"):
        parse_size(text)


def test_parse_size():
    assert parse_size("256x512") == (256, 512)
    assert parse_size("512X1024") == (512, 1024)
