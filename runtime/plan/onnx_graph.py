"""Read what the TensorRT compatibility check needs from an ONNX file, without ``onnx``.

The check runs on the device before TensorRT's parser (JetPack 4 has Python 3.6 and no
``onnx`` wheel), so this module decodes the protobuf wire format itself: the opset imports,
graph inputs and outputs with their element types, initializers (type, dims and, for small
ones, their values), nodes with their attributes, and any ``value_info`` types. Tensor
element types of intermediates are then propagated through the graph (``infer_types``).

Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto,
AttributeProto, TensorProto, ValueInfoProto, TypeProto); unknown fields are skipped.
"""
import struct

from runtime.errors import UserError

# TensorProto.DataType
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16 = 10, 11, 12, 13, 16
TYPE_NAMES = {FLOAT: "FLOAT", UINT8: "UINT8", INT8: "INT8", UINT16: "UINT16", INT16: "INT16",
              INT32: "INT32", INT64: "INT64", STRING: "STRING", BOOL: "BOOL", FLOAT16: "FLOAT16",
              DOUBLE: "DOUBLE", UINT32: "UINT32", UINT64: "UINT64", BFLOAT16: "BFLOAT16"}
_NUMPY_NAMES = {"float32": FLOAT, "uint8": UINT8, "int8": INT8, "int32": INT32, "int64": INT64,
                "float16": FLOAT16, "bool": BOOL, "float64": DOUBLE}
# Largest initializer whose values are decoded (zero points, scales, axes): weights are skipped.
_MAX_VALUES = 4096


def type_name(elem_type):
    return TYPE_NAMES.get(elem_type, "type {}".format(elem_type))


def numpy_type(name):
    """'uint8' -> UINT8: the manifest's dtype names as ONNX element types."""
    return _NUMPY_NAMES[str(name)]


# -- protobuf wire format ---------------------------------------------------------------

def _varint(data, pos):
    result, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("malformed varint")


def _fields(data):
    """(field number, wire type, value) of one message; value = int or bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported protobuf wire type {}".format(wire))
        if pos > end:
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire, value):
    """A repeated int64 field: packed (bytes) or one varint."""
    if wire == 0:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_signed(item))
    return out


def _text(value):
    return bytes(value).decode("utf-8", "replace")


# -- messages ---------------------------------------------------------------------------

class Tensor(object):
    """An initializer or a constant: name, element type, dims and (small ones) values."""

    __slots__ = ("name", "elem_type", "dims", "values")

    def __init__(self, name, elem_type, dims, values):
        self.name, self.elem_type, self.dims, self.values = name, elem_type, dims, values

    @property
    def size(self):
        count = 1
        for d in self.dims:
            count *= d
        return count


_RAW_FORMATS = {FLOAT: "f", UINT8: "B", INT8: "b", INT32: "i", INT64: "q", FLOAT16: "e",
                DOUBLE: "d", BOOL: "?", UINT16: "H", INT16: "h"}


def _tensor(data):
    name, elem_type, dims, raw, listed = "", 0, [], None, []
    for number, wire, value in _fields(data):
        if number == 1:
            dims.extend(_ints(wire, value))
        elif number == 2:
            elem_type = value
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = value
        elif number in (5, 7):  # int32_data / int64_data
            listed.extend(_ints(wire, value))
        elif number == 4:  # float_data (packed fixed32, or one)
            listed.extend(struct.unpack("<{}f".format(len(value) // 4), value))
        elif number == 10:
            listed.extend(struct.unpack("<{}d".format(len(value) // 8), value))
    tensor = Tensor(name, elem_type, dims, None)
    if tensor.size <= _MAX_VALUES:
        fmt = _RAW_FORMATS.get(elem_type)
        if raw is not None and fmt:
            width = struct.calcsize(fmt)
            tensor.values = list(struct.unpack("<{}{}".format(len(raw) // width, fmt), raw))
        elif listed:
            tensor.values = listed
    return tensor


class Attribute(object):
    __slots__ = ("name", "i", "f", "s", "t", "ints", "has_graph")

    def __init__(self):
        self.name, self.i, self.f, self.s, self.t = "", None, None, None, None
        self.ints, self.has_graph = [], False


def _attribute(data):
    attr = Attribute()
    for number, wire, value in _fields(data):
        if number == 1:
            attr.name = _text(value)
        elif number == 2:
            attr.f = struct.unpack("<f", value)[0]
        elif number == 3:
            attr.i = _signed(value)
        elif number == 4:
            attr.s = _text(value)
        elif number == 5:
            attr.t = _tensor(value)
        elif number in (6, 11):  # g / graphs: control flow, not checked
            attr.has_graph = True
        elif number == 8:
            attr.ints.extend(_ints(wire, value))
    return attr


class Node(object):
    __slots__ = ("name", "op_type", "domain", "inputs", "outputs", "attrs")

    def __init__(self):
        self.name, self.op_type, self.domain = "", "", ""
        self.inputs, self.outputs, self.attrs = [], [], {}

    def label(self):
        return "{} '{}'".format(self.op_type, self.name or (self.outputs[0] if self.outputs else "?"))


def _node(data):
    node = Node()
    for number, _, value in _fields(data):
        if number == 1:
            node.inputs.append(_text(value))
        elif number == 2:
            node.outputs.append(_text(value))
        elif number == 3:
            node.name = _text(value)
        elif number == 4:
            node.op_type = _text(value)
        elif number == 7:
            node.domain = _text(value)
        elif number == 5:
            attr = _attribute(value)
            node.attrs[attr.name] = attr
    return node


def _value_info(data):
    """(name, elem_type or 0) of a ValueInfoProto."""
    name, elem_type = "", 0
    for number, _, value in _fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:  # TypeProto
            for n2, _, v2 in _fields(value):
                if n2 == 1:  # tensor_type
                    for n3, _, v3 in _fields(v2):
                        if n3 == 1:
                            elem_type = v3
    return name, elem_type


class Graph(object):
    """The parts of a model the check reads. ``types``: element type of every known tensor."""

    def __init__(self):
        self.opsets = {}
        self.nodes = []
        self.inputs = []      # [(name, elem_type)] without initializers
        self.outputs = []
        self.initializers = {}
        self.value_types = {}
        self.types = {}

    def producers(self):
        return dict((out, node) for node in self.nodes for out in node.outputs if out)

    def consumers(self):
        users = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def constant(self, name):
        """The Tensor behind ``name`` if it is an initializer or a Constant node's output."""
        if name in self.initializers:
            return self.initializers[name]
        node = self.producers().get(name)
        if node is not None and node.op_type == "Constant" and "value" in node.attrs:
            return node.attrs["value"].t
        return None


