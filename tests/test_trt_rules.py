"""The static TensorRT check: what each parser accepts, on real exports and on planted graphs.

Every arch x precision x TensorRT version exported for that version passes its check; graphs
each parser is known to reject (onnx-tensorrt's sources, see runtime/plan/trt_rules.py) fail
with a line naming the node and the rule. Nothing here runs TensorRT.
"""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import manifest as manifest_mod
from runtime.errors import UserError
from runtime.plan import onnx_graph, trt_rules
from tests.conftest import REPO
from tests.trt_corpus import CORPUS

SIZE = (64, 128)
VERSIONS = ("8.2.1", "8.5.2", "8.6.2", "10.3.0")


def quiet(_message):
    pass


# -- real exports: every arch x precision x version -----------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["swiftnet-rn18", "swiftnet-pyr-rn18", "swiftnet-mn2", "swiftnet-rn18-ood",
                                  "swiftnet-rn18-sl"])
@pytest.mark.parametrize("version", VERSIONS)
def test_exports_are_legal_for_their_version(tmp_path, arch, version):
    pytest.importorskip("torch")
    from calib.fp16 import export_fp16
    from calib.int8 import Int8Options, export_int8
    from export.api import export
    fp32 = str(tmp_path / "m_fp32.onnx")
    data = export(arch, None, SIZE, fp32, parity_images=1, trt_version=version, log=quiet).to_dict()
    outputs = [str(tmp_path / "m_fp16.onnx"), str(tmp_path / "m_int8.onnx")]
    export_fp16(fp32, outputs[0], agreement_images=1, progress=False, log=quiet)
    export_int8(fp32, outputs[1], "synthetic", Int8Options(count=2, method="minmax", flavor="trt",
                agreement_images=1, check_latency=False, progress=False, log=quiet))
    fam = trt_rules.family(version)
    for path in [fp32] + outputs:
        assert trt_rules.check(path, version) == [], path
        compat = manifest_mod.Manifest.load(path).to_dict()["tensorrt_compat"]
        assert compat["target"] == version and fam in compat["legal"]
        assert compat["legal"] == trt_rules.legal_families(path)
    graph = onnx_graph.load(fp32)
    frame_type = dict(graph.inputs)["frame"]
    class_type = dict(graph.outputs)["class_map"]
    if fam == "8.2":  # no UINT8 anywhere: float frame in, int32 class map out, opset 13
        assert (frame_type, class_type, graph.opsets["ai.onnx"]) == (onnx_graph.FLOAT, onnx_graph.INT32, 13)
        assert data["input"]["dtype"] == "float32" and data["outputs"][0]["dtype"] == "int32"
    else:
        assert (frame_type, class_type) == (onnx_graph.UINT8, onnx_graph.UINT8)
        assert data["input"]["dtype"] == "uint8" and data["outputs"][0]["dtype"] == "uint8"
    # the frame is cast to float before any other node uses it
    users = graph.consumers()[data["input"]["name"]]
    assert [u.op_type for u in users] == ["Cast"] or frame_type == onnx_graph.FLOAT


def test_default_export_is_legal_on_85_86_and_10(rn18_engine):
    compat = manifest_mod.Manifest.load(rn18_engine).to_dict()["tensorrt_compat"]
    assert compat["target"] is None
    assert compat["legal"] == ["8.5", "8.6", "10.0", "10.1", "10.3"]
    assert compat["io_form"] == "uint8-via-float"


