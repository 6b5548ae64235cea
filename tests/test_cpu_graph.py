"""The CPU flavor's graph rewrites (calib.cpu_graph) compute what the exported graph computes."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calib import cpu_graph, qdq

pytest.importorskip("onnxruntime")


def _run(model_or_path, feeds):
    import onnxruntime as ort
    source = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) \
        else model_or_path
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _frames(engine, count=3):
    """(input name, random inputs) for an engine's single input (uint8 frame or float tensor)."""
    import onnxruntime as ort
    info = ort.InferenceSession(engine, providers=["CPUExecutionProvider"]).get_inputs()[0]
    rng = np.random.RandomState(0)
    if info.type == "tensor(uint8)":
        return info.name, [rng.randint(0, 256, size=info.shape).astype(np.uint8)
                           for _ in range(count)]
    return info.name, [rng.randn(*info.shape).astype(np.float32) for _ in range(count)]


def _rewritten(engine, tmp_path):
    prepared = qdq.prepare(engine, str(tmp_path / "prepared.onnx"))
    model = onnx.load(prepared)
    counts = cpu_graph.rewrite_for_cpu(model)
    return prepared, model, counts


def test_rewrites_keep_the_class_map_of_the_real_rn18_export(rn18_engine, tmp_path):
    prepared, model, counts = _rewritten(rn18_engine, tmp_path)
    assert counts["space_to_depth_stem"] == 1 and counts["nhwc_output_resize"] == 1
    ops = [n.op_type for n in model.graph.node]
    assert "SpaceToDepth" in ops and "BatchNormalization" not in ops
    name, frames = _frames(rn18_engine)
    agree = []
    for frame in frames:
        before = _run(prepared, {name: frame})[0]
        after = _run(model, {name: frame})[0]
        assert after.shape == before.shape and after.dtype == before.dtype
        agree.append(np.mean(after == before))
    assert np.mean(agree) >= 0.9999, agree  # float summation order only


def test_space_to_depth_stem_keeps_the_logits(rn18_logits_engine, tmp_path):
    prepared, model, counts = _rewritten(rn18_logits_engine, tmp_path)
    assert counts["space_to_depth_stem"] == 1
    assert counts["nhwc_output_resize"] == 0  # logits out: no ArgMax to move
    name, frames = _frames(rn18_logits_engine, count=2)
    for frame in frames:
        before = _run(prepared, {name: frame})[0]
        after = _run(model, {name: frame})[0]
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())


def _conv_model(in_channels, stride, height, width, kernel=7, pad=3):
    rng = np.random.RandomState(1)
    weight = numpy_helper.from_array(
        rng.randn(4, in_channels, kernel, kernel).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, height, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[stride, stride],
                            pads=[pad] * 4, kernel_shape=[kernel, kernel])
    graph = helper.make_graph([conv], "g", [x], [y], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("kernel,pad", [(7, 3), (5, 2), (6, 2), (3, 1)])
def test_space_to_depth_stem_is_exact_for_other_kernels(kernel, pad):
    model = _conv_model(3, 2, 20, 30, kernel=kernel, pad=pad)
    x = np.random.RandomState(2).randn(1, 3, 20, 30).astype(np.float32)
    before = _run(model, {"x": x})[0]
    assert cpu_graph.space_to_depth_stem(model) == 1
    after = _run(model, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("in_channels,stride,height", [(3, 1, 20), (4, 2, 20), (3, 2, 21)])
def test_space_to_depth_stem_leaves_other_convs_alone(in_channels, stride, height):
    model = _conv_model(in_channels, stride, height, 30)
    assert cpu_graph.space_to_depth_stem(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Conv"]


def test_added_tensors_inherit_the_range_they_move():
    model = _conv_model(3, 2, 20, 30)
    cpu_graph.space_to_depth_stem(model)
    added = cpu_graph.inherit_ranges(model, {"x": (0.5, 2.0)})
    pad, s2d = [n for n in model.graph.node if n.op_type in ("Pad", "SpaceToDepth")]
    # zero padding widens the range to 0; space-to-depth only moves values
    assert added == {pad.output[0]: (0.0, 2.0), s2d.output[0]: (0.0, 2.0)}


def _qdq_conv_model(out_channels, size, bias=True):
    """x -> Q/DQ (uint8) -> Conv 3x3 (int8 per-channel weights, int32 bias) -> Q/DQ -> y."""
    rng = np.random.RandomState(3)
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "x_zp"),
             numpy_helper.from_array(rng.randint(-127, 128, (out_channels, 8, 3, 3)).astype(np.int8), "w_q"),
             numpy_helper.from_array(rng.uniform(0.001, 0.01, out_channels).astype(np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(out_channels, np.int8), "w_zp"),
             numpy_helper.from_array(np.array(0.2, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "y_zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], axis=0)]
    conv_inputs = ["xd", "w"]
    if bias:
        inits += [numpy_helper.from_array(rng.randint(-500, 500, out_channels).astype(np.int32), "b_q"),
                  numpy_helper.from_array(np.full(out_channels, 0.05 * 0.005, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(out_channels, np.int32), "b_zp")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b"], axis=0))
        conv_inputs.append("b")
    nodes += [helper.make_node("Conv", conv_inputs, ["c"], name="conv", pads=[1] * 4, kernel_shape=[3, 3]),
              helper.make_node("QuantizeLinear", ["c", "y_scale", "y_zp"], ["cq"]),
              helper.make_node("DequantizeLinear", ["cq", "y_scale", "y_zp"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, size, size])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("bias", [True, False])
def test_padded_conv_outputs_are_exact(bias):
    model = _qdq_conv_model(19, 32, bias=bias)
    x = np.random.RandomState(4).randn(1, 8, 32, 32).astype(np.float32)
    before = _run(model, {"x": x})[0]
    assert cpu_graph.pad_conv_outputs(model) == 1
    inits = dict((i.name, i) for i in model.graph.initializer)
    weight = [inits[n.input[0]] for n in model.graph.node
              if n.op_type == "DequantizeLinear" and n.output[0] == "w"][0]
    assert list(weight.dims) == [24, 8, 3, 3]
    assert [n.op_type for n in model.graph.node][-2:] == ["Slice", "DequantizeLinear"]
    after = _run(model, {"x": x})[0]
    assert after.shape == (1, 19, 32, 32) and np.array_equal(after, before)


def test_conv_outputs_are_not_padded_on_small_maps_or_round_counts():
    assert cpu_graph.pad_conv_outputs(_qdq_conv_model(19, 16)) == 0   # 256 pixels: a Slice costs more
    assert cpu_graph.pad_conv_outputs(_qdq_conv_model(24, 32)) == 0
