"""DLA (Xavier, Orin): the static placement check, the DLA export form and the DLA build.

The placement rules are TensorRT's developer guide's (runtime/plan/dla.py); the build is
written against IBuilderConfig (setDefaultDeviceType(kDLA), setDLACore, kGPU_FALLBACK) and
exercised with the TensorRT doubles. Nothing here ran on a DLA.
"""
import numpy as np
import pytest

from runtime import manifest as manifest_mod
from runtime.errors import UserError
from runtime.plan import builder as trt_build
from runtime.plan import dla
from tests.test_tensorrt_doubles import gpu_orin, make_trt, onnx_file, onnx_manifest


def _model(path, nodes, inputs, outputs, inits=(), opset=13):
    import onnx
    from onnx import helper
    graph = helper.make_graph(nodes, "planted", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _resize_graph(path, mode, coord, scale):
    from onnx import TensorProto, helper, numpy_helper
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/conv"),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], name="/resize", mode=mode,
                              coordinate_transformation_mode=coord)]
    return _model(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4 * scale, 4 * scale])],
                  [scales, w])


def _device(placement, name):
    return next(l for l in placement.layers if l.name == name)


@pytest.mark.parametrize("mode, coord, scale, version, device, why", [
    ("linear", "half_pixel", 2, "8.6", "dla", "bilinear half-pixel x2"),
    ("linear", "half_pixel", 4, "10.3", "dla", "bilinear half-pixel x4"),
    ("linear", "half_pixel", 8, "8.6", "gpu", "integer scales in [1, 4]"),
    ("linear", "asymmetric", 2, "8.6", "gpu", "half-pixel coordinates"),
    ("linear", "half_pixel", 2, "8.2", "gpu", "8.2's DLA resizes nearest only"),
    ("nearest", "asymmetric", 8, "8.2", "dla", "nearest x8"),
])
def test_resize_rules(tmp_path, mode, coord, scale, version, device, why):
    placement = dla.placement(_resize_graph(tmp_path / "m.onnx", mode, coord, scale), version)
    layer = _device(placement, "/resize")
    assert layer.device == device and why in layer.reason, layer.reason


def test_concat_axis_gpu_cuts_and_subgraphs(tmp_path):
    """A GPU layer between DLA layers cuts them into two DLA subgraphs."""
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="/conv_a"),
             helper.make_node("Concat", ["a", "a"], ["b"], name="/concat_h", axis=2),
             helper.make_node("Conv", ["b", "w"], ["c"], name="/conv_b"),
             helper.make_node("Concat", ["c", "c"], ["y"], name="/concat_c", axis=1)]
    path = _model(tmp_path / "m.onnx", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 4])], [w])
    placement = dla.placement(path, "8.6.2")
    assert _device(placement, "/concat_h").device == "gpu"
    assert "channels (axis 1) only" in _device(placement, "/concat_h").reason
    assert _device(placement, "/concat_c").device == "dla"
    assert placement.subgraphs == 2
    assert all(l.device == "gpu" and "FP16 or INT8" in l.reason for l in dla.placement(path, "8.6", "fp32").layers)


def test_conv_limits_and_matmul(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    m = numpy_helper.from_array(np.ones((4, 4), np.float32), "m")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="/conv_s16", strides=[16, 16], pads=[1, 1, 1, 1]),
             helper.make_node("MatMul", ["x", "m"], ["b"], name="/matmul_const"),
             helper.make_node("MatMul", ["x", "x"], ["c"], name="/matmul_var")]
    path = _model(tmp_path / "m.onnx", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2, 1, 1]),
                   helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2, 4, 4]),
                   helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2, 4, 4])], [w, m])
    on86 = dla.placement(path, "8.6.2")
    assert "stride outside [1, 8]" in _device(on86, "/conv_s16").reason
    assert _device(on86, "/matmul_const").device == "dla"
    assert _device(on86, "/matmul_var").device == "gpu"
    assert _device(dla.placement(path, "8.2.1"), "/matmul_const").device == "gpu"