@pytest.mark.slow
def test_every_form_gives_the_same_class_maps_through_the_runtime(tmp_path):
    """The runtime feeds and reads what the manifest says: float frame / int32 map included."""
    pytest.importorskip("torch")
    from export.api import export
    from export.scenes import render_scene
    from runtime import open_engine
    frames = [render_scene(seed=5, index=i, size=(96, 160))[0] for i in range(2)]
    maps = {}
    for version in (None, "8.2", "10.3"):
        path = str(tmp_path / "m_{}.onnx".format(version))
        export("swiftnet-rn18-ood", None, SIZE, path, parity_images=1, trt_version=version, log=quiet)
        engine = open_engine(path)
        results = [engine.segment(f) for f in frames]
        maps[version] = [(r.class_map, r.outlier_score) for r in results]
        assert all(r.class_map.dtype == np.uint8 for r in results)
    for version in ("8.2", "10.3"):
        for (a, sa), (b, sb) in zip(maps[None], maps[version]):
            assert np.array_equal(a, b)
            assert np.allclose(sa, sb, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_forecast_bundle_stages_are_legal(tmp_path, forecaster_checkpoints, version):
    from export.forecast_export import BundleOptions, export_bundle
    out = str(tmp_path / "bundle")
    bundle = export_bundle(forecaster_checkpoints[1], out, BundleOptions(parity_frames=6,
                           trt_version=version, log=quiet)).to_dict()
    fam = trt_rules.family(version)
    assert fam in bundle["tensorrt_compat"]["legal"]
    from runtime.plan import rtx
    for stage in ("features.onnx", "f2f.onnx", "decoder.onnx"):
        path = os.path.join(out, stage)
        assert trt_rules.check(path, version) == [], stage
        compat = manifest_mod.Manifest.load(path).to_dict()["tensorrt_compat"]
        assert fam in compat["legal"]
        if fam in rtx.FAMILIES and rtx.available():  # the default (matmul) form through RTX too
            assert compat["tensorrt_rtx"]["parsed"] and compat["tensorrt_rtx"]["built"], stage


@pytest.mark.slow
def test_reduced_precision_bundle_is_legal(tmp_path, forecaster_checkpoints):
    from export.forecast_export import BundleOptions, export_bundle
    out = str(tmp_path / "bundle")
    export_bundle(forecaster_checkpoints[1], out, BundleOptions(parity_frames=6, precision="int8",
                  calib="synthetic", calib_count=2, calib_method="minmax", flavor="trt",
                  trt_version="8.6.2", log=quiet))
    for stage in ("features.onnx", "f2f.onnx", "decoder.onnx"):
        assert trt_rules.check(os.path.join(out, stage), "8.6.2") == [], stage


def test_bundle_refuses_a_deformable_form_the_version_cannot_read(tmp_path, forecaster_checkpoints):
    from export.forecast_export import BundleOptions, export_bundle
    with pytest.raises(UserError, match="reads opsets up to 13.*grid_sample"):
        export_bundle(forecaster_checkpoints[1], str(tmp_path / "b"),
                      BundleOptions(deform_form="grid_sample", trt_version="8.2.1", log=quiet))
    with pytest.raises(UserError, match="reads opsets up to 17.*onnx"):
        export_bundle(forecaster_checkpoints[1], str(tmp_path / "b"), BundleOptions(deform_form="onnx",
                      trt_version="8.6.2", log=quiet))


# -- planted graphs -------------------------------------------------------------------------

def _model(nodes, inputs, outputs, initializers=(), opset=17, path=None):
    graph = helper.make_graph(nodes, "planted", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _frame(dtype=TensorProto.UINT8):
    return helper.make_tensor_value_info("frame", dtype, [1, 8, 8, 3])


def uint8_transpose_graph(path, opset=17):
    """The old export: Transpose(uint8 frame) -> Cast float -> ... (a UINT8 intermediate)."""
    nodes = [helper.make_node("Transpose", ["frame"], ["t"], name="/Transpose", perm=[0, 3, 1, 2]),
             helper.make_node("Cast", ["t"], ["x"], name="/Cast", to=TensorProto.FLOAT),
             helper.make_node("Relu", ["x"], ["y"], name="/Relu")]
    return _model(nodes, [_frame()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
                  opset=opset, path=path)


def class_map_graph(path, via, opset=17):
    """float logits -> ArgMax -> Cast(s) ``via`` -> uint8 class map."""
    nodes = [helper.make_node("ArgMax", ["logits"], ["ids"], name="/ArgMax", axis=1, keepdims=0)]
    name = "ids"
    for index, target in enumerate(via):
        out = "class_map" if index == len(via) - 1 else "c{}".format(index)
        nodes.append(helper.make_node("Cast", [name], [out], name="/Cast_{}".format(index), to=target))
        name = out
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 8, 8])
    return _model(nodes, [logits], [helper.make_tensor_value_info("class_map", via[-1], [1, 8, 8])],
                  opset=opset, path=path)


def test_uint8_transpose_is_refused_everywhere(tmp_path):
    path = uint8_transpose_graph(tmp_path / "m.onnx", opset=13)
    for version in ("8.5.2", "8.6.2", "10.3.0"):
        text = " ".join(str(v) for v in trt_rules.check(path, version))
        assert "Transpose '/Transpose'" in text and "UINT8 intermediate" in text, version
    text = " ".join(str(v) for v in trt_rules.check(path, "8.2.1"))
    assert "UINT8 tensors do not exist in TensorRT 8.2" in text
    assert trt_rules.legal_families(path) == []


def test_integer_to_uint8_cast_is_refused_from_85_on(tmp_path):
    """10.3's header: "kUINT8 conversions are only supported for {kFLOAT, kHALF}"."""
    direct = class_map_graph(tmp_path / "direct.onnx", [TensorProto.INT32, TensorProto.UINT8])
    assert any("TensorRT 8.6 does not convert" in str(v) and "/Cast_1" in str(v)
               for v in trt_rules.check(direct, "8.6.2"))
    assert any("casts to UINT8 only from FLOAT" in str(v) for v in trt_rules.check(direct, "8.5.2"))
    for version in ("10.0.1", "10.3.0"):
        assert any("casts INT32 to UINT8: TensorRT 10." in str(v) for v in trt_rules.check(direct, version))
    int64 = class_map_graph(tmp_path / "int64.onnx", [TensorProto.UINT8])  # ArgMax (INT64) -> Cast UINT8
    assert any("casts INT64 to UINT8: TensorRT 10.3 casts to UINT8 only from FLOAT" in str(v)
               for v in trt_rules.check(int64, "10.3.0"))
    via_float = class_map_graph(tmp_path / "via.onnx", [TensorProto.FLOAT, TensorProto.UINT8])
    assert trt_rules.legal_families(via_float) == ["8.5", "8.6", "10.0", "10.1", "10.3"]
    int32 = class_map_graph(tmp_path / "int32.onnx", [TensorProto.INT32], opset=13)
    assert trt_rules.legal_families(int32) == list(trt_rules.FAMILIES)


def test_int64_output_is_refused_on_8x(tmp_path):
    path = class_map_graph(tmp_path / "m.onnx", [TensorProto.INT64], opset=13)
    assert any("narrows to INT32" in str(v) for v in trt_rules.check(path, "8.2.1"))
    assert trt_rules.check(path, "10.3.0") == []


def test_opset_17_is_refused_on_82(tmp_path):
    path = class_map_graph(tmp_path / "m.onnx", [TensorProto.INT32], opset=17)
    with pytest.raises(UserError, match=r"not legal for TensorRT 8\.2\.1: the model: opset 17 is "
                                        r"outside TensorRT 8\.2's range 7\.\.13"):
        trt_rules.require_legal(path, "8.2.1")
    assert trt_rules.check(path, "8.6.2") == []


def test_deformconv_needs_10_1_and_gridsample_8_5(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    offset = helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 18, 4, 4])
    weight = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    deform = _model([helper.make_node("DeformConv", ["x", "w", "offset"], ["y"], name="/f2f/DeformConv",
                                      pads=[1, 1, 1, 1])],
                    [x, offset], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [weight],
                    opset=19, path=tmp_path / "deform.onnx")
    assert any("DeformConv imports from TensorRT 10.1" in str(v) for v in trt_rules.check(deform, "8.6.2"))
    assert any("DeformConv imports from TensorRT 10.1" in str(v) for v in trt_rules.check(deform, "10.0.1"))
    assert trt_rules.check(deform, "10.3.0") == []
    uneven = _model([helper.make_node("DeformConv", ["x", "w", "offset"], ["y"], name="/f2f/DeformConv",
                                      pads=[1, 1, 0, 0])],
                    [x, offset], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])], [weight],
                    opset=19, path=tmp_path / "uneven.onnx")
    assert any("DeformConv pads [1, 1, 0, 0]: TensorRT takes only equal begin and end pads" in str(v)
               for v in trt_rules.check(uneven, "10.3.0"))
    grid = helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 4, 4, 2])
    sample = _model([helper.make_node("GridSample", ["x", "grid"], ["y"], name="/GridSample")],
                    [x, grid], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
                    opset=16, path=tmp_path / "grid.onnx")
    assert trt_rules.legal_families(sample) == ["8.5", "8.6", "10.0", "10.1", "10.3"]