def parse(data):
    """Graph of the bytes of an ONNX ModelProto."""
    graph = Graph()
    graph_bytes = None
    for number, _, value in _fields(data):
        if number == 8:  # opset_import
            domain, version = "", 0
            for n2, _, v2 in _fields(value):
                if n2 == 1:
                    domain = _text(v2)
                elif n2 == 2:
                    version = v2
            graph.opsets[domain or "ai.onnx"] = version
        elif number == 7:
            graph_bytes = value
    if graph_bytes is None:
        raise ValueError("no graph in the model")
    inputs = []
    for number, _, value in _fields(graph_bytes):
        if number == 1:
            graph.nodes.append(_node(value))
        elif number == 5:
            tensor = _tensor(value)
            graph.initializers[tensor.name] = tensor
        elif number == 11:
            inputs.append(_value_info(value))
        elif number == 12:
            graph.outputs.append(_value_info(value))
        elif number == 13:
            name, elem_type = _value_info(value)
            if elem_type:
                graph.value_types[name] = elem_type
    graph.inputs = [(n, t) for n, t in inputs if n not in graph.initializers]
    infer_types(graph)
    return graph


def load(path):
    """Graph of the ONNX file ``path``; one-line UserError when it is not a readable model."""
    try:
        with open(str(path), "rb") as handle:
            data = handle.read()
        return parse(data)
    except (OSError, IOError) as exc:
        raise UserError("cannot read {}: {}".format(path, exc))
    except (ValueError, IndexError, struct.error) as exc:
        raise UserError("{} is not a valid ONNX model ({})".format(path, exc))


# -- element types of intermediate tensors ----------------------------------------------

_BOOL_OPS = ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or",
             "Xor", "IsNaN", "IsInf")
_INT64_OPS = ("ArgMax", "ArgMin", "Shape", "Size", "NonZero", "NonMaxSuppression")


def _output_types(node, graph, types):
    op = node.op_type
    first = types.get(node.inputs[0]) if node.inputs and node.inputs[0] else None
    if op == "Cast":
        return [node.attrs["to"].i]
    if op in _INT64_OPS:
        return [INT64]
    if op in _BOOL_OPS:
        return [BOOL]
    if op in ("Constant", "ConstantOfShape"):
        attr = node.attrs.get("value")
        return [attr.t.elem_type if attr is not None and attr.t is not None else FLOAT]
    if op == "QuantizeLinear":
        zero = types.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        return [zero or UINT8]
    if op == "DequantizeLinear":
        return [types.get(node.inputs[1]) or FLOAT]
    if op == "Where":
        return [types.get(node.inputs[1])]
    if op == "TopK":
        return [first, INT64]
    if op in ("MaxPool",):
        return [first, INT64]
    return [first] * max(1, len(node.outputs))


def infer_types(graph):
    """Fill ``graph.types``: graph inputs and initializers, then node by node.

    Computed from the nodes, as TensorRT's parser does; ``value_info`` only fills what the
    rules cannot tell (a stale value_info entry, e.g. left by an optimizer that rewrote the
    node, must not hide the type the node really makes)."""
    types = graph.types
    for name, tensor in graph.initializers.items():
        types[name] = tensor.elem_type
    for name, elem_type in graph.inputs:
        types[name] = elem_type
    for node in graph.nodes:  # ONNX requires topological order
        for name, elem_type in zip(node.outputs, _output_types(node, graph, types)):
            if name:
                types[name] = elem_type or graph.value_types.get(name)
    for name, elem_type in graph.outputs:
        if elem_type:
            types[name] = elem_type
    return types
