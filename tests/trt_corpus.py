"""Planted graphs: each one breaks (or keeps) one TensorRT parser rule.

Used by tests/test_trt_rules.py (the static checker flags each with its rule) and
tests/test_trt_rtx.py (NVIDIA's own 10.x ONNX parser, TensorRT-RTX, judges the same graphs;
each disagreement with the checker is listed in ``RTX_DISAGREES`` and explained in
docs/tensorrt.md). ``CORPUS``: name -> (builder, {family: phrase of the checker's violation,
or None for legal}). Families missing from the dict are not asserted.
"""
import numpy as np


def _onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    return onnx, TensorProto, helper, numpy_helper


def _model(path, nodes, inputs, outputs, initializers=(), opset=17):
    onnx, _, helper, _ = _onnx()
    graph = helper.make_graph(nodes, "planted", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _info(name, dtype, shape):
    return _onnx()[2].make_tensor_value_info(name, dtype, shape)


def uint8_transpose(path):
    """Transpose(uint8 frame) -> Cast float: a UINT8 intermediate tensor."""
    _, TP, h, _ = _onnx()
    nodes = [h.make_node("Transpose", ["frame"], ["t"], name="/Transpose", perm=[0, 3, 1, 2]),
             h.make_node("Cast", ["t"], ["x"], name="/Cast", to=TP.FLOAT),
             h.make_node("Relu", ["x"], ["y"], name="/Relu")]
    return _model(path, nodes, [_info("frame", TP.UINT8, [1, 8, 8, 3])], [_info("y", TP.FLOAT, [1, 3, 8, 8])])


def _class_map(path, via, opset=17):
    _, TP, h, _ = _onnx()
    nodes = [h.make_node("ArgMax", ["logits"], ["ids"], name="/ArgMax", axis=1, keepdims=0)]
    name = "ids"
    for index, target in enumerate(via):
        out = "class_map" if index == len(via) - 1 else "c{}".format(index)
        nodes.append(h.make_node("Cast", [name], [out], name="/Cast_{}".format(index), to=target))
        name = out
    return _model(path, nodes, [_info("logits", TP.FLOAT, [1, 4, 8, 8])],
                  [_info("class_map", via[-1], [1, 8, 8])], opset=opset)


def argmax_to_uint8(path):
    """ArgMax (INT64) -> Cast UINT8: the old 10.x class-map form."""
    return _class_map(path, [_onnx()[1].UINT8])


def argmax_int32_to_uint8(path):
    _, TP, _, _ = _onnx()
    return _class_map(path, [TP.INT32, TP.UINT8])


def argmax_via_float(path):
    """ArgMax -> Cast FLOAT -> Cast UINT8: the form every UINT8-capable version takes."""
    _, TP, _, _ = _onnx()
    return _class_map(path, [TP.FLOAT, TP.UINT8])


def uint8_input_to_int32(path):
    """uint8 frame -> Cast INT32 -> Add."""
    _, TP, h, nh = _onnx()
    one = nh.from_array(np.ones((1,), np.int32), "one")
    nodes = [h.make_node("Cast", ["frame"], ["i"], name="/Cast", to=TP.INT32),
             h.make_node("Add", ["i", "one"], ["y"], name="/Add")]
    return _model(path, nodes, [_info("frame", TP.UINT8, [1, 8, 8, 3])], [_info("y", TP.INT32, [1, 8, 8, 3])],
                  [one])


def deformconv_uneven_pads(path):
    _, TP, h, nh = _onnx()
    weight = nh.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    node = h.make_node("DeformConv", ["x", "w", "offset"], ["y"], name="/f2f/DeformConv", pads=[1, 1, 0, 0])
    return _model(path, [node], [_info("x", TP.FLOAT, [1, 2, 4, 4]), _info("offset", TP.FLOAT, [1, 18, 3, 3])],
                  [_info("y", TP.FLOAT, [1, 2, 3, 3])], [weight], opset=19)


def deformconv_even_pads(path):
    _, TP, h, nh = _onnx()
    weight = nh.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    node = h.make_node("DeformConv", ["x", "w", "offset"], ["y"], name="/f2f/DeformConv", pads=[1, 1, 1, 1])
    return _model(path, [node], [_info("x", TP.FLOAT, [1, 2, 4, 4]), _info("offset", TP.FLOAT, [1, 18, 4, 4])],
                  [_info("y", TP.FLOAT, [1, 2, 4, 4])], [weight], opset=19)


def resize_computed_scales(path):
    """Resize whose scales come from a computation (Concat of constants), opset 13."""
    _, TP, h, nh = _onnx()
    inits = [nh.from_array(np.array([1.0, 1.0], np.float32), "s_nc"),
             nh.from_array(np.array([2.0, 2.0], np.float32), "s_hw")]
    nodes = [h.make_node("Concat", ["s_nc", "s_hw"], ["scales"], name="/Concat", axis=0),
             h.make_node("Resize", ["x", "", "scales"], ["y"], name="/Resize", mode="nearest")]
    return _model(path, nodes, [_info("x", TP.FLOAT, [1, 2, 4, 4])], [_info("y", TP.FLOAT, [1, 2, 8, 8])],
                  inits, opset=13)


def _qdq_weights(path, op, weight_shape, axis):
    _, TP, h, nh = _onnx()
    channels = weight_shape[axis]
    inits = [nh.from_array(np.ones(weight_shape, np.float32), "w"),
             nh.from_array(np.full(channels, 0.01, np.float32), "ws"),
             nh.from_array(np.zeros(channels, np.int8), "wz"),
             nh.from_array(np.array(0.1, np.float32), "s"), nh.from_array(np.array(0, np.int8), "z")]
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="/Q"),
             h.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="/DQ"),
             h.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], name="/WQ", axis=axis),
             h.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wdq"], name="/WDQ", axis=axis),
             h.make_node(op, ["dq", "wdq"], ["y"], name="/" + op)]
    out = [1, 3, 4, 4] if op == "ConvTranspose" else [1, 3, 4, 4]
    return _model(path, nodes, [_info("x", TP.FLOAT, [1, 2, 4, 4])], [_info("y", TP.FLOAT, out)], inits,
                  opset=13)


