"""Exact graph rewrites that make the CPU-flavor INT8 model faster on ONNX Runtime.

Each rewrite computes the same function as the graph it replaces (exact in real arithmetic;
float rounding order aside) and is applied to the prepared FP32 model before calibration,
so the ranges are measured on the rewritten graph. They are for ONNX Runtime's CPU
kernels only: the TensorRT flavor and the FP32 artifact keep the exported graph.

* :func:`bn_to_depthwise`: pre-activation BatchNormalization -> depthwise 1x1 Conv, so
  SwiftNet's decoder stays in INT8 (NHWC) instead of forcing layout changes and FP32 islands.
* :func:`space_to_depth_stem`: a stride-2 Conv on 3 channels (ResNet's 7x7 conv1,
  MobileNetV2's 3x3 stem) -> zero Pad, SpaceToDepth, stride-1 Conv on 12 channels (4x4 /
  2x2). Three input channels waste most of an INT8 kernel's vector lanes; twelve fill them
  (ORT 1.32 profiler, AVX-512 VNNI Xeon, 2 threads: SwiftNet-RN18's stem 1.5 -> 0.85 ms plus
  0.3 ms for Pad and SpaceToDepth).
* :func:`nhwc_output_resize`: the logits' final bilinear Resize + ArgMax over channels ->
  Transpose to NHWC, Resize, ArgMax over the last axis: ORT's NHWC bilinear kernel is
  faster on 19 channels (same profile: 1.74 -> 0.98 ms at 256x512).

One rewrite works on the quantized (QDQ) model instead, because it changes weights:

* :func:`pad_conv_outputs`: a quantized Conv with an output channel count that is not a
  multiple of 8 on a large map (SwiftNet's 19-class logits conv at 1/4 resolution) gets zero
  filters up to the next multiple of 8 and a Slice back after its QuantizeLinear. The INT8
  kernels work in blocks of output channels; 19 left most of the last block idle (2 threads:
  0.87 ms for 0.18 GMAC, against 1.47 ms for the 1.2 GMAC conv before it; the whole model
  15.4 -> 14.9 ms, class maps identical).
"""
import numpy as np


def _onnx():
    import onnx
    return onnx


def _initializers(model):
    return dict((init.name, init) for init in model.graph.initializer)


def _attributes(node):
    from onnx import helper
    return dict((a.name, helper.get_attribute_value(a)) for a in node.attribute)


def _replace_nodes(model, replacements):
    """replacements: {index of an old node: [new nodes]}; drops unused initializers."""
    nodes = list(model.graph.node)
    new_nodes = []
    for index, node in enumerate(nodes):
        new_nodes.extend(replacements.get(index, [node]))
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    used = set(name for node in model.graph.node for name in node.input)
    used.update(out.name for out in model.graph.output)
    keep = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _static_shapes(model):
    """{tensor name: tuple of ints} for every tensor whose shape inference is fully static."""
    onnx = _onnx()
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    graph = inferred.graph
    for info in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def bn_to_depthwise(model):
    """BatchNormalization (inference) -> depthwise 1x1 Conv, same output tensor name.

    Returns the number of nodes rewritten."""
    from onnx import helper, numpy_helper
    inits = _initializers(model)
    replacements = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type != "BatchNormalization" or len(node.output) != 1 or \
                not all(name in inits for name in node.input[1:5]):
            continue
        eps = _attributes(node).get("epsilon", 1e-5)
        gamma, beta, mean, var = [numpy_helper.to_array(inits[n]).astype(np.float64)
                                  for n in node.input[1:5]]
        scale = gamma / np.sqrt(var + eps)
        shift = beta - mean * scale
        channels = int(scale.size)
        weight = numpy_helper.from_array(scale.astype(np.float32).reshape(channels, 1, 1, 1),
                                         node.name + "_dw_weight")
        bias = numpy_helper.from_array(shift.astype(np.float32), node.name + "_dw_bias")
        model.graph.initializer.extend([weight, bias])
        replacements[index] = [helper.make_node(
            "Conv", [node.input[0], weight.name, bias.name], list(node.output),
            name=node.name, group=channels, kernel_shape=[1, 1])]
    if replacements:
        _replace_nodes(model, replacements)
    return len(replacements)