def _qdq_graph(path, zero_type=TensorProto.INT8, zero=0, activation_scales=1, weight_axis=0):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    inits = [numpy_helper.from_array(np.full(activation_scales, 0.1, np.float32), "s"),
             helper.make_tensor("z", zero_type, [activation_scales] if activation_scales > 1 else [],
                                [zero] * activation_scales),
             numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w"),
             numpy_helper.from_array(np.full(2, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(2, np.int8), "wz")]
    axis = {"axis": 1} if activation_scales > 1 else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="/Q", **axis),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="/DQ", **axis),
             helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], name="/WQ", axis=weight_axis),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wdq"], name="/WDQ", axis=weight_axis),
             helper.make_node("Conv", ["dq", "wdq"], ["y"], name="/Conv")]
    return _model(nodes, [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], inits,
                  opset=13, path=path)


def test_explicit_quantization_rules(tmp_path):
    assert trt_rules.legal_families(_qdq_graph(tmp_path / "ok.onnx")) == list(trt_rules.FAMILIES)
    cases = [(dict(zero_type=TensorProto.UINT8), "zero point is UINT8"),
             (dict(zero=3), "zero point is not 0"),
             (dict(activation_scales=2), "per-channel scales on an activation"),
             (dict(weight_axis=1), "per-channel weight scales along axis 1")]
    for index, (kwargs, needle) in enumerate(cases):
        path = _qdq_graph(tmp_path / "bad{}.onnx".format(index), **kwargs)
        for version in VERSIONS:
            assert any(needle in str(v) for v in trt_rules.check(path, version)), (needle, version)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_planted_corpus_is_flagged_with_its_rule(tmp_path, name):
    """tests/trt_corpus.py: each planted graph, per family, refused with its rule (or legal)."""
    build, expected = CORPUS[name]
    path = build(tmp_path / "m.onnx")
    for fam, phrase in expected.items():
        found = [str(v) for v in trt_rules.check(path, fam)]
        if phrase is None:
            assert found == [], (fam, found)
        else:
            assert any(phrase in line for line in found), (fam, phrase, found)


