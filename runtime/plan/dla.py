"""DLA placement: which layers TensorRT's DLA rules put on the DLA (Xavier, Orin) and which fall back to the GPU.

A static reading of an exported ONNX graph (no TensorRT, no torch, Python 3.6+), per TensorRT
family: for every node that becomes a layer, "dla" or "gpu" with the rule that decides, and
how many DLA subgraphs (DLA loadables) the GPU layers cut the network into. With
``--gpu-fallback`` TensorRT runs the "gpu" layers on the GPU; without it a single "gpu" layer
fails the DLA build.

Source of every rule ('dla-guide'): TensorRT Developer Guide, "DLA Supported Layers and
Restrictions" (the 8.2.1, 8.6.1 and 10.3 editions; Working with DLA, "GPU Fallback Mode"):

* general: DLA runs FP16 or INT8 only (an FP32 build places nothing on DLA); static shapes;
  at most 16 loadables per DLA core; the network's I/O may be any type, so a Cast of the uint8
  frame (and ArgMax / Cast of the class map) run on the GPU and cut the graph there;
* Convolution / Fully Connected: 2D only, kernel [1, 32], padding [0, 31], stride [1, 8],
  dilation [1, 32], weights constant;
* Deconvolution: 2D only, kernel [1, 32], stride [1, 32], padding 0, no groups, no dilation;
* Pooling: 2D only, MAX / AVERAGE, window [1, 8], padding [0, 7], stride [1, 16];
* Activation: ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU; Scale (BatchNormalization):
  constant scale and shift;
* ElementWise: Sum, Sub, Prod, Max, Min (8.6 and later also Div, Pow, Equal, Greater, Less);
* Concatenation: along the channel axis only, at least 2 inputs;
* Resize: 8.2: nearest only, 4 scales, the first two 1, the last two integers in [1, 32];
  from 8.4 also bilinear with half-pixel coordinates and integer scales in [1, 4]
  ("For bilinear resize, DLA only supports kHALF_PIXEL coordinate transformation");
* MatrixMultiply (8.6 and later): the second input a constant;
* Softmax (8.6 and later, Orin): along the channel axis;
* every other layer (ArgMax/TopK, Cast, Gather, Shuffle/Transpose, Slice, Shape ...) is not a
  DLA layer in these versions: GPU.

Not run on hardware: the table is what the documented rules say, not what a Jetson built.
"""
from runtime.errors import UserError
from runtime.plan import onnx_graph as og
from runtime.plan import trt_rules

SOURCE = "dla-guide"
_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip")
_ELEMENTWISE = ("Add", "Sub", "Mul", "Max", "Min")
_ELEMENTWISE_86 = ("Div", "Pow", "Equal", "Greater", "Less")
# Nodes that become no layer: constants and shape arithmetic TensorRT folds at build time.
_BUILD_TIME = ("Constant", "Shape", "ConstantOfShape")


class Layer(object):
    """One node's placement: ``device`` 'dla', 'gpu' or 'build' (folded at build time)."""

    __slots__ = ("name", "op", "device", "reason")

    def __init__(self, name, op, device, reason):
        self.name, self.op, self.device, self.reason = name, op, device, reason

    def to_dict(self):
        return {"name": self.name, "op": self.op, "device": self.device, "reason": self.reason}


class Placement(object):
    """Per-layer placement of a graph for one TensorRT family and precision."""

    def __init__(self, family, precision, layers, subgraphs):
        self.family, self.precision, self.layers, self.subgraphs = family, precision, layers, subgraphs

    @property
    def on_dla(self):
        return [l for l in self.layers if l.device == "dla"]

    @property
    def on_gpu(self):
        return [l for l in self.layers if l.device == "gpu"]

    def to_dict(self):
        """The manifest's ``dla`` record (tensorrt_compat.dla)."""
        return {"family": self.family, "precision": self.precision, "dla_layers": len(self.on_dla),
                "gpu_layers": len(self.on_gpu), "dla_subgraphs": self.subgraphs,
                "gpu": [{"name": l.name, "op": l.op, "reason": l.reason} for l in self.on_gpu],
                "source": "TensorRT Developer Guide, DLA Supported Layers and Restrictions "
                          "(runtime/plan/dla.py; not run on hardware)"}

    def table(self):
        """Lines of the placement table (every layer, then the summary)."""
        rows = [(l.name, l.op, l.device.upper(), l.reason) for l in self.layers if l.device != "build"]
        widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(("layer", "op", "on"))]
        fmt = "{:<%d}  {:<%d}  {:<%d}  {}" % tuple(widths)
        lines = [fmt.format("layer", "op", "on", "why")]
        lines += [fmt.format(*row) for row in rows]
        lines.append("DLA (TensorRT {}, {}): {} layers in {} DLA subgraph(s); GPU: {} layers ({})".format(
            self.family, self.precision, len(self.on_dla), self.subgraphs, len(self.on_gpu),
            ", ".join(sorted(set(l.op for l in self.on_gpu))) or "none"))
        return lines