def convtranspose_weights_axis0(path):
    """ConvTranspose weights (C_in=2, C_out=3, 1, 1) quantized along axis 0 (input channels)."""
    return _qdq_weights(path, "ConvTranspose", (2, 3, 1, 1), 0)


def convtranspose_weights_axis1(path):
    return _qdq_weights(path, "ConvTranspose", (2, 3, 1, 1), 1)


def conv_weights_axis1(path):
    """Conv weights (K=3, C=2, 1, 1) quantized along axis 1 (input channels)."""
    return _qdq_weights(path, "Conv", (3, 2, 1, 1), 1)


def slice_tensor_axes(path):
    """Slice whose axes are computed in the graph (Shape -> Gather: a tensor, not an initializer)."""
    _, TP, h, nh = _onnx()
    inits = [nh.from_array(np.array([0], np.int64), "starts"), nh.from_array(np.array([2], np.int64), "ends"),
             nh.from_array(np.array([0], np.int64), "first")]
    nodes = [h.make_node("Shape", ["x"], ["shape"], name="/Shape"),
             h.make_node("Gather", ["shape", "first"], ["axes"], name="/Gather", axis=0),  # [1]: axis 1
             h.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="/Slice")]
    return _model(path, nodes, [_info("x", TP.FLOAT, [1, 4, 4, 4])], [_info("y", TP.FLOAT, [1, 2, 4, 4])],
                  inits, opset=13)


def zero_point_uint8(path):
    _, TP, h, nh = _onnx()
    inits = [nh.from_array(np.array(0.1, np.float32), "s"), nh.from_array(np.array(128, np.uint8), "z"),
             nh.from_array(np.ones((2, 2, 1, 1), np.float32), "w")]
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="/Q"),
             h.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="/DQ"),
             h.make_node("Conv", ["dq", "w"], ["y"], name="/Conv")]
    return _model(path, nodes, [_info("x", TP.FLOAT, [1, 2, 4, 4])], [_info("y", TP.FLOAT, [1, 2, 4, 4])], inits,
                  opset=13)


def bitshift(path):
    _, TP, h, _ = _onnx()
    return _model(path, [h.make_node("BitShift", ["x", "x"], ["y"], name="/shift", direction="LEFT")],
                  [_info("x", TP.UINT32, [1, 2, 4, 4])], [_info("y", TP.UINT32, [1, 2, 4, 4])], opset=13)


TEN = ("10.0", "10.1", "10.3")


def _all(phrase, families=TEN):
    return dict((fam, phrase) for fam in families)


CORPUS = {
    "uint8_transpose": (uint8_transpose, _all("UINT8 intermediate", ("8.5", "8.6") + TEN)),
    "argmax_to_uint8": (argmax_to_uint8, dict(_all("casts INT64 to UINT8"), **{"8.6": "does not convert"})),
    "argmax_int32_to_uint8": (argmax_int32_to_uint8, _all("casts INT32 to UINT8", ("8.5",) + TEN)),
    "argmax_via_float": (argmax_via_float, _all(None, ("8.5", "8.6") + TEN)),
    "uint8_input_to_int32": (uint8_input_to_int32, dict(_all("converts UINT8 only to FLOAT"),
                                                        **{"8.6": "does not convert"})),
    "deformconv_uneven_pads": (deformconv_uneven_pads, {"10.1": "equal begin and end pads",
                                                        "10.3": "equal begin and end pads"}),
    "deformconv_even_pads": (deformconv_even_pads, {"8.6": "DeformConv imports from TensorRT 10.1",
                                                    "10.1": None, "10.3": None}),
    "resize_computed_scales": (resize_computed_scales, dict(_all(None, ("8.4", "8.5", "8.6") + TEN),
                                                            **{"8.2": "must be an initializer"})),
    "convtranspose_weights_axis0": (convtranspose_weights_axis0,
                                    _all("along axis 0: TensorRT takes axis 1", ("8.2", "8.6") + TEN)),
    "convtranspose_weights_axis1": (convtranspose_weights_axis1, _all(None, ("8.2", "8.6") + TEN)),
    "conv_weights_axis1": (conv_weights_axis1, _all("along axis 1: TensorRT takes axis 0", ("8.2", "8.6") + TEN)),
    "slice_tensor_axes": (slice_tensor_axes, {"8.6": "must be a constant", "10.1": "must be a constant",
                                              "10.3": None}),
    "zero_point_uint8": (zero_point_uint8, _all("zero point is UINT8", ("8.2", "8.6") + TEN)),
    "bitshift": (bitshift, _all("BitShift is not supported")),
}