def test_unsupported_operator_and_custom_domain(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.UINT32, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.UINT32, [1, 2, 4, 4])
    path = _model([helper.make_node("BitShift", ["x", "x"], ["y"], name="/shift", direction="LEFT")],
                  [x], [y], opset=13, path=tmp_path / "m.onnx")
    assert any("BitShift is not supported" in str(v) for v in trt_rules.check(path, "10.3.0"))


def test_not_onnx_is_one_line(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\xff\xff\xff not a model")
    with pytest.raises(UserError, match="is not a valid ONNX model"):
        trt_rules.check(str(path), "8.6.2")


def test_versions():
    assert trt_rules.family("8.2.1.8") == "8.2" and trt_rules.family("8.5.2") == "8.5"
    assert trt_rules.family("10.3.0") == "10.3" and trt_rules.family("10.x") == "10.3"
    assert trt_rules.family("10.1.0") == "10.1" and trt_rules.family("10.2") == "10.1"
    assert trt_rules.family("10.0.1") == "10.0" and trt_rules.family("10.8") == "10.3"
    assert trt_rules.full_version("8.6") == "8.6.2" and trt_rules.full_version("10.x") == "10.3.0"
    for bad in ("7.1.3", "11.0", "nine", "8.7"):
        with pytest.raises(UserError):
            trt_rules.family(bad)


def test_operator_tables_are_read_from_onnx_tensorrt():
    assert trt_rules.operator_table("8.2")["Cast"][1] == {onnx_graph.FLOAT, onnx_graph.FLOAT16, onnx_graph.INT32,
                                                          onnx_graph.INT8, onnx_graph.BOOL}
    assert "GridSample" not in trt_rules.operator_table("8.2")
    assert trt_rules.operator_table("8.5")["GridSample"][0]
    assert onnx_graph.UINT8 in trt_rules.operator_table("8.6")["Cast"][1]


def test_own_type_inference_matches_onnx(rn18_engine):
    """onnx_graph infers element types without onnx; onnx's shape inference must agree."""
    from onnx import shape_inference
    model = shape_inference.infer_shapes(onnx.load(rn18_engine))
    expected = dict((v.name, v.type.tensor_type.elem_type)
                    for v in list(model.graph.value_info) + list(model.graph.output))
    got = onnx_graph.load(rn18_engine).types
    assert expected and all(got.get(name) == t for name, t in expected.items() if t)


# -- the CLIs -------------------------------------------------------------------------------

def test_rt_plan_check_only(run_cli_subprocess, rn18_engine):
    ok = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--check-only", "--trt-version", "8.6.2")
    assert ok.returncode == 0 and "legal for TensorRT 8.6.2" in ok.stdout, ok.stderr
    bad = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--check-only", "--trt-version", "8.2.1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "not legal for TensorRT 8.2.1" in bad.stderr
    # --check-images feeds the post-build check: refused where no plan is built
    odd = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--check-only", "--trt-version",
                             "8.6.2", "--check-images", os.path.dirname(rn18_engine))
    assert odd.returncode == 2 and odd.stderr.strip().splitlines() == [
        "rt-plan: error: --check-images is for the post-build check: not with --check-only or "
        "--print-trtexec (no plan is built)"]
    # the timing cache is rewritten after a build: never over the model (refused before TensorRT)
    for target, why in ((rn18_engine, "model artifact or manifest"),
                        (os.path.dirname(rn18_engine), "is a folder")):
        proc = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--timing-cache", target)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "--timing-cache" in proc.stderr and why in proc.stderr