def _ints(node, name, default):
    attr = node.attrs.get(name)
    return list(attr.ints) if attr is not None and attr.ints else list(default)


def _in(values, low, high):
    return all(low <= v <= high for v in values)


def _constant_values(graph, name):
    tensor = graph.constant(name) if name else None
    return None if tensor is None or tensor.values is None else list(tensor.values)


def _is_constant(graph, name, producers, build):
    return name in graph.initializers or name in build or \
        (producers.get(name) is not None and producers[name].op_type == "Constant")


def _rule(graph, node, fam, producers, build):
    """(device, reason) for one node."""
    op = node.op_type
    newer = fam not in ("8.2", "8.4", "8.5")
    if op == "Conv":
        weights = graph.constant(node.inputs[1]) if len(node.inputs) > 1 else None
        kernel = _ints(node, "kernel_shape", list(weights.dims[2:]) if weights is not None else [])
        if len(kernel) != 2:
            return "gpu", "Convolution: DLA runs 2D convolutions only"
        checks = [(_in(kernel, 1, 32), "kernel {} outside [1, 32]".format(kernel)),
                  (_in(_ints(node, "strides", [1, 1]), 1, 8), "stride outside [1, 8]"),
                  (_in(_ints(node, "pads", [0, 0, 0, 0]), 0, 31), "padding outside [0, 31]"),
                  (_in(_ints(node, "dilations", [1, 1]), 1, 32), "dilation outside [1, 32]"),
                  (_is_constant(graph, node.inputs[1], producers, build), "weights are not constant")]
        bad = [why for ok, why in checks if not ok]
        return ("gpu", "Convolution: " + "; ".join(bad)) if bad else ("dla", "Convolution 2D, kernel {}".format(
            "x".join(str(k) for k in kernel)))
    if op == "ConvTranspose":
        kernel = _ints(node, "kernel_shape", [])
        bad = []
        if len(kernel) != 2 or not _in(kernel, 1, 32):
            bad.append("2D kernel in [1, 32] only")
        if not _in(_ints(node, "strides", [1, 1]), 1, 32):
            bad.append("stride outside [1, 32]")
        if any(_ints(node, "pads", [0, 0, 0, 0])):
            bad.append("padding must be 0")
        if (node.attrs["group"].i if "group" in node.attrs else 1) != 1 or any(
                d != 1 for d in _ints(node, "dilations", [1, 1])):
            bad.append("no grouped or dilated deconvolution")
        return ("gpu", "Deconvolution: " + "; ".join(bad)) if bad else ("dla", "Deconvolution 2D")
    if op in ("MaxPool", "AveragePool"):
        kernel = _ints(node, "kernel_shape", [])
        checks = [(len(kernel) == 2 and _in(kernel, 1, 8), "window {} outside [1, 8]".format(kernel)),
                  (_in(_ints(node, "strides", [1, 1]), 1, 16), "stride outside [1, 16]"),
                  (_in(_ints(node, "pads", [0, 0, 0, 0]), 0, 7), "padding outside [0, 7]")]
        bad = [why for ok, why in checks if not ok]
        return ("gpu", "Pooling: " + "; ".join(bad)) if bad else ("dla", "Pooling {}, window {}".format(
            "MAX" if op == "MaxPool" else "AVERAGE", "x".join(str(k) for k in kernel)))
    if op in _ACTIVATIONS:
        return "dla", "Activation"
    if op == "BatchNormalization":
        constant = all(_is_constant(graph, n, producers, build) for n in node.inputs[1:])
        return ("dla", "Scale") if constant else ("gpu", "Scale: parameters are not constant")
    if op in _ELEMENTWISE or (newer and op in _ELEMENTWISE_86):
        return "dla", "ElementWise"
    if op in _ELEMENTWISE_86:
        return "gpu", "ElementWise {}: on DLA from TensorRT 8.6".format(op)
    if op == "Concat":
        axis = node.attrs["axis"].i if "axis" in node.attrs else 1
        if axis != 1:
            return "gpu", "Concatenation: DLA concatenates along channels (axis 1) only, not axis {}".format(axis)
        if len([n for n in node.inputs if n]) < 2:
            return "gpu", "Concatenation: at least 2 inputs"
        return "dla", "Concatenation along channels"
    if op == "Resize":
        return _resize(graph, node, fam)
    if op == "MatMul":
        if not newer:
            return "gpu", "MatrixMultiply: on DLA from TensorRT 8.6"
        if len(node.inputs) > 1 and _is_constant(graph, node.inputs[1], producers, build):
            return "dla", "MatrixMultiply, constant second input"
        return "gpu", "MatrixMultiply: DLA needs a constant second input"
    if op == "Softmax" and newer:
        axis = node.attrs["axis"].i if "axis" in node.attrs else -1
        return ("dla", "SoftMax along channels") if axis == 1 else ("gpu", "SoftMax: channel axis only")
    return "gpu", "{} is not a DLA layer in TensorRT {}".format(op, fam)