def space_to_depth_weights(weight, block=2):
    """(O, C, K, K) weights of a stride-``block`` conv -> (O, C*block*block, K', K') weights of
    the stride-1 conv on the space-to-depth input, K' = ceil(K / block).

    Channel order is ONNX SpaceToDepth's: (row * block + col) * C + c.
    """
    out_ch, in_ch, kh, kw = weight.shape
    kh2, kw2 = -(-kh // block), -(-kw // block)
    padded = np.zeros((out_ch, in_ch, kh2 * block, kw2 * block), weight.dtype)
    padded[:, :, :kh, :kw] = weight
    w = padded.reshape(out_ch, in_ch, kh2, block, kw2, block)
    return np.ascontiguousarray(w.transpose(0, 3, 5, 1, 2, 4)).reshape(
        out_ch, in_ch * block * block, kh2, kw2)


def _stem_candidate(node, inits, shapes):
    """The static input shape (N, 3, H, W) of a Conv space_to_depth_stem can rewrite, else None."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return None
    attrs = _attributes(node)
    shape = shapes.get(node.input[0])
    weight_dims = tuple(inits[node.input[1]].dims)
    if shape is None or len(shape) != 4 or shape[1] != 3 or len(weight_dims) != 4:
        return None
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("group", 1) != 1 or list(attrs.get("strides", [1, 1])) != [2, 2] or \
            list(attrs.get("dilations", [1, 1])) != [1, 1] or \
            attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or \
            weight_dims[2] != weight_dims[3] or weight_dims[2] < 3 or \
            len(set(pads)) != 1:
        return None
    height, width = shape[2] + 2 * pads[0], shape[3] + 2 * pads[0]
    if height % 2 or width % 2:
        return None
    return shape


def space_to_depth_stem(model):
    """Rewrite stride-2 Convs on 3-channel inputs (kernel >= 3, symmetric padding, even padded
    size, static shape) as Pad -> SpaceToDepth(2) -> stride-1 Conv on 12 channels without
    padding. Returns the number of Convs rewritten.

    Exact: out[i] = sum_k xpad[2i + k] w[k] = sum_{a, b} s2d(xpad)[b][i + a] w[2a + b].
    """
    from onnx import helper, numpy_helper
    inits = _initializers(model)
    shapes = _static_shapes(model)
    replacements = {}
    for index, node in enumerate(model.graph.node):
        shape = _stem_candidate(node, inits, shapes)
        if shape is None:
            continue
        attrs = _attributes(node)
        pad = int(attrs.get("pads", [0])[0])
        weight = numpy_helper.to_array(inits[node.input[1]])
        prefix = node.name + "_s2d"
        new_inits = [
            numpy_helper.from_array(np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64),
                                    prefix + "_pads"),
            numpy_helper.from_array(space_to_depth_weights(weight), prefix + "_weight"),
        ]
        model.graph.initializer.extend(new_inits)
        conv_inputs = [prefix + "_out", prefix + "_weight"] + list(node.input[2:])
        kernel = new_inits[1].dims[2]
        replacements[index] = [
            helper.make_node("Pad", [node.input[0], prefix + "_pads"], [prefix + "_padded"],
                             name=prefix + "_pad"),
            helper.make_node("SpaceToDepth", [prefix + "_padded"], [prefix + "_out"],
                             name=prefix, blocksize=2),
            helper.make_node("Conv", conv_inputs, list(node.output), name=node.name,
                             kernel_shape=[kernel, kernel], strides=[1, 1], pads=[0, 0, 0, 0]),
        ]
    if replacements:
        _replace_nodes(model, replacements)
    return len(replacements)


def nhwc_output_resize(model):
    """Resize (4-D, constant scales or sizes) whose only consumer is ArgMax(axis=1,
    keepdims=0) -> Transpose to NHWC, Resize with permuted scales/sizes, ArgMax(axis=3).
    Returns the number of pairs rewritten."""
    from onnx import helper, numpy_helper
    inits = _initializers(model)
    nodes = list(model.graph.node)
    consumers = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    outputs = set(out.name for out in model.graph.output)
    replacements = {}
    for index, node in enumerate(nodes):
        if node.op_type != "Resize" or node.output[0] in outputs:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or nodes[users[0]].op_type != "ArgMax":
            continue
        argmax = nodes[users[0]]
        am_attrs = _attributes(argmax)
        if am_attrs.get("axis", 0) != 1 or am_attrs.get("keepdims", 1) != 0:
            continue
        inputs = list(node.input) + [""] * (4 - len(node.input))
        scales_name, sizes_name = inputs[2], inputs[3]
        given = sizes_name if sizes_name else scales_name
        if not given or given not in inits or (inputs[1] and inputs[1] not in inits):
            continue
        values = numpy_helper.to_array(inits[given])
        if values.shape != (4,):
            continue
        prefix = node.name + "_nhwc"
        permuted = numpy_helper.from_array(values[[0, 2, 3, 1]].astype(values.dtype),
                                           prefix + ("_sizes" if sizes_name else "_scales"))
        model.graph.initializer.append(permuted)
        resize_inputs = [prefix + "_in", inputs[1], "", ""]
        resize_inputs[3 if sizes_name else 2] = permuted.name
        while resize_inputs and resize_inputs[-1] == "":
            resize_inputs.pop()
        replacements[index] = [
            helper.make_node("Transpose", [node.input[0]], [prefix + "_in"],
                             name=prefix + "_transpose", perm=[0, 2, 3, 1]),
            helper.make_node("Resize", resize_inputs, [prefix + "_out"], name=node.name,
                             **_attributes(node)),
        ]
        replacements[users[0]] = [helper.make_node(
            "ArgMax", [prefix + "_out"], list(argmax.output), name=argmax.name, axis=3,
            keepdims=0, select_last_index=am_attrs.get("select_last_index", 0))]
    if replacements:
        _replace_nodes(model, replacements)
    return len(replacements) // 2


def rewrite_for_cpu(model):
    """All rewrites above, in place; {rewrite name: count}. Checks the result."""
    counts = {
        "bn_to_depthwise": bn_to_depthwise(model),
        "space_to_depth_stem": space_to_depth_stem(model),
        "nhwc_output_resize": nhwc_output_resize(model),
    }
    if any(counts.values()):
        _onnx().checker.check_model(model)
    return counts


PAD_CHANNELS_TO = 8      # pad_conv_outputs: output channels rounded up to a multiple of this
PAD_MIN_PIXELS = 1024    # ... on maps of at least this many pixels (below it a Slice costs as much)


def pad_conv_outputs(model, multiple=PAD_CHANNELS_TO, min_pixels=PAD_MIN_PIXELS):
    """In a QDQ model: zero filters on Convs whose output channels are not a multiple of
    ``multiple`` (output map >= ``min_pixels``), a Slice back to the true channels after the
    Conv's QuantizeLinear (or after the Conv if none). Exact. Returns the count."""
    from onnx import helper, numpy_helper
    inits = _initializers(model)
    producers = dict((out, node) for node in model.graph.node for out in node.output)
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    shapes = _static_shapes(model)
    outputs = set(out.name for out in model.graph.output)
    padded = 0
    for node in list(model.graph.node):
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        dq = producers.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[dq.input[0]])
        channels = weight.shape[0]
        shape = shapes.get(node.output[0])
        if channels % multiple == 0 or shape is None or len(shape) != 4 or \
                shape[2] * shape[3] < min_pixels or _attributes(node).get("group", 1) != 1:
            continue
        width = -(-channels // multiple) * multiple
        dqs = [dq]
        if len(node.input) > 2 and node.input[2]:
            bias_dq = producers.get(node.input[2])
            if bias_dq is None or bias_dq.op_type != "DequantizeLinear":
                continue
            dqs.append(bias_dq)
        if not all(all(name in inits for name in d.input) for d in dqs):
            continue
        after = consumers.get(node.output[0], [])
        source = (after[0].output[0] if len(after) == 1 and after[0].op_type == "QuantizeLinear"
                  else node.output[0])
        if source in outputs:
            continue
        for d in dqs:  # values, scales and zero points: zeros, ones and zeros for the new channels
            for name, fill in zip(d.input, (0, 1, 0)):
                values = numpy_helper.to_array(inits[name])
                if values.ndim == 0:
                    continue
                extra = np.full((width - channels,) + values.shape[1:], fill, values.dtype)
                new = numpy_helper.from_array(np.concatenate([values, extra]), name + "_padded")
                model.graph.initializer.append(new)
                d.input[list(d.input).index(name)] = new.name
        sliced = source + "_sliced"
        prefix = node.name + "_pad"
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array([0], np.int64), prefix + "_starts"),
            numpy_helper.from_array(np.array([channels], np.int64), prefix + "_ends"),
            numpy_helper.from_array(np.array([1], np.int64), prefix + "_axes")])
        for user in consumers.get(source, []):
            for i, name in enumerate(user.input):
                if name == source:
                    user.input[i] = sliced
        slice_node = helper.make_node("Slice", [source, prefix + "_starts", prefix + "_ends",
                                                prefix + "_axes"], [sliced], name=prefix + "_slice")
        nodes = list(model.graph.node)
        position = nodes.index(producers[source]) + 1 if source in producers else 0
        model.graph.node.insert(position, slice_node)
        stale = set([node.output[0], source])
        keep = [info for info in model.graph.value_info if info.name not in stale]
        del model.graph.value_info[:]
        model.graph.value_info.extend(keep)
        padded += 1
    if padded:
        _replace_nodes(model, {})  # drops the unpadded initializers
        _onnx().checker.check_model(model)
    return padded


LAYOUT_OPS = ("Pad", "SpaceToDepth")  # what space_to_depth_stem puts before a quantized Conv


def inherit_ranges(model, tensors):
    """Calibrated (min, max) for the tensors the rewrites added, from the tensor they move.

    The calibration runs once on the prepared model (calib.ranges); the stem rewrite adds
    tensors that only rearrange a calibrated one (Pad with zeros, SpaceToDepth): they inherit
    its range (widened to 0 for Pad). ``tensors``: {name: (min, max)}; returns the additions.
    """
    added = {}
    for node in model.graph.node:
        if node.op_type not in LAYOUT_OPS or not node.input:
            continue
        source = tensors.get(node.input[0], added.get(node.input[0]))
        out = node.output[0]
        if source is None or out in tensors or out in added:
            continue
        low, high = source
        if node.op_type == "Pad":
            low, high = min(low, 0.0), max(high, 0.0)
        added[out] = (low, high)
    return added