def test_rt_plan_prints_trtexec(run_cli_subprocess, rn18_engine):
    proc = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--print-trtexec", "--trt-version", "10.3.0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("trtexec --onnx=") and "--fp16" in proc.stdout
    assert "--memPoolSize=workspace:1024M" in proc.stdout
    old = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--print-trtexec", "--trt-version", "8.2.1")
    assert old.returncode == 2 and "not legal for TensorRT 8.2.1" in old.stderr


@pytest.mark.parametrize("args, needle", [
    (["--trt-version", "8.2", "--opset", "17"], "TensorRT 8.2 reads opsets 7..13"),
    (["--trt-version", "7.1"], "this tool targets 8.2"),
    (["--trt-version", "8.6", "--precision", "int8", "--flavor", "cpu", "--calib", "synthetic"],
     "not TensorRT-legal"),
])
def test_rt_export_target_errors_are_one_line(run_cli_subprocess, tmp_path, args, needle):
    out = tmp_path / "m.onnx"
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "64x128",
                              "--output", out, *args)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_graph_its_target_rejects_is_never_written(tmp_path, monkeypatch):
    """The check runs on every export: a form the target rejects fails, nothing left behind."""
    pytest.importorskip("torch")
    from export import onnx_export
    from export.api import export
    direct = onnx_export.IoForm("uint8", "uint8", "uint8", False, (), "ArgMax -> Cast UINT8")
    monkeypatch.setattr(onnx_export, "io_form", lambda version=None: direct)
    out = tmp_path / "m.onnx"
    with pytest.raises(UserError, match=r"not legal for TensorRT 8\.6\.2: Cast '/Cast_1': casts INT32 to "
                                        r"UINT8: TensorRT 8\.6 does not convert"):
        export("swiftnet-rn18", None, SIZE, str(out), parity_images=1, trt_version="8.6.2", log=quiet)
    assert os.listdir(str(tmp_path)) == []


def test_plan_modules_need_neither_torch_nor_onnx():
    import subprocess
    import sys
    code = ("import sys\n"
            "import runtime.plan.trt_rules, runtime.plan.build, runtime.plan.builder, "
            "runtime.plan.calibration_cache, runtime.cli.plan\n"
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'torch/onnx imported'\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_the_export_library_checks_the_target_before_any_work(tmp_path):
    """export() and export_reduced() refuse what rt-export refuses (export.api.check_target), in one
    line and before writing or logging anything; export_reduced's flavor follows the target."""
    pytest.importorskip("torch")
    from export.api import ReducedOptions, export, export_reduced
    out, logs = str(tmp_path / "m.onnx"), []
    with pytest.raises(UserError, match="TensorRT 8.2 reads opsets 7..13"):
        export("swiftnet-rn18", None, (64, 128), out, opset=17, trt_version="8.2", log=logs.append)
    with pytest.raises(UserError, match="not TensorRT-legal"):
        export_reduced("swiftnet-rn18", None, (64, 128), out, "int8", ReducedOptions(
            calib="synthetic", flavor="cpu", trt_version="8.6", log=logs.append))
    with pytest.raises(UserError, match="unknown calibration method"):  # flavor None: trt, no error for it
        export_reduced("swiftnet-rn18", None, (64, 128), out, "int8", ReducedOptions(
            calib="synthetic", trt_version="8.6", calib_method="median", log=logs.append))
    assert logs == [] and os.listdir(str(tmp_path)) == []