def _resize(graph, node, fam):
    mode = node.attrs["mode"].s if "mode" in node.attrs else "nearest"
    coord = node.attrs["coordinate_transformation_mode"].s if "coordinate_transformation_mode" in node.attrs \
        else "half_pixel"
    scales = _constant_values(graph, node.inputs[2] if len(node.inputs) > 2 else "")
    if not scales:
        return "gpu", "Resize: DLA needs constant scales (this one has sizes or computed scales)"
    if len(scales) != 4 or scales[0] != 1 or scales[1] != 1:
        return "gpu", "Resize: 4 scales, the first two 1"
    spatial = scales[2:]
    if any(s != int(s) for s in spatial):
        return "gpu", "Resize: integer scales only, not {}".format(spatial)
    if mode == "nearest":
        return ("dla", "Resize nearest x{}".format(int(spatial[0]))) if _in(spatial, 1, 32) else \
            ("gpu", "Resize nearest: scales in [1, 32]")
    if fam == "8.2":
        return "gpu", "Resize {}: TensorRT 8.2's DLA resizes nearest only".format(mode)
    if mode != "linear":
        return "gpu", "Resize {}: nearest or bilinear only".format(mode)
    if coord not in ("half_pixel", "pytorch_half_pixel"):
        return "gpu", "Resize bilinear: DLA needs half-pixel coordinates, not {}".format(coord)
    if not _in(spatial, 1, 4):
        return "gpu", "Resize bilinear: integer scales in [1, 4], not {}".format([int(s) for s in spatial])
    return "dla", "Resize bilinear half-pixel x{}".format(int(spatial[0]))


def _build_time_outputs(graph):
    """Tensors computed only from constants and shapes: folded by TensorRT, no layer."""
    folded = set(graph.initializers)
    nodes = set()
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(graph.nodes):
            if index in nodes:
                continue
            inputs = [n for n in node.inputs if n]
            if node.op_type in _BUILD_TIME or (inputs and all(n in folded for n in inputs)):
                nodes.add(index)
                folded.update(n for n in node.outputs if n)
                changed = True
    return nodes, folded


def placement(graph, version, precision="fp16"):
    """The Placement of ``graph`` (a Graph or a path) on a DLA with TensorRT ``version``."""
    if not isinstance(graph, og.Graph):
        graph = og.load(graph)
    fam = version if version in trt_rules.FAMILIES else trt_rules.family(version)
    if precision not in ("fp16", "int8", "fp32"):
        raise UserError("precision {!r}: use fp16, int8 or fp32".format(precision))
    producers = graph.producers()
    build_nodes, folded = _build_time_outputs(graph)
    layers = []
    for index, node in enumerate(graph.nodes):
        name = node.name or (node.outputs[0] if node.outputs else node.op_type)
        if index in build_nodes:
            layers.append(Layer(name, node.op_type, "build", "folded at build time"))
        elif precision == "fp32":
            layers.append(Layer(name, node.op_type, "gpu", "DLA runs FP16 or INT8 only"))
        else:
            device, reason = _rule(graph, node, fam, producers, folded)
            layers.append(Layer(name, node.op_type, device, reason))
    return Placement(fam, precision, layers, _subgraphs(graph, layers))


def _subgraphs(graph, layers):
    """Connected groups of DLA layers: each is one DLA loadable; GPU layers cut between them."""
    on_dla = dict((out, i) for i, (node, layer) in enumerate(zip(graph.nodes, layers))
                  if layer.device == "dla" for out in node.outputs if out)
    parent = list(range(len(layers)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (node, layer) in enumerate(zip(graph.nodes, layers)):
        if layer.device != "dla":
            continue
        for name in node.inputs:
            if name in on_dla:
                parent[root(i)] = root(on_dla[name])
    return len(set(root(i) for i, layer in enumerate(layers) if layer.device == "dla"))