@pytest.mark.slow
def test_rt_export_dla_puts_the_swiftnet_body_on_dla(run_cli_subprocess, tmp_path, rn18_engine):
    """The done-when of the DLA form: SwiftNet-RN18 at 256x512 for TensorRT 8.6, its body on DLA
    in one subgraph, only the frame's Cast/Transpose/channel order and ArgMax/Cast on the GPU."""
    out = tmp_path / "rn18_dla.onnx"
    proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "256x512", "--trt-version", "8.6",
                              "--dla", "--parity-images", "1", "--output", out, "-q", timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["layer", "op", "on", "why"]
    rows = [line.split(None, 3) for line in lines[1:-1]]
    gpu = [(name, op) for name, op, on, _ in rows if on == "GPU"]
    assert sorted(op for _, op in gpu) == ["ArgMax", "Cast", "Cast", "Cast", "Gather", "Transpose"], gpu
    assert all(on == "DLA" for name, _, on, _ in rows if name.startswith("/model/")), rows
    assert lines[-1].startswith("DLA (TensorRT 8.6, fp16): ") and "in 1 DLA subgraph(s)" in lines[-1]
    record = manifest_mod.Manifest.load(str(out)).to_dict()["tensorrt_compat"]["dla"]
    assert record["dla_subgraphs"] == 1 and record["gpu_layers"] == 6 and record["dla_layers"] > 90
    # the default form (sizes from Shape, MatMul pooling at small sizes) does not stay on DLA
    default = dla.placement(rn18_engine, "8.6")
    assert default.subgraphs > 1 and any(l.op == "Resize" for l in default.on_gpu)


def test_dla_needs_a_version_and_fp32_export(run_cli_subprocess, tmp_path):
    out = tmp_path / "m.onnx"
    for args, needle in ((["--dla"], "--dla needs --trt-version"),
                         (["--dla", "--trt-version", "8.6", "--precision", "fp16"], "build it FP16 or INT8")):
        proc = run_cli_subprocess("export.cli", "--arch", "swiftnet-rn18", "--size", "64x128", "--output", out,
                                  "--parity-images", "1", *args)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


# -- the DLA build (TensorRT doubles) -------------------------------------------------------

def test_dla_build_sets_the_config_and_records_the_placement(tmp_path):
    trt = make_trt("8.6.2", dla_cores=2)
    info = trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", precision="fp16", trt=trt,
                                  gpu_info=gpu_orin, dla_core=1, gpu_fallback=True)
    assert trt.config.default_device_type == trt.DeviceType.DLA and trt.config.DLA_core == 1
    assert trt.config.flags == [trt.BuilderFlag.FP16, trt.BuilderFlag.GPU_FALLBACK]
    assert info["flags"] == ["FP16", "GPU_FALLBACK"]
    assert info["dla"] == {"core": 1, "gpu_fallback": True, "layers_on_dla": 2, "layers_on_gpu": 1,
                           "gpu_layers": ["/head/Shape"]}
    manifest = trt_build.plan_manifest(manifest_mod.Manifest.from_dict(onnx_manifest()), tmp_path / "m.plan", info)
    assert manifest.to_dict()["tensorrt"]["dla"]["core"] == 1


@pytest.mark.parametrize("kwargs, cores, needle", [
    (dict(dla_core=0), 2, "cannot run on DLA (first: /head/Shape): add --gpu-fallback"),
    (dict(dla_core=0, gpu_fallback=True), 0, "this device has no DLA"),
    (dict(dla_core=2, gpu_fallback=True), 2, "--dla-core 2: this device has DLA cores 0..1"),
    (dict(dla_core=0, gpu_fallback=True, precision="fp32"), 2, "DLA runs FP16 or INT8 only"),
])
def test_dla_build_refusals_are_one_line(tmp_path, kwargs, cores, needle):
    trt = make_trt("10.3.0", dla_cores=cores)
    with pytest.raises(UserError) as info:
        trt_build.build_engine(onnx_file(tmp_path), tmp_path / "m.plan", trt=trt, gpu_info=gpu_orin, **kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "m.plan").exists()


def test_rt_plan_dla_flags(run_cli_subprocess, rn18_engine):
    proc = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--print-trtexec", "--trt-version", "8.6.2",
                              "--dla-core", "0", "--gpu-fallback")
    assert proc.returncode == 0 and "--useDLACore=0 --allowGPUFallback" in proc.stdout, proc.stderr
    table = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--check-only", "--trt-version", "8.6.2",
                               "--dla-core", "0")
    assert table.returncode == 0 and "DLA (TensorRT 8.6, fp16)" in table.stdout, table.stderr
    lonely = run_cli_subprocess("runtime.cli.plan", rn18_engine, "--gpu-fallback")
    assert lonely.returncode == 2 and "give --dla-core N" in lonely.stderr
